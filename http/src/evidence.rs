//! `GET /api/backups/restores/{restore_id}/evidence`: a finished restore's
//! evidence as one tar archive, to hand to an auditor, streamed from the
//! daemon's `restore_evidence_export` (PROTOCOL.md 6.33) as its pieces come,
//! never held whole. The daemon builds the archive while it sends it, so
//! its length is not known when the status line goes out: the body is
//! chunked. The daemon's last word says what it sent and whether the files
//! matched the `DIGEST` sent with them; when anything disagrees (a piece
//! out of order, another size or sha256, evidence that no longer matches
//! its `DIGEST`, the daemon cut off), the body ends with an error instead
//! of its last chunk, so no client takes a damaged export for a whole one.

use std::io;

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use berkut_proto::wire::ops;
use berkut_proto::wire::{Reply, ServerMessage};
use bytes::Bytes;
use futures::future::BoxFuture;

use crate::extract::{RestoreIdPath, User};
use crate::pieces::{self, Messages, Pieces, Tally};
use crate::problem::Problem;
use crate::routes::Shared;

pub async fn export(
    State(state): State<Shared>,
    User(user): User,
    RestoreIdPath(id): RestoreIdPath,
) -> Result<Response, Problem> {
    let mut link = state.daemon.connect(user).await?;
    link.send(ops::RestoreEvidenceExport {
        restore_id: id.clone(),
    })
    .await?;
    // The first answer decides the status: an error before any byte (not
    // found, not ended, not allowed) is a problem document.
    let first = match link.next().await? {
        ServerMessage::Error { error, .. } => return Err(Problem::from_daemon(error)),
        other => other,
    };
    let export = Export {
        messages: Messages::new(link, first),
        tally: Tally::starting_at(0),
        done: false,
        id: id.to_string(),
    };
    let mut response = Response::new(pieces::body(export));
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-tar"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{id}-evidence.tar\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

/// One export in flight.
struct Export {
    messages: Messages,
    tally: Tally,
    done: bool,
    id: String,
}

impl Pieces for Export {
    fn step(&mut self) -> BoxFuture<'_, io::Result<Option<Bytes>>> {
        Box::pin(self.take())
    }

    fn finished(&self) -> bool {
        self.done
    }

    fn what(&self) -> String {
        format!("evidence export of restore {}", self.id)
    }
}

impl Export {
    /// `Pieces::step`.
    async fn take(&mut self) -> io::Result<Option<Bytes>> {
        match self.messages.next().await? {
            ServerMessage::Data { offset, data, .. } => {
                self.tally.add(offset, &data)?;
                Ok(Some(Bytes::from(data)))
            }
            ServerMessage::Reply {
                reply:
                    Reply::EvidenceExported {
                        size_bytes,
                        sha256,
                        digest,
                        ..
                    },
                ..
            } => {
                self.done = true;
                let (streamed, received) = (self.tally.sha256(), self.tally.received);
                if size_bytes != received || sha256 != streamed {
                    return Err(io::Error::other(format!(
                        "the evidence streamed ({} bytes, sha256 {streamed}) is not what \
                         berkutd sent ({size_bytes} bytes, sha256 {sha256})",
                        received
                    )));
                }
                if let Some(problem) = digest.as_ref().and_then(|d| d.problems.first()) {
                    return Err(io::Error::other(format!(
                        "the evidence does not match its DIGEST: {problem}"
                    )));
                }
                tracing::info!(restore = %self.id, bytes = received, "evidence exported");
                Ok(None)
            }
            ServerMessage::Progress { .. }
            | ServerMessage::RestoreProgress { .. }
            | ServerMessage::Event { .. } => Ok(None),
            other => Err(pieces::unexpected(other)),
        }
    }
}
