//! One handler per operation, each in a file named after it (the same names
//! as berkutctl's commands and the tests). `dispatch` is the only way in, and
//! it runs after the request has passed `auth::Policy::authorize`.

mod backup_create;
mod backup_delete;
mod backup_list;
mod backup_pin;
mod backup_show;
mod job_attach;
mod plan_enable;
mod plan_set;
mod plan_show;
mod status;

use std::sync::Arc;

use berkut_proto::wire::{Operation, Progress, Reply, ServerMessage};
use tokio::sync::mpsc;

use crate::error::OpError;
use crate::state::Daemon;

/// Sends what a handler has to say about one request back to its client.
pub struct Responder {
    id: u64,
    tx: mpsc::Sender<ServerMessage>,
}

impl Responder {
    pub fn new(id: u64, tx: mpsc::Sender<ServerMessage>) -> Responder {
        Responder { id, tx }
    }

    /// Sends a progress message; `false` once the client has gone away.
    pub async fn progress(&self, progress: Progress) -> bool {
        self.tx
            .send(ServerMessage::Progress {
                id: self.id,
                progress,
            })
            .await
            .is_ok()
    }
}

pub async fn dispatch(
    daemon: &Arc<Daemon>,
    op: Operation,
    resp: &Responder,
) -> Result<Reply, OpError> {
    match op {
        Operation::Status => status::handle(daemon),
        Operation::BackupCreate {
            label,
            scope,
            include_files,
            wait,
        } => backup_create::handle(daemon, label, scope, include_files, wait, resp).await,
        Operation::BackupList { offset, limit } => backup_list::handle(daemon, offset, limit),
        Operation::BackupShow { id } => backup_show::handle(daemon, &id),
        Operation::BackupDelete { id } => backup_delete::handle(daemon, &id).await,
        Operation::JobAttach { id } => job_attach::handle(daemon, &id, resp).await,
        Operation::BackupPin { id } => backup_pin::handle(daemon, &id, true),
        Operation::BackupUnpin { id } => backup_pin::handle(daemon, &id, false),
        Operation::PlanShow => plan_show::handle(daemon),
        Operation::PlanSet { plan } => plan_set::handle(daemon, plan),
        Operation::PlanEnable => plan_enable::handle(daemon, true),
        Operation::PlanDisable => plan_enable::handle(daemon, false),
    }
}
