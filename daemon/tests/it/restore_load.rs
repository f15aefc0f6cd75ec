//! The daemon loading a dump's rows itself, over every restore connection:
//! a table split between connections comes back row for row, whatever its
//! values, a row the restored schema refuses fails the restore before
//! anything live is touched, and a dump whose rows the daemon cannot read
//! itself (zlib, as version 1 archives hold) is left to pg_restore.

use berkut_proto::archive::{ArchiveWriter, MasterKey};
use berkut_proto::manifest::{Manifest, PartKind, Scope};
use berkut_proto::wire::{ops, Operation, Reply, RestoreStatus, StepState};
use berkut_testkit::{fake_tool, fingerprint, read_parts, PgCluster};

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

    let Ok(Reply::Evidence { evidence }) = client
        .call(Operation::RestoreEvidence(ops::RestoreEvidence {
            restore_id: record.restore_id.clone(),
        }))
        .await
    else {
        panic!()
    };
    let data_log = &evidence
        .logs
        .iter()
        .find(|l| l.step == "data")
        .expect("a data log")
        .text;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_the_restored_schema_refuses_fail_the_restore_before_the_swap() {
    let pg = small_cluster();
    let bin = berkut_testkit::temp_dir("fake-");
    let real = berkut_testkit::pg_bin_dir();
    // A pg_restore whose schema refuses some of the rows: a stand-in for a
    // server that will not take what the dump holds.
    let strict = fake_tool(
        bin.path(),
        "pg_restore",
        &format!(
            "'{r}' \"$@\" || exit $?\ncase \"$*\" in *--section=pre-data*) \
             exec '{p}' -X -q -v ON_ERROR_STOP=1 -c 'ALTER TABLE public.t ADD CHECK (id <= 250)' ;; esac",
            r = real.join("pg_restore").display(),
            p = real.join("psql").display(),
        ),
    );
    let daemon = daemon_for(&pg).pg_restore(&strict).start();
    let mut client = daemon.client().await;
    let backup = backup_now(&mut client, Scope::Database).await;
    pg.psql("app", "DELETE FROM t WHERE id > 100").unwrap();
    let before = fingerprint(&pg, "app").unwrap();
    let dbs = databases(&pg);

    let record = restored(client.call(restore_op(&backup.id, false, true)).await);
    assert_eq!(record.status, RestoreStatus::Failed, "{record:#?}");
    assert_eq!(record.step("data").unwrap().state, StepState::Failed);
    assert_eq!(record.step("swap").unwrap().state, StepState::Pending);
    let reason = record.failure.unwrap().reason;
    assert!(
        reason.contains("loading the rows of public.t failed"),
        "{reason}"
    );
    assert_safe(&reason);
    assert_eq!(
        fingerprint(&pg, "app").unwrap().differences(&before),
        Vec::<String>::new()
    );
    assert_eq!(databases(&pg), dbs, "the scratch database was not removed");
    assert!(tmp_dir_is_empty(&daemon));
    assert!(
        daemon.log().contains("violates check constraint"),
        "the server's own words are in the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dump_with_compressed_rows_is_restored_by_pg_restore_alone() {
    use std::io::Write;
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
    let parts = read_parts(&a, &backup.id);
    let (_, json) = parts.last().unwrap();
    let manifest: Manifest = serde_json::from_slice(json).unwrap();
    let mut writer = ArchiveWriter::new(Vec::new(), &key).unwrap();
    for ((name, data), entry) in parts.iter().zip(manifest.parts.clone()) {
        let mut part = writer.begin_part(name, entry.kind).unwrap();
        part.write_all(if entry.kind == PartKind::Dump {
            &out.stdout
        } else {
            data
        })
        .unwrap();
        part.finish().unwrap();
    }
    let (old, _) = writer.finish(manifest).unwrap();
    drop(a);

    let b = daemon_for(&pg).key(key).start();
    let mut client = b.client().await;
    let Ok(Reply::Backup { backup: imported }) =
        client.upload(old.len() as u64, &old[..], |_| {}).await
    else {
        panic!("import failed")
    };
    pg.psql("app", "DELETE FROM big WHERE id % 2 = 0").unwrap();
    let record = restored(client.call(restore_op(&imported.id, false, true)).await);
    assert_eq!(record.status, RestoreStatus::Succeeded, "{record:#?}");
    assert_eq!(digests(&pg), at_backup);
    let Ok(Reply::Evidence { evidence }) = client
        .call(Operation::RestoreEvidence(ops::RestoreEvidence {
            restore_id: record.restore_id.clone(),
        }))
        .await
    else {
        panic!()
    };
    let log = |step: &str| {
        evidence
            .logs
            .iter()
            .find(|l| l.step == step)
            .map(|l| l.text.clone())
            .unwrap_or_default()
    };
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
