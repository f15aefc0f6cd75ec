//! The authorization point: a peer that is neither root nor the daemon's
//! own user is refused by the daemon itself, even when the socket's file
//! mode lets it connect. Runs a real process as a real other uid, so it
//! needs root; without root it is skipped with a printed reason.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::Command;

use berkut_testkit::workspace_bin;

use crate::helpers::*;

const NOBODY: u32 = 65534;

#[test]
fn a_stranger_is_forbidden_even_through_an_open_socket() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: running a client as another user needs root");
        return;
    }
    let pg = small_cluster();
    let daemon = daemon_for(&pg).start();
    // Open the file-mode fence wide so that only the daemon's check stands.
    let run_dir = daemon.socket.parent().unwrap();
    std::fs::set_permissions(run_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&daemon.socket, std::fs::Permissions::from_mode(0o666)).unwrap();

    for args in [
        &["status"][..],
        &["backup", "list"],
        &["backup", "create", "--wait"],
    ] {
        let out = Command::new(workspace_bin("berkutctl"))
            .args(args)
            .env("BERKUT_SOCKET", &daemon.socket)
            .current_dir("/")
            .uid(NOBODY)
            .gid(NOBODY)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(6), "{args:?}: {stderr}");
        assert!(stderr.contains("forbidden"), "{stderr}");
    }
    // Root, on the same socket, is served; and nothing was created.
    let out = Command::new(workspace_bin("berkutctl"))
        .args(["backup", "list", "--json"])
        .env("BERKUT_SOCKET", &daemon.socket)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");
    assert!(daemon.log().contains("request denied"));
}
