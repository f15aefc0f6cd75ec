//! How many backups and restores have ended, by how they ended: the
//! `_runs_total` counters. They are derived from the records, not kept
//! only in memory: at start they are counted from the catalogue and the
//! restore records, and every run that ends afterwards adds one. Restore
//! records are never deleted, so the restore counts never go down across a
//! restart; retention deletes backups, so after a restart the backup counts
//! may start lower, which Prometheus reads as the counter reset a restart is.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use berkut_proto::manifest::Origin;
use berkut_proto::wire::{BackupStatus, RestoreStatus};

use crate::catalogue::Catalogue;

/// How a run ended, as the `result` label says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    Succeeded,
    Failed,
}

impl Outcome {
    pub fn of(ok: bool) -> Outcome {
        if ok {
            Outcome::Succeeded
        } else {
            Outcome::Failed
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
        }
    }
}

/// A restore's kind, as the `kind` label says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RestoreKind {
    /// A dry-run into a scratch database (a drill).
    Drill,
    /// A real restore that replaces the live database.
    Restore,
}

impl RestoreKind {
    pub fn of(dry_run: bool) -> RestoreKind {
        if dry_run {
            RestoreKind::Drill
        } else {
            RestoreKind::Restore
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RestoreKind::Drill => "drill",
            RestoreKind::Restore => "restore",
        }
    }
}

pub const ORIGINS: [Origin; 4] = [
    Origin::Manual,
    Origin::Scheduled,
    Origin::Imported,
    Origin::Remote,
];
pub const OUTCOMES: [Outcome; 2] = [Outcome::Succeeded, Outcome::Failed];
pub const RESTORE_KINDS: [RestoreKind; 2] = [RestoreKind::Drill, RestoreKind::Restore];

#[derive(Default)]
pub struct RunCounters {
    backups: Mutex<BTreeMap<(u8, Outcome), u64>>,
    restores: Mutex<BTreeMap<(RestoreKind, Outcome), u64>>,
    /// When the newest succeeded drill ended (Unix seconds).
    last_drill_success: Mutex<Option<i64>>,
}

/// Origins sort by a number: `Origin` itself is not `Ord`.
fn origin_key(origin: Origin) -> u8 {
    match origin {
        Origin::Manual => 0,
        Origin::Scheduled => 1,
        Origin::Imported => 2,
        Origin::Remote => 3,
    }
}

impl RunCounters {
    /// The counts the records on disk give: every finished backup in the
    /// catalogue (a missing one had succeeded) and every finished restore.
    pub fn seed(catalogue: &Catalogue, state_dir: &Path) -> RunCounters {
        let counters = RunCounters::default();
        for entry in catalogue.list() {
            let outcome = match entry.state.status() {
                BackupStatus::Succeeded | BackupStatus::Missing => Outcome::Succeeded,
                BackupStatus::Failed => Outcome::Failed,
                BackupStatus::Queued | BackupStatus::Running => continue,
            };
            counters.backup_ended(entry.origin, outcome);
        }
        for summary in crate::restore::record::load_all(state_dir) {
            let outcome = match summary.record.status {
                RestoreStatus::Succeeded => Outcome::Succeeded,
                RestoreStatus::Failed => Outcome::Failed,
                _ => continue,
            };
            counters.restore_ended(RestoreKind::of(summary.record.dry_run), outcome);
            if summary.record.dry_run && outcome == Outcome::Succeeded {
                if let Some(at) = summary.record.finished_at {
                    counters.drill_succeeded(at.unix_timestamp());
                }
            }
        }
        counters
    }

    pub fn backup_ended(&self, origin: Origin, outcome: Outcome) {
        *self
            .backups
            .lock()
            .unwrap()
            .entry((origin_key(origin), outcome))
            .or_default() += 1;
    }

    pub fn restore_ended(&self, kind: RestoreKind, outcome: Outcome) {
        *self
            .restores
            .lock()
            .unwrap()
            .entry((kind, outcome))
            .or_default() += 1;
    }

    /// A drill succeeded at `at` (Unix seconds).
    pub fn drill_succeeded(&self, at: i64) {
        let mut last = self.last_drill_success.lock().unwrap();
        *last = (*last).max(Some(at));
    }

    pub fn last_drill_success(&self) -> Option<i64> {
        *self.last_drill_success.lock().unwrap()
    }

    pub fn backups(&self, origin: Origin, outcome: Outcome) -> u64 {
        let key = (origin_key(origin), outcome);
        self.backups.lock().unwrap().get(&key).copied().unwrap_or(0)
    }

    pub fn restores(&self, kind: RestoreKind, outcome: Outcome) -> u64 {
        let key = (kind, outcome);
        self.restores
            .lock()
            .unwrap()
            .get(&key)
            .copied()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_by_label() {
        let c = RunCounters::default();
        c.backup_ended(Origin::Scheduled, Outcome::Failed);
        c.backup_ended(Origin::Scheduled, Outcome::Failed);
        c.backup_ended(Origin::Manual, Outcome::Succeeded);
        c.restore_ended(RestoreKind::Drill, Outcome::Succeeded);
        assert_eq!(c.backups(Origin::Scheduled, Outcome::Failed), 2);
        assert_eq!(c.backups(Origin::Scheduled, Outcome::Succeeded), 0);
        assert_eq!(c.backups(Origin::Manual, Outcome::Succeeded), 1);
        assert_eq!(c.restores(RestoreKind::Drill, Outcome::Succeeded), 1);
        assert_eq!(c.restores(RestoreKind::Restore, Outcome::Succeeded), 0);
        assert_eq!(c.last_drill_success(), None);
        c.drill_succeeded(20);
        c.drill_succeeded(10);
        assert_eq!(c.last_drill_success(), Some(20));
    }
}
