//! `backup_list`: newest first, failed ones included.

use berkut_proto::manifest::Scope;
use berkut_proto::wire::messages::MAX_LIST_PAGE;
use berkut_proto::wire::{ops, BackupStatus, ErrorCode, Operation, Reply};

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_every_backup_newest_first() {
    let pg = small_cluster();
    let daemon = daemon_for(&pg).start();
    let mut client = daemon.client().await;
    assert!(list(client.call(Operation::list_first_page()).await).is_empty());
    let first = backup(client.call(create_op("first", Scope::Database, true)).await);
    let second = backup(client.call(create_op("second", Scope::Schema, true)).await);
    pg.stop().unwrap();
    let listed = list(client.call(Operation::list_first_page()).await);
    let labels: Vec<&str> = listed.iter().map(|r| r.label.as_str()).collect();
    assert_eq!(labels, ["second", "first"]);
    // A listed record is the record less the database's properties, which
    // only `backup_show` carries (a page of 1000 must fit one frame).
    assert!(second.properties.is_some() && first.properties.is_some());
    let without = |r: &berkut_proto::wire::BackupRecord| {
        let mut r = r.clone();
        r.properties = None;
        r
    };
    assert_eq!(listed[0], without(&second));
    assert_eq!(listed[1], without(&first));
    assert!(listed.iter().all(|r| r.status == BackupStatus::Succeeded));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalogue_comes_in_pages() {
    let pg = small_cluster();
    let daemon = daemon_for(&pg).start();
    let mut client = daemon.client().await;
    for label in ["a", "b", "c"] {
        backup(client.call(create_op(label, Scope::Schema, true)).await);
    }
    let page = |offset, limit| {
        Operation::BackupList(ops::BackupList {
            offset,
            limit: Some(limit),
        })
    };
    let Ok(Reply::Backups { backups, total }) = client.call(page(1, 1)).await else {
        panic!()
    };
    assert_eq!(total, 3);
    assert_eq!(
        backups.iter().map(|r| r.label.as_str()).collect::<Vec<_>>(),
        ["b"]
    );
    let Ok(Reply::Backups { backups, .. }) = client.call(page(2, 10)).await else {
        panic!()
    };
    assert_eq!(backups.len(), 1);
    let Ok(Reply::Backups { backups, .. }) = client.call(page(u64::MAX, 10)).await else {
        panic!()
    };
    assert!(backups.is_empty());
    for bad in [0, MAX_LIST_PAGE + 1] {
        let err = server_error(client.call(page(0, bad)).await);
        assert_eq!(err.code, ErrorCode::Invalid);
    }
}
