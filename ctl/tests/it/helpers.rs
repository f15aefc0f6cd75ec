//! Running berkutctl as a user would, against a fixture daemon.

use std::process::{Command, Output};

use berkut_testkit::{Daemon, DaemonBuilder, PgCluster};

pub struct Env {
    pub pg: PgCluster,
    pub daemon: Daemon,
}

/// A cluster with a small database and a daemon for it.
pub fn env() -> Env {
    env_with(|b| b)
}

pub fn env_with(configure: impl FnOnce(DaemonBuilder) -> DaemonBuilder) -> Env {
    let pg = PgCluster::start().expect("cluster starts");
    pg.create_db("app").unwrap();
    pg.psql("app", "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 2000) g;")
        .unwrap();
    let daemon = configure(DaemonBuilder::new(pg.url("app"))).start();
    Env { pg, daemon }
}

pub fn ctl_bin() -> &'static str {
    env!("CARGO_BIN_EXE_berkutctl")
}

/// A finished berkutctl run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Run {
        let run = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
            stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
        };
        // Every error a user sees in this suite is checked: what the daemon
        // says must give away no SQL, no Rust internals, no backtrace.
        if run.code != 0 {
            for bad in [
                "panicked",
                "backtrace",
                ".rs:",
                "SELECT ",
                "ERROR:",
                "pg_catalog",
            ] {
                assert!(
                    !run.stderr.contains(bad),
                    "an error shown to the user leaks {bad:?}: {}",
                    run.stderr
                );
            }
        }
        run
    }

    /// Every stdout line, parsed as JSON; fails if any line is not JSON.
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}"))
            })
            .collect()
    }

    pub fn last_json(&self) -> serde_json::Value {
        self.json_lines().pop().expect("at least one JSON line")
    }

    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "berkutctl failed:\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }
}

/// Runs berkutctl against `daemon`.
pub fn ctl(daemon: &Daemon, args: &[&str]) -> Run {
    Run::from(
        Command::new(ctl_bin())
            .args(args)
            .env("BERKUT_SOCKET", &daemon.socket)
            .output()
            .expect("berkutctl runs"),
    )
}

/// Runs berkutctl with no daemon in reach.
pub fn ctl_alone(args: &[&str], socket: &std::path::Path) -> Run {
    Run::from(
        Command::new(ctl_bin())
            .args(args)
            .env("BERKUT_SOCKET", socket)
            .output()
            .expect("berkutctl runs"),
    )
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
