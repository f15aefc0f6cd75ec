//! `backup_show`: one backup's record.

use berkut_proto::ids::BackupId;
use berkut_proto::wire::Reply;

use crate::error::OpError;
use crate::state::Daemon;

pub fn handle(daemon: &Daemon, id: &BackupId) -> Result<Reply, OpError> {
    let backup = daemon.catalogue.record(id).ok_or_else(|| not_found(id))?;
    Ok(Reply::Backup { backup })
}

pub fn not_found(id: &BackupId) -> OpError {
    OpError::not_found(format!("there is no backup {id}"))
}
