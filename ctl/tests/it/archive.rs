//! `berkutctl archive …`: the offline tools, run on a real daemon's archive
//! with nothing but the file and the key.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::helpers::*;

fn key_file(dir: &Path, name: &str, key: &berkut_proto::archive::MasterKey) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("{}\n", &*key.to_base64())).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// A daemon's archive to work on offline, its key in a file, and a socket
/// path where no daemon listens.
struct Offline {
    env: Env,
    record: serde_json::Value,
    archive: PathBuf,
    work: tempfile::TempDir,
    sock: PathBuf,
    key: PathBuf,
}

fn offline() -> Offline {
    let env = env();
    let record = ctl(&env.daemon, &["backup", "create", "--wait", "--json"])
        .ok()
        .last_json();
    let archive = env.daemon.archive_path(record["id"].as_str().unwrap());
    let work = berkut_testkit::temp_dir("offline-");
    let sock = work.path().join("no-daemon.sock");
    let key = key_file(work.path(), "key", &env.daemon.key);
    Offline {
        env,
        record,
        archive,
        work,
        sock,
        key,
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn inspect_verify_extract_and_rewrap_need_no_daemon() {
    let Offline {
        env,
        record,
        archive,
        work,
        sock,
        key,
    } = offline();

    let header = ctl_alone(&["archive", "inspect", s(&archive), "--json"], &sock)
        .ok()
        .last_json();
    assert_eq!(header["key_id"], record["key_id"]);
    assert_eq!(header["format_version"], 2);

    let verified = ctl_alone(
        &[
            "archive",
            "verify",
            s(&archive),
            "--key-file",
            s(&key),
            "--json",
        ],
        &sock,
    )
    .ok()
    .last_json();
    assert_eq!(verified["sha256"], record["sha256"]);
    assert_eq!(verified["manifest"]["backup_id"], record["id"]);

    let out = work.path().join("extracted");
    ctl_alone(
        &[
            "archive",
            "extract",
            s(&archive),
            "--key-file",
            s(&key),
            "-o",
            s(&out),
        ],
        &sock,
    )
    .ok();
    for name in [
        "dump.pgcustom",
        "globals.sql",
        "backup.log",
        "manifest.json",
    ] {
        let meta = std::fs::metadata(out.join(name))
            .unwrap_or_else(|_| panic!("{name} was not extracted"));
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{name}");
    }
    let list = env
        .pg
        .command("pg_restore")
        .arg("--list")
        .arg(out.join("dump.pgcustom"))
        .output()
        .unwrap();
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    assert!(String::from_utf8_lossy(&list.stdout).contains("TABLE DATA public t"));

    // Rewrap under a new key: the old one no longer reads it.
    let new = berkut_proto::archive::MasterKey::generate();
    let new_key = key_file(work.path(), "new", &new);
    let moved = work.path().join("rewrapped.bscc");
    let done = ctl_alone(
        &[
            "archive",
            "rewrap",
            s(&archive),
            "--key-file",
            s(&key),
            "--new-key-file",
            s(&new_key),
            "-o",
            s(&moved),
            "--json",
        ],
        &sock,
    )
    .ok()
    .last_json();
    assert_eq!(done["key_id"], new.key_id().to_string());
    ctl_alone(
        &["archive", "verify", s(&moved), "--key-file", s(&new_key)],
        &sock,
    )
    .ok();
    let old = ctl_alone(
        &["archive", "verify", s(&moved), "--key-file", s(&key)],
        &sock,
    );
    assert_eq!(old.code, 1, "{}", old.stderr);
    assert!(
        old.stderr.contains(&new.key_id().to_string()),
        "the error names the key the archive needs: {}",
        old.stderr
    );
}

#[test]
fn damaged_archives_and_careless_key_files_are_refused() {
    let Offline {
        env,
        archive,
        work,
        sock,
        key,
        ..
    } = offline();
    let damaged = work.path().join("damaged.bscc");
    let mut bytes = std::fs::read(&archive).unwrap();
    let last = bytes.len() - 40;
    bytes[last] ^= 1;
    std::fs::write(&damaged, &bytes).unwrap();

    let verify = ctl_alone(
        &["archive", "verify", s(&damaged), "--key-file", s(&key)],
        &sock,
    );
    assert_eq!(verify.code, 1, "{}", verify.stderr);
    let out = work.path().join("out");
    let extract = ctl_alone(
        &[
            "archive",
            "extract",
            s(&damaged),
            "--key-file",
            s(&key),
            "-o",
            s(&out),
        ],
        &sock,
    );
    assert_eq!(extract.code, 1, "{}", extract.stderr);
    let left: Vec<_> = std::fs::read_dir(work.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("out"))
        .collect();
    assert!(left.is_empty(), "a failed extraction left {left:?}");
    let not_archive = ctl_alone(&["archive", "inspect", s(&key)], &sock);
    assert_ne!(not_archive.code, 0);

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let careless = ctl_alone(
        &["archive", "verify", s(&archive), "--key-file", s(&key)],
        &sock,
    );
    assert_ne!(careless.code, 0);
    assert!(careless.stderr.contains("chmod 600"), "{}", careless.stderr);
    assert!(!careless.stderr.contains(&*env.daemon.key.to_base64()));
}
