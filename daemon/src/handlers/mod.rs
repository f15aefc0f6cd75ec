//! One file per operation, named after it (the same names as berkutctl's
//! commands and the tests). Each implements `Op` for its request type from
//! `berkut_proto::wire::ops`: the role it needs, whether it is served during
//! maintenance, the backup or restore it names in the audit trail, and its
//! handler, side by side. The list at the bottom names every operation once;
//! from it come `dispatch` (the only way in, after the request has passed
//! `auth::Policy::authorize`), `required_role`, `served_in_maintenance` and
//! `target_of`. A variant of `Operation` missing from the list, or a request
//! type without `Op`, does not compile.

mod audit_tail;
mod audit_verify;
mod backup_create;
mod backup_delete;
mod backup_download;
pub mod backup_import;
mod backup_list;
mod backup_pin;
mod backup_show;
mod backup_unpin;
mod drill_run;
mod import_check;
mod job_attach;
mod maintenance_clear;
mod maintenance_status;
mod maintenance_watch;
mod metrics;
mod notify_test;
mod plan_disable;
mod plan_enable;
mod plan_set;
mod plan_show;
mod remote_delete;
mod remote_fetch;
mod remote_list;
mod remote_status;
mod remote_verify;
mod responder;
mod restore_cleanup;
mod restore_evidence;
mod restore_evidence_export;
mod restore_rollback;
mod restore_start;
mod restore_status;
mod status;
mod store_rescan;
mod store_rewrap;

use std::future::Future;
use std::sync::Arc;

use berkut_proto::wire::ops::{self, Request};
use berkut_proto::wire::{Operation, Reply, Role};

pub use responder::Responder;

use crate::error::OpError;
use crate::state::Daemon;

/// What the daemon knows of an operation, declared in the operation's own
/// file. Nothing has a default: an operation that does not say who may run
/// it, whether it runs during maintenance, or what it names in the audit
/// trail does not compile. Its wire name is `Request::NAME`, declared with
/// its line in `Operation`.
pub trait Op: Request + Sized + Send + 'static {
    /// Whether the operation is served while a restore holds the
    /// maintenance lock (R6): only what lets a client watch the restore.
    const IN_MAINTENANCE: bool;

    /// The least role the request needs. A delegated request (`on_behalf_of`)
    /// is narrowed to the user's role and the grant's ceiling first
    /// (`auth::Policy`), then compared with this.
    fn role(&self) -> Role;

    /// The backup or restore the request names, for its audit event; `None`
    /// for an operation on the whole daemon.
    fn target(&self) -> Option<String>;

    /// Runs the request. Progress and other streamed messages go through
    /// `resp`; the reply or error returned is sent and audited by the
    /// connection.
    fn handle(
        self,
        daemon: &Arc<Daemon>,
        resp: &Responder,
    ) -> impl Future<Output = Result<Reply, OpError>> + Send;
}

/// Fault injection for the test suite (debug builds only): a handler that
/// panics must fail its request and nothing else.
fn inject_fault(name: &str) {
    #[cfg(debug_assertions)]
    if std::env::var("BERKUT_FAULT_PANIC_IN").as_deref() == Ok(name) {
        panic!("fault injected into {name}");
    }
    #[cfg(not(debug_assertions))]
    let _ = name;
}

/// Generates the functions that go from an `Operation` to its `Op`.
macro_rules! operations {
    ($($variant:ident),* $(,)?) => {
        /// Runs the request's handler.
        pub async fn dispatch(
            daemon: &Arc<Daemon>,
            op: Operation,
            resp: &Responder,
        ) -> Result<Reply, OpError> {
            match op {
                $(Operation::$variant(request) => {
                    inject_fault(<ops::$variant as Request>::NAME);
                    request.handle(daemon, resp).await
                })*
            }
        }

        /// The least role the request needs (`Op::role`).
        pub fn required_role(op: &Operation) -> Role {
            match op {
                $(Operation::$variant(request) => request.role(),)*
            }
        }

        /// Whether the request is served during maintenance
        /// (`Op::IN_MAINTENANCE`).
        pub fn served_in_maintenance(op: &Operation) -> bool {
            match op {
                $(Operation::$variant(_) => <ops::$variant as Op>::IN_MAINTENANCE,)*
            }
        }

        /// The backup or restore the request names (`Op::target`).
        pub fn target_of(op: &Operation) -> Option<String> {
            match op {
                $(Operation::$variant(request) => request.target(),)*
            }
        }
    };
}

// Every operation, once.
operations!(
    Status,
    BackupCreate,
    BackupList,
    BackupShow,
    BackupDelete,
    JobAttach,
    BackupPin,
    BackupUnpin,
    PlanShow,
    PlanSet,
    PlanEnable,
    PlanDisable,
    RestoreStart,
    RestoreStatus,
    RestoreEvidence,
    RestoreRollback,
    RestoreCleanup,
    MaintenanceStatus,
    MaintenanceWatch,
    MaintenanceClear,
    BackupDownload,
    BackupImport,
    AuditTail,
    AuditVerify,
    StoreRewrap,
    StoreRescan,
    RemoteList,
    RemoteFetch,
    RemoteVerify,
    RemoteStatus,
    RemoteDelete,
    Metrics,
    NotifyTest,
    DrillRun,
    RestoreEvidenceExport,
);

#[cfg(test)]
mod tests;
