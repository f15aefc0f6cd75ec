//! The scheduler's rules, driven by handing it times.

use berkut_proto::wire::{PlanSpec, Preset};
use time::macros::datetime;
use time::Duration;

use super::*;

fn plan(effective_since: OffsetDateTime, catch_up: bool) -> (StoredPlan, Timing) {
    let spec = PlanSpec {
        preset: Preset::Daily,
        at: Some("02:30".into()),
        weekday: None,
        timezone: Some("UTC".into()),
        cron: None,
        scope: Default::default(),
        include_files: false,
        retention_days: 30,
        keep_last_successful: 7,
        catch_up,
    };
    let plan = StoredPlan::from_spec(&spec, effective_since).unwrap();
    let timing = plan.timing().unwrap();
    (plan, timing)
}

const SINCE: OffsetDateTime = datetime!(2026-11-01 12:00 UTC);

#[test]
fn a_slot_fires_once_when_it_comes() {
    let (plan, timing) = plan(SINCE, true);
    let mut s = Scheduler::default();
    let facts = Facts::default();
    // The daemon started in the afternoon after the plan was set: nothing
    // was promised yet, so nothing runs.
    let (action, wake) = s.wake(
        Some(&plan),
        Some(&timing),
        datetime!(2026-11-01 13:00 UTC),
        &facts,
    );
    assert_eq!(action, None);
    assert_eq!(
        wake,
        datetime!(2026-11-01 13:01 UTC),
        "looks again within a minute"
    );
    assert_eq!(
        s.wake(
            Some(&plan),
            Some(&timing),
            datetime!(2026-11-02 02:29:59 UTC),
            &facts
        )
        .0,
        None
    );
    let (action, wake) = s.wake(
        Some(&plan),
        Some(&timing),
        datetime!(2026-11-02 02:30 UTC),
        &facts,
    );
    assert_eq!(
        action,
        Some(Action::Fire {
            slot: datetime!(2026-11-02 02:30 UTC),
            catch_up: false
        })
    );
    assert_eq!(wake, datetime!(2026-11-02 02:31 UTC));
    // Looking again in the same slot does nothing.
    assert_eq!(
        s.wake(
            Some(&plan),
            Some(&timing),
            datetime!(2026-11-02 02:30:30 UTC),
            &facts
        )
        .0,
        None
    );
    assert_eq!(
        s.wake(
            Some(&plan),
            Some(&timing),
            datetime!(2026-11-02 14:00 UTC),
            &facts
        )
        .0,
        None
    );
}

#[test]
fn the_wake_up_is_the_next_slot_when_it_is_near() {
    let (plan, timing) = plan(SINCE, true);
    let mut s = Scheduler::default();
    let (_, wake) = s.wake(
        Some(&plan),
        Some(&timing),
        datetime!(2026-11-02 02:29:40 UTC),
        &Facts::default(),
    );
    assert_eq!(wake, datetime!(2026-11-02 02:30 UTC));
}

#[test]
fn after_a_restart_a_covered_slot_does_not_run_again() {
    let (plan, timing) = plan(SINCE, true);
    let mut s = Scheduler::default();
    let facts = Facts {
        last_auto_success: Some(datetime!(2026-11-05 02:30:01 UTC)),
        auto_in_progress: false,
    };
    let (action, _) = s.wake(
        Some(&plan),
        Some(&timing),
        datetime!(2026-11-05 09:00 UTC),
        &facts,
    );
    assert_eq!(action, None, "no needless immediate backup");
    let (action, _) = s.wake(
        Some(&plan),
        Some(&timing),
        datetime!(2026-11-06 02:30 UTC),
        &facts,
    );
    assert!(matches!(
        action,
        Some(Action::Fire {
            catch_up: false,
            ..
        })
    ));
}

#[test]
fn after_a_restart_a_missed_slot_runs_exactly_one_catch_up() {
    let (plan, timing) = plan(SINCE, true);
    let mut s = Scheduler::default();
    // Down from the 3rd to the 6th: three slots missed, one catch-up.
    let facts = Facts {
        last_auto_success: Some(datetime!(2026-11-03 02:30:02 UTC)),
        auto_in_progress: false,
    };
    let (action, _) = s.wake(
        Some(&plan),
        Some(&timing),
        datetime!(2026-11-06 09:00 UTC),
        &facts,
    );
    assert_eq!(
        action,
        Some(Action::Fire {
            slot: datetime!(2026-11-06 02:30 UTC),
            catch_up: true
        })
    );
    for minute in 1..10 {
        let now = datetime!(2026-11-06 09:00 UTC) + Duration::minutes(minute);
        assert_eq!(s.wake(Some(&plan), Some(&timing), now, &facts).0, None);
    }
    // With no automatic backup ever, the same.
    let mut s = Scheduler::default();
    let (action, _) = s.wake(
        Some(&plan),
        Some(&timing),
        datetime!(2026-11-06 09:00 UTC),
        &Facts::default(),
    );
    assert!(matches!(action, Some(Action::Fire { catch_up: true, .. })));
}

#[test]
fn catch_up_can_be_turned_off() {
    let (plan, timing) = plan(SINCE, false);
    let mut s = Scheduler::default();
    assert_eq!(
        s.wake(
            Some(&plan),
            Some(&timing),
            datetime!(2026-11-06 09:00 UTC),
            &Facts::default()
        )
        .0,
        None
    );
    let (action, _) = s.wake(
        Some(&plan),
        Some(&timing),
        datetime!(2026-11-07 02:30 UTC),
        &Facts::default(),
    );
    assert!(matches!(
        action,
        Some(Action::Fire {
            catch_up: false,
            ..
        })
    ));
}

#[test]
fn many_slots_passing_at_once_fire_only_the_latest() {
    let (plan, timing) = plan(SINCE, true);
    let mut s = Scheduler::default();
    let facts = Facts {
        last_auto_success: Some(datetime!(2026-11-02 02:30 UTC)),
        auto_in_progress: false,
    };
    assert_eq!(
        s.wake(
            Some(&plan),
            Some(&timing),
            datetime!(2026-11-02 03:00 UTC),
            &facts
        )
        .0,
        None
    );
    // The machine slept for five days (or the clock jumped).
    let (action, _) = s.wake(
        Some(&plan),
        Some(&timing),
        datetime!(2026-11-07 11:00 UTC),
        &facts,
    );
    assert_eq!(
        action,
        Some(Action::Fire {
            slot: datetime!(2026-11-07 02:30 UTC),
            catch_up: false
        })
    );
    assert_eq!(
        s.wake(
            Some(&plan),
            Some(&timing),
            datetime!(2026-11-07 11:01 UTC),
            &facts
        )
        .0,
        None
    );
    // A clock that jumps back fires nothing.
    assert_eq!(
        s.wake(
            Some(&plan),
            Some(&timing),
            datetime!(2026-11-04 11:00 UTC),
            &facts
        )
        .0,
        None
    );
}

#[test]
fn a_plan_never_overlaps_itself() {
    let (plan, timing) = plan(SINCE, true);
    let mut s = Scheduler::default();
    let busy = Facts {
        last_auto_success: Some(datetime!(2026-11-02 02:30 UTC)),
        auto_in_progress: true,
    };
    s.wake(
        Some(&plan),
        Some(&timing),
        datetime!(2026-11-02 03:00 UTC),
        &busy,
    );
    let (action, _) = s.wake(
        Some(&plan),
        Some(&timing),
        datetime!(2026-11-03 02:30 UTC),
        &busy,
    );
    assert_eq!(
        action,
        Some(Action::Skip {
            slot: datetime!(2026-11-03 02:30 UTC),
            reason: "the previous automatic backup is still running"
        })
    );
    // The skipped slot is not made up for when the old backup ends.
    let idle = Facts {
        auto_in_progress: false,
        ..busy
    };
    assert_eq!(
        s.wake(
            Some(&plan),
            Some(&timing),
            datetime!(2026-11-03 04:00 UTC),
            &idle
        )
        .0,
        None
    );
}

#[test]
fn a_disabled_plan_or_no_plan_does_nothing() {
    let (mut plan, timing) = plan(SINCE, true);
    plan.enabled = false;
    let mut s = Scheduler::default();
    let now = datetime!(2026-11-06 02:30 UTC);
    assert_eq!(
        s.wake(Some(&plan), Some(&timing), now, &Facts::default()),
        (None, now + MAX_SLEEP)
    );
    assert_eq!(
        s.wake(None, None, now, &Facts::default()),
        (None, now + MAX_SLEEP)
    );
}

#[test]
fn a_changed_plan_promises_nothing_before_it_was_set() {
    let (plan_a, timing) = plan(SINCE, true);
    let mut s = Scheduler::default();
    s.wake(
        Some(&plan_a),
        Some(&timing),
        datetime!(2026-11-02 02:30 UTC),
        &Facts::default(),
    );
    // Re-enabled in the afternoon of the 5th after being off since the 2nd.
    let (plan_b, timing) = plan(datetime!(2026-11-05 15:00 UTC), true);
    s.reset();
    assert_eq!(
        s.wake(
            Some(&plan_b),
            Some(&timing),
            datetime!(2026-11-05 15:00 UTC),
            &Facts::default()
        )
        .0,
        None
    );
    let (action, _) = s.wake(
        Some(&plan_b),
        Some(&timing),
        datetime!(2026-11-06 02:30 UTC),
        &Facts::default(),
    );
    assert!(matches!(
        action,
        Some(Action::Fire {
            catch_up: false,
            ..
        })
    ));
}
