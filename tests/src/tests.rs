//! The kit's own tests: clusters start, stop and clean up after themselves,
//! the rich fixture loads deterministically, and it survives a round trip
//! through plain `pg_dump -Fc` and `pg_restore`, which later tests rely on.

use std::time::Instant;

use crate::{fingerprint, row_counts, temp_dir, PgCluster};

#[test]
fn cluster_starts_stops_restarts_and_cleans_up() {
    let started = Instant::now();
    let cluster = PgCluster::start().expect("start a cluster");
    eprintln!("cluster started in {:?}", started.elapsed());
    assert_eq!(cluster.psql("postgres", "SELECT 1").unwrap(), "1");
    assert!(cluster.is_accepting());
    // The URL alone, without the kit's environment, reaches the cluster.
    let out = std::process::Command::new(cluster.bin("psql"))
        .env_remove("PGHOST")
        .env_remove("PGPORT")
        .args(["-X", "-A", "-t", "-c", "SELECT current_database()"])
        .arg(cluster.url("postgres"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "postgres");

    cluster.stop().unwrap();
    assert!(!cluster.is_accepting());
    let err = cluster.psql("postgres", "SELECT 1").unwrap_err();
    assert!(format!("{err:#}").contains("psql"), "{err:#}");

    cluster.start_again().unwrap();
    assert_eq!(
        cluster.psql("postgres", "SELECT current_user").unwrap(),
        "postgres"
    );
    cluster.create_db("проба").unwrap();
    assert_eq!(
        cluster.psql("проба", "SELECT current_database()").unwrap(),
        "проба"
    );
    cluster.drop_db("проба").unwrap();
    assert!(cluster.server_log().contains("database system is ready"));

    let root = cluster.root().to_owned();
    assert!(root.exists());
    drop(cluster);
    assert!(!root.exists(), "{} should be gone", root.display());
}

#[test]
fn fixture_loads_deterministically_and_fingerprints_see_changes() {
    let cluster = PgCluster::start().expect("start a cluster");
    for db in ["one", "two"] {
        cluster.create_db(db).unwrap();
        let started = Instant::now();
        cluster.load_rich_fixture(db).unwrap();
        eprintln!("fixture loaded in {:?}", started.elapsed());
    }
    let started = Instant::now();
    let one = fingerprint(&cluster, "one").unwrap();
    eprintln!("fingerprint taken in {:?}", started.elapsed());
    let two = fingerprint(&cluster, "two").unwrap();
    assert_eq!(one, two, "{:#?}", one.differences(&two));

    assert_eq!(one.tables["metrics.readings"].rows, 20_000);
    assert_eq!(one.tables["склад.остатки"].rows, 120);
    assert!(one.tables.contains_key("sales.orders_later"));
    assert!(
        !one.tables.contains_key("sales.orders"),
        "parents are left out"
    );
    assert_eq!(one.large_objects.len(), 3);
    assert!(one
        .schema
        .contains("CREATE MATERIALIZED VIEW metrics.daily_summary"));
    let counts = row_counts(&cluster, "one").unwrap();
    let from_fp: Vec<(&String, i64)> = one.tables.iter().map(|(k, v)| (k, v.rows)).collect();
    assert_eq!(
        counts.iter().map(|(k, v)| (k, *v)).collect::<Vec<_>>(),
        from_fp
    );

    cluster
        .psql(
            "two",
            "UPDATE metrics.readings SET value = 0 WHERE id = 1234",
        )
        .unwrap();
    let changed = fingerprint(&cluster, "two").unwrap();
    assert_ne!(one, changed);
    assert_eq!(
        one.differences(&changed).len(),
        1,
        "{:#?}",
        one.differences(&changed)
    );

    cluster
        .psql("one", "SELECT lo_put(910002, 0, '\\x01')")
        .unwrap();
    let lo_changed = fingerprint(&cluster, "one").unwrap();
    assert_ne!(lo_changed.large_objects, two.large_objects);
}

#[test]
fn fixture_round_trips_through_pg_dump_and_pg_restore() {
    let cluster = PgCluster::start().expect("start a cluster");
    cluster.create_db("source").unwrap();
    cluster.load_rich_fixture("source").unwrap();
    let dir = temp_dir("berkut-testkit-dump-");
    let dump = dir.path().join("source.dump");

    let status = cluster
        .command("pg_dump")
        .args(["-Fc", "-d", "source", "-f"])
        .arg(&dump)
        .status()
        .unwrap();
    assert!(status.success(), "pg_dump: {status}");

    cluster.create_db("restored").unwrap();
    let out = cluster
        .command("pg_restore")
        .args(["--exit-on-error", "--no-owner", "-d", "restored"])
        .arg(&dump)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pg_restore: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let source = fingerprint(&cluster, "source").unwrap();
    let restored = fingerprint(&cluster, "restored").unwrap();
    assert_eq!(source, restored, "{:#?}", source.differences(&restored));
}
