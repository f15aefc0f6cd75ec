//! `backup_create`: real backups of real databases, what the archive holds,
//! and the requests that must be refused.

use berkut_proto::archive::Codec;
use berkut_proto::manifest::{Manifest, Origin, Scope, MANIFEST_PART};
use berkut_proto::wire::{ops, BackupStatus, ErrorCode, Operation};
use berkut_testkit::fingerprint;
use sha2::{Digest, Sha256};

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rich_database_round_trips_through_an_archive() {
    let pg = rich_cluster();
    let daemon = daemon_for(&pg).start();
    let mut client = daemon.client().await;

    let mut progress = Vec::new();
    let reply = client
        .call_with_progress(create_op("before migration 🚀", Scope::Full, true), |p| {
            progress.push(p.clone())
        })
        .await;
    let record = backup(reply);
    assert_eq!(record.status, BackupStatus::Succeeded, "{record:?}");
    assert_eq!(record.label, "before migration 🚀");
    assert_eq!(record.origin, Origin::Manual);
    assert_eq!(record.database.as_deref(), Some("app"));
    assert!(record.finished_at.unwrap() >= record.started_at.unwrap());
    assert!(!progress.is_empty(), "no progress was streamed");
    let last = progress.last().unwrap();
    assert!(
        last.tables_total > 10 && last.tables_done == last.tables_total,
        "{last:?}"
    );

    // The record describes the file on disk exactly.
    let bytes = std::fs::read(daemon.archive_path(record.id.as_str())).unwrap();
    assert_eq!(record.size_bytes, Some(bytes.len() as u64));
    assert_eq!(
        record.sha256.as_deref(),
        Some(hex::encode(Sha256::digest(&bytes)).as_str())
    );
    assert_eq!(record.key_id, Some(daemon.key.key_id().to_string()));
    assert_eq!(daemon.backup_files(), vec![format!("{}.bscc", record.id)]);

    // Nothing readable in the archive: the fixture's distinctive strings
    // must not appear in the ciphertext.
    for needle in ["склад", "PGDMP", "CREATE ROLE", "pg_dump"] {
        assert!(
            !contains(&bytes, needle.as_bytes()),
            "{needle} appears in the archive in plaintext"
        );
    }

    let parts = read_parts(&daemon, &record.id);
    let names: Vec<&str> = parts.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["globals.sql", "dump.pgcustom", "backup.log", MANIFEST_PART]
    );
    let manifest: Manifest = serde_json::from_slice(&parts[3].1).unwrap();
    assert_eq!(manifest.backup_id, record.id.as_str());
    assert_eq!(manifest.scope, Scope::Full);
    assert_eq!(manifest.database.name, "app");
    assert!(
        manifest.database.server_version.starts_with("15"),
        "{:?}",
        manifest.database
    );
    assert!(
        manifest.database.pg_dump_version.contains("pg_dump"),
        "{:?}",
        manifest.database
    );
    assert_eq!(manifest.parts.len(), 3);
    for (entry, (name, data)) in manifest.parts.iter().zip(&parts) {
        assert_eq!(&entry.name, name);
        // Size and digest are of the content, not of its zstd frames.
        assert_eq!(entry.size, data.len() as u64);
        assert_eq!(entry.sha256, hex::encode(Sha256::digest(data)));
        assert_eq!(entry.codec, Some(Codec::Zstd), "{name}");
    }
    // pg_dump was asked not to compress: zstd does it, and the archive is
    // far smaller than the dump it holds.
    assert_eq!(dump_compression(&pg, &parts[1].1), "0");
    let dump = &manifest.parts[1];
    assert!(
        dump.compressed_size.unwrap() * 2 < dump.size,
        "{dump:?} is not compressed"
    );
    assert!(record.size_bytes.unwrap() < dump.size);
    assert!(String::from_utf8_lossy(&parts[0].1).contains("CREATE ROLE"));
    assert!(String::from_utf8_lossy(&parts[2].1).contains("dumping contents of table"));
    let text = serde_json::to_string(&manifest).unwrap();
    assert!(
        !text.contains(&*daemon.key.to_base64()),
        "the manifest holds the key"
    );

    // The archive restores to the same database.
    restore_into(&daemon, &record.id, &daemon.keyring(), &pg, "restored");
    let original = fingerprint(&pg, "app").unwrap();
    let restored = fingerprint(&pg, "restored").unwrap();
    assert!(original.tables.len() > 10);
    assert!(!original.large_objects.is_empty());
    assert_eq!(original.differences(&restored), Vec::<String>::new());
}

/// The compression level pg_dump recorded in a custom-format dump's header.
fn dump_compression(pg: &berkut_testkit::PgCluster, dump: &[u8]) -> String {
    use std::io::Write;
    let path = berkut_testkit::temp_dir("dump-");
    let file = path.path().join("dump");
    let mut f = std::fs::File::create(&file).unwrap();
    f.write_all(dump).unwrap();
    drop(f);
    let out = pg
        .command("pg_restore")
        .arg("-l")
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success());
    let listing = String::from_utf8_lossy(&out.stdout).into_owned();
    listing
        .lines()
        .find_map(|l| l.strip_prefix(";     Compression: "))
        .unwrap_or_else(|| panic!("no compression line in {listing}"))
        .trim()
        .to_owned()
}

/// With `compression = none`, parts are stored as they are and pg_dump
/// compresses the dump itself, as before format version 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compression_none_stores_parts_as_they_are() {
    let pg = small_cluster();
    let daemon = daemon_for(&pg)
        .env("BERKUT_BACKUP_COMPRESSION", "none")
        .start();
    let mut client = daemon.client().await;
    let record = backup_now(&mut client, Scope::Database).await;
    let parts = read_parts(&daemon, &record.id);
    let manifest: Manifest = serde_json::from_slice(&parts[2].1).unwrap();
    for entry in &manifest.parts {
        assert_eq!(entry.codec, Some(Codec::None), "{entry:?}");
        assert_eq!(entry.compressed_size, Some(entry.size), "{entry:?}");
    }
    assert_ne!(dump_compression(&pg, &parts[0].1), "0");
    restore_into(&daemon, &record.id, &daemon.keyring(), &pg, "plain");
    assert_eq!(pg.psql("plain", "SELECT count(*) FROM t").unwrap(), "500");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scope_decides_what_is_archived() {
    let pg = small_cluster();
    let daemon = daemon_for(&pg).start();
    let mut client = daemon.client().await;

    let database = backup_now(&mut client, Scope::Database).await;
    assert_eq!(database.scope, Scope::Database);
    let names: Vec<String> = read_parts(&daemon, &database.id)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, ["dump.pgcustom", "backup.log", MANIFEST_PART]);

    let schema = backup_now(&mut client, Scope::Schema).await;
    assert_eq!(schema.status, BackupStatus::Succeeded);
    restore_into(&daemon, &schema.id, &daemon.keyring(), &pg, "schema_only");
    assert_eq!(
        pg.psql("schema_only", "SELECT count(*) FROM t").unwrap(),
        "0"
    );
    restore_into(&daemon, &database.id, &daemon.keyring(), &pg, "with_data");
    assert_eq!(
        pg.psql("with_data", "SELECT count(*) FROM t").unwrap(),
        "500"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn include_files_archives_the_configured_roots() {
    let pg = small_cluster();
    let roots = berkut_testkit::temp_dir("roots-");
    let uploads = roots.path().join("uploads");
    std::fs::create_dir_all(uploads.join("вложения")).unwrap();
    std::fs::write(uploads.join("вложения/отчёт.txt"), "данные").unwrap();
    std::fs::write(uploads.join("a.bin"), [0u8, 1, 2, 3]).unwrap();
    std::os::unix::fs::symlink("a.bin", uploads.join("link")).unwrap();
    let daemon = daemon_for(&pg)
        .env("BERKUT_BACKUP_FILE_ROOTS", uploads.display().to_string())
        .start();
    let mut client = daemon.client().await;

    let record = backup_with_files_now(&mut client).await;
    assert_eq!(record.status, BackupStatus::Succeeded, "{record:?}");
    assert!(record.include_files);
    let parts = read_parts(&daemon, &record.id);
    let tar_bytes = &parts
        .iter()
        .find(|(n, _)| n == "files.tar")
        .expect("a files part")
        .1;
    let mut archive = tar::Archive::new(&tar_bytes[..]);
    let mut found = std::collections::BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().display().to_string();
        let mut content = String::new();
        if entry.header().entry_type().is_file() {
            std::io::Read::read_to_string(&mut entry, &mut content).ok();
        }
        found.insert(path, (entry.header().entry_type(), content));
    }
    let base = uploads.strip_prefix("/").unwrap().display().to_string();
    let report = found
        .get(&format!("{base}/вложения/отчёт.txt"))
        .expect("the report is archived");
    assert_eq!(report.1, "данные");
    assert!(
        found.get(&format!("{base}/link")).unwrap().0.is_symlink(),
        "symlinks are kept as links"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_and_leave_no_record() {
    let pg = small_cluster();
    let daemon = daemon_for(&pg).start();
    let mut client = daemon.client().await;

    let long = "x".repeat(201);
    for label in [long.as_str(), "line\nbreak", "bell\u{7}", "\u{1b}[31mred"] {
        let err = server_error(client.call(create_op(label, Scope::Full, false)).await);
        assert_eq!(err.code, ErrorCode::Invalid, "{label:?}: {err:?}");
    }
    let err = server_error(
        client
            .call(Operation::BackupCreate(ops::BackupCreate {
                label: String::new(),
                scope: Scope::Full,
                include_files: true,
                wait: false,
            }))
            .await,
    );
    assert_eq!(err.code, ErrorCode::Invalid);
    assert!(err.message.contains("file roots"), "{err:?}");
    assert!(list(client.call(Operation::list_first_page()).await).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_wait_the_reply_is_the_queued_record() {
    let pg = small_cluster();
    let daemon = daemon_for(&pg).start();
    let mut client = daemon.client().await;
    let record = backup(
        client
            .call(create_op("async", Scope::Database, false))
            .await,
    );
    assert!(
        matches!(record.status, BackupStatus::Queued | BackupStatus::Running),
        "{record:?}"
    );
    assert!(record.finished_at.is_none() && record.size_bytes.is_none());
    let done = backup(
        client
            .call(Operation::JobAttach(ops::JobAttach {
                id: record.id.clone(),
            }))
            .await,
    );
    assert_eq!(done.status, BackupStatus::Succeeded);
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_counts_come_from_the_dumps_own_snapshot() {
    let pg = small_cluster();
    let bin = berkut_testkit::temp_dir("fake-");
    let gate = berkut_testkit::Gate::new(bin.path(), "gate");
    let daemon = daemon_for(&pg)
        .pg_dump(&gate.gated_pg_dump(bin.path(), "pg_dump"))
        .start();
    let mut client = daemon.client().await;
    let queued = backup(client.call(create_op("snap", Scope::Database, false)).await);
    // The counts are taken and pg_dump waits at the gate; meanwhile the
    // application writes.
    wait_for_status(&mut client, 1, 0).await;
    pg.psql("app", "INSERT INTO t SELECT g, 'late' FROM generate_series(501, 600) g; CREATE TABLE late (x int); INSERT INTO late VALUES (1);").unwrap();
    gate.open_forever();
    let record = backup(
        client
            .call(Operation::JobAttach(ops::JobAttach {
                id: queued.id.clone(),
            }))
            .await,
    );
    assert_eq!(record.status, BackupStatus::Succeeded, "{record:?}");

    let parts = read_parts(&daemon, &record.id);
    let manifest: Manifest = serde_json::from_slice(&parts.last().unwrap().1).unwrap();
    let tables = manifest.tables.expect("row counts are on by default");
    assert_eq!(tables.len(), 1, "{tables:?}");
    assert_eq!(
        (
            tables[0].schema.as_str(),
            tables[0].table.as_str(),
            tables[0].rows
        ),
        ("public", "t", 500)
    );
    restore_into(&daemon, &record.id, &daemon.keyring(), &pg, "restored");
    assert_eq!(
        pg.psql("restored", "SELECT count(*) FROM t").unwrap(),
        "500",
        "the dump saw the same snapshot"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_counts_can_be_turned_off_and_match_the_rich_fixture() {
    let pg = rich_cluster();
    let daemon = daemon_for(&pg).start();
    let mut client = daemon.client().await;
    let record = backup_now(&mut client, Scope::Database).await;
    let parts = read_parts(&daemon, &record.id);
    let manifest: Manifest = serde_json::from_slice(&parts.last().unwrap().1).unwrap();
    let counted = berkut_testkit::row_counts(&pg, "app").unwrap();
    let tables = manifest.tables.unwrap();
    assert!(tables.len() > 10);
    for t in &tables {
        assert_eq!(
            counted.get(&format!("{}.{}", t.schema, t.table)),
            Some(&t.rows),
            "{t:?}"
        );
    }
    drop(daemon);

    let daemon = daemon_for(&pg)
        .env("BERKUT_BACKUP_COUNT_ROWS", "false")
        .start();
    let mut client = daemon.client().await;
    let record = backup_now(&mut client, Scope::Database).await;
    let parts = read_parts(&daemon, &record.id);
    let manifest: Manifest = serde_json::from_slice(&parts.last().unwrap().1).unwrap();
    assert_eq!(manifest.tables, None);
}
