//! What a drill proves, kept where people look: the verdict of the last
//! drill on the backup's own record (`Entry::drill`), set when a dry-run of
//! it ends (never when the daemon's stop or a crash cut it short: that
//! proves nothing either way); the restore time a drill measured, offered
//! as the expected restore time of that backup or of its neighbours; and
//! what `status` reports from them (the newest verified backup, a drill
//! overdue or failed).

use std::time::Duration;

use berkut_proto::ids::BackupId;
use berkut_proto::wire::{
    BackupStatus, DrillResult, DrillVerdict, Failure, RestoreEstimate, RestoreRecord,
};
use time::OffsetDateTime;

use crate::catalogue::{Catalogue, Entry};
use crate::state::Daemon;

/// The verdict of a drill that ended at `now`: `failure` is `None` when it
/// passed.
pub fn of(
    record: &RestoreRecord,
    now: OffsetDateTime,
    failure: Option<Failure>,
    rto_target: Duration,
) -> DrillVerdict {
    let began = record.started_at.unwrap_or(record.created_at);
    let duration_seconds = (now - began).whole_seconds().max(0) as u64;
    DrillVerdict {
        result: if failure.is_none() {
            DrillResult::Passed
        } else {
            DrillResult::Failed
        },
        at: now,
        restore_id: record.restore_id.clone(),
        duration_seconds,
        failure,
        rto_exceeded: duration_seconds > rto_target.as_secs(),
    }
}

/// Puts the verdict on the backup's record. An outcome: kept in memory if
/// the catalogue cannot be written, like a job's.
pub fn put(daemon: &Daemon, backup: &BackupId, verdict: DrillVerdict) {
    if verdict.rto_exceeded {
        tracing::warn!(
            backup = %backup,
            restore = %verdict.restore_id,
            seconds = verdict.duration_seconds,
            target_seconds = daemon.config().rto_target.as_secs(),
            "the drill took longer than the recovery time objective (rto_target_minutes)"
        );
    }
    tracing::info!(backup = %backup, restore = %verdict.restore_id, result = verdict.result.as_str(), seconds = verdict.duration_seconds, "drill verdict recorded");
    let saved = daemon.catalogue.update_keeping(|c| {
        if let Some(entry) = c.get_mut(backup) {
            entry.drill = Some(verdict);
        }
    });
    if let Err(e) = saved {
        tracing::warn!(backup = %backup, error = %e, "the drill verdict is kept in memory until the catalogue can be written");
    }
}

/// The expected restore time of backup `id`: what its last passing drill
/// took, else what the passing drill of the backup nearest in time took.
pub fn estimate(cat: &Catalogue, id: &BackupId) -> Option<RestoreEstimate> {
    let of_entry = |e: &Entry| {
        e.drill
            .as_ref()
            .filter(|d| d.result == DrillResult::Passed)
            .map(|d| RestoreEstimate {
                seconds: d.duration_seconds,
                backup_id: e.id.clone(),
                restore_id: d.restore_id.clone(),
            })
    };
    let own = cat.get(id)?;
    if let Some(estimate) = of_entry(own) {
        return Some(estimate);
    }
    let at = own.state.created_at();
    cat.list()
        .filter_map(|e| of_entry(e).map(|est| ((e.state.created_at() - at).abs(), est)))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, est)| est)
}

/// What `status` says about drills.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Proof {
    /// The newest backup a drill passed for, and when it was created.
    pub verified: Option<(BackupId, OffsetDateTime)>,
    /// The newest drill verdict of any backup, with its backup.
    pub last: Option<(BackupId, DrillVerdict)>,
    /// The newest successful backup has had no verdict for longer than
    /// `overdue_after` since it finished.
    pub overdue: bool,
}

impl Proof {
    /// How old the newest verified backup is at `now`, in seconds since it
    /// was made: the recovery point one can count on. `status` and the
    /// metrics both read it here.
    pub fn verified_age_seconds(&self, now: OffsetDateTime) -> Option<u64> {
        self.verified
            .as_ref()
            .map(|(_, at)| (now - *at).whole_seconds().max(0) as u64)
    }

    pub fn failed(&self) -> bool {
        self.last
            .as_ref()
            .is_some_and(|(_, v)| v.result == DrillResult::Failed)
    }
}

/// Reads the proof from the catalogue at `now`.
pub fn proof(cat: &Catalogue, now: OffsetDateTime, overdue_after: Duration) -> Proof {
    let verified = cat
        .list()
        .filter(|e| e.state.status() == BackupStatus::Succeeded)
        .find(|e| {
            e.drill
                .as_ref()
                .is_some_and(|d| d.result == DrillResult::Passed)
        })
        .map(|e| (e.id.clone(), e.state.created_at()));
    let last = cat
        .list()
        .filter_map(|e| e.drill.as_ref().map(|d| (e.id.clone(), d.clone())))
        .max_by_key(|(_, d)| d.at);
    let overdue_after = time::Duration::try_from(overdue_after).unwrap_or(time::Duration::MAX);
    let overdue = cat
        .list()
        .find(|e| e.state.status() == BackupStatus::Succeeded)
        .is_some_and(|newest| {
            newest.drill.is_none()
                && newest
                    .state
                    .finished_at()
                    .is_some_and(|t| now - t > overdue_after)
        });
    Proof {
        verified,
        last,
        overdue,
    }
}

#[cfg(test)]
mod tests {
    use berkut_proto::manifest::{Origin, Scope};
    use berkut_proto::wire::ErrorCode;
    use time::macros::datetime;

    use super::*;
    use crate::catalogue::BackupState;

    const NOW: OffsetDateTime = datetime!(2026-11-21 12:00 UTC);

    fn entry(n: u32, hours_old: i64, drill: Option<(DrillResult, u64)>) -> Entry {
        let created = NOW - time::Duration::hours(hours_old);
        Entry {
            id: format!("20261101T000000Z-{n:08x}").parse().unwrap(),
            label: String::new(),
            scope: Scope::Database,
            include_files: false,
            origin: Origin::Scheduled,
            state: BackupState::Succeeded {
                created_at: created,
                started_at: created,
                finished_at: created + time::Duration::minutes(1),
            },
            database: None,
            archive: None,
            pinned: false,
            properties: None,
            files: None,
            copies: Vec::new(),
            remote_only: false,
            dropped_from: Vec::new(),
            drill: drill.map(|(result, seconds)| DrillVerdict {
                result,
                at: created + time::Duration::minutes(10),
                restore_id: format!("r-20261101T000000Z-{:08x}", n + 100)
                    .parse()
                    .unwrap(),
                duration_seconds: seconds,
                failure: (result == DrillResult::Failed).then(|| Failure {
                    code: ErrorCode::Unavailable,
                    reason: "down".into(),
                }),
                rto_exceeded: false,
            }),
        }
    }

    fn catalogue(entries: Vec<Entry>) -> (tempfile::TempDir, Catalogue) {
        let dir = tempfile::tempdir().unwrap();
        let mut cat = Catalogue::load(&dir.path().join("c.json")).unwrap();
        for e in entries {
            cat.insert(e);
        }
        (dir, cat)
    }

    #[test]
    fn the_estimate_is_the_backups_own_drill_or_the_nearest_ones() {
        let (_d, cat) = catalogue(vec![
            entry(1, 72, Some((DrillResult::Passed, 600))),
            entry(2, 48, Some((DrillResult::Failed, 5))),
            entry(3, 30, None),
            entry(4, 2, Some((DrillResult::Passed, 900))),
        ]);
        let id = |n: u32| -> BackupId { format!("20261101T000000Z-{n:08x}").parse().unwrap() };
        assert_eq!(estimate(&cat, &id(1)).unwrap().seconds, 600);
        // Its own drill failed: the nearest passing one is 24 h away (1),
        // the other 46 h.
        let e = estimate(&cat, &id(2)).unwrap();
        assert_eq!((e.seconds, e.backup_id), (600, id(1)));
        // 28 h from 4, 42 h from 1.
        assert_eq!(estimate(&cat, &id(3)).unwrap().backup_id, id(4));
        assert_eq!(estimate(&cat, &id(9)), None);
        let (_d, none) = catalogue(vec![entry(1, 1, None)]);
        assert_eq!(estimate(&none, &id(1)), None);
    }

    #[test]
    fn status_sees_the_newest_verified_backup_an_overdue_and_a_failed_drill() {
        let day = Duration::from_secs(24 * 3600);
        let (_d, cat) = catalogue(vec![
            entry(1, 72, Some((DrillResult::Passed, 600))),
            entry(2, 48, Some((DrillResult::Failed, 5))),
        ]);
        let p = proof(&cat, NOW, day);
        assert_eq!(
            p.verified.as_ref().unwrap().1,
            NOW - time::Duration::hours(72)
        );
        assert!(p.failed());
        // The newest successful backup has a verdict (failed): not overdue.
        assert!(!p.overdue);

        // A newer backup without a verdict, 30 h after it finished.
        let (_d, cat) = catalogue(vec![
            entry(1, 72, Some((DrillResult::Passed, 600))),
            entry(3, 31, None),
        ]);
        let p = proof(&cat, NOW, day);
        assert!(p.overdue && !p.failed());
        // ...but not yet overdue 2 h after it finished.
        let (_d, cat) = catalogue(vec![entry(3, 3, None)]);
        let p = proof(&cat, NOW, day);
        assert!(!p.overdue);
        assert_eq!(p.verified, None);
        assert_eq!(p.last, None);
    }

    #[test]
    fn a_verdict_measures_from_the_start_and_flags_the_objective() {
        let record = crate::restore::record::new_record(
            "r-20261121T110000Z-00000001".parse().unwrap(),
            "20261121T100000Z-00000001".parse().unwrap(),
            true,
            false,
            "app".into(),
            "app_drill".into(),
            NOW - time::Duration::hours(1),
        );
        let started = RestoreRecord {
            started_at: Some(NOW - time::Duration::minutes(40)),
            ..record
        };
        let v = of(&started, NOW, None, Duration::from_secs(30 * 60));
        assert_eq!(v.duration_seconds, 40 * 60);
        assert!(v.rto_exceeded);
        assert_eq!(v.result, DrillResult::Passed);
        let v = of(&started, NOW, None, Duration::from_secs(60 * 60));
        assert!(!v.rto_exceeded);
    }
}
