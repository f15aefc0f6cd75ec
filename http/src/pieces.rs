//! What the streaming endpoints (`download`, `evidence`) share: a daemon
//! link's `data` messages turned into an HTTP body as they come. The first
//! message is read before the response, to choose its status; after that a
//! failure can no longer be a status, so it ends the body with an error
//! (and a log line) instead of its last chunk, and no client takes a
//! broken transfer for a whole one.

use std::io;

use axum::body::Body;
use berkut_proto::wire::ServerMessage;
use bytes::Bytes;
use futures::future::BoxFuture;
use sha2::{Digest, Sha256};

use crate::daemon::Link;

/// One transfer's own rules: what each message means for the body.
pub trait Pieces: Send + 'static {
    /// Takes the next message: bytes to send, nothing (bytes skipped, or
    /// the end, after which `finished` says so), or why the body must be
    /// cut off.
    fn step(&mut self) -> BoxFuture<'_, io::Result<Option<Bytes>>>;
    /// The last message has been taken.
    fn finished(&self) -> bool;
    /// What the log names when the body is cut off.
    fn what(&self) -> String;
}

/// The body of a transfer: its pieces' bytes in order, until it finishes
/// or fails.
pub fn body(pieces: impl Pieces) -> Body {
    Body::from_stream(futures::stream::unfold(
        (pieces, false),
        |(mut pieces, failed)| async move {
            loop {
                if failed || pieces.finished() {
                    return None;
                }
                match pieces.step().await {
                    Ok(Some(bytes)) => return Some((Ok(bytes), (pieces, false))),
                    Ok(None) => continue,
                    Err(e) => {
                        tracing::warn!(transfer = %pieces.what(), error = %e, "transfer cut off");
                        return Some((Err(e), (pieces, true)));
                    }
                }
            }
        },
    ))
}

/// A link whose first message was read already, to choose the status.
pub struct Messages {
    link: Link,
    first: Option<ServerMessage>,
}

impl Messages {
    pub fn new(link: Link, first: ServerMessage) -> Messages {
        Messages {
            link,
            first: Some(first),
        }
    }

    pub async fn next(&mut self) -> io::Result<ServerMessage> {
        match self.first.take() {
            Some(m) => Ok(m),
            None => self
                .link
                .next()
                .await
                .map_err(|p| io::Error::other(p.detail)),
        }
    }
}

/// Why a message that is neither a piece nor the expected end cuts the
/// transfer off.
pub fn unexpected(msg: ServerMessage) -> io::Error {
    match msg {
        ServerMessage::Error { error, .. } => io::Error::other(format!("berkutd: {error}")),
        other => io::Error::other(format!(
            "unexpected message from berkutd: {:?}",
            other.request_id()
        )),
    }
}

/// The bytes a transfer has received, checked to come in order, and their
/// sha256 (from where the daemon began).
pub struct Tally {
    /// The offset received up to.
    pub received: u64,
    hasher: Sha256,
}

impl Tally {
    pub fn starting_at(offset: u64) -> Tally {
        Tally {
            received: offset,
            hasher: Sha256::new(),
        }
    }

    /// Counts a piece that says it starts at `offset`.
    pub fn add(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        if offset != self.received {
            return Err(io::Error::other("berkutd sent a piece out of order"));
        }
        self.hasher.update(data);
        self.received += data.len() as u64;
        Ok(())
    }

    /// The hex sha256 of what was received.
    pub fn sha256(&self) -> String {
        hex::encode(self.hasher.clone().finalize())
    }
}
