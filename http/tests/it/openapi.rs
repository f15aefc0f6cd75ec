//! The OpenAPI document: served as kept in docs/, and valid OpenAPI 3.1
//! by `openapi-spec-validator` (installed into the tests' venv,
//! `berkut_testkit::venv`, by scripts/ensure-deps.sh).

use std::path::PathBuf;
use std::process::Command;

use crate::helpers::*;

fn document_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_document_is_the_one_in_docs() {
    let Some((_pg, _daemon, gw)) = setup() else {
        return;
    };
    let served = http()
        .get(gw.url("/api/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(served.headers()["content-type"], "application/json");
    let served: serde_json::Value = served.json().await.unwrap();
    let kept: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(document_path()).unwrap()).unwrap();
    assert_eq!(served, kept);
}

#[test]
fn the_document_is_valid_openapi_3_1() {
    let validator = berkut_testkit::venv_bin("openapi-spec-validator");
    let out = Command::new(&validator)
        .arg(document_path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
