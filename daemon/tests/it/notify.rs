//! The service manager's protocol (`NOTIFY_SOCKET`), against a datagram
//! socket the test listens on: `READY=1` only once the socket accepts
//! connections, status lines that follow the jobs, watchdog pings at half of
//! `WATCHDOG_USEC`, and `STOPPING=1` on SIGTERM.

use std::time::{Duration, Instant};

use berkut_proto::manifest::Scope;
use berkut_proto::wire::ops;
use berkut_testkit::{Gate, NotifySocket};
use nix::sys::signal::Signal;

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
            .call(berkut_proto::wire::Operation::BackupShow(ops::BackupShow {
                id: queued.id,
            }))
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

/// A background task that dies is logged at error, restarted, and flagged
/// in `status` (and `berkutctl status` exits non-zero); while the
/// scheduler is dead the watchdog is not fed, so systemd would restart
/// the daemon; once the restarted scheduler completes a turn, pings
/// resume. The scheduler is made to die at its first three turns (fault
/// injection, debug builds): it restarts after 1, 2 and 4 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_scheduler_is_restarted_flagged_and_starves_the_watchdog() {
    let pg = small_cluster();
    let dir = berkut_testkit::temp_dir("notify-");
    let mut notify = NotifySocket::bind(dir.path());
    let daemon = daemon_for(&pg)
        .notify(&notify)
        .env("WATCHDOG_USEC", "400000")
        .env("BERKUT_FAULT_PANIC_TASK", "scheduler:3")
        .start();
    let mut client = daemon.client().await;
    let failures = |s: &berkut_proto::wire::StatusInfo| {
        s.task_faults
            .iter()
            .find(|f| f.task == "scheduler")
            .map_or(0, |f| f.failures)
    };
    let status = berkut_testkit::wait_for_async("the scheduler to die twice", LONG, || async {
        let Ok(berkut_proto::wire::Reply::Status { status }) = daemon
            .client()
            .await
            .call(berkut_proto::wire::Operation::Status(ops::Status {}))
            .await
        else {
            return None;
        };
        (failures(&status) == 2).then_some(status)
    })
    .await;
    assert!(status.has_fault());
    let ctl = std::process::Command::new(berkut_testkit::workspace_bin("berkutctl"))
        .arg("status")
        .env("BERKUT_SOCKET", &daemon.socket)
        .output()
        .unwrap();
    assert_eq!(ctl.status.code(), Some(1), "berkutctl status exits 1");
    assert!(String::from_utf8_lossy(&ctl.stderr).contains("scheduler task died"));
    assert!(daemon
        .log()
        .lines()
        .any(|l| l.contains("ERROR") && l.contains("a background task died")));

    // Dead until about 7 s after the start: a second of silence where a
    // healthy daemon pings five times (anything already queued arrives at
    // once and is left out).
    let (window, mut notify) = tokio::task::spawn_blocking(move || {
        let window = notify.collect_for(Duration::from_millis(1500));
        (window, notify)
    })
    .await
    .unwrap();
    let first = window.first().map(|(at, _)| *at);
    let late_pings = window
        .iter()
        .filter(|(at, m)| {
            m.lines().any(|l| l == "WATCHDOG=1")
                && first.is_some_and(|f| *at > f + Duration::from_millis(300))
        })
        .count();
    let Ok(berkut_proto::wire::Reply::Status { status }) = client
        .call(berkut_proto::wire::Operation::Status(ops::Status {}))
        .await
    else {
        panic!("no status")
    };
    assert!(
        failures(&status) >= 2 && daemon.log().matches("a background task died").count() <= 3,
        "{status:?}"
    );
    assert_eq!(
        late_pings, 0,
        "the watchdog was fed while the scheduler was dead"
    );

    // The fourth start survives: the loop turns and the pings resume.
    tokio::task::spawn_blocking(move || {
        notify.wait_for("pings to resume", LONG, |l| l == "WATCHDOG=1")
    })
    .await
    .unwrap();
    berkut_testkit::wait_for("the scheduler to run again", LONG, || {
        daemon.log().contains("no backup plan set").then_some(())
    });
    let Ok(berkut_proto::wire::Reply::Status { status }) = client
        .call(berkut_proto::wire::Operation::Status(ops::Status {}))
        .await
    else {
        panic!("no status")
    };
    assert_eq!(failures(&status), 3, "the fault stays flagged: {status:?}");
}

/// Retention dying (fault injection, debug builds) is logged, flagged in
/// `status`, and takes nothing else down: the scheduler goes on turning
/// (so the watchdog is fed), and backups still run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_retention_is_flagged_and_the_schedule_goes_on() {
    let pg = small_cluster();
    let dir = berkut_testkit::temp_dir("notify-");
    let mut notify = NotifySocket::bind(dir.path());
    let daemon = daemon_for(&pg)
        .notify(&notify)
        .env("WATCHDOG_USEC", "400000")
        .env("BERKUT_FAULT_PANIC_TASK", "retention:1")
        .start();
    let mut client = daemon.client().await;
    let status = berkut_testkit::wait_for_async("retention to die", LONG, || async {
        let Ok(berkut_proto::wire::Reply::Status { status }) = daemon
            .client()
            .await
            .call(berkut_proto::wire::Operation::Status(ops::Status {}))
            .await
        else {
            return None;
        };
        (!status.task_faults.is_empty()).then_some(status)
    })
    .await;
    let tasks: Vec<(&str, u64)> = status
        .task_faults
        .iter()
        .map(|f| (f.task.as_str(), f.failures))
        .collect();
    assert_eq!(tasks, [("retention", 1)]);
    assert!(daemon
        .log()
        .lines()
        .any(|l| l.contains("ERROR") && l.contains("retention") && l.contains("died")));
    // The scheduler was not taken down with it.
    let _ = notify.collect_for(Duration::from_millis(100));
    tokio::task::spawn_blocking(move || {
        notify.wait_for("a watchdog ping", LONG, |l| l == "WATCHDOG=1")
    })
    .await
    .unwrap();
    let made = backup_now(&mut client, Scope::Database).await;
    assert_eq!(made.status, berkut_proto::wire::BackupStatus::Succeeded);
}
