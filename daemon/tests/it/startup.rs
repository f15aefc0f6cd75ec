//! Starting and stopping: refusing to run without a key, development mode
//! with no configuration at all, a clean stop on SIGTERM, and never binding
//! over a live daemon's socket.

use std::process::Command;

use berkut_proto::wire::ops;
use berkut_testkit::workspace_bin;

use crate::helpers::*;

#[test]
fn without_a_key_berkutd_refuses_to_start_and_says_how_to_make_one() {
    let dir = berkut_testkit::temp_dir("nokey-");
    let out = Command::new(workspace_bin("berkutd"))
        .env_clear()
        .env("BERKUT_DATABASE_URL", "postgresql:///app")
        .env("BERKUT_STATE_DIR", dir.path().join("state"))
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("berkutctl key generate"), "{stderr}");
    assert!(
        !dir.path().join("state").exists(),
        "nothing is created before the configuration is valid"
    );

    let out = Command::new(workspace_bin("berkutd"))
        .env_clear()
        .env("BERKUT_DATABASE_URL", "postgresql:///app")
        .env(
            "BERKUT_BACKUP_ENCRYPTION_KEY",
            "correct horse battery staple",
        )
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("horse"),
        "the rejected key is echoed: {stderr}"
    );
    assert!(
        stderr.contains("base64") || stderr.contains("hex"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_cleanly_and_a_live_socket_is_never_taken_over() {
    let pg = small_cluster();
    let mut daemon = daemon_for(&pg).start();
    // A second daemon on the same socket refuses to start.
    let out = Command::new(workspace_bin("berkutd"))
        .env("BERKUT_SOCKET", &daemon.socket)
        .env("BERKUT_STATE_DIR", daemon.dir().join("state2"))
        .env("BERKUT_BACKUP_PATH", daemon.dir().join("backups2"))
        .env("BERKUT_DATABASE_URL", pg.url("app"))
        .env("BERKUT_BACKUP_ENCRYPTION_KEY", &*daemon.key.to_base64())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("another process is listening"));
    let mut client = daemon.client().await;
    assert!(client
        .call(berkut_proto::wire::Operation::Status(ops::Status {}))
        .await
        .is_ok());

    let status = daemon.stop();
    assert!(status.success(), "{status}");
    assert!(
        !daemon.socket.exists(),
        "the socket file is removed on exit"
    );
    // A stale socket file from a crash does not stop the next start.
    daemon.restart();
    daemon.kill();
    assert!(daemon.socket.exists());
    daemon.restart();
    assert!(daemon
        .client()
        .await
        .call(berkut_proto::wire::Operation::Status(ops::Status {}))
        .await
        .is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_mode_runs_with_no_configuration() {
    let pg = small_cluster();
    let dir = berkut_testkit::temp_dir("dev-");
    let child = Command::new(workspace_bin("berkutd"))
        .arg("--dev")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        // Only the database is named: dev mode cannot guess where it is.
        .env("BERKUT_DATABASE_URL", pg.url("app"))
        .env(
            "BERKUT_BACKUP_PGDUMP_BIN",
            berkut_testkit::pg_bin_dir().join("pg_dump"),
        )
        .current_dir(dir.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let socket = dir.path().join(".berkut-dev/berkutd.sock");
    // The socket file appears when it is bound, a moment before it listens:
    // wait for a connection, not for the file.
    berkut_testkit::wait_for("the dev socket to accept", LONG, || {
        std::os::unix::net::UnixStream::connect(&socket)
            .ok()
            .map(|_| ())
    });
    let key = dir.path().join(".berkut-dev/dev.key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let mut client = berkut_proto::wire::Client::connect(&socket, "test")
        .await
        .unwrap();
    let Ok(berkut_proto::wire::Reply::Status { status }) = client
        .call(berkut_proto::wire::Operation::Status(ops::Status {}))
        .await
    else {
        panic!()
    };
    assert!(status.dev_mode);
    let record = backup_now(&mut client, berkut_proto::manifest::Scope::Database).await;
    assert_eq!(record.status, berkut_proto::wire::BackupStatus::Succeeded);
    assert!(dir
        .path()
        .join(".berkut-dev/backups")
        .join(format!("{}.bscc", record.id))
        .exists());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("DEVELOPMENT MODE"), "{stderr}");
    let key_text = std::fs::read_to_string(&key).unwrap();
    assert!(
        !stderr.contains(key_text.trim()),
        "the dev key reached the log"
    );
}
