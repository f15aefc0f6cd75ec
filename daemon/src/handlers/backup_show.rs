//! `backup_show`: one backup's record, with the restore time its drills
//! (or its neighbours') measured.

use std::sync::Arc;

use berkut_proto::ids::BackupId;
use berkut_proto::wire::ops::BackupShow;
use berkut_proto::wire::{BackupRecord, Reply, Role};

use super::{Op, Responder};
use crate::error::OpError;
use crate::state::Daemon;

impl Op for BackupShow {
    const IN_MAINTENANCE: bool = false;

    fn role(&self) -> Role {
        Role::Viewer
    }

    fn target(&self) -> Option<String> {
        Some(self.id.to_string())
    }

    async fn handle(self, daemon: &Arc<Daemon>, _: &Responder) -> Result<Reply, OpError> {
        let id = &self.id;
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
}

pub fn not_found(id: &BackupId) -> OpError {
    OpError::not_found(format!("there is no backup {id}"))
}
