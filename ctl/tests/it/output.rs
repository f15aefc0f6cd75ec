//! berkutctl's output when its reader goes away (`berkutctl status | head
//! -1`): it ends quietly, with no panic and no backtrace, whichever command
//! was writing.

use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};

use crate::helpers::*;

/// Runs berkutctl with stdout a pipe whose reading end is already closed,
/// so its first write meets `EPIPE`. Returns its exit code and stderr.
fn with_closed_stdout(daemon: &berkut_testkit::Daemon, args: &[&str]) -> (i32, String) {
    let (read_end, write_end): (OwnedFd, OwnedFd) = nix::unistd::pipe().unwrap();
    drop(read_end);
    let out = Command::new(ctl_bin())
        .args(args)
        .env("BERKUT_SOCKET", &daemon.socket)
        .env("RUST_BACKTRACE", "1")
        .stdout(Stdio::from(write_end))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_reader_that_goes_away_ends_berkutctl_quietly() {
    let env = env();
    ctl(&env.daemon, &["backup", "create", "--wait"]).ok();
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["backup", "list"],
        &["backup", "list", "--json"],
        &["plan", "show"],
    ] {
        let (code, stderr) = with_closed_stdout(&env.daemon, args);
        assert!(
            !stderr.contains("panicked") && !stderr.contains("backtrace"),
            "{args:?}: {stderr}"
        );
        assert!(stderr.is_empty(), "{args:?} says something: {stderr}");
        assert_eq!(code, 141, "{args:?}: {stderr}");
    }
}
