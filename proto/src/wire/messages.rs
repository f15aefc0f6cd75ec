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
use super::ops;
use super::plan::PlanInfo;
use super::records::{BackupRecord, Progress, StatusInfo};
use super::restore::{DigestVerdict, Evidence, MaintenanceInfo, RestoreRecord};
use crate::ids::{BackupId, RestoreId};

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

/// Declares `Operation` from one line per request type: the variant (named
/// after the struct in `ops`) and its name on the wire. The name is the
/// variant's serde tag and what `Operation::name` gives, so the two cannot
/// differ.
macro_rules! operations {
    ($($(#[$doc:meta])* $variant:ident = $name:literal,)*) => {
        /// A request's operation: one of the request types in `ops`, tagged
        /// by `type` in the same map as its fields.
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "type")]
        pub enum Operation {
            $($(#[$doc])* #[serde(rename = $name)] $variant(ops::$variant),)*
        }

        impl Operation {
            /// Every operation's wire name, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($name,)*];

            /// The operation's name as it appears on the wire, for logs and
            /// audit.
            pub fn name(&self) -> &'static str {
                match self {
                    $(Operation::$variant(_) => $name,)*
                }
            }

            /// Checks every text field of the request against its limit
            /// (`ops::Validate`).
            pub fn validate(&self) -> Result<(), String> {
                match self {
                    $(Operation::$variant(request) => ops::Validate::validate(request),)*
                }
            }
        }

        $(impl ops::Request for ops::$variant {
            const NAME: &'static str = $name;
        })*

        $(impl From<ops::$variant> for Operation {
            fn from(request: ops::$variant) -> Operation {
                Operation::$variant(request)
            }
        })*
    };
}

// One line per operation; the request type is in `ops`.
operations! {
    Status = "status",
    BackupCreate = "backup_create",
    BackupList = "backup_list",
    BackupShow = "backup_show",
    BackupDelete = "backup_delete",
    JobAttach = "job_attach",
    BackupPin = "backup_pin",
    BackupUnpin = "backup_unpin",
    PlanShow = "plan_show",
    PlanSet = "plan_set",
    PlanEnable = "plan_enable",
    PlanDisable = "plan_disable",
    RestoreStart = "restore_start",
    RestoreStatus = "restore_status",
    RestoreEvidence = "restore_evidence",
    RestoreRollback = "restore_rollback",
    RestoreCleanup = "restore_cleanup",
    MaintenanceStatus = "maintenance_status",
    MaintenanceWatch = "maintenance_watch",
    MaintenanceClear = "maintenance_clear",
    BackupDownload = "backup_download",
    BackupImport = "backup_import",
    AuditTail = "audit_tail",
    AuditVerify = "audit_verify",
    StoreRewrap = "store_rewrap",
    StoreRescan = "store_rescan",
    RemoteList = "remote_list",
    RemoteFetch = "remote_fetch",
    RemoteVerify = "remote_verify",
    RemoteStatus = "remote_status",
    RemoteDelete = "remote_delete",
    Metrics = "metrics",
    NotifyTest = "notify_test",
    DrillRun = "drill_run",
    RestoreEvidenceExport = "restore_evidence_export",
}

impl Operation {
    /// The first page of the catalogue.
    pub fn list_first_page() -> Operation {
        Operation::BackupList(ops::BackupList {
            offset: 0,
            limit: None,
        })
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
    /// What a remote holds (`remote_list`), newest first.
    RemoteArchives {
        remote: String,
        archives: Vec<super::remote::RemoteArchive>,
    },
    /// The verdicts of `remote_verify`.
    RemoteVerified {
        remote: String,
        verdicts: Vec<super::remote::RemoteVerdict>,
    },
    /// Every configured remote's state (`remote_status`).
    Remotes {
        remotes: Vec<super::remote::RemoteInfo>,
    },
    /// The outcome of `metrics`: Prometheus text (format 0.0.4).
    Metrics {
        text: String,
    },
    /// The outcome of `notify_test`: one result per sink, in the order of
    /// the configuration.
    NotifyTested {
        results: Vec<SinkResult>,
    },
    /// The end of an evidence export (`restore_evidence_export`), after the
    /// last `data`.
    EvidenceExported {
        restore_id: RestoreId,
        /// The bytes of the tar archive sent in all, and their sha256.
        size_bytes: u64,
        sha256: String,
        /// The files in the archive (the `DIGEST` included).
        files: u64,
        /// The files sent checked against the `DIGEST` sent with them; nil
        /// when the evidence has no `DIGEST`.
        #[serde(default)]
        digest: Option<DigestVerdict>,
    },
}

/// How a test event's delivery to one sink went.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SinkResult {
    /// The sink's kind and host (`webhook https://chat.example`) or
    /// program's name (`exec berkut-page`); never a URL's path or a secret.
    pub sink: String,
    pub ok: bool,
    /// What happened (`answered 200 OK`, `no answer within 10 s`).
    pub detail: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Scope;

    #[test]
    fn messages_are_maps_with_a_type_tag() {
        let msg = ClientMessage::Request {
            on_behalf_of: None,
            id: 7,
            op: Operation::BackupCreate(ops::BackupCreate {
                label: "nightly".into(),
                scope: Scope::Schema,
                include_files: false,
                wait: true,
            }),
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
            Operation::BackupCreate(ops::BackupCreate {
                label: String::new(),
                scope: Scope::Full,
                include_files: false,
                wait: false
            })
        );
    }
}
