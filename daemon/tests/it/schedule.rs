//! The scheduler and retention against a real daemon and database: a
//! per-minute plan really fires; a restart after a missed slot runs one
//! catch-up and a restart after a covered slot runs nothing; retention keeps
//! pinned and newest backups, and a backup until its off-site copy is made;
//! status flags a stale newest backup.

use berkut_proto::manifest::{Origin, Scope};
use berkut_proto::wire::{ops, BackupStatus, Operation, Reply};
use time::OffsetDateTime;

use crate::helpers::*;

fn scheduled(
    records: &[berkut_proto::wire::BackupRecord],
) -> Vec<&berkut_proto::wire::BackupRecord> {
    records
        .iter()
        .filter(|r| r.origin == Origin::Scheduled)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_minute_plan_really_fires() {
    let pg = small_cluster();
    let daemon = daemon_for(&pg).start();
    let mut client = daemon.client().await;
    let set = plan(client.call(Operation::PlanSet(ops::PlanSet { plan: spec(serde_json::json!({"preset": "cron", "cron": "* * * * *", "timezone": "UTC", "scope": "database"})) })).await);
    let next = set.next_run.unwrap();
    assert!(next - OffsetDateTime::now_utc() <= time::Duration::minutes(1));
    let record = berkut_testkit::wait_for_async(
        "a scheduled backup to succeed",
        std::time::Duration::from_secs(150),
        || async {
            let mut client = daemon.client().await;
            let all = list(client.call(Operation::list_first_page()).await);
            scheduled(&all)
                .into_iter()
                .find(|r| r.status == BackupStatus::Succeeded)
                .cloned()
        },
    )
    .await;
    assert_eq!(record.scope, Scope::Database);
    assert!(
        record.created_at >= next,
        "fired at {} before its slot {next}",
        record.created_at
    );
    assert!(daemon.archive_path(record.id.as_str()).exists());
    let shown = plan(client.call(Operation::PlanShow(ops::PlanShow {})).await);
    assert_eq!(shown.last_success, Some(record.created_at));
}

/// Writes a plan file as if it had been set `days_ago`: a daily plan at a
/// time of day that has already passed today.
fn write_old_plan(state_dir: &std::path::Path, days_ago: i64) -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    let slot_today = (now - time::Duration::minutes(5))
        .replace_second(0)
        .unwrap()
        .replace_nanosecond(0)
        .unwrap();
    let at = format!("{:02}:{:02}", slot_today.hour(), slot_today.minute());
    let plan = serde_json::json!({
        "plan_version": 1, "enabled": true, "preset": "daily", "at": at, "weekday": null,
        "timezone": "UTC", "cron": null, "scope": "database", "include_files": false,
        "retention_days": 0, "keep_last_successful": 7, "catch_up": true,
        "effective_since": (now - time::Duration::days(days_ago)).format(&time::format_description::well_known::Rfc3339).unwrap()
    });
    std::fs::create_dir_all(state_dir).unwrap();
    std::fs::write(
        state_dir.join("plan.json"),
        serde_json::to_vec_pretty(&plan).unwrap(),
    )
    .unwrap();
    // When the clock is within five minutes of midnight the slot is
    // yesterday's; the tests only need it to be in the past.
    if slot_today > now {
        slot_today - time::Duration::days(1)
    } else {
        slot_today
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_after_a_missed_slot_runs_exactly_one_catch_up() {
    let pg = small_cluster();
    let mut daemon = daemon_for(&pg).start();
    daemon.stop();
    write_old_plan(&daemon.state_dir, 3);
    daemon.restart();
    berkut_testkit::wait_for("the catch-up to be announced", LONG, || {
        daemon.log().contains("catch-up").then_some(())
    });
    let record = berkut_testkit::wait_for_async("the catch-up backup to finish", LONG, || async {
        let all = list(
            daemon
                .client()
                .await
                .call(Operation::list_first_page())
                .await,
        );
        let found = scheduled(&all)
            .into_iter()
            .find(|r| r.status.is_finished())
            .cloned();
        found
    })
    .await;
    assert_eq!(record.status, BackupStatus::Succeeded, "{record:?}");
    // Exactly one, though three slots were missed.
    berkut_testkit::wait_for("the scheduler to settle", LONG, || {
        daemon.log().contains("backup plan in force").then_some(())
    });
    let all = list(
        daemon
            .client()
            .await
            .call(Operation::list_first_page())
            .await,
    );
    assert_eq!(scheduled(&all).len(), 1, "{all:?}");

    // Restarting again: the slot is now covered, so nothing runs.
    daemon.stop();
    let log_before = daemon.log().len();
    daemon.restart();
    berkut_testkit::wait_for("the scheduler's first look", LONG, || {
        daemon.log()[log_before..]
            .contains("backup plan in force")
            .then_some(())
    });
    let all = list(
        daemon
            .client()
            .await
            .call(Operation::list_first_page())
            .await,
    );
    assert_eq!(scheduled(&all).len(), 1, "a needless backup ran: {all:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_set_after_the_slot_promises_nothing_for_it() {
    let pg = small_cluster();
    let mut daemon = daemon_for(&pg).start();
    daemon.stop();
    // Set "now": today's slot passed before the plan existed.
    write_old_plan(&daemon.state_dir, 0);
    daemon.restart();
    berkut_testkit::wait_for("the scheduler's first look", LONG, || {
        daemon.log().contains("backup plan in force").then_some(())
    });
    assert!(list(
        daemon
            .client()
            .await
            .call(Operation::list_first_page())
            .await
    )
    .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_keeps_pinned_and_newest_backups() {
    let pg = small_cluster();
    let mut daemon = daemon_for(&pg).start();
    let mut client = daemon.client().await;
    let old_pinned = backup_now(&mut client, Scope::Schema).await;
    let old = backup_now(&mut client, Scope::Schema).await;
    let old_failed = backup_now(&mut client, Scope::Schema).await;
    client
        .call(Operation::BackupPin(ops::BackupPin {
            id: old_pinned.id.clone(),
        }))
        .await
        .unwrap();
    daemon.stop();
    // Age the three by ten days in the catalogue, and make one of them a
    // failure, as if they had been taken long ago.
    age_catalogue(&daemon, 10, |entry| {
        if entry["id"] == old_failed.id.as_str() {
            entry["state"]["status"] = "failed".into();
            entry["state"]["failure"] = serde_json::json!({"code": "internal", "reason": "test"});
            entry["archive"] = serde_json::Value::Null;
            std::fs::remove_file(daemon.archive_path(old_failed.id.as_str())).unwrap();
        }
    });
    daemon.restart();
    let mut client = daemon.client().await;
    plan(client.call(Operation::PlanSet(ops::PlanSet { plan: spec(serde_json::json!({"preset": "monthly-end", "at": "04:00", "timezone": "UTC", "retention_days": 1, "keep_last_successful": 1})) })).await);
    // A new good backup triggers retention.
    let fresh = backup_now(&mut client, Scope::Schema).await;
    let remaining: Vec<_> = list(client.call(Operation::list_first_page()).await)
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(
        remaining,
        vec![fresh.id.clone(), old_pinned.id.clone()],
        "old {} and failed {} should be gone",
        old.id,
        old_failed.id
    );
    assert!(!daemon.archive_path(old.id.as_str()).exists());
    assert!(daemon.archive_path(old_pinned.id.as_str()).exists());
    assert!(daemon.log().contains("retention deleted a backup"));
    // Unpinned, it goes at the next retention run.
    let unpinned = backup(
        client
            .call(Operation::BackupUnpin(ops::BackupUnpin {
                id: old_pinned.id.clone(),
            }))
            .await,
    );
    assert!(!unpinned.pinned);
    backup_now(&mut client, Scope::Schema).await;
    let remaining = list(client.call(Operation::list_first_page()).await);
    assert!(remaining.iter().all(|r| r.id != old_pinned.id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_flags_a_missing_or_stale_newest_backup() {
    let pg = small_cluster();
    let daemon = daemon_for(&pg).start();
    let mut client = daemon.client().await;
    let status = |r: Result<Reply, _>| match r {
        Ok(Reply::Status { status }) => status,
        other => panic!("{other:?}"),
    };
    let s = status(client.call(Operation::Status(ops::Status {})).await);
    assert_eq!(
        (s.rpo_limit_seconds, s.rpo_breached),
        (None, false),
        "no plan, no objective"
    );
    plan(
        client
            .call(Operation::PlanSet(ops::PlanSet {
                plan: spec(
                    serde_json::json!({"preset": "daily", "at": "02:00", "timezone": "UTC"}),
                ),
            }))
            .await,
    );
    let s = status(client.call(Operation::Status(ops::Status {})).await);
    assert_eq!(
        s.rpo_limit_seconds,
        Some(24 * 3600 + 144 * 60),
        "a day plus a tenth"
    );
    assert!(s.rpo_breached, "no backup at all breaches the objective");
    backup_now(&mut client, Scope::Schema).await;
    let s = status(client.call(Operation::Status(ops::Status {})).await);
    assert!(!s.rpo_breached);
    assert!(s.newest_success_age_seconds.unwrap() < 600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_drops_rollback_databases_of_old_restores() {
    let pg = small_cluster();
    let mut daemon = daemon_for(&pg).start();
    let mut client = daemon.client().await;
    let backup = backup_now(&mut client, Scope::Database).await;
    let restore = restored(client.call(restore_op(&backup.id, false, true)).await);
    let kept = restore
        .rollback_database
        .clone()
        .expect("a rollback database");
    assert!(databases(&pg).contains(&kept));
    daemon.stop();
    // The restore finished ten days ago.
    let path = daemon
        .state_dir
        .join("restores")
        .join(restore.restore_id.as_str())
        .join("summary.json");
    let mut summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let old = (OffsetDateTime::now_utc() - time::Duration::days(10))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    summary["record"]["finished_at"] = old.into();
    std::fs::write(&path, serde_json::to_vec_pretty(&summary).unwrap()).unwrap();
    daemon.restart();
    let mut client = daemon.client().await;
    plan(client.call(Operation::PlanSet(ops::PlanSet { plan: spec(serde_json::json!({"preset": "daily", "at": "04:00", "timezone": "UTC", "retention_days": 1, "keep_last_successful": 5})) })).await);
    backup_now(&mut client, Scope::Schema).await;
    berkut_testkit::wait_for("the rollback database to be dropped", LONG, || {
        (!databases(&pg).contains(&kept)).then_some(())
    });
    let shown = restored(
        client
            .call(Operation::RestoreStatus(ops::RestoreStatus {
                restore_id: restore.restore_id.clone(),
                wait: false,
            }))
            .await,
    );
    assert_eq!(shown.rollback_database, None);
    assert!(daemon
        .log()
        .contains("retention dropped a rollback database"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_keeps_a_backup_until_its_off_site_copy_is_made() {
    use crate::remote_copies::{daemon_with_remotes, show, wait_copy};
    use berkut_proto::wire::CopyState;
    let pg = small_cluster();
    let offsite = berkut_testkit::temp_dir("offsite-");
    // A file where the remote's directory should be: every copy fails.
    let blocked = offsite.path().join("not-a-directory");
    std::fs::write(&blocked, b"in the way").unwrap();
    let toml = |path: &std::path::Path| {
        format!(
            "[[remote]]\nname = \"disk\"\nkind = \"fs\"\npath = \"{}\"\nretention_days = 90\n",
            path.display()
        )
    };
    let (_conf, builder) = daemon_with_remotes(&pg, &toml(&blocked));
    let mut daemon = builder.start();
    let mut client = daemon.client().await;
    let old = backup_now(&mut client, Scope::Schema).await;
    wait_copy(&daemon, &old.id, "disk", "a failed copy", |c| {
        c.state == CopyState::Failed
    })
    .await;
    daemon.stop();
    age_catalogue(&daemon, 10, |_| {});
    daemon.restart();
    let mut client = daemon.client().await;
    plan(client.call(Operation::PlanSet(ops::PlanSet { plan: spec(serde_json::json!({"preset": "monthly-end", "at": "04:00", "timezone": "UTC", "retention_days": 1, "keep_last_successful": 1})) })).await);
    // A new good backup triggers retention: ten days old, past the plan's
    // one day, `old` would go; the remote keeps 90 days and has no copy.
    backup_now(&mut client, Scope::Schema).await;
    let line = berkut_testkit::wait_for("retention's word on the kept backup", LONG, || {
        daemon
            .log()
            .lines()
            .find(|l| l.contains("its off-site copy is not made yet"))
            .map(str::to_owned)
    });
    // The copy is between attempts, or in one.
    assert!(
        line.contains(old.id.as_str())
            && line.contains("disk")
            && ["failed", "uploading", "pending"]
                .iter()
                .any(|state| line.contains(state)),
        "{line}"
    );
    assert!(daemon.archive_path(old.id.as_str()).exists());
    let record = show(&mut client, &old.id).await;
    assert!(!record.remote_only, "{record:?}");
    assert!(!daemon.log().contains("retention deleted a backup"));

    // Once the remote takes the copy, the next pass deletes the archive;
    // the record stays, remote-only.
    drop(client);
    daemon.stop();
    std::fs::remove_file(&blocked).unwrap();
    std::fs::create_dir(&blocked).unwrap();
    // Its next attempt now, not after the backoff the failures built up.
    age_catalogue(&daemon, 0, |entry| {
        for copy in entry["copies"].as_array_mut().into_iter().flatten() {
            copy["next_attempt_at"] = serde_json::Value::Null;
        }
    });
    daemon.restart();
    wait_copy(&daemon, &old.id, "disk", "the copy", |c| {
        c.state == CopyState::Copied
    })
    .await;
    let mut client = daemon.client().await;
    backup_now(&mut client, Scope::Schema).await;
    berkut_testkit::wait_for("the archive to go", LONG, || {
        (!daemon.archive_path(old.id.as_str()).exists()).then_some(())
    });
    assert!(show(&mut client, &old.id).await.remote_only);
}
