//! `berkutctl backup list`.

use crate::helpers::*;

#[test]
fn list_is_a_json_array_or_a_table() {
    let env = env();
    let empty = ctl(&env.daemon, &["backup", "list", "--json"]).ok();
    assert_eq!(empty.last_json(), serde_json::json!([]));
    assert!(ctl(&env.daemon, &["backup", "list"])
        .ok()
        .stdout
        .contains("no backups"));

    ctl(
        &env.daemon,
        &["backup", "create", "--label", "one", "--wait"],
    )
    .ok();
    ctl(
        &env.daemon,
        &["backup", "create", "--label", "two", "--wait"],
    )
    .ok();
    let run = ctl(&env.daemon, &["backup", "list", "--json"]).ok();
    assert_eq!(run.stdout.lines().count(), 1, "one JSON document");
    let list = run.last_json();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    list.iter().for_each(assert_record_shape);
    assert_eq!(list[0]["label"], "two");

    let table = ctl(&env.daemon, &["backup", "list"]).ok().stdout;
    assert!(table.starts_with("ID"), "{table}");
    assert_eq!(table.lines().count(), 3, "{table}");
    assert!(table.contains("succeeded"));
}
