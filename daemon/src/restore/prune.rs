//! How long restore evidence is kept, so the evidence directory (and every
//! scan of it: start-up recovery, retention's look for old rollback
//! databases) stays bounded however many drills run. Kept: the newest
//! `evidence_keep_drills` drills of each backup, the newest passing drill of
//! every backup still in the catalogue (the proof of its verdict), every
//! real restore for `evidence_keep_restore_days` after it ended, and,
//! whatever their age, restores not at rest (running, a scratch database
//! left, a swap or rollback to settle) and real restores whose old database
//! is still kept for rollback. `select` decides, purely; `apply` removes.

use std::collections::{HashMap, HashSet};

use berkut_proto::ids::{BackupId, RestoreId};
use berkut_proto::wire::RestoreStatus;
use time::OffsetDateTime;

use super::record::{restores_dir, Summary, SwapPhase};
use crate::state::Daemon;

/// What is kept.
#[derive(Clone, Copy, Debug)]
pub struct Rule {
    pub keep_drills: usize,
    pub keep_restore_days: u32,
}

/// The evidence to remove, oldest first, and why.
pub fn select(
    summaries: &[Summary],
    rule: Rule,
    now: OffsetDateTime,
    in_catalogue: &HashSet<BackupId>,
) -> Vec<(RestoreId, String)> {
    let at_rest = |s: &Summary| {
        s.record.status.is_finished()
            && !s.scratch_left
            && !s.rolling_back
            && s.swap != SwapPhase::Started
    };
    // Drills of each backup, newest first: by when they were queued, since
    // two drills queued in the same second have ids that sort at random.
    let mut drills: HashMap<&BackupId, Vec<&Summary>> = HashMap::new();
    for s in summaries.iter().filter(|s| s.record.dry_run) {
        drills.entry(&s.record.backup_id).or_default().push(s);
    }
    let mut keep: HashSet<&RestoreId> = HashSet::new();
    for (backup, list) in &mut drills {
        list.sort_by(|a, b| {
            (b.record.created_at, &b.record.restore_id)
                .cmp(&(a.record.created_at, &a.record.restore_id))
        });
        keep.extend(
            list.iter()
                .take(rule.keep_drills)
                .map(|s| &s.record.restore_id),
        );
        if in_catalogue.contains(*backup) {
            if let Some(pass) = list
                .iter()
                .find(|s| s.record.status == RestoreStatus::Succeeded)
            {
                keep.insert(&pass.record.restore_id);
            }
        }
    }
    let cutoff = crate::retention::cutoff(now, rule.keep_restore_days);
    let mut out: Vec<(RestoreId, String)> = summaries
        .iter()
        .filter(|s| at_rest(s) && !keep.contains(&s.record.restore_id))
        .filter_map(|s| {
            let why = if s.record.dry_run {
                format!(
                    "more than {} newer drills of backup {}",
                    rule.keep_drills, s.record.backup_id
                )
            } else {
                let ended = s.record.finished_at?;
                let old = cutoff.is_some_and(|c| ended < c);
                if !old || s.record.rollback_database.is_some() {
                    return None;
                }
                format!(
                    "a real restore that ended more than {} days ago",
                    rule.keep_restore_days
                )
            };
            Some((s.record.restore_id.clone(), why))
        })
        .collect();
    out.sort();
    out
}

/// Removes the evidence `select` gives up; returns how many were removed.
pub fn apply(daemon: &Daemon) -> usize {
    let config = daemon.config();
    let rule = Rule {
        keep_drills: config.evidence_keep_drills,
        keep_restore_days: config.evidence_keep_restore_days,
    };
    let summaries = super::record::load_all(&config.state_dir);
    let in_catalogue: HashSet<BackupId> = daemon
        .catalogue
        .read(|c| c.list().map(|e| e.id.clone()).collect());
    let active: HashSet<RestoreId> = summaries
        .iter()
        .filter(|s| daemon.restores.watch(&s.record.restore_id).is_some())
        .map(|s| s.record.restore_id.clone())
        .collect();
    let mut removed = 0;
    for (id, why) in select(&summaries, rule, daemon.now(), &in_catalogue) {
        if active.contains(&id) {
            continue;
        }
        let dir = restores_dir(&config.state_dir).join(id.as_str());
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {
                removed += 1;
                tracing::info!(restore = %id, reason = %why, "pruned a restore's evidence");
            }
            Err(e) => {
                tracing::warn!(restore = %id, error = %e, "a restore's evidence could not be pruned")
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::restore::record::{new_record, SUMMARY_VERSION};

    const NOW: OffsetDateTime = datetime!(2026-11-21 12:00 UTC);

    fn backup(n: u32) -> BackupId {
        format!("20261101T000000Z-{n:08x}").parse().unwrap()
    }

    fn rid(n: u32) -> RestoreId {
        format!("r-20261101T{:06}Z-00000000", n).parse().unwrap()
    }

    fn summary(n: u32, of: u32, dry_run: bool, status: RestoreStatus, days_ago: i64) -> Summary {
        let ended = NOW - time::Duration::days(days_ago);
        let mut record = new_record(
            rid(n),
            backup(of),
            dry_run,
            false,
            "app".into(),
            "x".into(),
            ended,
        );
        record.status = status;
        record.finished_at = status.is_finished().then_some(ended);
        Summary {
            summary_version: SUMMARY_VERSION,
            record,
            archive_sha256: None,
            digests: vec![],
            counts: vec![],
            verdict: None,
            swap: SwapPhase::NotStarted,
            maintenance: false,
            rolling_back: false,
            scratch_left: false,
        }
    }

    #[test]
    fn keeps_the_newest_drills_the_proof_and_recent_or_unsettled_restores() {
        use RestoreStatus::*;
        let rule = Rule {
            keep_drills: 2,
            keep_restore_days: 30,
        };
        let mut all = vec![
            // Backup 1: its only pass is the oldest drill.
            summary(1, 1, true, Succeeded, 9),
            summary(2, 1, true, Failed, 8),
            summary(3, 1, true, Failed, 7),
            summary(4, 1, true, Failed, 6),
            // Backup 2, gone from the catalogue: only the newest two stay.
            summary(5, 2, true, Succeeded, 9),
            summary(6, 2, true, Succeeded, 8),
            summary(7, 2, true, Succeeded, 7),
            // Real restores: old, recent, old with its rollback kept, old
            // with a scratch database left, running.
            summary(8, 3, false, Succeeded, 40),
            summary(9, 3, false, Succeeded, 10),
            summary(10, 3, false, Succeeded, 40),
            summary(11, 3, false, Failed, 40),
            summary(12, 3, false, Running, 40),
        ];
        all[9].record.rollback_database = Some("app_old".into());
        all[10].scratch_left = true;
        let in_catalogue: HashSet<BackupId> = [backup(1), backup(3)].into();
        let gone: Vec<RestoreId> = select(&all, rule, NOW, &in_catalogue)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(gone, [rid(2), rid(5), rid(8)]);
        // Nothing is pruned twice: what is left selects nothing.
        let left: Vec<Summary> = all
            .into_iter()
            .filter(|s| !gone.contains(&s.record.restore_id))
            .collect();
        assert!(select(&left, rule, NOW, &in_catalogue).is_empty());
    }

    #[test]
    fn drills_queued_in_one_second_are_ordered_by_when_they_were_queued() {
        use RestoreStatus::*;
        let rule = Rule {
            keep_drills: 1,
            keep_restore_days: 30,
        };
        // Three drills in one second whose random suffixes sort against
        // the order they were queued in.
        let at = NOW - time::Duration::days(1);
        let all: Vec<Summary> = ["ffffffff", "88888888", "00000000"]
            .iter()
            .enumerate()
            .map(|(i, suffix)| {
                let mut s = summary(1, 1, true, Succeeded, 1);
                s.record.restore_id = format!("r-20261120T120000Z-{suffix}").parse().unwrap();
                s.record.created_at = at + time::Duration::milliseconds(i as i64 * 300);
                s
            })
            .collect();
        let in_catalogue: HashSet<BackupId> = [backup(1)].into();
        let gone: Vec<String> = select(&all, rule, NOW, &in_catalogue)
            .into_iter()
            .map(|(id, _)| id.as_str().to_owned())
            .collect();
        assert_eq!(
            gone,
            ["r-20261120T120000Z-88888888", "r-20261120T120000Z-ffffffff"]
        );
    }
}
