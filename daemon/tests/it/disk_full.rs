//! Full disks, for real: a small tmpfs (the kit's `Tmpfs`, unmounted
//! whatever happens) as the backup directory or the state directory.
//! A backup that fills its directory fails with that as the reason; a
//! catalogue that cannot be written when a backup ends leaves no record
//! `running` and no job held, and is written once there is room again.

use berkut_proto::manifest::Scope;
use berkut_proto::wire::{ops, BackupStatus, ErrorCode, Operation, Reply};
use berkut_testkit::{Gate, Tmpfs};

use crate::helpers::*;

/// A cluster whose database `app` dumps to several MiB even compressed.
fn bulky_cluster() -> berkut_testkit::PgCluster {
    let pg = small_cluster();
    pg.psql(
        "app",
        "CREATE TABLE bulk AS SELECT g, md5(random()::text) || md5(random()::text) AS v \
         FROM generate_series(1, 150000) g;",
    )
    .unwrap();
    pg
}

/// Before the fix the reason was `pg_dump failed (exit status 1)`: the
/// daemon stopped pg_dump because the write failed, then reported the
/// exit it had caused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_backup_directory_is_the_reason_a_backup_fails() {
    let Some(disk) = Tmpfs::mount(1 << 20) else {
        return;
    };
    let pg = bulky_cluster();
    let daemon = daemon_for(&pg)
        .env("BERKUT_BACKUP_PATH", disk.path().display().to_string())
        .start();
    let mut client = daemon.client().await;
    let record = backup_now(&mut client, Scope::Database).await;
    assert_eq!(record.status, BackupStatus::Failed, "{record:?}");
    let failure = record.failure.unwrap();
    assert_eq!(failure.code, ErrorCode::Unavailable);
    assert!(
        failure
            .reason
            .starts_with("the backup directory is full: no space left on device"),
        "{}",
        failure.reason
    );
    assert_safe(&failure.reason);
    let left: Vec<_> = std::fs::read_dir(disk.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        left.is_empty(),
        "the partial archive was not removed: {left:?}"
    );
}

/// The state directory fills while a backup runs, so its outcome cannot
/// be written. Before the fix the record stayed `running` until a restart
/// and the waiting client got `internal`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_catalogue_leaves_no_backup_running() {
    let Some(disk) = Tmpfs::mount(2 << 20) else {
        return;
    };
    let pg = small_cluster();
    let bin = berkut_testkit::temp_dir("fake-");
    let gate = Gate::new(bin.path(), "gate");
    let fake = gate.gated_pg_dump(bin.path(), "pg_dump");
    let state = disk.path().join("state");
    let daemon = daemon_for(&pg)
        .pg_dump(&fake)
        .env("BERKUT_STATE_DIR", state.display().to_string())
        .start();
    let mut client = daemon.client().await;
    let waiter = {
        let mut waiting = daemon.client().await;
        tokio::spawn(async move { waiting.call(create_op("full", Scope::Database, true)).await })
    };
    wait_for_status(&mut client, 1, 0).await;
    let filler = disk.fill("filler");
    tokio::task::spawn_blocking(move || gate.open_forever())
        .await
        .unwrap();

    // The client hears the real outcome: the archive is in place.
    let record = backup(waiter.await.unwrap());
    assert_eq!(record.status, BackupStatus::Succeeded, "{record:?}");
    let shown = backup(
        client
            .call(Operation::BackupShow(ops::BackupShow {
                id: record.id.clone(),
            }))
            .await,
    );
    assert_eq!(shown.status, BackupStatus::Succeeded);
    let Ok(Reply::Status { status }) = client.call(Operation::Status(ops::Status {})).await else {
        panic!("no status")
    };
    assert_eq!((status.running, status.queued), (0, 0), "{status:?}");
    assert!(status.jobs.is_empty());
    assert!(daemon
        .log()
        .contains("could not be written to the catalogue"));

    // Room again: the catalogue is written without anyone asking.
    std::fs::remove_file(&filler).unwrap();
    let catalogue = state.join("catalogue.json");
    berkut_testkit::wait_for("the catalogue to be written", LONG * 2, || {
        let text = std::fs::read_to_string(&catalogue).ok()?;
        let value: serde_json::Value = serde_json::from_str(&text).ok()?;
        value["backups"]
            .as_array()?
            .iter()
            .any(|b| b["id"] == record.id.as_str() && b["state"]["status"] == "succeeded")
            .then_some(())
    });
    // And the backup is an ordinary one: it can be deleted.
    assert!(matches!(
        client
            .call(Operation::BackupDelete(ops::BackupDelete {
                id: record.id.clone()
            }))
            .await,
        Ok(Reply::Deleted { .. })
    ));
}
