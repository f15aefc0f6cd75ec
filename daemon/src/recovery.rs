//! Start-up recovery: makes the catalogue agree with the archives on disk
//! after whatever happened while the daemon was down (a crash mid-backup, a
//! lost or damaged catalogue, an archive removed by hand). The archives are
//! the ground truth; an entry is only ever rebuilt from an archive that
//! authenticates end to end.

use std::collections::BTreeSet;
use std::path::Path;

use berkut_proto::archive::Keyring;
use berkut_proto::ids::BackupId;
use berkut_proto::wire::{BackupStatus, ErrorCode, Failure};
use time::OffsetDateTime;

use crate::catalogue::{Catalogue, CatalogueError, Entry};
use crate::store::Store;

pub const CATALOGUE_FILE: &str = "catalogue.json";

/// Loads the catalogue and repairs it against the store.
pub fn recover(
    state_dir: &Path,
    store: &Store,
    keyring: &Keyring,
    now: OffsetDateTime,
) -> Result<Catalogue, CatalogueError> {
    let path = state_dir.join(CATALOGUE_FILE);
    let mut cat = match Catalogue::load(&path) {
        Ok(cat) => cat,
        Err(CatalogueError::Corrupt { message, .. }) => {
            // Keep the damaged file for a human to look at; the archives
            // hold everything needed to rebuild the catalogue.
            let aside = path.with_extension(format!("json.damaged-{}", now.unix_timestamp()));
            tracing::error!(%message, aside = %aside.display(), "the catalogue is damaged; rebuilding it from the archives");
            std::fs::rename(&path, &aside).map_err(|source| CatalogueError::Io {
                path: path.clone(),
                source,
            })?;
            Catalogue::load(&path)?
        }
        Err(other) => return Err(other),
    };
    let on_disk: BTreeSet<BackupId> = store
        .list()
        .map_err(|source| CatalogueError::Io {
            path: path.clone(),
            source,
        })?
        .into_iter()
        .collect();
    let mut changed = false;

    let known: Vec<BackupId> = cat.list().map(|e| e.id.clone()).collect();
    for id in known {
        let entry = cat.get_mut(&id).expect("listed just now");
        match entry.state.status() {
            BackupStatus::Queued | BackupStatus::Running => {
                changed = true;
                // The daemon may have died between putting the archive in
                // place and recording it: an archive that verifies wins.
                if on_disk.contains(&id) {
                    if let Some(rebuilt) = rebuild(store, keyring, &id) {
                        tracing::info!(backup = %id, "an interrupted backup had finished; recorded it");
                        *entry = rebuilt;
                        continue;
                    }
                }
                tracing::warn!(backup = %id, "backup was interrupted by a daemon stop; marked failed");
                entry.state = entry.state.failed(
                    now,
                    Failure {
                        code: ErrorCode::Unavailable,
                        reason: "interrupted: the daemon stopped before the backup finished".into(),
                    },
                );
            }
            BackupStatus::Succeeded if !on_disk.contains(&id) => {
                changed = true;
                tracing::error!(backup = %id, "the archive of a recorded backup is missing from the store");
                entry.state = entry.state.failed(
                    now,
                    Failure {
                        code: ErrorCode::NotFound,
                        reason: "the archive is missing from the backup directory".into(),
                    },
                );
                entry.archive = None;
            }
            _ => {}
        }
    }

    for id in on_disk
        .iter()
        .filter(|id| cat.get(id).is_none())
        .cloned()
        .collect::<Vec<_>>()
    {
        if let Some(entry) = rebuild(store, keyring, &id) {
            tracing::info!(backup = %id, "added an archive that the catalogue did not know");
            cat.insert(entry);
            changed = true;
        }
    }
    if changed {
        cat.save()?;
    }
    Ok(cat)
}

/// An entry made from a stored archive, if it authenticates.
fn rebuild(store: &Store, keyring: &Keyring, id: &BackupId) -> Option<Entry> {
    match store.verify(id, keyring) {
        Ok((manifest, facts)) => {
            if manifest.backup_id != id.as_str() {
                tracing::warn!(backup = %id, inner = %manifest.backup_id, "archive file name and manifest disagree; using the file name");
            }
            let origin = manifest.origin;
            Some(Entry::from_archive(id.clone(), manifest, facts, origin))
        }
        Err(e) => {
            tracing::error!(backup = %id, error = %e, "an archive in the store does not verify; it is left alone and not listed");
            None
        }
    }
}
