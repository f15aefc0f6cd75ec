//! The service manager's protocol (`NOTIFY_SOCKET`), against a datagram
//! socket the test listens on: `READY=1` only once the socket accepts
//! connections, status lines that follow the jobs, watchdog pings at half of
//! `WATCHDOG_USEC`, and `STOPPING=1` on SIGTERM.

use std::time::{Duration, Instant};

use berkut_proto::manifest::Scope;
use berkut_testkit::{Gate, NotifySocket};
use nix::sys::signal::Signal;

use crate::faults::wait_for_status;
use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_status_watchdog_and_stopping_reach_the_service_manager() {
    let pg = small_cluster();
    let dir = berkut_testkit::temp_dir("notify-");
    let socket = dir.path().join("berkutd.sock");
    let bin = berkut_testkit::temp_dir("fake-");
    let gate = Gate::new(bin.path(), "gate");
    let fake = gate.gated_pg_dump(bin.path(), "pg_dump");
    let mut notify = NotifySocket::bind(dir.path());
    let builder = daemon_for(&pg)
        .notify(&notify)
        .env("WATCHDOG_USEC", "400000")
        .socket(&socket)
        .pg_dump(&fake);

    // Listen for READY=1 while the daemon starts, and try the socket the
    // moment it arrives: it must already accept connections.
    let waiter = {
        let socket = socket.clone();
        std::thread::spawn(move || {
            let (_, msg) = notify.wait_for("READY=1", LONG, |l| l == "READY=1");
            let connected = std::os::unix::net::UnixStream::connect(&socket).is_ok();
            (notify, msg, connected)
        })
    };
    let mut daemon = builder.start();
    let (mut notify, ready, connected) = waiter.join().unwrap();
    assert!(
        connected,
        "READY=1 came before the socket accepted connections"
    );
    assert!(ready.lines().any(|l| l == "STATUS=idle"), "{ready}");

    // Watchdog pings every WATCHDOG_USEC / 2 = 200 ms.
    let mut pings: Vec<Instant> = Vec::new();
    while pings.len() < 11 {
        let (at, _) = notify.wait_for("WATCHDOG=1", Duration::from_secs(5), |l| l == "WATCHDOG=1");
        pings.push(at);
    }
    let mean = (pings[10] - pings[0]) / 10;
    assert!(
        mean >= Duration::from_millis(150) && mean <= Duration::from_millis(300),
        "watchdog pings every {mean:?}, not about 200 ms"
    );

    let mut client = daemon.client().await;
    let queued = backup(client.call(create_op("", Scope::Database, false)).await);
    wait_for_status(&mut client, 1, 0).await;
    notify.wait_for("STATUS=running 1 job", LONG, |l| {
        l == "STATUS=running 1 job"
    });

    daemon.signal(Signal::SIGTERM);
    let (_, stopping) = notify.wait_for("STOPPING=1", LONG, |l| l == "STOPPING=1");
    assert!(
        stopping
            .lines()
            .any(|l| l == "STATUS=stopping: waiting for 1 running job to finish"),
        "{stopping}"
    );
    tokio::task::spawn_blocking(move || gate.open_once())
        .await
        .unwrap();
    let status = daemon.wait_exit(LONG);
    assert!(status.success(), "{status}");
    daemon.restart();
    let record = backup(
        daemon
            .client()
            .await
            .call(berkut_proto::wire::Operation::BackupShow { id: queued.id })
            .await,
    );
    assert_eq!(
        record.status,
        berkut_proto::wire::BackupStatus::Succeeded,
        "{record:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_watchdog_there_are_no_pings() {
    let pg = small_cluster();
    let dir = berkut_testkit::temp_dir("notify-");
    let mut notify = NotifySocket::bind(dir.path());
    let mut daemon = daemon_for(&pg).notify(&notify).start();
    notify.wait_for("READY=1", LONG, |l| l == "READY=1");
    daemon.signal(Signal::SIGTERM);
    notify.wait_for("STOPPING=1", LONG, |l| l == "STOPPING=1");
    assert!(daemon.wait_exit(LONG).success());
    assert!(
        notify
            .received()
            .iter()
            .all(|(_, m)| !m.contains("WATCHDOG=1")),
        "{:?}",
        notify.received()
    );
}
