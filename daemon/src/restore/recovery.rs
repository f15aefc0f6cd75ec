//! Start-up repair after a daemon died during a restore or a rollback, and
//! `settle`, which brings any restore that is not running to rest and is
//! shared with `rollback` and `cleanup`. The unfinished restore is marked
//! `interrupted`; a scratch database left behind (half-built, or one the
//! failed restore could not drop because the server was down) is dropped;
//! if the swap had begun, the live database is put back under its name if
//! it can be found, or the completed swap is recorded; whichever database
//! carries the live name accepts connections. Maintenance is lifted only
//! when the live database was never touched (or has been put back as it
//! was); otherwise it stays on, and an administrator lifts it with
//! `maintenance_clear` after a look.

use std::collections::HashSet;

use berkut_proto::wire::RestoreStatus;

use super::record::{self, Summary, SwapPhase};
use super::sql::{self, Admin};
use super::target;
use crate::error::OpError;
use crate::state::Daemon;

/// Repairs every restore left unsettled. Runs before the daemon says it is
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
    let mut real = Server::new(false);
    let mut drill = Server::new(true);
    for mut summary in record::load_all(&daemon.config().state_dir) {
        let id = summary.record.restore_id.clone();
        let unfinished = !summary.record.status.is_finished();
        if !(unfinished || unsettled(&summary)) {
            continue;
        }
        if unfinished {
            mark_interrupted(daemon, &mut summary);
        }
        let server = if summary.record.dry_run {
            &mut drill
        } else {
            &mut real
        };
        let safe = match server.admin(daemon).await {
            Some(admin) => match settle(admin, &mut summary).await {
                Ok(safe) => safe,
                Err(e) => {
                    tracing::error!(restore = %id, error = %e, "the restore's databases could not be put right; `berkutctl restore cleanup` tries again");
                    summary.scratch_left |= summary.swap == SwapPhase::NotStarted;
                    false
                }
            },
            None => {
                tracing::error!(restore = %id, "the database server is not reachable; the restore's databases were not checked");
                summary.scratch_left |= summary.swap == SwapPhase::NotStarted;
                summary.swap == SwapPhase::NotStarted && !summary.rolling_back
            }
        };
        if held_by.as_ref() == Some(&id) {
            lift = safe;
        }
        if unfinished {
            tracing::warn!(restore = %id, live_untouched = safe, "a restore was interrupted by a daemon stop");
        }
        if let Err(e) = record::store(&daemon.config().state_dir, &summary) {
            tracing::error!(restore = %id, error = %e, "the restore's repair could not be recorded");
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

/// One server's admin connection, made when first needed: a start with
/// nothing to repair does not touch the database server.
struct Server {
    dry_run: bool,
    admin: Option<Option<Admin>>,
}

impl Server {
    fn new(dry_run: bool) -> Server {
        Server {
            dry_run,
            admin: None,
        }
    }

    async fn admin(&mut self, daemon: &Daemon) -> Option<&Admin> {
        if self.admin.is_none() {
            let admin = match Admin::connect(target::server(daemon, self.dry_run).db()).await {
                Ok(admin) => Some(admin),
                Err(e) => {
                    tracing::error!(error = %e, "the database server is not reachable for the repair of restores");
                    None
                }
            };
            self.admin = Some(admin);
        }
        self.admin.as_ref().and_then(Option::as_ref)
    }
}

/// Whether a restore that ended left its databases between two states, or
/// a scratch database behind.
fn unsettled(summary: &Summary) -> bool {
    summary.swap == SwapPhase::Started || summary.rolling_back || summary.scratch_left
}

fn mark_interrupted(daemon: &Daemon, summary: &mut Summary) {
    let now = daemon.now();
    summary.record.status = RestoreStatus::Interrupted;
    summary.record.finished_at = Some(now);
    summary.record.failure = Some(super::interrupted());
    summary.verdict = Some("failed".into());
    summary.fail_running_steps(now, "interrupted");
}

/// Brings the databases of a restore that is not running to rest, whatever
/// phase its swap (or a rollback of it) reached when it stopped, and
/// records what it found in `summary` (the caller stores it):
///
/// - a scratch database of a restore that never swapped is dropped;
/// - a swap stopped before the restored database took the live name is
///   undone: the live database goes back under its name;
/// - a swap that completed is recorded as done, with the old database kept;
/// - a rollback stopped half-way is undone the same way (it can be run
///   again);
/// - whichever database carries the live name accepts connections, and so
///   does the one kept aside.
///
/// Returns whether maintenance may be lifted: the live database is the one
/// from before the restore, or a rollback was settled one way or the other.
pub async fn settle(admin: &Admin, summary: &mut Summary) -> Result<bool, OpError> {
    let r = &summary.record;
    let suffix = r.restore_id.suffix().to_owned();
    let live = r.database.clone();
    let scratch = r.scratch_database.clone();
    let old = sql::derived_name(&live, "old", &suffix);
    let aside = sql::derived_name(&live, "restored", &suffix);
    let kept = r.rollback_database.clone();
    let mut names = vec![live.clone(), scratch.clone(), old.clone(), aside.clone()];
    names.extend(kept.clone());
    let present: HashSet<String> = admin.existing(&names).await?.into_iter().collect();
    let has = |name: &str| present.contains(name);
    let id = &r.restore_id;

    if summary.rolling_back {
        // A rollback swaps `live` (the restored database) aside as `aside`
        // and `kept` (the old one) in.
        let kept = kept.unwrap_or_else(|| old.clone());
        if !has(&live) && has(&aside) {
            tracing::warn!(restore = %id, "a rollback stopped half-way; the restored database goes back under the live name");
            admin.rename(&aside, &live).await?;
        } else if has(&live) && has(&aside) && !has(&kept) {
            tracing::warn!(restore = %id, "a rollback had completed before the stop; recording it");
            summary.verdict = Some("rolled back".into());
            summary.record.rollback_database = Some(aside.clone());
        }
        allow_if_there(admin, &live).await?;
        allow_if_there(admin, &kept).await?;
        allow_if_there(admin, &aside).await?;
        summary.rolling_back = false;
        return Ok(true);
    }

    match summary.swap {
        SwapPhase::NotStarted => {
            if has(&scratch) {
                tracing::warn!(restore = %id, database = %scratch, "dropping the scratch database a restore left behind");
                admin.drop(&scratch).await?;
            }
            summary.scratch_left = false;
            Ok(true)
        }
        SwapPhase::Started => {
            let untouched = match (has(&live), has(&old)) {
                // Renamed aside, the restored one not yet in place.
                (false, true) => {
                    tracing::warn!(restore = %id, "a swap stopped half-way; the live database goes back under its name");
                    admin.rename(&old, &live).await?;
                    true
                }
                // The swap completed: the restored database is live.
                (true, true) => {
                    summary.swap = SwapPhase::Done;
                    summary.record.rollback_database = Some(old.clone());
                    false
                }
                // The live database was never renamed (only its
                // connections were refused), or there was none (a fresh
                // server) and the scratch one was not yet renamed.
                (_, false) if has(&scratch) => true,
                // A fresh server, and the restored database took the name.
                (true, false) => {
                    summary.swap = SwapPhase::Done;
                    false
                }
                (false, false) => {
                    tracing::error!(restore = %id, database = %live, "neither the live database nor the one moved aside exists");
                    true
                }
            };
            if untouched {
                if has(&scratch) {
                    admin.drop(&scratch).await?;
                }
                // At rest with the live database as it was: as if the swap
                // had never begun, so a later settle does not mistake the
                // scratch database's absence for a completed swap.
                summary.swap = SwapPhase::NotStarted;
            }
            summary.scratch_left = false;
            allow_if_there(admin, &live).await?;
            allow_if_there(admin, &old).await?;
            Ok(untouched)
        }
        SwapPhase::Done => Ok(false),
    }
}

async fn allow_if_there(admin: &Admin, name: &str) -> Result<(), OpError> {
    if admin.exists(name).await? {
        admin.allow_connections(name, true).await?;
    }
    Ok(())
}
