//! Start-up repair after a daemon died during a restore. The unfinished
//! restore is marked `interrupted`; its half-built scratch database is
//! dropped; if the swap had begun, the live database is put back under its
//! name if it can be found. Maintenance is lifted only when the live
//! database was never touched (or has been put back as it was); otherwise it
//! stays on, and an administrator lifts it with `maintenance_clear` after a
//! look.

use berkut_proto::wire::{RestoreStatus, StepState};

use super::record::{self, SwapPhase};
use super::sql::{self, Admin};
use crate::state::Daemon;

/// Repairs every unfinished restore. Runs before the daemon says it is
/// ready.
pub async fn recover(daemon: &Daemon) {
    // Decrypted dumps of restores that did not end are plaintext: they go
    // first, whatever else happens.
    let tmp = super::run::tmp_root(&daemon.config().state_dir);
    if tmp.exists() {
        if let Err(e) = std::fs::remove_dir_all(&tmp) {
            tracing::error!(error = %e, "leftover decrypted dumps could not be removed");
        }
    }
    let mut lift = !daemon.maintenance.is_active();
    let held_by = daemon.maintenance.current().restore_id;
    for mut summary in record::load_all(&daemon.config().state_dir) {
        if summary.record.status.is_finished() {
            continue;
        }
        let id = summary.record.restore_id.clone();
        let now = daemon.now();
        summary.record.status = RestoreStatus::Interrupted;
        summary.record.finished_at = Some(now);
        summary.record.failure = Some(super::interrupted());
        summary.verdict = Some("failed".into());
        for step in summary
            .record
            .steps
            .iter_mut()
            .filter(|s| s.state == StepState::Running)
        {
            step.state = StepState::Failed;
            step.finished_at = Some(now);
            step.detail = Some("interrupted".into());
        }
        let target = if summary.record.dry_run {
            daemon.drill_db.clone().unwrap_or_else(|| daemon.db.clone())
        } else {
            daemon.db.clone()
        };
        let safe = match Admin::connect(&target).await {
            Ok(admin) => {
                let safe = repair(&admin, &summary).await;
                if !safe
                    && summary.swap == SwapPhase::Started
                    && admin
                        .exists(&summary.record.database)
                        .await
                        .unwrap_or(false)
                {
                    // The swap completed before the crash: say so, so that a
                    // rollback can find the old database.
                    summary.swap = SwapPhase::Done;
                    summary.record.rollback_database = Some(sql::derived_name(
                        &summary.record.database,
                        "old",
                        id.suffix(),
                    ));
                }
                safe
            }
            Err(e) => {
                tracing::error!(restore = %id, error = %e, "the database server is not reachable; the interrupted restore's databases were not checked");
                summary.swap == SwapPhase::NotStarted
            }
        };
        if held_by.as_ref() == Some(&id) {
            lift = safe;
        }
        tracing::warn!(restore = %id, live_untouched = safe, "a restore was interrupted by a daemon stop");
        if let Err(e) = record::store(&daemon.config().state_dir, &summary) {
            tracing::error!(restore = %id, error = %e, "the interrupted restore could not be recorded");
        }
    }
    if daemon.maintenance.is_active() {
        if lift {
            let _ = daemon.maintenance.end();
        } else {
            tracing::error!("maintenance stays on: a restore was interrupted after it touched the live database; check it, run `berkutctl maintenance clear`, then `berkutctl restore rollback` if the old database should come back");
        }
    }
}

/// Puts the databases of an interrupted restore right; returns whether the
/// live database is as it was before the restore.
async fn repair(admin: &Admin, summary: &record::Summary) -> bool {
    let r = &summary.record;
    let old = sql::derived_name(&r.database, "old", r.restore_id.suffix());
    let result: Result<bool, crate::error::OpError> = async {
        match summary.swap {
            SwapPhase::NotStarted => {
                admin.drop(&r.scratch_database).await?;
                Ok(true)
            }
            SwapPhase::Started => {
                let live = admin.exists(&r.database).await?;
                let moved = admin.exists(&old).await?;
                let scratch = admin.exists(&r.scratch_database).await?;
                match (live, moved, scratch) {
                    // The live database was never renamed: only its
                    // connections were refused.
                    (true, false, true) => {
                        admin.allow_connections(&r.database, true).await?;
                        admin.drop(&r.scratch_database).await?;
                        Ok(true)
                    }
                    // Renamed aside, the restored one not yet in place.
                    (false, true, _) => {
                        admin.rename(&old, &r.database).await?;
                        admin.allow_connections(&r.database, true).await?;
                        admin.drop(&r.scratch_database).await?;
                        Ok(true)
                    }
                    // The swap completed: the restored database is live.
                    _ => Ok(false),
                }
            }
            SwapPhase::Done => Ok(false),
        }
    }
    .await;
    result.unwrap_or_else(|e| {
        tracing::error!(restore = %r.restore_id, error = %e, "the interrupted restore's databases could not be repaired");
        false
    })
}
