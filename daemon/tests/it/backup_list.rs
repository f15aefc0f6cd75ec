//! `backup_list`: newest first, failed ones included.

use berkut_proto::manifest::Scope;
use berkut_proto::wire::{BackupStatus, Operation};

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_every_backup_newest_first() {
    let pg = small_cluster();
    let daemon = daemon_for(&pg).start();
    let mut client = daemon.client().await;
    assert!(list(client.call(Operation::BackupList).await).is_empty());
    let first = backup(client.call(create_op("first", Scope::Database, true)).await);
    let second = backup(client.call(create_op("second", Scope::Schema, true)).await);
    pg.stop().unwrap();
    let listed = list(client.call(Operation::BackupList).await);
    let labels: Vec<&str> = listed.iter().map(|r| r.label.as_str()).collect();
    assert_eq!(labels, ["second", "first"]);
    assert_eq!(listed[0], second);
    assert_eq!(listed[1], first);
    assert!(listed.iter().all(|r| r.status == BackupStatus::Succeeded));
}
