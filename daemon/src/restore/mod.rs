//! Restores (R5, R6, R14–R16): dry-runs into a scratch database that is
//! dropped afterwards, and real restores under maintenance that swap the
//! restored database in only after it passed its checks. `run` holds the
//! steps (named by `step::Step`), `pg` the PostgreSQL tools it runs,
//! `archive` the verification and decryption, `sql` the server-level SQL,
//! `toc` the dump's table of contents, `smoke` the checks of the restored
//! tables, `checks` the operator's own smoke checks, `record` the persisted
//! record and evidence (`digest` its DIGEST, `prune` how long it is kept),
//! `maintenance` the maintenance state, `recovery` the repair of restores
//! cut short, `rollback` rollback and cleanup, `target` the one choice of
//! drill or live server, `verdict` what a drill proves about its backup.

pub mod archive;
pub mod blocks;
pub mod checks;
pub mod digest;
pub mod export;
pub mod files;
pub mod load;
pub mod maintenance;
pub mod pg;
pub mod properties;
pub mod prune;
pub mod record;
pub mod recovery;
pub mod rollback;
pub mod run;
pub mod smoke;
pub mod sql;
pub mod step;
pub mod target;
pub mod toc;
pub mod verdict;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use berkut_proto::ids::{BackupId, RestoreId};
use berkut_proto::wire::{BackupStatus, ErrorCode, Failure, RestoreRecord, RestoreStatus};
use tokio::sync::watch;

use crate::error::OpError;
use crate::events::{Event, EventType};
use crate::jobs::TaskContext;
use crate::state::Daemon;
use crate::tools::{shutdown_error, ChildSlot};
use record::{SwapPhase, Tracker};
use run::Params;

/// The restores that are queued or running.
#[derive(Default)]
pub struct Restores {
    active: Mutex<HashMap<RestoreId, Active>>,
    /// Held by `restore_rollback` and `restore_cleanup` while they work:
    /// one at a time, so that a cleanup cannot drop the database a rollback
    /// is bringing back, and two rollbacks cannot both rename the live
    /// database.
    pub(crate) settling: tokio::sync::Mutex<()>,
}

struct Active {
    tracker: Arc<Tracker>,
    backup_id: BackupId,
    dry_run: bool,
}

impl Restores {
    pub fn watch(&self, id: &RestoreId) -> Option<watch::Receiver<RestoreRecord>> {
        self.active
            .lock()
            .unwrap()
            .get(id)
            .map(|a| a.tracker.subscribe())
    }

    /// Whether a restore is reading this backup (it must not be deleted).
    pub fn uses_backup(&self, id: &BackupId) -> bool {
        self.active
            .lock()
            .unwrap()
            .values()
            .any(|a| &a.backup_id == id)
    }

    pub fn real_in_progress(&self) -> bool {
        self.active.lock().unwrap().values().any(|a| !a.dry_run)
    }

    /// Whether a drill (a dry-run) is queued or running.
    pub fn drill_in_progress(&self) -> bool {
        self.active.lock().unwrap().values().any(|a| a.dry_run)
    }
}

/// Accepts a restore and queues it.
pub async fn submit(
    daemon: &Arc<Daemon>,
    backup_id: BackupId,
    dry_run: bool,
    with_globals: bool,
) -> Result<watch::Receiver<RestoreRecord>, OpError> {
    let recorded_sha256 = {
        let entry = daemon
            .catalogue
            .entry(&backup_id)
            .ok_or_else(|| OpError::not_found(format!("there is no backup {backup_id}")))?;
        if entry.state.status() == BackupStatus::Missing {
            return Err(OpError::unavailable(format!(
                "the archive of backup {backup_id} is missing from the backup directory; once it is back, `berkutctl store rescan` (or a restart) makes it restorable"
            )));
        }
        if entry.state.status() != BackupStatus::Succeeded {
            return Err(OpError::invalid(format!(
                "backup {backup_id} did not succeed; there is nothing to restore"
            )));
        }
        // Refused now rather than after maintenance has begun.
        if with_globals && entry.scope != berkut_proto::manifest::Scope::Full {
            return Err(OpError::invalid(format!(
                "backup {backup_id} holds no roles (its scope is {}); leave out with_globals",
                entry.scope.as_str()
            )));
        }
        entry.archive.as_ref().map(|a| a.sha256.clone())
    };
    let now = daemon.now();
    let restore_id = RestoreId::generate(now);
    let live = daemon.db.database_name();
    let suffix = restore_id.suffix().to_owned();
    let scratch = sql::derived_name(&live, if dry_run { "drill" } else { "new" }, &suffix);
    let params = Params {
        restore_id: restore_id.clone(),
        backup_id: backup_id.clone(),
        dry_run,
        with_globals,
        server: target::server(daemon, dry_run),
        old: sql::derived_name(&live, "old", &suffix),
        scratch: scratch.clone(),
        live: live.clone(),
        recorded_sha256,
    };
    let tracker = {
        // Checked and registered under one lock, so two real restores
        // cannot both pass the check.
        let mut active = daemon.restores.active.lock().unwrap();
        if !dry_run && active.values().any(|a| !a.dry_run) {
            return Err(OpError::conflict(
                "a real restore is already in progress; only one runs at a time",
            ));
        }
        let record = record::new_record(
            restore_id.clone(),
            backup_id.clone(),
            dry_run,
            with_globals,
            live,
            scratch,
            now,
        );
        let tracker = Arc::new(Tracker::create(&daemon.config().state_dir, record)?);
        active.insert(
            restore_id.clone(),
            Active {
                tracker: Arc::clone(&tracker),
                backup_id,
                dry_run,
            },
        );
        tracker
    };
    tracing::info!(restore = %restore_id, backup = %params.backup_id, dry_run, "restore queued");
    let view = tracker.subscribe();
    let d = Arc::clone(daemon);
    daemon.jobs.spawn_restore(restore_id, dry_run, move |ctx| {
        execute(d, tracker, params, ctx)
    });
    Ok(view)
}

async fn execute(daemon: Arc<Daemon>, tracker: Arc<Tracker>, p: Params, mut ctx: TaskContext) {
    let result = match ctx.acquire().await {
        None => Err(shutdown_error()),
        Some(_permit) => {
            tracker.update(|s| {
                s.record.status = RestoreStatus::Running;
                s.record.started_at = Some(daemon.now());
            });
            if !p.dry_run {
                daemon.events.emit(
                    Event::new(EventType::RestoreStarted)
                        .restore(&p.restore_id)
                        .backup(&p.backup_id),
                );
            }
            let slot = ChildSlot::new();
            let stopper = {
                let (slot, cancel) = (Arc::clone(&slot), ctx.cancel.clone());
                tokio::spawn(async move {
                    cancel.cancelled().await;
                    slot.cancel();
                })
            };
            let mut result = run::run(&daemon, &tracker, &p, &slot, &ctx.cancel).await;
            stopper.abort();
            if result.is_ok() && slot.is_cancelled() {
                result = Err(shutdown_error());
            }
            result
        }
    };
    finish(&daemon, &tracker, &p, result, &ctx).await;
}

/// Records the outcome. A failed restore leaves the live database as it
/// was: the scratch database is dropped (unless the swap made it live) and
/// maintenance is lifted. The ending is published last, once maintenance is
/// lifted and the restore no longer counts as running (neither among the
/// restores nor in the job counts), so that a client told "succeeded" can
/// at once roll it back, clean it up or start another, and `status` shows
/// it running no more.
async fn finish(
    daemon: &Arc<Daemon>,
    tracker: &Tracker,
    p: &Params,
    result: Result<(), OpError>,
    ctx: &TaskContext,
) {
    let now = daemon.now();
    daemon.metrics.restore_ended(p.dry_run, result.is_ok(), now);
    let event = |kind| Event::new(kind).restore(&p.restore_id).backup(&p.backup_id);
    match (&result, p.dry_run) {
        (Ok(()), false) => daemon
            .events
            .emit(event(EventType::RestoreFinished).result(true)),
        (Err(e), false) => daemon.events.emit(
            event(EventType::RestoreFinished)
                .result(false)
                .reason(&e.message),
        ),
        (Err(e), true) => daemon
            .events
            .emit(event(EventType::DrillFailed).reason(&e.message)),
        (Ok(()), true) => {}
    }
    let ending = match result {
        Ok(()) => {
            tracing::info!(restore = %p.restore_id, dry_run = p.dry_run, "restore succeeded");
            drill_verdict(daemon, tracker, p, now, None);
            Ok(())
        }
        Err(e) => {
            let cut_short = crate::tools::is_shutdown(&e);
            let failure = e.into_failure(&format!("restore {}", p.restore_id));
            tracing::warn!(restore = %p.restore_id, reason = %failure.reason, "restore failed");
            tracker.fail_running(now, &failure.reason);
            if tracker.summary().swap != SwapPhase::Done {
                settle(tracker, p).await;
                files::remove_staged(&files::staging(
                    &daemon.config().file_roots,
                    p.restore_id.suffix(),
                ));
            }
            if !cut_short {
                drill_verdict(daemon, tracker, p, now, Some(failure.clone()));
            }
            Err(failure)
        }
    };
    if tracker.summary().maintenance {
        if let Err(e) = daemon.maintenance.end() {
            tracing::error!(error = %e, "maintenance could not be lifted");
        }
    }
    daemon.restores.active.lock().unwrap().remove(&p.restore_id);
    ctx.leave();
    tracker.update(|s| {
        s.record.finished_at = Some(now);
        match ending {
            Ok(()) => {
                s.record.status = RestoreStatus::Succeeded;
                s.verdict = Some("passed".into());
            }
            Err(failure) => {
                s.record.status = RestoreStatus::Failed;
                s.record.failure = Some(failure);
                s.verdict = Some("failed".into());
            }
        }
    });
}

/// A drill's verdict goes on its backup's record before the restore's end
/// is published, so whoever sees the end sees the verdict. One cut short by
/// the daemon's stop proves nothing and leaves the verdict as it was.
fn drill_verdict(
    daemon: &Daemon,
    tracker: &Tracker,
    p: &Params,
    now: time::OffsetDateTime,
    failure: Option<Failure>,
) {
    if p.dry_run {
        let verdict = verdict::of(&tracker.record(), now, failure, daemon.config().rto_target);
        verdict::put(daemon, &p.backup_id, verdict);
    }
}

/// Puts the databases of a failed restore right: its scratch database is
/// dropped, and a swap that failed half-way is undone (or, if the restored
/// database did take the live name, recorded as done). When the server does
/// not answer, start-up recovery or `restore cleanup` does it later.
async fn settle(tracker: &Tracker, p: &Params) {
    let settled = match sql::Admin::connect(p.server.db()).await {
        Ok(admin) => {
            let mut summary = tracker.summary();
            recovery::settle(&admin, &mut summary)
                .await
                .map(|_| summary)
        }
        Err(e) => Err(e),
    };
    match settled {
        Ok(summary) => tracker.update(|s| {
            s.swap = summary.swap;
            s.record.rollback_database = summary.record.rollback_database.clone();
            s.scratch_left = false;
        }),
        Err(e) => {
            tracing::error!(restore = %p.restore_id, error = %e, "the scratch database could not be dropped; the next start or `berkutctl restore cleanup` will");
            tracker.update(|s| s.scratch_left = true);
        }
    }
}

/// The failure recorded for a restore the daemon did not see to its end.
pub fn interrupted() -> Failure {
    Failure {
        code: ErrorCode::Unavailable,
        reason: "interrupted: the daemon stopped while the restore ran".into(),
    }
}
