//! One client connection, as a pipeline. `serve` takes it through
//! admission (a slot under the connection limits, `admission`) and the
//! handshake (`handshake`: a peer with no grant at all is refused there),
//! then hands it to the request loop (`requests`), where every request is
//! decoded (`frames`), authorized, checked against the maintenance gate and
//! the per-connection cap, and run as a task of its own. Every answer to a
//! request, whichever stage gave it, is audited and sent in one place
//! (`answer`); all of them funnel through one byte-bounded outbox to one
//! writer task (`outbox`). How the connection ends (the client closing, a
//! broken frame, the daemon stopping, the idle timeout) is `shutdown`.
//!
//! The peer's identity comes from the socket, and its groups are looked up
//! once, off the async runtime (the user database may be slow): a
//! connection keeps the groups it began with.

mod admission;
mod answer;
mod frames;
mod handshake;
mod outbox;
mod pieces;
mod requests;
mod shutdown;
mod uploads;

pub use admission::Slots;
pub use outbox::{Closed, Outbox, OUTBOX_BYTES};
pub use pieces::{Piece, Pieces, Shared, DOWNLOADS, UPLOADS};
pub use uploads::Gate;

use std::sync::Arc;

use berkut_proto::wire::Role;
use tokio::net::UnixStream;
use tokio_util::sync::CancellationToken;

use crate::auth::{Grant, Peer, Policy};
use crate::state::Daemon;
use answer::Answers;
use handshake::{handshake, Greeted};
use outbox::Activity;
use requests::Caller;
use shutdown::{Ended, Stop};

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
    let caller = Caller {
        peer,
        groups: peer.resolve_groups().await,
    };
    let config = daemon.config();
    let grant = Policy::new(config.access.clone()).grant_in(&peer, &caller.groups);
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
    let mut reader = frames::reader(read, Arc::clone(&daemon.uploads));
    let activity = Activity::new();
    let (outbox, writer) = Outbox::new(write, Arc::clone(&activity));
    let answers = Answers::new(Arc::clone(&daemon), outbox);

    let greeting = handshake(&mut reader, &answers, &peer, grant.is_some());
    let ended = match tokio::time::timeout(HANDSHAKE_TIMEOUT, greeting).await {
        Ok(Greeted::Yes) => {
            reader.greeted();
            let mut stop = Stop::new(daemon, shutdown, activity);
            requests::serve(&mut reader, &answers, &caller, &mut stop).await
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
    shutdown::close(ended, answers, writer).await;
}
