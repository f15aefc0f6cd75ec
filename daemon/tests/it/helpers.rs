//! Helpers shared by the daemon's integration tests.

use std::io::{Read, Write};
use std::process::Stdio;
use std::time::Duration;

use berkut_proto::archive::{ArchiveReader, Keyring};
use berkut_proto::ids::BackupId;
use berkut_proto::manifest::Scope;
use berkut_proto::wire::{BackupRecord, Client, ClientError, ErrorBody, Operation, Reply};
use berkut_testkit::{Daemon, DaemonBuilder, PgCluster};

pub const LONG: Duration = Duration::from_secs(60);

/// A cluster with a small database `app`.
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

pub fn daemon_for(pg: &PgCluster) -> DaemonBuilder {
    DaemonBuilder::new(pg.url("app"))
}

pub fn create_op(label: &str, scope: Scope, wait: bool) -> Operation {
    Operation::BackupCreate {
        label: label.into(),
        scope,
        include_files: false,
        wait,
    }
}

pub fn backup(reply: Result<Reply, ClientError>) -> BackupRecord {
    match reply {
        Ok(Reply::Backup { backup }) => backup,
        other => panic!("expected a backup record, got {other:?}"),
    }
}

pub fn list(reply: Result<Reply, ClientError>) -> Vec<BackupRecord> {
    match reply {
        Ok(Reply::Backups { backups, .. }) => backups,
        other => panic!("expected a list, got {other:?}"),
    }
}

/// The daemon's error, failing the test if the call succeeded.
pub fn server_error(reply: Result<Reply, ClientError>) -> ErrorBody {
    match reply {
        Err(ClientError::Server(body)) => {
            assert_safe(&body.message);
            body
        }
        other => panic!("expected an error from the daemon, got {other:?}"),
    }
}

/// Takes a backup and waits for it.
pub async fn backup_now(client: &mut Client, scope: Scope) -> BackupRecord {
    backup(client.call(create_op("test", scope, true)).await)
}

/// Asserts that a message meant for a client gives nothing away: no
/// filesystem path, no SQL, no Rust internals.
pub fn assert_safe(message: &str) {
    for bad in [
        "/tmp",
        "/var",
        "/usr",
        "/run",
        "/home",
        "/root",
        ".rs:",
        "panicked",
        "backtrace",
        "SELECT ",
        "ERROR:",
        "pg_catalog",
        "stack",
    ] {
        assert!(
            !message.contains(bad),
            "client-visible message leaks {bad:?}: {message}"
        );
    }
}

/// Reads every part of an archive with the library, returning (name, bytes).
pub fn read_parts(daemon: &Daemon, id: &BackupId) -> Vec<(String, Vec<u8>)> {
    let file = std::fs::File::open(daemon.archive_path(id.as_str())).unwrap();
    let keyring = daemon.keyring();
    let mut reader = ArchiveReader::open(std::io::BufReader::new(file), &keyring).unwrap();
    let mut parts = Vec::new();
    while let Some(mut part) = reader.next_part().unwrap() {
        let name = part.name().to_owned();
        let mut data = Vec::new();
        part.read_to_end(&mut data).unwrap();
        parts.push((name, data));
    }
    parts
}

/// Decrypts an archive's dump with the library and pipes it straight into
/// `pg_restore` (no plaintext file), into a new database `target`.
pub fn restore_into(
    daemon: &Daemon,
    id: &BackupId,
    keyring: &Keyring,
    pg: &PgCluster,
    target: &str,
) {
    pg.create_db(target).unwrap();
    let file = std::fs::File::open(daemon.archive_path(id.as_str())).unwrap();
    let mut reader = ArchiveReader::open(std::io::BufReader::new(file), keyring).unwrap();
    let mut child = pg
        .command("pg_restore")
        .args(["--exit-on-error", "--no-owner", "-d", target])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut found = false;
    while let Some(mut part) = reader.next_part().unwrap() {
        if part.name() == "dump.pgcustom" {
            std::io::copy(&mut part, &mut stdin).unwrap();
            found = true;
        }
    }
    stdin.flush().unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(found, "the archive has no dump part");
    assert!(
        out.status.success(),
        "pg_restore failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Lists the backup directory, failing if any partial file is there.
pub fn assert_no_partials(daemon: &Daemon) {
    let files = daemon.backup_files();
    assert!(
        files.iter().all(|f| !f.contains("partial")),
        "partial files left: {files:?}"
    );
}
