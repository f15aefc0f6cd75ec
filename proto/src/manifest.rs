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
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Manual => "manual",
            Origin::Scheduled => "scheduled",
            Origin::Imported => "imported",
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
}

impl Manifest {
    pub fn part(&self, kind: PartKind) -> Option<&PartEntry> {
        self.parts.iter().find(|p| p.kind == kind)
    }
}
