//! `status`: version, uptime and jobs.

use berkut_proto::wire::{ops, Operation, Reply, PROTOCOL_VERSION};

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_the_daemon() {
    let pg = small_cluster();
    let daemon = daemon_for(&pg).max_parallel(3).start();
    let mut client = daemon.client().await;
    assert!(client.server_version().starts_with("berkutd "));
    let Ok(Reply::Status { status }) = client.call(Operation::Status(ops::Status {})).await else {
        panic!("no status")
    };
    assert_eq!(status.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(status.protocol_version, PROTOCOL_VERSION);
    assert_eq!(status.max_parallel, 3);
    assert_eq!((status.running, status.queued, status.backups), (0, 0, 0));
    assert!(status.jobs.is_empty());
    assert!(!status.dev_mode);
    assert!(status.uptime_seconds < 600);
}

/// A running restore holds a slot like a backup, and `status` counts it:
/// before, `status` said "0 running" while a restore ran (the systemd
/// status line already counted it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_restore_counts_among_the_running_jobs() {
    let pg = small_cluster();
    let (_bin, gate, daemon) = daemon_with_gated_restores(&pg);
    let daemon = daemon.start();
    let mut client = daemon.client().await;
    let made = backup_now(&mut client, berkut_proto::manifest::Scope::Database).await;
    let started = restored(client.call(restore_op(&made.id, true, false)).await);
    let status = berkut_testkit::wait_for_async("the restore to run", LONG, || async {
        let Ok(Reply::Status { status }) = daemon
            .client()
            .await
            .call(Operation::Status(ops::Status {}))
            .await
        else {
            return None;
        };
        (status.running == 1).then_some(status)
    })
    .await;
    assert_eq!(status.queued, 0);
    let (code, out) = {
        let out = std::process::Command::new(berkut_testkit::workspace_bin("berkutctl"))
            .arg("status")
            .env("BERKUT_SOCKET", &daemon.socket)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    assert_eq!(code, Some(0));
    assert!(out.contains("1 running"), "{out}");
    tokio::task::spawn_blocking(move || gate.open_forever())
        .await
        .unwrap();
    let done = restore_outcome(&mut client, started.restore_id).await;
    assert!(done.status.is_finished(), "{done:?}");
    let Ok(Reply::Status { status }) = client.call(Operation::Status(ops::Status {})).await else {
        panic!("no status")
    };
    assert_eq!((status.running, status.queued), (0, 0));
}

/// A client told a restore's outcome finds it running no more: restores
/// leave the job counts before their end is published, as backups do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_told_ended_is_not_among_the_running_jobs() {
    let pg = small_cluster();
    let daemon = daemon_for(&pg).start();
    let mut client = daemon.client().await;
    let backup = backup_now(&mut client, berkut_proto::manifest::Scope::Database).await;
    for _ in 0..5 {
        let done = restored(client.call(restore_op(&backup.id, true, true)).await);
        assert!(done.status.is_finished(), "{done:?}");
        let st = status(&mut client).await;
        assert_eq!((st.running, st.queued), (0, 0), "{st:?}");
    }
}
