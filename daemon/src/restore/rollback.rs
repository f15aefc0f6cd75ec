//! After a restore: `rollback` puts the old database back under the live
//! name (keeping the restored one aside), `cleanup` removes whatever the
//! restore left: the database kept aside, a scratch database a failed
//! restore could not drop, and the file roots moved aside. Both first
//! settle a restore a crash interrupted (see `recovery::settle`), and they
//! run one at a time (`Restores::settling`). A rollback holds maintenance
//! while it renames the live database, and waits for the daemon's running
//! jobs first, like a restore's swap.

use berkut_proto::ids::RestoreId;
use berkut_proto::wire::RestoreRecord;

use super::record::{self, Summary, SwapPhase};
use super::recovery::settle;
use super::sql::{self, Admin};
use super::target;
use crate::error::OpError;
use crate::state::Daemon;

fn finished_restore(daemon: &Daemon, id: &RestoreId) -> Result<Summary, OpError> {
    let summary = record::load(&daemon.config().state_dir, id)
        .ok_or_else(|| OpError::not_found(format!("there is no restore {id}")))?;
    if !summary.record.status.is_finished() {
        return Err(OpError::conflict(format!("restore {id} is still running")));
    }
    Ok(summary)
}

/// Takes the turn of rollbacks and cleanups; says so in the log when it
/// has to wait for another one.
async fn one_at_a_time<'a>(daemon: &'a Daemon, id: &RestoreId) -> tokio::sync::MutexGuard<'a, ()> {
    match daemon.restores.settling.try_lock() {
        Ok(turn) => turn,
        Err(_) => {
            tracing::info!(restore = %id, "waiting for another rollback or cleanup to finish");
            daemon.restores.settling.lock().await
        }
    }
}

fn store(daemon: &Daemon, summary: &Summary) -> Result<(), OpError> {
    record::store(&daemon.config().state_dir, summary)
}

pub async fn rollback(daemon: &Daemon, id: &RestoreId) -> Result<RestoreRecord, OpError> {
    let _turn = one_at_a_time(daemon, id).await;
    let mut summary = finished_restore(daemon, id)?;
    if summary.record.dry_run {
        return Err(OpError::invalid(
            "a dry-run never replaced the live database",
        ));
    }
    if daemon.restores.real_in_progress() {
        return Err(OpError::conflict("a real restore is in progress"));
    }
    let admin = Admin::connect(target::server(daemon, summary.record.dry_run).db()).await?;
    settle(&admin, &mut summary).await?;
    store(daemon, &summary)?;
    if summary.swap != SwapPhase::Done {
        return Err(OpError::invalid(format!(
            "restore {id} never replaced the live database"
        )));
    }
    if summary.verdict.as_deref() == Some("rolled back") {
        return Err(OpError::invalid(format!(
            "restore {id} was already rolled back"
        )));
    }
    let Some(kept) = summary.record.rollback_database.clone() else {
        return Err(OpError::invalid(format!(
            "restore {id} has nothing left to roll back to (it was cleaned up)"
        )));
    };
    let live = summary.record.database.clone();
    let restored = sql::derived_name(&live, "restored", id.suffix());
    if !admin.exists(&kept).await? {
        return Err(OpError::not_found(format!(
            "the database kept for rollback ({kept}) no longer exists"
        )));
    }
    daemon
        .maintenance
        .begin(id, &format!("rolling back restore {id}"), daemon.now())?;
    let swapped = async {
        // No backup may be cut off by the renames, nor start during them.
        let _quiet = super::run::quiesce(daemon, None, 0, &daemon.shutdown).await?;
        summary.rolling_back = true;
        store(daemon, &summary)?;
        let swapped = admin.swap(&live, &kept, &restored).await.map(|_| ());
        if swapped.is_ok() {
            summary.rolling_back = false;
        } else {
            // The swap undoes itself; if even that failed, start-up
            // recovery or the next rollback or cleanup settles it.
            let _ = settle(&admin, &mut summary).await;
        }
        swapped
    }
    .await;
    // File roots go back too: the restored ones aside, the old ones home.
    let files = match &swapped {
        Ok(()) => swap_files_back(daemon, id),
        Err(_) => Ok(()),
    };
    if swapped.is_ok() {
        summary.record.rollback_database = Some(restored);
        summary.verdict = Some("rolled back".into());
    }
    let stored = store(daemon, &summary);
    let _ = daemon.maintenance.end();
    swapped?;
    files?;
    stored?;
    tracing::info!(restore = %id, "restore rolled back; the restored database is kept aside");
    Ok(summary.record)
}

fn swap_files_back(daemon: &Daemon, id: &RestoreId) -> Result<(), OpError> {
    for s in super::files::staging(&daemon.config().file_roots, id.suffix())
        .iter()
        .filter(|s| s.old.exists())
    {
        std::fs::rename(&s.root, &s.restored)
            .and_then(|()| std::fs::rename(&s.old, &s.root))
            .map_err(|e| {
                OpError::unavailable("a file root could not be rolled back").with_detail(e)
            })?;
    }
    Ok(())
}

/// Removes what a finished restore left: the database kept aside (after
/// which there is nothing to roll back to), a scratch database a failure
/// could not drop, and the file roots kept aside or half-staged.
pub async fn cleanup(daemon: &Daemon, id: &RestoreId) -> Result<RestoreRecord, OpError> {
    let _turn = one_at_a_time(daemon, id).await;
    let mut summary = finished_restore(daemon, id)?;
    if !summary.record.dry_run && daemon.restores.real_in_progress() {
        return Err(OpError::conflict("a real restore is in progress"));
    }
    let admin = Admin::connect(target::server(daemon, summary.record.dry_run).db()).await?;
    settle(&admin, &mut summary).await?;
    store(daemon, &summary)?;
    if let Some(kept) = summary.record.rollback_database.clone() {
        admin.drop(&kept).await?;
        tracing::info!(restore = %id, database = %kept, "dropped the database kept aside by a restore");
        summary.record.rollback_database = None;
        store(daemon, &summary)?;
    }
    for s in super::files::staging(&daemon.config().file_roots, id.suffix()) {
        for dir in [&s.new, &s.old, &s.restored] {
            if dir.exists() {
                std::fs::remove_dir_all(dir).map_err(|e| {
                    OpError::unavailable("a file root kept aside could not be removed")
                        .with_detail(e)
                })?;
                tracing::info!(restore = %id, path = %dir.display(), "removed a file root kept aside by a restore");
            }
        }
    }
    Ok(summary.record)
}
