//! `job_attach`: a second client follows a job started by another.

use berkut_proto::manifest::Scope;
use berkut_proto::wire::{ops, BackupStatus, ErrorCode, Operation, Phase};
use berkut_testkit::Gate;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_client_can_follow_a_running_job() {
    let pg = small_cluster();
    let bin = berkut_testkit::temp_dir("fake-");
    let gate = Gate::new(bin.path(), "gate");
    let daemon = daemon_for(&pg)
        .pg_dump(&gate.gated_pg_dump(bin.path(), "pg_dump"))
        .start();
    let mut starter = daemon.client().await;
    let queued = backup(
        starter
            .call(create_op("followed", Scope::Database, false))
            .await,
    );
    wait_for_status(&mut starter, 1, 0).await;

    let mut watcher = daemon.client().await;
    let id = queued.id.clone();
    let (first_tx, mut first_rx) = tokio::sync::mpsc::unbounded_channel();
    let follow = tokio::spawn(async move {
        let mut seen = Vec::new();
        let reply = watcher
            .call_with_progress(Operation::JobAttach(ops::JobAttach { id }), |p| {
                let _ = first_tx.send(());
                seen.push(p.clone())
            })
            .await;
        (backup(reply), seen)
    });
    // Let the job go on only once the watcher has heard from it.
    first_rx.recv().await.expect("the watcher hears progress");
    let g = gate.clone();
    tokio::task::spawn_blocking(move || g.open_once())
        .await
        .unwrap();
    let (record, seen) = follow.await.unwrap();
    assert_eq!(record.status, BackupStatus::Succeeded);
    assert!(seen.iter().all(|p| p.job_id == queued.id));
    assert!(seen.iter().any(|p| p.phase == Phase::Dump), "{seen:?}");

    // A finished job answers at once, from the catalogue.
    let again = backup(
        starter
            .call(Operation::JobAttach(ops::JobAttach {
                id: queued.id.clone(),
            }))
            .await,
    );
    assert_eq!(again, record);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attaching_to_an_unknown_job_is_not_found() {
    let pg = small_cluster();
    let daemon = daemon_for(&pg).start();
    let mut client = daemon.client().await;
    let err = server_error(
        client
            .call(Operation::JobAttach(ops::JobAttach {
                id: "20000101T000000Z-00000000".parse().unwrap(),
            }))
            .await,
    );
    assert_eq!(err.code, ErrorCode::NotFound);
}
