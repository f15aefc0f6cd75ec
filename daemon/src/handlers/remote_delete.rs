//! `remote_delete` (`berkutctl backup delete ID --remote NAME |
//! --everywhere`): a backup's copy on one remote, or its local archive and
//! every copy. `backup_delete` alone removes the local archive only.

use std::sync::Arc;

use berkut_proto::wire::ops::RemoteDelete;
use berkut_proto::wire::{CopyState, Reply, Role};

use super::backup_show::not_found;
use super::{Op, Responder};
use crate::error::OpError;
use crate::state::Daemon;

impl Op for RemoteDelete {
    const IN_MAINTENANCE: bool = false;

    fn role(&self) -> Role {
        Role::Admin
    }

    fn target(&self) -> Option<String> {
        Some(self.id.to_string())
    }

    async fn handle(self, daemon: &Arc<Daemon>, _: &Responder) -> Result<Reply, OpError> {
        let id = &self.id;
        let Some(entry) = daemon.catalogue.entry(id) else {
            return Err(not_found(id));
        };
        let remotes: Vec<String> = match (&self.remote, self.everywhere) {
            (Some(name), false) => vec![name.clone()],
            (None, true) => entry
                .copies
                .iter()
                .filter(|c| c.record.state == CopyState::Copied)
                .map(|c| c.record.remote.clone())
                .collect(),
            _ => {
                return Err(OpError::invalid(
                    "name exactly one of remote and everywhere",
                ))
            }
        };
        if self.everywhere && daemon.backup_busy(id) {
            return Err(OpError::conflict(format!("backup {id} is in use")));
        }
        for name in &remotes {
            crate::remote::ops::delete_copy(daemon, id, name).await?;
        }
        if self.everywhere && daemon.catalogue.contains(id) {
            // No copy left: the local archive and the record go.
            daemon.remove_backup(id)?;
        }
        tracing::info!(backup = %id, remotes = ?remotes, everywhere = self.everywhere, "remote copies deleted");
        Ok(Reply::Deleted { id: id.clone() })
    }
}
