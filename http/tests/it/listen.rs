//! Where the gateway listens: a Unix socket of mode 0660 with the group it
//! is given, a loopback address, and nothing else.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::{Command, Stdio};

use berkut_testkit::{run_as, temp_dir, workspace_bin};

use crate::helpers::*;

#[test]
fn addresses_other_than_loopback_are_refused() {
    for listen in [
        "0.0.0.0:8088",
        "[::]:8088",
        "10.1.2.3:8088",
        "example.com:80",
    ] {
        let out = Command::new(workspace_bin("berkut-http"))
            .args(["--listen", listen, "--socket", "/nonexistent/berkutd.sock"])
            .env_remove("LISTEN_FDS")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{listen} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("loopback") || err.contains("neither"),
            "{listen}: {err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unix_socket_is_0660_with_its_group_and_serves_http() {
    let Some(uids) = test_uids() else { return };
    let pg = small_cluster();
    let daemon = start_daemon(daemon_for(&pg));
    let dir = temp_dir("http-unix-");
    let app = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uids[3]))
        .unwrap()
        .unwrap();
    nix::unistd::chown(dir.path(), Some(app.uid), Some(app.gid)).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let sock = dir.path().join("http.sock");
    let group = nix::unistd::Group::from_gid(app.gid).unwrap().unwrap().name;
    let log = dir.path().join("log");
    let mut cmd = Command::new(workspace_bin("berkut-http"));
    cmd.args([
        "--listen",
        &format!("unix:{}", sock.display()),
        "--socket-group",
        &group,
    ])
    .env("BERKUT_SOCKET", &daemon.socket)
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(&log).unwrap());
    run_as(&mut cmd, uids[3]);
    let mut child = cmd.spawn().unwrap();
    wait_for("the gateway's socket", LONG, || sock.exists().then_some(()));
    let meta = std::fs::metadata(&sock).unwrap();
    assert_eq!((meta.mode() & 0o777, meta.gid()), (0o660, app.gid.as_raw()));
    let out = Command::new("curl")
        .args(["-sS", "--unix-socket"])
        .arg(&sock)
        .args([
            "-H",
            "X-Berkut-User: alice",
            "-H",
            "X-Berkut-Role: viewer",
            "-w",
            "\n%{http_code}",
            "http://localhost/api/backups",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        text.ends_with("\n200"),
        "{text} {}",
        std::fs::read_to_string(&log).unwrap()
    );
    assert!(text.contains("\"total\":0"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loopback_address_is_served() {
    let Some(uids) = test_uids() else { return };
    let pg = small_cluster();
    let daemon = start_daemon(daemon_for(&pg));
    let dir = temp_dir("http-tcp-");
    let log = dir.path().join("log");
    let mut cmd = Command::new(workspace_bin("berkut-http"));
    cmd.args(["--listen", "127.0.0.1:0"])
        .env("BERKUT_SOCKET", &daemon.socket)
        .env_remove("LISTEN_FDS")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    run_as(&mut cmd, uids[3]);
    let mut child = cmd.spawn().unwrap();
    let addr = wait_for("the gateway to say where it listens", LONG, || {
        let text = std::fs::read_to_string(&log).ok()?;
        let at = text.find("listen=")? + "listen=".len();
        let rest = &text[at..];
        let end = rest.find(' ')?;
        Some(rest[..end].to_owned())
    });
    let r = req(
        reqwest::Method::GET,
        format!("http://{addr}/api/backups"),
        "a",
        "viewer",
    )
    .send()
    .await
    .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(r.status(), 200);
}
