//! The daemon's shared state: configuration, catalogue, archive store,
//! database handle, jobs, access policy and clock. One `Arc<Daemon>` is handed
//! to every connection and job.

use std::sync::{Arc, RwLock};

use time::OffsetDateTime;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use berkut_proto::ids::BackupId;
use berkut_proto::wire::BackupStatus;

use crate::catalogue::{Catalogue, SharedCatalogue};
use crate::clock::Clock;
use crate::config::Config;
use crate::db::Db;
use crate::error::OpError;
use crate::jobs::Jobs;
use crate::schedule::plan::StoredPlan;
use crate::store::Store;

pub struct Daemon {
    /// The configuration in force; a reload replaces it (see `config()`).
    pub(crate) config: RwLock<Arc<Config>>,
    /// What the daemon knows about every backup; reached through its
    /// methods, which take its lock.
    pub catalogue: SharedCatalogue,
    pub store: Store,
    pub db: Db,
    pub jobs: Arc<Jobs>,
    /// The audit trail of every request.
    pub audit: crate::audit::Audit,
    /// Leases on archives being downloaded.
    pub downloads: Arc<crate::leases::Leases>,
    /// The buffers downloads send their pieces in.
    pub pieces: crate::connection::Pieces,
    /// The buffers clients' frames are read into (an upload's pieces).
    pub uploads: Arc<crate::connection::Pieces>,
    /// Owns `handlers::backup_import::IMPORT_SLOTS`: a running import
    /// holds a permit.
    pub imports: tokio::sync::Semaphore,
    /// Restores queued or running.
    pub restores: crate::restore::Restores,
    /// Whether a restore holds the maintenance lock.
    pub maintenance: crate::restore::maintenance::Maintenance,
    /// The server dry-runs restore into, when it is not the live one.
    pub drill_db: Option<Db>,
    /// The backup plan in force; the scheduler watches it.
    pub plan: watch::Sender<Option<StoredPlan>>,
    pub clock: Arc<dyn Clock>,
    pub started_at: OffsetDateTime,
    /// Cancelled when the daemon begins to stop.
    pub shutdown: CancellationToken,
    /// Beaten by the scheduler loop on every turn; the watchdog checks it.
    pub scheduler_beat: crate::notify::Heartbeat,
    /// Wakes the scheduler loop before its next look (a backup ended: the
    /// drill policy may have a drill to start).
    pub scheduler_wake: tokio::sync::Notify,
    /// The store alarm and background tasks that died, for `status`.
    pub health: crate::health::Health,
    /// The off-site upload queue's running state (`remote/`).
    pub replication: crate::remote::Replication,
    /// The run counters behind the metrics, and their change signal.
    pub metrics: crate::metrics::Metrics,
    /// Notifications: `events.emit(Event::new(..))` from where things happen.
    pub events: crate::events::Events,
}

impl Daemon {
    /// Applies a change to the catalogue and persists it before anyone can
    /// see the change. If the write fails, the change is rolled back in
    /// memory too, so memory and disk never disagree.
    pub fn update_catalogue<T>(
        &self,
        change: impl FnOnce(&mut Catalogue) -> T,
    ) -> Result<T, OpError> {
        self.try_update_catalogue(|c| Ok(change(c)))
    }

    /// Like `update_catalogue`, for a change that may refuse: a refusal
    /// rolls back whatever the change did and saves nothing.
    pub fn try_update_catalogue<T>(
        &self,
        change: impl FnOnce(&mut Catalogue) -> Result<T, OpError>,
    ) -> Result<T, OpError> {
        self.catalogue.try_update(change, |e| {
            OpError::unavailable("the catalogue could not be saved").with_detail(e)
        })
    }

    /// Deletes a finished backup: the archive first, then the record, so a
    /// crash in between leaves a record whose archive is missing (which
    /// start-up recovery reports), never an archive without a record.
    /// `backup_delete` and retention both delete this way.
    ///
    /// A `missing` backup loses its record only: the daemon never deletes a
    /// file it has not looked at since it went missing (the directory may be a
    /// mount that came back). If the archive shows up again, the next start or
    /// `store_rescan` lists it again, as an archive the catalogue did not know.
    pub fn remove_backup(&self, id: &BackupId) -> Result<(), OpError> {
        if self.jobs.is_active(id) {
            return Err(OpError::conflict(format!(
                "backup {id} is still in progress"
            )));
        }
        if self.restores.uses_backup(id) {
            return Err(OpError::conflict(format!("backup {id} is being restored")));
        }
        if self.downloads.is_busy(id) {
            return Err(OpError::conflict(format!(
                "backup {id} is being downloaded"
            )));
        }
        if let Some(entry) = self.catalogue.entry(id).filter(|e| e.remote_only) {
            let config = self.config();
            let reachable = entry
                .copies
                .iter()
                .any(|c| config.remotes.iter().any(|r| r.name == c.record.remote));
            if reachable {
                return Err(OpError::conflict(format!(
                    "backup {id} has no local archive; only remote copies remain: delete them \
                     with --remote NAME or --everywhere"
                )));
            }
            // Its copies are on remotes no longer configured: nothing here
            // can reach them, so the record alone goes (the objects stay
            // where they are, for whoever still has that remote).
            self.update_catalogue(|c| {
                c.remove(id);
            })?;
            tracing::warn!(backup = %id, "a remote-only backup whose remotes are no longer configured was forgotten; its copies stay in those remotes");
            return Ok(());
        }
        if self.replication.uses_backup(id) {
            return Err(OpError::conflict(format!(
                "backup {id} is being copied to a remote"
            )));
        }
        if self.catalogue.status(id) != Some(BackupStatus::Missing) {
            self.store.delete(id).map_err(crate::store::io_error)?;
        }
        // A backup a remote holds stays recorded, remote-only: a restore
        // fetches it, and the remote's retention (or a delete naming the
        // remote) removes the copy.
        self.update_catalogue(|c| {
            let copied = c.get(id).is_some_and(|e| {
                e.copies
                    .iter()
                    .any(|c| c.record.state == berkut_proto::wire::CopyState::Copied)
            });
            match c.get_mut(id) {
                Some(e) if copied => {
                    e.remote_only = true;
                    e.copies
                        .retain(|c| c.record.state == berkut_proto::wire::CopyState::Copied);
                }
                _ => {
                    c.remove(id);
                }
            }
        })?;
        Ok(())
    }

    /// The configuration in force now. A job takes it once when it starts,
    /// so a reload affects the jobs that start after it and never changes
    /// one half-way.
    pub fn config(&self) -> Arc<Config> {
        Arc::clone(&self.config.read().unwrap())
    }

    /// Puts a new configuration in force (a reload).
    pub fn set_config(&self, config: Config) {
        *self.config.write().unwrap() = Arc::new(config);
    }

    /// Whether a job, a restore or a download is using a backup's archive:
    /// it must not be deleted or rewritten then.
    pub fn backup_busy(&self, id: &berkut_proto::ids::BackupId) -> bool {
        self.jobs.is_active(id) || self.restores.uses_backup(id) || self.downloads.is_busy(id)
    }

    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }
}
