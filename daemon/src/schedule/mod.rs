//! The backup plan (R7) and the RPO watch (R17). `plan` holds the persisted
//! plan, `timing` computes fire times with croner in the plan's time zone,
//! `scheduler` decides (purely) when to fire, `runner` is the loop that acts
//! on it (and runs `crate::retention`, whose rule the plan carries, once a
//! day).
//!
//! Why not tokio-cron-scheduler: see ARCHITECTURE.md, "Decisions".

pub mod plan;
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

/// The recovery point objective in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Objective {
    /// No enabled plan: nothing is promised.
    None,
    /// The newest good backup may be at most this old.
    Limit(time::Duration),
    /// A plan is enabled but cannot be scheduled (its time zone vanished
    /// from the system's database, say): nothing will run, which must not
    /// look like health.
    Broken,
}

/// The objective: the period the plan is in plus a grace margin (a tenth of
/// the period, at least an hour).
pub fn objective(plan: Option<&StoredPlan>, now: OffsetDateTime) -> Objective {
    let Some(plan) = plan.filter(|p| p.enabled) else {
        return Objective::None;
    };
    match plan.timing().ok().and_then(|t| t.period_around(now)) {
        Some(period) => Objective::Limit(rpo_limit(period)),
        None => Objective::Broken,
    }
}

/// Where the daemon stands against its objective: the newest good
/// backup, its age, the limit in force and whether it is breached. `status`,
/// the metrics and the RPO notifications all read it here, so they never
/// disagree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RpoState {
    pub newest_success_at: Option<OffsetDateTime>,
    pub age_seconds: Option<u64>,
    pub limit_seconds: Option<u64>,
    pub breached: bool,
}

pub fn rpo_state(daemon: &Daemon, now: OffsetDateTime) -> RpoState {
    let newest_success_at = daemon.catalogue.newest_success(None);
    let age_seconds = newest_success_at.map(|t| (now - t).whole_seconds().max(0) as u64);
    let (limit_seconds, breached) = match objective(daemon.plan.borrow().as_ref(), now) {
        Objective::None => (None, false),
        Objective::Broken => (None, true),
        Objective::Limit(limit) => {
            let limit = limit.whole_seconds().max(0) as u64;
            (Some(limit), age_seconds.is_none_or(|age| age > limit))
        }
    };
    RpoState {
        newest_success_at,
        age_seconds,
        limit_seconds,
        breached,
    }
}

fn rpo_limit(period: time::Duration) -> time::Duration {
    let tenth: time::Duration = period / 10_i32;
    period.saturating_add(tenth.max(time::Duration::HOUR))
}
