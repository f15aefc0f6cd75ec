//! The Rust `Client` against a scripted server: the handshake, progress
//! followed to the reply, a restore's records and maintenance events
//! streamed before theirs, server errors, a refused handshake, a
//! connection closed before the reply, and the user named in every request
//! (calls and uploads alike) once `set_on_behalf_of` is given one.

use berkut_proto::manifest::Scope;
use berkut_proto::wire::frame::decode_message;
use berkut_proto::wire::ops;
use berkut_proto::wire::{
    Client, ClientError, ClientMessage, Connection, ErrorBody, ErrorCode, Operation, Phase, Reply,
    Role, ServerMessage, PROTOCOL_VERSION,
};
use rmpv::Value;
use tokio::net::{UnixListener, UnixStream};
use tokio::time::timeout;

use super::fixtures::{
    alice, backup_id, maintenance_on, progress, queued_restore, running_restore, succeeded_record,
    succeeded_restore,
};
use super::{field, keys, pack, PATIENCE};

/// Binds a socket in a fresh directory and runs `script` on the first
/// connection.
async fn scripted_server<F, Fut>(script: F) -> (tempfile::TempDir, std::path::PathBuf)
where
    F: FnOnce(Connection<UnixStream>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("berkutd.sock");
    let listener = UnixListener::bind(&path).unwrap();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        script(Connection::new(stream)).await;
    });
    (dir, path)
}

#[tokio::test]
async fn the_client_says_hello_then_follows_progress_to_the_reply() {
    let (_dir, path) = scripted_server(|mut conn| async move {
        match conn.read_message::<ClientMessage>().await.unwrap() {
            Some(ClientMessage::Hello {
                protocol_version,
                client,
            }) => {
                assert_eq!(protocol_version, PROTOCOL_VERSION);
                assert_eq!(client, "wire-test");
            }
            other => panic!("expected hello, got {other:?}"),
        }
        conn.write_message(&ServerMessage::Welcome {
            protocol_version: PROTOCOL_VERSION,
            server: "scripted 1".into(),
        })
        .await
        .unwrap();
        let Some(ClientMessage::Request {
            on_behalf_of: None,
            id,
            op,
        }) = conn.read_message().await.unwrap()
        else {
            panic!("expected a request");
        };
        assert!(matches!(
            op,
            Operation::BackupCreate(ops::BackupCreate { wait: true, .. })
        ));
        for phase in [Phase::Queued, Phase::Dump] {
            conn.write_message(&ServerMessage::Progress {
                id,
                progress: progress(phase),
            })
            .await
            .unwrap();
        }
        conn.write_message(&ServerMessage::Reply {
            id,
            reply: Reply::Backup {
                backup: succeeded_record(),
            },
        })
        .await
        .unwrap();
        let Some(ClientMessage::Request { id: second, .. }) = conn.read_message().await.unwrap()
        else {
            panic!("expected a second request");
        };
        assert_ne!(second, id, "request ids are not reused");
        conn.write_message(&ServerMessage::Error {
            id: Some(second),
            error: ErrorBody::new(ErrorCode::NotFound, "there is no backup"),
        })
        .await
        .unwrap();
    })
    .await;

    let mut client = timeout(PATIENCE, Client::connect(&path, "wire-test"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(client.server_version(), "scripted 1");
    let mut phases = Vec::new();
    let reply = timeout(
        PATIENCE,
        client.call_with_progress(
            Operation::BackupCreate(ops::BackupCreate {
                label: "nightly".into(),
                scope: Scope::Full,
                include_files: false,
                wait: true,
            }),
            |p| phases.push(p.phase),
        ),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(phases, [Phase::Queued, Phase::Dump]);
    assert_eq!(
        reply,
        Reply::Backup {
            backup: succeeded_record()
        }
    );
    let err = timeout(
        PATIENCE,
        client.call(Operation::BackupShow(ops::BackupShow { id: backup_id() })),
    )
    .await
    .unwrap();
    assert!(
        matches!(&err, Err(ClientError::Server(body)) if body.code == ErrorCode::NotFound),
        "{err:?}"
    );
}

#[tokio::test]
async fn the_client_reports_a_refused_handshake() {
    let (_dir, path) = scripted_server(|mut conn| async move {
        let _hello: Option<ClientMessage> = conn.read_message().await.unwrap();
        conn.write_message(&ServerMessage::Error {
            id: None,
            error: ErrorBody::new(ErrorCode::VersionMismatch, "speak 2"),
        })
        .await
        .unwrap();
    })
    .await;
    match timeout(PATIENCE, Client::connect(&path, "old"))
        .await
        .unwrap()
    {
        Err(ClientError::Server(body)) => assert_eq!(body.code, ErrorCode::VersionMismatch),
        Err(other) => panic!("expected a server error, got {other:?}"),
        Ok(_) => panic!("expected a server error, got a client"),
    }
}

#[tokio::test]
async fn the_client_reports_a_connection_closed_before_the_reply() {
    let (_dir, path) = scripted_server(|mut conn| async move {
        let _hello: Option<ClientMessage> = conn.read_message().await.unwrap();
        conn.write_message(&ServerMessage::Welcome {
            protocol_version: 1,
            server: "s".into(),
        })
        .await
        .unwrap();
        let _req: Option<ClientMessage> = conn.read_message().await.unwrap();
    })
    .await;
    let mut client = Client::connect(&path, "c").await.unwrap();
    let got = timeout(PATIENCE, client.call(Operation::Status(ops::Status {})))
        .await
        .unwrap();
    assert!(matches!(got, Err(ClientError::Closed)), "{got:?}");
}

#[tokio::test]
async fn the_client_streams_restore_records_and_events_to_the_reply() {
    let (_dir, path) = scripted_server(|mut conn| async move {
        let _hello: Option<ClientMessage> = conn.read_message().await.unwrap();
        conn.write_message(&ServerMessage::Welcome {
            protocol_version: PROTOCOL_VERSION,
            server: "s".into(),
        })
        .await
        .unwrap();
        let Some(ClientMessage::Request {
            on_behalf_of: None,
            id,
            op,
        }) = conn.read_message().await.unwrap()
        else {
            panic!("expected a request");
        };
        assert!(matches!(
            op,
            Operation::RestoreStart(ops::RestoreStart { wait: true, .. })
        ));
        let messages = [
            ServerMessage::RestoreProgress {
                id,
                restore: queued_restore(),
            },
            ServerMessage::Event {
                id,
                maintenance: maintenance_on(),
            },
            ServerMessage::RestoreProgress {
                id,
                restore: running_restore(),
            },
            ServerMessage::Reply {
                id,
                reply: Reply::Restore {
                    restore: succeeded_restore(),
                },
            },
        ];
        for msg in messages {
            conn.write_message(&msg).await.unwrap();
        }
    })
    .await;
    let mut client = Client::connect(&path, "c").await.unwrap();
    let mut seen = Vec::new();
    let reply = timeout(
        PATIENCE,
        client.call_streaming(
            Operation::RestoreStart(ops::RestoreStart {
                backup_id: backup_id(),
                dry_run: false,
                with_globals: false,
                wait: true,
            }),
            |msg| seen.push(msg.clone()),
        ),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        reply,
        Reply::Restore {
            restore: succeeded_restore()
        }
    );
    let kinds: Vec<&str> = seen
        .iter()
        .map(|m| match m {
            ServerMessage::RestoreProgress { .. } => "restore_progress",
            ServerMessage::Event { .. } => "event",
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(kinds, ["restore_progress", "event", "restore_progress"]);
}

#[tokio::test]
async fn the_client_names_its_user_in_every_request_once_told_to() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("berkutd.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut conn = Connection::new(stream);
        let _hello: Option<ClientMessage> = conn.read_message().await.unwrap();
        let welcome = ServerMessage::Welcome {
            protocol_version: PROTOCOL_VERSION,
            server: "scripted".into(),
        };
        conn.write_message(&welcome).await.unwrap();
        // A call and an upload for alice, then a call for nobody.
        let mut seen = Vec::new();
        for _ in 0..3 {
            let raw: Value = conn.read_message().await.unwrap().unwrap();
            let id = field(&raw, "id").as_u64().unwrap();
            let msg = decode_message::<ClientMessage>(&pack(&raw)).unwrap();
            let ClientMessage::Request {
                op, on_behalf_of, ..
            } = msg
            else {
                panic!("expected a request, got {msg:?}");
            };
            let named = keys(&raw).contains(&"on_behalf_of");
            seen.push((op.name(), named, on_behalf_of));
            let error = ErrorBody::new(ErrorCode::Forbidden, "you are not allowed to do this");
            let answer = ServerMessage::Error {
                id: Some(id),
                error,
            };
            conn.write_message(&answer).await.unwrap();
        }
        seen
    });
    let mut client = timeout(PATIENCE, Client::connect(&path, "access-test"))
        .await
        .unwrap()
        .unwrap();
    client.set_on_behalf_of(Some(alice(Role::Viewer)));
    let forbidden = |r: Result<Reply, ClientError>| {
        matches!(
            r,
            Err(ClientError::Server(ErrorBody {
                code: ErrorCode::Forbidden,
                ..
            }))
        )
    };
    assert!(forbidden(
        timeout(PATIENCE, client.call(Operation::Status(ops::Status {})))
            .await
            .unwrap()
    ));
    let upload = client.upload(3, &b"BSC"[..], |_| {});
    assert!(forbidden(timeout(PATIENCE, upload).await.unwrap()));
    client.set_on_behalf_of(None);
    assert!(forbidden(
        timeout(
            PATIENCE,
            client.call(Operation::AuditVerify(ops::AuditVerify {}))
        )
        .await
        .unwrap()
    ));
    let seen = timeout(PATIENCE, server).await.unwrap().unwrap();
    let alice = Some(alice(Role::Viewer));
    assert_eq!(
        seen,
        [
            ("status", true, alice.clone()),
            ("backup_import", true, alice),
            ("audit_verify", false, None)
        ]
    );
}
