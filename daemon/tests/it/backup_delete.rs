//! `backup_delete`: removes archive and record; refuses unknown ids and
//! backups still in progress.

use berkut_proto::ids::BackupId;
use berkut_proto::manifest::Scope;
use berkut_proto::wire::{ops, BackupStatus, ErrorCode, Operation, Reply};
use berkut_testkit::Gate;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_removes_the_archive_and_the_record() {
    let pg = small_cluster();
    let daemon = daemon_for(&pg).start();
    let mut client = daemon.client().await;
    let keep = backup_now(&mut client, Scope::Database).await;
    let gone = backup_now(&mut client, Scope::Database).await;
    assert!(daemon.archive_path(gone.id.as_str()).exists());

    let reply = client
        .call(Operation::BackupDelete(ops::BackupDelete {
            id: gone.id.clone(),
        }))
        .await
        .unwrap();
    assert_eq!(
        reply,
        Reply::Deleted {
            id: gone.id.clone()
        }
    );
    assert!(!daemon.archive_path(gone.id.as_str()).exists());
    let ids: Vec<BackupId> = list(client.call(Operation::list_first_page()).await)
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, vec![keep.id.clone()]);

    let err = server_error(
        client
            .call(Operation::BackupDelete(ops::BackupDelete {
                id: gone.id.clone(),
            }))
            .await,
    );
    assert_eq!(err.code, ErrorCode::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_in_progress_cannot_be_deleted() {
    let pg = small_cluster();
    let bin = berkut_testkit::temp_dir("fake-");
    let gate = Gate::new(bin.path(), "gate");
    let daemon = daemon_for(&pg)
        .pg_dump(&gate.gated_pg_dump(bin.path(), "pg_dump"))
        .start();
    let mut client = daemon.client().await;
    let running = backup(client.call(create_op("", Scope::Database, false)).await);
    wait_for_status(&mut client, 1, 0).await;
    let err = server_error(
        client
            .call(Operation::BackupDelete(ops::BackupDelete {
                id: running.id.clone(),
            }))
            .await,
    );
    assert_eq!(err.code, ErrorCode::Conflict);
    gate.open_forever();
    let done = backup(
        client
            .call(Operation::JobAttach(ops::JobAttach {
                id: running.id.clone(),
            }))
            .await,
    );
    assert_eq!(done.status, BackupStatus::Succeeded);
    assert!(daemon.archive_path(running.id.as_str()).exists());
}
