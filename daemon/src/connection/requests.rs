//! The request loop of a greeted connection, and the pipeline every
//! request goes through: decoded (`frames`), then authorized (the peer's
//! grant, with the groups the connection resolved once), then the
//! maintenance gate, then the per-connection cap, then run as a task of its
//! own, so that a long request (a backup with `wait`) does not block the
//! next. Whichever stage ends a request, its answer goes out through
//! `Answers`, the one place that audits and replies. Upload pieces
//! (`data` messages) are routed to the import that asked for them.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use berkut_proto::wire::{
    ClientMessage, ErrorBody, ErrorCode, OnBehalfOf, Operation, ServerMessage,
};
use futures::FutureExt;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::task::TaskTracker;

use super::answer::Answers;
use super::frames::{next_message, Incoming, Reader};
use super::shutdown::{Ended, Stop};
use super::uploads::{Gate, Uploads};
use crate::audit::AuditNote;
use crate::auth::{Peer, Policy};
use crate::error::OpError;
use crate::handlers::backup_import::Piece;
use crate::handlers::{dispatch, Responder};
use crate::state::Daemon;

/// Requests one connection may have running at once; one more is refused
/// rather than waited for, so the pieces of an upload behind it are still
/// read.
pub(super) const MAX_IN_FLIGHT: usize = 32;

/// Who is asking, as the connection established it at the start.
pub(super) struct Caller {
    pub peer: Peer,
    /// The peer's groups, resolved once off the runtime.
    pub groups: Vec<u32>,
}

/// A request that passed every stage before running.
struct Admitted {
    slot: OwnedSemaphorePermit,
    upload: Option<(mpsc::Receiver<Piece>, Gate)>,
}

/// Reads requests until the connection should end, then waits for the
/// requests still running.
pub(super) async fn serve(
    reader: &mut Reader,
    answers: &Answers,
    caller: &Caller,
    stop: &mut Stop,
) -> Ended {
    let mut requests = Requests {
        answers,
        caller,
        tasks: TaskTracker::new(),
        in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        uploads: Uploads::default(),
    };
    reader.follow(requests.uploads.open_count());
    let ended = loop {
        requests.uploads.prune();
        let incoming = tokio::select! {
            incoming = next_message(reader) => incoming,
            ended = stop.wait(&requests.tasks, caller.peer.uid) => break ended,
        };
        stop.read_something();
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
                    answers.outbox().client_gone();
                }
                break Ended::Closed;
            }
            Incoming::Fatal(error) => {
                answers.error(None, None, error).await;
                break Ended::Closed;
            }
            Incoming::Invalid { id, error } => {
                // A request that carries an id is audited too, as the
                // `invalid` it was answered; bursts of them collapse.
                let note = id.map(|id| AuditNote::undecoded(&caller.peer, id, now(answers)));
                answers.error(note.as_ref(), id, error).await;
            }
            Incoming::Data { id, data, end } => requests.uploads.route(id, data, end).await,
            // A data message the fast path did not take (its bytes sent as
            // a string, say) is still a piece.
            Incoming::Message(ClientMessage::Data { id, data, end }) => {
                requests.uploads.route(id, data.into(), end).await
            }
            Incoming::Message(ClientMessage::Hello { .. }) => {
                let error = ErrorBody::new(ErrorCode::Invalid, "hello was already received");
                answers.error(None, None, error).await;
            }
            Incoming::Message(ClientMessage::Request {
                id,
                op,
                on_behalf_of,
            }) => requests.request(id, op, on_behalf_of).await,
        }
    };
    // Uploads still open were cut off: their handlers learn it when the
    // senders go, and only then can they (and this connection) end.
    drop(requests.uploads);
    requests.tasks.close();
    requests.tasks.wait().await;
    ended
}

fn now(answers: &Answers) -> time::OffsetDateTime {
    answers.daemon().now()
}

struct Requests<'a> {
    answers: &'a Answers,
    caller: &'a Caller,
    tasks: TaskTracker,
    in_flight: Arc<Semaphore>,
    /// The uploads of this connection (`uploads.rs`).
    uploads: Uploads,
}

impl Requests<'_> {
    /// One request through the pipeline: admitted and run, or refused at
    /// the first stage that says no; answered either way, in one place.
    async fn request(&mut self, id: u64, op: Operation, on_behalf_of: Option<OnBehalfOf>) {
        let name = op.name();
        let note = AuditNote::new(
            &self.caller.peer,
            id,
            &op,
            on_behalf_of.clone(),
            now(self.answers),
        );
        let (note, admitted) = self.admit(id, &op, on_behalf_of.as_ref(), note);
        match admitted {
            Err(error) => self.answers.error(Some(&note), Some(id), error).await,
            Ok(admitted) => {
                let peer = self.caller.peer;
                tracing::info!(request = id, op = name, uid = peer.uid, pid = ?peer.pid, "request");
                let answers = self.answers.clone();
                self.tasks.spawn(async move {
                    let Admitted { slot, upload } = admitted;
                    let _slot = slot;
                    let gate = upload.as_ref().map(|(_, gate)| gate.clone());
                    let outcome = run(&answers, id, op, upload).await;
                    if let Some(gate) = gate {
                        gate.ended();
                    }
                    let msg = match outcome {
                        Ok(reply) => ServerMessage::Reply { id, reply },
                        Err(e) => ServerMessage::Error {
                            id: Some(id),
                            error: e.into_body(name),
                        },
                    };
                    answers.answer(Some(&note), msg).await;
                });
            }
        }
    }

    /// The stages before a request runs, in order: authorization (a caller
    /// without rights learns that, not whether a restore runs), the
    /// maintenance gate, the per-connection cap. Gives back the note,
    /// with the role the request was allowed (if it was).
    fn admit(
        &mut self,
        id: u64,
        op: &Operation,
        on_behalf_of: Option<&OnBehalfOf>,
        note: AuditNote,
    ) -> (AuditNote, Result<Admitted, ErrorBody>) {
        let daemon = self.answers.daemon();
        let note = match authorize(daemon, self.caller, op, on_behalf_of) {
            Ok(role) => note.with_role(role),
            Err(e) => return (note, Err(e.into_body(op.name()))),
        };
        let admitted = self.reserve(id, op);
        (note, admitted)
    }

    /// The stages after authorization: the maintenance gate, then a place
    /// under the per-connection cap (and, for an import, its upload
    /// channel).
    fn reserve(&mut self, id: u64, op: &Operation) -> Result<Admitted, ErrorBody> {
        maintenance_gate(self.answers.daemon(), op)?;
        let Ok(slot) = Arc::clone(&self.in_flight).try_acquire_owned() else {
            let error = ErrorBody::new(
                ErrorCode::Unavailable,
                format!("this connection already runs {MAX_IN_FLIGHT} requests; wait for one or open another connection"),
            );
            return Err(error);
        };
        let upload = matches!(op, Operation::BackupImport(_)).then(|| self.uploads.admit(id));
        Ok(Admitted { slot, upload })
    }
}

/// The caller's role for this request, under the access rules in force
/// now (a reload may have changed them).
fn authorize(
    daemon: &Daemon,
    caller: &Caller,
    op: &Operation,
    on_behalf_of: Option<&OnBehalfOf>,
) -> Result<berkut_proto::wire::Role, OpError> {
    if let Some(user) = on_behalf_of {
        valid_user(user)?;
    }
    let policy = Policy::new(daemon.config().access.clone());
    policy
        .authorize_in(&caller.peer, &caller.groups, op, on_behalf_of)
        .map(|allowed| allowed.role)
}

/// While a restore replaces the database only what may run during
/// maintenance is served.
fn maintenance_gate(daemon: &Daemon, op: &Operation) -> Result<(), ErrorBody> {
    if !daemon.maintenance.is_active() || crate::handlers::served_in_maintenance(op) {
        return Ok(());
    }
    let why = daemon
        .maintenance
        .current()
        .reason
        .unwrap_or_else(|| "a restore is in progress".into());
    Err(ErrorBody::new(
        ErrorCode::Maintenance,
        format!("maintenance: {why}; only status requests are served"),
    ))
}

/// Runs the handler. A panic in a handler fails its request, not the
/// daemon.
async fn run(
    answers: &Answers,
    id: u64,
    op: Operation,
    upload: Option<(mpsc::Receiver<Piece>, Gate)>,
) -> Result<berkut_proto::wire::Reply, OpError> {
    let tx = answers.outbox().clone();
    let resp = match upload {
        Some((rx, gate)) => Responder::with_upload(id, tx, rx, gate),
        None => Responder::new(id, tx),
    };
    AssertUnwindSafe(dispatch(answers.daemon(), op, &resp))
        .catch_unwind()
        .await
        .unwrap_or_else(|panic| {
            Err(OpError::internal(format!(
                "handler panicked: {}",
                panic_message(&panic)
            )))
        })
}

/// The main application's user id goes into every audit line: it must be
/// short and printable, like a label.
fn valid_user(user: &OnBehalfOf) -> Result<(), OpError> {
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

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}
