//! `restore_status` (optionally following the restore to its end) and
//! `restore_evidence`. Finished restores are read from their evidence on
//! disk, so their status survives restarts.

use berkut_proto::ids::RestoreId;
use berkut_proto::wire::{Reply, RestoreRecord};
use tokio::sync::watch;

use super::Responder;
use crate::error::OpError;
use crate::restore::record;
use crate::state::Daemon;

fn not_found(id: &RestoreId) -> OpError {
    OpError::not_found(format!("there is no restore {id}"))
}

pub async fn handle(
    daemon: &Daemon,
    id: &RestoreId,
    wait: bool,
    resp: &Responder,
) -> Result<Reply, OpError> {
    let restore = match daemon.restores.watch(id) {
        Some(view) if wait => follow(view, resp).await?,
        Some(view) => view.borrow().clone(),
        None => record::load(&daemon.config().state_dir, id)
            .map(|s| s.record)
            .ok_or_else(|| not_found(id))?,
    };
    Ok(Reply::Restore { restore })
}

pub fn evidence(daemon: &Daemon, id: &RestoreId) -> Result<Reply, OpError> {
    let evidence = record::evidence(&daemon.config().state_dir, id).ok_or_else(|| not_found(id))?;
    Ok(Reply::Evidence {
        evidence: Box::new(evidence),
    })
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
