//! The daemon away, back, and slow: 503 with a problem document while it
//! is down, a fresh connection on the next request once it is back, and a
//! bounded gateway while 200 requests wait on a daemon that does not
//! answer (the daemon is stopped with SIGSTOP, a real process that is as
//! slow as it gets).

use nix::sys::signal::Signal;
use reqwest::Method;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn berkutd_down_is_503_and_a_restarted_one_is_reached_again() {
    let Some((_pg, mut daemon, gw)) = setup() else {
        return;
    };
    let list = || req(Method::GET, gw.url("/api/backups"), "v", "viewer").send();
    assert_eq!(list().await.unwrap().status(), 200);
    daemon.stop();
    let down = list().await.unwrap();
    assert_eq!(down.headers()["retry-after"], "5");
    problem(down, 503, "unavailable").await;
    let health = http().get(gw.url("/api/health")).send().await.unwrap();
    problem(health, 503, "unavailable").await;
    daemon.restart();
    daemon.open_socket_to_all();
    assert_eq!(list().await.unwrap().status(), 200);
}

/// The gateway's resident memory, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Open sockets of a process.
fn sockets(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|rd| {
            rd.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .filter(|l| l.to_string_lossy().starts_with("socket:"))
                .count()
        })
        .unwrap_or(0)
}

/// The bound the README states for 200 waiting requests.
const BOUND_KIB: u64 = 16 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_requests_on_a_stopped_daemon_stay_within_the_memory_bound() {
    if test_uids().is_none() {
        return;
    }
    let pg = small_cluster();
    let daemon = start_daemon(daemon_for(&pg));
    let gw = Gateway::start(
        &daemon.socket,
        &[
            "--max-connections",
            "16",
            "--max-waiting",
            "256",
            "--daemon-timeout",
            "120",
        ],
    );
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let list = |c: &reqwest::Client| {
        c.get(gw.url("/api/backups"))
            .header("X-Berkut-User", "v")
            .header("X-Berkut-Role", "viewer")
            .send()
    };
    // Warm up: the runtime's threads and buffers exist before measuring.
    for _ in 0..20 {
        assert_eq!(list(&client).await.unwrap().status(), 200);
    }
    let before = rss_kib(gw.pid());
    daemon.signal(Signal::SIGSTOP);
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let c = client.clone();
        let fut = list(&c);
        tasks.push(tokio::spawn(async move {
            let _keep = c;
            fut.await
        }));
    }
    // All 200 are inside the gateway: their HTTP connections, plus the 16
    // daemon connections that wait for a greeting.
    let pid = gw.pid();
    wait_for("200 requests held in the gateway", LONG, || {
        (sockets(pid) >= 200 + 16).then_some(())
    });
    let held = rss_kib(pid);
    // The limit holds the daemon connections to 16: no more sockets than
    // the 200 HTTP ones, those 16, the listener and the runtime's few for
    // signals (without the limit there would be 200 daemon connections).
    let open = sockets(pid);
    assert!(open <= 200 + 16 + 6, "{open} sockets open");
    daemon.signal(Signal::SIGCONT);
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap().unwrap().status().as_u16());
    }
    eprintln!("gateway RSS {before} KiB before, {held} KiB with 200 requests held");
    assert!(
        held.saturating_sub(before) < BOUND_KIB,
        "200 held requests grew the gateway by {} KiB",
        held - before
    );
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_in_the_daemon_is_500_with_its_correlation_id() {
    if test_uids().is_none() {
        return;
    }
    let pg = small_cluster();
    let daemon = start_daemon(daemon_for(&pg).env("BERKUT_FAULT_PANIC_IN", "plan_show"));
    let gw = Gateway::start(&daemon.socket, &[]);
    let r = admin(Method::GET, gw.url("/api/backups/plan"))
        .send()
        .await
        .unwrap();
    let doc = problem(r, 500, "internal").await;
    let id = doc["correlation_id"]
        .as_str()
        .expect("a correlation id")
        .to_owned();
    assert!(!id.is_empty());
    wait_for("the correlation id in berkutd's log", LONG, || {
        daemon.log().contains(&id).then_some(())
    });
}
