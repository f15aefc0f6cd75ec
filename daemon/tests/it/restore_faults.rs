//! Restores under faults: maintenance while a real restore runs, archives
//! that do not verify, pg_restore failing halfway, sessions on the live
//! database, a daemon killed mid-restore, a full disk, and a restore with
//! globals into a fresh cluster.

use berkut_proto::manifest::Scope;
use berkut_proto::wire::{
    ops, ErrorCode, Operation, Reply, RestoreStatus, ServerMessage, StepState,
};
use berkut_testkit::{fake_tool, fingerprint, PgCluster};

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_restore_holds_maintenance_and_refuses_ordinary_operations() {
    let pg = small_cluster();
    let (_bin, gate, daemon) = daemon_with_gated_restores(&pg);
    let daemon = daemon.start();
    let mut client = daemon.client().await;
    let backup = backup_now(&mut client, Scope::Database).await;

    // The main application watches maintenance on its own connection.
    let mut watcher = daemon.client().await;
    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let watch = tokio::spawn(async move {
        let _ = watcher
            .call_streaming(Operation::MaintenanceWatch(ops::MaintenanceWatch {}), |m| {
                if let ServerMessage::Event { maintenance, .. } = m {
                    let _ = events_tx.send(maintenance.active);
                }
            })
            .await;
    });
    assert_eq!(events.recv().await, Some(false));

    let started = restored(client.call(restore_op(&backup.id, false, false)).await);
    wait_for_step(&daemon, &started.restore_id, "pre_data").await;
    assert_eq!(events.recv().await, Some(true));
    let flag = daemon.socket.parent().unwrap().join("maintenance");
    assert!(flag.exists(), "the flag file is there during maintenance");
    for op in [
        Operation::list_first_page(),
        create_op("during", Scope::Schema, false),
        Operation::PlanShow(ops::PlanShow {}),
        Operation::BackupDelete(ops::BackupDelete {
            id: backup.id.clone(),
        }),
    ] {
        let err = server_error(client.call(op.clone()).await);
        assert_eq!(err.code, ErrorCode::Maintenance, "{op:?}: {err:?}");
    }
    assert!(matches!(
        client.call(Operation::Status(ops::Status {})).await,
        Ok(Reply::Status { .. })
    ));
    let Ok(Reply::Maintenance { maintenance }) = client
        .call(Operation::MaintenanceStatus(ops::MaintenanceStatus {}))
        .await
    else {
        panic!()
    };
    assert_eq!(maintenance.restore_id, Some(started.restore_id.clone()));
    // A second real restore is a conflict (refused by maintenance first,
    // which is the same answer to the client: not now).
    assert!(client
        .call(restore_op(&backup.id, false, false))
        .await
        .is_err());

    gate.open_forever();
    let done = restore_outcome(&mut client, started.restore_id.clone()).await;
    assert_eq!(done.status, RestoreStatus::Succeeded, "{done:#?}");
    assert_eq!(events.recv().await, Some(false));
    assert!(
        !flag.exists(),
        "the flag file is removed when maintenance ends"
    );
    assert!(matches!(
        client.call(Operation::list_first_page()).await,
        Ok(Reply::Backups { .. })
    ));
    watch.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_archive_is_refused_before_anything_is_touched() {
    let pg = small_cluster();
    let daemon = daemon_for(&pg).start();
    let mut client = daemon.client().await;
    let backup = backup_now(&mut client, Scope::Database).await;
    let path = daemon.archive_path(backup.id.as_str());
    let original = std::fs::read(&path).unwrap();
    let before = fingerprint(&pg, "app").unwrap();
    let dbs = databases(&pg);
    let mut flipped = original.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 1;
    for (what, bytes) in [
        ("a flipped byte", flipped),
        ("a truncation", original[..original.len() - 100].to_vec()),
    ] {
        std::fs::write(&path, &bytes).unwrap();
        let record = restored(client.call(restore_op(&backup.id, false, true)).await);
        assert_eq!(record.status, RestoreStatus::Failed, "{what}");
        assert_eq!(
            record.step("verify").unwrap().state,
            StepState::Failed,
            "{what}"
        );
        let reason = record.failure.unwrap().reason;
        assert!(
            reason.contains("does not verify") || reason.contains("differs"),
            "{what}: {reason}"
        );
        assert_safe(&reason);
        // Verification and decryption are one pass over the archive; no step
        // after them may have started.
        assert!(
            record
                .steps
                .iter()
                .skip(2)
                .all(|s| s.state == StepState::Pending),
            "{what}: later steps ran"
        );
    }
    assert!(
        !daemon.state_dir.join("maintenance.json").exists(),
        "maintenance was never turned on"
    );
    assert_eq!(databases(&pg), dbs);
    assert_eq!(
        fingerprint(&pg, "app").unwrap().differences(&before),
        Vec::<String>::new()
    );
    assert!(tmp_dir_is_empty(&daemon));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_under_another_key_is_refused() {
    let pg = small_cluster();
    let mut daemon = daemon_for(&pg).start();
    let mut client = daemon.client().await;
    let backup = backup_now(&mut client, Scope::Database).await;
    daemon.stop();
    // The same store under a daemon with another key: the archive is no
    // longer listed (it cannot be verified), so its restore is not found.
    let dir = berkut_testkit::temp_dir("other-");
    let other = daemon_for(&pg)
        .env(
            "BERKUT_STATE_DIR",
            dir.path().join("state").display().to_string(),
        )
        .env(
            "BERKUT_BACKUP_PATH",
            daemon.backup_dir.display().to_string(),
        )
        .start();
    let mut client = other.client().await;
    let err = server_error(client.call(restore_op(&backup.id, true, true)).await);
    assert_eq!(err.code, ErrorCode::NotFound, "{err:?}");
    assert!(other.log().contains("does not verify"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_restore_failing_halfway_leaves_the_live_database_untouched() {
    let pg = small_cluster();
    let bin = berkut_testkit::temp_dir("fake-");
    let real = berkut_testkit::pg_bin_dir().join("pg_restore");
    let failing = fake_tool(bin.path(), "pg_restore", &format!("case \"$*\" in *--list*) ;; *) echo 'pg_restore: error: could not write to /var/lib/x: boom' >&2; exit 1 ;; esac\nexec '{}' \"$@\"", real.display()));
    let daemon = daemon_for(&pg).pg_restore(&failing).start();
    let mut client = daemon.client().await;
    let backup = backup_now(&mut client, Scope::Database).await;
    pg.psql("app", "DELETE FROM t WHERE id > 250").unwrap();
    let before = fingerprint(&pg, "app").unwrap();
    let dbs = databases(&pg);
    let record = restored(client.call(restore_op(&backup.id, false, true)).await);
    assert_eq!(record.status, RestoreStatus::Failed);
    assert_eq!(record.step("pre_data").unwrap().state, StepState::Failed);
    assert_eq!(record.step("swap").unwrap().state, StepState::Pending);
    let reason = record.failure.unwrap().reason;
    assert!(reason.contains("pg_restore failed"), "{reason}");
    assert_safe(&reason);
    assert_eq!(
        fingerprint(&pg, "app").unwrap().differences(&before),
        Vec::<String>::new()
    );
    assert_eq!(databases(&pg), dbs, "the scratch database was not removed");
    let Ok(Reply::Maintenance { maintenance }) = client
        .call(Operation::MaintenanceStatus(ops::MaintenanceStatus {}))
        .await
    else {
        panic!()
    };
    assert!(!maintenance.active);
    assert!(tmp_dir_is_empty(&daemon));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_on_the_live_database_are_ended_at_the_swap() {
    let pg = small_cluster();
    let daemon = daemon_for(&pg).start();
    let mut client = daemon.client().await;
    let backup = backup_now(&mut client, Scope::Database).await;
    let mut session = pg
        .command("psql")
        .args(["-X", "-q", "-d", "app", "-c", "SELECT pg_sleep(600)"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    berkut_testkit::wait_for("the session to be connected", LONG, || {
        (pg.psql("postgres", "SELECT count(*) FROM pg_stat_activity WHERE datname = 'app' AND query LIKE '%pg_sleep%'").unwrap() == "1").then_some(())
    });
    let record = restored(client.call(restore_op(&backup.id, false, true)).await);
    assert_eq!(record.status, RestoreStatus::Succeeded, "{record:#?}");
    // The psql session only: the daemon closed its own pooled connection
    // first, quietly.
    let detail = record
        .step("swap")
        .unwrap()
        .detail
        .clone()
        .unwrap_or_default();
    let ended: u64 = detail
        .split("application sessions ended: ")
        .nth(1)
        .and_then(|t| t.split(';').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert_eq!(ended, 1, "{detail}");
    let log = daemon.log();
    assert!(!log.contains("Connection error"), "{log}");
    let status = berkut_testkit::wait_for("the session to end", LONG, || {
        session.try_wait().ok().flatten()
    });
    assert!(!status.success(), "the session was ended, not finished");
    assert_eq!(pg.psql("app", "SELECT count(*) FROM t").unwrap(), "500");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_killed_mid_restore_is_recovered_at_start() {
    let pg = small_cluster();
    let (_bin, gate, daemon) = daemon_with_gated_restores(&pg);
    let mut daemon = daemon.start();
    let mut client = daemon.client().await;
    let backup = backup_now(&mut client, Scope::Database).await;
    let dbs = databases(&pg);
    let started = restored(client.call(restore_op(&backup.id, false, false)).await);
    wait_for_step(&daemon, &started.restore_id, "pre_data").await;
    assert!(databases(&pg).contains(&started.scratch_database));
    assert!(
        !tmp_dir_is_empty(&daemon),
        "the dump is decrypted while the restore runs"
    );

    daemon.kill();
    daemon.restart();
    let mut client = daemon.client().await;
    let record = restored(
        client
            .call(Operation::RestoreStatus(ops::RestoreStatus {
                restore_id: started.restore_id.clone(),
                wait: false,
            }))
            .await,
    );
    assert_eq!(record.status, RestoreStatus::Interrupted, "{record:#?}");
    assert_eq!(databases(&pg), dbs, "the half-built database is removed");
    assert!(tmp_dir_is_empty(&daemon), "the decrypted dump is removed");
    let Ok(Reply::Maintenance { maintenance }) = client
        .call(Operation::MaintenanceStatus(ops::MaintenanceStatus {}))
        .await
    else {
        panic!()
    };
    assert!(
        !maintenance.active,
        "the live database was never touched, so maintenance is lifted"
    );
    assert!(matches!(
        client.call(Operation::list_first_page()).await,
        Ok(Reply::Backups { .. })
    ));
    gate.open_forever();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_while_decrypting_fails_cleanly() {
    if !nix::unistd::geteuid().is_root()
        && std::process::Command::new("prlimit")
            .arg("--version")
            .output()
            .is_err()
    {
        eprintln!("skipped: prlimit is needed to limit the daemon's file size");
        return;
    }
    let pg = rich_cluster();
    let daemon = daemon_for(&pg).start();
    let mut client = daemon.client().await;
    let backup = backup_now(&mut client, Scope::Database).await;
    // Files the daemon writes may now grow to 64 KiB: less than the dump,
    // more than the restore's summary.
    let out = std::process::Command::new("prlimit")
        .args(["--pid", &daemon.pid().unwrap().to_string(), "--fsize=65536"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dbs = databases(&pg);
    let record = restored(client.call(restore_op(&backup.id, false, true)).await);
    assert_eq!(record.status, RestoreStatus::Failed, "{record:#?}");
    assert_eq!(record.step("decrypt").unwrap().state, StepState::Failed);
    assert!(record
        .failure
        .unwrap()
        .reason
        .contains("not enough disk space"));
    assert!(
        tmp_dir_is_empty(&daemon),
        "a partial decrypted dump was left behind"
    );
    assert_eq!(databases(&pg), dbs);
    assert!(!daemon.state_dir.join("maintenance.json").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_globals_a_backup_restores_into_a_fresh_cluster() {
    let source = rich_cluster();
    source.psql("app", "CREATE ROLE berkut_app_owner LOGIN; CREATE TABLE owned (id int); INSERT INTO owned VALUES (1), (2); ALTER TABLE owned OWNER TO berkut_app_owner;").unwrap();
    let key = berkut_proto::archive::MasterKey::generate();
    let first = daemon_for(&source).key(key.clone()).start();
    let backup = backup_now(&mut first.client().await, Scope::Full).await;
    let original = fingerprint(&source, "app").unwrap();

    // Disaster: a new machine with an empty cluster, the archive and the
    // key. The daemon finds the archive in its store at start-up.
    let fresh = PgCluster::start().unwrap();
    let mut second = daemon_for(&fresh).key(key).start();
    second.stop();
    std::fs::copy(
        first.archive_path(backup.id.as_str()),
        second.archive_path(backup.id.as_str()),
    )
    .unwrap();
    second.restart();
    let mut client = second.client().await;
    let record = restored(
        client
            .call(Operation::RestoreStart(ops::RestoreStart {
                backup_id: backup.id.clone(),
                dry_run: false,
                with_globals: true,
                wait: true,
            }))
            .await,
    );
    assert_eq!(record.status, RestoreStatus::Succeeded, "{record:#?}");
    assert_eq!(record.step("globals").unwrap().state, StepState::Done);
    assert_eq!(
        fresh
            .psql(
                "postgres",
                "SELECT count(*) FROM pg_roles WHERE rolname = 'berkut_app_owner'"
            )
            .unwrap(),
        "1"
    );
    assert_eq!(
        fresh
            .psql(
                "app",
                "SELECT tableowner FROM pg_tables WHERE tablename = 'owned'"
            )
            .unwrap(),
        "berkut_app_owner"
    );
    assert_eq!(
        fingerprint(&fresh, "app").unwrap().differences(&original),
        Vec::<String>::new()
    );
    assert!(
        record.rollback_database.is_none(),
        "there was no live database to keep"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_being_restored_cannot_be_deleted() {
    let pg = small_cluster();
    let (_bin, gate, daemon) = daemon_with_gated_restores(&pg);
    let daemon = daemon.start();
    let mut client = daemon.client().await;
    let backup = backup_now(&mut client, Scope::Database).await;
    let started = restored(client.call(restore_op(&backup.id, true, false)).await);
    wait_for_step(&daemon, &started.restore_id, "pre_data").await;
    let err = server_error(
        client
            .call(Operation::BackupDelete(ops::BackupDelete {
                id: backup.id.clone(),
            }))
            .await,
    );
    assert_eq!(err.code, ErrorCode::Conflict);
    gate.open_forever();
    let done = restore_outcome(&mut client, started.restore_id.clone()).await;
    assert_eq!(done.status, RestoreStatus::Succeeded);
    assert!(matches!(
        client
            .call(Operation::BackupDelete(ops::BackupDelete {
                id: backup.id.clone()
            }))
            .await,
        Ok(Reply::Deleted { .. })
    ));
}
