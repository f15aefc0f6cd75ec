//! `job_attach`: follows a queued or running job, streaming its progress,
//! and answers with its final record. A job that has already ended answers
//! at once from the catalogue.

use std::sync::Arc;

use berkut_proto::wire::ops::JobAttach;
use berkut_proto::wire::{BackupRecord, Reply, Role};
use tokio::sync::watch;

use super::backup_show::not_found;
use super::{Op, Responder};
use crate::error::OpError;
use crate::jobs::JobView;
use crate::state::Daemon;

impl Op for JobAttach {
    const IN_MAINTENANCE: bool = false;

    fn role(&self) -> Role {
        Role::Viewer
    }

    fn target(&self) -> Option<String> {
        Some(self.id.to_string())
    }

    async fn handle(self, daemon: &Arc<Daemon>, resp: &Responder) -> Result<Reply, OpError> {
        let id = &self.id;
        // The job registry is asked first: a job leaves it only after its final
        // record is in the catalogue, so one of the two always has it.
        let backup = match daemon.jobs.watch(id) {
            Some(view) => follow(view, resp).await?,
            None => daemon.catalogue.record(id).ok_or_else(|| not_found(id))?,
        };
        Ok(Reply::Backup { backup })
    }
}

/// Streams a job's progress until it ends, then returns its record.
pub async fn follow(
    mut view: watch::Receiver<JobView>,
    resp: &Responder,
) -> Result<BackupRecord, OpError> {
    loop {
        let current = view.borrow_and_update().clone();
        if current.record.status.is_finished() {
            return Ok(current.record);
        }
        if !resp.progress(current.progress).await {
            return Err(OpError::unavailable("the client went away"));
        }
        if view.changed().await.is_err() {
            let last = view.borrow().clone();
            return if last.record.status.is_finished() {
                Ok(last.record)
            } else {
                Err(OpError::internal("a job ended without a final record"))
            };
        }
    }
}
