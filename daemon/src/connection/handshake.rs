//! The handshake: the first frame must be `hello` with the protocol version
//! this daemon speaks, and the peer must have a grant of some kind; a peer
//! that no grant names could not do anything here, so it is refused before
//! it holds a connection any longer (and audited, as the operation `hello`).

use berkut_proto::wire::{ClientMessage, ErrorBody, ErrorCode, ServerMessage, PROTOCOL_VERSION};

use super::answer::Answers;
use super::frames::{next_message, Incoming, Reader};
use crate::audit::AuditNote;
use crate::auth::Peer;

pub(super) enum Greeted {
    Yes,
    No,
}

/// Expects `hello` with a protocol version this daemon speaks, from a peer
/// that some grant names (`has_grant`).
pub(super) async fn handshake(
    reader: &mut Reader,
    answers: &Answers,
    peer: &Peer,
    has_grant: bool,
) -> Greeted {
    let refusal = match next_message(reader).await {
        Incoming::Message(ClientMessage::Hello {
            protocol_version,
            client,
        }) if protocol_version == PROTOCOL_VERSION => {
            if !has_grant {
                tracing::debug!(uid = peer.uid, pid = ?peer.pid, "a peer with no grant said hello; refused");
                let error = ErrorBody::new(
                    ErrorCode::Forbidden,
                    "this user may not use berkutd: no access grant names it, its uid or its groups",
                );
                let note = AuditNote::hello(peer, answers.daemon().now());
                answers.error(Some(&note), None, error).await;
                return Greeted::No;
            }
            tracing::debug!(uid = peer.uid, pid = ?peer.pid, %client, "client connected");
            let welcome = ServerMessage::Welcome {
                protocol_version: PROTOCOL_VERSION,
                server: format!("berkutd {}", env!("CARGO_PKG_VERSION")),
            };
            answers.answer(None, welcome).await;
            return Greeted::Yes;
        }
        Incoming::Message(ClientMessage::Hello { protocol_version, .. }) => ErrorBody::new(
            ErrorCode::VersionMismatch,
            format!("this daemon speaks protocol version {PROTOCOL_VERSION}, the client {protocol_version}"),
        ),
        Incoming::Closed => return Greeted::No,
        Incoming::Fatal(body) => body,
        // A hello that breaks a rule (a client name too long) is told which.
        Incoming::Invalid { error, .. } => error,
        _ => ErrorBody::new(ErrorCode::Invalid, "the first message must be hello"),
    };
    answers.error(None, None, refusal).await;
    Greeted::No
}
