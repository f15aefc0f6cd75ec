//! `berkutctl backup show`.

use crate::helpers::*;

#[test]
fn show_prints_one_record_and_refuses_bad_ids() {
    let env = env();
    let made = ctl(&env.daemon, &["backup", "create", "--wait", "--json"])
        .ok()
        .last_json();
    let id = made["id"].as_str().unwrap();
    let shown = ctl(&env.daemon, &["backup", "show", id, "--json"])
        .ok()
        .last_json();
    assert_eq!(shown, made);
    let human = ctl(&env.daemon, &["backup", "show", id]).ok().stdout;
    assert!(human.contains(&format!("id:            {id}")), "{human}");
    // The database's own properties, as the backup recorded them.
    assert!(shown["properties"]["owner"].is_string(), "{shown}");
    assert!(human.contains("properties:    owner "), "{human}");
    assert!(human.contains("no connection limit"), "{human}");

    let missing = ctl(
        &env.daemon,
        &["backup", "show", "20000101T000000Z-00000000"],
    );
    assert_eq!(missing.code, 4, "{}", missing.stderr);
    assert!(missing.stderr.contains("not_found"), "{}", missing.stderr);

    let hostile = ctl(&env.daemon, &["backup", "show", "../../etc/shadow"]);
    assert_eq!(hostile.code, 9, "{}", hostile.stderr);
    assert!(hostile.stderr.contains("invalid"), "{}", hostile.stderr);
}
