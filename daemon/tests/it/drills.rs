//! Drills by policy, end to end: the daemon (in this process, on a clock
//! the test moves: no waiting for real time) takes a scheduled backup and
//! then drills it by itself, and the passing verdict shows on the record and
//! in `status`, the live database untouched. A drill server that cannot be
//! reached fails the drill with `unavailable`, flagged in `status`. A drill
//! killed with the daemon (kill -9) leaves no scratch database after the
//! restart, and the backup's verdict as it was.

use std::sync::Arc;

use berkut_daemon::clock::ManualClock;
use berkut_proto::manifest::{Origin, Scope};
use berkut_proto::wire::{
    ops, BackupStatus, Client, DrillResult, ErrorCode, Operation, RestoreStatus,
};
use berkut_testkit::{fingerprint, temp_dir, wait_for, PgCluster, LONG};
use time::macros::datetime;
use tokio_util::sync::CancellationToken;

use crate::helpers::*;

/// The real daemon as a library call, on `clock`, with the configuration
/// file `text`; stopped when the returned token is cancelled.
struct InProcess {
    dir: tempfile::TempDir,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl InProcess {
    async fn start(pg: &PgCluster, text: &str, clock: Arc<ManualClock>) -> InProcess {
        let dir = temp_dir("drills-");
        let file = dir.path().join("berkutd.toml");
        std::fs::write(&file, text).unwrap();
        let key = berkut_proto::archive::MasterKey::generate();
        let env: berkut_daemon::config::Env = [
            ("BERKUT_SOCKET", dir.path().join("berkutd.sock")),
            ("BERKUT_STATE_DIR", dir.path().join("state")),
            ("BERKUT_BACKUP_PATH", dir.path().join("backups")),
            (
                "BERKUT_BACKUP_PGDUMP_BIN",
                berkut_testkit::pg_bin_dir().join("pg_dump"),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.display().to_string()))
        .chain([
            ("BERKUT_DATABASE_URL".to_owned(), pg.url("app")),
            (
                "BERKUT_BACKUP_ENCRYPTION_KEY".to_owned(),
                key.to_base64().to_string(),
            ),
        ])
        .collect();
        let config = berkut_daemon::config::Config::load(Some(&file), &env, false).unwrap();
        let stop = CancellationToken::new();
        let task = tokio::spawn({
            let stop = stop.clone();
            async move {
                berkut_daemon::run_with_clock(config, stop, clock)
                    .await
                    .expect("the daemon runs");
            }
        });
        let socket = dir.path().join("berkutd.sock");
        berkut_testkit::wait_for_async("the daemon to listen", LONG, || {
            let socket = socket.clone();
            async move { Client::connect(&socket, "drills").await.ok().map(|_| ()) }
        })
        .await;
        InProcess { dir, stop, task }
    }

    async fn client(&self) -> Client {
        Client::connect(self.dir.path().join("berkutd.sock"), "drills")
            .await
            .unwrap()
    }

    async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_backup_is_drilled_by_the_policy_and_proven_in_status() {
    let pg = small_cluster();
    let clock = Arc::new(ManualClock::new(datetime!(2030-01-01 02:59:30 UTC)));
    let daemon = InProcess::start(
        &pg,
        r#"
[drill]
after_backup = true

[[smoke_check]]
name = "all rows"
sql = "select count(*) = 500 from t"
"#,
        Arc::clone(&clock),
    )
    .await;
    let mut client = daemon.client().await;
    let set = plan(
        client
            .call(Operation::PlanSet(ops::PlanSet {
                plan: spec(serde_json::json!({
                    "preset": "daily", "at": "03:00", "timezone": "UTC", "scope": "database"
                })),
            }))
            .await,
    );
    assert_eq!(set.next_run, Some(datetime!(2030-01-01 03:00 UTC)));
    let live = fingerprint(&pg, "app").unwrap();
    let before = databases(&pg);
    // Nothing proven yet: the metric is absent, not zero.
    assert_eq!(verified_age_metric(&mut client).await, None);

    // The slot comes: the scheduler looks at once (the clock moved).
    clock.set(datetime!(2030-01-01 03:00:05 UTC));
    let scheduled = berkut_testkit::wait_for_async("a scheduled backup", LONG, || async {
        let mut c = daemon.client().await;
        list(c.call(Operation::list_first_page()).await)
            .into_iter()
            .find(|r| r.origin == Origin::Scheduled && r.status == BackupStatus::Succeeded)
    })
    .await;
    assert_eq!(scheduled.created_at, datetime!(2030-01-01 03:00:05 UTC));

    // Then the policy drills it, with nothing more from the test.
    let verdict = berkut_testkit::wait_for_async("the drill's verdict", LONG, || async {
        let mut c = daemon.client().await;
        backup(
            c.call(Operation::BackupShow(ops::BackupShow {
                id: scheduled.id.clone(),
            }))
            .await,
        )
        .drill
    })
    .await;
    assert_eq!(verdict.result, DrillResult::Passed, "{verdict:?}");
    let drill = restored(
        client
            .call(Operation::RestoreStatus(ops::RestoreStatus {
                restore_id: verdict.restore_id.clone(),
                wait: true,
            }))
            .await,
    );
    assert!(drill.dry_run);
    assert_eq!(drill.status, RestoreStatus::Succeeded);
    assert_eq!(drill.backup_id, scheduled.id);
    assert!(drill.smoke_checks.iter().all(|c| c.passed) && drill.smoke_checks.len() == 1);
    // Its time is the injected clock's: no time passed during the drill.
    assert_eq!(verdict.duration_seconds, 0);
    assert_eq!(verdict.at, datetime!(2030-01-01 03:00:05 UTC));

    // `status`: the verified backup and its age on the daemon's clock.
    clock.set(datetime!(2030-01-01 04:00:05 UTC));
    let st = status(&mut client).await;
    assert_eq!(st.verified_backup.as_ref(), Some(&scheduled.id));
    assert_eq!(st.verified_age_seconds, Some(3600));
    // The metric says the same, from the same reading of the catalogue.
    assert_eq!(verified_age_metric(&mut client).await, Some(3600.0));
    assert!(!st.drill_failed && !st.drill_overdue);
    assert_eq!(
        st.last_drill.map(|d| d.restore_id),
        Some(verdict.restore_id.clone())
    );

    // Exactly one drill: the policy does not drill a backup twice.
    clock.set(datetime!(2030-01-01 04:10:05 UTC));
    let st = status(&mut client).await;
    assert_eq!(st.running + st.queued, 0, "{st:?}");

    // The drill never touched the live database, and left no database.
    assert_eq!(fingerprint(&pg, "app").unwrap(), live);
    assert_eq!(databases(&pg), before);
    drop(client);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_drill_server_fails_the_drill_as_unavailable() {
    let pg = small_cluster();
    // A port nothing listens on.
    let gone = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let daemon = daemon_for(&pg)
        .env(
            "BERKUT_DRILL_DATABASE_URL",
            format!("postgresql://postgres@127.0.0.1:{gone}/app"),
        )
        .start();
    let mut client = daemon.client().await;
    let b = backup_now(&mut client, Scope::Database).await;
    let live = fingerprint(&pg, "app").unwrap();
    let before = databases(&pg);

    let r = restored(client.call(restore_op(&b.id, true, true)).await);
    assert_eq!(r.status, RestoreStatus::Failed);
    assert_eq!(r.failure.as_ref().unwrap().code, ErrorCode::Unavailable);
    assert_safe(&r.failure.as_ref().unwrap().reason);

    let shown = backup(
        client
            .call(Operation::BackupShow(ops::BackupShow { id: b.id.clone() }))
            .await,
    );
    let verdict = shown.drill.unwrap();
    assert_eq!(verdict.result, DrillResult::Failed);
    assert_eq!(verdict.failure.unwrap().code, ErrorCode::Unavailable);
    let st = status(&mut client).await;
    assert!(st.drill_failed, "{st:?}");
    assert_eq!(st.verified_backup, None);
    assert_eq!(st.last_drill_backup.as_ref(), Some(&b.id));

    assert_eq!(fingerprint(&pg, "app").unwrap(), live);
    assert_eq!(databases(&pg), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drill_killed_with_the_daemon_leaves_no_scratch_database_nor_a_verdict() {
    let pg = small_cluster();
    let (_bin, gate, builder) = daemon_with_gated_restores(&pg);
    let mut daemon = builder.start();
    let mut client = daemon.client().await;
    let b = backup_now(&mut client, Scope::Database).await;
    let before = databases(&pg);
    let live = fingerprint(&pg, "app").unwrap();

    let r = restored(client.call(restore_op(&b.id, true, false)).await);
    wait_for_step(&daemon, &r.restore_id, "pre_data").await;
    assert!(
        databases(&pg).contains(&r.scratch_database),
        "the scratch database exists mid-drill"
    );
    drop(client);
    daemon.kill();
    gate.open_forever();
    daemon.restart();

    // Requests are served once start-up recovery is done.
    let mut client = daemon.client().await;
    let after = restore_status(&daemon, &r.restore_id).await;
    assert_eq!(after.status, RestoreStatus::Interrupted);
    assert_eq!(databases(&pg), before, "no scratch database after restart");
    let shown = backup(
        client
            .call(Operation::BackupShow(ops::BackupShow { id: b.id.clone() }))
            .await,
    );
    assert_eq!(shown.drill, None, "the verdict stays as it was");
    assert_eq!(fingerprint(&pg, "app").unwrap(), live);
}

/// The evidence directories of a daemon's restores, sorted.
fn evidence_dirs(daemon: &berkut_testkit::Daemon) -> Vec<std::path::PathBuf> {
    let mut dirs: Vec<_> = std::fs::read_dir(daemon.state_dir.join("restores"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    dirs
}

/// `sha256sum -c DIGEST` in `dir`: the auditor's own check.
fn sha256sum_check(dir: &std::path::Path) -> std::process::Output {
    std::process::Command::new("sha256sum")
        .args(["-c", "--strict", "DIGEST"])
        .current_dir(dir)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evidence_is_digested_and_pruned_to_the_newest_drills() {
    let pg = small_cluster();
    let daemon = daemon_for(&pg)
        .env("BERKUT_EVIDENCE_KEEP_DRILLS", "1")
        .start();
    let mut client = daemon.client().await;
    let b = backup_now(&mut client, Scope::Database).await;
    let mut drills = Vec::new();
    for _ in 0..3 {
        let r = restored(client.call(restore_op(&b.id, true, true)).await);
        assert_eq!(r.status, RestoreStatus::Succeeded);
        drills.push(r.restore_id);
    }
    let dirs = evidence_dirs(&daemon);
    assert_eq!(dirs.len(), 3);
    for dir in &dirs {
        let digest = std::fs::read_to_string(dir.join("DIGEST")).unwrap();
        assert!(digest.contains("  summary.json\n"), "{digest}");
        assert!(digest.contains("  logs/00-verify.log\n"), "{digest}");
        let out = sha256sum_check(dir);
        assert!(out.status.success(), "{out:?}");
    }
    // A log changed after the fact no longer matches.
    let forged = dirs[0].join("logs/00-verify.log");
    std::fs::write(&forged, "all fine, trust me\n").unwrap();
    let out = sha256sum_check(&dirs[0]);
    assert!(!out.status.success(), "{out:?}");

    // The next backup runs retention, which prunes: one drill of the
    // backup is kept, the newest (which is also its newest pass).
    // Retention runs once the backup has ended, after its reply.
    backup_now(&mut client, Scope::Database).await;
    let kept = [daemon.state_dir.join("restores").join(drills[2].as_str())];
    let left = wait_for("retention prunes the evidence", LONG, || {
        let left = evidence_dirs(&daemon);
        (left.len() <= kept.len()).then_some(left)
    });
    assert_eq!(left, kept);
    let st = status(&mut client).await;
    assert_eq!(st.verified_backup.as_ref(), Some(&b.id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drill_run_starts_one_drill_at_a_time() {
    let pg = small_cluster();
    let (_bin, gate, builder) = daemon_with_gated_restores(&pg);
    let daemon = builder.start();
    let mut client = daemon.client().await;
    let b = backup_now(&mut client, Scope::Database).await;
    let first = restored(
        client
            .call(Operation::DrillRun(ops::DrillRun {
                backup_id: None,
                wait: false,
            }))
            .await,
    );
    assert_eq!(first.backup_id, b.id);
    assert!(first.dry_run);
    let second = server_error(
        client
            .call(Operation::DrillRun(ops::DrillRun {
                backup_id: Some(b.id.clone()),
                wait: false,
            }))
            .await,
    );
    assert_eq!(second.code, ErrorCode::Conflict);
    gate.open_forever();
    let done = restore_outcome(&mut client, first.restore_id.clone()).await;
    assert_eq!(done.status, RestoreStatus::Succeeded);
    let shown = backup(
        client
            .call(Operation::BackupShow(ops::BackupShow { id: b.id.clone() }))
            .await,
    );
    assert_eq!(shown.drill.unwrap().restore_id, first.restore_id);
}

/// `berkut_verified_backup_age_seconds` from the `metrics` operation.
async fn verified_age_metric(client: &mut Client) -> Option<f64> {
    let Ok(berkut_proto::wire::Reply::Metrics { text }) =
        client.call(Operation::Metrics(ops::Metrics {})).await
    else {
        panic!("no metrics")
    };
    text.lines().find_map(|l| {
        l.strip_prefix("berkut_verified_backup_age_seconds ")
            .map(|v| v.parse().unwrap())
    })
}

/// The real-restore rule of evidence pruning, end to end on the injected
/// clock: a real restore's evidence is kept `evidence_keep_restore_days`
/// after it ended, then pruned by retention; one whose old database is still
/// kept for rollback is kept whatever its age.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_restore_evidence_is_pruned_by_age_unless_its_rollback_is_kept() {
    let pg = small_cluster();
    let clock = Arc::new(ManualClock::new(datetime!(2030-03-01 10:00 UTC)));
    let daemon =
        InProcess::start(&pg, "evidence_keep_restore_days = 1\n", Arc::clone(&clock)).await;
    let restores = daemon.dir.path().join("state").join("restores");
    let mut client = daemon.client().await;
    let b = backup_now(&mut client, Scope::Database).await;

    // Two real restores; the first's old database is dropped at once
    // (`restore cleanup`), the second's is kept for rollback.
    let cleaned = restored(client.call(restore_op(&b.id, false, true)).await);
    assert_eq!(cleaned.status, RestoreStatus::Succeeded, "{cleaned:?}");
    let after_cleanup = restored(
        client
            .call(Operation::RestoreCleanup(ops::RestoreCleanup {
                restore_id: cleaned.restore_id.clone(),
            }))
            .await,
    );
    assert_eq!(after_cleanup.rollback_database, None);
    clock.set(datetime!(2030-03-01 11:00 UTC));
    let kept = restored(client.call(restore_op(&b.id, false, true)).await);
    assert_eq!(kept.status, RestoreStatus::Succeeded, "{kept:?}");
    assert!(kept.rollback_database.is_some(), "{kept:?}");
    let dir = |id: &berkut_proto::ids::RestoreId| restores.join(id.as_str());

    // Retention runs when a backup ends (before its end is published):
    // within the day, both are kept.
    clock.set(datetime!(2030-03-02 09:00 UTC));
    backup_now(&mut client, Scope::Database).await;
    assert!(dir(&cleaned.restore_id).exists());
    assert!(dir(&kept.restore_id).exists());

    // Past the day: the cleaned-up restore's evidence goes, the one with
    // its old database still kept stays.
    clock.set(datetime!(2030-03-03 12:00 UTC));
    backup_now(&mut client, Scope::Database).await;
    wait_for("retention prunes the old restore's evidence", LONG, || {
        (!dir(&cleaned.restore_id).exists()).then_some(())
    });
    assert!(dir(&kept.restore_id).join("DIGEST").exists());
    let err = server_error(
        client
            .call(Operation::RestoreEvidence(ops::RestoreEvidence {
                restore_id: cleaned.restore_id.clone(),
            }))
            .await,
    );
    assert_eq!(err.code, ErrorCode::NotFound);

    // Once its old database is dropped too, it is pruned like the other.
    client
        .call(Operation::RestoreCleanup(ops::RestoreCleanup {
            restore_id: kept.restore_id.clone(),
        }))
        .await
        .unwrap();
    backup_now(&mut client, Scope::Database).await;
    wait_for(
        "retention prunes the second restore's evidence",
        LONG,
        || (!dir(&kept.restore_id).exists()).then_some(()),
    );
    drop(client);
    daemon.stop().await;
}
