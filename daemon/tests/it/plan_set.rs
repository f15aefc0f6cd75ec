//! `plan_set`, `plan_show`, `plan_enable`, `plan_disable`: validation,
//! persistence across restarts, and the computed next run.

use berkut_proto::wire::{ops, ErrorCode, Operation, Preset, Reply};
use chrono::{Datelike, TimeZone, Timelike};

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_is_validated_kept_and_shown_with_its_next_run() {
    let pg = small_cluster();
    let mut daemon = daemon_for(&pg).start();
    let mut client = daemon.client().await;
    let none = plan(client.call(Operation::PlanShow(ops::PlanShow {})).await);
    assert!(!none.enabled && none.preset.is_none() && none.next_run.is_none());
    let err = server_error(client.call(Operation::PlanEnable(ops::PlanEnable {})).await);
    assert_eq!(err.code, ErrorCode::NotFound);

    let set = plan(client.call(Operation::PlanSet(ops::PlanSet { plan: spec(serde_json::json!({
        "preset": "weekly", "at": "03:15", "weekday": "Sun", "timezone": "Europe/Berlin",
        "retention_days": 14, "keep_last_successful": 4
    })) })).await);
    assert!(set.enabled);
    assert_eq!(set.preset, Some(Preset::Weekly));
    assert_eq!(set.weekday.as_deref(), Some("sunday"));
    assert_eq!((set.retention_days, set.keep_last_successful), (14, 4));
    let next = set.next_run.expect("a next run");
    let local = chrono_tz::Europe::Berlin
        .timestamp_opt(next.unix_timestamp(), 0)
        .unwrap();
    assert_eq!(
        (local.weekday(), local.hour(), local.minute()),
        (chrono::Weekday::Sun, 3, 15)
    );
    assert!(next > time::OffsetDateTime::now_utc());

    // Bad plans are refused and the old one stays.
    for bad in [
        serde_json::json!({"preset": "daily", "at": "25:00", "timezone": "UTC"}),
        serde_json::json!({"preset": "daily", "at": "02:00", "timezone": "Atlantis/Capital"}),
        serde_json::json!({"preset": "weekly", "at": "02:00", "weekday": "caturday", "timezone": "UTC"}),
        serde_json::json!({"preset": "cron", "cron": "61 * * * *", "timezone": "UTC"}),
        serde_json::json!({"preset": "daily", "at": "02:00", "keep_last_successful": 0}),
    ] {
        let err = server_error(
            client
                .call(Operation::PlanSet(ops::PlanSet {
                    plan: spec(bad.clone()),
                }))
                .await,
        );
        assert_eq!(err.code, ErrorCode::Invalid, "{bad}: {err:?}");
    }
    assert_eq!(
        plan(client.call(Operation::PlanShow(ops::PlanShow {})).await)
            .weekday
            .as_deref(),
        Some("sunday")
    );

    let off = plan(
        client
            .call(Operation::PlanDisable(ops::PlanDisable {}))
            .await,
    );
    assert!(!off.enabled && off.next_run.is_none());

    // The plan survives a restart, disabled as it was left.
    daemon.stop();
    daemon.restart();
    let mut client = daemon.client().await;
    let again = plan(client.call(Operation::PlanShow(ops::PlanShow {})).await);
    assert_eq!(
        (again.enabled, again.preset, again.at.as_deref()),
        (false, Some(Preset::Weekly), Some("03:15"))
    );
    let on = plan(client.call(Operation::PlanEnable(ops::PlanEnable {})).await);
    assert!(on.enabled && on.next_run.is_some());
    let text = std::fs::read_to_string(daemon.state_dir.join("plan.json")).unwrap();
    assert!(text.contains("\"enabled\": true"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_plan_file_stops_the_start_with_a_reason() {
    let pg = small_cluster();
    let mut daemon = daemon_for(&pg).start();
    daemon.stop();
    std::fs::write(
        daemon.state_dir.join("plan.json"),
        "{\"plan_version\": 1, \"enabled\": tru",
    )
    .unwrap();
    let out = std::process::Command::new(berkut_testkit::workspace_bin("berkutd"))
        .env("BERKUT_SOCKET", &daemon.socket)
        .env("BERKUT_STATE_DIR", &daemon.state_dir)
        .env("BERKUT_BACKUP_PATH", &daemon.backup_dir)
        .env("BERKUT_DATABASE_URL", pg.url("app"))
        .env("BERKUT_BACKUP_ENCRYPTION_KEY", &*daemon.key.to_base64())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("plan"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The plan: `retention_days = 4294967295` was accepted, the next
/// backup panicked in retention (its job never released, so the backup
/// could not be deleted), and after a restart the scheduler panicked at
/// every start. Now `plan_set` refuses every out-of-range value with its
/// range, and a `plan.json` holding one is brought into range at start
/// (towards keeping more), with an error in the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_range_plan_values_are_refused_and_a_stored_one_stops_nothing() {
    let pg = small_cluster();
    let mut daemon = daemon_for(&pg).start();
    let mut client = daemon.client().await;
    let daily = serde_json::json!({"preset": "daily", "at": "03:00", "timezone": "UTC"});
    let with = |field: &str, value: serde_json::Value| {
        let mut j = daily.clone();
        j[field] = value;
        Operation::PlanSet(ops::PlanSet { plan: spec(j) })
    };
    for (field, value, range) in [
        (
            "retention_days",
            serde_json::json!(u32::MAX),
            "0 (keep everything) to 36500",
        ),
        (
            "retention_days",
            serde_json::json!(36_501),
            "0 (keep everything) to 36500",
        ),
        (
            "keep_last_successful",
            serde_json::json!(10_001),
            "1 to 10000",
        ),
        (
            "timezone",
            serde_json::json!("Europe/".repeat(20)),
            "64 characters",
        ),
        ("cron", serde_json::json!("*".repeat(257)), "256 characters"),
    ] {
        let mut op = with(field, value);
        if field == "cron" {
            op = Operation::PlanSet(ops::PlanSet {
                plan: spec(serde_json::json!({"preset": "cron", "cron": "*".repeat(257)})),
            });
        }
        let err = server_error(client.call(op).await);
        assert_eq!(err.code, ErrorCode::Invalid, "{field}: {err:?}");
        assert!(err.message.contains(range), "{field}: {}", err.message);
        assert!(
            err.message.len() < 200,
            "{field}: the message repeats the value"
        );
    }
    let none = plan(client.call(Operation::PlanShow(ops::PlanShow {})).await);
    assert!(
        none.preset.is_none(),
        "nothing out of range was put in force"
    );

    // A plan stored by a version that did not check.
    plan(client.call(with("retention_days", 3.into())).await);
    daemon.stop();
    let path = daemon.state_dir.join("plan.json");
    let mut stored: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    stored["retention_days"] = u32::MAX.into();
    std::fs::write(&path, stored.to_string()).unwrap();
    daemon.restart();
    let mut client = daemon.client().await;
    let shown = plan(client.call(Operation::PlanShow(ops::PlanShow {})).await);
    assert_eq!(shown.retention_days, 36_500);
    assert!(shown.enabled && shown.next_run.is_some());
    assert!(daemon.log().contains("retention_days is out of range"));
    // A backup, and the retention after it, run without a panic; the job
    // is released, so the backup can be deleted.
    let made = backup_now(&mut client, berkut_proto::manifest::Scope::Database).await;
    assert_eq!(made.status, berkut_proto::wire::BackupStatus::Succeeded);
    assert!(matches!(
        client
            .call(Operation::BackupDelete(ops::BackupDelete {
                id: made.id.clone()
            }))
            .await,
        Ok(Reply::Deleted { .. })
    ));
    let Ok(Reply::Status { status }) = client.call(Operation::Status(ops::Status {})).await else {
        panic!("no status")
    };
    assert!(status.task_faults.is_empty(), "{status:?}");
    assert!(!daemon.log().contains("panicked"));
}
