//! The operator's own smoke checks (`[[smoke_check]]`) against a real
//! daemon and database: passing checks pass a drill and leave their results
//! in the record and the evidence, and the drill's verdict on the backup;
//! a check that is not valid SQL, times out, returns no row or several, or
//! tries to write fails with a reason in the daemon's words (never the SQL
//! or the server's message) and changes no database; a failing check stops
//! a real restore before the swap, the live database as it was.

use berkut_proto::ids::BackupId;
use berkut_proto::manifest::Scope;
use berkut_proto::wire::{
    ops, DrillResult, Evidence, Operation, Reply, RestoreRecord, RestoreStatus, StepState,
};
use berkut_testkit::{fingerprint, temp_dir, Daemon, PgCluster};

use crate::helpers::*;

/// A daemon for `pg` whose configuration file holds `checks` (TOML).
fn daemon_with_checks(pg: &PgCluster, checks: &str) -> Daemon {
    let dir = temp_dir("smoke-");
    let config = dir.path().join("berkutd.toml");
    std::fs::write(&config, checks).unwrap();
    let daemon = daemon_for(pg)
        .arg("--config")
        .arg(config.display().to_string())
        .start();
    // The file must outlive the daemon's restarts; the directory is
    // removed with the test process's temporary files.
    std::mem::forget(dir);
    daemon
}

async fn drill(daemon: &Daemon, backup: &BackupId) -> RestoreRecord {
    let mut client = daemon.client().await;
    restored(client.call(restore_op(backup, true, true)).await)
}

async fn show(daemon: &Daemon, id: &BackupId) -> berkut_proto::wire::BackupRecord {
    backup(
        daemon
            .client()
            .await
            .call(Operation::BackupShow(ops::BackupShow { id: id.clone() }))
            .await,
    )
}

async fn evidence(daemon: &Daemon, r: &RestoreRecord) -> Evidence {
    match daemon
        .client()
        .await
        .call(Operation::RestoreEvidence(ops::RestoreEvidence {
            restore_id: r.restore_id.clone(),
        }))
        .await
    {
        Ok(Reply::Evidence { evidence }) => *evidence,
        other => panic!("expected evidence, got {other:?}"),
    }
}

fn step(r: &RestoreRecord, name: &str) -> StepState {
    r.step(name).unwrap().state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passing_checks_pass_a_drill_and_the_verdict_goes_on_the_backup() {
    let pg = small_cluster();
    let daemon = daemon_with_checks(
        &pg,
        r#"
[[smoke_check]]
name = "rows exist"
sql = "select count(*) > 0 from t"

[[smoke_check]]
name = "exactly 500"
sql = "select count(*) from t"
expect = 500

[[smoke_check]]
name = "first row"
sql = "select v from t where id = 1"
expect = "row 1"
"#,
    );
    let mut client = daemon.client().await;
    let b = backup_now(&mut client, Scope::Database).await;
    assert_eq!(show(&daemon, &b.id).await.drill, None, "never drilled");
    let before = databases(&pg);

    let r = drill(&daemon, &b.id).await;
    assert_eq!(r.status, RestoreStatus::Succeeded, "{:?}", r.failure);
    let names: Vec<(&str, bool)> = r
        .smoke_checks
        .iter()
        .map(|c| (c.name.as_str(), c.passed))
        .collect();
    assert_eq!(
        names,
        [
            ("rows exist", true),
            ("exactly 500", true),
            ("first row", true)
        ]
    );
    assert!(r.smoke_checks.iter().all(|c| c.message == "passed"));
    let detail = r.step("smoke_checks").unwrap().detail.clone().unwrap();
    assert!(detail.contains("3 of 3 operator checks passed"), "{detail}");

    // The evidence has them, the step's log names them, without the SQL.
    let ev = evidence(&daemon, &r).await;
    assert_eq!(ev.record.smoke_checks, r.smoke_checks);
    let log = &ev
        .logs
        .iter()
        .find(|l| l.step == "smoke_checks")
        .unwrap()
        .text;
    assert!(log.contains("smoke check \"exactly 500\": passed"), "{log}");
    assert!(!log.contains("count(*)"), "{log}");

    // The verdict is on the backup's record, and the drill measured its
    // restore time.
    let shown = show(&daemon, &b.id).await;
    let verdict = shown.drill.expect("a verdict");
    assert_eq!(verdict.result, DrillResult::Passed);
    assert_eq!(verdict.restore_id, r.restore_id);
    assert_eq!(verdict.failure, None);
    let took = (r.finished_at.unwrap() - r.started_at.unwrap()).whole_seconds() as u64;
    assert!(verdict.duration_seconds.abs_diff(took) <= 1, "{verdict:?}");
    let estimate = shown.expected_restore.expect("an expected restore time");
    assert_eq!(
        (estimate.backup_id, estimate.restore_id),
        (b.id.clone(), r.restore_id.clone())
    );
    // The list shows the verdict too.
    let listed = list(client.call(Operation::list_first_page()).await);
    assert_eq!(
        listed[0].drill.as_ref().map(|d| d.result),
        Some(DrillResult::Passed)
    );
    // `status`: the newest verified backup, and nothing flagged.
    let st = status(&mut client).await;
    assert_eq!(st.verified_backup.as_ref(), Some(&b.id));
    assert!(st.verified_age_seconds.is_some());
    assert!(!st.drill_failed && !st.drill_overdue);
    assert_eq!(st.last_drill_backup.as_ref(), Some(&b.id));
    assert_eq!(databases(&pg), before, "the scratch database is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_checks_fail_the_drill_in_safe_words_and_change_nothing() {
    let pg = small_cluster();
    let daemon = daemon_with_checks(
        &pg,
        r#"
smoke_check_timeout_seconds = 1

[[smoke_check]]
name = "fine"
sql = "select true"

[[smoke_check]]
name = "not sql"
sql = "selec nonsense frm t"

[[smoke_check]]
name = "two statements"
sql = "select true; select true"

[[smoke_check]]
name = "slow"
sql = "select pg_sleep(30) is not null"

[[smoke_check]]
name = "no row"
sql = "select true from t where false"

[[smoke_check]]
name = "several rows"
sql = "select true from t"

[[smoke_check]]
name = "a write"
sql = "delete from t returning true"

[[smoke_check]]
name = "read write"
sql = "set transaction read write"

[[smoke_check]]
name = "wrong value"
sql = "select count(*) from t"
expect = 7

[[smoke_check]]
name = "wrong kind"
sql = "select now()"
"#,
    );
    let mut client = daemon.client().await;
    let b = backup_now(&mut client, Scope::Database).await;
    let live = fingerprint(&pg, "app").unwrap();
    let before = databases(&pg);

    let r = drill(&daemon, &b.id).await;
    assert_eq!(r.status, RestoreStatus::Failed);
    assert_eq!(step(&r, "smoke_checks"), StepState::Failed);
    let got = |name: &str| {
        r.smoke_checks
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no result for {name}: {:?}", r.smoke_checks))
    };
    assert!(got("fine").passed);
    for (name, words) in [
        ("not sql", "is not valid SQL"),
        ("two statements", "is not valid SQL"),
        ("slow", "timed out after 1 s"),
        ("no row", "returned no row"),
        ("several rows", "more than one row"),
        ("a write", "tried to write"),
        ("read write", "cannot run inside a read-only transaction"),
        ("wrong value", "another value than the expected 7"),
        ("wrong kind", "must be a boolean, an integer or a text"),
    ] {
        let c = got(name);
        assert!(!c.passed, "{name} passed");
        assert!(c.message.contains(words), "{name}: {}", c.message);
        // Neither the SQL nor the server's own words reach a client.
        for leak in [
            "selec",
            "nonsense",
            "delete",
            "syntax error",
            "ERROR",
            "found 500",
        ] {
            assert!(!c.message.contains(leak), "{name}: {}", c.message);
        }
        assert_safe(&c.message);
    }
    let failure = r.failure.clone().unwrap();
    assert!(
        failure.reason.contains("smoke check \"not sql\" failed"),
        "{}",
        failure.reason
    );
    assert!(
        failure.reason.contains("8 more failed"),
        "{}",
        failure.reason
    );
    assert_safe(&failure.reason);
    let ev = evidence(&daemon, &r).await;
    let log = &ev
        .logs
        .iter()
        .find(|l| l.step == "smoke_checks")
        .unwrap()
        .text;
    assert!(
        !log.contains("nonsense") && !log.contains("syntax"),
        "{log}"
    );

    // Nothing changed: the live database, and no scratch database left.
    assert_eq!(fingerprint(&pg, "app").unwrap(), live);
    assert_eq!(databases(&pg), before);
    // The failed verdict is on the backup, and `status` flags it.
    let verdict = show(&daemon, &b.id).await.drill.unwrap();
    assert_eq!(verdict.result, DrillResult::Failed);
    assert!(verdict.failure.unwrap().reason.contains("smoke check"));
    let st = status(&mut client).await;
    assert!(st.drill_failed);
    assert_eq!(st.verified_backup, None);
    // The daemon's log has the details the client was not told.
    let logged = daemon.log();
    assert!(logged.contains("nonsense"), "the log keeps the SQL");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_check_stops_a_real_restore_before_the_swap() {
    let pg = small_cluster();
    let daemon = daemon_with_checks(
        &pg,
        r#"
[[smoke_check]]
name = "no rows"
sql = "select count(*) = 0 from t"
"#,
    );
    let mut client = daemon.client().await;
    let b = backup_now(&mut client, Scope::Database).await;
    // The live database moves on after the backup: a swap would show.
    pg.psql("app", "INSERT INTO t VALUES (501, 'after the backup')")
        .unwrap();
    let live = fingerprint(&pg, "app").unwrap();
    let before = databases(&pg);

    let r = restored(client.call(restore_op(&b.id, false, true)).await);
    assert_eq!(r.status, RestoreStatus::Failed);
    assert_eq!(step(&r, "smoke_checks"), StepState::Failed);
    assert_eq!(step(&r, "swap"), StepState::Pending);
    assert_eq!(r.rollback_database, None);
    assert_eq!(r.smoke_checks.len(), 1);
    assert!(!r.smoke_checks[0].passed);
    assert!(
        r.smoke_checks[0].message.contains("another value"),
        "{:?}",
        r.smoke_checks
    );
    let failure = r.failure.unwrap();
    assert!(failure.reason.contains("\"no rows\""), "{}", failure.reason);

    assert_eq!(fingerprint(&pg, "app").unwrap(), live, "the live database");
    assert_eq!(databases(&pg), before, "no scratch database left");
    let m = match client
        .call(Operation::MaintenanceStatus(ops::MaintenanceStatus {}))
        .await
    {
        Ok(Reply::Maintenance { maintenance }) => maintenance,
        other => panic!("{other:?}"),
    };
    assert!(!m.active, "maintenance is lifted");
    // A real restore is not a drill: the backup's verdict is untouched.
    assert_eq!(show(&daemon, &b.id).await.drill, None);
}

#[test]
fn bad_check_entries_stop_the_start_with_a_reason() {
    let dir = temp_dir("smoke-bad-");
    let config = dir.path().join("berkutd.toml");
    std::fs::write(
        &config,
        "[[smoke_check]]\nname = \"x\"\nsql = \"select 1\"\n\
         [[smoke_check]]\nname = \"x\"\nsql = \"select 2\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(berkut_testkit::workspace_bin("berkutd"))
        .env_clear()
        .env("BERKUT_DATABASE_URL", "postgresql:///app")
        .env("BERKUT_BACKUP_ENCRYPTION_KEY", "aa".repeat(32))
        .env("BERKUT_STATE_DIR", dir.path().join("state"))
        .arg("--config")
        .arg(&config)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("smoke_check in") && stderr.contains("used twice"),
        "{stderr}"
    );
    assert!(!stderr.contains("select 2"), "{stderr}");
    assert!(!dir.path().join("state").exists());
}
