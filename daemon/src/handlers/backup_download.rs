//! `backup_download`: streams a stored archive in bounded pieces, so memory
//! stays flat whatever its size. A lease keeps the archive from being
//! deleted or rewritten meanwhile; the reply carries the size and sha256 of
//! what was sent, for the client to compare with the record.

use berkut_proto::ids::BackupId;
use berkut_proto::wire::{BackupStatus, Reply};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use super::backup_show::not_found;
use super::Responder;

use crate::error::OpError;
use crate::state::Daemon;

/// Bytes per `data` message.
pub const DOWNLOAD_CHUNK: usize = 256 * 1024;

pub async fn handle(daemon: &Daemon, id: &BackupId, resp: &Responder) -> Result<Reply, OpError> {
    // The lease comes first, so a delete cannot slip in between the check
    // and the first read.
    let _lease = daemon.downloads.acquire(id);
    let status = daemon
        .catalogue
        .lock()
        .unwrap()
        .get(id)
        .map(|e| e.state.status());
    match status {
        None => return Err(not_found(id)),
        Some(BackupStatus::Succeeded) => {}
        Some(_) => {
            return Err(OpError::invalid(format!(
                "backup {id} has no archive to download"
            )))
        }
    }
    let mut file = tokio::fs::File::open(daemon.store.archive_path(id))
        .await
        .map_err(read_error)?;
    let mut hasher = Sha256::new();
    let mut offset = 0u64;
    let mut buf = vec![0u8; DOWNLOAD_CHUNK];
    loop {
        let n = file.read(&mut buf).await.map_err(read_error)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        if !resp.data(offset, buf[..n].to_vec()).await {
            return Err(OpError::unavailable("the client went away"));
        }
        offset += n as u64;
    }
    Ok(Reply::Downloaded {
        id: id.clone(),
        size_bytes: offset,
        sha256: hex::encode(hasher.finalize()),
    })
}

fn read_error(e: std::io::Error) -> OpError {
    OpError::unavailable("the archive could not be read").with_detail(e)
}
