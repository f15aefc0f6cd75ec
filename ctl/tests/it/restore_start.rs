//! `berkutctl restore …` and `berkutctl maintenance …`.

use crate::helpers::*;

#[test]
fn dry_run_then_real_restore_then_rollback_and_cleanup() {
    let env = env();
    let backup = ctl(&env.daemon, &["backup", "create", "--wait", "--json"])
        .ok()
        .last_json();
    let id = backup["id"].as_str().unwrap();

    let run = ctl(
        &env.daemon,
        &["restore", id, "--dry-run", "--wait", "--json"],
    )
    .ok();
    let lines = run.json_lines();
    assert!(
        lines[..lines.len() - 1]
            .iter()
            .all(|l| l["event"] == "restore_progress"),
        "{}",
        run.stdout
    );
    let record = lines.last().unwrap();
    assert_eq!(record["status"], "succeeded");
    assert_eq!(record["dry_run"], true);
    let rid = record["restore_id"].as_str().unwrap();
    assert!(rid.starts_with("r-"));
    assert_eq!(record["steps"].as_array().unwrap().len(), 14);

    let status = ctl(&env.daemon, &["restore", "status", rid, "--json"])
        .ok()
        .last_json();
    assert_eq!(status["restore_id"], rid);
    let evidence = ctl(&env.daemon, &["restore", "evidence", rid]).ok().stdout;
    assert!(evidence.contains("verdict:       passed"), "{evidence}");
    assert!(
        evidence.contains("row counts:    1 tables, 0 differ"),
        "{evidence}"
    );

    let real = ctl(&env.daemon, &["restore", id, "--wait"]).ok().stdout;
    assert!(real.contains("status:        succeeded"), "{real}");
    assert!(real.contains("kind:          real restore"), "{real}");
    let rid = real
        .lines()
        .find_map(|l| l.strip_prefix("restore_id:    "))
        .unwrap()
        .to_owned();
    assert!(ctl(&env.daemon, &["maintenance", "status"])
        .ok()
        .stdout
        .contains("maintenance: off"));
    ctl(&env.daemon, &["restore", "rollback", &rid]).ok();
    let cleaned = ctl(&env.daemon, &["restore", "cleanup", &rid, "--json"])
        .ok()
        .last_json();
    assert!(cleaned["rollback_database"].is_null());
}

#[test]
fn restore_errors_have_their_exit_codes() {
    let env = env();
    let missing = ctl(
        &env.daemon,
        &["restore", "20000101T000000Z-00000000", "--dry-run"],
    );
    assert_eq!(missing.code, 4, "{}", missing.stderr);
    let bad = ctl(&env.daemon, &["restore", "status", "not-an-id"]);
    assert_eq!(bad.code, 9, "{}", bad.stderr);
    let none = ctl(&env.daemon, &["restore"]);
    assert_ne!(none.code, 0);
    let clear = ctl(&env.daemon, &["maintenance", "clear", "--json"])
        .ok()
        .last_json();
    assert_eq!(clear["active"], false);
}

/// `restore evidence RID --verify` checks the evidence against its DIGEST:
/// a file changed afterwards fails the command, naming it.
#[test]
fn evidence_verify_catches_a_changed_file() {
    let env = env();
    let (_, rid) = drilled(&env);
    let rid = rid.as_str();

    let fine = ctl(&env.daemon, &["restore", "evidence", rid, "--verify"]).ok();
    assert!(fine.stdout.contains(" files match"), "{}", fine.stdout);
    let json = ctl(
        &env.daemon,
        &["restore", "evidence", rid, "--verify", "--json"],
    )
    .ok()
    .last_json();
    assert!(json["digest"]["matched"].as_u64().unwrap() >= 3, "{json}");

    let log = env
        .daemon
        .state_dir
        .join("restores")
        .join(rid)
        .join("logs/00-verify.log");
    std::fs::write(&log, "nothing to see\n").unwrap();
    let forged = ctl(&env.daemon, &["restore", "evidence", rid, "--verify"]);
    assert_eq!(forged.code, 1, "{}", forged.stderr);
    assert!(
        forged.stderr.contains("does not match its DIGEST")
            && forged.stderr.contains("logs/00-verify.log: changed"),
        "{}",
        forged.stderr
    );
    // Without --verify the evidence is still shown, mismatch and all.
    let shown = ctl(&env.daemon, &["restore", "evidence", rid]).ok();
    assert!(shown.stdout.contains("DOES NOT MATCH"), "{}", shown.stdout);
}

/// `drill run` without an id drills the newest backup without a passing
/// drill, and its verdict goes on that backup.
#[test]
fn drill_run_drills_the_newest_unproven_backup() {
    let env = env();
    let backup = ctl(&env.daemon, &["backup", "create", "--wait", "--json"])
        .ok()
        .last_json();
    let id = backup["id"].as_str().unwrap();
    let drill = ctl(&env.daemon, &["drill", "run", "--wait", "--json"])
        .ok()
        .last_json();
    assert_eq!(drill["backup_id"], id, "{drill}");
    assert_eq!(drill["dry_run"], true);
    assert_eq!(drill["status"], "succeeded");
    let shown = ctl(&env.daemon, &["backup", "show", id, "--json"])
        .ok()
        .last_json();
    assert_eq!(shown["drill"]["restore_id"], drill["restore_id"]);

    let bad = ctl(&env.daemon, &["drill", "run", "20000101T000000Z-00000000"]);
    assert_eq!(bad.code, 4, "{}", bad.stderr);
    assert!(bad.stderr.contains("not_found"), "{}", bad.stderr);
}
