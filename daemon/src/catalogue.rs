//! The catalogue: what the daemon knows about every backup, persisted as one
//! JSON file in the state directory. Every change is written to a temporary
//! file, fsynced and renamed over the old one, so a crash at any moment leaves
//! either the old or the new catalogue, never a torn one. The archives are
//! the ground truth: `recovery` rebuilds entries from them when the
//! catalogue is lost or behind.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use berkut_proto::ids::BackupId;
use berkut_proto::manifest::{Origin, Scope};
use berkut_proto::wire::{BackupRecord, BackupStatus, CopyRecord, CopyState, Failure};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

mod shared;
pub use shared::SharedCatalogue;

/// The version of the catalogue file this code writes and reads.
pub const CATALOGUE_VERSION: u32 = 1;

/// A backup's life so far. Each state carries the times that led to it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum BackupState {
    Queued {
        #[serde(with = "time::serde::rfc3339")]
        created_at: OffsetDateTime,
    },
    Running {
        #[serde(with = "time::serde::rfc3339")]
        created_at: OffsetDateTime,
        #[serde(with = "time::serde::rfc3339")]
        started_at: OffsetDateTime,
    },
    Succeeded {
        #[serde(with = "time::serde::rfc3339")]
        created_at: OffsetDateTime,
        #[serde(with = "time::serde::rfc3339")]
        started_at: OffsetDateTime,
        #[serde(with = "time::serde::rfc3339")]
        finished_at: OffsetDateTime,
    },
    Failed {
        #[serde(with = "time::serde::rfc3339")]
        created_at: OffsetDateTime,
        #[serde(default, with = "time::serde::rfc3339::option")]
        started_at: Option<OffsetDateTime>,
        #[serde(with = "time::serde::rfc3339")]
        finished_at: OffsetDateTime,
        failure: Failure,
    },
    /// A backup that succeeded, whose archive was not in the backup
    /// directory when last looked for (since `missing_since`). Its archive
    /// facts stay in the entry, so it turns `Succeeded` again as it was
    /// once the archive is back and authenticates.
    Missing {
        #[serde(with = "time::serde::rfc3339")]
        created_at: OffsetDateTime,
        #[serde(with = "time::serde::rfc3339")]
        started_at: OffsetDateTime,
        #[serde(with = "time::serde::rfc3339")]
        finished_at: OffsetDateTime,
        #[serde(with = "time::serde::rfc3339")]
        missing_since: OffsetDateTime,
    },
}

impl BackupState {
    pub fn status(&self) -> BackupStatus {
        match self {
            BackupState::Queued { .. } => BackupStatus::Queued,
            BackupState::Running { .. } => BackupStatus::Running,
            BackupState::Succeeded { .. } => BackupStatus::Succeeded,
            BackupState::Failed { .. } => BackupStatus::Failed,
            BackupState::Missing { .. } => BackupStatus::Missing,
        }
    }

    pub fn created_at(&self) -> OffsetDateTime {
        match self {
            BackupState::Queued { created_at }
            | BackupState::Running { created_at, .. }
            | BackupState::Succeeded { created_at, .. }
            | BackupState::Failed { created_at, .. }
            | BackupState::Missing { created_at, .. } => *created_at,
        }
    }

    pub fn started_at(&self) -> Option<OffsetDateTime> {
        match self {
            BackupState::Queued { .. } => None,
            BackupState::Running { started_at, .. }
            | BackupState::Succeeded { started_at, .. }
            | BackupState::Missing { started_at, .. } => Some(*started_at),
            BackupState::Failed { started_at, .. } => *started_at,
        }
    }

    pub fn finished_at(&self) -> Option<OffsetDateTime> {
        match self {
            BackupState::Succeeded { finished_at, .. }
            | BackupState::Failed { finished_at, .. }
            | BackupState::Missing { finished_at, .. } => Some(*finished_at),
            _ => None,
        }
    }

    /// A succeeded backup whose archive is not there (at `now`); any other
    /// state stays as it is.
    pub fn missing(&self, now: OffsetDateTime) -> BackupState {
        match *self {
            BackupState::Succeeded {
                created_at,
                started_at,
                finished_at,
            } => BackupState::Missing {
                created_at,
                started_at,
                finished_at,
                missing_since: now,
            },
            ref other => other.clone(),
        }
    }

    /// A missing backup whose archive is back: succeeded, with its times.
    pub fn found(&self) -> BackupState {
        match *self {
            BackupState::Missing {
                created_at,
                started_at,
                finished_at,
                ..
            } => BackupState::Succeeded {
                created_at,
                started_at,
                finished_at,
            },
            ref other => other.clone(),
        }
    }

    /// The state after this one failed at `now`.
    pub fn failed(&self, now: OffsetDateTime, failure: Failure) -> BackupState {
        BackupState::Failed {
            created_at: self.created_at(),
            started_at: self.started_at(),
            finished_at: now,
            failure,
        }
    }
}

/// Facts about a stored archive file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveFacts {
    pub size_bytes: u64,
    pub sha256: String,
    pub key_id: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub id: BackupId,
    pub label: String,
    pub scope: Scope,
    pub include_files: bool,
    pub origin: Origin,
    pub state: BackupState,
    #[serde(default)]
    pub database: Option<String>,
    #[serde(default)]
    pub archive: Option<ArchiveFacts>,
    /// Never deleted by retention while set.
    #[serde(default)]
    pub pinned: bool,
    /// The database's own properties, as the archive's manifest records
    /// them (archives made since they are recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<berkut_proto::properties::DatabaseProperties>,
    /// What became of the file roots' files, as the manifest records it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<berkut_proto::manifest::FilesSummary>,
    /// The verdict of the last drill of this backup; absent: never drilled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drill: Option<berkut_proto::wire::DrillVerdict>,
    /// Off-site copies, one per remote (`remote::replicate` keeps them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub copies: Vec<Copy>,
    /// The local archive was deleted while a remote keeps a copy.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub remote_only: bool,
    /// Remotes whose copy was deleted on request (`remote_delete`, the
    /// remote's retention): the queue does not copy the backup there again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropped_from: Vec<String>,
}

/// One off-site copy as the catalogue keeps it: what clients see, and
/// when the next attempt is due, so a retry's backoff survives a restart.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Copy {
    #[serde(flatten)]
    pub record: CopyRecord,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub next_attempt_at: Option<OffsetDateTime>,
}

impl Copy {
    /// A copy waiting for its first upload.
    pub fn pending(remote: &str, now: OffsetDateTime) -> Copy {
        Copy {
            record: CopyRecord {
                remote: remote.to_owned(),
                state: CopyState::Pending,
                at: Some(now),
                attempts: 0,
                last_error: None,
            },
            next_attempt_at: None,
        }
    }
}

impl Entry {
    /// The entry of a stored archive, from its manifest and measurements:
    /// how start-up recovery rebuilds the catalogue and how an import
    /// records what it took in.
    pub fn from_archive(
        id: BackupId,
        manifest: berkut_proto::manifest::Manifest,
        facts: ArchiveFacts,
        origin: Origin,
    ) -> Entry {
        Entry {
            id,
            label: manifest.label,
            scope: manifest.scope,
            include_files: manifest.include_files,
            origin,
            state: BackupState::Succeeded {
                created_at: manifest.created_at,
                started_at: manifest.created_at,
                finished_at: manifest.finished_at,
            },
            database: Some(manifest.database.name),
            archive: Some(facts),
            pinned: false,
            files: berkut_proto::manifest::FilesSummary::of(&manifest.files),
            properties: manifest.properties,
            copies: Vec::new(),
            remote_only: false,
            dropped_from: Vec::new(),
            drill: None,
        }
    }

    pub fn record(&self) -> BackupRecord {
        BackupRecord {
            id: self.id.clone(),
            label: self.label.clone(),
            scope: self.scope,
            include_files: self.include_files,
            origin: self.origin,
            status: self.state.status(),
            created_at: self.state.created_at(),
            started_at: self.state.started_at(),
            finished_at: self.state.finished_at(),
            size_bytes: self.archive.as_ref().map(|a| a.size_bytes),
            sha256: self.archive.as_ref().map(|a| a.sha256.clone()),
            key_id: self.archive.as_ref().map(|a| a.key_id.clone()),
            database: self.database.clone(),
            failure: match &self.state {
                BackupState::Failed { failure, .. } => Some(failure.clone()),
                _ => None,
            },
            pinned: self.pinned,
            properties: self.properties.clone().map(Box::new),
            copies: self.copies.iter().map(|c| c.record.clone()).collect(),
            remote_only: self.remote_only,
            files: self.files.clone().map(Box::new),
            drill: self.drill.clone(),
            expected_restore: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error("cannot read or write the catalogue {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the catalogue {path} is damaged: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error(
        "the catalogue {path} has version {found}, this berkutd reads version {CATALOGUE_VERSION}"
    )]
    Version { path: PathBuf, found: u32 },
}

#[derive(Serialize, Deserialize)]
struct CatalogueFile {
    catalogue_version: u32,
    backups: Vec<Entry>,
}

pub struct Catalogue {
    path: PathBuf,
    entries: BTreeMap<BackupId, Entry>,
    /// Memory holds changes the file does not (a save failed and the
    /// change was kept, see `keep_unsaved`); the next save writes them.
    dirty: bool,
}

impl Catalogue {
    /// Loads the catalogue; a missing file is an empty catalogue.
    pub fn load(path: &Path) -> Result<Catalogue, CatalogueError> {
        let io = |source| CatalogueError::Io {
            path: path.to_owned(),
            source,
        };
        let text = match std::fs::read(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Catalogue {
                    path: path.to_owned(),
                    entries: BTreeMap::new(),
                    dirty: false,
                })
            }
            Err(e) => return Err(io(e)),
        };
        Self::parse(path, &text)
    }

    fn parse(path: &Path, text: &[u8]) -> Result<Catalogue, CatalogueError> {
        let value: serde_json::Value =
            serde_json::from_slice(text).map_err(|e| CatalogueError::Corrupt {
                path: path.to_owned(),
                message: e.to_string(),
            })?;
        let found = value
            .get("catalogue_version")
            .and_then(|v| v.as_u64())
            .unwrap_or(0) as u32;
        if found != CATALOGUE_VERSION {
            return Err(CatalogueError::Version {
                path: path.to_owned(),
                found,
            });
        }
        let file: CatalogueFile =
            serde_json::from_value(value).map_err(|e| CatalogueError::Corrupt {
                path: path.to_owned(),
                message: e.to_string(),
            })?;
        Ok(Catalogue {
            path: path.to_owned(),
            entries: file
                .backups
                .into_iter()
                .map(|e| (e.id.clone(), e))
                .collect(),
            dirty: false,
        })
    }

    /// Writes the catalogue atomically: temporary file, fsync, rename, fsync
    /// of the directory.
    pub fn save(&mut self) -> Result<(), CatalogueError> {
        let io = |source| CatalogueError::Io {
            path: self.path.clone(),
            source,
        };
        let file = CatalogueFile {
            catalogue_version: CATALOGUE_VERSION,
            backups: self.entries.values().cloned().collect(),
        };
        let mut text =
            serde_json::to_vec_pretty(&file).expect("catalogue entries always serialise");
        text.push(b'\n');
        crate::fsutil::write_atomically(&self.path, &text).map_err(io)?;
        self.dirty = false;
        Ok(())
    }

    /// Keeps the changes in memory although they could not be saved: for
    /// outcomes that are true whatever the disk says (a job that ended),
    /// so no record stays `running` for want of a write. The next save
    /// writes them; `flush` retries.
    pub fn keep_unsaved(&mut self) {
        self.dirty = true;
    }

    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Saves changes that an earlier save could not write, if any.
    pub fn flush(&mut self) -> Result<bool, CatalogueError> {
        if !self.dirty {
            return Ok(false);
        }
        self.save()?;
        Ok(true)
    }

    pub fn get(&self, id: &BackupId) -> Option<&Entry> {
        self.entries.get(id)
    }

    pub fn get_mut(&mut self, id: &BackupId) -> Option<&mut Entry> {
        self.entries.get_mut(id)
    }

    pub fn insert(&mut self, entry: Entry) {
        self.entries.insert(entry.id.clone(), entry);
    }

    pub fn remove(&mut self, id: &BackupId) -> Option<Entry> {
        self.entries.remove(id)
    }

    /// All entries, newest first. Ids sort by time only to the second, so
    /// the creation time decides, and the id breaks ties.
    pub fn list(&self) -> impl Iterator<Item = &Entry> {
        let mut entries: Vec<&Entry> = self.entries.values().collect();
        entries.sort_by(|a, b| (b.state.created_at(), &b.id).cmp(&(a.state.created_at(), &a.id)));
        entries.into_iter()
    }

    /// When the newest succeeded backup (of `origin`, or of any origin)
    /// was created: the plan's last success, the scheduler's catch-up and
    /// the RPO watch all ask this.
    pub fn newest_success(&self, origin: Option<Origin>) -> Option<OffsetDateTime> {
        self.entries
            .values()
            .filter(|e| origin.is_none_or(|o| e.origin == o))
            .filter(|e| e.state.status() == BackupStatus::Succeeded)
            .map(|e| e.state.created_at())
            .max()
    }

    /// A copy of the entries, to roll back to if a save fails.
    pub fn snapshot(&self) -> BTreeMap<BackupId, Entry> {
        self.entries.clone()
    }

    pub fn restore(&mut self, entries: BTreeMap<BackupId, Entry>) {
        self.entries = entries;
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The catalogue as version 1 wrote it. If this test fails, the on-disk
    /// format changed: bump CATALOGUE_VERSION and migrate instead.
    const FIXTURE_V1: &str = include_str!("../tests/fixtures/catalogue-v1.json");

    #[test]
    fn reads_the_version_1_fixture() {
        let cat = Catalogue::parse(Path::new("fixture"), FIXTURE_V1.as_bytes()).unwrap();
        assert_eq!(cat.len(), 2);
        let ok: BackupId = "20261120T020000Z-0badc0de".parse().unwrap();
        let entry = cat.get(&ok).unwrap();
        assert_eq!(entry.state.status(), BackupStatus::Succeeded);
        assert_eq!(entry.archive.as_ref().unwrap().size_bytes, 123456);
        let record = entry.record();
        assert_eq!(record.key_id.as_deref(), Some("00112233445566ff"));
        let failed: BackupId = "20261121T020000Z-00c0ffee".parse().unwrap();
        let failure = cat.get(&failed).unwrap().record().failure.unwrap();
        assert_eq!(failure.code, berkut_proto::wire::ErrorCode::Unavailable);
        // Newest first.
        assert_eq!(cat.list().next().unwrap().id, failed);
    }

    #[test]
    fn newest_success_looks_at_succeeded_backups_of_the_origin_asked() {
        let mut cat = Catalogue::parse(Path::new("fixture"), FIXTURE_V1.as_bytes()).unwrap();
        let scheduled = time::macros::datetime!(2026-11-20 02:00 UTC);
        // The newer failed manual backup does not count.
        assert_eq!(cat.newest_success(None), Some(scheduled));
        assert_eq!(cat.newest_success(Some(Origin::Scheduled)), Some(scheduled));
        assert_eq!(cat.newest_success(Some(Origin::Manual)), None);
        let ok: BackupId = "20261120T020000Z-0badc0de".parse().unwrap();
        let later = time::macros::datetime!(2026-11-22 02:00 UTC);
        let manual = Entry {
            id: "20261122T020000Z-00000001".parse().unwrap(),
            origin: Origin::Manual,
            state: BackupState::Succeeded {
                created_at: later,
                started_at: later,
                finished_at: later,
            },
            ..cat.get(&ok).unwrap().clone()
        };
        cat.insert(manual);
        assert_eq!(cat.newest_success(None), Some(later));
        assert_eq!(cat.newest_success(Some(Origin::Manual)), Some(later));
        assert_eq!(cat.newest_success(Some(Origin::Scheduled)), Some(scheduled));
    }

    #[test]
    fn save_then_load_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalogue.json");
        let mut cat = Catalogue::parse(&path, FIXTURE_V1.as_bytes()).unwrap();
        cat.path = path.clone();
        cat.save().unwrap();
        let again = Catalogue::load(&path).unwrap();
        assert_eq!(again.entries, cat.entries);
        assert!(!path.with_extension("tmp").exists());
    }

    #[test]
    fn damaged_or_future_catalogues_are_refused() {
        let p = Path::new("x");
        assert!(matches!(
            Catalogue::parse(p, b"{\"catalogue_version\": 1, \"backups\": [{]"),
            Err(CatalogueError::Corrupt { .. })
        ));
        assert!(matches!(
            Catalogue::parse(p, b"{\"catalogue_version\": 2, \"backups\": []}"),
            Err(CatalogueError::Version { found: 2, .. })
        ));
        let hostile = br#"{"catalogue_version": 1, "backups": [{"id": "../../etc/passwd", "label": "", "scope": "full", "include_files": false, "origin": "manual", "state": {"status": "queued", "created_at": "2026-01-01T00:00:00Z"}}]}"#;
        assert!(matches!(
            Catalogue::parse(p, hostile),
            Err(CatalogueError::Corrupt { .. })
        ));
    }
}
