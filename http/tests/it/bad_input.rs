//! Hostile and broken requests: bad JSON, unknown fields, wrong types,
//! oversized bodies, ids in the path that are not ids (`..%2F`, NUL, bytes
//! that are not UTF-8), bad queries, unknown routes and methods. Each is a
//! problem document, and the gateway goes on serving.

use reqwest::Method;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_problem_documents_and_nothing_breaks() {
    let Some((_pg, _daemon, gw)) = setup() else {
        return;
    };
    let post = |body: &'static str| {
        admin(Method::POST, gw.url("/api/backups"))
            .header("content-type", "application/json")
            .body(body)
    };
    problem(post("{\"label\": ").send().await.unwrap(), 400, "invalid").await;
    let unknown = problem(
        post("{\"label\": \"x\", \"colour\": \"red\"}")
            .send()
            .await
            .unwrap(),
        400,
        "invalid",
    )
    .await;
    assert!(
        unknown["detail"]
            .as_str()
            .unwrap()
            .contains("unknown field"),
        "{unknown}"
    );
    problem(
        post("{\"include_files\": \"yes\"}").send().await.unwrap(),
        400,
        "invalid",
    )
    .await;
    problem(
        post("{\"scope\": \"everything\"}").send().await.unwrap(),
        400,
        "invalid",
    )
    .await;
    problem(post("[1, 2]").send().await.unwrap(), 400, "invalid").await;
    let long_label = format!("{{\"label\": \"{}\"}}", "x".repeat(300));
    let refused = admin(Method::POST, gw.url("/api/backups"))
        .header("content-type", "application/json")
        .body(long_label)
        .send()
        .await
        .unwrap();
    problem(refused, 400, "invalid").await;
    let not_json = admin(Method::POST, gw.url("/api/backups"))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    problem(not_json, 415, "invalid").await;
    let oversized = admin(Method::POST, gw.url("/api/backups"))
        .header("content-type", "application/json")
        .body(format!("{{\"label\": \"{}\"}}", "x".repeat(100_000)))
        .send()
        .await
        .unwrap();
    problem(oversized, 413, "too_large").await;
    let plan = admin(Method::PUT, gw.url("/api/backups/plan"))
        .header("If-Match", "*")
        .json(&serde_json::json!({"preset": "daily", "at": "02:00", "colour": 1}))
        .send()
        .await
        .unwrap();
    problem(plan, 400, "invalid").await;
    let restore_body = admin(
        Method::POST,
        gw.url("/api/backups/20260102T030405Z-0a0b0c0d/restore/dry-run"),
    )
    .json(&serde_json::json!({"with_globals": "no"}))
    .send()
    .await
    .unwrap();
    problem(restore_body, 400, "invalid").await;

    // Ids that are not ids never reach the daemon as paths.
    for path in [
        "/api/backups/..%2F..%2Fetc%2Fpasswd",
        "/api/backups/..%2F",
        "/api/backups/%00",
        "/api/backups/20260102T030405Z-0a0b0c0d%00",
        "/api/backups/%FF%FE",
        "/api/backups/..%2F/download",
        "/api/backups/restores/..%2Fx",
        "/api/backups/restores/r-%00/events",
        "/api/backups/jobs/..%2F/events",
    ] {
        let r = admin(Method::GET, gw.url(path)).send().await.unwrap();
        let doc = problem(r, 400, "invalid").await;
        assert!(!doc["detail"].as_str().unwrap().contains('\0'), "{doc}");
    }
    let del = admin(Method::DELETE, gw.url("/api/backups/..%2F..%2Fstate"))
        .send()
        .await
        .unwrap();
    problem(del, 400, "invalid").await;

    for query in ["?limit=abc", "?offset=-1", "?colour=1"] {
        let r = admin(Method::GET, gw.url(&format!("/api/backups{query}")))
            .send()
            .await
            .unwrap();
        problem(r, 400, "invalid").await;
    }
    let nowhere = admin(Method::GET, gw.url("/api/nothing"))
        .send()
        .await
        .unwrap();
    problem(nowhere, 404, "not_found").await;
    let patch = admin(Method::PATCH, gw.url("/api/backups"))
        .send()
        .await
        .unwrap();
    problem(patch, 405, "method_not_allowed").await;

    let health = http().get(gw.url("/api/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert!(!gw.log().contains("panicked"), "{}", gw.log());
}
