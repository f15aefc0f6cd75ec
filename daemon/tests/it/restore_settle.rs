//! Restores beside everything else: a real restore's swap waits for a
//! running backup and ends only the application's sessions; a daemon killed
//! while the swap's second rename waits on a lock, then a rollback, leaves
//! the live database accepting connections, and so does a rollback cut
//! short by a crash, once the next start settles it; a scratch database the server's
//! stop left behind is removed by cleanup and at start-up; rollback and
//! cleanup sent together run one after the other, and cleanup leaves no
//! file root aside.

use std::io::Write;
use std::process::{Child, Command, Stdio};

use berkut_proto::ids::RestoreId;
use berkut_proto::manifest::Scope;
use berkut_proto::wire::{ops, BackupStatus, ErrorCode, Operation, Reply, RestoreStatus};
use berkut_testkit::{wait_for, workspace_bin, Gate, PgCluster};

use crate::helpers::*;

/// Lets one gated tool through, without blocking the runtime.
async fn open_gate(gate: &Gate) {
    let g = gate.clone();
    tokio::task::spawn_blocking(move || g.open_once())
        .await
        .unwrap();
}

fn count(pg: &PgCluster, sql: &str) -> u64 {
    pg.psql("postgres", sql).unwrap().parse().unwrap()
}

fn allows_connections(pg: &PgCluster, db: &str) -> String {
    pg.psql(
        "postgres",
        &format!("SELECT datallowconn FROM pg_database WHERE datname = '{db}'"),
    )
    .unwrap()
}

/// An application's session on `app`, busy in a long query.
fn app_session(pg: &PgCluster) -> Child {
    let child = pg
        .command("psql")
        .env("PGAPPNAME", "the-application")
        .args(["-X", "-q", "-d", "app", "-c", "SELECT pg_sleep(600)"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the application's session", LONG, || {
        (count(pg, "SELECT count(*) FROM pg_stat_activity WHERE datname = 'app' AND application_name = 'the-application' AND state = 'active'") == 1).then_some(())
    });
    child
}

/// A session holding `database`'s row of pg_database `FOR UPDATE` in an
/// open transaction: any rename of that database waits for it.
struct RowLock {
    psql: Child,
}

impl RowLock {
    fn take(pg: &PgCluster, database: &str) -> RowLock {
        let mut psql = pg
            .command("psql")
            .env("PGAPPNAME", "berkut-test-locker")
            .args(["-X", "-q", "-d", "postgres"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = psql.stdin.as_mut().unwrap();
        writeln!(stdin, "BEGIN;").unwrap();
        writeln!(
            stdin,
            "SELECT 1 FROM pg_database WHERE datname = '{database}' FOR UPDATE;"
        )
        .unwrap();
        stdin.flush().unwrap();
        wait_for("the row lock", LONG, || {
            (count(pg, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'berkut-test-locker' AND state = 'idle in transaction' AND query LIKE '%FOR UPDATE%'") == 1).then_some(())
        });
        RowLock { psql }
    }

    fn release(mut self) {
        let mut stdin = self.psql.stdin.take().unwrap();
        writeln!(stdin, "ROLLBACK;").unwrap();
        drop(stdin);
        wait_for("the locking session to end", LONG, || {
            self.psql.try_wait().ok().flatten()
        });
    }
}

/// Waits until a session's statement starting with `command` waits for a
/// lock.
fn wait_for_blocked(pg: &PgCluster, command: &str) {
    wait_for(&format!("{command} waiting on a lock"), LONG, || {
        (count(pg, &format!("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '{command}%'")) == 1).then_some(())
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_restore_waits_for_a_running_backup_and_ends_only_the_application() {
    let pg = small_cluster();
    let bin = berkut_testkit::temp_dir("fake-");
    let gate = Gate::new(bin.path(), "gate");
    let daemon = daemon_for(&pg)
        .max_parallel(2)
        .pg_dump(&gate.gated_pg_dump(bin.path(), "pg_dump"))
        .start();
    let mut client = daemon.client().await;
    let first = backup(
        client
            .call(create_op("first", Scope::Database, false))
            .await,
    );
    open_gate(&gate).await;
    let first = backup(
        client
            .call(Operation::JobAttach(ops::JobAttach {
                id: first.id.clone(),
            }))
            .await,
    );
    assert_eq!(first.status, BackupStatus::Succeeded, "{first:?}");
    pg.psql("app", "DELETE FROM t WHERE id > 100").unwrap();

    // The safety backup taken just before the restore is running: its
    // snapshot is open on `app`, its pg_dump waits at the gate.
    let safety = backup(
        client
            .call(create_op("safety", Scope::Database, false))
            .await,
    );
    wait_for("the safety backup's snapshot", LONG, || {
        (count(&pg, "SELECT count(*) FROM pg_stat_activity WHERE datname = 'app' AND application_name = 'berkutd' AND state = 'idle in transaction'") == 1).then_some(())
    });
    let mut application = app_session(&pg);

    let started = restored(client.call(restore_op(&first.id, false, false)).await);
    wait_for_step(&daemon, &started.restore_id, "swap").await;
    let deadline = tokio::time::Instant::now() + LONG;
    loop {
        let r = restore_status(&daemon, &started.restore_id).await;
        let detail = r.step("swap").unwrap().detail.clone().unwrap_or_default();
        if detail.contains("waiting for running backups") {
            assert!(detail.ends_with(": 1 backup, 0 drills running"), "{detail}");
            break;
        }
        assert!(!r.status.is_finished(), "the restore did not wait: {r:#?}");
        assert!(tokio::time::Instant::now() < deadline, "{detail}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        databases(&pg).iter().all(|d| !d.contains("berkut_old")),
        "the live database was renamed while a backup ran"
    );
    assert!(application.try_wait().unwrap().is_none());

    open_gate(&gate).await;
    let done = restore_outcome(&mut client, started.restore_id.clone()).await;
    assert_eq!(done.status, RestoreStatus::Succeeded, "{done:#?}");
    let safety = backup(
        client
            .call(Operation::BackupShow(ops::BackupShow {
                id: safety.id.clone(),
            }))
            .await,
    );
    assert_eq!(safety.status, BackupStatus::Succeeded, "{safety:?}");
    assert_eq!(pg.psql("app", "SELECT count(*) FROM t").unwrap(), "500");
    let ended = wait_for("the application's session to end", LONG, || {
        application.try_wait().ok().flatten()
    });
    assert!(!ended.success(), "the application's session was ended");

    // The safety backup holds the state just before the restore.
    let drill = restored(client.call(restore_op(&safety.id, true, true)).await);
    assert_eq!(drill.status, RestoreStatus::Succeeded, "{drill:#?}");
    let Ok(Reply::Evidence { evidence }) = client
        .call(Operation::RestoreEvidence(ops::RestoreEvidence {
            restore_id: drill.restore_id.clone(),
        }))
        .await
    else {
        panic!("no evidence")
    };
    let t = evidence.counts.iter().find(|c| c.table == "t").unwrap();
    assert_eq!((t.expected, t.found), (Some(100), Some(100)), "{t:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_in_the_middle_of_the_swap_then_rollback_leaves_the_live_database_open() {
    let pg = small_cluster();
    let (_bin, gate, daemon) = daemon_with_gated_restores(&pg);
    let mut daemon = daemon.start();
    let mut client = daemon.client().await;
    let backup = backup_now(&mut client, Scope::Database).await;
    pg.psql("app", "DELETE FROM t WHERE id > 100").unwrap();

    let started = restored(client.call(restore_op(&backup.id, false, false)).await);
    let id = started.restore_id.clone();
    wait_for_step(&daemon, &id, "pre_data").await;
    let lock = RowLock::take(&pg, &started.scratch_database);
    gate.open_forever();
    // The live database is renamed aside; giving the scratch one its name
    // waits for the lock.
    wait_for_blocked(&pg, "ALTER DATABASE");
    daemon.kill();
    lock.release();
    wait_for("the blocked rename to finish", LONG, || {
        (count(
            &pg,
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'ALTER DATABASE%'",
        ) == 0)
            .then_some(())
    });

    daemon.restart();
    ctl(&daemon, &["maintenance", "clear"]).ok();
    ctl(&daemon, &["restore", "rollback", id.as_str()]).ok();
    assert_eq!(allows_connections(&pg, "app"), "t");
    assert_eq!(pg.psql("app", "SELECT count(*) FROM t").unwrap(), "100");
    ctl(&daemon, &["restore", "cleanup", id.as_str()]).ok();
    assert_eq!(
        databases(&pg)
            .iter()
            .filter(|d| d.contains("berkut"))
            .count(),
        0,
        "{:?}",
        databases(&pg)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scratch_database_left_by_a_stopped_server_is_removed() {
    let pg = small_cluster();
    let (_bin, gate, daemon) = daemon_with_gated_restores(&pg);
    let mut daemon = daemon.start();
    let backup = backup_now(&mut daemon.client().await, Scope::Database).await;
    let before = databases(&pg);

    // `restore cleanup` removes it, and says it did.
    let id = leave_scratch(&pg, &daemon, &gate, &backup.id).await;
    ctl(&daemon, &["restore", "cleanup", id.as_str()]).ok();
    assert_eq!(databases(&pg), before);

    // So does the next start.
    let id = leave_scratch(&pg, &daemon, &gate, &backup.id).await;
    daemon.stop();
    daemon.restart();
    let _ = daemon.client().await;
    wait_for("start-up to drop the scratch database", LONG, || {
        (databases(&pg) == before).then_some(())
    });
    assert_eq!(
        restore_status(&daemon, &id).await.status,
        RestoreStatus::Failed,
        "the restore's outcome stays what it was"
    );
}

/// The server stops while a restore fills its scratch database; the restore
/// fails and cannot drop it. The server comes back.
async fn leave_scratch(
    pg: &PgCluster,
    daemon: &berkut_testkit::Daemon,
    gate: &Gate,
    backup: &berkut_proto::ids::BackupId,
) -> RestoreId {
    let mut client = daemon.client().await;
    let started = restored(client.call(restore_op(backup, false, false)).await);
    wait_for_step(daemon, &started.restore_id, "pre_data").await;
    pg.stop().unwrap();
    open_gate(gate).await;
    let r = restore_outcome(&mut client, started.restore_id.clone()).await;
    assert_eq!(r.status, RestoreStatus::Failed, "{r:#?}");
    pg.start_again().unwrap();
    assert!(databases(pg).contains(&started.scratch_database));
    started.restore_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_and_cleanup_sent_together_run_one_after_the_other() {
    let pg = small_cluster();
    let roots = berkut_testkit::temp_dir("roots-");
    let uploads = roots.path().join("uploads");
    std::fs::create_dir_all(&uploads).unwrap();
    std::fs::write(uploads.join("a.txt"), "v1").unwrap();
    let daemon = daemon_for(&pg)
        .env("BERKUT_BACKUP_FILE_ROOTS", uploads.display().to_string())
        .start();
    let mut client = daemon.client().await;
    let backup = backup_with_files_now(&mut client).await;
    pg.psql("app", "DELETE FROM t WHERE id > 100").unwrap();
    std::fs::write(uploads.join("a.txt"), "v2").unwrap();
    let record = restored(client.call(restore_op(&backup.id, false, true)).await);
    assert_eq!(record.status, RestoreStatus::Succeeded, "{record:#?}");
    let id = record.restore_id.clone();

    // The cleanup stops at dropping the old database; the rollback arrives
    // meanwhile and must wait for it rather than race it.
    let kept = record.rollback_database.clone().unwrap();
    let lock = RowLock::take(&pg, &kept);
    let mut cleanup_client = daemon.client().await;
    let rid = id.clone();
    let cleanup = tokio::spawn(async move {
        cleanup_client
            .call(Operation::RestoreCleanup(ops::RestoreCleanup {
                restore_id: rid,
            }))
            .await
    });
    wait_for_blocked(&pg, "DROP DATABASE");
    let mut rollback_client = daemon.client().await;
    let rid = id.clone();
    let rollback = tokio::spawn(async move {
        rollback_client
            .call(Operation::RestoreRollback(ops::RestoreRollback {
                restore_id: rid,
            }))
            .await
    });
    wait_for("the rollback to wait for the cleanup", LONG, || {
        daemon
            .log()
            .contains("waiting for another rollback or cleanup to finish")
            .then_some(())
    });
    lock.release();
    let cleaned = restored(cleanup.await.unwrap());
    assert_eq!(cleaned.rollback_database, None);
    let refused = server_error(rollback.await.unwrap());
    assert_eq!(refused.code, ErrorCode::Invalid, "{refused:?}");
    assert!(refused.message.contains("cleaned up"), "{refused:?}");

    // The restored database stays live and open; nothing is left aside.
    assert_eq!(pg.psql("app", "SELECT count(*) FROM t").unwrap(), "500");
    assert_eq!(allows_connections(&pg, "app"), "t");
    assert_eq!(
        std::fs::read_to_string(uploads.join("a.txt")).unwrap(),
        "v1"
    );
    assert!(
        databases(&pg).iter().all(|d| !d.contains("berkut")),
        "{:?}",
        databases(&pg)
    );
    let mut siblings: Vec<String> = std::fs::read_dir(roots.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    siblings.sort();
    assert_eq!(siblings, ["uploads"], "cleanup leaves no file root aside");
    assert!(matches!(
        client.call(Operation::MaintenanceStatus(ops::MaintenanceStatus {})).await,
        Ok(Reply::Maintenance { maintenance }) if !maintenance.active
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_cut_short_by_a_crash_is_settled_at_start() {
    // The crash comes while the rollback's second rename waits on a lock;
    // then that rename either completes (the lock is released) or never
    // happens (its session is ended).
    for completes in [true, false] {
        let pg = small_cluster();
        let mut daemon = daemon_for(&pg).start();
        let mut client = daemon.client().await;
        let backup = backup_now(&mut client, Scope::Database).await;
        pg.psql("app", "DELETE FROM t WHERE id > 100").unwrap();
        let record = restored(client.call(restore_op(&backup.id, false, true)).await);
        assert_eq!(record.status, RestoreStatus::Succeeded, "{record:#?}");
        let id = record.restore_id.clone();
        let kept = record.rollback_database.clone().unwrap();

        let lock = RowLock::take(&pg, &kept);
        let socket = daemon.socket.clone();
        let rid = id.clone();
        let rollback = std::thread::spawn(move || {
            Command::new(workspace_bin("berkutctl"))
                .args(["restore", "rollback", rid.as_str()])
                .env("BERKUT_SOCKET", socket)
                .output()
                .unwrap()
        });
        wait_for_blocked(&pg, "ALTER DATABASE");
        daemon.kill();
        if !completes {
            pg.psql("postgres", "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'ALTER DATABASE%'").unwrap();
        }
        lock.release();
        wait_for("the blocked rename to end", LONG, || {
            (count(
                &pg,
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'ALTER DATABASE%'",
            ) == 0)
                .then_some(())
        });
        assert_ne!(rollback.join().unwrap().status.code(), Some(0));

        daemon.restart();
        let mut client = daemon.client().await;
        assert!(matches!(
            client.call(Operation::MaintenanceStatus(ops::MaintenanceStatus {})).await,
            Ok(Reply::Maintenance { maintenance }) if !maintenance.active
        ));
        assert_eq!(
            allows_connections(&pg, "app"),
            "t",
            "completes: {completes}"
        );
        let rows = pg.psql("app", "SELECT count(*) FROM t").unwrap();
        let run = ctl(&daemon, &["restore", "rollback", id.as_str()]);
        let (code, out) = (run.code, run.text());
        if completes {
            assert_eq!(rows, "100", "the rollback had completed");
            assert_ne!(code, 0, "rolled back twice: {out}");
            assert!(out.contains("already rolled back"), "{out}");
        } else {
            assert_eq!(rows, "500", "the restored database is live again");
            assert_eq!(code, 0, "{out}");
            assert_eq!(pg.psql("app", "SELECT count(*) FROM t").unwrap(), "100");
            assert_eq!(allows_connections(&pg, "app"), "t");
        }
        ctl(&daemon, &["restore", "cleanup", id.as_str()]).ok();
        assert!(
            databases(&pg).iter().all(|d| !d.contains("berkut")),
            "{:?}",
            databases(&pg)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_session_of_the_daemon_is_never_ended_and_a_failed_swap_stays_undone() {
    let pg = small_cluster();
    let mut daemon = daemon_for(&pg).start();
    let mut client = daemon.client().await;
    let backup = backup_now(&mut client, Scope::Database).await;
    pg.psql("app", "DELETE FROM t WHERE id > 100").unwrap();
    // A busy session under the daemon's own application_name (as a
    // backup's pg_dump has): the swap spares it, so it cannot rename.
    let mut busy = pg
        .command("psql")
        .env("PGAPPNAME", "berkutd")
        .args(["-X", "-q", "-d", "app", "-c", "SELECT pg_sleep(600)"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the busy session", LONG, || {
        (count(&pg, "SELECT count(*) FROM pg_stat_activity WHERE datname = 'app' AND application_name = 'berkutd' AND state = 'active'") == 1).then_some(())
    });
    let record = restored(client.call(restore_op(&backup.id, false, true)).await);
    assert_eq!(record.status, RestoreStatus::Failed, "{record:#?}");
    assert_eq!(
        record.step("swap").unwrap().state,
        berkut_proto::wire::StepState::Failed
    );
    assert!(busy.try_wait().unwrap().is_none(), "the session was ended");
    busy.kill().unwrap();
    busy.wait().unwrap();
    assert_eq!(allows_connections(&pg, "app"), "t");
    assert_eq!(pg.psql("app", "SELECT count(*) FROM t").unwrap(), "100");
    assert!(databases(&pg).iter().all(|d| !d.contains("berkut")));

    // At the next start the restore is still one that never swapped.
    daemon.stop();
    daemon.restart();
    let run = ctl(
        &daemon,
        &["restore", "rollback", record.restore_id.as_str()],
    );
    let out = run.text();
    assert_ne!(run.code, 0, "{out}");
    assert!(out.contains("never replaced the live database"), "{out}");
    assert_eq!(pg.psql("app", "SELECT count(*) FROM t").unwrap(), "100");
    assert_eq!(allows_connections(&pg, "app"), "t");
}
