//! The one place a request's outcome leaves the daemon: every answer to a
//! request (refused by authorization, the maintenance gate or the
//! per-connection cap, or run by its handler, or not even decoded) is
//! audited from the very message the client is sent, then sent. The trail
//! has the event before the client has the answer, so a client that reads
//! the trail after its answer finds it, and a client that stops reading
//! cannot keep its request out of the trail.

use std::sync::Arc;

use berkut_proto::wire::{ErrorBody, ServerMessage};

use super::Outbox;
use crate::audit::AuditNote;
use crate::state::Daemon;

/// The way out for answers, shared by the request loop and the tasks
/// running requests.
#[derive(Clone)]
pub(super) struct Answers {
    daemon: Arc<Daemon>,
    outbox: Outbox,
}

impl Answers {
    pub fn new(daemon: Arc<Daemon>, outbox: Outbox) -> Answers {
        Answers { daemon, outbox }
    }

    pub fn daemon(&self) -> &Arc<Daemon> {
        &self.daemon
    }

    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// Audits `msg` as the answer `note` was given (when there is a note:
    /// a message with no request id has none to audit), then sends it.
    pub async fn answer(&self, note: Option<&AuditNote>, msg: ServerMessage) {
        if let Some(note) = note {
            self.daemon.audit.record(note.answered(&msg));
        }
        let _ = self.outbox.send(msg).await;
    }

    /// Answers request `id` (or the connection, with no id) with `error`.
    pub async fn error(&self, note: Option<&AuditNote>, id: Option<u64>, error: ErrorBody) {
        self.answer(note, ServerMessage::Error { id, error }).await
    }
}
