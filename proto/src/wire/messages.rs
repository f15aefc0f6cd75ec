//! The messages of the protocol. Every message is a MessagePack map with a
//! `type` field naming its variant and named fields for the rest, so a client
//! in another language can build them by hand, and fields can be added later
//! without breaking older peers (unknown fields are ignored).
//!
//! A conversation: the client sends `hello`, the server answers `welcome` (or
//! an error and closes). Then the client sends `request`s, each with an id of
//! its choosing; for each, the server sends zero or more `progress` messages
//! and then exactly one `reply` or `error` carrying the same id. Requests on
//! one connection may overlap.

use serde::{Deserialize, Serialize};

use super::access::OnBehalfOf;
use super::error::ErrorBody;
use super::plan::{PlanInfo, PlanSpec};
use super::records::{BackupRecord, Progress, StatusInfo};
use super::restore::{Evidence, MaintenanceInfo, RestoreRecord};
use crate::ids::{BackupId, RestoreId};
use crate::manifest::Scope;

fn default_tail() -> u32 {
    20
}

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// The most records one `backup_list` reply carries; a page of them stays
/// far below the frame limit.
pub const MAX_LIST_PAGE: u32 = 1000;

/// Longest label a backup may carry, in characters.
pub const MAX_LABEL_CHARS: usize = 200;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    Hello {
        protocol_version: u32,
        /// Free-form client name and version, for the daemon's log.
        client: String,
    },
    Request {
        id: u64,
        op: Operation,
        /// Only from the main application (a peer with an `app` grant):
        /// the end user the request is made for.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        on_behalf_of: Option<OnBehalfOf>,
    },
    /// A piece of an upload (`backup_import`), after the daemon said
    /// `continue`. The last one has `end` set (and may be empty).
    Data {
        id: u64,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
        #[serde(default)]
        end: bool,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Operation {
    /// Version, uptime, and the jobs running and queued.
    Status,
    /// Starts a backup. With `wait`, progress is streamed and the reply is
    /// the finished record; without, the reply is the queued record at once.
    BackupCreate {
        #[serde(default)]
        label: String,
        #[serde(default)]
        scope: Scope,
        #[serde(default)]
        include_files: bool,
        #[serde(default)]
        wait: bool,
    },
    /// A page of the catalogue, newest first: `limit` records (at most
    /// `MAX_LIST_PAGE`, which is also the default) after skipping `offset`.
    BackupList {
        #[serde(default)]
        offset: u64,
        #[serde(default)]
        limit: Option<u32>,
    },
    BackupShow {
        id: BackupId,
    },
    BackupDelete {
        id: BackupId,
    },
    /// Streams the progress of a queued or running job, then its final
    /// record. A finished job answers with its record at once.
    JobAttach {
        id: BackupId,
    },
    /// Keeps a backup out of retention's reach.
    BackupPin {
        id: BackupId,
    },
    BackupUnpin {
        id: BackupId,
    },
    PlanShow,
    /// Replaces the plan (validated as a whole) and enables it.
    PlanSet {
        plan: PlanSpec,
    },
    PlanEnable,
    PlanDisable,
    /// Starts a restore of a backup: a dry-run into a scratch database, or
    /// a real restore under maintenance. With `wait`, the record is
    /// streamed (`restore_progress`) until it ends.
    RestoreStart {
        backup_id: BackupId,
        /// Required: a real restore replaces the live database, and must
        /// never be asked for by leaving a field out.
        dry_run: bool,
        #[serde(default)]
        with_globals: bool,
        #[serde(default)]
        wait: bool,
    },
    /// A restore's record with its steps; with `wait`, follows it to its end.
    RestoreStatus {
        restore_id: RestoreId,
        #[serde(default)]
        wait: bool,
    },
    RestoreEvidence {
        restore_id: RestoreId,
    },
    /// Puts the database that a real restore replaced back in place.
    RestoreRollback {
        restore_id: RestoreId,
    },
    /// Drops the database a real restore kept for rollback.
    RestoreCleanup {
        restore_id: RestoreId,
    },
    MaintenanceStatus,
    /// Streams an `event` whenever maintenance starts or ends, beginning
    /// with the current state; the request never ends on its own.
    MaintenanceWatch,
    /// Lifts maintenance left on after an interrupted restore, once an
    /// administrator has checked the database.
    MaintenanceClear,
    /// Streams a stored archive's bytes as `data` messages, then replies
    /// with its size and sha256.
    BackupDownload {
        id: BackupId,
    },
    /// Uploads an archive of `size` bytes: the daemon answers `continue`
    /// (or refuses at once, e.g. `too_large`), the client sends `data`
    /// messages, and the reply is the imported backup's record.
    BackupImport {
        size: u64,
    },
    /// The last `lines` events of the audit trail (JSON lines).
    AuditTail {
        #[serde(default = "default_tail")]
        lines: u32,
        /// Only lines before the one with this number: the `next` of the
        /// previous page. The newest lines when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<u64>,
    },
    /// Checks the audit trail's hash chain from its first line.
    AuditVerify,
    /// Re-wraps every archive not under the primary key, so an old key can
    /// be retired. Archives in use are left for a later run.
    StoreRewrap,
    /// Looks at the backup directory again: a `missing` backup whose
    /// archive is back and authenticates turns `succeeded`, a `succeeded`
    /// one whose archive is gone turns `missing`, and archives the
    /// catalogue does not know are added.
    StoreRescan,
}

impl Operation {
    /// Whether the operation is served while a restore holds the
    /// maintenance lock (R6): only what lets a client watch the restore.
    pub fn allowed_in_maintenance(&self) -> bool {
        matches!(
            self,
            Operation::Status
                | Operation::RestoreStatus { .. }
                | Operation::MaintenanceStatus
                | Operation::MaintenanceWatch
                | Operation::MaintenanceClear
        )
    }

    /// The first page of the catalogue.
    pub fn list_first_page() -> Operation {
        Operation::BackupList {
            offset: 0,
            limit: None,
        }
    }

    /// The operation's name as it appears on the wire, for logs and audit.
    pub fn name(&self) -> &'static str {
        match self {
            Operation::Status => "status",
            Operation::BackupCreate { .. } => "backup_create",
            Operation::BackupList { .. } => "backup_list",
            Operation::BackupShow { .. } => "backup_show",
            Operation::BackupDelete { .. } => "backup_delete",
            Operation::JobAttach { .. } => "job_attach",
            Operation::BackupPin { .. } => "backup_pin",
            Operation::BackupUnpin { .. } => "backup_unpin",
            Operation::PlanShow => "plan_show",
            Operation::PlanSet { .. } => "plan_set",
            Operation::PlanEnable => "plan_enable",
            Operation::PlanDisable => "plan_disable",
            Operation::RestoreStart { .. } => "restore_start",
            Operation::RestoreStatus { .. } => "restore_status",
            Operation::RestoreEvidence { .. } => "restore_evidence",
            Operation::RestoreRollback { .. } => "restore_rollback",
            Operation::RestoreCleanup { .. } => "restore_cleanup",
            Operation::MaintenanceStatus => "maintenance_status",
            Operation::MaintenanceWatch => "maintenance_watch",
            Operation::MaintenanceClear => "maintenance_clear",
            Operation::StoreRewrap => "store_rewrap",
            Operation::StoreRescan => "store_rescan",
            Operation::AuditTail { .. } => "audit_tail",
            Operation::AuditVerify => "audit_verify",
            Operation::BackupDownload { .. } => "backup_download",
            Operation::BackupImport { .. } => "backup_import",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    Welcome {
        protocol_version: u32,
        /// The daemon's version.
        server: String,
    },
    Progress {
        id: u64,
        progress: Progress,
    },
    /// The whole record of a restore being followed, sent when it changes.
    RestoreProgress {
        id: u64,
        restore: RestoreRecord,
    },
    /// A piece of a download, at `offset` in the archive.
    Data {
        id: u64,
        offset: u64,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// The daemon is ready for the data of an upload.
    Continue {
        id: u64,
    },
    /// A change of maintenance state, for `maintenance_watch`.
    Event {
        id: u64,
        maintenance: MaintenanceInfo,
    },
    Reply {
        id: u64,
        reply: Reply,
    },
    Error {
        /// The request this answers; absent when the error is about the
        /// connection itself (a malformed frame, a failed handshake).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        error: ErrorBody,
    },
}

impl ServerMessage {
    /// The request this message belongs to, if any.
    pub fn request_id(&self) -> Option<u64> {
        match self {
            ServerMessage::Welcome { .. } => None,
            ServerMessage::Progress { id, .. }
            | ServerMessage::RestoreProgress { id, .. }
            | ServerMessage::Event { id, .. }
            | ServerMessage::Data { id, .. }
            | ServerMessage::Continue { id }
            | ServerMessage::Reply { id, .. } => Some(*id),
            ServerMessage::Error { id, .. } => *id,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Reply {
    Status {
        status: StatusInfo,
    },
    Backup {
        backup: BackupRecord,
    },
    /// A page of backups; `total` is the size of the whole catalogue, so a
    /// client knows whether to ask for the next page.
    Backups {
        backups: Vec<BackupRecord>,
        #[serde(default)]
        total: u64,
    },
    Deleted {
        id: BackupId,
    },
    Plan {
        plan: PlanInfo,
    },
    Restore {
        restore: RestoreRecord,
    },
    Evidence {
        evidence: Box<Evidence>,
    },
    Maintenance {
        maintenance: MaintenanceInfo,
    },
    /// Audit events, oldest first, each a JSON object as it stands in the
    /// trail.
    Audit {
        lines: Vec<String>,
        /// The number of the first of `lines` when older lines remain: ask
        /// with `before` set to it for the page before this one.
        #[serde(default)]
        next: Option<u64>,
    },
    /// The outcome of `audit_verify`.
    AuditVerified {
        lines: u64,
        /// The first line that breaks the chain: `file:line: why`.
        #[serde(default)]
        first_bad: Option<String>,
        /// The lines before the oldest file kept, removed to keep the
        /// audit directory under its bound.
        #[serde(default)]
        removed: u64,
    },
    /// The end of a download.
    Downloaded {
        id: BackupId,
        size_bytes: u64,
        sha256: String,
    },
    /// The outcome of `store_rewrap`.
    Rewrapped {
        /// The archives now wrapped under the primary key.
        rewrapped: Vec<BackupId>,
        /// Archives that already were.
        unchanged: u64,
        /// Archives in use by a job, left as they were.
        busy: Vec<BackupId>,
        /// Archives that could not be rewrapped (the log says why); the
        /// others were.
        #[serde(default)]
        failed: Vec<BackupId>,
    },
    /// The outcome of `store_rescan`.
    Rescanned {
        /// `missing` backups whose archive is back: `succeeded` again.
        found: Vec<BackupId>,
        /// Backups whose archive is not there (now `missing`).
        missing: Vec<BackupId>,
        /// Archives the catalogue did not know, now listed.
        added: Vec<BackupId>,
        /// Archives present that do not authenticate; left alone.
        unverified: Vec<BackupId>,
        /// The store alarm after the rescan (see `StatusInfo`).
        #[serde(default)]
        store_alarm: Option<String>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_maps_with_a_type_tag() {
        let msg = ClientMessage::Request {
            on_behalf_of: None,
            id: 7,
            op: Operation::BackupCreate {
                label: "nightly".into(),
                scope: Scope::Schema,
                include_files: false,
                wait: true,
            },
        };
        let bytes = rmp_serde::to_vec_named(&msg).unwrap();
        let value: rmpv::Value = rmp_serde::from_slice(&bytes).unwrap();
        let map = value.as_map().expect("a map");
        let get = |k: &str| {
            map.iter()
                .find(|(key, _)| key.as_str() == Some(k))
                .map(|(_, v)| v.clone())
        };
        assert_eq!(get("type").unwrap().as_str(), Some("request"));
        assert_eq!(get("id").unwrap().as_u64(), Some(7));
        let op = get("op").unwrap();
        let op_type = op
            .as_map()
            .unwrap()
            .iter()
            .find(|(k, _)| k.as_str() == Some("type"))
            .unwrap()
            .1
            .clone();
        assert_eq!(op_type.as_str(), Some("backup_create"));
        assert_eq!(rmp_serde::from_slice::<ClientMessage>(&bytes).unwrap(), msg);
    }

    #[test]
    fn omitted_fields_take_defaults_and_unknown_fields_are_ignored() {
        let value = rmpv::Value::Map(vec![
            ("type".into(), "backup_create".into()),
            ("from_the_future".into(), 1.into()),
        ]);
        let bytes = rmp_serde::to_vec(&value).unwrap();
        let op: Operation = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(
            op,
            Operation::BackupCreate {
                label: String::new(),
                scope: Scope::Full,
                include_files: false,
                wait: false
            }
        );
    }
}
