//! Running `berkutctl` as a user would and reading what it printed. Every
//! failing run's stderr is checked: what a user is told gives away no SQL,
//! no Rust internals, no backtrace (it may name the user's own files).

use std::path::Path;
use std::process::{Command, Output};

use crate::client::INTERNALS;

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
        if run.code != 0 {
            for bad in INTERNALS {
                assert!(
                    !run.stderr.contains(bad),
                    "an error shown to the user leaks {bad:?}: {}",
                    run.stderr
                );
            }
        }
        run
    }

    /// Everything it printed: stdout, then stderr.
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
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

/// Runs the berkutctl binary `bin` with `socket` as the daemon's (none
/// need be there).
pub fn run_ctl(bin: &Path, socket: &Path, args: &[&str]) -> Run {
    run_ctl_with(bin, socket, args, |_| {})
}

/// [`run_ctl`], with the command changed first (another user:
/// [`crate::users::run_as`]).
pub fn run_ctl_with(
    bin: &Path,
    socket: &Path,
    args: &[&str],
    configure: impl FnOnce(&mut Command),
) -> Run {
    let mut cmd = Command::new(bin);
    cmd.args(args).env("BERKUT_SOCKET", socket);
    configure(&mut cmd);
    Run::from(cmd.output().expect("berkutctl runs"))
}
