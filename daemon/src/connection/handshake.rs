//! The handshake: the first frame must be `hello` with the protocol version
//! this daemon speaks, and the peer must have a grant of some kind; a peer
//! that no grant names could not do anything here, so it is refused before
//! it holds a connection any longer.

use berkut_proto::wire::{ClientMessage, ErrorBody, ErrorCode, ServerMessage, PROTOCOL_VERSION};

use super::{next_message, Incoming, Outbox, Reader};
use crate::auth::Peer;

pub(super) enum Greeted {
    Yes,
    No,
    /// A well-formed `hello` from a peer that no grant names.
    NoGrant,
}

/// Expects `hello` with a protocol version this daemon speaks, from a peer
/// that some grant names (`has_grant`): one that none does could not do
/// anything here, so it is refused before it holds a connection any longer.
pub(super) async fn handshake(
    reader: &mut Reader,
    outbox: &Outbox,
    peer: &Peer,
    has_grant: bool,
) -> Greeted {
    let (reply, greeted) = match next_message(reader).await {
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
                (error, Greeted::NoGrant)
            } else {
                tracing::debug!(uid = peer.uid, pid = ?peer.pid, %client, "client connected");
                let _ = outbox
                    .send(ServerMessage::Welcome {
                        protocol_version: PROTOCOL_VERSION,
                        server: format!("berkutd {}", env!("CARGO_PKG_VERSION")),
                    })
                    .await;
                return Greeted::Yes;
            }
        }
        Incoming::Message(ClientMessage::Hello { protocol_version, .. }) => (ErrorBody::new(
            ErrorCode::VersionMismatch,
            format!("this daemon speaks protocol version {PROTOCOL_VERSION}, the client {protocol_version}"),
        ), Greeted::No),
        Incoming::Closed => return Greeted::No,
        Incoming::Fatal(body) => (body, Greeted::No),
        // A hello that breaks a rule (a client name too long) is told which.
        Incoming::Invalid { error, .. } => (error, Greeted::No),
        _ => (ErrorBody::new(ErrorCode::Invalid, "the first message must be hello"), Greeted::No),
    };
    let _ = outbox
        .send(ServerMessage::Error {
            id: None,
            error: reply,
        })
        .await;
    greeted
}
