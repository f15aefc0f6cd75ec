//! The audit trail under a hostile or careless client, through the real
//! daemon: a flood of denials keeps the directory under its bound and the
//! chain verifiable; a burst of identical denials is one event with a
//! count; cutting or editing the end of the trail is reported, while the
//! daemon runs and after a restart; a tail of 10 000 long lines comes in
//! pages, to `berkutctl` and on the wire; and a request answered `invalid`
//! is audited as `invalid`.
//!
//! Denials come from root asking on behalf of a user, which only the main
//! application may do: `forbidden` for any peer but an `app` one, so no
//! other uid is needed to be refused.

use std::path::{Path, PathBuf};

use berkut_proto::ids::BackupId;
use berkut_proto::wire::{ops, Client, ErrorCode, OnBehalfOf, Operation, Reply, Role};
use berkut_testkit::{wait_for, Daemon};

use crate::helpers::*;

fn audit_dir(daemon: &Daemon) -> PathBuf {
    daemon.state_dir.join("audit")
}

/// The trail's files, oldest first.
fn trail_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut rotated: Vec<(u64, PathBuf)> = entries
        .filter_map(|e| {
            let e = e.ok()?;
            let n = e
                .file_name()
                .to_str()?
                .strip_prefix("audit.log.")?
                .parse()
                .ok()?;
            Some((n, e.path()))
        })
        .collect();
    rotated.sort();
    let mut all: Vec<PathBuf> = rotated.into_iter().map(|(_, p)| p).collect();
    if dir.join("audit.log").exists() {
        all.push(dir.join("audit.log"));
    }
    all
}

/// Every line of the trail's files, oldest first.
fn trail_lines(daemon: &Daemon) -> Vec<String> {
    trail_files(&audit_dir(daemon))
        .iter()
        .flat_map(|p| {
            std::fs::read_to_string(p)
                .unwrap_or_default()
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Waits until the trail holds `count` events of `op` (events are written
/// once their request has been answered).
fn wait_events(daemon: &Daemon, op: &str, count: usize) {
    let needle = format!("\"op\":\"{op}\"");
    wait_for(&format!("{count} {op} events in the trail"), LONG, || {
        let lines = trail_lines(daemon);
        (lines.iter().filter(|l| l.contains(&needle)).count() >= count).then_some(())
    });
}

/// Everything in the audit directory, the head file included.
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// A root client acting for `user`: every request it makes is `forbidden`.
async fn delegating(daemon: &Daemon, user: &str) -> Client {
    let mut client = daemon.client().await;
    client.set_on_behalf_of(Some(OnBehalfOf {
        user: user.into(),
        role: Role::Viewer,
    }));
    client
}

fn backup_id(n: u64) -> BackupId {
    format!("20000101T000000Z-{n:08x}").parse().unwrap()
}

fn verify_json(daemon: &Daemon) -> serde_json::Value {
    let Run {
        code,
        stdout: out,
        stderr: err,
    } = ctl(daemon, &["audit", "verify", "--json"]);
    let v: serde_json::Value = serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("{e}: exit {code}, {out}, {err}"));
    assert_eq!(code == 0, v["intact"] == true, "{v} {err}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_denials_keeps_the_audit_directory_under_its_bound_and_verifiable() {
    let pg = small_cluster();
    let daemon = daemon_for(&pg)
        .env("BERKUT_AUDIT_MAX_BYTES", "4096")
        .env("BERKUT_AUDIT_KEEP_BYTES", "16384")
        // Every denial straight to the disk: the worst case for the bound.
        .env("BERKUT_AUDIT_BURST_SECONDS", "0")
        .start();
    let dir = audit_dir(&daemon);
    let mut mallory = delegating(&daemon, "mallory").await;
    for n in 0..600 {
        let error = server_error(
            mallory
                .call(Operation::BackupDelete(ops::BackupDelete {
                    id: backup_id(n),
                }))
                .await,
        );
        assert_eq!(error.code, ErrorCode::Forbidden);
        if n % 25 == 0 {
            // The bound, and at most a head file of under 1 KiB beside it.
            let bytes = dir_bytes(&dir);
            assert!(bytes <= 16384 + 1024, "{bytes} bytes after {n} denials");
        }
    }
    wait_for("the last denial is written", LONG, || {
        trail_lines(&daemon)
            .last()
            .filter(|l| l.contains(backup_id(599).as_str()))
            .map(|_| ())
    });
    assert!(dir_bytes(&dir) <= 16384 + 1024);
    let files = trail_files(&dir);
    assert!(
        !files.iter().any(|f| f.ends_with("audit.log.1")),
        "the oldest files were removed: {files:?}"
    );
    // The chain still verifies, from the checkpoint the oldest file kept
    // begins with, and counts the lines removed.
    let verdict = verify_json(&daemon);
    assert_eq!(verdict["intact"], true, "{verdict}");
    assert!(verdict["removed"].as_u64().unwrap() > 0, "{verdict}");
    let first = std::fs::read_to_string(&files[0]).unwrap();
    let checkpoint: serde_json::Value =
        serde_json::from_str(first.lines().next().unwrap()).unwrap();
    assert_eq!(checkpoint["checkpoint"]["reason"], "rotated");
    // Each rotation puts the trail's head in the log, outside the directory.
    let log = daemon.log();
    assert!(
        log.contains("audit file rotated") && log.contains("lines="),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_identical_denials_is_one_event_with_its_count() {
    let pg = small_cluster();
    let mut daemon = daemon_for(&pg)
        .env("BERKUT_AUDIT_BURST_SECONDS", "60")
        .start();
    let mut mallory = delegating(&daemon, "mallory").await;
    for _ in 0..50 {
        let error = server_error(
            mallory
                .call(Operation::BackupDelete(ops::BackupDelete {
                    id: backup_id(7),
                }))
                .await,
        );
        assert_eq!(error.code, ErrorCode::Forbidden);
    }
    // Another operation is another event.
    server_error(
        mallory
            .call(Operation::BackupList(ops::BackupList {
                offset: 0,
                limit: None,
            }))
            .await,
    );
    let Run {
        code,
        stdout: out,
        stderr: err,
    } = ctl(&daemon, &["audit", "tail", "-n", "100", "--json"]);
    assert_eq!(code, 0, "{err}");
    let events: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let deletes: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["op"] == "backup_delete")
        .collect();
    assert_eq!(deletes.len(), 1, "{out}");
    let burst = deletes[0];
    assert_eq!(
        (
            burst["decision"].as_str(),
            burst["code"].as_str(),
            burst["count"].as_u64()
        ),
        (Some("denied"), Some("forbidden"), Some(50)),
        "{burst}"
    );
    assert_eq!(burst["target"], backup_id(7).as_str());
    assert!(burst["until"].as_str().unwrap() >= burst["time"].as_str().unwrap());
    let lists: Vec<&serde_json::Value> =
        events.iter().filter(|e| e["op"] == "backup_list").collect();
    assert_eq!(lists.len(), 1);
    assert!(
        lists[0].get("count").is_none(),
        "a single denial has no count"
    );
    assert_eq!(verify_json(&daemon)["intact"], true);
    // A daemon that stops writes the bursts still open.
    server_error(
        mallory
            .call(Operation::BackupDelete(ops::BackupDelete {
                id: backup_id(9),
            }))
            .await,
    );
    drop(mallory);
    daemon.stop();
    assert!(
        trail_lines(&daemon)
            .iter()
            .any(|l| l.contains(backup_id(9).as_str())),
        "the open burst was written at shutdown"
    );
    drop(daemon);

    // A burst is written when its window closes, with no reader asking.
    let daemon = daemon_for(&pg)
        .env("BERKUT_AUDIT_BURST_SECONDS", "1")
        .start();
    let mut mallory = delegating(&daemon, "mallory").await;
    server_error(
        mallory
            .call(Operation::BackupDelete(ops::BackupDelete {
                id: backup_id(8),
            }))
            .await,
    );
    wait_events(&daemon, "backup_delete", 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cutting_or_editing_the_end_of_the_trail_is_reported_by_audit_verify() {
    let pg = small_cluster();
    let mut daemon = daemon_for(&pg).start();
    let mut client = daemon.client().await;
    for _ in 0..5 {
        client
            .call(Operation::Status(ops::Status {}))
            .await
            .unwrap();
    }
    wait_events(&daemon, "status", 5);
    let log = audit_dir(&daemon).join("audit.log");
    let saved = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = saved.lines().collect();

    // The newest two lines cut: the chain before them is intact, the head
    // is not there.
    std::fs::write(&log, lines[..lines.len() - 2].join("\n") + "\n").unwrap();
    let Run { code, stderr, .. } = ctl(&daemon, &["audit", "verify"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("the newest lines were removed"), "{stderr}");
    // Put them back, with the event of that verify after them.
    wait_events(&daemon, "audit_verify", 1);
    let added = std::fs::read_to_string(&log).unwrap();
    let verify_event = added.lines().last().unwrap().to_owned();
    std::fs::write(&log, format!("{saved}{verify_event}\n")).unwrap();
    assert_eq!(ctl(&daemon, &["audit", "verify"]).code, 0);

    // The last line edited: its `prev` is right, nothing follows it, only
    // the head shows it.
    wait_events(&daemon, "audit_verify", 2);
    let saved = std::fs::read_to_string(&log).unwrap();
    let mut lines: Vec<String> = saved.lines().map(str::to_owned).collect();
    let last = lines.len() - 1;
    lines[last] = lines[last].replace("\"uid\":0", "\"uid\":1000");
    assert_ne!(lines[last], saved.lines().last().unwrap());
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    let Run { code, stderr, .. } = ctl(&daemon, &["audit", "verify"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("not the one the daemon wrote"), "{stderr}");
    wait_events(&daemon, "audit_verify", 3);
    let verify_event = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_owned();
    std::fs::write(&log, format!("{saved}{verify_event}\n")).unwrap();
    assert_eq!(ctl(&daemon, &["audit", "verify"]).code, 0);

    // Cut while the daemon is stopped: the head file remembers.
    wait_events(&daemon, "audit_verify", 4);
    daemon.stop();
    let saved = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = saved.lines().collect();
    std::fs::write(&log, lines[..lines.len() - 3].join("\n") + "\n").unwrap();
    daemon.restart();
    let Run { code, stderr, .. } = ctl(&daemon, &["audit", "verify"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("did not end where it had left it"),
        "{stderr}"
    );
    assert!(daemon
        .log()
        .contains("does not end where the daemon left it"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tail_of_ten_thousand_long_lines_comes_in_pages() {
    const N: usize = 10_000;
    let pg = small_cluster();
    let daemon = daemon_for(&pg)
        .env("BERKUT_AUDIT_BURST_SECONDS", "0")
        .start();
    // 10 000 denials, each naming a different user of 200 characters
    // (400 bytes in UTF-8): some 7 MB of lines, more than a frame holds.
    let mut mallory = delegating(&daemon, "-").await;
    for n in 0..N {
        mallory.set_on_behalf_of(Some(OnBehalfOf {
            user: format!("{n:05}{}", "Ж".repeat(195)),
            role: Role::Viewer,
        }));
        server_error(mallory.call(Operation::Status(ops::Status {})).await);
    }
    wait_for("every denial is written", LONG, || {
        (trail_lines(&daemon).len() >= N).then_some(())
    });
    let user_of = |line: &str| -> usize {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        v["on_behalf_of"]["user"].as_str().unwrap()[..5]
            .parse()
            .unwrap()
    };

    // On the wire: pages of at most 1 MiB, each with the cursor to the next.
    let mut admin = daemon.client().await;
    let mut pages: Vec<Vec<String>> = Vec::new();
    let mut before = None;
    let mut got = 0;
    while got < N {
        let reply = admin
            .call(Operation::AuditTail(ops::AuditTail {
                lines: (N - got) as u32,
                before,
            }))
            .await
            .expect("a page fits in a frame");
        let Reply::Audit { lines, next } = reply else {
            panic!("{reply:?}")
        };
        assert!(!lines.is_empty());
        assert!(lines.iter().map(String::len).sum::<usize>() <= 1 << 20);
        got += lines.len();
        pages.push(lines);
        before = next;
        if before.is_none() {
            break;
        }
    }
    let page_count = pages.len();
    assert!(page_count > 5, "{page_count} pages");
    let wire: Vec<String> = pages.into_iter().rev().flatten().collect();
    assert_eq!(wire.len(), N);
    assert!(wire.iter().enumerate().all(|(i, l)| user_of(l) == i));
    assert_eq!(before, None, "nothing older than the first denial");

    // berkutctl pages the same way. By now each page asked above has its
    // event at the end of the trail.
    wait_events(&daemon, "audit_tail", page_count);
    let asked = trail_lines(&daemon).len() - N;
    assert_eq!(asked, page_count);
    let Run {
        code,
        stdout: out,
        stderr: err,
    } = ctl(&daemon, &["audit", "tail", "-n", "10000", "--json"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), N);
    assert_eq!(
        &lines[..N - asked],
        &wire[asked..].iter().map(String::as_str).collect::<Vec<_>>()[..]
    );
    assert!(lines[N - asked..]
        .iter()
        .all(|l| l.contains("\"op\":\"audit_tail\"")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_on_behalf_of_user_is_audited_as_the_invalid_it_was_answered() {
    let pg = small_cluster();
    let daemon = daemon_for(&pg).start();
    for user in ["", "a\nforged line"] {
        let mut client = delegating(&daemon, user).await;
        let error = server_error(client.call(Operation::Status(ops::Status {})).await);
        assert_eq!(error.code, ErrorCode::Invalid, "{user:?}");
    }
    let Run {
        code,
        stdout: out,
        stderr: err,
    } = ctl(&daemon, &["audit", "tail", "--json"]);
    assert_eq!(code, 0, "{err}");
    let events: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|e: &serde_json::Value| e["op"] == "invalid")
        .collect();
    // The two requests were refused before they were decoded: audited under
    // the operation `invalid`, in one event with a count when they came in
    // one burst.
    let total: u64 = events
        .iter()
        .map(|e| e["count"].as_u64().unwrap_or(1))
        .sum();
    assert_eq!(total, 2, "{out}");
    for event in events {
        assert_eq!(
            (event["decision"].as_str(), event["code"].as_str()),
            (Some("denied"), Some("invalid")),
            "{event}"
        );
    }
}
