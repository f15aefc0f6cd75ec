//! The scheduler loop: wakes at the next fire time or at least once a
//! minute, asks `Scheduler` what to do, starts automatic backups through the
//! same queue and limit as manual ones, and runs retention once a day. It
//! reads time only from the daemon's `Clock`, and looks again when a
//! clock moved by hand moves or a backup ends. Each turn also lets the
//! drill policy (`drill::turn`) start a drill. It runs under
//! `health::supervised`: if it dies it is started again.

use std::sync::Arc;

use berkut_proto::manifest::Origin;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use super::scheduler::{Action, Facts, Scheduler};
use crate::backup::{self, BackupRequest};
use crate::retention;
use crate::state::Daemon;

pub async fn run(daemon: Arc<Daemon>, shutdown: CancellationToken) {
    let mut plan_rx = daemon.plan.subscribe();
    let mut scheduler = Scheduler::default();
    let mut last_retention: Option<OffsetDateTime> = None;
    let mut drills = crate::drill::DrillScheduler::default();
    let mut moved = daemon.clock.subscribe();
    loop {
        #[cfg(debug_assertions)]
        crate::health::injected_panic("scheduler");
        let now = daemon.now();
        let plan = plan_rx.borrow_and_update().clone();
        let timing = plan.as_ref().and_then(|p| match p.timing() {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::error!(error = %e, "the stored plan cannot be scheduled");
                None
            }
        });
        let fresh = scheduler.is_fresh();
        let (action, wake_at) =
            scheduler.wake(plan.as_ref(), timing.as_ref(), now, &facts(&daemon));
        match (action, &plan) {
            (Some(Action::Fire { slot, .. }), Some(_)) if daemon.maintenance.is_active() => {
                tracing::warn!(%slot, "skipped a scheduled backup: a restore holds the maintenance lock");
            }
            (Some(Action::Fire { slot, catch_up }), Some(plan)) => {
                if catch_up {
                    tracing::info!(%slot, "running one catch-up backup: the slot passed while the daemon was down and no automatic backup has succeeded since");
                }
                let request = BackupRequest {
                    label: format!("scheduled ({})", plan.preset.as_str()),
                    scope: plan.scope,
                    include_files: plan.include_files,
                    origin: Origin::Scheduled,
                };
                if let Err(e) = backup::submit_or_record(&daemon, request).await {
                    tracing::warn!(%slot, error = %e, "the scheduled backup could not start");
                }
            }
            (Some(Action::Skip { slot, reason }), _) => {
                tracing::warn!(%slot, reason, "skipped a scheduled backup")
            }
            _ => {}
        }
        if fresh {
            match (&plan, timing.as_ref().and_then(|t| t.next_after(now))) {
                (Some(p), Some(next)) if p.enabled => {
                    tracing::info!(preset = p.preset.as_str(), timezone = %p.timezone, %next, "backup plan in force")
                }
                (Some(_), _) => tracing::info!("backup plan disabled"),
                (None, _) => tracing::info!("no backup plan set"),
            }
        }
        crate::drill::turn(&daemon, &mut drills, now).await;
        if last_retention.is_none_or(|t| now - t >= time::Duration::DAY) {
            retention::run(&daemon).await;
            last_retention = Some(now);
        }
        flush_catalogue(&daemon);
        // The watchdog counts the daemon as hung when this stops; beaten
        // at the end of a turn, so a loop that dies in every turn never
        // counts as alive.
        daemon.scheduler_beat.beat();
        let pause = (wake_at - now).clamp(time::Duration::ZERO, super::scheduler::MAX_SLEEP);
        let pause = std::time::Duration::try_from(pause).unwrap_or_default();
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            changed = plan_rx.changed() => {
                if changed.is_err() {
                    break;
                }
                scheduler.reset();
            }
            _ = daemon.scheduler_wake.notified() => {}
            _ = clock_moved(&mut moved) => {}
            _ = shutdown.cancelled() => break,
        }
    }
}

/// Returns when a clock moved by hand (a test's) moves; never for the
/// system clock.
async fn clock_moved(moved: &mut Option<tokio::sync::watch::Receiver<OffsetDateTime>>) {
    if let Some(rx) = moved {
        if rx.changed().await.is_ok() {
            return;
        }
    }
    std::future::pending().await
}

/// Writes catalogue changes that an earlier write could not (see
/// `Catalogue::keep_unsaved`): once a minute at most, as soon as writing
/// works again.
fn flush_catalogue(daemon: &Daemon) {
    match daemon.catalogue.flush() {
        Ok(true) => {
            tracing::info!("the catalogue changes that could not be written before are written now")
        }
        Ok(false) => {}
        Err(e) => {
            tracing::warn!(error = %e, "the catalogue still cannot be written; retrying in a minute")
        }
    }
}

fn facts(daemon: &Daemon) -> Facts {
    let last_auto_success = daemon.catalogue.newest_success(Some(Origin::Scheduled));
    let auto_in_progress = daemon
        .jobs
        .list()
        .iter()
        .any(|j| j.record.origin == Origin::Scheduled);
    Facts {
        last_auto_success,
        auto_in_progress,
    }
}
