//! Retention (R8): which backups to delete, as a pure function, and the
//! loop that deletes them. Backups older than `retention_days` go, but the
//! newest `keep_last_successful` successful ones always stay, so a run of
//! failures can never remove the last good backup. Pinned backups and
//! backups a job is working on are never touched, and neither are missing
//! ones (their archive may come back; they do not count among the kept
//! successful ones either, so they never shield an older archive). Failed backups leave no
//! archive; their records age out by the same rule. The databases real
//! restores kept for rollback go by the same age, counted from the end of
//! their restore. An archive whose off-site copy is not made yet stays,
//! with a warning each pass, while the remote's own retention would keep
//! the backup (`remote::retention::Holdings`): deleting it would make the
//! copy impossible, and a backup the remote's policy wants off site would
//! then be nowhere off site.

use std::collections::HashMap;
use std::sync::Arc;

use berkut_proto::ids::BackupId;
use berkut_proto::wire::BackupStatus;
use time::OffsetDateTime;

use crate::remote::retention::Holdings;
use crate::state::Daemon;

/// What retention needs to know about one backup.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub id: BackupId,
    pub created_at: OffsetDateTime,
    pub status: BackupStatus,
    pub pinned: bool,
    /// A job (the backup itself, a download, a restore) is using it.
    pub busy: bool,
}

/// The rule in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    /// 0 keeps everything.
    pub retention_days: u32,
    pub keep_last_successful: u32,
}

/// The backups to delete at `now`, each with the reason to log.
pub fn select(
    candidates: &[Candidate],
    rule: Rule,
    now: OffsetDateTime,
) -> Vec<(BackupId, String)> {
    if rule.retention_days == 0 {
        return Vec::new();
    }
    // Checked: a cut-off before the earliest date there is deletes nothing.
    let Some(cutoff) = cutoff(now, rule.retention_days) else {
        return Vec::new();
    };
    let mut successful: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| c.status == BackupStatus::Succeeded)
        .collect();
    successful.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
    let kept: Vec<&BackupId> = successful
        .iter()
        .take(rule.keep_last_successful as usize)
        .map(|c| &c.id)
        .collect();
    candidates
        .iter()
        .filter(|c| c.created_at < cutoff)
        // A missing backup is never deleted: its archive may come back.
        .filter(|c| matches!(c.status, BackupStatus::Succeeded | BackupStatus::Failed))
        .filter(|c| !c.pinned && !c.busy && !kept.contains(&&c.id))
        .map(|c| {
            let what = if c.status == BackupStatus::Failed {
                "failed backup"
            } else {
                "backup"
            };
            (
                c.id.clone(),
                format!("{what} older than {} days", rule.retention_days),
            )
        })
        .collect()
}

/// The moment before which backups are old: `days` days before `now`,
/// or `None` when that is before the earliest date there is.
pub fn cutoff(now: OffsetDateTime, days: u32) -> Option<OffsetDateTime> {
    now.checked_sub(time::Duration::days(i64::from(days)))
}

/// Runs retention (backups, then rollback databases) as a task of its own:
/// a panic in it is logged, flagged in `status` and does not take the
/// caller (the scheduler, a backup job) down with it.
pub async fn run(daemon: &Arc<Daemon>) {
    let d = Arc::clone(daemon);
    crate::health::guarded(daemon, "retention", async move {
        #[cfg(debug_assertions)]
        crate::health::injected_panic("retention");
        apply(&d);
        // Evidence is bounded whether or not a plan is enabled; pruned
        // first, so the look for old rollback databases reads less.
        crate::restore::prune::apply(&d);
        drop_old_rollbacks(&d).await;
    })
    .await;
}

/// Applies the plan's rule to the catalogue now. Does nothing without an
/// enabled plan: turning the plan off stops deletions too. Does nothing
/// either while the store alarm is on (most recorded archives missing):
/// the backup directory is then likely not the right one, and nothing in
/// it or in the catalogue should be judged by age until it is.
pub fn apply(daemon: &Daemon) {
    let rule = match &*daemon.plan.borrow() {
        Some(plan) if plan.enabled => Rule {
            retention_days: plan.retention_days,
            keep_last_successful: plan.keep_last_successful,
        },
        _ => return,
    };
    if let Some(alarm) = crate::recovery::store_alarm(daemon) {
        tracing::warn!(%alarm, "retention is suspended while most recorded archives are missing");
        return;
    }
    let now = daemon.now();
    let config = daemon.config();
    let (candidates, owed) = daemon.catalogue.read(|cat| {
        let holdings = Holdings::of(cat.list());
        let mut owed = HashMap::new();
        // Remote-only backups have no local archive; each remote's own
        // retention (`remote::retention`) decides about their copies.
        let candidates: Vec<Candidate> = cat
            .list()
            .filter(|e| !e.remote_only)
            .map(|e| {
                let created_at = e.state.created_at();
                if let Some(o) = holdings.owed(&e.copies, created_at, &config.remotes, now) {
                    owed.insert(e.id.clone(), o);
                }
                Candidate {
                    id: e.id.clone(),
                    created_at,
                    status: e.state.status(),
                    pinned: e.pinned,
                    busy: daemon.backup_busy(&e.id),
                }
            })
            .collect();
        (candidates, owed)
    });
    drop(config);
    for (id, reason) in select(&candidates, rule, now) {
        if let Some(o) = owed.get(&id) {
            tracing::warn!(
                backup = %id,
                %reason,
                remote = %o.remote,
                copy = o.state.as_str(),
                attempts = o.attempts,
                "retention keeps a backup past its time: its off-site copy is not made yet"
            );
            continue;
        }
        match daemon.remove_backup(&id) {
            Ok(()) => tracing::info!(backup = %id, %reason, "retention deleted a backup"),
            Err(e) => {
                tracing::warn!(backup = %id, error = %e, "retention could not delete a backup")
            }
        }
    }
}

/// Drops the databases that real restores kept for rollback, once the
/// restore finished more than `retention_days` ago. Does nothing without an
/// enabled plan, like the rest of retention.
pub async fn drop_old_rollbacks(daemon: &Daemon) {
    let retention_days = match &*daemon.plan.borrow() {
        Some(plan) if plan.enabled && plan.retention_days > 0 => plan.retention_days,
        _ => return,
    };
    let Some(cutoff) = cutoff(daemon.now(), retention_days) else {
        return;
    };
    let old: Vec<_> = crate::restore::record::load_all(&daemon.config().state_dir)
        .into_iter()
        .filter(|s| {
            !s.record.dry_run
                && s.record.rollback_database.is_some()
                && s.record.finished_at.is_some_and(|t| t < cutoff)
        })
        .collect();
    for mut summary in old {
        let id = summary.record.restore_id.clone();
        let dropped = async {
            let server = crate::restore::target::server(daemon, summary.record.dry_run);
            let admin = crate::restore::sql::Admin::connect(server.db()).await?;
            let name = summary
                .record
                .rollback_database
                .take()
                .expect("filtered on it");
            admin.drop(&name).await?;
            crate::restore::record::store(&daemon.config().state_dir, &summary)?;
            Ok::<_, crate::error::OpError>(name)
        }
        .await;
        match dropped {
            Ok(name) => {
                tracing::info!(restore = %id, database = %name, reason = format!("rollback database older than {retention_days} days"), "retention dropped a rollback database")
            }
            Err(e) => {
                tracing::warn!(restore = %id, error = %e, "retention could not drop a rollback database")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    const NOW: OffsetDateTime = datetime!(2026-11-21 12:00 UTC);

    fn c(n: u32, days_old: i64, status: BackupStatus) -> Candidate {
        Candidate {
            id: format!("20261101T000000Z-{n:08x}").parse().unwrap(),
            created_at: NOW
                - time::Duration::days(days_old)
                - time::Duration::minutes(i64::from(n)),
            status,
            pinned: false,
            busy: false,
        }
    }

    fn ids(v: Vec<(BackupId, String)>) -> Vec<u32> {
        let mut out: Vec<u32> = v
            .iter()
            .map(|(id, _)| u32::from_str_radix(&id.as_str()[17..], 16).unwrap())
            .collect();
        out.sort();
        out
    }

    /// The case: retention 1 day, keep 3, ten old backups whose
    /// newest three failed: the three newest successful ones remain.
    #[test]
    fn a_run_of_failures_never_removes_the_last_good_backups() {
        use BackupStatus::*;
        // n = 0 is the newest (fewest minutes older).
        let all: Vec<Candidate> = (0..10)
            .map(|n| c(n, 5, if n < 3 { Failed } else { Succeeded }))
            .collect();
        let doomed = ids(select(
            &all,
            Rule {
                retention_days: 1,
                keep_last_successful: 3,
            },
            NOW,
        ));
        assert_eq!(
            doomed,
            vec![0, 1, 2, 6, 7, 8, 9],
            "kept the newest successful 3, 4, 5"
        );
    }

    #[test]
    fn pinned_busy_unfinished_and_young_backups_stay() {
        use BackupStatus::*;
        let mut all = vec![
            c(1, 40, Succeeded),
            c(2, 40, Succeeded),
            c(3, 40, Succeeded),
            c(4, 40, Running),
            c(5, 10, Succeeded),
            c(6, 40, Queued),
        ];
        all[0].pinned = true;
        all[1].busy = true;
        let reasons = select(
            &all,
            Rule {
                retention_days: 30,
                keep_last_successful: 1,
            },
            NOW,
        );
        assert_eq!(ids(reasons.clone()), vec![3]);
        assert_eq!(reasons[0].1, "backup older than 30 days");
        let failed = select(
            &[c(7, 40, Failed), c(8, 1, Succeeded)],
            Rule {
                retention_days: 30,
                keep_last_successful: 1,
            },
            NOW,
        );
        assert_eq!(failed[0].1, "failed backup older than 30 days");
    }

    /// Missing backups are neither deleted nor counted among the newest
    /// successful ones: with keep 1, the newest backup that is really
    /// there is kept, whatever is missing.
    #[test]
    fn missing_backups_are_never_deleted_and_never_shield_others() {
        use BackupStatus::*;
        let all = vec![
            c(0, 40, Missing),
            c(1, 40, Succeeded),
            c(2, 40, Missing),
            c(3, 40, Succeeded),
        ];
        let doomed = ids(select(
            &all,
            Rule {
                retention_days: 30,
                keep_last_successful: 1,
            },
            NOW,
        ));
        assert_eq!(doomed, vec![3], "kept 1 (the newest really there)");
    }

    /// No value of the rule can panic: the largest `retention_days` puts
    /// the cut-off before the earliest date, and nothing is old enough.
    #[test]
    fn the_largest_values_delete_nothing_and_do_not_panic() {
        let all: Vec<Candidate> = (0..3).map(|n| c(n, 400, BackupStatus::Succeeded)).collect();
        for days in [u32::MAX, 3_000_000, 36_500] {
            assert!(select(
                &all,
                Rule {
                    retention_days: days,
                    keep_last_successful: u32::MAX,
                },
                NOW
            )
            .is_empty());
        }
        assert_eq!(cutoff(NOW, u32::MAX), None);
    }

    #[test]
    fn zero_days_keeps_everything() {
        let all: Vec<Candidate> = (0..5).map(|n| c(n, 400, BackupStatus::Succeeded)).collect();
        assert!(select(
            &all,
            Rule {
                retention_days: 0,
                keep_last_successful: 1
            },
            NOW
        )
        .is_empty());
    }
}
