//! The figures the metrics show, gathered from the daemon's state in one
//! pass: the catalogue (under its lock once), the run counters, the RPO
//! watch and the backup directory's file system. Plain data, so encoding
//! them (`encode.rs`) is a pure function a unit test can check.

use berkut_proto::wire::BackupStatus;

use super::counters::{Outcome, RestoreKind, ORIGINS, OUTCOMES, RESTORE_KINDS};
use crate::state::Daemon;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Figures {
    /// When the newest succeeded backup finished (Unix seconds).
    pub last_success: Option<i64>,
    /// When the newest failed backup failed.
    pub last_failure: Option<i64>,
    /// How long the newest succeeded backup ran, in seconds.
    pub last_duration: Option<f64>,
    /// The size of its archive.
    pub last_size: Option<u64>,
    /// Ended backups by origin and result.
    pub runs: Vec<(&'static str, Outcome, u64)>,
    /// Succeeded backups whose archive is in the store.
    pub stored: u64,
    /// Succeeded backups whose archive is not there.
    pub missing: u64,
    /// When the oldest stored backup was made.
    pub oldest: Option<i64>,
    pub rpo_breached: bool,
    pub rpo_limit: Option<u64>,
    /// Free bytes for the daemon in the backup directory's file system;
    /// `None` when it cannot be read.
    pub free_bytes: Option<u64>,
    /// Ended restores by kind and result.
    pub restores: Vec<(RestoreKind, Outcome, u64)>,
    /// When the newest succeeded drill ended.
    pub last_drill_success: Option<i64>,
    /// How old the newest backup a drill passed for is, in seconds (as
    /// `status` reports it).
    pub verified_age: Option<u64>,
    /// Per configured remote: how long the newest succeeded backup has
    /// waited for its copy there (0 once copied).
    pub remote_lag: Vec<(String, u64)>,
    /// Per configured remote: failed uploads since the daemon started.
    pub remote_failures: Vec<(String, u64)>,
}

pub fn gather(daemon: &Daemon) -> Figures {
    let now = daemon.now();
    let config = daemon.config();
    let overdue_after = config.drill_overdue;
    let mut f = daemon.catalogue.read(|cat| {
        let mut f = Figures {
            verified_age: crate::restore::verdict::proof(cat, now, overdue_after)
                .verified_age_seconds(now),
            ..Figures::default()
        };
        let mut newest_success: Option<&crate::catalogue::Entry> = None;
        for e in cat.list() {
            match e.state.status() {
                BackupStatus::Succeeded => {
                    // A remote-only backup (its local archive deleted) is
                    // not stored here; it still counts as a good backup.
                    if !e.remote_only {
                        f.stored += 1;
                        let created = e.state.created_at().unix_timestamp();
                        f.oldest = Some(f.oldest.map_or(created, |o| o.min(created)));
                    }
                    if newest_success.is_none_or(|n| n.state.finished_at() < e.state.finished_at())
                    {
                        newest_success = Some(e);
                    }
                }
                BackupStatus::Missing => f.missing += 1,
                BackupStatus::Failed => {
                    let at = e.state.finished_at().map(|t| t.unix_timestamp());
                    f.last_failure = f.last_failure.max(at);
                }
                BackupStatus::Queued | BackupStatus::Running => {}
            }
        }
        if let Some(e) = newest_success {
            f.last_success = e.state.finished_at().map(|t| t.unix_timestamp());
            f.last_duration = match (e.state.started_at(), e.state.finished_at()) {
                (Some(s), Some(end)) => Some((end - s).as_seconds_f64().max(0.0)),
                _ => None,
            };
            f.last_size = e.archive.as_ref().map(|a| a.size_bytes);
        }
        for remote in &config.remotes {
            let since = crate::remote::ops::uncopied_since(cat, &remote.name);
            let lag = since.map_or(0, |at| (now - at).whole_seconds().max(0) as u64);
            f.remote_lag.push((remote.name.clone(), lag));
        }
        f
    });
    let counters = &daemon.metrics.counters;
    for origin in ORIGINS {
        for outcome in OUTCOMES {
            f.runs
                .push((origin.as_str(), outcome, counters.backups(origin, outcome)));
        }
    }
    for kind in RESTORE_KINDS {
        for outcome in OUTCOMES {
            f.restores
                .push((kind, outcome, counters.restores(kind, outcome)));
        }
    }
    f.last_drill_success = counters.last_drill_success();
    let rpo = crate::schedule::rpo_state(daemon, now);
    f.rpo_breached = rpo.breached;
    f.rpo_limit = rpo.limit_seconds;
    f.free_bytes = crate::fsutil::free_bytes(&config.backup_path);
    for remote in &config.remotes {
        let failed = daemon.replication.failures(&remote.name);
        f.remote_failures.push((remote.name.clone(), failed));
    }
    f
}
