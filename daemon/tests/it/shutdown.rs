//! SIGTERM with work in hand: running backups get the grace time to finish
//! (and their waiting clients their answer); what still runs after it is
//! cancelled cleanly: pg_dump stopped, no partial file, the record failed
//! with a reason that starts with `shutdown`. Queued backups never start.

use std::time::{Duration, Instant};

use berkut_proto::manifest::Scope;
use berkut_proto::wire::{BackupStatus, Operation};
use berkut_testkit::{fake_pg_dump, Gate};
use nix::sys::signal::Signal;

use crate::faults::wait_for_status;
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
    let attached = tokio::spawn(async move { watcher.call(Operation::JobAttach { id }).await });
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
            .call(Operation::BackupShow {
                id: queued.id.clone(),
            })
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
        let record = backup(client.call(Operation::BackupShow { id }).await);
        assert_eq!(record.status, BackupStatus::Failed, "{record:?}");
        let reason = record.failure.expect("a reason").reason;
        assert!(reason.starts_with("shutdown"), "{reason}");
    }
}
