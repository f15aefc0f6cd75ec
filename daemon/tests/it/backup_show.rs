//! `backup_show`: one record; unknown ids are `not_found`, malformed ones
//! `invalid` before they come near a path.

use berkut_proto::manifest::Scope;
use berkut_proto::wire::{ops, ErrorCode, Operation, ServerMessage};

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_returns_the_record_and_refuses_unknown_ids() {
    let pg = small_cluster();
    let daemon = daemon_for(&pg).start();
    let mut client = daemon.client().await;
    let made = backup_now(&mut client, Scope::Database).await;
    let shown = backup(
        client
            .call(Operation::BackupShow(ops::BackupShow {
                id: made.id.clone(),
            }))
            .await,
    );
    assert_eq!(shown, made);

    let missing = "20000101T000000Z-00000000".parse().unwrap();
    let err = server_error(
        client
            .call(Operation::BackupShow(ops::BackupShow { id: missing }))
            .await,
    );
    assert_eq!(err.code, ErrorCode::NotFound);
    assert!(err.message.contains("20000101T000000Z-00000000"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_that_could_reach_a_path_are_invalid() {
    let pg = small_cluster();
    let daemon = daemon_for(&pg).start();
    let mut conn = daemon.client().await.into_connection();
    for (n, id) in [
        "../../etc/passwd",
        "20000101T000000Z-00000000/../x",
        "",
        "a\0b",
        "20000101T000000Z-0000000G",
    ]
    .iter()
    .enumerate()
    {
        for op in ["backup_show", "backup_delete", "job_attach"] {
            let request_id = 100 + n as u64;
            let reply = send_raw(
                &mut conn,
                &raw_request(request_id, op, vec![("id", (*id).into())]),
            )
            .await;
            match reply {
                ServerMessage::Error { id, error } => {
                    assert_eq!(id, Some(request_id));
                    assert_eq!(error.code, ErrorCode::Invalid, "{op} {id:?}: {error:?}");
                    assert_safe(&error.message);
                }
                other => panic!("{op} with id {id:?} was answered with {other:?}"),
            }
        }
    }
}
