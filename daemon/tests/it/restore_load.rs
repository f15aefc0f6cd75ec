//! The daemon loading a dump's rows itself, over every restore connection:
//! a table split between connections comes back row for row, whatever its
//! values, a row the restored schema refuses fails the restore before
//! anything live is touched, and a dump whose rows the daemon cannot read
//! itself (zlib, as version 1 archives hold) is left to pg_restore.

use berkut_proto::archive::MasterKey;
use berkut_proto::manifest::{PartKind, Scope};
use berkut_proto::wire::{RestoreStatus, StepState};
use berkut_testkit::{fake_tool, fingerprint, PgCluster};

use crate::helpers::*;

/// Rows with every awkward value COPY's text format escapes, enough of them
/// (about 6 MB) that the loader deals them out in many batches.
const AWKWARD: &str = r#"
CREATE TABLE big (id bigint PRIMARY KEY, t text, b bytea, j jsonb, n numeric,
                  g bigint GENERATED ALWAYS AS (id * 2) STORED);
INSERT INTO big
SELECT g,
       CASE WHEN g % 7 = 0 THEN NULL
            WHEN g % 11 = 0 THEN E'tab\there\nnew line\r\\backslash\n\\.\nend'
            WHEN g % 13 = 0 THEN ''
            ELSE repeat(md5(g::text), 3) END,
       decode(md5(g::text), 'hex'),
       jsonb_build_object('k', g, 's', E'q"uo\nte'),
       g / 3.0
FROM generate_series(1, 30000) g;
CREATE TABLE "one col" (v text);
INSERT INTO "one col" VALUES (''), (''), (NULL), (E'\\.'), ('x'), (E'\n');
CREATE TABLE empty (v int);
"#;

/// Each table's rows, in a fixed order, as one digest.
fn digests(pg: &PgCluster) -> String {
    pg.psql(
        "app",
        "SELECT string_agg(name || ' ' || d, ', ' ORDER BY name) FROM ( \
           SELECT 'big' AS name, md5(string_agg(r::text, E'\\n' ORDER BY r.id)) AS d FROM big r \
           UNION ALL SELECT 'one col', md5(string_agg(coalesce(r::text, 'null'), E'\\n' ORDER BY r::text)) FROM \"one col\" r \
           UNION ALL SELECT 'empty', count(*)::text FROM empty) x",
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_table_is_loaded_over_every_connection_and_comes_back_row_for_row() {
    let pg = small_cluster();
    pg.psql("app", AWKWARD).unwrap();
    let daemon = daemon_for(&pg).env("BERKUT_RESTORE_JOBS", "2").start();
    let mut client = daemon.client().await;
    let backup = backup_now(&mut client, Scope::Database).await;
    let at_backup = digests(&pg);

    pg.psql(
        "app",
        "DELETE FROM big WHERE id % 2 = 0; UPDATE \"one col\" SET v = 'changed'; \
         INSERT INTO empty VALUES (1)",
    )
    .unwrap();
    assert_ne!(digests(&pg), at_backup);

    let record = restored(client.call(restore_op(&backup.id, false, true)).await);
    assert_eq!(record.status, RestoreStatus::Succeeded, "{record:#?}");
    assert_eq!(digests(&pg), at_backup);
    assert_eq!(
        pg.psql("app", "SELECT count(*) FROM big WHERE g <> id * 2")
            .unwrap(),
        "0",
        "the generated column is computed again"
    );

    let data_log = &step_log(&evidence(&daemon, &record.restore_id).await, "data");
    assert!(
        data_log.contains("loaded public.big: 30000 rows on 2 of 2 connections"),
        "{data_log}"
    );
    assert!(
        data_log.contains("loaded public.one col: 6 rows on 1 of 2 connections"),
        "{data_log}"
    );
    assert!(
        data_log.contains("loaded public.empty: 0 rows"),
        "{data_log}"
    );
}

/// A pg_restore that runs `sql` on the scratch database once it has
/// created the schema, and `last` once it has restored the rest (its
/// environment points psql there): a stand-in for a server that does not
/// take the dump's rows as they are.
fn pg_restore_then(dir: &std::path::Path, sql: &str, last: &str) -> std::path::PathBuf {
    let real = berkut_testkit::pg_bin_dir();
    fake_tool(
        dir,
        "pg_restore",
        &format!(
            "'{r}' \"$@\" || exit $?\ncase \"$*\" in \
             *--section=pre-data*) exec '{p}' -X -q -v ON_ERROR_STOP=1 -c \"{sql}\" ;; \
             *--section=post-data*) exec '{p}' -X -q -v ON_ERROR_STOP=1 -c \"{last}\" ;; esac",
            r = real.join("pg_restore").display(),
            p = real.join("psql").display(),
        ),
    )
}

/// Restores `backup`, expecting the data step to fail with `reason`, and
/// the live database, the server's databases and the temporary directory
/// to be as they were.
async fn load_fails(
    pg: &PgCluster,
    daemon: &berkut_testkit::Daemon,
    client: &mut berkut_proto::wire::client::Client,
    backup: &berkut_proto::wire::records::BackupRecord,
    reason: &str,
) {
    pg.psql("app", "DELETE FROM big WHERE id > 100").unwrap();
    let before = fingerprint(pg, "app").unwrap();
    let dbs = databases(pg);
    // A load that waits forever would hold the live database in
    // maintenance: it must end, well within the test's time.
    let record = restored(
        tokio::time::timeout(LONG, client.call(restore_op(&backup.id, false, true)))
            .await
            .expect("the restore hung"),
    );
    assert_eq!(record.status, RestoreStatus::Failed, "{record:#?}");
    assert_eq!(record.step("data").unwrap().state, StepState::Failed);
    assert_eq!(record.step("swap").unwrap().state, StepState::Pending);
    let got = record.failure.unwrap().reason;
    assert!(got.contains(reason), "{got}");
    assert_safe(&got);
    assert_eq!(
        fingerprint(pg, "app").unwrap().differences(&before),
        Vec::<String>::new()
    );
    assert_eq!(databases(pg), dbs, "the scratch database was not removed");
    assert!(tmp_dir_is_empty(daemon));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_the_restored_schema_refuses_fail_the_restore_before_the_swap() {
    let pg = small_cluster();
    pg.psql("app", AWKWARD).unwrap();
    let bin = berkut_testkit::temp_dir("fake-");
    // Refuses rows two thirds of the way into a table both connections
    // load, while the reader may be waiting for room on the refusing one.
    let strict = pg_restore_then(
        bin.path(),
        "ALTER TABLE public.big ADD CHECK (id <= 20000)",
        "SELECT 1",
    );
    let daemon = daemon_for(&pg).pg_restore(&strict).start();
    let mut client = daemon.client().await;
    let backup = backup_now(&mut client, Scope::Database).await;
    load_fails(
        &pg,
        &daemon,
        &mut client,
        &backup,
        "loading the rows of public.big failed",
    )
    .await;
    assert!(
        daemon.log().contains("violates check constraint"),
        "the server's own words are in the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_indexed_before_its_rows_load_is_loaded_on_one_connection() {
    let pg = small_cluster();
    pg.psql("app", AWKWARD).unwrap();
    let bin = berkut_testkit::temp_dir("fake-");
    // An index there before the rows, as an extension's configuration
    // table's is. Were it unique and the rows to repeat a key, two
    // connections could wait for each other through the daemon's reader
    // (the second for the first to commit, the first for rows the reader
    // cannot send while it waits for room on the second), which the server
    // cannot see as a deadlock: such a table goes to one connection.
    let indexed = pg_restore_then(
        bin.path(),
        "CREATE INDEX early ON public.big (id)",
        "DROP INDEX public.early",
    );
    let daemon = daemon_for(&pg).pg_restore(&indexed).start();
    let mut client = daemon.client().await;
    let backup = backup_now(&mut client, Scope::Database).await;
    let at_backup = digests(&pg);
    pg.psql("app", "DELETE FROM big WHERE id % 2 = 0").unwrap();
    let record = restored(client.call(restore_op(&backup.id, false, true)).await);
    assert_eq!(record.status, RestoreStatus::Succeeded, "{record:#?}");
    assert_eq!(digests(&pg), at_backup);
    let data_log = &step_log(&evidence(&daemon, &record.restore_id).await, "data");
    assert!(
        data_log.contains("loaded public.big: 30000 rows on 1 of 2 connections"),
        "{data_log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dump_with_compressed_rows_is_restored_by_pg_restore_alone() {
    let pg = small_cluster();
    pg.psql("app", AWKWARD).unwrap();
    let key = MasterKey::generate();
    let a = daemon_for(&pg).key(key.clone()).start();
    let backup = backup_now(&mut a.client().await, Scope::Database).await;
    let at_backup = digests(&pg);
    // The same archive with pg_dump's own zlib dump in it, as an older
    // daemon wrote them.
    let out = pg.command("pg_dump").args(["-Fc", "app"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let old = reseal(
        &a,
        &key,
        &backup.id,
        |kind, data| match kind {
            PartKind::Dump => out.stdout.clone(),
            _ => data.to_vec(),
        },
        |_| {},
    );
    drop(a);

    let b = daemon_for(&pg).key(key).start();
    let mut client = b.client().await;
    let imported = import(&mut client, &old).await;
    pg.psql("app", "DELETE FROM big WHERE id % 2 = 0").unwrap();
    let record = restored(client.call(restore_op(&imported.id, false, true)).await);
    assert_eq!(record.status, RestoreStatus::Succeeded, "{record:#?}");
    assert_eq!(digests(&pg), at_backup);
    let evidence = evidence(&b, &record.restore_id).await;
    let log = |step: &str| step_log(&evidence, step);
    assert!(
        log("pre_data").contains("pg_restore loads the table data: its table data is compressed"),
        "{}",
        log("pre_data")
    );
    assert!(
        log("data").contains("processing data for table \"public.big\""),
        "{}",
        log("data")
    );
}
