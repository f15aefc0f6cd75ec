//! `backup_show`: one backup's record, with the restore time its drills
//! (or its neighbours') measured.

use berkut_proto::ids::BackupId;
use berkut_proto::wire::{BackupRecord, Reply};

use crate::error::OpError;
use crate::state::Daemon;

pub fn handle(daemon: &Daemon, id: &BackupId) -> Result<Reply, OpError> {
    let backup = daemon
        .catalogue
        .read(|cat| {
            cat.get(id).map(|e| BackupRecord {
                expected_restore: crate::restore::verdict::estimate(cat, id),
                ..e.record()
            })
        })
        .ok_or_else(|| not_found(id))?;
    Ok(Reply::Backup { backup })
}

pub fn not_found(id: &BackupId) -> OpError {
    OpError::not_found(format!("there is no backup {id}"))
}
