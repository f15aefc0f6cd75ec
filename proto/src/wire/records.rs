//! The records the daemon sends back: a backup as the catalogue knows it,
//! the daemon's status, and progress of a running job. Times are RFC 3339
//! strings so that any client can read them without a MessagePack extension.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::error::ErrorCode;
use crate::ids::BackupId;
use crate::manifest::{Origin, Scope};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackupStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    /// A backup that succeeded, but whose archive is not in the backup
    /// directory now (a mount that is not up, a file moved away). It is
    /// never restored, never counted as a failure and never deleted by
    /// retention; it turns `succeeded` again once its archive is back and
    /// authenticates.
    Missing,
}

impl BackupStatus {
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            BackupStatus::Succeeded | BackupStatus::Failed | BackupStatus::Missing
        )
    }
}

/// Why a job failed, in words fit for the person who asked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub code: ErrorCode,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupRecord {
    pub id: BackupId,
    pub label: String,
    pub scope: Scope,
    pub include_files: bool,
    pub origin: Origin,
    pub status: BackupStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    /// Size of the archive file in bytes.
    pub size_bytes: Option<u64>,
    /// Lower-case hex sha256 of the archive file as stored.
    pub sha256: Option<String>,
    /// The id of the key the archive's data key is wrapped with.
    pub key_id: Option<String>,
    /// The database the backup was taken of.
    pub database: Option<String>,
    #[serde(default)]
    pub failure: Option<Failure>,
    /// A pinned backup is never deleted by retention.
    #[serde(default)]
    pub pinned: bool,
    /// The database's own properties (owner, locale, privileges, settings)
    /// as the backup recorded them; absent for archives made before they
    /// were recorded, and for backups not yet finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<Box<crate::properties::DatabaseProperties>>,
    /// What became of the file roots' files: how many were archived as
    /// they are, and each redacted or excluded one (never a value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<Box<crate::manifest::FilesSummary>>,
    /// The verdict of the last drill (a dry-run restore) of this backup:
    /// the proof that it restores. Absent: never drilled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drill: Option<DrillVerdict>,
    /// How long a restore of this backup can be expected to take, measured
    /// by the last drill of this backup or of the nearest one drilled;
    /// `backup_show` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_restore: Option<RestoreEstimate>,
    /// The backup's off-site copies, one per remote it is meant for;
    /// omitted when there are none, so a daemon without remotes sends the
    /// bytes it always did.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub copies: Vec<CopyRecord>,
    /// The local archive was deleted (`backup delete`) while a remote
    /// still holds a copy: a restore fetches it first.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub remote_only: bool,
}

/// Where one off-site copy of a backup stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CopyState {
    /// Waiting for its (first or next) upload.
    Pending,
    Uploading,
    /// In the remote, its size checked.
    Copied,
    /// The last attempt failed; retried after a backoff.
    Failed,
}

impl CopyState {
    pub fn as_str(self) -> &'static str {
        match self {
            CopyState::Pending => "pending",
            CopyState::Uploading => "uploading",
            CopyState::Copied => "copied",
            CopyState::Failed => "failed",
        }
    }
}

/// Whether a drill proved a backup restorable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DrillResult {
    Passed,
    Failed,
}

impl DrillResult {
    pub fn as_str(self) -> &'static str {
        match self {
            DrillResult::Passed => "passed",
            DrillResult::Failed => "failed",
        }
    }
}

/// One off-site copy of a backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyRecord {
    /// The remote's name (`[[remote]]`).
    pub remote: String,
    pub state: CopyState,
    /// When the copy reached its state.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub at: Option<OffsetDateTime>,
    /// Uploads tried so far.
    #[serde(default)]
    pub attempts: u32,
    /// Why the last attempt failed, in words safe to show (never a
    /// credential).
    #[serde(default)]
    pub last_error: Option<String>,
}

/// The outcome of the last drill of a backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrillVerdict {
    pub result: DrillResult,
    /// When the drill ended.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The drill's restore id: its evidence.
    pub restore_id: crate::ids::RestoreId,
    /// From its start (a slot taken) to its end, in seconds.
    pub duration_seconds: u64,
    /// Why it failed (`unavailable` when the drill's server was not
    /// reachable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// Whether it took longer than the recovery time objective
    /// (`rto_target_minutes`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rto_exceeded: bool,
}

/// An expected restore time, and the drill it was measured by.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreEstimate {
    pub seconds: u64,
    /// The backup whose drill measured it: this one, or the nearest one
    /// in time that passed a drill.
    pub backup_id: BackupId,
    pub restore_id: crate::ids::RestoreId,
}

/// The step a backup job is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Queued,
    Connecting,
    Globals,
    Dump,
    Files,
    Finishing,
    Done,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Queued => "queued",
            Phase::Connecting => "connecting",
            Phase::Globals => "globals",
            Phase::Dump => "dump",
            Phase::Files => "files",
            Phase::Finishing => "finishing",
            Phase::Done => "done",
        }
    }
}

/// A snapshot of a job's progress. Counters only grow while a job runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub job_id: BackupId,
    pub phase: Phase,
    /// Tables whose data pg_dump has finished, of `tables_total`.
    pub tables_done: u64,
    pub tables_total: u64,
    /// Plaintext bytes sealed into the archive so far.
    pub bytes_done: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    Backup,
}

/// A job that is queued or running.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobInfo {
    pub id: BackupId,
    pub kind: JobKind,
    pub status: BackupStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub queued_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    pub progress: Progress,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusInfo {
    /// The daemon's version.
    pub version: String,
    pub protocol_version: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    pub uptime_seconds: u64,
    pub max_parallel: u32,
    pub running: u32,
    pub queued: u32,
    pub jobs: Vec<JobInfo>,
    pub backups: u64,
    /// When the newest successful backup (of any origin) was created (queued).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub newest_success_at: Option<OffsetDateTime>,
    #[serde(default)]
    pub newest_success_age_seconds: Option<u64>,
    /// How old the newest successful backup may be before the recovery
    /// point objective counts as missed: the plan's period plus a grace
    /// margin. Absent while no plan is enabled.
    #[serde(default)]
    pub rpo_limit_seconds: Option<u64>,
    /// True when a plan is enabled and the newest successful backup is
    /// older than `rpo_limit_seconds` (or there is none): a silent failure
    /// that monitoring should alert on.
    #[serde(default)]
    pub rpo_breached: bool,
    /// Whether the daemon runs in development mode (generated key, local
    /// state): never in production.
    pub dev_mode: bool,
    /// Backups whose archive is missing from the backup directory. The
    /// three fields below are omitted when empty, so a healthy daemon's
    /// status reads as it always did.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub missing: u64,
    /// Set when most or all recorded archives were missing at start (or at
    /// the last `store_rescan`): the backup directory is probably not the
    /// right one (a mount that is not up). Says what was found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_alarm: Option<String>,
    /// Background tasks (scheduler, retention, supervisor) that died and
    /// were restarted since the daemon started.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub task_faults: Vec<TaskFault>,
    /// With remotes configured: how long the newest successful backup
    /// may wait for its off-site copies (`offsite_rpo_seconds`). The three
    /// off-site fields are omitted without remotes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offsite_rpo_limit_seconds: Option<u64>,
    /// How long the newest successful backup has waited for a copy some
    /// remote does not have yet; absent when every remote has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offsite_uncopied_age_seconds: Option<u64>,
    /// True when that wait passed the limit: the off-site RPO is missed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub offsite_rpo_breached: bool,
    /// The newest backup a drill passed for: the recovery point you can
    /// count on. The fields up to `drill_failed` are omitted when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_backup: Option<BackupId>,
    /// When the newest verified backup was created.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub verified_at: Option<OffsetDateTime>,
    /// Its age: the verified RPO.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_age_seconds: Option<u64>,
    /// The newest drill's verdict, and the backup it was of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_drill: Option<DrillVerdict>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_drill_backup: Option<BackupId>,
    /// The newest successful backup has had no drill verdict for longer
    /// than `drill_overdue_hours` after it finished.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub drill_overdue: bool,
    /// The newest drill failed (its server unreachable included).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub drill_failed: bool,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl StatusInfo {
    /// Whether the daemon reports a fault that monitoring should alert on
    /// (`berkutctl status` exits non-zero): the store alarm or a background
    /// task that died.
    pub fn has_fault(&self) -> bool {
        self.store_alarm.is_some() || !self.task_faults.is_empty()
    }
}

/// A background task that died (a panic) and was restarted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskFault {
    /// `scheduler`, `retention` or `supervisor`.
    pub task: String,
    /// How many times it died.
    pub failures: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub last_at: OffsetDateTime,
    /// What the last failure said, for people.
    pub message: String,
}
