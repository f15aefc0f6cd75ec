//! One client connection: admission (a slot under the connection limits,
//! `admission`), the handshake (a peer with no grant at all is refused
//! there), then a loop that reads requests, authorizes each one and runs its
//! handler as a task of its own, so that a long request (a backup with
//! `wait`) does not block the next. Replies from all handlers funnel through
//! one byte-bounded outbox to one writer task (`outbox`). A frame that is
//! too large or not MessagePack closes this connection and nothing else; so
//! does a greeted connection left idle, with nothing running, for the
//! configured idle timeout.

mod admission;
mod handshake;
mod outbox;

pub use admission::Slots;
pub use outbox::{Closed, Outbox, OUTBOX_BYTES};

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use berkut_proto::wire::frame::{codec, decode_request, DecodeError};
use berkut_proto::wire::{
    ClientMessage, ErrorBody, ErrorCode, Operation, Role, ServerMessage, MAX_FRAME_LEN,
};
use futures::{FutureExt, StreamExt};
use tokio::net::UnixStream;
use tokio::sync::mpsc;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::audit::AuditNote;
use crate::auth::{Grant, Peer, Policy};
use crate::error::OpError;
use crate::handlers::backup_import::Piece;
use crate::handlers::{dispatch, Responder};
use crate::state::Daemon;
use handshake::{handshake, Greeted};
use outbox::Activity;

/// Requests one connection may have running at once. Beyond that the
/// connection is simply not read until one finishes.
const MAX_IN_FLIGHT: usize = 32;

/// How long a new connection has to say hello.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves one accepted connection until it closes.
pub async fn serve(
    daemon: Arc<Daemon>,
    stream: UnixStream,
    slots: Arc<Slots>,
    shutdown: CancellationToken,
) {
    let peer = match Peer::of(&stream) {
        Ok(peer) => peer,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the peer credentials of a connection; closing it");
            return;
        }
    };
    let config = daemon.config();
    let grant = Policy::new(config.access.clone()).grant_for(&peer);
    let admin = grant == Some(Grant::Role(Role::Admin));
    let _slot = match slots.take(peer.uid, admin, &config.connections) {
        Ok(slot) => slot,
        Err(refusal) => {
            tracing::warn!(uid = peer.uid, ?refusal, "connection refused");
            admission::refuse(&slots, stream, refusal.body()).await;
            return;
        }
    };
    drop(config);
    let (read, write) = stream.into_split();
    let mut reader = FramedRead::new(read, codec(MAX_FRAME_LEN));
    let activity = Activity::new();
    let (outbox, writer) = Outbox::new(write, Arc::clone(&activity));

    let greeting = handshake(&mut reader, &outbox, &peer, grant.is_some());
    let greeted = tokio::time::timeout(HANDSHAKE_TIMEOUT, greeting).await;
    let ended = match greeted {
        Ok(Greeted::Yes) => {
            read_requests(&daemon, &mut reader, &outbox, peer, &activity, &shutdown).await
        }
        Ok(Greeted::NoGrant) => {
            // Audited like any refused request, as the operation `hello`.
            // The event records the code the client was answered with.
            let refusal = ServerMessage::Error {
                id: None,
                error: ErrorBody::new(ErrorCode::Forbidden, "no grant"),
            };
            let mut event =
                AuditNote::new(&peer, 0, &Operation::Status, None, daemon.now()).answered(&refusal);
            event.op = "hello".into();
            daemon.audit.record(event);
            Ended::Closed
        }
        Ok(Greeted::No) => Ended::Closed,
        Err(_) => {
            tracing::debug!(
                uid = peer.uid,
                "no hello within the handshake timeout; closing"
            );
            Ended::Closed
        }
    };
    drop(outbox);
    match ended {
        // Nothing runs and the client reads nothing: what it left unread
        // is dropped with the connection.
        Ended::Idle => writer.abort(),
        Ended::Closed => {
            let _ = writer.await;
        }
    }
}

/// How the request loop ended.
#[derive(PartialEq, Eq)]
enum Ended {
    /// The client closed, broke the protocol, or the daemon stops.
    Closed,
    /// The idle timeout passed with nothing running.
    Idle,
}

type Reader = FramedRead<tokio::net::unix::OwnedReadHalf, tokio_util::codec::LengthDelimitedCodec>;

async fn read_requests(
    daemon: &Arc<Daemon>,
    reader: &mut Reader,
    tx: &Outbox,
    peer: Peer,
    activity: &Activity,
    shutdown: &CancellationToken,
) -> Ended {
    let tasks = TaskTracker::new();
    let in_flight = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    // The uploads in progress on this connection, by request id. Dropping
    // the map (the connection ends) tells each import it was cut off.
    let mut uploads: HashMap<u64, mpsc::Sender<Piece>> = HashMap::new();
    let mut check_idle = tokio::time::Instant::now() + daemon.config().connections.idle_timeout;
    let ended = loop {
        let incoming = tokio::select! {
            incoming = next_message(reader) => incoming,
            _ = shutdown.cancelled() => break Ended::Closed,
            _ = tokio::time::sleep_until(check_idle) => {
                // A request running (a watch, a waited-for job, a transfer)
                // is not idleness; otherwise the clock runs from the last
                // message read or frame written.
                let timeout = daemon.config().connections.idle_timeout;
                if !tasks.is_empty() {
                    check_idle = tokio::time::Instant::now() + timeout;
                    continue;
                }
                let quiet_since = activity.last();
                if quiet_since.elapsed() >= timeout {
                    tracing::debug!(uid = peer.uid, timeout_s = timeout.as_secs(), "closing an idle connection");
                    break Ended::Idle;
                }
                check_idle = (quiet_since + timeout).into();
                continue;
            }
        };
        activity.touch();
        match incoming {
            Incoming::Closed => {
                // The end of the stream: a client that only stopped sending
                // still reads its answers; one that hung up does not, and
                // handlers waiting to send it something need not wait.
                let ready = reader
                    .get_ref()
                    .ready(tokio::io::Interest::READABLE | tokio::io::Interest::WRITABLE)
                    .await;
                if ready.map_or(true, |r| r.is_write_closed()) {
                    tx.client_gone();
                }
                break Ended::Closed;
            }
            Incoming::Fatal(error) => {
                let _ = tx.send(ServerMessage::Error { id: None, error }).await;
                break Ended::Closed;
            }
            Incoming::Invalid { id, error } => {
                let msg = ServerMessage::Error { id, error };
                // A request that carries an id is audited too, as the
                // `invalid` it was answered; bursts of them collapse.
                if let Some(id) = id {
                    let note = AuditNote::undecoded(&peer, id, daemon.now());
                    daemon.audit.record(note.answered(&msg));
                }
                let _ = tx.send(msg).await;
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
    };
    // Uploads still open were cut off: their handlers learn it when the
    // senders go, and only then can they (and this connection) end.
    drop(uploads);
    tasks.close();
    tasks.wait().await;
    ended
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
    match decode_request(&body) {
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
