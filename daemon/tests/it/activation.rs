//! Socket activation: a listening socket passed as fd 3 with `LISTEN_FDS`
//! and `LISTEN_PID`, the way berkutd.socket hands it over. The daemon serves
//! on it, hides the variables from its children, and leaves the socket file
//! (systemd's) in place when it stops. Descriptors meant for another process
//! are ignored.

use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixListener;

use berkut_proto::manifest::Scope;
use berkut_proto::wire::{ops, BackupStatus};
use berkut_testkit::{fake_pg_dump, ListenPid, NotifySocket};

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_passed_socket_is_served_and_left_in_place() {
    let pg = small_cluster();
    let dir = berkut_testkit::temp_dir("activation-");
    let path = dir.path().join("berkutd.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let inode = std::fs::metadata(&path).unwrap().ino();
    let notify = NotifySocket::bind(dir.path());
    // A pg_dump that records the environment it was given.
    let bin = berkut_testkit::temp_dir("fake-");
    let env_file = bin.path().join("env.txt");
    let real = berkut_testkit::pg_bin_dir().join("pg_dump");
    let fake = fake_pg_dump(
        bin.path(),
        "pg_dump",
        &format!(
            "env > '{}'\nexec '{}' \"$@\"",
            env_file.display(),
            real.display()
        ),
    );
    let mut daemon = daemon_for(&pg)
        .socket(&path)
        .socket_activation(listener, ListenPid::Daemon)
        .notify(&notify)
        .env("WATCHDOG_USEC", "10000000")
        .pg_dump(&fake)
        .start();
    let mut client = daemon.client().await;
    let record = backup_now(&mut client, Scope::Database).await;
    assert_eq!(record.status, BackupStatus::Succeeded, "{record:?}");
    assert!(
        daemon.log().contains("socket activation"),
        "{}",
        daemon.log()
    );

    let env = std::fs::read_to_string(&env_file).unwrap();
    for var in ["LISTEN_PID", "LISTEN_FDS", "NOTIFY_SOCKET", "WATCHDOG_USEC"] {
        assert!(
            !env.lines().any(|l| l.starts_with(&format!("{var}="))),
            "pg_dump inherited {var}: {env}"
        );
    }

    drop(client);
    assert!(daemon.stop().success());
    let meta = std::fs::metadata(&path).expect("systemd's socket file stays");
    assert_eq!(meta.ino(), inode, "the socket file was replaced");
    // Started again with the same socket (as systemd does), it serves again.
    daemon.restart();
    assert_eq!(
        list(
            daemon
                .client()
                .await
                .call(berkut_proto::wire::Operation::list_first_page())
                .await
        )
        .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_passed_to_another_process_are_ignored() {
    let pg = small_cluster();
    let dir = berkut_testkit::temp_dir("activation-");
    let other = dir.path().join("other.sock");
    let listener = UnixListener::bind(&other).unwrap();
    let daemon = daemon_for(&pg)
        .socket_activation(listener, ListenPid::Other(1))
        .start();
    // The daemon bound its own socket, which the fixture connects to.
    assert_ne!(daemon.socket, other);
    let mut client = daemon.client().await;
    assert!(client
        .call(berkut_proto::wire::Operation::Status(ops::Status {}))
        .await
        .is_ok());
    assert!(
        daemon.log().contains("LISTEN_PID names another process"),
        "{}",
        daemon.log()
    );
}
