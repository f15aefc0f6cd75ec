//! Faults during a backup: pg_dump failing, dying mid-stream or printing
//! garbage, the database being down, and the parallelism limit under load.
//! Each leaves a readable `failed` record (or a clear error) and no archive.

use berkut_proto::manifest::Scope;
use berkut_proto::wire::{ops, BackupStatus, ErrorCode, Operation, Reply};
use berkut_testkit::{fake_pg_dump, Gate};

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_pg_dump_gives_a_failed_record_and_no_archive() {
    let pg = small_cluster();
    let bin = berkut_testkit::temp_dir("fake-");
    let fake = fake_pg_dump(
        bin.path(),
        "pg_dump",
        "echo 'pg_dump: error: query failed: ERROR:  permission denied for table secret' >&2\n\
         echo 'pg_dump: detail: Query was: SELECT * FROM /var/lib/secret' >&2\nexit 1",
    );
    let daemon = daemon_for(&pg).pg_dump(&fake).start();
    let mut client = daemon.client().await;
    let record = backup_now(&mut client, Scope::Full).await;
    assert_eq!(record.status, BackupStatus::Failed);
    let failure = record.failure.expect("a failure reason");
    assert!(
        failure.reason.contains("pg_dump failed (exit status 1)"),
        "{failure:?}"
    );
    assert!(failure.reason.contains("correlation id"), "{failure:?}");
    assert_safe(&failure.reason);
    assert!(record.size_bytes.is_none() && record.sha256.is_none());
    assert!(
        daemon.backup_files().is_empty(),
        "{:?}",
        daemon.backup_files()
    );
    // The details are in the log, for the administrator.
    assert!(daemon.log().contains("permission denied for table secret"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pg_dump_killed_mid_stream_leaves_no_file() {
    let pg = small_cluster();
    let bin = berkut_testkit::temp_dir("fake-");
    let fake = fake_pg_dump(
        bin.path(),
        "pg_dump",
        "printf 'PGDMP'\nhead -c 3000000 /dev/zero\nkill -9 $$",
    );
    let daemon = daemon_for(&pg).pg_dump(&fake).start();
    let mut client = daemon.client().await;
    let record = backup_now(&mut client, Scope::Database).await;
    assert_eq!(record.status, BackupStatus::Failed);
    let reason = record.failure.unwrap().reason;
    assert!(reason.contains("killed by signal 9"), "{reason}");
    assert!(
        daemon.backup_files().is_empty(),
        "{:?}",
        daemon.backup_files()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_that_is_not_a_dump_is_refused() {
    let pg = small_cluster();
    let bin = berkut_testkit::temp_dir("fake-");
    let fake = fake_pg_dump(bin.path(), "pg_dump", "echo 'hello, I am not a dump'");
    let daemon = daemon_for(&pg).pg_dump(&fake).start();
    let mut client = daemon.client().await;
    let record = backup_now(&mut client, Scope::Database).await;
    assert_eq!(record.status, BackupStatus::Failed);
    assert!(record.failure.unwrap().reason.contains("custom-format"));
    assert!(daemon.backup_files().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_is_down_is_unavailable() {
    let pg = small_cluster();
    let daemon = daemon_for(&pg).start();
    let mut client = daemon.client().await;
    pg.stop().unwrap();
    let err = server_error(client.call(create_op("down", Scope::Full, true)).await);
    assert_eq!(err.code, ErrorCode::Unavailable, "{err:?}");
    assert!(err.message.contains("database"), "{err:?}");
    assert!(list(client.call(Operation::list_first_page()).await).is_empty());
    // The daemon itself is fine, and works again when the database is back.
    assert!(matches!(
        client.call(Operation::Status(ops::Status {})).await,
        Ok(Reply::Status { .. })
    ));
    pg.start_again().unwrap();
    assert_eq!(
        backup_now(&mut client, Scope::Database).await.status,
        BackupStatus::Succeeded
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_going_down_mid_job_fails_it_as_unavailable() {
    let pg = small_cluster();
    let bin = berkut_testkit::temp_dir("fake-");
    let gate = Gate::new(bin.path(), "gate");
    let fake = gate.gated_pg_dump(bin.path(), "pg_dump");
    let daemon = daemon_for(&pg).pg_dump(&fake).start();
    let mut client = daemon.client().await;
    let queued = backup(client.call(create_op("", Scope::Database, false)).await);
    // The job has passed the database check and waits inside pg_dump.
    wait_for_status(&mut client, 1, 0).await;
    pg.stop().unwrap();
    tokio::task::spawn_blocking(move || gate.open_once())
        .await
        .unwrap();
    let record = backup(
        client
            .call(Operation::JobAttach(ops::JobAttach { id: queued.id }))
            .await,
    );
    assert_eq!(record.status, BackupStatus::Failed);
    let failure = record.failure.unwrap();
    assert_eq!(failure.code, ErrorCode::Unavailable, "{failure:?}");
    assert_safe(&failure.reason);
    assert!(daemon.backup_files().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_max_parallel_jobs_run_and_the_rest_queue() {
    let pg = small_cluster();
    let bin = berkut_testkit::temp_dir("fake-");
    let gate = Gate::new(bin.path(), "gate");
    let fake = gate.gated_pg_dump(bin.path(), "pg_dump");
    let daemon = daemon_for(&pg).pg_dump(&fake).max_parallel(2).start();
    let mut client = daemon.client().await;

    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(
            backup(
                client
                    .call(create_op(&format!("job {i}"), Scope::Database, false))
                    .await,
            )
            .id,
        );
    }
    let status = wait_for_status(&mut client, 2, 2).await;
    assert_eq!(status.max_parallel, 2);
    let statuses: Vec<BackupStatus> = status.jobs.iter().map(|j| j.status).collect();
    assert_eq!(
        statuses,
        [
            BackupStatus::Running,
            BackupStatus::Running,
            BackupStatus::Queued,
            BackupStatus::Queued
        ]
    );
    // The queued ones show as queued in the catalogue too.
    let listed = list(client.call(Operation::list_first_page()).await);
    assert_eq!(
        listed
            .iter()
            .filter(|r| r.status == BackupStatus::Queued)
            .count(),
        2
    );

    gate.open_forever();
    for id in ids {
        let record = backup(
            client
                .call(Operation::JobAttach(ops::JobAttach { id }))
                .await,
        );
        assert_eq!(record.status, BackupStatus::Succeeded, "{record:?}");
    }
}
