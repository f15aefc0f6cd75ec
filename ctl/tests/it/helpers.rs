//! Running this crate's berkutctl against a fixture daemon, and the shape
//! of a record in JSON. Running it and reading what it printed (`Run`), the
//! clusters and the daemons come from the test kit, as in berkutd's tests.

use std::path::Path;

pub use berkut_testkit::Run;
use berkut_testkit::{daemon_for, run_ctl, small_cluster, Daemon, DaemonBuilder, PgCluster};

pub struct Env {
    pub pg: PgCluster,
    pub daemon: Daemon,
}

/// A cluster with a small database and a daemon for it.
pub fn env() -> Env {
    env_with(|b| b)
}

pub fn env_with(configure: impl FnOnce(DaemonBuilder) -> DaemonBuilder) -> Env {
    let pg = small_cluster();
    let daemon = configure(daemon_for(&pg)).start();
    Env { pg, daemon }
}

pub fn ctl_bin() -> &'static str {
    env!("CARGO_BIN_EXE_berkutctl")
}

/// Runs berkutctl against `daemon`.
pub fn ctl(daemon: &Daemon, args: &[&str]) -> Run {
    ctl_alone(args, &daemon.socket)
}

/// Runs berkutctl with `socket` as the daemon's (none need be there).
pub fn ctl_alone(args: &[&str], socket: &Path) -> Run {
    run_ctl(Path::new(ctl_bin()), socket, args)
}

/// The fields every backup record carries in JSON.
pub const RECORD_FIELDS: [&str; 11] = [
    "id",
    "label",
    "scope",
    "include_files",
    "origin",
    "status",
    "created_at",
    "finished_at",
    "size_bytes",
    "sha256",
    "key_id",
];

#[track_caller]
pub fn assert_record_shape(v: &serde_json::Value) {
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"));
    for field in RECORD_FIELDS {
        assert!(obj.contains_key(field), "record lacks {field}: {v}");
    }
}

/// A fresh backup and a passed dry-run of it, through berkutctl: the
/// backup's id and the drill's restore id.
pub fn drilled(env: &Env) -> (String, String) {
    let backup = ctl(&env.daemon, &["backup", "create", "--wait", "--json"])
        .ok()
        .last_json();
    let id = backup["id"].as_str().unwrap().to_owned();
    let drill = ctl(
        &env.daemon,
        &["restore", &id, "--dry-run", "--wait", "--json"],
    )
    .ok()
    .last_json();
    assert_eq!(drill["status"], "succeeded", "{drill}");
    let rid = drill["restore_id"].as_str().unwrap().to_owned();
    (id, rid)
}
