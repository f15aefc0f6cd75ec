//! `backup_delete`: removes an archive and its record. A backup that is
//! queued or being written is a `conflict`: deleting it would race the job.

use std::sync::Arc;

use berkut_proto::wire::ops::BackupDelete;
use berkut_proto::wire::{Reply, Role};

use super::backup_show::not_found;
use super::{Op, Responder};
use crate::error::OpError;
use crate::state::Daemon;

impl Op for BackupDelete {
    const IN_MAINTENANCE: bool = false;

    fn role(&self) -> Role {
        Role::Admin
    }

    fn target(&self) -> Option<String> {
        Some(self.id.to_string())
    }

    async fn handle(self, daemon: &Arc<Daemon>, _: &Responder) -> Result<Reply, OpError> {
        let id = &self.id;
        if !daemon.catalogue.contains(id) {
            return Err(not_found(id));
        }
        daemon.remove_backup(id)?;
        tracing::info!(backup = %id, "backup deleted");
        Ok(Reply::Deleted { id: id.clone() })
    }
}
