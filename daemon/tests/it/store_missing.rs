//! Archives that are not where the catalogue says: a backup directory whose
//! mount is not up at start, an archive moved away. Such backups are
//! `missing`, never `failed`: not restorable, not deleted by retention or a
//! delete, and `succeeded` again once the archive is back and
//! authenticates (`store_rescan`, a restart, or an import of the file).
//! Most archives missing at once raise the store alarm.

use std::path::{Path, PathBuf};

use berkut_proto::ids::BackupId;
use berkut_proto::manifest::Scope;
use berkut_proto::wire::{ops, BackupRecord, BackupStatus, Client, Operation, Reply};

use crate::helpers::*;

async fn show(client: &mut Client, id: &BackupId) -> BackupRecord {
    backup(
        client
            .call(Operation::BackupShow(ops::BackupShow { id: id.clone() }))
            .await,
    )
}

/// Puts an empty directory where the backups were, as a mount point looks
/// before its file system is mounted; returns where the real one went.
fn unmount(daemon: &berkut_testkit::Daemon) -> PathBuf {
    let real = daemon.dir().join("backups.real");
    std::fs::rename(&daemon.backup_dir, &real).unwrap();
    std::fs::create_dir(&daemon.backup_dir).unwrap();
    std::fs::set_permissions(
        &daemon.backup_dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    real
}

/// Puts the real directory back ("the mount came up").
fn mount(daemon: &berkut_testkit::Daemon, real: &Path) {
    std::fs::remove_dir(&daemon.backup_dir).unwrap();
    std::fs::rename(real, &daemon.backup_dir).unwrap();
}

fn catalogue_statuses(daemon: &berkut_testkit::Daemon) -> Vec<String> {
    let text = std::fs::read_to_string(daemon.state_dir.join("catalogue.json")).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    value["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["state"]["status"].as_str().unwrap().to_owned())
        .collect()
}

/// The scenario: start on an empty directory, then with the real
/// one. Before the fix every record stayed `failed` for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_directory_that_is_not_mounted_marks_backups_missing_until_it_is() {
    let pg = small_cluster();
    let notify_dir = berkut_testkit::temp_dir("notify-");
    let mut notify = berkut_testkit::NotifySocket::bind(notify_dir.path());
    let mut daemon = daemon_for(&pg).notify(&notify).start();
    let mut client = daemon.client().await;
    let a = backup_now(&mut client, Scope::Database).await;
    let b = backup_now(&mut client, Scope::Database).await;
    daemon.stop();

    let real = unmount(&daemon);
    daemon.restart();
    let mut client = daemon.client().await;
    for original in [&a, &b] {
        let record = show(&mut client, &original.id).await;
        assert_eq!(record.status, BackupStatus::Missing, "{record:?}");
        assert_eq!(record.failure, None, "missing is not a failure");
        assert_eq!(record.sha256, original.sha256, "the archive's facts stay");
    }
    // Loudly: an error in the log, the alarm in status, a failing
    // `berkutctl status`; and the catalogue on disk is not rewritten.
    let st = status(&mut client).await;
    assert_eq!(st.missing, 2);
    let alarm = st.store_alarm.expect("the store alarm is on");
    assert!(alarm.contains("2 of 2"), "{alarm}");
    assert!(daemon
        .log()
        .lines()
        .any(|l| l.contains("ERROR") && l.contains("is it mounted")));
    let Run { code, stderr, .. } = ctl(&daemon, &["status"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("store alarm"), "{stderr}");
    assert_eq!(catalogue_statuses(&daemon), ["succeeded", "succeeded"]);
    // systemd's status line says so too.
    notify.wait_for("the alarm in the status line", LONG, |l| {
        l.starts_with("STATUS=idle; ALARM: 2 of 2 recorded archives are missing")
    });

    // Never restored: the refusal says why.
    let err = server_error(client.call(restore_op(&a.id, true, true)).await);
    assert!(err.message.contains("missing"), "{}", err.message);
    // Deleting a missing record removes the record only: the daemon does
    // not delete a file it cannot see.
    assert!(matches!(
        client
            .call(Operation::BackupDelete(ops::BackupDelete {
                id: b.id.clone()
            }))
            .await,
        Ok(Reply::Deleted { .. })
    ));

    // The mount comes up; a rescan finds the archives without a restart.
    mount(&daemon, &real);
    let Run { code, stderr, .. } = ctl(&daemon, &["store", "rescan"]);
    assert_eq!(code, 0, "{stderr}");
    let back = show(&mut client, &a.id).await;
    assert_eq!(back.status, BackupStatus::Succeeded, "{back:?}");
    assert_eq!(
        (back.finished_at, back.sha256.clone()),
        (a.finished_at, a.sha256.clone())
    );
    let readded = show(&mut client, &b.id).await;
    assert_eq!(
        readded.status,
        BackupStatus::Succeeded,
        "the deleted record's archive was kept and is listed again"
    );
    let st = status(&mut client).await;
    assert_eq!((st.missing, st.store_alarm), (0, None));
    assert_eq!(ctl(&daemon, &["status"]).code, 0);

    // The same across restarts: empty directory, then the real one.
    daemon.stop();
    let real = unmount(&daemon);
    daemon.restart();
    let mut client = daemon.client().await;
    assert_eq!(show(&mut client, &a.id).await.status, BackupStatus::Missing);
    daemon.stop();
    mount(&daemon, &real);
    daemon.restart();
    let mut client = daemon.client().await;
    assert_eq!(
        show(&mut client, &a.id).await.status,
        BackupStatus::Succeeded
    );
    assert_eq!(status(&mut client).await.store_alarm, None);
    let drill = restored(client.call(restore_op(&a.id, true, true)).await);
    assert_eq!(
        drill.status,
        berkut_proto::wire::RestoreStatus::Succeeded,
        "{drill:#?}"
    );
}

/// Moves every backup's times back by `days`, as if they had been made
/// then (the daemon reads time from the system clock).
fn age_catalogue(daemon: &berkut_testkit::Daemon, days: i64) {
    let path = daemon.state_dir.join("catalogue.json");
    let mut value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let shift = |v: &mut serde_json::Value| {
        let t = time::OffsetDateTime::parse(
            v.as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
            - time::Duration::days(days);
        *v = t
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
            .into();
    };
    for b in value["backups"].as_array_mut().unwrap() {
        for field in ["created_at", "started_at", "finished_at"] {
            if let Some(v) = b["state"].get_mut(field) {
                shift(v);
            }
        }
    }
    std::fs::write(&path, value.to_string()).unwrap();
}

/// One archive of three moved away (no alarm: one of many is an archive
/// gone, not a directory missing). Retention with keep 1 runs after a new
/// backup: it deletes the old succeeded ones, never the missing one, and
/// the missing one does not count among the kept. An import of the moved
/// file then brings the record back as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_never_deletes_a_missing_backup_and_an_import_brings_it_back() {
    let pg = small_cluster();
    let mut daemon = daemon_for(&pg).start();
    let mut client = daemon.client().await;
    let mut made = Vec::new();
    for _ in 0..4 {
        made.push(backup_now(&mut client, Scope::Database).await);
    }
    let gone = made[1].clone();
    daemon.stop();
    age_catalogue(&daemon, 40);
    let aside = daemon.dir().join("aside.bscc");
    std::fs::rename(daemon.archive_path(gone.id.as_str()), &aside).unwrap();
    daemon.restart();
    let mut client = daemon.client().await;
    assert_eq!(
        show(&mut client, &gone.id).await.status,
        BackupStatus::Missing
    );
    let st = status(&mut client).await;
    assert_eq!((st.missing, st.store_alarm), (1, None));

    let plan = spec(serde_json::json!({
        "preset": "daily", "at": "03:00", "timezone": "UTC",
        "retention_days": 30, "keep_last_successful": 1
    }));
    assert!(matches!(
        client.call(Operation::PlanSet(ops::PlanSet { plan })).await,
        Ok(Reply::Plan { .. })
    ));
    // A new good backup runs retention.
    let new = backup_now(&mut client, Scope::Database).await;
    let remaining = || async {
        let mut c = daemon.client().await;
        list(c.call(Operation::list_first_page()).await)
    };
    berkut_testkit::wait_for_async("retention to delete the old backups", LONG, || async {
        (remaining().await.len() == 2).then_some(())
    })
    .await;
    let left = remaining().await;
    let ids: Vec<&BackupId> = left.iter().map(|r| &r.id).collect();
    assert!(ids.contains(&&new.id), "{left:?}");
    assert!(ids.contains(&&gone.id), "the missing backup was deleted");
    for other in made.iter().filter(|r| r.id != gone.id) {
        assert!(!daemon.archive_path(other.id.as_str()).exists());
    }

    // Importing the same file restores the record (not a conflict).
    let bytes = std::fs::read(&aside).unwrap();
    let imported = backup(
        client
            .upload(bytes.len() as u64, bytes.as_slice(), |_| {})
            .await,
    );
    assert_eq!(imported.id, gone.id);
    assert_eq!(imported.status, BackupStatus::Succeeded);
    assert_eq!(imported.origin, gone.origin, "the record is the old one");
    assert_eq!(imported.sha256, gone.sha256);
    let st = status(&mut client).await;
    assert_eq!(st.missing, 0);
}

/// While most archives are missing (the store alarm), retention deletes
/// nothing at all, whatever the plan says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_is_suspended_while_the_store_alarm_is_on() {
    let pg = small_cluster();
    let mut daemon = daemon_for(&pg).start();
    let mut client = daemon.client().await;
    let a = backup_now(&mut client, Scope::Database).await;
    let b = backup_now(&mut client, Scope::Database).await;
    daemon.stop();
    age_catalogue(&daemon, 40);
    let real = unmount(&daemon);
    daemon.restart();
    let mut client = daemon.client().await;
    let plan = spec(serde_json::json!({
        "preset": "daily", "at": "03:00", "timezone": "UTC",
        "retention_days": 1, "keep_last_successful": 1
    }));
    assert!(matches!(
        client.call(Operation::PlanSet(ops::PlanSet { plan })).await,
        Ok(Reply::Plan { .. })
    ));
    // A new backup (into the empty directory) runs retention.
    let c = backup_now(&mut client, Scope::Database).await;
    assert_eq!(c.status, BackupStatus::Succeeded);
    berkut_testkit::wait_for("retention to run", LONG, || {
        daemon
            .log()
            .contains("retention is suspended")
            .then_some(())
    });
    let listed = list(client.call(Operation::list_first_page()).await);
    assert_eq!(listed.len(), 3, "{listed:?}");
    for id in [&a.id, &b.id] {
        assert_eq!(show(&mut client, id).await.status, BackupStatus::Missing);
    }
    daemon.stop();
    // The backup made meanwhile went into the mount point; put it aside
    // with the real archives, as an operator would.
    std::fs::rename(
        daemon.archive_path(c.id.as_str()),
        real.join(format!("{}.bscc", c.id)),
    )
    .unwrap();
    mount(&daemon, &real);
    assert!(daemon.archive_path(a.id.as_str()).exists());
    assert!(daemon.archive_path(b.id.as_str()).exists());
}
