//! One client connection: the handshake, then a loop that reads requests,
//! authorizes each one and runs its handler as a task of its own, so that a
//! long request (a backup with `wait`) does not block the next. Replies from
//! all handlers funnel through one writer task. A frame that is too large or
//! not MessagePack closes this connection and nothing else.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use berkut_proto::wire::frame::{codec, decode_message_with, encode, DecodeError};
use berkut_proto::wire::scan::REQUEST_LIMITS;
use berkut_proto::wire::{
    ClientMessage, ErrorBody, ErrorCode, Operation, ServerMessage, MAX_FRAME_LEN, PROTOCOL_VERSION,
};
use futures::{FutureExt, SinkExt, StreamExt};
use tokio::net::UnixStream;
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::audit::AuditNote;
use crate::auth::{Peer, Policy};
use crate::error::OpError;
use crate::handlers::backup_import::Piece;
use crate::handlers::{dispatch, Responder};
use crate::state::Daemon;

/// Replies waiting for the writer; a slow client applies back-pressure to
/// its own handlers only.
const OUTBOX: usize = 64;

/// Requests one connection may have running at once. Beyond that the
/// connection is simply not read until one finishes.
const MAX_IN_FLIGHT: usize = 32;

/// How long a new connection has to say hello.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Encodes a message for the wire. A reply too large for one frame becomes
/// an error for its request rather than a silently dropped connection.
fn frame_body(msg: &ServerMessage) -> Option<Vec<u8>> {
    match encode(msg) {
        Ok(body) if body.len() <= MAX_FRAME_LEN => Some(body),
        Ok(body) => {
            tracing::error!(request = ?msg.request_id(), len = body.len(), "a reply does not fit in one frame");
            let error = ErrorBody::new(
                ErrorCode::Internal,
                "the reply is too large for one frame; ask for less (a smaller page)",
            );
            encode(&ServerMessage::Error {
                id: msg.request_id(),
                error,
            })
            .ok()
        }
        Err(e) => {
            tracing::error!(error = %e, "a reply could not be encoded");
            None
        }
    }
}

pub async fn serve(daemon: Arc<Daemon>, stream: UnixStream, shutdown: CancellationToken) {
    let peer = match Peer::of(&stream) {
        Ok(peer) => peer,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the peer credentials of a connection; closing it");
            return;
        }
    };
    let (read, write) = stream.into_split();
    let mut reader = FramedRead::new(read, codec(MAX_FRAME_LEN));
    let (tx, mut rx) = mpsc::channel::<ServerMessage>(OUTBOX);
    let writer = tokio::spawn(async move {
        let mut sink = FramedWrite::new(write, codec(MAX_FRAME_LEN));
        while let Some(msg) = rx.recv().await {
            let Some(body) = frame_body(&msg) else { break };
            if sink.send(bytes::Bytes::from(body)).await.is_err() {
                break;
            }
        }
    });

    let greeted = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(&mut reader, &tx, &peer)).await;
    if greeted.unwrap_or_else(|_| {
        tracing::debug!(
            uid = peer.uid,
            "no hello within the handshake timeout; closing"
        );
        false
    }) {
        read_requests(&daemon, &mut reader, &tx, peer, &shutdown).await;
    }
    drop(tx);
    let _ = writer.await;
}

type Reader = FramedRead<tokio::net::unix::OwnedReadHalf, tokio_util::codec::LengthDelimitedCodec>;

/// Expects `hello` with a protocol version this daemon speaks.
async fn handshake(reader: &mut Reader, tx: &mpsc::Sender<ServerMessage>, peer: &Peer) -> bool {
    let reply = match next_message(reader).await {
        Incoming::Message(ClientMessage::Hello {
            protocol_version,
            client,
        }) if protocol_version == PROTOCOL_VERSION => {
            tracing::debug!(uid = peer.uid, pid = ?peer.pid, %client, "client connected");
            let _ = tx
                .send(ServerMessage::Welcome {
                    protocol_version: PROTOCOL_VERSION,
                    server: format!("berkutd {}", env!("CARGO_PKG_VERSION")),
                })
                .await;
            return true;
        }
        Incoming::Message(ClientMessage::Hello { protocol_version, .. }) => ErrorBody::new(
            ErrorCode::VersionMismatch,
            format!("this daemon speaks protocol version {PROTOCOL_VERSION}, the client {protocol_version}"),
        ),
        Incoming::Closed => return false,
        Incoming::Fatal(body) => body,
        _ => ErrorBody::new(ErrorCode::Invalid, "the first message must be hello"),
    };
    let _ = tx
        .send(ServerMessage::Error {
            id: None,
            error: reply,
        })
        .await;
    false
}

async fn read_requests(
    daemon: &Arc<Daemon>,
    reader: &mut Reader,
    tx: &mpsc::Sender<ServerMessage>,
    peer: Peer,
    shutdown: &CancellationToken,
) {
    let tasks = TaskTracker::new();
    let in_flight = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    // The uploads in progress on this connection, by request id. Dropping
    // the map (the connection ends) tells each import it was cut off.
    let mut uploads: HashMap<u64, mpsc::Sender<Piece>> = HashMap::new();
    loop {
        let incoming = tokio::select! {
            incoming = next_message(reader) => incoming,
            _ = shutdown.cancelled() => break,
        };
        match incoming {
            Incoming::Closed => break,
            Incoming::Fatal(error) => {
                let _ = tx.send(ServerMessage::Error { id: None, error }).await;
                break;
            }
            Incoming::Invalid { id, error } => {
                let _ = tx.send(ServerMessage::Error { id, error }).await;
            }
            Incoming::Message(ClientMessage::Data { id, data, end }) => {
                // Data for an upload that was refused or has ended is
                // dropped: the client learns why from the request's error.
                if let Some(sender) = uploads.get(&id) {
                    let mut alive = sender.send(Piece::Data(data)).await.is_ok();
                    if end {
                        alive = alive && sender.send(Piece::End).await.is_ok();
                    }
                    if end || !alive {
                        uploads.remove(&id);
                    }
                }
            }
            Incoming::Message(ClientMessage::Hello { .. }) => {
                let error = ErrorBody::new(ErrorCode::Invalid, "hello was already received");
                let _ = tx.send(ServerMessage::Error { id: None, error }).await;
            }
            Incoming::Message(ClientMessage::Request {
                id,
                op,
                on_behalf_of,
            }) => {
                let name = op.name();
                let audit = AuditNote::new(&peer, id, &op, on_behalf_of.clone(), daemon.now());
                let policy = Policy::new(daemon.config().access.clone());
                let allowed = on_behalf_of
                    .as_ref()
                    .map_or(Ok(()), valid_user)
                    .and_then(|()| policy.authorize(&peer, &op, on_behalf_of.as_ref()));
                let audit = match &allowed {
                    Ok(a) => audit.with_role(a.role),
                    Err(_) => audit,
                };
                if let Err(e) = allowed {
                    let msg = ServerMessage::Error {
                        id: Some(id),
                        error: e.into_body(name),
                    };
                    daemon.audit.record(audit.answered(&msg));
                    let _ = tx.send(msg).await;
                    continue;
                }
                // Authorization first: a caller without rights learns that,
                // not whether a restore runs.
                if daemon.maintenance.is_active() && !op.allowed_in_maintenance() {
                    let info = daemon.maintenance.current();
                    let why = info
                        .reason
                        .unwrap_or_else(|| "a restore is in progress".into());
                    let error = ErrorBody::new(
                        ErrorCode::Maintenance,
                        format!("maintenance: {why}; only status requests are served"),
                    );
                    let msg = ServerMessage::Error {
                        id: Some(id),
                        error,
                    };
                    let event = audit.answered(&msg);
                    let _ = tx.send(msg).await;
                    daemon.audit.record(event);
                    continue;
                }
                tracing::info!(request = id, op = name, uid = peer.uid, pid = ?peer.pid, "request");
                let upload = match op {
                    Operation::BackupImport { .. } => {
                        let (sender, receiver) = crate::handlers::backup_import::channel();
                        uploads.insert(id, sender);
                        Some(receiver)
                    }
                    _ => None,
                };
                // A connection runs at most MAX_IN_FLIGHT requests at once; one more
                // is refused rather than waited for, so the pieces of an upload
                // behind it are still read.
                let Ok(slot) = in_flight.clone().try_acquire_owned() else {
                    uploads.remove(&id);
                    let error = ErrorBody::new(ErrorCode::Unavailable, format!("this connection already runs {MAX_IN_FLIGHT} requests; wait for one or open another connection"));
                    let msg = ServerMessage::Error {
                        id: Some(id),
                        error,
                    };
                    let event = audit.answered(&msg);
                    let _ = tx.send(msg).await;
                    daemon.audit.record(event);
                    continue;
                };
                let daemon = Arc::clone(daemon);
                let tx = tx.clone();
                tasks.spawn(async move {
                    let _slot = slot;
                    let resp = match upload {
                        Some(rx) => Responder::with_upload(id, tx.clone(), rx),
                        None => Responder::new(id, tx.clone()),
                    };
                    // A panic in a handler fails its request, not the daemon.
                    let result = AssertUnwindSafe(dispatch(&daemon, op, &resp))
                        .catch_unwind()
                        .await
                        .unwrap_or_else(|panic| {
                            Err(OpError::internal(format!(
                                "handler panicked: {}",
                                panic_message(&panic)
                            )))
                        });
                    let msg = match result {
                        Ok(reply) => ServerMessage::Reply { id, reply },
                        Err(e) => ServerMessage::Error {
                            id: Some(id),
                            error: e.into_body(name),
                        },
                    };
                    let event = audit.answered(&msg);
                    let _ = tx.send(msg).await;
                    daemon.audit.record(event);
                });
            }
        }
    }
    // Uploads still open were cut off: their handlers learn it when the
    // senders go, and only then can they (and this connection) end.
    drop(uploads);
    tasks.close();
    tasks.wait().await;
}

enum Incoming {
    Message(ClientMessage),
    /// A well-formed frame that is not a valid message: answered, and the
    /// connection goes on.
    Invalid {
        id: Option<u64>,
        error: ErrorBody,
    },
    /// A frame that breaks the framing or is not MessagePack: the
    /// connection cannot be trusted to stay in step, so it is closed.
    Fatal(ErrorBody),
    Closed,
}

async fn next_message(reader: &mut Reader) -> Incoming {
    let body = match reader.next().await {
        None => return Incoming::Closed,
        Some(Ok(body)) => body,
        Some(Err(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
            return Incoming::Fatal(ErrorBody::new(
                ErrorCode::TooLarge,
                format!("frame exceeds the limit of {MAX_FRAME_LEN} bytes; closing the connection"),
            ))
        }
        Some(Err(_)) => return Incoming::Closed,
    };
    match decode_message_with::<ClientMessage>(&body, REQUEST_LIMITS) {
        Ok(msg) => Incoming::Message(msg),
        Err(DecodeError::Malformed(_)) => Incoming::Fatal(ErrorBody::new(
            ErrorCode::Invalid,
            "frame is not a MessagePack value; closing the connection",
        )),
        Err(DecodeError::Invalid { id, message }) => {
            let mut message = format!("invalid request: {message}");
            truncate(&mut message, 300);
            Incoming::Invalid {
                id,
                error: ErrorBody::new(ErrorCode::Invalid, message),
            }
        }
    }
}

/// The main application's user id goes into every audit line: it must be
/// short and printable, like a label.
fn valid_user(user: &berkut_proto::wire::OnBehalfOf) -> Result<(), OpError> {
    if user.user.is_empty()
        || user.user.chars().count() > 200
        || user.user.chars().any(char::is_control)
    {
        return Err(OpError::invalid(
            "on_behalf_of.user must be 1 to 200 printable characters",
        ));
    }
    Ok(())
}

fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

#[cfg(test)]
mod tests {
    use berkut_proto::wire::frame::decode_message;
    use berkut_proto::wire::{BackupRecord, Reply};

    use super::*;

    #[test]
    fn a_reply_too_large_for_a_frame_becomes_an_error_for_its_request() {
        let record: BackupRecord = serde_json::from_value(serde_json::json!({
            "id": "20261121T000000Z-00000000", "label": "x".repeat(200), "scope": "full",
            "include_files": false, "origin": "manual", "status": "succeeded",
            "created_at": "2026-11-21T00:00:00Z", "size_bytes": 1, "sha256": "00", "key_id": "00",
            "database": "app"
        }))
        .unwrap();
        let backups = vec![record; 20_000];
        let msg = ServerMessage::Reply {
            id: 9,
            reply: Reply::Backups {
                backups,
                total: 20_000,
            },
        };
        let body = frame_body(&msg).expect("something is sent");
        assert!(body.len() <= MAX_FRAME_LEN);
        match decode_message::<ServerMessage>(&body).unwrap() {
            ServerMessage::Error { id, error } => {
                assert_eq!(id, Some(9));
                assert_eq!(error.code, ErrorCode::Internal);
            }
            other => panic!("{other:?}"),
        }
        let small = ServerMessage::Reply {
            id: 1,
            reply: Reply::Deleted {
                id: "20261121T000000Z-00000000".parse().unwrap(),
            },
        };
        assert_eq!(
            decode_message::<ServerMessage>(&frame_body(&small).unwrap()).unwrap(),
            small
        );
    }
}
