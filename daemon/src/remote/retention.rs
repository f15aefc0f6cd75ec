//! Each remote's own retention: its `retention_days` and
//! `keep_last_successful`, by the same pure rule as local retention
//! (`crate::retention::select`), over the backups it holds a copy of.
//! Pinned backups are kept everywhere, and so are backups fetched from a
//! remote (origin `remote`): their pins stayed on the machine that made
//! them. A record left with neither a local
//! archive nor any copy goes with its last copy. Without `retention_days`
//! a remote keeps everything.

use std::collections::HashMap;

use berkut_proto::manifest::Origin;
use berkut_proto::wire::{BackupStatus, CopyState};
use time::OffsetDateTime;

use crate::catalogue::{Copy, Entry};
use crate::config::remote::RemoteConfig;
use crate::retention::{select, Candidate, Rule};
use crate::state::Daemon;

pub async fn apply(daemon: &Daemon) {
    let config = daemon.config();
    let now = daemon.now();
    for remote in &config.remotes {
        let Some(days) = remote.retention_days else {
            continue;
        };
        let rule = Rule {
            retention_days: days,
            keep_last_successful: remote.keep_last_successful.unwrap_or(0),
        };
        let candidates: Vec<Candidate> = daemon.catalogue.read(|cat| {
            cat.list()
                .filter(|e| {
                    e.copies.iter().any(|c| {
                        c.record.remote == remote.name && c.record.state == CopyState::Copied
                    })
                })
                .map(|e| Candidate {
                    id: e.id.clone(),
                    created_at: e.state.created_at(),
                    // A remote-only backup is a good backup in the remote.
                    status: if e.remote_only {
                        BackupStatus::Succeeded
                    } else {
                        e.state.status()
                    },
                    // A backup fetched from a remote belongs to the
                    // history of whoever made it (a lost machine, whose
                    // pins did not travel): this daemon never deletes it
                    // from the remotes.
                    pinned: e.pinned || e.origin == Origin::Remote,
                    busy: daemon.backup_busy(&e.id),
                })
                .collect()
        });
        for (id, reason) in select(&candidates, rule, now) {
            tracing::info!(backup = %id, remote = %remote.name, %reason, "remote retention deletes a copy");
            match super::ops::delete_copy(daemon, &id, &remote.name).await {
                Ok(()) => {
                    tracing::info!(backup = %id, remote = %remote.name, %reason, "remote retention deleted a copy")
                }
                Err(e) => {
                    tracing::warn!(backup = %id, remote = %remote.name, error = %e, "remote retention could not delete a copy")
                }
            }
        }
    }
}

/// A copy local retention waits for (`Holdings::owed`).
#[derive(Debug, PartialEq, Eq)]
pub struct Owed {
    pub remote: String,
    pub state: CopyState,
    pub attempts: u32,
}

/// What each remote holds or is owed: the `created_at` of every good
/// backup (succeeded, or remote-only) with a copy record there, made or
/// not, newest first. Local retention asks it which copies are still owed.
/// Copies not made count too, so that while a remote is unreachable only
/// its newest `keep_last_successful` past its age are held for it, not
/// every backup since it went away.
pub struct Holdings(HashMap<String, Vec<OffsetDateTime>>);

impl Holdings {
    pub fn of<'a>(entries: impl Iterator<Item = &'a Entry>) -> Holdings {
        let mut held: HashMap<String, Vec<OffsetDateTime>> = HashMap::new();
        for e in entries.filter(|e| e.remote_only || e.state.status() == BackupStatus::Succeeded) {
            for c in &e.copies {
                held.entry(c.record.remote.clone())
                    .or_default()
                    .push(e.state.created_at());
            }
        }
        for times in held.values_mut() {
            times.sort_unstable_by(|a, b| b.cmp(a));
        }
        Holdings(held)
    }

    /// The first of `copies` (in the record's order) still owed to a
    /// configured remote (`pending`, `uploading` or `failed`) whose own
    /// retention would keep the backup if it had it: by age (or it keeps
    /// everything), or as one of its newest `keep_last_successful`.
    /// Deleting the archive before that copy is made would leave the
    /// backup nowhere off site although the remote's policy wants it
    /// there; once the remote would drop it anyway, the copy is not owed.
    /// A copy to a remote no longer configured is not owed either.
    pub fn owed(
        &self,
        copies: &[Copy],
        created_at: OffsetDateTime,
        remotes: &[RemoteConfig],
        now: OffsetDateTime,
    ) -> Option<Owed> {
        copies
            .iter()
            .filter(|c| c.record.state != CopyState::Copied)
            .find(|c| {
                remotes
                    .iter()
                    .find(|r| r.name == c.record.remote)
                    .is_some_and(|r| self.would_keep(r, created_at, now))
            })
            .map(|c| Owed {
                remote: c.record.remote.clone(),
                state: c.record.state,
                attempts: c.record.attempts,
            })
    }

    fn would_keep(
        &self,
        remote: &RemoteConfig,
        created_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> bool {
        let Some(days) = remote.retention_days.filter(|d| *d > 0) else {
            return true;
        };
        if crate::retention::cutoff(now, days).is_none_or(|cutoff| created_at >= cutoff) {
            return true;
        }
        let newer = self
            .0
            .get(&remote.name)
            .map_or(0, |times| times.partition_point(|t| *t > created_at));
        newer < remote.keep_last_successful.unwrap_or(0) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::remote::RemoteKind;
    use berkut_proto::wire::CopyRecord;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-06-30 12:00 UTC);

    fn remote(name: &str, days: Option<u32>, keep: Option<u32>) -> RemoteConfig {
        RemoteConfig {
            name: name.into(),
            kind: RemoteKind::Fs {
                path: "/srv/offsite".into(),
            },
            prefix: String::new(),
            retention_days: days,
            keep_last_successful: keep,
        }
    }

    fn copy(remote: &str, state: CopyState) -> Copy {
        Copy {
            record: CopyRecord {
                remote: remote.into(),
                state,
                at: None,
                attempts: 3,
                last_error: None,
            },
            next_attempt_at: None,
        }
    }

    fn days_ago(n: i64) -> OffsetDateTime {
        NOW - time::Duration::days(n)
    }

    /// Holdings of `remote` with copies of backups made `ages` days ago.
    fn held(remote: &str, ages: &[i64]) -> Holdings {
        let mut times: Vec<_> = ages.iter().map(|a| days_ago(*a)).collect();
        times.sort_unstable_by(|a, b| b.cmp(a));
        Holdings(HashMap::from([(remote.to_string(), times)]))
    }

    #[test]
    fn a_copy_not_made_is_owed_while_the_remote_would_keep_the_backup() {
        let none = held("offsite", &[]);
        for state in [CopyState::Pending, CopyState::Uploading, CopyState::Failed] {
            let owed = none.owed(
                &[copy("offsite", state)],
                days_ago(40),
                &[remote("offsite", None, None)],
                NOW,
            );
            assert_eq!(
                owed,
                Some(Owed {
                    remote: "offsite".into(),
                    state,
                    attempts: 3
                }),
                "a remote without retention_days keeps everything"
            );
        }
        let within = remote("offsite", Some(90), None);
        assert!(none
            .owed(
                &[copy("offsite", CopyState::Failed)],
                days_ago(40),
                std::slice::from_ref(&within),
                NOW
            )
            .is_some());
        assert!(
            none.owed(
                &[copy("offsite", CopyState::Copied)],
                days_ago(40),
                &[within],
                NOW
            )
            .is_none(),
            "a copy made is owed nothing"
        );
    }

    #[test]
    fn a_copy_the_remote_would_drop_or_a_remote_gone_owes_nothing() {
        let none = held("offsite", &[]);
        let short = remote("offsite", Some(30), None);
        assert!(none
            .owed(
                &[copy("offsite", CopyState::Failed)],
                days_ago(40),
                std::slice::from_ref(&short),
                NOW
            )
            .is_none());
        assert!(none
            .owed(
                &[copy("offsite", CopyState::Failed)],
                days_ago(29),
                &[short],
                NOW
            )
            .is_some());
        let other = remote("elsewhere", None, None);
        assert!(
            none.owed(
                &[copy("offsite", CopyState::Failed)],
                days_ago(40),
                &[other],
                NOW
            )
            .is_none(),
            "a remote no longer configured"
        );
    }

    #[test]
    fn a_remote_keeping_its_newest_copies_is_owed_one_of_them() {
        let keep_two = remote("offsite", Some(30), Some(2));
        let failed = [copy("offsite", CopyState::Failed)];
        // One newer copy there: this one would be among the newest two.
        assert!(held("offsite", &[35])
            .owed(&failed, days_ago(40), std::slice::from_ref(&keep_two), NOW)
            .is_some());
        // Two newer: the remote would drop it.
        assert!(held("offsite", &[35, 31])
            .owed(&failed, days_ago(40), std::slice::from_ref(&keep_two), NOW)
            .is_none());
        // Older copies do not count.
        assert!(held("offsite", &[35, 50])
            .owed(&failed, days_ago(40), &[keep_two], NOW)
            .is_some());
    }

    fn entry(n: u32, age: i64, status: BackupStatus, copies: Vec<Copy>) -> Entry {
        use crate::catalogue::BackupState;
        let t = days_ago(age);
        Entry {
            id: format!("20260101T000000Z-{n:08x}").parse().unwrap(),
            label: String::new(),
            scope: berkut_proto::manifest::Scope::Database,
            include_files: false,
            origin: Origin::Manual,
            state: match status {
                BackupStatus::Succeeded => BackupState::Succeeded {
                    created_at: t,
                    started_at: t,
                    finished_at: t,
                },
                _ => BackupState::Missing {
                    created_at: t,
                    started_at: t,
                    finished_at: t,
                    missing_since: t,
                },
            },
            database: None,
            archive: None,
            pinned: false,
            properties: None,
            copies,
            remote_only: false,
            dropped_from: Vec::new(),
            files: None,
            drill: None,
        }
    }

    #[test]
    fn holdings_count_the_copies_of_good_backups_made_or_owed() {
        let copied = entry(
            1,
            35,
            BackupStatus::Succeeded,
            vec![copy("offsite", CopyState::Copied)],
        );
        let missing = entry(
            3,
            32,
            BackupStatus::Missing,
            vec![copy("offsite", CopyState::Copied)],
        );
        let elsewhere = entry(
            4,
            31,
            BackupStatus::Succeeded,
            vec![copy("elsewhere", CopyState::Copied)],
        );
        let keep_two = || [remote("offsite", Some(30), Some(2))];
        let failed = [copy("offsite", CopyState::Failed)];
        // Only backup 1 counts as newer: a missing backup and another
        // remote's copy do not.
        let holdings = Holdings::of([&copied, &missing, &elsewhere].into_iter());
        assert!(holdings
            .owed(&failed, days_ago(40), &keep_two(), NOW)
            .is_some());
        // A newer copy still owed counts: the remote would keep only the
        // newest two of what it holds and is owed.
        let owed_too = entry(
            2,
            33,
            BackupStatus::Succeeded,
            vec![copy("offsite", CopyState::Failed)],
        );
        let holdings = Holdings::of([&copied, &owed_too, &missing, &elsewhere].into_iter());
        assert!(
            holdings
                .owed(&failed, days_ago(40), &keep_two(), NOW)
                .is_none(),
            "a copy not made counts as one the remote is to hold"
        );
        let mut remote_only = entry(
            5,
            34,
            BackupStatus::Missing,
            vec![copy("offsite", CopyState::Copied)],
        );
        remote_only.remote_only = true;
        let holdings = Holdings::of([&copied, &missing, &elsewhere, &remote_only].into_iter());
        assert!(
            holdings
                .owed(&failed, days_ago(40), &keep_two(), NOW)
                .is_none(),
            "a remote-only backup is a good copy there"
        );
    }
}
