//! Start-up recovery and `store_rescan`: makes the catalogue agree with the
//! archives on disk after whatever happened while nobody looked (a crash
//! mid-backup, a lost or damaged catalogue, an archive removed by hand, a
//! backup directory whose mount is not up). The archives are the ground
//! truth; an entry is only ever rebuilt from an archive that authenticates
//! end to end.
//!
//! An absent archive never condemns a backup: a succeeded backup whose
//! archive is not there becomes `missing` (its facts kept), and `missing`
//! becomes `succeeded` again once the archive is back and authenticates.
//! When most recorded archives are absent at once, the directory is more
//! likely wrong than the archives gone: the daemon raises the store alarm
//! and, at start, does not write the catalogue.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use berkut_proto::archive::Keyring;
use berkut_proto::ids::BackupId;
use berkut_proto::wire::{BackupStatus, ErrorCode, Failure};
use time::OffsetDateTime;

use crate::catalogue::{ArchiveFacts, Catalogue, CatalogueError, Entry};
use crate::store::Store;

pub const CATALOGUE_FILE: &str = "catalogue.json";

/// What recovery found, for the log and the daemon's status.
pub struct Recovered {
    pub catalogue: Catalogue,
    pub scan: Scan,
}

/// Loads the catalogue and repairs it against the store.
pub fn recover(
    state_dir: &Path,
    store: &Store,
    keyring: &Keyring,
    now: OffsetDateTime,
) -> Result<Recovered, CatalogueError> {
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
    let io = |source| CatalogueError::Io {
        path: path.clone(),
        source,
    };
    let on_disk: BTreeSet<BackupId> = store.list().map_err(io)?.into_iter().collect();
    let mut changed = false;

    let known: Vec<BackupId> = cat.list().map(|e| e.id.clone()).collect();
    for id in known {
        let entry = cat.get_mut(&id).expect("listed just now");
        if matches!(
            entry.state.status(),
            BackupStatus::Queued | BackupStatus::Running
        ) {
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
    }

    let findings = look(store, keyring, &statuses(&cat), &on_disk);
    let scan = apply(&mut cat, findings, now);
    changed |= scan.changed();
    scan.log();
    if let Some(alarm) = &scan.alarm {
        // Most likely the backup directory is a mount that is not up: the
        // catalogue on disk stays as it is, for the next start to find the
        // archives again.
        tracing::error!(alarm = %alarm, "most recorded archives are missing from the backup directory; is it mounted? The catalogue is not rewritten; the backups show as missing until their archives are back (berkutctl store rescan, or a restart)");
    } else if changed {
        cat.save()?;
    }
    Ok(Recovered {
        catalogue: cat,
        scan,
    })
}

/// The status of every entry, to decide what to look at.
pub fn statuses(cat: &Catalogue) -> BTreeMap<BackupId, BackupStatus> {
    // A remote-only backup has no archive here to look for.
    cat.list()
        .filter(|e| !e.remote_only)
        .map(|e| (e.id.clone(), e.state.status()))
        .collect()
}

/// What a look at the store found, before it is applied to the catalogue.
/// Reading the archives takes time; it happens without the catalogue's
/// lock, and `apply` checks again that each entry is still as it was.
#[derive(Debug, Default)]
pub struct Findings {
    /// Succeeded backups whose archive is not there.
    absent: Vec<BackupId>,
    /// Missing backups whose archive is back and authenticates.
    back: Vec<(BackupId, ArchiveFacts)>,
    /// Missing backups still without an archive.
    still_missing: Vec<BackupId>,
    /// Archives the catalogue did not know, rebuilt.
    unknown: Vec<Entry>,
    /// Archives present that do not authenticate (or name another backup).
    unverified: Vec<BackupId>,
}

/// Looks at the store for the entries given (their status when looked up)
/// and the archives on disk. Blocking: authenticates whole archives.
pub fn look(
    store: &Store,
    keyring: &Keyring,
    known: &BTreeMap<BackupId, BackupStatus>,
    on_disk: &BTreeSet<BackupId>,
) -> Findings {
    let mut findings = Findings::default();
    for (id, status) in known {
        match (status, on_disk.contains(id)) {
            (BackupStatus::Succeeded, false) => findings.absent.push(id.clone()),
            (BackupStatus::Missing, false) => findings.still_missing.push(id.clone()),
            (BackupStatus::Missing, true) => match store.verify(id, keyring) {
                Ok((manifest, facts)) if manifest.backup_id == id.as_str() => {
                    findings.back.push((id.clone(), facts))
                }
                Ok((manifest, _)) => {
                    tracing::error!(backup = %id, inner = %manifest.backup_id, "the archive that came back under this name holds another backup; the record stays missing");
                    findings.unverified.push(id.clone());
                }
                Err(e) => {
                    tracing::error!(backup = %id, error = %e, "the archive of a missing backup is back but does not verify; the record stays missing");
                    findings.unverified.push(id.clone());
                }
            },
            _ => {}
        }
    }
    for id in on_disk.iter().filter(|id| !known.contains_key(*id)) {
        match rebuild(store, keyring, id) {
            Some(entry) => findings.unknown.push(entry),
            None => findings.unverified.push(id.clone()),
        }
    }
    findings
}

/// The outcome of a scan.
#[derive(Debug, Default)]
pub struct Scan {
    /// Missing backups that are back: succeeded again.
    pub found: Vec<BackupId>,
    /// Backups that turned missing in this scan.
    pub newly_missing: Vec<BackupId>,
    /// Every backup missing after the scan.
    pub missing: Vec<BackupId>,
    /// Archives added to the catalogue.
    pub added: Vec<BackupId>,
    /// Archives present that do not authenticate.
    pub unverified: Vec<BackupId>,
    /// Set when most recorded archives are missing.
    pub alarm: Option<String>,
}

impl Scan {
    pub fn changed(&self) -> bool {
        !(self.found.is_empty() && self.newly_missing.is_empty() && self.added.is_empty())
    }

    /// Logs what changed, entry by entry.
    pub fn log(&self) {
        for id in &self.newly_missing {
            tracing::error!(backup = %id, "the archive of a recorded backup is missing from the backup directory; the backup is marked missing (not failed) until it is back");
        }
        for id in &self.found {
            tracing::info!(backup = %id, "the archive of a missing backup is back and authenticates; the backup is succeeded again");
        }
        for id in &self.added {
            tracing::info!(backup = %id, "added an archive that the catalogue did not know");
        }
    }
}

/// Applies findings to the catalogue, entry by entry, only where the entry
/// is still in the state it was looked at in.
pub fn apply(cat: &mut Catalogue, findings: Findings, now: OffsetDateTime) -> Scan {
    let mut scan = Scan {
        unverified: findings.unverified,
        ..Scan::default()
    };
    for id in findings.absent {
        if let Some(e) = cat.get_mut(&id) {
            if e.state.status() == BackupStatus::Succeeded {
                e.state = e.state.missing(now);
                scan.newly_missing.push(id);
            }
        }
    }
    for (id, facts) in findings.back {
        if let Some(e) = cat.get_mut(&id) {
            if e.state.status() == BackupStatus::Missing {
                e.state = e.state.found();
                e.archive = Some(facts);
                scan.found.push(id);
            }
        }
    }
    for entry in findings.unknown {
        if cat.get(&entry.id).is_none() {
            scan.added.push(entry.id.clone());
            cat.insert(entry);
        }
    }
    scan.missing = cat
        .list()
        .filter(|e| e.state.status() == BackupStatus::Missing)
        .map(|e| e.id.clone())
        .collect();
    scan.alarm = alarm(cat);
    scan
}

/// The store alarm: most (more than half) of the recorded archives are
/// missing. One missing archive of many is an archive gone; most of them
/// at once is a directory that is not the right one.
pub fn alarm(cat: &Catalogue) -> Option<String> {
    let (mut missing, mut recorded) = (0usize, 0usize);
    for e in cat.list() {
        match e.state.status() {
            BackupStatus::Missing => {
                missing += 1;
                recorded += 1;
            }
            BackupStatus::Succeeded => recorded += 1,
            _ => {}
        }
    }
    (missing > 0 && missing * 2 > recorded).then(|| {
        format!(
            "{missing} of {recorded} recorded archives are missing from the backup directory (is it mounted?)"
        )
    })
}

/// The store alarm in force: raised at start or by a rescan, and kept only
/// while most recorded archives are still missing (an import of them, or
/// deleting their records, ends it too). Takes the catalogue's lock.
pub fn store_alarm(daemon: &crate::state::Daemon) -> Option<String> {
    daemon.health.store_alarm()?;
    daemon.catalogue.read(alarm)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::BackupState;
    use berkut_proto::manifest::{Origin, Scope};
    use time::macros::datetime;

    fn entry(n: u32, state: BackupState) -> Entry {
        Entry {
            id: format!("20261101T000000Z-{n:08x}").parse().unwrap(),
            label: String::new(),
            scope: Scope::Database,
            include_files: false,
            origin: Origin::Manual,
            state,
            database: None,
            archive: None,
            pinned: false,
            properties: None,
            copies: Vec::new(),
            remote_only: false,
            dropped_from: Vec::new(),
            files: None,
            drill: None,
        }
    }

    fn succeeded() -> BackupState {
        let t = datetime!(2026-11-01 00:00 UTC);
        BackupState::Succeeded {
            created_at: t,
            started_at: t,
            finished_at: t,
        }
    }

    #[test]
    fn the_alarm_needs_most_archives_missing() {
        let dir = tempfile::tempdir().unwrap();
        let mut cat = Catalogue::load(&dir.path().join("c.json")).unwrap();
        assert_eq!(alarm(&cat), None, "an empty catalogue is no alarm");
        let now = datetime!(2026-11-02 00:00 UTC);
        for n in 0..4 {
            cat.insert(entry(n, succeeded()));
        }
        let missing = |n: u32| entry(n, succeeded().missing(now));
        cat.insert(missing(0));
        cat.insert(missing(1));
        assert_eq!(alarm(&cat), None, "two of four is not most");
        cat.insert(missing(2));
        assert!(alarm(&cat).unwrap().starts_with("3 of 4"));
        // Failed backups have no archive and do not count.
        cat.insert(entry(
            9,
            succeeded().failed(
                now,
                Failure {
                    code: ErrorCode::Internal,
                    reason: "x".into(),
                },
            ),
        ));
        assert!(alarm(&cat).unwrap().starts_with("3 of 4"));
    }

    #[test]
    fn missing_and_found_keep_the_times() {
        let now = datetime!(2026-11-02 00:00 UTC);
        let missing = succeeded().missing(now);
        assert_eq!(missing.status(), BackupStatus::Missing);
        assert_eq!(missing.finished_at(), succeeded().finished_at());
        assert_eq!(missing.found(), succeeded());
        // Only a succeeded backup can go missing.
        let queued = BackupState::Queued { created_at: now };
        assert_eq!(queued.missing(now), queued);
    }
}
