//! The catalogue as the daemon shares it: one lock, taken only here. Callers
//! ask for what they need (a record, a status, the newest success) or pass
//! a closure to read or change it; a change is saved before the lock is
//! let go, so nobody sees a change the file does not hold (or, for a job's
//! outcome, one the next save will not write).

use std::sync::{Mutex, MutexGuard};

use berkut_proto::ids::BackupId;
use berkut_proto::manifest::Origin;
use berkut_proto::wire::{BackupRecord, BackupStatus};
use time::OffsetDateTime;

use super::{Catalogue, CatalogueError, Entry};

pub struct SharedCatalogue {
    inner: Mutex<Catalogue>,
}

impl SharedCatalogue {
    pub fn new(catalogue: Catalogue) -> SharedCatalogue {
        SharedCatalogue {
            inner: Mutex::new(catalogue),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Catalogue> {
        self.inner.lock().unwrap()
    }

    /// Reads the catalogue under its lock. Keep `look` short: every
    /// request and job waits for it.
    pub fn read<T>(&self, look: impl FnOnce(&Catalogue) -> T) -> T {
        look(&self.lock())
    }

    /// A copy of one backup's entry.
    pub fn entry(&self, id: &BackupId) -> Option<Entry> {
        self.lock().get(id).cloned()
    }

    /// One backup's record, as clients see it.
    pub fn record(&self, id: &BackupId) -> Option<BackupRecord> {
        self.lock().get(id).map(Entry::record)
    }

    /// One backup's status.
    pub fn status(&self, id: &BackupId) -> Option<BackupStatus> {
        self.lock().get(id).map(|e| e.state.status())
    }

    /// When the newest succeeded backup (of `origin`, or of any origin)
    /// was created: the plan's last success, the scheduler's catch-up and
    /// the RPO watch all ask this.
    pub fn newest_success(&self, origin: Option<Origin>) -> Option<OffsetDateTime> {
        self.lock().newest_success(origin)
    }

    pub fn contains(&self, id: &BackupId) -> bool {
        self.lock().get(id).is_some()
    }

    /// Applies a change and saves it before anyone can see it. If the save
    /// fails, the change is rolled back in memory too, so memory and disk
    /// never disagree.
    pub fn update<T>(&self, change: impl FnOnce(&mut Catalogue) -> T) -> Result<T, CatalogueError> {
        self.try_update(|cat| Ok(change(cat)), |e| e)
    }

    /// Like `update`, for a change that may refuse: when `change` returns
    /// an error, whatever it changed is rolled back and nothing is saved.
    /// A failed save becomes an error through `save_failed`.
    pub fn try_update<T, E>(
        &self,
        change: impl FnOnce(&mut Catalogue) -> Result<T, E>,
        save_failed: impl FnOnce(CatalogueError) -> E,
    ) -> Result<T, E> {
        let mut cat = self.lock();
        let before = cat.snapshot();
        let out = match change(&mut cat) {
            Ok(out) => out,
            Err(e) => {
                cat.restore(before);
                return Err(e);
            }
        };
        if let Err(e) = cat.save() {
            cat.restore(before);
            return Err(save_failed(e));
        }
        Ok(out)
    }

    /// Applies a change that is true whatever the disk says (a job's
    /// outcome) and saves it; if the save fails, the change stays in memory
    /// and the catalogue is marked unsaved (`flush` writes it later). Works
    /// on a lock poisoned by a panic too: it is how a panicked job's record
    /// is failed.
    pub fn update_keeping<T>(
        &self,
        change: impl FnOnce(&mut Catalogue) -> T,
    ) -> Result<T, CatalogueError> {
        let mut cat = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let out = change(&mut cat);
        cat.save().inspect_err(|_| cat.keep_unsaved())?;
        Ok(out)
    }

    /// Saves changes that an earlier save could not write, if any.
    pub fn flush(&self) -> Result<bool, CatalogueError> {
        self.lock().flush()
    }

    /// Whether the lock can be taken (it is not poisoned by a panic).
    /// Blocks for as long as someone holds it: the watchdog relies on that,
    /// so a deadlock stops its pings.
    pub fn lock_works(&self) -> bool {
        self.inner.lock().is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE_V1: &str = include_str!("../../tests/fixtures/catalogue-v1.json");

    /// The version 1 fixture, saved in a directory of its own, and the id
    /// of its succeeded backup.
    fn shared() -> (
        tempfile::TempDir,
        std::path::PathBuf,
        SharedCatalogue,
        BackupId,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalogue.json");
        std::fs::write(&path, FIXTURE_V1).unwrap();
        let cat = SharedCatalogue::new(Catalogue::load(&path).unwrap());
        let ok = "20261120T020000Z-0badc0de".parse().unwrap();
        (dir, path, cat, ok)
    }

    #[test]
    fn a_refused_change_is_rolled_back_and_not_saved() {
        let (_dir, path, cat, ok) = shared();
        let refused: Result<(), &str> = cat.try_update(
            |c| {
                c.remove(&ok);
                Err("no")
            },
            |_| "save failed",
        );
        assert_eq!(refused, Err("no"));
        assert!(cat.contains(&ok));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), FIXTURE_V1);

        cat.update(|c| c.get_mut(&ok).unwrap().pinned = true)
            .unwrap();
        assert_eq!(cat.entry(&ok).map(|e| e.pinned), Some(true));
        assert!(Catalogue::load(&path).unwrap().get(&ok).unwrap().pinned);
    }

    #[test]
    fn a_failed_save_rolls_back_or_keeps_the_change_as_asked() {
        let (dir, _, cat, ok) = shared();
        // The catalogue's directory is gone: every save fails.
        drop(dir);
        assert!(cat.update(|c| c.remove(&ok)).is_err());
        assert!(cat.contains(&ok));
        assert!(cat.update_keeping(|c| c.remove(&ok)).is_err());
        assert!(!cat.contains(&ok));
        assert!(cat.read(Catalogue::is_dirty));
        assert!(cat.flush().is_err());
    }
}
