//! `berkutctl plan set|show|enable|disable`.

use crate::helpers::*;

/// A valid plan: daily at 01:00 UTC.
const DAILY_AT_ONE: [&str; 8] = [
    "plan",
    "set",
    "--preset",
    "daily",
    "--at",
    "01:00",
    "--timezone",
    "UTC",
];

#[test]
fn plans_are_set_shown_and_toggled() {
    let env = env();
    let none = ctl(&env.daemon, &["plan", "show"]).ok();
    assert!(
        none.stdout.contains("no backup plan is set"),
        "{}",
        none.stdout
    );
    let disable = ctl(&env.daemon, &["plan", "disable"]);
    assert_eq!(disable.code, 4, "{}", disable.stderr);

    let set = ctl(
        &env.daemon,
        &[
            "plan",
            "set",
            "--preset",
            "weekly",
            "--at",
            "02:30",
            "--weekday",
            "friday",
            "--timezone",
            "America/New_York",
            "--retention-days",
            "10",
            "--keep-last",
            "3",
            "--json",
        ],
    )
    .ok()
    .last_json();
    for field in [
        "enabled",
        "preset",
        "at",
        "weekday",
        "timezone",
        "cron",
        "retention_days",
        "keep_last_successful",
        "next_run",
        "last_success",
    ] {
        assert!(set.get(field).is_some(), "plan JSON lacks {field}: {set}");
    }
    assert_eq!(set["preset"], "weekly");
    assert_eq!(set["weekday"], "friday");
    assert_eq!(set["keep_last_successful"], 3);
    assert!(set["next_run"].as_str().unwrap().len() >= 20);

    let human = ctl(&env.daemon, &["plan", "show"]).ok().stdout;
    assert!(
        human.contains("weekly on friday at 02:30 (America/New_York)"),
        "{human}"
    );
    assert!(human.contains("10 days"), "{human}");

    let off = ctl(&env.daemon, &["plan", "disable", "--json"])
        .ok()
        .last_json();
    assert_eq!(off["enabled"], false);
    assert!(off["next_run"].is_null());
    let on = ctl(&env.daemon, &["plan", "enable", "--json"])
        .ok()
        .last_json();
    assert_eq!(on["enabled"], true);

    let cron = ctl(
        &env.daemon,
        &[
            "plan",
            "set",
            "--cron",
            "15 */6 * * *",
            "--timezone",
            "UTC",
            "--json",
        ],
    )
    .ok()
    .last_json();
    assert_eq!(cron["preset"], "cron");
    assert_eq!(cron["cron"], "15 */6 * * *");
}

#[test]
fn bad_plans_are_refused_and_the_old_one_stays() {
    let env = env();
    ctl(&env.daemon, &DAILY_AT_ONE).ok();
    for args in [
        &["plan", "set", "--preset", "daily", "--at", "1am"][..],
        &["plan", "set", "--preset", "weekly", "--at", "01:00"],
        &[
            "plan",
            "set",
            "--preset",
            "daily",
            "--at",
            "01:00",
            "--timezone",
            "Nowhere/Town",
        ],
        &["plan", "set", "--cron", "every day"],
    ] {
        let run = ctl(&env.daemon, args);
        assert_eq!(run.code, 9, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains("invalid"), "{}", run.stderr);
    }
    let usage = ctl(
        &env.daemon,
        &["plan", "set", "--preset", "hourly", "--at", "01:00"],
    );
    assert_eq!(usage.code, 2, "{}", usage.stderr);
    let shown = ctl(&env.daemon, &["plan", "show", "--json"])
        .ok()
        .last_json();
    assert_eq!(shown["at"], "01:00");
}

#[test]
fn status_shows_the_recovery_point_watch() {
    let env = env();
    ctl(&env.daemon, &DAILY_AT_ONE).ok();
    let status = ctl(&env.daemon, &["status"]).ok().stdout;
    assert!(status.contains("rpo:       BREACHED"), "{status}");
    ctl(
        &env.daemon,
        &["backup", "create", "--scope", "schema", "--wait"],
    )
    .ok();
    let status = ctl(&env.daemon, &["status", "--json"]).ok().last_json();
    assert_eq!(status["rpo_breached"], false);
    assert!(status["newest_success_age_seconds"].is_u64());
}
