//! `berkutctl backup delete`.

use crate::helpers::*;

#[test]
fn delete_removes_the_backup() {
    let env = env();
    let made = ctl(&env.daemon, &["backup", "create", "--wait", "--json"])
        .ok()
        .last_json();
    let id = made["id"].as_str().unwrap();
    let run = ctl(&env.daemon, &["backup", "delete", id, "--json"]).ok();
    assert_eq!(run.last_json()["deleted"], id);
    assert!(!env.daemon.archive_path(id).exists());
    let again = ctl(&env.daemon, &["backup", "delete", id]);
    assert_eq!(again.code, 4);
    assert_eq!(
        ctl(&env.daemon, &["backup", "list", "--json"])
            .ok()
            .last_json(),
        serde_json::json!([])
    );
}
