//! The smoke checks read the dump correctly: a database with a partitioned
//! table (Pagila's `payment`, by month) and tables whose names hold spaces,
//! quotes, a newline, Cyrillic, or words of the listing itself passes a
//! drill in every scope, with every table checked under its exact name; a
//! table missing or a partition left unattached fails it, in words.

use berkut_proto::manifest::Scope;
use berkut_proto::wire::{CountCheck, RestoreStatus};
use berkut_testkit::{fake_tool, PgCluster};

use crate::helpers::*;

const SCHEMA: &str = r#"
CREATE TABLE payment (payment_id int, payment_date date NOT NULL, amount numeric)
    PARTITION BY RANGE (payment_date);
CREATE TABLE payment_p2022_01 PARTITION OF payment FOR VALUES FROM ('2022-01-01') TO ('2022-02-01');
CREATE TABLE payment_p2022_02 PARTITION OF payment FOR VALUES FROM ('2022-02-01') TO ('2022-03-01');
CREATE TABLE payment_p2022_03 PARTITION OF payment FOR VALUES FROM ('2022-03-01') TO ('2022-04-01');
INSERT INTO payment SELECT g, date '2022-01-01' + (g % 90), g FROM generate_series(1, 900) g;
CREATE TABLE "my table" (id int);
INSERT INTO "my table" SELECT generate_series(1, 7);
CREATE TABLE "Quote""d" (id int);
INSERT INTO "Quote""d" SELECT generate_series(1, 3);
CREATE TABLE таблица (id int);
INSERT INTO таблица SELECT generate_series(1, 5);
CREATE TABLE "new
line" (id int);
INSERT INTO "new
line" SELECT generate_series(1, 2);
CREATE SCHEMA "odd schema";
CREATE TABLE "odd schema"."TABLE ATTACH public x" (id int);
INSERT INTO "odd schema"."TABLE ATTACH public x" VALUES (1);
"#;

/// Every table of `SCHEMA` with its rows.
const TABLES: [(&str, &str, i64); 9] = [
    ("public", "payment", 900),
    ("public", "payment_p2022_01", 310),
    ("public", "payment_p2022_02", 280),
    ("public", "payment_p2022_03", 310),
    ("public", "my table", 7),
    ("public", "Quote\"d", 3),
    ("public", "таблица", 5),
    ("public", "new\nline", 2),
    ("odd schema", "TABLE ATTACH public x", 1),
];

fn partitioned_cluster() -> PgCluster {
    let pg = PgCluster::start().expect("cluster starts");
    pg.create_db("app").unwrap();
    pg.psql("app", SCHEMA).unwrap();
    pg
}

fn find<'a>(counts: &'a [CountCheck], schema: &str, table: &str) -> Option<&'a CountCheck> {
    counts
        .iter()
        .find(|c| c.schema == schema && c.table == table)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_and_oddly_named_tables_pass_a_drill_in_every_scope() {
    let pg = partitioned_cluster();
    let daemon = daemon_for(&pg).start();
    let mut client = daemon.client().await;
    for scope in [Scope::Full, Scope::Database, Scope::Schema] {
        let backup = backup_now(&mut client, scope).await;
        let drill = restored(client.call(restore_op(&backup.id, true, true)).await);
        assert_eq!(
            drill.status,
            RestoreStatus::Succeeded,
            "{scope:?}: {drill:#?}"
        );
        let ev = evidence(&daemon, &drill.restore_id).await;
        assert_eq!(ev.counts.len(), TABLES.len(), "{scope:?}: {:#?}", ev.counts);
        for (schema, table, rows) in TABLES {
            let c = find(&ev.counts, schema, table)
                .unwrap_or_else(|| panic!("{scope:?}: {schema}.{table} was not checked"));
            let (expected, found) = match (scope, table) {
                (Scope::Schema, _) => (None, Some(0)),
                // The backup counts the tables that hold rows; a
                // partitioned parent holds none of its own.
                (_, "payment") => (None, Some(rows)),
                _ => (Some(rows), Some(rows)),
            };
            assert_eq!(
                (c.expected, c.found),
                (expected, found),
                "{scope:?}: {schema}.{table}"
            );
        }
        let log = ev
            .logs
            .iter()
            .find(|l| l.step == "smoke_checks")
            .map(|l| l.text.clone())
            .unwrap_or_default();
        assert!(log.contains(r#""public"."new\nline""#), "{log}");
        assert!(!log.contains("Some(") && !log.contains("None"), "{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_table_or_an_unattached_partition_fails_the_drill_in_words() {
    let pg = partitioned_cluster();
    let bin = berkut_testkit::temp_dir("fake-");
    let real = berkut_testkit::pg_bin_dir();
    // A pg_restore that restores, then loses a table and a partition's
    // attachment (its environment points psql at the scratch database);
    // the listing and the schema alone are left as they are.
    let lossy = fake_tool(
        bin.path(),
        "pg_restore",
        &format!(
            "case \"$*\" in *--list*|*--section=pre-data*) exec '{r}' \"$@\" ;; esac\n'{r}' \"$@\" || exit 1\nexec '{p}' -X -q -v ON_ERROR_STOP=1 -c 'DROP TABLE \"my table\"' -c 'ALTER TABLE payment DETACH PARTITION payment_p2022_02'",
            r = real.join("pg_restore").display(),
            p = real.join("psql").display(),
        ),
    );
    let daemon = daemon_for(&pg).pg_restore(&lossy).start();
    let mut client = daemon.client().await;
    for scope in [Scope::Database, Scope::Schema] {
        let backup = backup_now(&mut client, scope).await;
        let drill = restored(client.call(restore_op(&backup.id, true, true)).await);
        assert_eq!(drill.status, RestoreStatus::Failed, "{scope:?}: {drill:#?}");
        let reason = drill.failure.clone().unwrap().reason;
        let missing = match scope {
            Scope::Schema => r#""public"."my table": expected the table, found no such table"#,
            _ => r#""public"."my table": expected 7 rows, found no such table"#,
        };
        assert!(reason.contains(missing), "{scope:?}: {reason}");
        assert!(
            !reason.contains("Some(") && !reason.contains("None"),
            "{reason}"
        );
        let ev = evidence(&daemon, &drill.restore_id).await;
        let log = ev
            .logs
            .iter()
            .find(|l| l.step == "smoke_checks")
            .map(|l| l.text.clone())
            .unwrap_or_default();
        assert!(
            log.contains(r#""public"."payment_p2022_02": the dump attaches it to its parent table, but it was restored as a table of its own"#),
            "{scope:?}: {log}"
        );
    }
}
