//! Start-up recovery: a crash mid-backup, a lost or damaged catalogue, an
//! archive removed by hand. The catalogue always ends up agreeing with the
//! archives, and nothing that looks complete is left half-written.

use berkut_proto::manifest::Scope;
use berkut_proto::wire::{ops, BackupStatus, Operation};
use berkut_testkit::Gate;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_mid_backup_is_recorded_and_cleaned_up() {
    let pg = small_cluster();
    let bin = berkut_testkit::temp_dir("fake-");
    let gate = Gate::new(bin.path(), "gate");
    // pg_dump writes part of a dump and then waits, so the crash happens
    // with a partial archive on disk.
    let real = berkut_testkit::pg_bin_dir().join("pg_dump");
    let fake = berkut_testkit::fake_pg_dump(
        bin.path(),
        "pg_dump",
        &format!(
            "printf 'PGDMP'; head -c 2000000 /dev/zero\n{}\nexec '{}' \"$@\"",
            gate.wait_snippet(),
            real.display()
        ),
    );
    let mut daemon = daemon_for(&pg).pg_dump(&fake).start();
    let mut client = daemon.client().await;
    let running = backup(
        client
            .call(create_op("crash", Scope::Database, false))
            .await,
    );
    wait_for_status(&mut client, 1, 0).await;
    berkut_testkit::wait_for("a partial archive", LONG, || {
        daemon
            .backup_files()
            .iter()
            .any(|f| f.ends_with(".partial"))
            .then_some(())
    });

    daemon.kill();
    daemon.restart();
    assert_no_partials(&daemon);
    let mut client = daemon.client().await;
    let record = backup(
        client
            .call(Operation::BackupShow(ops::BackupShow {
                id: running.id.clone(),
            }))
            .await,
    );
    assert_eq!(record.status, BackupStatus::Failed);
    assert!(record.failure.unwrap().reason.contains("interrupted"));
    assert!(daemon.log().contains("removed partial archives"));
    // The orphaned pg_dump died with the daemon; open the gate in case it
    // did not, so no process outlives the test.
    gate.open_forever();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_or_damaged_catalogue_is_rebuilt_from_the_archives() {
    let pg = small_cluster();
    let mut daemon = daemon_for(&pg).start();
    let mut client = daemon.client().await;
    let a = backup(client.call(create_op("a", Scope::Database, true)).await);
    let b = backup(client.call(create_op("b", Scope::Full, true)).await);
    let before = list(client.call(Operation::list_first_page()).await);
    let catalogue = daemon.state_dir.join("catalogue.json");

    daemon.stop();
    std::fs::remove_file(&catalogue).unwrap();
    daemon.restart();
    let mut client = daemon.client().await;
    let after = list(client.call(Operation::list_first_page()).await);
    assert_eq!(after.len(), 2);
    for (old, new) in before.iter().zip(&after) {
        assert_eq!(
            (&old.id, &old.label, old.scope, &old.sha256, old.size_bytes),
            (&new.id, &new.label, new.scope, &new.sha256, new.size_bytes)
        );
        assert_eq!(new.status, BackupStatus::Succeeded);
        assert_eq!(new.created_at, old.created_at);
    }

    daemon.stop();
    std::fs::write(&catalogue, b"{\"catalogue_version\": 1, \"backups\": [tru").unwrap();
    daemon.restart();
    let mut client = daemon.client().await;
    assert_eq!(
        list(client.call(Operation::list_first_page()).await).len(),
        2
    );
    let kept_aside = std::fs::read_dir(&daemon.state_dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .any(|e| e.file_name().to_string_lossy().contains("damaged"));
    assert!(
        kept_aside,
        "the damaged catalogue was not kept for inspection"
    );

    // An archive removed by hand is reported, not silently forgotten.
    daemon.stop();
    std::fs::remove_file(daemon.archive_path(a.id.as_str())).unwrap();
    daemon.restart();
    let mut client = daemon.client().await;
    let gone = backup(
        client
            .call(Operation::BackupShow(ops::BackupShow { id: a.id.clone() }))
            .await,
    );
    // Missing, not failed: the archive may come back (see store_missing).
    assert_eq!(gone.status, BackupStatus::Missing);
    assert_eq!(gone.failure, None);
    let kept = backup(
        client
            .call(Operation::BackupShow(ops::BackupShow { id: b.id.clone() }))
            .await,
    );
    assert_eq!(kept.status, BackupStatus::Succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_that_does_not_verify_is_not_listed() {
    let pg = small_cluster();
    let mut daemon = daemon_for(&pg).start();
    let mut client = daemon.client().await;
    let a = backup_now(&mut client, Scope::Database).await;
    daemon.stop();
    std::fs::remove_file(daemon.state_dir.join("catalogue.json")).unwrap();
    let path = daemon.archive_path(a.id.as_str());
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    daemon.restart();
    let mut client = daemon.client().await;
    assert!(list(client.call(Operation::list_first_page()).await).is_empty());
    assert!(
        path.exists(),
        "a damaged archive is left for a human, not deleted"
    );
    assert!(daemon.log().contains("does not verify"));
}
