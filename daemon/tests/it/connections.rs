//! The connection limits against hostile or careless clients, with real
//! processes as real other users: a peer with no grant is refused at
//! `hello`; one user meets its own cap while others and root still get in;
//! with every other slot taken an admin still gets in; a greeted connection
//! left idle is closed while a watch is not.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berkut_proto::wire::{ops, ClientMessage, Operation, Reply, ServerMessage};
use berkut_testkit::workspace_bin;

use crate::helpers::*;
use berkut_testkit::TEST_USERS as USERS;

const VIEWER: usize = 0;
const OPERATOR: usize = 1;
const ADMIN: usize = 2;
const NONE: usize = 4;

/// A daemon with grants for the test users, its socket open to all of
/// them, and `env` on top.
fn daemon_with(pg: &berkut_testkit::PgCluster, env: &[(&str, &str)]) -> berkut_testkit::Daemon {
    let dir = berkut_testkit::temp_dir("limits-");
    let config = dir.path().join("berkutd.toml");
    std::fs::write(
        &config,
        "[[access]]\nuser = \"berkut-t-viewer\"\nrole = \"viewer\"\n\n\
         [[access]]\nuser = \"berkut-t-operator\"\nrole = \"operator\"\n\n\
         [[access]]\nuser = \"berkut-t-admin\"\nrole = \"admin\"\n",
    )
    .unwrap();
    let mut builder = daemon_for(pg)
        .arg("--config")
        .arg(config.display().to_string());
    for (name, value) in env {
        builder = builder.env(name, *value);
    }
    let daemon = builder.start();
    std::mem::forget(dir);
    daemon.open_socket_to_all();
    daemon
}

/// `berkutctl maintenance watch` as `uid`, once it holds its connection
/// (it has printed the current state). Killed when dropped.
struct Watcher(Child);

impl Watcher {
    fn start(daemon: &berkut_testkit::Daemon, uid: u32) -> Watcher {
        let mut child = berkut_testkit::run_as(&mut Command::new(workspace_bin("berkutctl")), uid)
            .args(["maintenance", "watch"])
            .env("BERKUT_SOCKET", &daemon.socket)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(
            line.starts_with("maintenance:"),
            "the watch as uid {uid} did not start: {line:?}"
        );
        Watcher(child)
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn root_ctl(daemon: &berkut_testkit::Daemon, args: &[&str]) -> std::process::Output {
    Command::new(workspace_bin("berkutctl"))
        .args(args)
        .env("BERKUT_SOCKET", &daemon.socket)
        .output()
        .unwrap()
}

#[test]
fn a_peer_with_no_grant_is_refused_at_hello_and_audited() {
    let Some(uids) = test_uids() else { return };
    let pg = small_cluster();
    let daemon = daemon_with(&pg, &[]);
    let Run { code, stderr, .. } = as_user(&daemon, uids[NONE], &["status"]);
    assert_eq!(code, 6, "{stderr}");
    assert!(
        stderr.contains("forbidden") && stderr.contains("no access grant"),
        "refused for who it is, before any request: {stderr}"
    );
    let Run { code, stderr, .. } = as_user(&daemon, uids[VIEWER], &["status"]);
    assert_eq!(code, 0, "a user with a grant is served: {stderr}");

    let tail = root_ctl(&daemon, &["audit", "tail", "-n", "100", "--json"]);
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&tail.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let theirs: Vec<_> = events
        .iter()
        .filter(|e| e["uid"] == uids[NONE])
        .map(|e| (e["op"].as_str(), e["decision"].as_str(), e["code"].as_str()))
        .collect();
    assert_eq!(
        theirs,
        [(Some("hello"), Some("denied"), Some("forbidden"))],
        "{events:?}"
    );
    let verify = root_ctl(&daemon, &["audit", "verify"]);
    assert!(verify.status.success());
}

#[test]
fn one_user_meets_its_connection_cap_while_others_and_root_get_in() {
    let Some(uids) = test_uids() else { return };
    let pg = small_cluster();
    let daemon = daemon_with(&pg, &[("BERKUT_MAX_CONNECTIONS_PER_UID", "2")]);
    let mut watchers: Vec<_> = (0..2)
        .map(|_| Watcher::start(&daemon, uids[VIEWER]))
        .collect();
    let Run { code, stderr, .. } = as_user(&daemon, uids[VIEWER], &["status"]);
    assert_eq!(code, 8, "{stderr}");
    assert!(
        stderr.contains("unavailable") && stderr.contains("already has 2 connections"),
        "{stderr}"
    );
    let Run { code, stderr, .. } = as_user(&daemon, uids[OPERATOR], &["status"]);
    assert_eq!(code, 0, "another user still gets in: {stderr}");
    let root = root_ctl(&daemon, &["status"]);
    assert!(root.status.success(), "root still gets in");
    // A watch ending gives its slot back.
    watchers.pop();
    berkut_testkit::wait_for("the viewer's slot to come back", LONG, || {
        (as_user(&daemon, uids[VIEWER], &["status"]).code == 0).then_some(())
    });
}

#[test]
fn with_every_other_slot_taken_an_admin_still_gets_in() {
    let Some(uids) = test_uids() else { return };
    let pg = small_cluster();
    let daemon = daemon_with(
        &pg,
        &[
            ("BERKUT_MAX_CONNECTIONS", "6"),
            ("BERKUT_ADMIN_RESERVED_CONNECTIONS", "2"),
            ("BERKUT_MAX_CONNECTIONS_PER_UID", "6"),
        ],
    );
    let _watchers: Vec<_> = (0..4)
        .map(|_| Watcher::start(&daemon, uids[VIEWER]))
        .collect();
    for who in [VIEWER, OPERATOR] {
        let Run { code, stderr, .. } = as_user(&daemon, uids[who], &["status"]);
        assert_eq!(code, 8, "{}: {stderr}", USERS[who]);
        assert!(stderr.contains("kept for administrators"), "{stderr}");
    }
    let Run { code, stderr, .. } = as_user(&daemon, uids[ADMIN], &["status"]);
    assert_eq!(code, 0, "an admin by grant gets in: {stderr}");
    let root = root_ctl(&daemon, &["status"]);
    assert!(
        root.status.success(),
        "root gets in: {}",
        String::from_utf8_lossy(&root.stderr)
    );
}

/// Reads until the daemon closes `conn`; how long that took.
async fn time_to_close(
    conn: &mut berkut_proto::wire::Connection<tokio::net::UnixStream>,
) -> Duration {
    let started = Instant::now();
    let outcome = tokio::time::timeout(LONG, conn.read_message::<ServerMessage>()).await;
    assert!(
        matches!(outcome, Ok(Ok(None)) | Ok(Err(_))),
        "expected the daemon to close the idle connection, got {outcome:?}"
    );
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_closed_while_a_watch_is_not() {
    let pg = small_cluster();
    let daemon = daemon_for(&pg)
        .env("BERKUT_IDLE_TIMEOUT_SECONDS", "2")
        .start();
    // A watch sends nothing after its first event: it must stay.
    let mut watch = daemon.client().await.into_connection();
    watch
        .write_message(&ClientMessage::Request {
            id: 1,
            op: Operation::MaintenanceWatch(ops::MaintenanceWatch {}),
            on_behalf_of: None,
        })
        .await
        .unwrap();
    let first = watch.read_message::<ServerMessage>().await.unwrap();
    assert!(
        matches!(first, Some(ServerMessage::Event { id: 1, .. })),
        "{first:?}"
    );

    // A greeted connection that asks nothing is closed after the timeout.
    let mut silent = daemon.client().await.into_connection();
    let took = time_to_close(&mut silent).await;
    assert!(took >= Duration::from_millis(1900), "closed after {took:?}");

    // The clock runs from the last answer, not from the greeting.
    let mut client = daemon.client().await;
    let _ = client
        .call(Operation::Status(ops::Status {}))
        .await
        .unwrap();
    let mut used = client.into_connection();
    let took = time_to_close(&mut used).await;
    assert!(took >= Duration::from_millis(1900), "closed after {took:?}");

    // The watch has passed two timeouts meanwhile and still answers.
    watch
        .write_message(&ClientMessage::Request {
            id: 2,
            op: Operation::Status(ops::Status {}),
            on_behalf_of: None,
        })
        .await
        .unwrap();
    let reply = watch.read_message::<ServerMessage>().await.unwrap();
    assert!(
        matches!(
            reply,
            Some(ServerMessage::Reply {
                id: 2,
                reply: Reply::Status { .. }
            })
        ),
        "{reply:?}"
    );
}
