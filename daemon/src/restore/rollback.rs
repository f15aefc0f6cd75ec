//! After a real restore: `rollback` puts the old database back under the
//! live name (keeping the restored one aside), `cleanup` drops whichever
//! database the restore kept aside. A rollback holds maintenance while it
//! renames the live database; a cleanup only drops a database nobody should
//! be using.

use berkut_proto::ids::RestoreId;
use berkut_proto::wire::RestoreRecord;

use super::record::{self, SwapPhase};
use super::sql::{self, Admin};
use crate::error::OpError;
use crate::state::Daemon;

fn finished_real_restore(daemon: &Daemon, id: &RestoreId) -> Result<record::Summary, OpError> {
    let summary = record::load(&daemon.config().state_dir, id)
        .ok_or_else(|| OpError::not_found(format!("there is no restore {id}")))?;
    if summary.record.dry_run {
        return Err(OpError::invalid(
            "a dry-run never replaced the live database",
        ));
    }
    if !summary.record.status.is_finished() || daemon.restores.real_in_progress() {
        return Err(OpError::conflict("a real restore is in progress"));
    }
    if summary.swap != SwapPhase::Done {
        return Err(OpError::invalid(format!(
            "restore {id} never replaced the live database"
        )));
    }
    Ok(summary)
}

pub async fn rollback(daemon: &Daemon, id: &RestoreId) -> Result<RestoreRecord, OpError> {
    let mut summary = finished_real_restore(daemon, id)?;
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
    let admin = Admin::connect(&daemon.db).await?;
    if !admin.exists(&kept).await? {
        return Err(OpError::not_found(format!(
            "the database kept for rollback ({kept}) no longer exists"
        )));
    }
    daemon
        .maintenance
        .begin(id, &format!("rolling back restore {id}"), daemon.now())?;
    let swapped = admin.swap(&live, &kept, &restored).await.map(|_| ());
    // File roots go back too: the restored ones aside, the old ones home.
    let files = swapped.and_then(|()| {
        for s in super::files::staging(&daemon.config().file_roots, id.suffix())
            .iter()
            .filter(|s| s.old.exists())
        {
            let aside = s.old.with_file_name(format!(
                "{}.berkut-restored-{}",
                s.root
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                id.suffix()
            ));
            std::fs::rename(&s.root, &aside)
                .and_then(|()| std::fs::rename(&s.old, &s.root))
                .map_err(|e| {
                    OpError::unavailable("a file root could not be rolled back").with_detail(e)
                })?;
        }
        Ok(())
    });
    let _ = daemon.maintenance.end();
    files?;
    tracing::info!(restore = %id, "restore rolled back; the restored database is kept aside");
    summary.record.rollback_database = Some(restored);
    summary.verdict = Some("rolled back".into());
    record::store(&daemon.config().state_dir, &summary)?;
    Ok(summary.record)
}

pub async fn cleanup(daemon: &Daemon, id: &RestoreId) -> Result<RestoreRecord, OpError> {
    let mut summary = finished_real_restore(daemon, id)?;
    let Some(kept) = summary.record.rollback_database.take() else {
        return Ok(summary.record);
    };
    let admin = Admin::connect(&daemon.db).await?;
    admin.drop(&kept).await?;
    tracing::info!(restore = %id, database = %kept, "dropped the database kept aside by a restore");
    record::store(&daemon.config().state_dir, &summary)?;
    Ok(summary.record)
}
