//! A restored database is the same database: its own properties (owner,
//! privileges, connection limit, comment, settings, role settings) come
//! back exactly as a `pg_dump --create` round trip brings them, it has
//! planner statistics before it goes live, and a drill fails when an object
//! kind does not come back. What the target server cannot take (a role it
//! lacks, a setting it rejects) is reported, not silently lost.

use berkut_proto::archive::MasterKey;
use berkut_proto::ids::BackupId;
use berkut_proto::manifest::Scope;
use berkut_proto::wire::{ops, BackupStatus, Operation, Reply, RestoreStatus, StepState};
use berkut_testkit::{fake_tool, pg_bin_dir, PgCluster};

use crate::helpers::*;

/// Everything attached to database `db` itself, as one comparable text.
fn properties(pg: &PgCluster, db: &str) -> String {
    pg.psql(
        "postgres",
        &format!(
            "SELECT pg_get_userbyid(d.datdba) || ' limit=' || d.datconnlimit \
               || ' comment=' || coalesce(shobj_description(d.oid, 'pg_database'), '') \
               || ' acl=' || coalesce((SELECT string_agg(a, ',' ORDER BY a) \
                                       FROM unnest(d.datacl::text[]) a), 'default') \
               || ' settings=' || coalesce((SELECT string_agg(coalesce(r.rolname, '*') || ':' \
                                       || array_to_string(s.setconfig, ';'), '|' ORDER BY 1) \
                                       FROM pg_db_role_setting s \
                                       LEFT JOIN pg_roles r ON r.oid = s.setrole \
                                       WHERE s.setdatabase = d.oid), '') \
               || ' locale=' || pg_encoding_to_char(d.encoding) || '/' || d.datcollate \
               || '/' || d.datctype \
             FROM pg_database d WHERE d.datname = {}",
            berkut_testkit::quote_literal(db)
        ),
    )
    .unwrap()
}

const ROLES: &str =
    "CREATE ROLE app_owner; CREATE ROLE app_role; CREATE ROLE reporter; CREATE ROLE \"PUBLIC\";";

/// Gives `app` properties of its own, the ones a restore used to lose.
fn give_properties(pg: &PgCluster) {
    pg.psql("postgres", ROLES).unwrap();
    pg.psql(
        "postgres",
        "ALTER DATABASE app OWNER TO app_owner; \
         ALTER DATABASE app SET work_mem = '64MB'; \
         ALTER DATABASE app SET search_path = \"$user\", public, \"Odd Schema\"; \
         REVOKE CONNECT, TEMPORARY ON DATABASE app FROM PUBLIC; \
         GRANT CONNECT ON DATABASE app TO app_role; \
         GRANT TEMPORARY ON DATABASE app TO \"PUBLIC\"; \
         ALTER DATABASE app CONNECTION LIMIT 50; \
         COMMENT ON DATABASE app IS 'the application''s database'; \
         ALTER ROLE reporter IN DATABASE app SET statement_timeout = '5s'; \
         ALTER ROLE app_role IN DATABASE app SET search_path = '';",
    )
    .unwrap();
    pg.psql(
        "app",
        "CREATE TABLE payment (id int, paid date, amount numeric) PARTITION BY RANGE (paid); \
         CREATE TABLE payment_p2022_01 PARTITION OF payment \
           FOR VALUES FROM ('2022-01-01') TO ('2022-02-01'); \
         INSERT INTO payment SELECT g, '2022-01-15', g FROM generate_series(1, 100) g;",
    )
    .unwrap();
    // A setting that would cancel the daemon's own work (its row counts,
    // ANALYZE) if its sessions took it on.
    pg.psql(
        "postgres",
        "ALTER DATABASE app SET statement_timeout = '1ms'",
    )
    .unwrap();
}

/// The database's own statement timeout (1 ms here) never reaches the
/// backup's pg_dump: its first queries run before it lifts the timeout
/// itself, so it gets the tools' session options from its start, through
/// the same environment restores give their tools. (It used to get the URL
/// alone, and a backup failed whenever a first query took over 1 ms.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_dump_starts_without_the_databases_statement_timeout() {
    let pg = small_cluster();
    give_properties(&pg);
    let dir = berkut_testkit::temp_dir("pgdump-options-");
    let seen = dir.path().join("pgoptions");
    let wrapper = fake_tool(
        dir.path(),
        "pg_dump",
        &format!(
            "printf '%s' \"$PGOPTIONS\" > '{}'\nexec '{}' \"$@\"",
            seen.display(),
            pg_bin_dir().join("pg_dump").display()
        ),
    );
    let daemon = daemon_for(&pg)
        .env("BERKUT_BACKUP_PGDUMP_BIN", wrapper.display().to_string())
        .start();
    let mut client = daemon.client().await;
    let backup = backup_now(&mut client, Scope::Database).await;
    assert_eq!(backup.status, BackupStatus::Succeeded, "{backup:#?}");
    let options = std::fs::read_to_string(&seen).unwrap();
    for option in ["statement_timeout=0", "lock_timeout=0"] {
        assert!(options.contains(option), "pg_dump's PGOPTIONS: {options:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_restore_brings_back_the_databases_own_properties_and_statistics() {
    let pg = small_cluster();
    give_properties(&pg);
    let daemon = daemon_for(&pg).start();
    let mut client = daemon.client().await;
    let backup = backup_now(&mut client, Scope::Database).await;
    let at_backup = properties(&pg, "app");
    assert!(at_backup.contains("limit=50"), "{at_backup}");

    // What `pg_dump --create` carries, restored on another cluster: the
    // reference a restore must match.
    let reference = PgCluster::start().unwrap();
    reference.psql("postgres", ROLES).unwrap();
    let dump = berkut_testkit::temp_dir("create-dump-");
    let file = dump.path().join("app.dump");
    let out = pg
        .command("pg_dump")
        .args(["-Fc", "--create", "-f"])
        .arg(&file)
        .arg("app")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    // The database it creates has a 1 ms statement timeout: a timer that
    // fires as pg_restore's first `SET` ends cancels it ("user request"),
    // now and then. Options sent at connection outrank the database's.
    let out = reference
        .command("pg_restore")
        .env("PGOPTIONS", "-c statement_timeout=0")
        .args(["--create", "-d", "postgres"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(properties(&reference, "app"), at_backup);

    // The backup records them, and `backup show` says so.
    let Ok(Reply::Backup { backup: shown }) = client
        .call(Operation::BackupShow(ops::BackupShow {
            id: backup.id.clone(),
        }))
        .await
    else {
        panic!("backup show")
    };
    let recorded = shown.properties.expect("the backup records the properties");
    assert_eq!(recorded.owner, "app_owner");
    assert_eq!(recorded.connection_limit, 50);
    assert_eq!(recorded.role_settings.len(), 2, "{recorded:?}");

    // Everything changes afterwards: PUBLIC may connect again, the
    // settings are gone.
    pg.psql(
        "postgres",
        "GRANT ALL ON DATABASE app TO PUBLIC; ALTER DATABASE app RESET ALL; \
         ALTER DATABASE app CONNECTION LIMIT -1; COMMENT ON DATABASE app IS 'changed'; \
         ALTER ROLE reporter IN DATABASE app RESET ALL; ALTER DATABASE app OWNER TO postgres;",
    )
    .unwrap();
    assert_ne!(properties(&pg, "app"), at_backup);

    let record = restored(client.call(restore_op(&backup.id, false, true)).await);
    assert_eq!(record.status, RestoreStatus::Succeeded, "{record:#?}");
    for step in ["properties", "analyze", "swap"] {
        assert_eq!(
            record.step(step).unwrap().state,
            StepState::Done,
            "{record:#?}"
        );
    }
    assert_eq!(properties(&pg, "app"), at_backup);

    // Statistics were gathered before the swap: every table has been
    // analysed (autovacuum is off in the test clusters).
    let unanalysed = pg
        .psql(
            "app",
            "SELECT count(*) FILTER (WHERE s.last_analyze IS NULL) || '/' || count(*) \
             FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid WHERE c.relkind = 'r'",
        )
        .unwrap();
    assert_eq!(unanalysed, "0/2", "tables without statistics / all tables");
}

/// A pg_restore that loses an index after restoring (the indexes, not the
/// listing or the schema alone): a stand-in for a dump or a server that
/// does not give back everything.
fn lossy_pg_restore(dir: &std::path::Path) -> std::path::PathBuf {
    fake_tool(
        dir,
        "pg_restore",
        &format!(
            "'{}' \"$@\" || exit $?\ncase \"$*\" in *--list*|*--section=pre-data*) ;; \
             *) '{}' -X -q -c 'DROP INDEX public.t_v' ;; esac",
            pg_bin_dir().join("pg_restore").display(),
            pg_bin_dir().join("psql").display()
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drill_fails_when_an_object_kind_does_not_come_back() {
    let pg = small_cluster();
    pg.psql("app", "CREATE INDEX t_v ON t (v)").unwrap();
    let bin = berkut_testkit::temp_dir("fake-");
    let daemon = daemon_for(&pg)
        .pg_restore(&lossy_pg_restore(bin.path()))
        .start();
    let mut client = daemon.client().await;
    let backup = backup_now(&mut client, Scope::Database).await;
    let record = restored(client.call(restore_op(&backup.id, true, true)).await);
    assert_eq!(record.status, RestoreStatus::Failed, "{record:#?}");
    let reason = record.failure.clone().unwrap().reason;
    assert!(
        reason.contains("indexes: 2 in the backup, 1 restored"),
        "{reason}"
    );
    assert_safe(&reason);
    let Ok(Reply::Evidence { evidence }) = client
        .call(Operation::RestoreEvidence(ops::RestoreEvidence {
            restore_id: record.restore_id.clone(),
        }))
        .await
    else {
        panic!("evidence")
    };
    let log = evidence
        .logs
        .iter()
        .find(|l| l.step == "smoke_checks")
        .expect("the smoke checks' log");
    assert!(log.text.contains("differs: indexes"), "{}", log.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_drill_server_cannot_take_is_reported_not_lost_silently() {
    let pg = small_cluster();
    give_properties(&pg);
    // A setting under a prefix that the drill server reserves (plpgsql is
    // loaded into every session there), so it rejects the setting.
    pg.psql(
        "postgres",
        "ALTER DATABASE app SET plpgsql.not_a_setting = 'x'",
    )
    .unwrap();
    let drill = PgCluster::start().unwrap();
    drill
        .psql(
            "postgres",
            "ALTER SYSTEM SET session_preload_libraries = 'plpgsql'; SELECT pg_reload_conf();",
        )
        .unwrap();
    berkut_testkit::wait_for("the drill server to preload plpgsql", LONG, || {
        (drill
            .psql("postgres", "SHOW session_preload_libraries")
            .ok()?
            == "plpgsql")
            .then_some(())
    });
    let daemon = daemon_for(&pg)
        .env("BERKUT_DRILL_DATABASE_URL", drill.url("postgres"))
        .start();
    let mut client = daemon.client().await;
    let backup = backup_now(&mut client, Scope::Database).await;
    let record = restored(client.call(restore_op(&backup.id, true, true)).await);
    assert_eq!(record.status, RestoreStatus::Succeeded, "{record:#?}");
    let step = record.step("properties").unwrap();
    assert_eq!(step.state, StepState::Done);
    let detail = step.detail.clone().unwrap_or_default();
    for expected in [
        "the owner app_owner does not exist on this server",
        "granted to app_role, which does not exist",
        "for role reporter was not applied",
        "rejected the setting plpgsql.not_a_setting",
    ] {
        assert!(detail.contains(expected), "{expected:?} in {detail}");
    }
    assert_safe(&detail);
}

/// Re-seals a backup's archive under the same key with a manifest as a
/// daemon from before properties were recorded wrote it.
fn as_an_older_daemon_wrote_it(
    daemon: &berkut_testkit::Daemon,
    key: &MasterKey,
    id: &BackupId,
) -> Vec<u8> {
    reseal(
        daemon,
        key,
        id,
        |_, data| data.to_vec(),
        |manifest| {
            assert!(manifest.properties.is_some() && manifest.objects.is_some());
            manifest.properties = None;
            manifest.objects = None;
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_from_before_properties_were_recorded_restores_as_before_and_says_so() {
    let pg = small_cluster();
    let key = MasterKey::generate();
    let a = daemon_for(&pg).key(key.clone()).start();
    let backup = backup_now(&mut a.client().await, Scope::Database).await;
    let old = as_an_older_daemon_wrote_it(&a, &key, &backup.id);
    drop(a);

    let b = daemon_for(&pg).key(key).start();
    let mut client = b.client().await;
    let imported = import(&mut client, &old).await;
    assert!(imported.properties.is_none());
    let record = restored(client.call(restore_op(&imported.id, true, true)).await);
    assert_eq!(record.status, RestoreStatus::Succeeded, "{record:#?}");
    let step = record.step("properties").unwrap();
    assert_eq!(step.state, StepState::Skipped);
    assert!(
        step.detail
            .as_deref()
            .unwrap_or_default()
            .contains("did not record the database's properties"),
        "{step:?}"
    );
    assert_eq!(record.step("analyze").unwrap().state, StepState::Done);
}
