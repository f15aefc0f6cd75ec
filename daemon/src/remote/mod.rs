//! Off-site copies. Every succeeded backup (and import) gets a copy record
//! per configured remote (`[[remote]]`), persisted in the catalogue with
//! its state, attempts and the time of its next attempt; `replicate.rs`
//! works through them in a bounded queue of its own, so a backup never
//! waits for an upload. `storage.rs` is the storage itself (opendal).

pub mod checksum;
pub mod ops;
pub mod replicate;
pub mod retention;
pub mod s3_calls;
pub mod storage;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use berkut_proto::ids::BackupId;
use time::OffsetDateTime;
use tokio::sync::{Notify, Semaphore};
use tokio_util::task::TaskTracker;

use crate::catalogue::Copy;
use crate::config::Config;

pub use storage::{RemoteError, Storage};

/// Uploads running at once, across all remotes: enough to keep a link
/// busy, few enough that backups keep their disk and CPU.
pub const UPLOAD_SLOTS: usize = 2;
/// Downloads from remotes (fetch, verify) running at once: each holds a
/// whole archive in the backup directory until it is checked.
pub const DOWNLOAD_SLOTS: usize = 2;

/// The replication queue's shared state. The queue itself is the copies
/// in the catalogue; this holds what only a running daemon knows.
pub struct Replication {
    wake: Notify,
    pub(crate) slots: Arc<Semaphore>,
    /// Owns `DOWNLOAD_SLOTS`: a fetch or a verified copy holds a permit.
    pub(crate) download_slots: Semaphore,
    /// (backup, remote) pairs being uploaded now, or whose copy is being
    /// deleted (`hold`).
    in_flight: Mutex<HashSet<(BackupId, String)>>,
    /// Each remote's upload failures, one lock for all of it.
    health: Mutex<HashMap<String, Health>>,
    pub(crate) uploads: TaskTracker,
}

/// A (backup, remote) pair claimed by `Replication::hold`, released when
/// dropped.
pub(crate) struct Held<'a> {
    replication: &'a Replication,
    id: BackupId,
    remote: String,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.replication.release(&self.id, &self.remote);
    }
}

impl Default for Replication {
    fn default() -> Self {
        Replication {
            wake: Notify::new(),
            slots: Arc::new(Semaphore::new(UPLOAD_SLOTS)),
            download_slots: Semaphore::new(DOWNLOAD_SLOTS),
            in_flight: Mutex::default(),
            health: Mutex::default(),
            uploads: TaskTracker::new(),
        }
    }
}

impl Replication {
    /// Tells the queue there may be new work (a backup succeeded, an
    /// import landed). Never waits.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub(crate) async fn woken(&self) {
        self.wake.notified().await
    }

    /// Claims a (backup, remote) pair for an upload; false when one runs.
    pub(crate) fn claim(&self, id: &BackupId, remote: &str) -> bool {
        self.in_flight
            .lock()
            .unwrap()
            .insert((id.clone(), remote.to_owned()))
    }

    /// Claims a pair for as long as the returned guard lives (a deletion
    /// of the copy); `None` when an upload or another deletion has it.
    pub(crate) fn hold<'a>(&'a self, id: &BackupId, remote: &str) -> Option<Held<'a>> {
        self.claim(id, remote).then(|| Held {
            replication: self,
            id: id.clone(),
            remote: remote.to_owned(),
        })
    }

    pub(crate) fn release(&self, id: &BackupId, remote: &str) {
        self.in_flight
            .lock()
            .unwrap()
            .remove(&(id.clone(), remote.to_owned()));
    }

    pub fn is_uploading(&self, id: &BackupId, remote: &str) -> bool {
        self.in_flight
            .lock()
            .unwrap()
            .contains(&(id.clone(), remote.to_owned()))
    }

    /// Whether any upload of this backup runs: it must not be deleted then.
    pub fn uses_backup(&self, id: &BackupId) -> bool {
        self.in_flight.lock().unwrap().iter().any(|(b, _)| b == id)
    }

    /// Records a failed upload to `remote` at `at`. Returns true once per
    /// run of failures, the first time that run has lasted longer than
    /// `threshold`: the moment to send `copy_failing`.
    pub(crate) fn note_error(
        &self,
        remote: &str,
        at: OffsetDateTime,
        words: &str,
        threshold: std::time::Duration,
    ) -> bool {
        let mut health = self.health.lock().unwrap();
        let h = health.entry(remote.to_owned()).or_default();
        h.failures += 1;
        let run = h.run.get_or_insert(Failing {
            since: at,
            notified: false,
            last: (at, String::new()),
        });
        run.last = (at, words.to_owned());
        let tell = (at - run.since).unsigned_abs() >= threshold && !run.notified;
        run.notified |= tell;
        tell
    }

    /// An upload to `remote` succeeded: its run of failures is over.
    pub(crate) fn clear_error(&self, remote: &str) {
        if let Some(h) = self.health.lock().unwrap().get_mut(remote) {
            h.run = None;
        }
    }

    /// Failed upload attempts to `remote` since the daemon started
    /// (`berkut_remote_copy_failures_total`).
    pub fn failures(&self, remote: &str) -> u64 {
        self.health
            .lock()
            .unwrap()
            .get(remote)
            .map_or(0, |h| h.failures)
    }

    /// The last error of the current run of failures, and when, for
    /// `remote status`; none once an upload succeeded.
    pub fn last_error(&self, remote: &str) -> Option<(OffsetDateTime, String)> {
        let health = self.health.lock().unwrap();
        Some(health.get(remote)?.run.as_ref()?.last.clone())
    }
}

/// One remote's upload failures since the daemon started.
#[derive(Default)]
struct Health {
    failures: u64,
    /// The failures since the last success, if the last upload failed.
    run: Option<Failing>,
}

/// A remote's current run of failed uploads: since when, whether
/// `copy_failing` was sent for it, and its last error.
struct Failing {
    since: OffsetDateTime,
    notified: bool,
    last: (OffsetDateTime, String),
}

/// The copies a newly succeeded backup owes: one pending per remote.
pub fn pending_copies(config: &Config, now: OffsetDateTime) -> Vec<Copy> {
    config
        .remotes
        .iter()
        .map(|r| Copy::pending(&r.name, now))
        .collect()
}

/// The off-site RPO watch, for `status`.
#[derive(Default)]
pub struct OffsiteRpo {
    pub limit_seconds: Option<u64>,
    pub uncopied_age_seconds: Option<u64>,
    pub breached: bool,
}

/// How long the newest successful backup has waited for its copies on
/// the configured remotes, and whether that passed `offsite_rpo_seconds`.
pub fn offsite_rpo(daemon: &crate::state::Daemon, now: OffsetDateTime) -> OffsiteRpo {
    let config = daemon.config();
    if config.remotes.is_empty() {
        return OffsiteRpo::default();
    }
    let limit = config.offsite_rpo.as_secs();
    let waiting_since = daemon.catalogue.read(|c| {
        config
            .remotes
            .iter()
            .filter_map(|r| ops::uncopied_since(c, &r.name))
            .min()
    });
    let age = waiting_since.map(|at| (now - at).whole_seconds().max(0) as u64);
    OffsiteRpo {
        limit_seconds: Some(limit),
        uncopied_age_seconds: age,
        breached: age.is_some_and(|age| age > limit),
    }
}

/// Opens the storage of the remote called `name`, if configured.
pub fn storage(config: &Config, name: &str) -> Option<Result<Storage, RemoteError>> {
    config
        .remotes
        .iter()
        .find(|r| r.name == name)
        .map(Storage::open)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pair_held_for_a_deletion_cannot_be_claimed_for_an_upload_until_it_is_let_go() {
        let replication = Replication::default();
        let id: BackupId = "20261101T000000Z-00000001".parse().unwrap();
        let held = replication.hold(&id, "offsite").expect("free");
        assert!(
            !replication.claim(&id, "offsite"),
            "the queue would upload it"
        );
        assert!(
            replication.hold(&id, "offsite").is_none(),
            "a second deletion"
        );
        assert!(replication.uses_backup(&id), "a local delete must wait too");
        assert!(
            replication.claim(&id, "elsewhere"),
            "another remote is free"
        );
        replication.release(&id, "elsewhere");
        drop(held);
        assert!(replication.claim(&id, "offsite"), "let go");
        assert!(
            replication.hold(&id, "offsite").is_none(),
            "an upload has it now"
        );
    }
}
