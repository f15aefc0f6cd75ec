//! Restores and dry-runs as the protocol carries them: a record with its
//! list of named steps (each with its state, times and detail), the
//! maintenance state, and the evidence kept of each restore.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::records::Failure;
use crate::ids::{BackupId, RestoreId};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestoreStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    /// The daemon stopped while it ran; start-up recovery cleaned up.
    Interrupted,
}

impl RestoreStatus {
    pub fn is_finished(self) -> bool {
        !matches!(self, RestoreStatus::Queued | RestoreStatus::Running)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RestoreStatus::Queued => "queued",
            RestoreStatus::Running => "running",
            RestoreStatus::Succeeded => "succeeded",
            RestoreStatus::Failed => "failed",
            RestoreStatus::Interrupted => "interrupted",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    Pending,
    Running,
    Done,
    Failed,
    /// Not needed for this restore (globals without `with_globals`, the
    /// swap of a dry-run).
    Skipped,
}

/// One named step of a restore.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreStep {
    /// `verify`, `decrypt`, `inspect`, `globals`, `create_database`,
    /// `pre_data`, `data`, `post_data`, `properties`, `analyze`, `files`,
    /// `smoke_checks`, `swap`, `cleanup`.
    pub name: String,
    pub state: StepState,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    /// Units done of `total` (tables, bytes), when the step counts them.
    #[serde(default)]
    pub done: Option<u64>,
    #[serde(default)]
    pub total: Option<u64>,
    /// A line for people: what the step found or did.
    #[serde(default)]
    pub detail: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreRecord {
    pub restore_id: RestoreId,
    pub backup_id: BackupId,
    pub dry_run: bool,
    pub with_globals: bool,
    pub status: RestoreStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    /// The configured (live) database: the one a real restore replaces and
    /// whose name the scratch database's is derived from.
    pub database: String,
    /// Where the dump was restored to first.
    pub scratch_database: String,
    /// After a real restore: the old live database, kept for rollback until
    /// `restore_cleanup`.
    #[serde(default)]
    pub rollback_database: Option<String>,
    pub steps: Vec<RestoreStep>,
    #[serde(default)]
    pub failure: Option<Failure>,
    /// The files written back as the archive holds them redacted (secret
    /// values replaced by `BERKUT-REDACTED`): not working copies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redacted_files: Vec<String>,
    /// The operator's own smoke checks (`[[smoke_check]]`), as they ran in
    /// the restored database before it was trusted; absent when none are
    /// configured or they have not run yet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub smoke_checks: Vec<SmokeCheckResult>,
}

/// One of the operator's smoke checks, as it ran.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmokeCheckResult {
    /// The check's name from the configuration.
    pub name: String,
    pub passed: bool,
    /// How long the query took, in milliseconds.
    pub duration_ms: u64,
    /// What it found, in the daemon's words: never the query's text nor
    /// the server's error message (those go to the daemon's log).
    pub message: String,
}

impl RestoreRecord {
    pub fn step(&self, name: &str) -> Option<&RestoreStep> {
        self.steps.iter().find(|s| s.name == name)
    }
}

/// Whether ordinary operations are refused because a restore is running.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceInfo {
    pub active: bool,
    #[serde(default)]
    pub restore_id: Option<RestoreId>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub since: Option<OffsetDateTime>,
    /// Why, for people.
    #[serde(default)]
    pub reason: Option<String>,
}

/// One table's rows as recorded at backup time and as found after the
/// restore.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountCheck {
    pub schema: String,
    pub table: String,
    /// Absent when the backup took no counts.
    #[serde(default)]
    pub expected: Option<i64>,
    /// Absent when the table is missing.
    #[serde(default)]
    pub found: Option<i64>,
}

impl CountCheck {
    /// The check in words, for a step's log and a failure's reason:
    /// `"public"."t": expected 500 rows, found 499 rows`.
    pub fn describe(&self) -> String {
        let name = table_name(&self.schema, &self.table);
        let rows = |n: i64| {
            if n == 1 {
                "1 row".to_owned()
            } else {
                format!("{n} rows")
            }
        };
        match (self.expected, self.found) {
            (Some(e), Some(f)) if e == f => format!("{name}: expected {}, found {f}", rows(e)),
            (Some(e), Some(f)) => format!("{name}: expected {}, found {}", rows(e), rows(f)),
            (Some(e), None) => format!("{name}: expected {}, found no such table", rows(e)),
            (None, Some(f)) => format!("{name}: present, {} (the backup counted none)", rows(f)),
            (None, None) => format!("{name}: expected the table, found no such table"),
        }
    }
}

/// A table's name as SQL writes it (`"public"."my table"`), with control
/// characters (a newline in a name) shown escaped so that it stays on one
/// line.
pub fn table_name(schema: &str, table: &str) -> String {
    let quote = |name: &str| format!("\"{}\"", name.replace('"', "\"\""));
    format!("{}.{}", quote(schema), quote(table))
        .chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

/// The evidence kept of one restore: its summary and the raw logs of its
/// steps.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    pub record: RestoreRecord,
    /// The archive file's sha256 as checked.
    #[serde(default)]
    pub archive_sha256: Option<String>,
    /// Every part's digest: `part`, `expected`, `found`.
    #[serde(default)]
    pub digests: Vec<DigestCheck>,
    #[serde(default)]
    pub counts: Vec<CountCheck>,
    /// `passed`, `failed`, `rolled back`, or absent while running.
    #[serde(default)]
    pub verdict: Option<String>,
    /// The step logs, each cut to its last 64 KiB.
    #[serde(default)]
    pub logs: Vec<StepLog>,
    /// The evidence directory checked against its `DIGEST` as it is now;
    /// absent while the restore runs (the `DIGEST` is written when it
    /// ends) and for evidence kept by a daemon from before digests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<DigestVerdict>,
}

/// The evidence directory checked against its `DIGEST`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestVerdict {
    /// Files whose SHA-256 matches the `DIGEST`.
    pub matched: u64,
    /// What does not: `path: changed`, `path: missing`, `path: not in the
    /// DIGEST` (paths relative to the evidence directory); at most 100.
    pub problems: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestCheck {
    pub part: String,
    pub expected: String,
    pub found: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepLog {
    pub step: String,
    pub text: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_check_reads_as_words() {
        let check = |expected, found| {
            CountCheck {
                schema: "public".into(),
                table: "t".into(),
                expected,
                found,
            }
            .describe()
        };
        assert_eq!(
            check(Some(500), Some(499)),
            "\"public\".\"t\": expected 500 rows, found 499 rows"
        );
        assert_eq!(
            check(None, None),
            "\"public\".\"t\": expected the table, found no such table"
        );
        assert_eq!(
            table_name("odd schema", "a\"b\nc"),
            "\"odd schema\".\"a\"\"b\\nc\""
        );
        for text in [check(None, Some(3)), check(Some(3), None)] {
            assert!(!text.contains("Some") && !text.contains("None"), "{text}");
        }
    }
}
