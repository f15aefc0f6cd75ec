//! Looking into a daemon's archives from a test: reading their parts with
//! the library, restoring a dump without the daemon, and checking that no
//! partial file or decrypted dump was left behind.

use std::io::{Read, Write};
use std::process::Stdio;

use berkut_proto::archive::{ArchiveReader, ArchiveWriter, Keyring, MasterKey};
use berkut_proto::ids::BackupId;
use berkut_proto::manifest::{Manifest, PartKind};
use berkut_proto::wire::{BackupRecord, Client, Reply};

use crate::daemon::Daemon;
use crate::pg::PgCluster;

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

/// Re-seals a backup's archive under `key` as another writer would have
/// made it: `part` gives each part's new content (from its kind and old
/// content), `manifest` edits the manifest (the parts' sizes and digests
/// are the writer's own).
pub fn reseal(
    daemon: &Daemon,
    key: &MasterKey,
    id: &BackupId,
    mut part: impl FnMut(PartKind, &[u8]) -> Vec<u8>,
    edit: impl FnOnce(&mut Manifest),
) -> Vec<u8> {
    let parts = read_parts(daemon, id);
    let (_, json) = parts.last().unwrap();
    let mut manifest: Manifest = serde_json::from_slice(json).unwrap();
    edit(&mut manifest);
    let mut writer = ArchiveWriter::new(Vec::new(), key).unwrap();
    for ((name, data), entry) in parts.iter().zip(manifest.parts.clone()) {
        assert_eq!(*name, entry.name);
        let mut w = writer.begin_part(name, entry.kind).unwrap();
        w.write_all(&part(entry.kind, data)).unwrap();
        w.finish().unwrap();
    }
    let (bytes, _) = writer.finish(manifest).unwrap();
    bytes
}

/// Imports an archive's bytes; its record.
pub async fn import(client: &mut Client, archive: &[u8]) -> BackupRecord {
    match client.upload(archive.len() as u64, archive, |_| {}).await {
        Ok(Reply::Backup { backup }) => backup,
        other => panic!("import failed: {other:?}"),
    }
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
#[track_caller]
pub fn assert_no_partials(daemon: &Daemon) {
    let files = daemon.backup_files();
    assert!(
        files.iter().all(|f| !f.contains("partial")),
        "partial files left: {files:?}"
    );
}

/// Whether the directory holding decrypted dumps while restores run is
/// empty (or absent).
pub fn tmp_dir_is_empty(daemon: &Daemon) -> bool {
    let tmp = daemon.state_dir.join("tmp");
    std::fs::read_dir(&tmp)
        .map(|mut d| d.next().is_none())
        .unwrap_or(true)
}
