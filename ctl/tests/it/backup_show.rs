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

/// A drill's verdict is shown: a column of `backup list`, the verdict and
/// the expected restore time in `backup show`, the verified backup in
/// `status`.
#[test]
fn a_drill_verdict_shows_in_list_show_and_status() {
    let env = env();
    let made = ctl(&env.daemon, &["backup", "create", "--wait", "--json"])
        .ok()
        .last_json();
    let id = made["id"].as_str().unwrap();
    let human = ctl(&env.daemon, &["backup", "show", id]).ok().stdout;
    assert!(human.contains("drill:         never"), "{human}");
    let table = ctl(&env.daemon, &["backup", "list"]).ok().stdout;
    assert!(table.lines().next().unwrap().contains("DRILL"), "{table}");
    assert!(table.contains("never"), "{table}");

    let drill = ctl(
        &env.daemon,
        &["restore", id, "--dry-run", "--wait", "--json"],
    )
    .ok()
    .last_json();
    let rid = drill["restore_id"].as_str().unwrap();

    let shown = ctl(&env.daemon, &["backup", "show", id, "--json"])
        .ok()
        .last_json();
    assert_eq!(shown["drill"]["result"], "passed", "{shown}");
    assert_eq!(shown["drill"]["restore_id"], rid, "{shown}");
    assert_eq!(shown["expected_restore"]["backup_id"], id, "{shown}");
    let human = ctl(&env.daemon, &["backup", "show", id]).ok().stdout;
    assert!(
        human.contains("drill:         passed at ") && human.contains(rid),
        "{human}"
    );
    assert!(human.contains("restore time:  about "), "{human}");
    let table = ctl(&env.daemon, &["backup", "list"]).ok().stdout;
    let row = table.lines().find(|l| l.starts_with(id)).unwrap();
    assert!(row.contains("passed"), "{table}");

    let status = ctl(&env.daemon, &["status"]).ok().stdout;
    assert!(status.contains(&format!("verified:  {id} (")), "{status}");
}
