//! The scheduler's decisions, as a pure function of the plan, the time and
//! a few facts about the catalogue: no clock, no sleeping, no I/O, so every
//! rule is tested by handing it times. `runner` feeds it and carries out
//! what it decides.
//!
//! The rules: a slot fires once, when it comes; if several slots passed at
//! once (a suspended machine, a clock that jumped), only the latest fires.
//! A slot whose predecessor is still running is skipped, never overlapped.
//! After a start (or a plan change) the most recent slot fires as a catch-up
//! only if it was promised (it is later than the plan's `effective_since`),
//! no automatic backup has succeeded since, and catch-up is on.

use time::OffsetDateTime;

use super::plan::StoredPlan;
use super::timing::Timing;

/// How long the runner sleeps at most between looks: timers do not advance
/// during suspend, and the wall clock can jump.
pub const MAX_SLEEP: time::Duration = time::Duration::minutes(1);

/// What the catalogue says that matters to the scheduler.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    /// When the newest successful automatic backup was started.
    pub last_auto_success: Option<OffsetDateTime>,
    /// Whether an automatic backup is queued or running.
    pub auto_in_progress: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Start an automatic backup for `slot`.
    Fire {
        slot: OffsetDateTime,
        catch_up: bool,
    },
    /// Let `slot` pass without a backup, for `reason`.
    Skip {
        slot: OffsetDateTime,
        reason: &'static str,
    },
}

#[derive(Debug)]
pub struct Scheduler {
    /// The latest slot already fired or skipped.
    handled: Option<OffsetDateTime>,
    fresh: bool,
}

impl Default for Scheduler {
    fn default() -> Self {
        Scheduler {
            handled: None,
            fresh: true,
        }
    }
}

impl Scheduler {
    /// Forgets what was handled, as after a start; called when the plan
    /// changes.
    pub fn reset(&mut self) {
        self.handled = None;
        self.fresh = true;
    }

    /// True until the first look after a start or a reset.
    pub fn is_fresh(&self) -> bool {
        self.fresh
    }

    /// Decides what to do at `now`, and when to look again.
    pub fn wake(
        &mut self,
        plan: Option<&StoredPlan>,
        timing: Option<&Timing>,
        now: OffsetDateTime,
        facts: &Facts,
    ) -> (Option<Action>, OffsetDateTime) {
        self.fresh = false;
        let (Some(plan), Some(timing)) = (plan.filter(|p| p.enabled), timing) else {
            return (None, now.saturating_add(MAX_SLEEP));
        };
        let action = match (self.handled, timing.last_at_or_before(now)) {
            (_, None) => None,
            (None, Some(slot)) => {
                self.handled = Some(slot);
                let covered = facts.last_auto_success.is_some_and(|t| t >= slot);
                let promised = slot >= plan.effective_since;
                (plan.catch_up && promised && !covered).then(|| fire(slot, true, facts))
            }
            (Some(handled), Some(slot)) if slot > handled => {
                self.handled = Some(slot);
                Some(fire(slot, false, facts))
            }
            _ => None,
        };
        let wake = timing
            .next_after(now)
            .map_or(now.saturating_add(MAX_SLEEP), |next| {
                next.min(now.saturating_add(MAX_SLEEP))
            });
        (action, wake)
    }
}

fn fire(slot: OffsetDateTime, catch_up: bool, facts: &Facts) -> Action {
    if facts.auto_in_progress {
        Action::Skip {
            slot,
            reason: "the previous automatic backup is still running",
        }
    } else {
        Action::Fire { slot, catch_up }
    }
}

#[cfg(test)]
mod tests;
