//! `backup_download`: streams a stored archive in bounded pieces, so memory
//! stays flat whatever its size and however slowly the client reads: a
//! piece is read from the file only when the previous ones have found room
//! in the connection's byte-bounded outbox (`connection::Outbox`), which in
//! turn drains only as fast as the socket takes them. A lease keeps the
//! archive from being deleted or rewritten meanwhile; the reply carries the
//! size and sha256 of what was sent, for the client to compare with the
//! record. A transfer may resume at an `offset`: the reply then describes
//! the bytes sent, from there to the end.

use std::os::unix::fs::FileExt;
use std::sync::Arc;

use berkut_proto::wire::ops::BackupDownload;
use berkut_proto::wire::{BackupStatus, Reply, Role};
use sha2::{Digest, Sha256};

use super::backup_show::not_found;
use super::{Op, Responder};

use crate::connection::Piece;
use crate::error::OpError;
use crate::state::Daemon;

impl Op for BackupDownload {
    const IN_MAINTENANCE: bool = false;

    fn role(&self) -> Role {
        Role::Operator
    }

    fn target(&self) -> Option<String> {
        Some(self.id.to_string())
    }

    async fn handle(self, daemon: &Arc<Daemon>, resp: &Responder) -> Result<Reply, OpError> {
        let id = &self.id;
        // The lease comes first, so a delete cannot slip in between the check
        // and the first read.
        let _lease = daemon.downloads.acquire(id);
        let status = daemon.catalogue.status(id);
        match status {
            None => return Err(not_found(id)),
            Some(BackupStatus::Succeeded) => {}
            Some(_) => {
                return Err(OpError::invalid(format!(
                    "backup {id} has no archive to download"
                )))
            }
        }
        let path = daemon.store.archive_path(id);
        let file = Arc::new(
            tokio::task::spawn_blocking(move || std::fs::File::open(path))
                .await
                .map_err(read_error)?
                .map_err(read_error)?,
        );
        // A resumed transfer starts where the client's copy ends; past the
        // end is the client's mistake, at the end an empty download.
        let len = file.metadata().map_err(read_error)?.len();
        if self.offset > len {
            return Err(OpError::invalid(format!(
                "offset {} is past the end of the archive ({len} bytes)",
                self.offset
            )));
        }
        let start = self.offset;
        let mut offset = start;
        // SHA-256 is the costliest step of a download: each piece is hashed
        // on the blocking pool while it goes to the socket and the next one
        // is read, from the same buffer (`Shared`), so on two cores the hash
        // overlaps the transfer instead of adding to it. The hasher passes
        // from one piece's task to the next, in order.
        let mut hashing = tokio::task::spawn_blocking(Sha256::new);
        loop {
            // Pieces are read into buffers from the daemon's pool (large
            // while it has room, `connection::pieces`) and go to the socket
            // from there, uncopied.
            let piece = Arc::new(read_piece(&file, offset, daemon.pieces.take()).await?);
            if piece.is_empty() {
                break;
            }
            let mut hasher = hashing.await.map_err(read_error)?;
            let hashed = Arc::clone(&piece);
            hashing = tokio::task::spawn_blocking(move || {
                hasher.update(hashed.filled());
                hasher
            });
            let n = piece.len() as u64;
            if !resp.data(offset, piece).await {
                return Err(OpError::unavailable("the client went away"));
            }
            offset += n;
        }
        let hasher = hashing.await.map_err(read_error)?;
        Ok(Reply::Downloaded {
            id: id.clone(),
            size_bytes: offset - start,
            sha256: hex::encode(hasher.finalize()),
        })
    }
}

/// Fills `piece` with the bytes at `offset` (fewer only at the end), on the
/// blocking pool.
async fn read_piece(
    file: &Arc<std::fs::File>,
    offset: u64,
    mut piece: Piece,
) -> Result<Piece, OpError> {
    let file = Arc::clone(file);
    tokio::task::spawn_blocking(move || {
        let room = piece.room();
        let mut filled = 0;
        while filled < room.len() {
            match file.read_at(&mut room[filled..], offset + filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        piece.set_len(filled);
        Ok(piece)
    })
    .await
    .map_err(read_error)?
    .map_err(read_error)
}

fn read_error(e: impl std::fmt::Display) -> OpError {
    OpError::unavailable("the archive could not be read").with_detail(e)
}
