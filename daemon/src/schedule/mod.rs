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

use plan::StoredPlan;

/// The recovery point limit: the plan's period plus a grace margin (a tenth
/// of the period, at least an hour), or `None` without an enabled plan.
pub fn rpo_limit(plan: Option<&StoredPlan>, now: OffsetDateTime) -> Option<time::Duration> {
    let plan = plan.filter(|p| p.enabled)?;
    let period = plan.timing().ok()?.period_after(now)?;
    let tenth: time::Duration = period / 10_i32;
    let grace = tenth.max(time::Duration::HOUR);
    Some(period + grace)
}
