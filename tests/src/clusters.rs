//! Ready-made clusters for the integration tests, each with a database
//! `app`, a daemon builder pointed at it, and the list of a cluster's
//! databases (what a restore may leave behind).

use crate::daemon::DaemonBuilder;
use crate::pg::PgCluster;

/// A cluster with a small database `app`: one table `t` of 500 rows.
pub fn small_cluster() -> PgCluster {
    let pg = PgCluster::start().expect("cluster starts");
    pg.create_db("app").unwrap();
    pg.psql("app", "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 500) g;")
        .unwrap();
    pg
}

/// A cluster whose database `app` holds the rich fixture.
pub fn rich_cluster() -> PgCluster {
    let pg = PgCluster::start().expect("cluster starts");
    pg.create_db("app").unwrap();
    pg.load_rich_fixture("app").unwrap();
    pg
}

/// A daemon that backs up the cluster's database `app`.
pub fn daemon_for(pg: &PgCluster) -> DaemonBuilder {
    DaemonBuilder::new(pg.url("app"))
}

/// A daemon for `pg` whose `pg_restore` waits at a gate before it
/// restores (its `--list` runs at once), so a test can act while a restore
/// is in the middle. Keep the directory: the fake tool and the gate live in
/// it.
pub fn daemon_with_gated_restores(
    pg: &PgCluster,
) -> (tempfile::TempDir, crate::Gate, DaemonBuilder) {
    let bin = crate::temp_dir("fake-");
    let gate = crate::Gate::new(bin.path(), "gate");
    let builder = daemon_for(pg).pg_restore(&gate.gated_pg_restore(bin.path()));
    (bin, gate, builder)
}

/// The databases of a cluster, sorted.
pub fn databases(pg: &PgCluster) -> Vec<String> {
    let out = pg
        .psql(
            "postgres",
            "SELECT datname FROM pg_database WHERE NOT datistemplate ORDER BY 1",
        )
        .unwrap();
    out.lines().map(str::to_owned).collect()
}
