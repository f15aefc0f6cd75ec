//! Each operation's request as a type of its own. `Operation` (in
//! `messages`) wraps them, one variant per struct, tagged by `type`, so the
//! bytes are those of a map with the struct's fields and the tag, exactly
//! as when the fields stood in the enum. Each struct says here which of its
//! fields are text and what they may hold (`Validate`): the check runs when
//! a request is decoded, before any handler sees it, and a new request type
//! does not compile until it has decided.
//!
//! The daemon gives each of these types its role, maintenance rule, audit
//! target and handler (`berkut_daemon::handlers`); a client builds them and
//! wraps them with `Operation::from` or the variant.

use serde::{Deserialize, Serialize};

use super::input::{LABEL, PLAN_AT, PLAN_CRON, PLAN_TIMEZONE, PLAN_WEEKDAY, REMOTE};
use super::plan::PlanSpec;
use crate::ids::{BackupId, RestoreId};
use crate::manifest::Scope;

fn default_tail() -> u32 {
    20
}

/// What every request type is: its name on the wire (declared on its line
/// of `Operation`, where it is also the serde tag, so the two cannot
/// differ), its text checks, and its place in `Operation`.
pub trait Request: Validate + Into<super::Operation> {
    const NAME: &'static str;
}

/// The text checks of a request: every string field it carries, against
/// its limit in `input`. Required of every request type (no default), so a
/// new text field is checked by whoever adds it. Ids are checked by their
/// own types when decoded.
pub trait Validate {
    /// The first field that breaks its limit, named, without repeating it.
    fn validate(&self) -> Result<(), String>;
}

/// A request type without any text field.
macro_rules! no_text {
    ($($ty:ident),* $(,)?) => {
        $(impl Validate for $ty {
            fn validate(&self) -> Result<(), String> {
                Ok(())
            }
        })*
    };
}

/// Version, uptime, and the jobs running and queued.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {}

/// Starts a backup. With `wait`, progress is streamed and the reply is the
/// finished record; without, the reply is the queued record at once.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BackupCreate {
    #[serde(default)]
    pub label: String,
    #[serde(default)]
    pub scope: Scope,
    #[serde(default)]
    pub include_files: bool,
    #[serde(default)]
    pub wait: bool,
}

impl Validate for BackupCreate {
    fn validate(&self) -> Result<(), String> {
        LABEL.check(&self.label)
    }
}

/// A page of the catalogue, newest first: `limit` records (at most
/// `MAX_LIST_PAGE`, which is also the default) after skipping `offset`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BackupList {
    #[serde(default)]
    pub offset: u64,
    #[serde(default)]
    pub limit: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BackupShow {
    pub id: BackupId,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BackupDelete {
    pub id: BackupId,
}

/// Streams the progress of a queued or running job, then its final record.
/// A finished job answers with its record at once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobAttach {
    pub id: BackupId,
}

/// Keeps a backup out of retention's reach.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BackupPin {
    pub id: BackupId,
}

/// Gives a pinned backup back to retention.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BackupUnpin {
    pub id: BackupId,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PlanShow {}

/// Replaces the plan (validated as a whole) and enables it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanSet {
    pub plan: PlanSpec,
}

impl Validate for PlanSet {
    fn validate(&self) -> Result<(), String> {
        let plan = &self.plan;
        for (limit, value) in [
            (PLAN_AT, &plan.at),
            (PLAN_WEEKDAY, &plan.weekday),
            (PLAN_TIMEZONE, &plan.timezone),
            (PLAN_CRON, &plan.cron),
        ] {
            if let Some(value) = value {
                limit.check(value)?;
            }
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PlanEnable {}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PlanDisable {}

/// Starts a restore of a backup: a dry-run into a scratch database, or a
/// real restore under maintenance. With `wait`, the record is streamed
/// (`restore_progress`) until it ends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RestoreStart {
    pub backup_id: BackupId,
    /// Required: a real restore replaces the live database, and must never
    /// be asked for by leaving a field out.
    pub dry_run: bool,
    #[serde(default)]
    pub with_globals: bool,
    #[serde(default)]
    pub wait: bool,
}

/// A restore's record with its steps; with `wait`, follows it to its end.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RestoreStatus {
    pub restore_id: RestoreId,
    #[serde(default)]
    pub wait: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RestoreEvidence {
    pub restore_id: RestoreId,
}

/// Puts the database that a real restore replaced back in place.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RestoreRollback {
    pub restore_id: RestoreId,
}

/// Drops the database a real restore kept for rollback.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RestoreCleanup {
    pub restore_id: RestoreId,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MaintenanceStatus {}

/// Streams an `event` whenever maintenance starts or ends, beginning with
/// the current state; the request never ends on its own.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MaintenanceWatch {}

/// Lifts maintenance left on after an interrupted restore, once an
/// administrator has checked the database.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MaintenanceClear {}

/// Streams a stored archive's bytes as `data` messages, from `offset` on,
/// then replies with the size and sha256 of what it sent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BackupDownload {
    pub id: BackupId,
    /// Where in the archive to begin, to resume a broken transfer; 0, the
    /// whole archive, when absent (and then not sent, so a request for the
    /// whole archive is the bytes it always was).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub offset: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Uploads an archive of `size` bytes: the daemon answers `continue` (or
/// refuses at once, e.g. `too_large`), the client sends `data` messages,
/// and the reply is the imported backup's record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BackupImport {
    pub size: u64,
}

/// The last `lines` events of the audit trail (JSON lines).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditTail {
    #[serde(default = "default_tail")]
    pub lines: u32,
    /// Only lines before the one with this number: the `next` of the
    /// previous page. The newest lines when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<u64>,
}

impl Default for AuditTail {
    fn default() -> AuditTail {
        AuditTail {
            lines: default_tail(),
            before: None,
        }
    }
}

/// Checks the audit trail's hash chain from its first line.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditVerify {}

/// Re-wraps every archive not under the primary key, so an old key can be
/// retired. Archives in use are left for a later run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StoreRewrap {}

/// Looks at the backup directory again: a `missing` backup whose archive
/// is back and authenticates turns `succeeded`, a `succeeded` one whose
/// archive is gone turns `missing`, and archives the catalogue does not
/// know are added.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StoreRescan {}

/// Every metric, in the Prometheus text format (the same text as the
/// `metrics_textfile`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {}

/// Sends a `test` event to every notification sink, once, and says how
/// each delivery went.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NotifyTest {}
/// Starts a drill (a dry-run restore on the drill server, or into a
/// scratch database beside the live one) of `backup_id`, or, when absent,
/// of the backup the drill policy would choose: the newest successful one
/// without a passing drill (else the newest successful one). With `wait`,
/// the record is streamed until it ends.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DrillRun {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_id: Option<BackupId>,
    #[serde(default)]
    pub wait: bool,
}

/// Streams a finished restore's evidence directory as one tar archive, in
/// `data` pieces like a download; the reply says what was sent and how the
/// files sent compare with the `DIGEST` among them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RestoreEvidenceExport {
    pub restore_id: RestoreId,
}

no_text!(
    RestoreEvidenceExport,
    DrillRun,
    Status,
    BackupList,
    BackupShow,
    BackupDelete,
    JobAttach,
    BackupPin,
    BackupUnpin,
    PlanShow,
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
    Metrics,
    NotifyTest,
);

/// The archives a remote holds, from a listing and a ranged read of each
/// header (no full download), including ones the catalogue never saw.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RemoteList {
    pub remote: String,
}

/// Downloads a remote's copy into quarantine, authenticates it whole and
/// takes it into the store (origin `remote`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RemoteFetch {
    pub remote: String,
    pub id: BackupId,
}

/// Downloads and authenticates one copy (`id`) or every copy a remote
/// holds; nothing is kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RemoteVerify {
    pub remote: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<BackupId>,
}

/// Every configured remote's state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RemoteStatus {}

/// Deletes a backup's copy on one remote (`remote`), or its archive and
/// every copy (`everywhere`); exactly one of the two.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RemoteDelete {
    pub id: BackupId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
    #[serde(default)]
    pub everywhere: bool,
}

impl Validate for RemoteList {
    fn validate(&self) -> Result<(), String> {
        REMOTE.check(&self.remote)
    }
}

impl Validate for RemoteFetch {
    fn validate(&self) -> Result<(), String> {
        REMOTE.check(&self.remote)
    }
}

impl Validate for RemoteVerify {
    fn validate(&self) -> Result<(), String> {
        REMOTE.check(&self.remote)
    }
}

impl Validate for RemoteDelete {
    fn validate(&self) -> Result<(), String> {
        self.remote.as_deref().map_or(Ok(()), |r| REMOTE.check(r))
    }
}

no_text!(RemoteStatus);
