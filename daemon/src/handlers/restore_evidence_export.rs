//! `restore_evidence_export`: a finished restore's evidence directory as
//! one tar archive (`restore::export`), streamed in `data` pieces the way
//! `backup_download` streams an archive, so the client needs no access to
//! the daemon's state directory. The archive is built while it is sent: a
//! blocking thread writes it into a channel of two pieces, which drains
//! only as fast as the connection's outbox, so memory stays flat. The reply
//! carries the size and sha256 of what was sent and how the files sent
//! compare with the `DIGEST` sent with them.

use std::sync::Arc;

use berkut_proto::wire::ops::RestoreEvidenceExport;
use berkut_proto::wire::{Reply, Role};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::restore_status::not_found;
use super::{Op, Responder};
use crate::error::OpError;
use crate::restore::{export, record};
use crate::state::Daemon;

impl Op for RestoreEvidenceExport {
    const IN_MAINTENANCE: bool = false;

    fn role(&self) -> Role {
        Role::Operator
    }

    fn target(&self) -> Option<String> {
        Some(self.restore_id.to_string())
    }

    async fn handle(self, daemon: &Arc<Daemon>, resp: &Responder) -> Result<Reply, OpError> {
        let id = self.restore_id;
        let state_dir = daemon.config().state_dir.clone();
        let summary = record::load(&state_dir, &id).ok_or_else(|| not_found(&id))?;
        if !summary.record.status.is_finished() {
            // Its logs still grow and it has no DIGEST yet: nothing to hand
            // an auditor.
            return Err(OpError::conflict(format!(
                "restore {id} has not ended; its evidence is exported once it has"
            )));
        }
        let dir = record::restores_dir(&state_dir).join(id.as_str());
        let root = id.to_string();
        let (tx, mut rx) = mpsc::channel(2);
        let writer = tokio::task::spawn_blocking(move || {
            export::write_tar(&dir, &root, export::PieceWriter::new(tx))
        });
        let mut hasher = Sha256::new();
        let mut offset = 0u64;
        while let Some(piece) = rx.recv().await {
            hasher.update(&piece);
            let n = piece.len() as u64;
            if !resp.data(offset, piece).await {
                // Dropping the receiver ends the writer at its next piece.
                drop(rx);
                let _ = writer.await;
                return Err(OpError::unavailable("the client went away"));
            }
            offset += n;
        }
        let exported = writer.await.map_err(read_error)?.map_err(read_error)?;
        Ok(Reply::EvidenceExported {
            restore_id: id,
            size_bytes: offset,
            sha256: hex::encode(hasher.finalize()),
            files: exported.files,
            digest: exported.digest,
        })
    }
}

fn read_error(e: impl std::fmt::Display) -> OpError {
    OpError::unavailable("the evidence could not be read").with_detail(e)
}
