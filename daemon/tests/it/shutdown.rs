//! SIGTERM with work in hand: running backups get the grace time to finish
//! (and their waiting clients their answer); what still runs after it is
//! cancelled cleanly: pg_dump stopped, no partial file, the record failed
//! with a reason that starts with `shutdown`. Queued backups never start.
//! Restores are jobs too: the same grace time, the same clean cancel.

use std::time::{Duration, Instant};

use berkut_proto::manifest::Scope;
use berkut_proto::wire::{ops, BackupStatus, Operation, Reply, RestoreStatus};
use berkut_testkit::{fake_pg_dump, fingerprint, Gate, NotifySocket};
use nix::sys::signal::Signal;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_that_finishes_within_the_grace_time_succeeds() {
    let pg = small_cluster();
    let bin = berkut_testkit::temp_dir("fake-");
    let gate = Gate::new(bin.path(), "gate");
    let fake = gate.gated_pg_dump(bin.path(), "pg_dump");
    let mut daemon = daemon_for(&pg)
        .pg_dump(&fake)
        .env("BERKUT_SHUTDOWN_GRACE_SECONDS", "60")
        .start();
    let mut client = daemon.client().await;
    let queued = backup(client.call(create_op("", Scope::Database, false)).await);
    wait_for_status(&mut client, 1, 0).await;
    // A client that waits for the job keeps its connection through the stop.
    let mut watcher = daemon.client().await;
    let id = queued.id.clone();
    let attached = tokio::spawn(async move {
        watcher
            .call(Operation::JobAttach(ops::JobAttach { id }))
            .await
    });
    // Only requests the daemon has read before SIGTERM are served to the end.
    berkut_testkit::wait_for("the attach request to arrive", LONG, || {
        daemon.log().contains("op=\"job_attach\"").then_some(())
    });

    daemon.signal(Signal::SIGTERM);
    berkut_testkit::wait_for("the stop to begin", LONG, || {
        daemon.log().contains("stopping:").then_some(())
    });
    assert!(!daemon.socket.exists(), "the listener stays after SIGTERM");
    assert!(daemon.is_running(), "the daemon did not wait for its job");
    tokio::task::spawn_blocking(move || gate.open_once())
        .await
        .unwrap();
    let record = backup(attached.await.unwrap());
    assert_eq!(record.status, BackupStatus::Succeeded, "{record:?}");
    let status = daemon.wait_exit(LONG);
    assert!(status.success(), "{status}");

    daemon.restart();
    let shown = backup(
        daemon
            .client()
            .await
            .call(Operation::BackupShow(ops::BackupShow {
                id: queued.id.clone(),
            }))
            .await,
    );
    assert_eq!(shown.status, BackupStatus::Succeeded);
    assert!(daemon.archive_path(queued.id.as_str()).exists());
    assert_no_partials(&daemon);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_grace_time_running_jobs_are_cancelled_cleanly() {
    let pg = small_cluster();
    let bin = berkut_testkit::temp_dir("fake-");
    let gate = Gate::new(bin.path(), "gate");
    let pid_file = bin.path().join("pg_dump.pid");
    // A pg_dump that writes a little, then hangs at the gate for good.
    let fake = fake_pg_dump(
        bin.path(),
        "pg_dump",
        &format!(
            "echo $$ > '{}'\nprintf 'PGDMP'\nhead -c 100000 /dev/zero\n{}",
            pid_file.display(),
            gate.wait_snippet()
        ),
    );
    let grace = Duration::from_secs(2);
    let mut daemon = daemon_for(&pg)
        .pg_dump(&fake)
        .max_parallel(1)
        .env("BERKUT_SHUTDOWN_GRACE_SECONDS", grace.as_secs().to_string())
        .start();
    let mut client = daemon.client().await;
    let running = backup(
        client
            .call(create_op("running", Scope::Database, false))
            .await,
    );
    let queued = backup(
        client
            .call(create_op("queued", Scope::Database, false))
            .await,
    );
    wait_for_status(&mut client, 1, 1).await;
    drop(client);

    let sent = Instant::now();
    daemon.signal(Signal::SIGTERM);
    let status = daemon.wait_exit(LONG);
    let took = sent.elapsed();
    assert!(status.success(), "{status}");
    assert!(
        took >= grace,
        "stopped after {took:?}, before the grace time"
    );
    assert!(
        took < grace + Duration::from_secs(20),
        "stopping took {took:?}"
    );
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(nix::errno::Errno::ESRCH),
        "pg_dump outlived the daemon"
    );
    assert!(
        daemon.backup_files().is_empty(),
        "files left: {:?}",
        daemon.backup_files()
    );

    daemon.restart();
    let mut client = daemon.client().await;
    for id in [running.id, queued.id] {
        let record = backup(
            client
                .call(Operation::BackupShow(ops::BackupShow { id }))
                .await,
        );
        assert_eq!(record.status, BackupStatus::Failed, "{record:?}");
        let reason = record.failure.expect("a reason").reason;
        assert!(reason.starts_with("shutdown"), "{reason}");
    }
}

/// A real restore shows as maintenance in the service manager's status
/// line; stopped by SIGTERM and still running after the grace time, it is
/// cancelled like a backup: failed with a reason starting `shutdown`,
/// maintenance lifted, the live database untouched and no scratch database
/// left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_restore_still_running_after_the_grace_time_is_cancelled_cleanly() {
    let pg = small_cluster();
    let bin = berkut_testkit::temp_dir("fake-");
    let gate = Gate::new(bin.path(), "gate");
    let mut notify = NotifySocket::bind(bin.path());
    let grace = Duration::from_secs(1);
    let mut daemon = daemon_for(&pg)
        .pg_restore(&gate.gated_pg_restore(bin.path()))
        .env("BERKUT_SHUTDOWN_GRACE_SECONDS", grace.as_secs().to_string())
        .notify(&notify)
        .start();
    let mut client = daemon.client().await;
    let backup = backup_now(&mut client, Scope::Database).await;
    let before = fingerprint(&pg, "app").unwrap();
    let dbs_before = databases(&pg);

    let started = restored(client.call(restore_op(&backup.id, false, false)).await);
    notify.wait_for("the maintenance status", LONG, |l| {
        l == "STATUS=maintenance (a restore is replacing the database); running 1 job"
    });
    let sent = Instant::now();
    daemon.signal(Signal::SIGTERM);
    let status = daemon.wait_exit(LONG);
    assert!(status.success(), "{status}");
    assert!(sent.elapsed() >= grace, "the restore got no grace time");
    drop(gate);

    daemon.restart();
    let mut client = daemon.client().await;
    let record = restored(
        client
            .call(Operation::RestoreStatus(ops::RestoreStatus {
                restore_id: started.restore_id,
                wait: false,
            }))
            .await,
    );
    assert_eq!(record.status, RestoreStatus::Failed, "{record:#?}");
    let reason = record.failure.expect("a reason").reason;
    assert!(reason.starts_with("shutdown"), "{reason}");
    let Ok(Reply::Maintenance { maintenance }) = client
        .call(Operation::MaintenanceStatus(ops::MaintenanceStatus {}))
        .await
    else {
        panic!("no maintenance status")
    };
    assert!(!maintenance.active, "maintenance outlived the restore");
    assert!(fingerprint(&pg, "app")
        .unwrap()
        .differences(&before)
        .is_empty());
    assert_eq!(databases(&pg), dbs_before, "a scratch database was left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_does_not_wait_for_a_remote_retention_pass_that_hangs() {
    use crate::remote_copies::{daemon_with_remotes, wait_copy};
    use berkut_proto::wire::CopyState;
    let pg = small_cluster();
    let s3 = berkut_testkit::S3Server::start();
    s3.create_bucket("berkut");
    let secrets = berkut_testkit::temp_dir("secret-");
    let toml =
        s3.remote_toml("offsite", "berkut", "prod/", secrets.path()) + "retention_days = 1\n";
    let (_conf, builder) = daemon_with_remotes(&pg, &toml);
    let mut daemon = builder.start();
    let mut client = daemon.client().await;
    let old = backup_now(&mut client, Scope::Schema).await;
    wait_copy(&daemon, &old.id, "offsite", "the copy", |c| {
        c.state == CopyState::Copied
    })
    .await;
    drop(client);
    daemon.stop();
    // Ten days old, past the remote's one: its pass at the next start
    // deletes the copy, from a server that now answers nothing.
    age_catalogue(&daemon, 10, |_| {});
    s3.pause();
    daemon.restart();
    berkut_testkit::wait_for("the remote retention pass to begin", LONG, || {
        daemon
            .log()
            .contains("remote retention deletes a copy")
            .then_some(())
    });
    let asked = Instant::now();
    daemon.signal(Signal::SIGTERM);
    let status = daemon.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{status:?}");
    assert!(
        asked.elapsed() < Duration::from_secs(15),
        "stopped after {:?}",
        asked.elapsed()
    );
    s3.resume();
}
