//! Drills by policy (`[drill]`): the daemon proves its backups restorable
//! by itself. `DrillScheduler::wake` decides, as a pure function of the
//! policy, the time and a few facts, whether a drill starts now and of
//! which backup; `turn` gathers the facts and starts it; the scheduler loop
//! (`schedule::runner`) calls `turn` at every turn, which comes at least
//! once a minute, when the clock moves, and when a backup ends.
//!
//! The rules: with `after_backup`, the newest scheduled backup that
//! succeeded and has no verdict yet is drilled. At every slot of the
//! drill's own schedule, the newest successful backup without a passing
//! drill is drilled (a failed one is tried again at the next slot, never in
//! a loop); a slot that passes while the drill must wait is kept until it
//! can run. A drill never starts while another drill runs (at most one at a
//! time), and yields to the daemon's other work: it waits while a backup is
//! queued or running, a real restore runs or maintenance is on. Once
//! started it queues behind the same parallelism limit as every job, and
//! when its turn comes it gives it to any backup or real restore queued
//! behind it (`jobs::Place::acquire`); once it holds its slot it keeps it
//! to the end (ARCHITECTURE.md, "Parallelism is data").
//! Drills restore on the drill server when one is set, else into a scratch
//! database on the live server (`restore::target`), never into the live
//! database.

use std::sync::Arc;

use berkut_proto::ids::BackupId;
use berkut_proto::manifest::Origin;
use berkut_proto::wire::{BackupStatus, DrillResult, RestoreRecord};
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::catalogue::Catalogue;
use crate::config::drill::DrillPolicy;
use crate::error::OpError;
use crate::state::Daemon;

/// What the catalogue and the job registry say that matters to drills.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    /// The newest succeeded scheduled backup, when it has no verdict.
    pub undrilled_scheduled: Option<BackupId>,
    /// The newest succeeded backup without a passing drill.
    pub candidate: Option<BackupId>,
    /// A drill (a dry-run) is queued or running.
    pub drilling: bool,
    /// A backup is queued or running, a real restore runs, or maintenance
    /// is on: a drill waits.
    pub busy: bool,
}

impl Facts {
    /// The facts of catalogue `cat` (the rest the caller fills in).
    pub fn of(cat: &Catalogue) -> Facts {
        let succeeded = || {
            cat.list()
                .filter(|e| e.state.status() == BackupStatus::Succeeded)
        };
        Facts {
            undrilled_scheduled: succeeded()
                .find(|e| e.origin == Origin::Scheduled)
                .filter(|e| e.drill.is_none())
                .map(|e| e.id.clone()),
            candidate: succeeded()
                .find(|e| {
                    e.drill
                        .as_ref()
                        .is_none_or(|d| d.result != DrillResult::Passed)
                })
                .map(|e| e.id.clone()),
            drilling: false,
            busy: false,
        }
    }
}

/// Why a drill starts, for the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    AfterBackup,
    Slot,
}

/// The drill policy's memory between turns.
#[derive(Debug, Default)]
pub struct DrillScheduler {
    /// The latest slot of the drill schedule already seen.
    handled: Option<OffsetDateTime>,
    /// A slot came and its drill has not started yet.
    pending: bool,
}

impl DrillScheduler {
    /// Decides what to drill at `now`, if anything.
    pub fn wake(
        &mut self,
        policy: &DrillPolicy,
        now: OffsetDateTime,
        facts: &Facts,
    ) -> Option<(BackupId, Why)> {
        match &policy.schedule {
            Some((timing, _)) => match (self.handled, timing.last_at_or_before(now)) {
                // The first look (a start, a reload): slots before it are
                // not made up for.
                (None, slot) => self.handled = slot.or(Some(now)),
                (Some(handled), Some(slot)) if slot > handled => {
                    self.handled = Some(slot);
                    self.pending = true;
                }
                _ => {}
            },
            None => self.pending = false,
        }
        if facts.drilling || facts.busy {
            return None;
        }
        if policy.after_backup {
            if let Some(id) = &facts.undrilled_scheduled {
                if facts.candidate.as_ref() == Some(id) {
                    self.pending = false;
                }
                return Some((id.clone(), Why::AfterBackup));
            }
        }
        if std::mem::take(&mut self.pending) {
            return facts.candidate.clone().map(|id| (id, Why::Slot));
        }
        None
    }
}

/// One turn of the policy: gathers the facts and starts the drill it
/// decides on.
pub async fn turn(daemon: &Arc<Daemon>, scheduler: &mut DrillScheduler, now: OffsetDateTime) {
    let policy = daemon.config().drill.clone();
    if !policy.is_on() {
        *scheduler = DrillScheduler::default();
        return;
    }
    let mut facts = daemon.catalogue.read(Facts::of);
    facts.drilling = daemon.restores.drill_in_progress();
    facts.busy = daemon
        .jobs
        .list()
        .iter()
        .any(|j| !j.record.status.is_finished())
        || daemon.restores.real_in_progress()
        || daemon.maintenance.is_active();
    let Some((id, why)) = scheduler.wake(&policy, now, &facts) else {
        return;
    };
    match start(daemon, &id).await {
        Ok(view) => {
            let restore = view.borrow().restore_id.clone();
            tracing::info!(backup = %id, %restore, reason = ?why, "drill started by the drill policy");
        }
        Err(e) => {
            tracing::warn!(backup = %id, error = %e, "the drill policy could not start a drill")
        }
    }
}

/// Starts a drill of backup `id`: a dry-run, on the drill server when one
/// is set. Refused while another drill is queued or running.
pub async fn start(
    daemon: &Arc<Daemon>,
    id: &BackupId,
) -> Result<watch::Receiver<RestoreRecord>, OpError> {
    if daemon.restores.drill_in_progress() {
        return Err(OpError::conflict(
            "a drill is already queued or running; one runs at a time",
        ));
    }
    crate::restore::submit(daemon, id.clone(), true, false).await
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn id(n: u32) -> BackupId {
        format!("20261101T000000Z-{n:08x}").parse().unwrap()
    }

    fn policy(after_backup: bool, cron: Option<&str>) -> DrillPolicy {
        let text = match cron {
            Some(c) => format!(
                "[drill]\nafter_backup = {after_backup}\npreset = \"cron\"\ncron = \"{c}\"\n"
            ),
            None => format!("[drill]\nafter_backup = {after_backup}\n"),
        };
        let table: toml::Table = toml::from_str(&text).unwrap();
        crate::config::drill::parse(table["drill"].clone()).unwrap()
    }

    const T0: OffsetDateTime = datetime!(2026-11-21 03:30 UTC);

    #[test]
    fn after_backup_drills_the_newest_scheduled_backup_without_a_verdict() {
        let p = policy(true, None);
        let mut s = DrillScheduler::default();
        let facts = Facts {
            undrilled_scheduled: Some(id(2)),
            candidate: Some(id(2)),
            ..Facts::default()
        };
        assert_eq!(s.wake(&p, T0, &facts), Some((id(2), Why::AfterBackup)));
        // It waits while a backup runs or another drill does.
        for blocked in [
            Facts {
                busy: true,
                ..facts.clone()
            },
            Facts {
                drilling: true,
                ..facts.clone()
            },
        ] {
            assert_eq!(s.wake(&p, T0, &blocked), None);
        }
        // Nothing without an undrilled scheduled backup (a failed verdict
        // is not retried by this rule).
        let done = Facts {
            undrilled_scheduled: None,
            candidate: Some(id(2)),
            ..Facts::default()
        };
        assert_eq!(s.wake(&p, T0, &done), None);
    }

    #[test]
    fn a_slot_drills_the_newest_backup_without_a_pass_once_and_waits_if_busy() {
        let p = policy(false, Some("0 4 * * *"));
        let mut s = DrillScheduler::default();
        let facts = Facts {
            undrilled_scheduled: Some(id(3)),
            candidate: Some(id(1)),
            ..Facts::default()
        };
        // The first look fires nothing, even with a slot passed.
        assert_eq!(s.wake(&p, T0, &facts), None);
        assert_eq!(s.wake(&p, T0 + time::Duration::minutes(20), &facts), None);
        // 04:00 comes while a backup runs: kept until it can run.
        let at = T0 + time::Duration::minutes(31);
        let busy = Facts {
            busy: true,
            ..facts.clone()
        };
        assert_eq!(s.wake(&p, at, &busy), None);
        assert_eq!(
            s.wake(&p, at + time::Duration::minutes(5), &facts),
            Some((id(1), Why::Slot))
        );
        // Once.
        assert_eq!(s.wake(&p, at + time::Duration::minutes(6), &facts), None);
        // The next day's slot with nothing to drill: nothing, and the slot
        // is not kept.
        let next = at + time::Duration::DAY;
        let none = Facts::default();
        assert_eq!(s.wake(&p, next, &none), None);
        assert_eq!(s.wake(&p, next + time::Duration::minutes(1), &facts), None);
    }

    #[test]
    fn facts_pick_the_newest_backups_by_their_verdicts() {
        use crate::catalogue::{BackupState, Entry};
        use berkut_proto::wire::DrillVerdict;
        let dir = tempfile::tempdir().unwrap();
        let mut cat = Catalogue::load(&dir.path().join("c.json")).unwrap();
        let entry = |n: u32, hour: u8, origin, drill: Option<DrillResult>| {
            let t = datetime!(2026-11-21 00:00 UTC) + time::Duration::hours(hour.into());
            Entry {
                id: id(n),
                label: String::new(),
                scope: berkut_proto::manifest::Scope::Database,
                include_files: false,
                origin,
                state: BackupState::Succeeded {
                    created_at: t,
                    started_at: t,
                    finished_at: t,
                },
                database: None,
                archive: None,
                pinned: false,
                properties: None,
                files: None,
                copies: Vec::new(),
                remote_only: false,
                dropped_from: Vec::new(),
                drill: drill.map(|result| DrillVerdict {
                    result,
                    at: t,
                    restore_id: "r-20261121T000000Z-00000001".parse().unwrap(),
                    duration_seconds: 1,
                    failure: None,
                    rto_exceeded: false,
                }),
            }
        };
        cat.insert(entry(1, 1, Origin::Scheduled, Some(DrillResult::Failed)));
        cat.insert(entry(2, 2, Origin::Scheduled, Some(DrillResult::Passed)));
        cat.insert(entry(3, 3, Origin::Manual, Some(DrillResult::Passed)));
        let f = Facts::of(&cat);
        assert_eq!(f.undrilled_scheduled, None);
        assert_eq!(f.candidate, Some(id(1)));
        cat.insert(entry(4, 4, Origin::Scheduled, None));
        let f = Facts::of(&cat);
        assert_eq!(f.undrilled_scheduled, Some(id(4)));
        assert_eq!(f.candidate, Some(id(4)));
    }
}
