//! Fire times for every preset, month ends in leap and common years, and
//! both daylight-saving transitions in two zones.

use berkut_proto::manifest::Scope;
use time::macros::datetime;

use super::*;

fn spec(
    preset: Preset,
    at: Option<&str>,
    weekday: Option<&str>,
    tz: &str,
    cron: Option<&str>,
) -> PlanSpec {
    PlanSpec {
        preset,
        at: at.map(str::to_owned),
        weekday: weekday.map(str::to_owned),
        timezone: Some(tz.to_owned()),
        cron: cron.map(str::to_owned),
        scope: Scope::Full,
        include_files: false,
        retention_days: 30,
        keep_last_successful: 7,
        catch_up: true,
    }
}

fn timing(preset: Preset, at: &str, tz: &str) -> Timing {
    Timing::from_spec(&spec(preset, Some(at), None, tz, None))
        .unwrap()
        .0
}

/// All fire times in [from, to).
fn fires(t: &Timing, from: OffsetDateTime, to: OffsetDateTime) -> Vec<OffsetDateTime> {
    let mut out = Vec::new();
    let mut cursor = from - time::Duration::nanoseconds(1);
    while let Some(next) = t.next_after(cursor) {
        if next >= to {
            break;
        }
        out.push(next);
        cursor = next;
    }
    out
}

#[test]
fn daily_fires_every_day_at_the_local_time() {
    let t = timing(Preset::Daily, "02:30", "Europe/Berlin");
    // Winter: UTC+1.
    assert_eq!(
        t.next_after(datetime!(2026-01-10 00:00 UTC)),
        Some(datetime!(2026-01-10 01:30 UTC))
    );
    assert_eq!(
        t.next_after(datetime!(2026-01-10 01:30 UTC)),
        Some(datetime!(2026-01-11 01:30 UTC))
    );
    // Summer: UTC+2.
    assert_eq!(
        t.next_after(datetime!(2026-07-10 00:00 UTC)),
        Some(datetime!(2026-07-10 00:30 UTC))
    );
    assert_eq!(
        t.last_at_or_before(datetime!(2026-07-10 00:30 UTC)),
        Some(datetime!(2026-07-10 00:30 UTC))
    );
    assert_eq!(
        t.last_at_or_before(datetime!(2026-07-10 00:29 UTC)),
        Some(datetime!(2026-07-09 00:30 UTC))
    );
}

#[test]
fn weekly_fires_on_its_weekday() {
    let t = Timing::from_spec(&spec(
        Preset::Weekly,
        Some("23:15"),
        Some("Fri"),
        "UTC",
        None,
    ))
    .unwrap()
    .0;
    // 2026-11-20 is a Friday.
    assert_eq!(
        t.next_after(datetime!(2026-11-18 12:00 UTC)),
        Some(datetime!(2026-11-20 23:15 UTC))
    );
    assert_eq!(
        t.next_after(datetime!(2026-11-20 23:15 UTC)),
        Some(datetime!(2026-11-27 23:15 UTC))
    );
    assert_eq!(
        t.period_after(datetime!(2026-11-18 12:00 UTC)),
        Some(time::Duration::days(7))
    );
}

#[test]
fn monthly_start_and_end_follow_the_calendar() {
    let start = timing(Preset::MonthlyStart, "00:05", "UTC");
    assert_eq!(
        start.next_after(datetime!(2026-01-15 00:00 UTC)),
        Some(datetime!(2026-02-01 00:05 UTC))
    );
    assert_eq!(
        start.next_after(datetime!(2026-12-31 23:59 UTC)),
        Some(datetime!(2027-01-01 00:05 UTC))
    );

    let end = timing(Preset::MonthlyEnd, "22:00", "UTC");
    // Common year: 28 February. Leap year: 29 February.
    assert_eq!(
        end.next_after(datetime!(2027-02-01 00:00 UTC)),
        Some(datetime!(2027-02-28 22:00 UTC))
    );
    assert_eq!(
        end.next_after(datetime!(2028-02-01 00:00 UTC)),
        Some(datetime!(2028-02-29 22:00 UTC))
    );
    assert_eq!(
        end.next_after(datetime!(2028-02-29 22:00 UTC)),
        Some(datetime!(2028-03-31 22:00 UTC))
    );
    assert_eq!(
        end.next_after(datetime!(2026-04-01 00:00 UTC)),
        Some(datetime!(2026-04-30 22:00 UTC))
    );
    assert_eq!(
        end.next_after(datetime!(2100-02-01 00:00 UTC)),
        Some(datetime!(2100-02-28 22:00 UTC)),
        "2100 is no leap year"
    );
}

/// Spring forward: 02:30 does not exist; the plan fires once, at 03:00
/// local, the first valid instant.
#[test]
fn spring_forward_fires_once_at_the_first_valid_instant() {
    for (zone, day_start, gap_end, prev_day_fire, next_day_fire) in [
        // Europe/Berlin, 2026-03-29: 02:00 CET becomes 03:00 CEST (01:00 UTC).
        (
            "Europe/Berlin",
            datetime!(2026-03-28 12:00 UTC),
            datetime!(2026-03-29 01:00 UTC),
            datetime!(2026-03-28 01:30 UTC),
            datetime!(2026-03-30 00:30 UTC),
        ),
        // America/New_York, 2026-03-08: 02:00 EST becomes 03:00 EDT (07:00 UTC).
        (
            "America/New_York",
            datetime!(2026-03-07 12:00 UTC),
            datetime!(2026-03-08 07:00 UTC),
            datetime!(2026-03-07 07:30 UTC),
            datetime!(2026-03-09 06:30 UTC),
        ),
    ] {
        let t = timing(Preset::Daily, "02:30", zone);
        let got = fires(
            &t,
            day_start - time::Duration::days(1),
            day_start + time::Duration::days(2),
        );
        assert_eq!(got, vec![prev_day_fire, gap_end, next_day_fire], "{zone}");
    }
}

/// Fall back: 01:30 happens twice; the plan fires once, at the first.
#[test]
fn fall_back_fires_once_not_twice() {
    for (zone, day, first, next_day) in [
        // Europe/Berlin, 2026-10-25: 03:00 CEST becomes 02:00 CET; 02:30 is
        // there twice (00:30 and 01:30 UTC).
        (
            "Europe/Berlin",
            "02:30",
            datetime!(2026-10-25 00:30 UTC),
            datetime!(2026-10-26 01:30 UTC),
        ),
        // America/New_York, 2026-11-01: 02:00 EDT becomes 01:00 EST; 01:30
        // is there twice (05:30 and 06:30 UTC).
        (
            "America/New_York",
            "01:30",
            datetime!(2026-11-01 05:30 UTC),
            datetime!(2026-11-02 06:30 UTC),
        ),
    ] {
        let t = timing(Preset::Daily, day, zone);
        let got = fires(
            &t,
            first - time::Duration::hours(6),
            first + time::Duration::hours(30),
        );
        assert_eq!(got, vec![first, next_day], "{zone}");
    }
    // A 02:30 plan in New York is untouched by the fall-back hour.
    let t = timing(Preset::Daily, "02:30", "America/New_York");
    assert_eq!(
        fires(
            &t,
            datetime!(2026-10-31 12:00 UTC),
            datetime!(2026-11-02 12:00 UTC)
        ),
        vec![
            datetime!(2026-11-01 07:30 UTC),
            datetime!(2026-11-02 07:30 UTC)
        ]
    );
}

#[test]
fn cron_plans_and_canonical_forms() {
    let (t, canonical) = Timing::from_spec(&spec(
        Preset::Cron,
        None,
        None,
        "UTC",
        Some(" */15 * * * * "),
    ))
    .unwrap();
    assert_eq!(canonical.cron.as_deref(), Some("*/15 * * * *"));
    assert_eq!(
        t.next_after(datetime!(2026-11-21 10:07 UTC)),
        Some(datetime!(2026-11-21 10:15 UTC))
    );
    assert_eq!(
        t.period_after(datetime!(2026-11-21 10:07 UTC)),
        Some(time::Duration::minutes(15))
    );

    let (_, canonical) = Timing::from_spec(&spec(
        Preset::Weekly,
        Some("07:05"),
        Some("MONDAY"),
        "Asia/Almaty",
        None,
    ))
    .unwrap();
    assert_eq!(
        canonical,
        Canonical {
            at: Some("07:05".into()),
            weekday: Some("monday".into()),
            timezone: "Asia/Almaty".into(),
            cron: None
        }
    );
}

/// A weekdays-only plan: over the weekend the gap it is in is three days,
/// and that is the period the RPO watch must allow.
#[test]
fn the_period_is_the_gap_the_plan_is_in() {
    let (t, _) =
        Timing::from_spec(&spec(Preset::Cron, None, None, "UTC", Some("0 2 * * 1-5"))).unwrap();
    // Saturday 2026-11-21, between Friday's and Monday's runs.
    assert_eq!(
        t.period_around(datetime!(2026-11-21 12:00 UTC)),
        Some(time::Duration::days(3))
    );
    // Wednesday.
    assert_eq!(
        t.period_around(datetime!(2026-11-18 12:00 UTC)),
        Some(time::Duration::days(1))
    );
}

#[test]
fn bad_plans_are_refused_with_a_reason() {
    let cases = [
        spec(Preset::Daily, Some("24:00"), None, "UTC", None),
        spec(Preset::Daily, Some("7:5"), None, "UTC", None),
        spec(Preset::Daily, Some("ab:cd"), None, "UTC", None),
        spec(Preset::Daily, Some("+1:30"), None, "UTC", None),
        spec(Preset::Daily, Some("-1:30"), None, "UTC", None),
        spec(Preset::Daily, None, None, "UTC", None),
        spec(Preset::Daily, Some("02:00"), None, "Mars/Olympus", None),
        spec(Preset::Daily, Some("02:00"), Some("monday"), "UTC", None),
        spec(Preset::Weekly, Some("02:00"), None, "UTC", None),
        spec(Preset::Weekly, Some("02:00"), Some("someday"), "UTC", None),
        spec(Preset::Cron, None, None, "UTC", None),
        spec(Preset::Cron, None, None, "UTC", Some("not a cron")),
        spec(Preset::Cron, None, None, "UTC", Some("0 0 30 2 *")),
        spec(Preset::Cron, None, None, "UTC", Some("* * * * * *")),
        spec(Preset::Cron, Some("02:00"), None, "UTC", Some("* * * * *")),
        spec(
            Preset::MonthlyEnd,
            Some("02:00"),
            None,
            "UTC",
            Some("* * * * *"),
        ),
    ];
    for case in cases {
        let err = Timing::from_spec(&case).expect_err(&format!("{case:?} was accepted"));
        assert!(!err.is_empty());
    }
}
