//! The manifest: the last part of every `.bscc` archive, saying what the
//! archive holds. It is JSON so that an operator with only `berkutctl archive
//! extract` and a text editor can read it, and it is persisted state, so its
//! shape is versioned (`manifest_version`) and pinned by fixtures in tests.
//!
//! It never holds key material: the key id belongs to the header, which can be
//! re-wrapped without touching the payload.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The manifest version this code writes.
pub const MANIFEST_VERSION: u32 = 1;

/// File name of the manifest part inside an archive.
pub const MANIFEST_PART: &str = "manifest.json";

/// What a backup covers (R2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// The database (schema and data) and the cluster's globals (roles,
    /// tablespaces).
    #[default]
    Full,
    /// The database only, schema and data.
    Database,
    /// The database's schema only, no data.
    Schema,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Full => "full",
            Scope::Database => "database",
            Scope::Schema => "schema",
        }
    }
}

impl std::str::FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "full" => Ok(Scope::Full),
            "database" => Ok(Scope::Database),
            "schema" => Ok(Scope::Schema),
            other => Err(format!(
                "unknown scope {other:?} (expected full, database or schema)"
            )),
        }
    }
}

/// How a backup came to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    Manual,
    Scheduled,
    Imported,
    /// Fetched from a remote's off-site copy (`remote fetch`).
    Remote,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Manual => "manual",
            Origin::Scheduled => "scheduled",
            Origin::Imported => "imported",
            Origin::Remote => "remote",
        }
    }
}

/// What a part of an archive holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartKind {
    /// `pg_dump --format=custom` output.
    Dump,
    /// `pg_dumpall --globals-only` output (SQL).
    Globals,
    /// A tar stream of the configured file roots.
    Files,
    /// The backup's own log: pg_dump's verbose output and the daemon's notes.
    Log,
}

/// One part as recorded in the manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartEntry {
    pub name: String,
    pub kind: PartKind,
    pub size: u64,
    /// Lower-case hex sha256 of the part's plaintext bytes.
    pub sha256: String,
    /// How the part is stored (format version 2); absent in version 1
    /// archives, whose parts are all stored as they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codec: Option<crate::archive::Codec>,
    /// Bytes the part takes in the archive's blocks, compressed (format
    /// version 2); `size` is what it decompresses to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compressed_size: Option<u64>,
}

/// Facts about the database the dump came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseInfo {
    pub name: String,
    /// `server_version` as the server reports it, e.g. `15.18 (Debian ...)`.
    pub server_version: String,
    /// The first line of `pg_dump --version`.
    pub pg_dump_version: String,
}

/// How long one step of the backup took.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepTiming {
    pub step: String,
    pub seconds: f64,
}

/// An exact row count of one table, taken in the dump's snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableCount {
    pub schema: String,
    pub table: String,
    pub rows: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub manifest_version: u32,
    pub backup_id: String,
    pub label: String,
    pub scope: Scope,
    pub include_files: bool,
    pub origin: Origin,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub finished_at: OffsetDateTime,
    pub database: DatabaseInfo,
    /// The parts before the manifest, in archive order. The archive writer
    /// fills this in from what it actually wrote.
    pub parts: Vec<PartEntry>,
    pub timings: Vec<StepTiming>,
    /// The berkutd version that wrote the archive.
    pub tool: String,
    /// Per-table row counts from the dump's snapshot, when they were taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tables: Option<Vec<TableCount>>,
    /// The database's own properties (owner, locale, privileges, settings),
    /// for archives made since they are recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<crate::properties::DatabaseProperties>,
    /// The objects the dump holds, by kind, for drills to compare.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objects: Option<crate::properties::ObjectInventory>,
    /// What became of each file of the file roots (archived as is,
    /// redacted, or excluded), for archives with files made since it is
    /// recorded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileEntry>,
}

/// What became of one file (or directory, link, root) of the file roots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileOutcome {
    /// In the files part byte for byte (a symbolic link as a link).
    Archived,
    /// In the files part with the values of `keys` replaced by the marker
    /// `BERKUT-REDACTED`: not a working copy.
    Redacted,
    /// Not in the files part, for `reason`.
    Excluded,
}

impl FileOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            FileOutcome::Archived => "archived",
            FileOutcome::Redacted => "redacted",
            FileOutcome::Excluded => "excluded",
        }
    }
}

/// One file of the file roots as the manifest records it. Never holds a
/// value of the file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// The path as in the files part (the root without its leading `/`),
    /// with `\`, control characters and bytes that are not UTF-8 escaped
    /// (`\n`, `\xff`).
    pub path: String,
    pub outcome: FileOutcome,
    /// For a redacted file: the keys whose values were replaced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
    /// For an excluded file, the rule that excluded it; for a kept
    /// symbolic link, that it is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The files of a backup in short, as a backup's record carries them: how
/// many went in as they are, and each one that did not. It must fit a
/// reply's frame with room to spare, so it is cut to `SUMMARY_MAX_ENTRIES`
/// entries (`more` counts the rest; the manifest has them all), each path
/// to `SUMMARY_MAX_PATH` characters and each entry to `SUMMARY_MAX_KEYS`
/// keys.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilesSummary {
    pub archived: u64,
    /// The redacted and excluded entries, and the archived ones with a note.
    pub notable: Vec<FileEntry>,
    /// Notable entries left out of `notable`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub more: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

pub const SUMMARY_MAX_ENTRIES: usize = 500;
pub const SUMMARY_MAX_PATH: usize = 512;
pub const SUMMARY_MAX_KEYS: usize = 10;

/// `text` cut to `max` characters, with `...` saying so.
pub fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max).collect();
    out.push_str("...");
    out
}

impl FilesSummary {
    pub fn of(files: &[FileEntry]) -> Option<FilesSummary> {
        if files.is_empty() {
            return None;
        }
        let archived = files
            .iter()
            .filter(|f| f.outcome == FileOutcome::Archived)
            .count() as u64;
        let all: Vec<&FileEntry> = files
            .iter()
            .filter(|f| f.outcome != FileOutcome::Archived || f.reason.is_some())
            .collect();
        let more = all.len().saturating_sub(SUMMARY_MAX_ENTRIES) as u64;
        let notable = all
            .into_iter()
            .take(SUMMARY_MAX_ENTRIES)
            .map(|f| FileEntry {
                path: cut(&f.path, SUMMARY_MAX_PATH),
                outcome: f.outcome,
                keys: f.keys.iter().take(SUMMARY_MAX_KEYS).cloned().collect(),
                reason: f.reason.clone(),
            })
            .collect();
        Some(FilesSummary {
            archived,
            notable,
            more,
        })
    }

    pub fn redacted(&self) -> impl Iterator<Item = &FileEntry> {
        self.notable
            .iter()
            .filter(|f| f.outcome == FileOutcome::Redacted)
    }
}

impl Manifest {
    pub fn part(&self, kind: PartKind) -> Option<&PartEntry> {
        self.parts.iter().find(|p| p.kind == kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: usize, outcome: FileOutcome) -> FileEntry {
        FileEntry {
            path: format!("srv/{n}/{}", "x".repeat(n % 2 * 1000)),
            outcome,
            keys: (0..20).map(|k| format!("k{k}")).collect(),
            reason: None,
        }
    }

    /// A summary fits a reply whatever the roots hold; the plain files are
    /// only counted.
    #[test]
    fn a_summary_counts_plain_files_and_cuts_the_rest_to_size() {
        let mut files: Vec<FileEntry> = (0..700).map(|n| entry(n, FileOutcome::Redacted)).collect();
        files.extend((0..300).map(|n| entry(n, FileOutcome::Archived)));
        let s = FilesSummary::of(&files).unwrap();
        assert_eq!(s.archived, 300);
        assert_eq!(s.notable.len(), SUMMARY_MAX_ENTRIES);
        assert_eq!(s.more, 200);
        assert!(s
            .notable
            .iter()
            .all(|f| f.path.chars().count() <= SUMMARY_MAX_PATH + 3
                && f.keys.len() == SUMMARY_MAX_KEYS));
        assert_eq!(FilesSummary::of(&[]), None);
    }

    /// `files` is additive: a manifest without it reads as none, and a
    /// manifest with none writes no `files` key (old bytes unchanged).
    #[test]
    fn files_are_an_optional_field() {
        let files = vec![entry(0, FileOutcome::Excluded)];
        let json = serde_json::to_value(&files).unwrap();
        assert_eq!(
            json,
            serde_json::json!([{"path": "srv/0/", "outcome": "excluded",
                "keys": (0..20).map(|k| format!("k{k}")).collect::<Vec<_>>()}])
        );
        let back: Vec<FileEntry> = serde_json::from_value(json).unwrap();
        assert_eq!(back, files);
        let old: FileEntry =
            serde_json::from_str(r#"{"path": "a", "outcome": "archived"}"#).unwrap();
        assert!(old.keys.is_empty() && old.reason.is_none());
    }
}
