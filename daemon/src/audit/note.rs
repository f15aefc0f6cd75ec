//! The note a connection takes of a request when it arrives, turned into
//! the request's audit event once the answer it was sent is known.

use berkut_proto::wire::{OnBehalfOf, ServerMessage};
use time::OffsetDateTime;

use super::Event;

/// What the connection knows of a request when it arrives, to audit it
/// when its outcome is known.
#[derive(Clone)]
pub struct AuditNote {
    event: Event,
}

impl AuditNote {
    pub fn new(
        peer: &crate::auth::Peer,
        request: u64,
        op: &berkut_proto::wire::Operation,
        on_behalf_of: Option<OnBehalfOf>,
        time: OffsetDateTime,
    ) -> AuditNote {
        AuditNote {
            event: Event {
                v: 1,
                time,
                request,
                op: op.name().to_owned(),
                uid: peer.uid,
                gid: peer.gid,
                pid: peer.pid,
                on_behalf_of,
                role: None,
                target: crate::handlers::target_of(op),
                decision: "allowed".into(),
                result: None,
                code: None,
                count: None,
                until: None,
                prev: String::new(),
            },
        }
    }

    /// The note of a request that could not be decoded (answered
    /// `invalid` before its operation was known), audited under the
    /// operation name `invalid`.
    pub fn undecoded(peer: &crate::auth::Peer, request: u64, time: OffsetDateTime) -> AuditNote {
        let mut note = AuditNote::new(
            peer,
            request,
            &berkut_proto::wire::Operation::Status(Default::default()),
            None,
            time,
        );
        note.event.op = "invalid".into();
        note.event.target = None;
        note
    }

    /// The note of a `hello` refused because no grant names the peer,
    /// audited under the operation name `hello` as request 0.
    pub fn hello(peer: &crate::auth::Peer, time: OffsetDateTime) -> AuditNote {
        let mut note = AuditNote::undecoded(peer, 0, time);
        note.event.op = "hello".into();
        note
    }

    /// The note of a request allowed with `role`.
    pub fn with_role(mut self, role: berkut_proto::wire::Role) -> AuditNote {
        self.event.role = Some(role);
        self
    }

    /// The event of the request as answered by `answer`, the message the
    /// client was sent: the one place the outcome is decided, so the trail
    /// says what the client got. A request refused before it ran (no role:
    /// by the grants, or for a malformed `on_behalf_of`) is `denied` with
    /// the code of its error; one that ran `succeeded` or `failed`.
    pub fn answered(&self, answer: &ServerMessage) -> Event {
        let code = match answer {
            ServerMessage::Error { error, .. } => Some(error.code),
            _ => None,
        };
        let (decision, result) = match (self.event.role, code) {
            (None, _) => ("denied", None),
            (Some(_), None) => ("allowed", Some("succeeded")),
            (Some(_), Some(_)) => ("allowed", Some("failed")),
        };
        Event {
            decision: decision.into(),
            result: result.map(Into::into),
            code,
            ..self.event.clone()
        }
    }
}
