//! `restore_status`, optionally following the restore to its end. Finished
//! restores are read from their evidence on
//! disk, so their status survives restarts.

use std::sync::Arc;

use berkut_proto::ids::RestoreId;
use berkut_proto::wire::ops::RestoreStatus;
use berkut_proto::wire::{Reply, RestoreRecord, Role};
use tokio::sync::watch;

use super::{Op, Responder};
use crate::error::OpError;
use crate::restore::record;
use crate::state::Daemon;

pub(super) fn not_found(id: &RestoreId) -> OpError {
    OpError::not_found(format!("there is no restore {id}"))
}

impl Op for RestoreStatus {
    const IN_MAINTENANCE: bool = true;

    fn role(&self) -> Role {
        Role::Viewer
    }

    fn target(&self) -> Option<String> {
        Some(self.restore_id.to_string())
    }

    async fn handle(self, daemon: &Arc<Daemon>, resp: &Responder) -> Result<Reply, OpError> {
        let (id, wait) = (&self.restore_id, self.wait);
        let restore = match daemon.restores.watch(id) {
            Some(view) if wait => follow(view, resp).await?,
            Some(view) => view.borrow().clone(),
            None => record::load(&daemon.config().state_dir, id)
                .map(|s| s.record)
                .ok_or_else(|| not_found(id))?,
        };
        Ok(Reply::Restore { restore })
    }
}

/// Streams the record at every change until the restore ends.
pub async fn follow(
    mut view: watch::Receiver<RestoreRecord>,
    resp: &Responder,
) -> Result<RestoreRecord, OpError> {
    loop {
        let current = view.borrow_and_update().clone();
        if current.status.is_finished() {
            return Ok(current);
        }
        if !resp.restore(current).await {
            return Err(OpError::unavailable("the client went away"));
        }
        if view.changed().await.is_err() {
            let last = view.borrow().clone();
            return if last.status.is_finished() {
                Ok(last)
            } else {
                Err(OpError::internal("a restore ended without a final record"))
            };
        }
    }
}
