//! One handler per operation, each in a file named after it (the same names
//! as berkutctl's commands and the tests). `dispatch` is the only way in, and
//! it runs after the request has passed `auth::Policy::authorize`.

mod audit;
mod backup_create;
mod backup_delete;
mod backup_download;
pub mod backup_import;
mod backup_list;
mod backup_pin;
mod backup_show;
mod import_check;
mod job_attach;
mod maintenance_status;
mod plan_enable;
mod plan_set;
mod plan_show;
mod restore_rollback;
mod restore_start;
mod restore_status;
mod status;
mod store_rescan;
mod store_rewrap;

use std::sync::Arc;

use berkut_proto::wire::{Operation, Progress, Reply, ServerMessage};
use tokio::sync::mpsc;

use crate::connection::Outbox;
use crate::error::OpError;
use crate::state::Daemon;

/// Sends what a handler has to say about one request back to its client.
pub struct Responder {
    id: u64,
    tx: Outbox,
    upload: std::sync::Mutex<Option<mpsc::Receiver<backup_import::Piece>>>,
}

impl Responder {
    pub fn new(id: u64, tx: Outbox) -> Responder {
        Responder {
            id,
            tx,
            upload: std::sync::Mutex::new(None),
        }
    }

    /// A responder for an import, with the pieces the client uploads.
    pub fn with_upload(
        id: u64,
        tx: Outbox,
        upload: mpsc::Receiver<backup_import::Piece>,
    ) -> Responder {
        Responder {
            id,
            tx,
            upload: std::sync::Mutex::new(Some(upload)),
        }
    }

    pub fn take_upload(&self) -> Option<mpsc::Receiver<backup_import::Piece>> {
        self.upload.lock().unwrap().take()
    }

    /// Tells the client to send the data of its upload.
    pub async fn proceed(&self) -> bool {
        self.tx
            .send(ServerMessage::Continue { id: self.id })
            .await
            .is_ok()
    }

    /// Sends a piece of a download; `false` once the client has gone away.
    pub async fn data(&self, offset: u64, data: Vec<u8>) -> bool {
        self.tx
            .send(ServerMessage::Data {
                id: self.id,
                offset,
                data,
            })
            .await
            .is_ok()
    }

    /// Sends a restore's record while it is followed; `false` once the
    /// client has gone away.
    pub async fn restore(&self, restore: berkut_proto::wire::RestoreRecord) -> bool {
        self.tx
            .send(ServerMessage::RestoreProgress {
                id: self.id,
                restore,
            })
            .await
            .is_ok()
    }

    /// Resolves once the client has hung up: for a handler that may wait a
    /// long time with nothing to send.
    pub async fn client_gone(&self) {
        self.tx.gone().await
    }

    /// Sends a maintenance event; `false` once the client has gone away.
    pub async fn event(&self, maintenance: berkut_proto::wire::MaintenanceInfo) -> bool {
        self.tx
            .send(ServerMessage::Event {
                id: self.id,
                maintenance,
            })
            .await
            .is_ok()
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
    // Fault injection for the test suite (debug builds only): a handler
    // that panics must fail its request and nothing else.
    #[cfg(debug_assertions)]
    if std::env::var("BERKUT_FAULT_PANIC_IN").as_deref() == Ok(op.name()) {
        panic!("fault injected into {}", op.name());
    }
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
        Operation::RestoreStart {
            backup_id,
            dry_run,
            with_globals,
            wait,
        } => restore_start::handle(daemon, backup_id, dry_run, with_globals, wait, resp).await,
        Operation::RestoreStatus { restore_id, wait } => {
            restore_status::handle(daemon, &restore_id, wait, resp).await
        }
        Operation::RestoreEvidence { restore_id } => restore_status::evidence(daemon, &restore_id),
        Operation::RestoreRollback { restore_id } => {
            restore_rollback::rollback(daemon, &restore_id).await
        }
        Operation::RestoreCleanup { restore_id } => {
            restore_rollback::cleanup(daemon, &restore_id).await
        }
        Operation::MaintenanceStatus => maintenance_status::handle(daemon),
        Operation::MaintenanceWatch => maintenance_status::watch(daemon, resp).await,
        Operation::MaintenanceClear => maintenance_status::clear(daemon),
        Operation::StoreRewrap => store_rewrap::handle(daemon).await,
        Operation::StoreRescan => store_rescan::handle(daemon).await,
        Operation::AuditTail { lines, before } => audit::tail(daemon, lines, before),
        Operation::AuditVerify => audit::verify(daemon),
        Operation::BackupDownload { id } => backup_download::handle(daemon, &id, resp).await,
        Operation::BackupImport { size } => backup_import::handle(daemon, size, resp).await,
    }
}
