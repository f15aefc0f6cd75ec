//! The rich fixture database and fingerprints that compare databases.
//!
//! [`RICH_FIXTURE_SQL`] builds a database with most of what a logical backup
//! has to carry: several schemas (one named in Cyrillic), enums, domains, a
//! composite type, range- and list-partitioned tables, large objects,
//! triggers, views, a materialized view, sequences, identity and generated
//! columns, foreign keys, btree/gin/gist indexes, comments, non-ASCII names
//! and data, NULLs and a 20,000-row table. Its data is deterministic, so two
//! loads have equal [`Fingerprint`]s, and a restore that lost or changed
//! anything has a different one.

use std::collections::BTreeMap;
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};

use anyhow::{bail, Context, Result};

use crate::pg::PgCluster;

/// SQL that fills an empty database with the rich fixture.
pub const RICH_FIXTURE_SQL: &str = include_str!("rich_fixture.sql");

/// Settings that make the text form of every value the same in every session.
const STABLE_SESSION: &str = "SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';
SET IntervalStyle = 'postgres';
SET extra_float_digits = 1;
SET bytea_output = 'hex';
BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;
";

/// The tables a fingerprint covers: ordinary tables and leaf partitions
/// (relkind `r`) and materialized views (`m`) of every non-system schema.
/// Partitioned parents (`p`) are left out, because their rows are exactly
/// those of their leaves and counting both would say nothing new; listing the
/// leaves also checks that every row is restored into the right partition.
const TABLES: &str = "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm') AND n.nspname <> 'information_schema'
  AND n.nspname NOT LIKE 'pg\\_%'
ORDER BY n.nspname, c.relname";

impl PgCluster {
    /// Loads [`RICH_FIXTURE_SQL`] into database `db`, which must exist and be
    /// empty.
    pub fn load_rich_fixture(&self, db: &str) -> Result<()> {
        self.psql(db, RICH_FIXTURE_SQL)
            .with_context(|| format!("load the rich fixture into {db:?}"))?;
        Ok(())
    }
}

/// What a database holds, in a form cheap to compare.
///
/// Its `Debug` form shows the schema as a line count and a hash, so that a
/// failing `assert_eq!` stays readable; [`Fingerprint::differences`] says
/// which schema lines differ.
#[derive(Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// Per table, keyed `schema.table` (names unquoted).
    pub tables: BTreeMap<String, TableFp>,
    /// Per large object, keyed by oid: the md5 of its data.
    pub large_objects: BTreeMap<u32, String>,
    /// Per sequence, keyed `schema.sequence`: its last value, or `None` if
    /// `nextval` was never called.
    pub sequences: BTreeMap<String, Option<i64>>,
    /// The normalized `pg_dump --schema-only --no-owner --no-privileges`.
    pub schema: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableFp {
    /// The number of rows, or -1 for a materialized view never populated.
    pub rows: i64,
    /// The md5 of the rows' text forms, sorted and joined by newlines.
    pub hash: String,
}

impl Fingerprint {
    /// A human-readable list of what differs, for test failure messages
    /// (`assert_eq!` on two fingerprints prints the whole schema).
    pub fn differences(&self, other: &Fingerprint) -> Vec<String> {
        let mut out = Vec::new();
        diff_maps("table", &self.tables, &other.tables, &mut out);
        diff_maps(
            "large object",
            &self.large_objects,
            &other.large_objects,
            &mut out,
        );
        diff_maps("sequence", &self.sequences, &other.sequences, &mut out);
        let (mine, theirs): (Vec<_>, Vec<_>) = (
            self.schema.lines().collect(),
            other.schema.lines().collect(),
        );
        for line in mine.iter().filter(|l| !theirs.contains(l)) {
            out.push(format!("schema line only on the left: {line}"));
        }
        for line in theirs.iter().filter(|l| !mine.contains(l)) {
            out.push(format!("schema line only on the right: {line}"));
        }
        if out.is_empty() && self.schema != other.schema {
            out.push("schema lines are the same but in another order".to_owned());
        }
        out
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut hasher = DefaultHasher::new();
        self.schema.hash(&mut hasher);
        let schema = format!(
            "<{} lines, hash {:016x}>",
            self.schema.lines().count(),
            hasher.finish()
        );
        f.debug_struct("Fingerprint")
            .field("tables", &self.tables)
            .field("large_objects", &self.large_objects)
            .field("sequences", &self.sequences)
            .field("schema", &format_args!("{schema}"))
            .finish()
    }
}

fn diff_maps<K: Ord + std::fmt::Debug, V: PartialEq + std::fmt::Debug>(
    what: &str,
    left: &BTreeMap<K, V>,
    right: &BTreeMap<K, V>,
    out: &mut Vec<String>,
) {
    for (key, value) in left {
        match right.get(key) {
            None => out.push(format!("{what} {key:?} only on the left")),
            Some(other) if other != value => {
                out.push(format!("{what} {key:?}: {value:?} != {other:?}"))
            }
            Some(_) => {}
        }
    }
    for key in right.keys().filter(|k| !left.contains_key(k)) {
        out.push(format!("{what} {key:?} only on the right"));
    }
}

/// Fingerprints database `db`: every table's rows, every large object, every
/// sequence and the schema, read in one snapshot (the schema by pg_dump).
pub fn fingerprint(cluster: &PgCluster, db: &str) -> Result<Fingerprint> {
    // One psql run: the first queries generate one query per table, which
    // psql's \gexec then runs; every output row starts with a tag saying
    // what it describes. Rows are sorted with the C collation so that the
    // hash does not depend on the database's locale. `ROW(t.*)` rather than
    // plain `t` names the whole row even when the table has a column named t.
    let sql = format!(
        "{STABLE_SESSION}
SELECT CASE WHEN c.relkind = 'm' AND NOT c.relispopulated
    THEN format('SELECT ''T'', %L, -1, ''unpopulated''', n.nspname || '.' || c.relname)
    ELSE format('SELECT ''T'', %L, count(*), coalesce(md5(string_agg(ROW(t.*)::text, E''\\n'' ORDER BY ROW(t.*)::text COLLATE \"C\")), '''') FROM %I.%I t',
        n.nspname || '.' || c.relname, n.nspname, c.relname)
    END
{TABLES} \\gexec
SELECT 'L', oid, md5(lo_get(oid)) FROM pg_largeobject_metadata ORDER BY oid;
SELECT 'S', schemaname || '.' || sequencename, coalesce(last_value::text, '') FROM pg_sequences;
COMMIT;
"
    );
    let out = cluster.psql_with(db, &sql, &["--field-separator-zero"])?;
    let mut fp = Fingerprint {
        tables: BTreeMap::new(),
        large_objects: BTreeMap::new(),
        sequences: BTreeMap::new(),
        schema: schema_dump(cluster, db)?,
    };
    for line in out.lines().filter(|l| !l.is_empty()) {
        let fields: Vec<&str> = line.split('\0').collect();
        match fields.as_slice() {
            ["T", name, rows, hash] => {
                let rows = rows
                    .parse()
                    .with_context(|| format!("row count in {line:?}"))?;
                let hash = (*hash).to_owned();
                fp.tables.insert((*name).to_owned(), TableFp { rows, hash });
            }
            ["L", oid, hash] => {
                let oid = oid.parse().with_context(|| format!("oid in {line:?}"))?;
                fp.large_objects.insert(oid, (*hash).to_owned());
            }
            ["S", name, value] => {
                let value = match *value {
                    "" => None,
                    v => Some(v.parse().with_context(|| format!("sequence in {line:?}"))?),
                };
                fp.sequences.insert((*name).to_owned(), value);
            }
            _ => bail!("unexpected fingerprint line {line:?}"),
        }
    }
    Ok(fp)
}

/// The row count of every table a fingerprint covers, keyed `schema.table`;
/// cheaper than a fingerprint when counts are all a test needs.
pub fn row_counts(cluster: &PgCluster, db: &str) -> Result<BTreeMap<String, i64>> {
    let sql = format!(
        "{STABLE_SESSION}
SELECT CASE WHEN c.relkind = 'm' AND NOT c.relispopulated
    THEN format('SELECT %L, -1', n.nspname || '.' || c.relname)
    ELSE format('SELECT %L, count(*) FROM %I.%I', n.nspname || '.' || c.relname, n.nspname, c.relname)
    END
{TABLES} \\gexec
COMMIT;
"
    );
    let out = cluster.psql_with(db, &sql, &["--field-separator-zero"])?;
    let mut counts = BTreeMap::new();
    for line in out.lines().filter(|l| !l.is_empty()) {
        let Some((name, rows)) = line.split_once('\0') else {
            bail!("unexpected row count line {line:?}");
        };
        let rows = rows
            .parse()
            .with_context(|| format!("row count in {line:?}"))?;
        counts.insert(name.to_owned(), rows);
    }
    Ok(counts)
}

/// `pg_dump --schema-only` without what differs between two databases of
/// equal content: comments, blank lines, session settings, and the
/// `\restrict`/`\unrestrict` lines that pg_dump emits since 15.14 (and
/// 13.22, 14.19, 16.10, 17.6) with a random key in each dump.
fn schema_dump(cluster: &PgCluster, db: &str) -> Result<String> {
    let mut cmd = cluster.command("pg_dump");
    cmd.args(["--schema-only", "--no-owner", "--no-privileges", "-d", db]);
    let out = crate::os::run(&mut cmd, &format!("pg_dump --schema-only of {db:?}"))?;
    let text = String::from_utf8(out.stdout).context("pg_dump printed something not UTF-8")?;
    let mut schema = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty()
            || trimmed.starts_with("--")
            || trimmed.starts_with("SET ")
            || trimmed.starts_with("SELECT pg_catalog.set_config")
            || trimmed.starts_with("\\restrict ")
            || trimmed.starts_with("\\unrestrict ")
        {
            continue;
        }
        schema.push_str(line);
        schema.push('\n');
    }
    Ok(schema)
}
