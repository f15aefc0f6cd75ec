//! `status`: version, uptime and jobs.

use berkut_proto::wire::{Operation, Reply, PROTOCOL_VERSION};

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_the_daemon() {
    let pg = small_cluster();
    let daemon = daemon_for(&pg).max_parallel(3).start();
    let mut client = daemon.client().await;
    assert!(client.server_version().starts_with("berkutd "));
    let Ok(Reply::Status { status }) = client.call(Operation::Status).await else {
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
