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

use crate::error::OpError;
use crate::state::Daemon;

/// Bytes per `data` message: small enough that a download stalled by its
/// client holds little (this piece and the outbox's two), large enough that
/// the frames cost nothing next to the bytes. 64 KiB pieces were tried:
/// a stalled download then holds one queued and one waiting, and 250 of
/// them took the daemon past 64 MiB.
pub const DOWNLOAD_CHUNK: usize = 32 * 1024;

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
        let mut hasher = Sha256::new();
        let start = self.offset;
        let mut offset = start;
        loop {
            // A fresh buffer per piece, moved into its message: nothing is
            // copied, and nothing is held once the piece is encoded.
            let piece;
            (piece, hasher) = read_piece(&file, offset, hasher).await?;
            if piece.is_empty() {
                break;
            }
            let n = piece.len() as u64;
            if !resp.data(offset, piece).await {
                return Err(OpError::unavailable("the client went away"));
            }
            offset += n;
        }
        Ok(Reply::Downloaded {
            id: id.clone(),
            size_bytes: offset - start,
            sha256: hex::encode(hasher.finalize()),
        })
    }
}

/// Reads up to `DOWNLOAD_CHUNK` bytes at `offset` (fewer only at the end)
/// and adds them to `hasher`, on the blocking pool: SHA-256 is the costliest
/// step of a download, and the runtime's threads have the socket to serve.
async fn read_piece(
    file: &Arc<std::fs::File>,
    offset: u64,
    mut hasher: Sha256,
) -> Result<(Vec<u8>, Sha256), OpError> {
    let file = Arc::clone(file);
    // Allocated here, on the runtime's thread, rather than in the blocking
    // pool, whose threads would each keep an allocator arena of their own.
    let mut buf = vec![0u8; DOWNLOAD_CHUNK];
    tokio::task::spawn_blocking(move || {
        let mut filled = 0;
        while filled < buf.len() {
            match file.read_at(&mut buf[filled..], offset + filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        buf.truncate(filled);
        hasher.update(&buf);
        Ok((buf, hasher))
    })
    .await
    .map_err(read_error)?
    .map_err(read_error)
}

fn read_error(e: impl std::fmt::Display) -> OpError {
    OpError::unavailable("the archive could not be read").with_detail(e)
}
