//! The backup plan (R7), retention (R8) and the RPO watch (R17). `plan`
//! holds the persisted plan, `timing` computes fire times with croner in the
//! plan's time zone, `scheduler` decides (purely) when to fire, `runner`
//! is the loop that acts on it, `retention` decides and applies deletions.
//!
//! Why not tokio-cron-scheduler: see ARCHITECTURE.md, "Decisions".

pub mod plan;
pub mod retention;
pub mod runner;
pub mod scheduler;
pub mod timing;

use time::OffsetDateTime;

use crate::state::Daemon;
use plan::{PlanFileError, StoredPlan};

/// Re-reads `plan.json` (a reload) and hands the plan to the scheduler if
/// it differs from the one in force. The file is read under the plan's
/// lock, which `plan_set::put_in_force` also holds while it saves, so a
/// reload never puts back a plan that was replaced meanwhile. Returns
/// whether the plan changed.
pub fn reload_plan(daemon: &Daemon) -> Result<bool, PlanFileError> {
    let state_dir = daemon.config().state_dir.clone();
    let mut outcome = Ok(false);
    daemon
        .plan
        .send_if_modified(|current| match plan::load(&state_dir) {
            Ok(loaded) if loaded != *current => {
                *current = loaded;
                outcome = Ok(true);
                true
            }
            Ok(_) => false,
            Err(e) => {
                outcome = Err(e);
                false
            }
        });
    outcome
}

/// The recovery point limit: the plan's period plus a grace margin (a tenth
/// of the period, at least an hour), or `None` without an enabled plan.
pub fn rpo_limit(plan: Option<&StoredPlan>, now: OffsetDateTime) -> Option<time::Duration> {
    let plan = plan.filter(|p| p.enabled)?;
    let period = plan.timing().ok()?.period_after(now)?;
    let tenth: time::Duration = period / 10_i32;
    let grace = tenth.max(time::Duration::HOUR);
    Some(period + grace)
}
