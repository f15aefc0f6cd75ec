//! Restores against real clusters: dry-runs that prove a backup and leave
//! the database as it was, real restores that bring back exactly the state
//! at backup time, rollback and cleanup, and the evidence kept.

use berkut_proto::ids::{BackupId, RestoreId};
use berkut_proto::manifest::Scope;
use berkut_proto::wire::{ops, Operation, Reply, RestoreStatus, StepState};
use berkut_testkit::{fingerprint, PgCluster};

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_proves_the_backup_and_changes_nothing() {
    let pg = rich_cluster();
    let daemon = daemon_for(&pg).start();
    let mut client = daemon.client().await;
    let backup = backup_now(&mut client, Scope::Full).await;
    let before = fingerprint(&pg, "app").unwrap();
    let dbs_before = databases(&pg);

    let mut seen = Vec::new();
    let record = restored(
        client
            .call_streaming(restore_op(&backup.id, true, true), |m| seen.push(m.clone()))
            .await,
    );
    assert_eq!(record.status, RestoreStatus::Succeeded, "{record:#?}");
    assert!(record.dry_run);
    assert!(!seen.is_empty(), "the restore's progress was streamed");
    let states = step_states(&record);
    for (name, state) in &states {
        let expected = if ["swap", "globals", "files"].contains(&name.as_str()) {
            StepState::Skipped
        } else {
            StepState::Done
        };
        assert_eq!(*state, expected, "{name}: {states:?}");
    }
    for step in record.steps.iter().filter(|s| s.state == StepState::Done) {
        assert!(step.started_at.unwrap() <= step.finished_at.unwrap());
    }

    assert_eq!(
        fingerprint(&pg, "app").unwrap().differences(&before),
        Vec::<String>::new(),
        "the dry-run changed the live database"
    );
    assert_eq!(
        databases(&pg),
        dbs_before,
        "the scratch database was left behind"
    );
    assert!(
        tmp_dir_is_empty(&daemon),
        "the decrypted dump was left behind"
    );

    let evidence = evidence(&daemon, &record.restore_id).await;
    assert_eq!(evidence.verdict.as_deref(), Some("passed"));
    assert_eq!(evidence.archive_sha256, backup.sha256);
    assert!(evidence.digests.len() >= 3 && evidence.digests.iter().all(|d| d.expected == d.found));
    assert!(evidence.counts.len() > 10);
    assert!(
        evidence
            .counts
            .iter()
            .all(|c| c.found.is_some() && (c.expected.is_none() || c.expected == c.found)),
        "{:?}",
        evidence.counts
    );
    // The backup counts the tables that hold rows; the partitioned parents
    // are checked too, for their existence.
    let mut uncounted: Vec<String> = evidence
        .counts
        .iter()
        .filter(|c| c.expected.is_none())
        .map(|c| format!("{}.{}", c.schema, c.table))
        .collect();
    uncounted.sort();
    let parents = pg
        .psql("app", "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'p' ORDER BY 1")
        .unwrap();
    let mut parents: Vec<String> = parents.lines().map(str::to_owned).collect();
    parents.sort();
    assert!(!parents.is_empty());
    assert_eq!(uncounted, parents);
    let data_log = step_log(&evidence, "data");
    // The daemon loaded the rows itself, every table of the dump.
    let loaded = data_log
        .lines()
        .filter(|l| l.starts_with("loaded "))
        .count();
    let counted = evidence
        .counts
        .iter()
        .filter(|c| c.expected.is_some())
        .count();
    assert_eq!(loaded, counted, "{data_log}");
    assert!(
        !data_log.contains("processing data for table"),
        "{data_log}"
    );
    let summary: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            daemon
                .state_dir
                .join("restores")
                .join(record.restore_id.as_str())
                .join("summary.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(summary["record"]["backup_id"], backup.id.as_str());
    assert_eq!(summary["verdict"], "passed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_restore_brings_back_the_state_at_backup_time() {
    let pg = rich_cluster();
    let daemon = daemon_for(&pg).start();
    let mut client = daemon.client().await;
    let backup = backup_now(&mut client, Scope::Full).await;
    let at_backup = fingerprint(&pg, "app").unwrap();

    // Life goes on, and goes wrong: rows deleted, a table dropped, a large
    // object unlinked.
    let big = at_backup
        .tables
        .iter()
        .max_by_key(|(_, t)| t.rows)
        .map(|(name, _)| name.clone())
        .unwrap();
    let (schema, table) = big.split_once('.').unwrap();
    let victim = at_backup
        .tables
        .keys()
        .find(|n| **n != big && !n.contains("_p") && n.starts_with("public."))
        .cloned();
    let lo = *at_backup.large_objects.keys().next().unwrap();
    let mut sql = format!(
        "TRUNCATE {}.{} CASCADE;",
        berkut_testkit::quote_ident(schema),
        berkut_testkit::quote_ident(table)
    );
    if let Some(v) = &victim {
        let (s, t) = v.split_once('.').unwrap();
        sql.push_str(&format!(
            "DROP TABLE {}.{} CASCADE;",
            berkut_testkit::quote_ident(s),
            berkut_testkit::quote_ident(t)
        ));
    }
    sql.push_str(&format!("SELECT lo_unlink({lo});"));
    pg.psql("app", &sql).unwrap();
    let changed = fingerprint(&pg, "app").unwrap();
    assert!(!changed.differences(&at_backup).is_empty());

    let record = restored(client.call(restore_op(&backup.id, false, true)).await);
    assert_eq!(record.status, RestoreStatus::Succeeded, "{record:#?}");
    assert_eq!(record.step("swap").unwrap().state, StepState::Done);
    assert_eq!(
        fingerprint(&pg, "app").unwrap().differences(&at_backup),
        Vec::<String>::new(),
        "the restore is not faithful"
    );
    let kept = record
        .rollback_database
        .clone()
        .expect("the old database is kept");
    assert!(databases(&pg).contains(&kept));
    assert!(tmp_dir_is_empty(&daemon));
    let Ok(Reply::Maintenance { maintenance }) = client
        .call(Operation::MaintenanceStatus(ops::MaintenanceStatus {}))
        .await
    else {
        panic!()
    };
    assert!(
        !maintenance.active,
        "maintenance is lifted when the restore ends"
    );

    // Rollback puts the pre-restore database back.
    let rolled = restored(
        client
            .call(Operation::RestoreRollback(ops::RestoreRollback {
                restore_id: record.restore_id.clone(),
            }))
            .await,
    );
    assert_eq!(
        fingerprint(&pg, "app").unwrap().differences(&changed),
        Vec::<String>::new(),
        "rollback did not bring back the old database"
    );
    assert_eq!(
        rolled.status,
        RestoreStatus::Succeeded,
        "a rollback does not rewrite the restore's outcome"
    );
    let again = server_error(
        client
            .call(Operation::RestoreRollback(ops::RestoreRollback {
                restore_id: record.restore_id.clone(),
            }))
            .await,
    );
    assert_eq!(
        again.code,
        berkut_proto::wire::ErrorCode::Invalid,
        "{again:?}"
    );
    let aside = rolled
        .rollback_database
        .clone()
        .expect("the restored database is kept aside");
    assert!(databases(&pg).contains(&aside));
    // Cleanup drops what was kept aside.
    let cleaned = restored(
        client
            .call(Operation::RestoreCleanup(ops::RestoreCleanup {
                restore_id: record.restore_id.clone(),
            }))
            .await,
    );
    assert_eq!(cleaned.rollback_database, None);
    assert!(!databases(&pg).contains(&aside));
    assert_eq!(
        databases(&pg)
            .iter()
            .filter(|d| d.contains("berkut"))
            .count(),
        0,
        "{:?}",
        databases(&pg)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_for_restores_are_refused() {
    let pg = small_cluster();
    let bin = berkut_testkit::temp_dir("fake-");
    let fake = berkut_testkit::fake_pg_dump(bin.path(), "pg_dump", "exit 1");
    let daemon = daemon_for(&pg).pg_dump(&fake).start();
    let mut client = daemon.client().await;
    let failed = backup_now(&mut client, Scope::Database).await;
    let err = server_error(client.call(restore_op(&failed.id, true, false)).await);
    assert_eq!(err.code, berkut_proto::wire::ErrorCode::Invalid, "{err:?}");
    let pg_ok = small_cluster();
    let ok_daemon = daemon_for(&pg_ok).start();
    let mut ok_client = ok_daemon.client().await;
    let database_only = backup_now(&mut ok_client, Scope::Database).await;
    let err = server_error(
        ok_client
            .call(Operation::RestoreStart(ops::RestoreStart {
                backup_id: database_only.id.clone(),
                dry_run: false,
                with_globals: true,
                wait: true,
            }))
            .await,
    );
    assert_eq!(err.code, berkut_proto::wire::ErrorCode::Invalid, "{err:?}");
    assert!(
        !ok_daemon.state_dir.join("maintenance.json").exists(),
        "refused before maintenance began"
    );
    let missing: BackupId = "20000101T000000Z-00000000".parse().unwrap();
    assert_eq!(
        server_error(client.call(restore_op(&missing, true, false)).await).code,
        berkut_proto::wire::ErrorCode::NotFound
    );
    let unknown: RestoreId = "r-20000101T000000Z-00000000".parse().unwrap();
    for op in [
        Operation::RestoreStatus(ops::RestoreStatus {
            restore_id: unknown.clone(),
            wait: false,
        }),
        Operation::RestoreEvidence(ops::RestoreEvidence {
            restore_id: unknown.clone(),
        }),
        Operation::RestoreRollback(ops::RestoreRollback {
            restore_id: unknown.clone(),
        }),
    ] {
        assert_eq!(
            server_error(client.call(op).await).code,
            berkut_proto::wire::ErrorCode::NotFound
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_roots_are_restored_beside_then_swapped() {
    let pg = small_cluster();
    let roots = berkut_testkit::temp_dir("roots-");
    let uploads = roots.path().join("uploads");
    std::fs::create_dir_all(uploads.join("sub")).unwrap();
    std::fs::write(uploads.join("a.txt"), "v1").unwrap();
    std::fs::write(uploads.join("sub/b.txt"), "kept").unwrap();
    let daemon = daemon_for(&pg)
        .env("BERKUT_BACKUP_FILE_ROOTS", uploads.display().to_string())
        .start();
    let mut client = daemon.client().await;
    let backup = backup_with_files_now(&mut client).await;
    assert_eq!(backup.status, berkut_proto::wire::BackupStatus::Succeeded);

    // The files change after the backup.
    std::fs::write(uploads.join("a.txt"), "v2").unwrap();
    std::fs::remove_file(uploads.join("sub/b.txt")).unwrap();
    std::fs::write(uploads.join("c.txt"), "new").unwrap();
    let siblings = || -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(roots.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };

    let drill = restored(client.call(restore_op(&backup.id, true, true)).await);
    assert_eq!(drill.status, RestoreStatus::Succeeded, "{drill:#?}");
    assert!(drill
        .step("files")
        .unwrap()
        .detail
        .as_deref()
        .unwrap()
        .contains("entries unpacked into a temporary directory"));
    assert_eq!(
        std::fs::read_to_string(uploads.join("a.txt")).unwrap(),
        "v2",
        "a dry-run touched the files"
    );
    assert_eq!(siblings(), ["uploads"]);

    let real = restored(client.call(restore_op(&backup.id, false, true)).await);
    assert_eq!(real.status, RestoreStatus::Succeeded, "{real:#?}");
    // The ending is told once the restore is wholly over: maintenance is
    // already lifted, so the rollback below is not refused as a conflict.
    let Ok(Reply::Maintenance { maintenance }) = client
        .call(Operation::MaintenanceStatus(ops::MaintenanceStatus {}))
        .await
    else {
        panic!("maintenance status")
    };
    assert!(!maintenance.active, "{maintenance:?}");
    assert_eq!(
        std::fs::read_to_string(uploads.join("a.txt")).unwrap(),
        "v1"
    );
    assert_eq!(
        std::fs::read_to_string(uploads.join("sub/b.txt")).unwrap(),
        "kept"
    );
    assert!(!uploads.join("c.txt").exists());
    let old = roots
        .path()
        .join(format!("uploads.berkut-old-{}", real.restore_id.suffix()));
    assert_eq!(
        std::fs::read_to_string(old.join("a.txt")).unwrap(),
        "v2",
        "the old files are kept aside"
    );

    restored(
        client
            .call(Operation::RestoreRollback(ops::RestoreRollback {
                restore_id: real.restore_id.clone(),
            }))
            .await,
    );
    assert_eq!(
        std::fs::read_to_string(uploads.join("a.txt")).unwrap(),
        "v2",
        "rollback brings the old files back"
    );
    assert!(uploads.join("c.txt").exists());
    let aside = roots.path().join(format!(
        "uploads.berkut-restored-{}",
        real.restore_id.suffix()
    ));
    assert!(aside.exists(), "the restored files are kept aside");

    // Cleanup removes what was kept aside.
    restored(
        client
            .call(Operation::RestoreCleanup(ops::RestoreCleanup {
                restore_id: real.restore_id.clone(),
            }))
            .await,
    );
    assert_eq!(siblings(), ["uploads"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_runs_go_to_the_drill_server_when_there_is_one() {
    let live = small_cluster();
    let drill = PgCluster::start().unwrap();
    let bin = berkut_testkit::temp_dir("fake-");
    let gate = berkut_testkit::Gate::new(bin.path(), "gate");
    let gated = gate.gated_pg_restore(bin.path());
    let daemon = daemon_for(&live)
        .env("BERKUT_DRILL_DATABASE_URL", drill.url("postgres"))
        .pg_restore(&gated)
        .start();
    let mut client = daemon.client().await;
    let backup = backup_now(&mut client, Scope::Database).await;
    let started = restored(client.call(restore_op(&backup.id, true, false)).await);
    berkut_testkit::wait_for("the scratch database on the drill server", LONG, || {
        databases(&drill)
            .contains(&started.scratch_database)
            .then_some(())
    });
    assert!(
        !databases(&live).contains(&started.scratch_database),
        "the dry-run loaded the live server"
    );
    gate.open_forever();
    let done = restore_outcome(&mut client, started.restore_id.clone()).await;
    assert_eq!(done.status, RestoreStatus::Succeeded, "{done:#?}");
    assert!(!databases(&drill).contains(&started.scratch_database));
}

/// With one job, the dump goes from the archive straight into pg_restore's
/// stdin: every pg_restore (the listing and the restore) reads a pipe, and
/// while each runs the restore's private directory holds no file at all.
/// With two jobs the dump is in that directory, which is what the spy sees
/// otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_one_job_the_dump_is_streamed_and_never_written() {
    let pg = small_cluster();
    let bin = berkut_testkit::temp_dir("spy-");
    let seen = bin.path().join("seen");
    let real = berkut_testkit::pg_bin_dir().join("pg_restore");
    for (jobs, streamed) in [("1", true), ("2", false)] {
        let _ = std::fs::remove_file(&seen);
        let dir = berkut_testkit::temp_dir("berkutd-");
        let tmp = dir.path().join("state/tmp");
        // Records, each time pg_restore runs, whether its stdin is a pipe
        // and every file under the daemon's temporary directory, then runs
        // the real pg_restore.
        let spy = berkut_testkit::fake_tool(
            bin.path(),
            "pg_restore",
            &format!(
                "{{ echo \"run: $*\"; [ -p /dev/stdin ] && echo stdin-pipe; \
                 find '{tmp}' -type f 2>/dev/null; }} >> '{seen}'\nexec '{real}' \"$@\"",
                tmp = tmp.display(),
                seen = seen.display(),
                real = real.display()
            ),
        );
        let daemon = daemon_for(&pg)
            .dir(dir)
            .pg_restore(&spy)
            .env("BERKUT_RESTORE_JOBS", jobs)
            .start();
        let mut client = daemon.client().await;
        let backup = backup_now(&mut client, Scope::Database).await;
        pg.psql("app", "DELETE FROM t WHERE id > 100").unwrap();
        let record = restored(client.call(restore_op(&backup.id, false, true)).await);
        assert_eq!(record.status, RestoreStatus::Succeeded, "{record:#?}");
        assert_eq!(pg.psql("app", "SELECT count(*) FROM t").unwrap(), "500");
        let seen = std::fs::read_to_string(&seen).unwrap();
        // Streamed: the listing and one restore. From the file: the
        // listing, the schema, and everything but the rows the daemon
        // loads itself.
        let runs = if streamed { 2 } else { 3 };
        assert_eq!(seen.matches("run: ").count(), runs, "{seen}");
        if streamed {
            assert_eq!(seen.matches("stdin-pipe").count(), 2, "{seen}");
            assert!(!seen.contains("dump.pgcustom"), "{seen}");
        } else {
            assert!(!seen.contains("stdin-pipe"), "{seen}");
            let found = seen
                .lines()
                .filter(|l| !l.starts_with("run: ") && l.ends_with("/dump.pgcustom"))
                .count();
            assert_eq!(found, runs, "{seen}");
        }
        assert!(tmp_dir_is_empty(&daemon));
    }
}
