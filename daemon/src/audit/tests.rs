//! The chain, its checkpoints, the bound and the head, on real files.

use std::path::Path;
use std::time::Duration;

use super::chain::{files, CURRENT};
use super::*;

pub fn event(n: u64) -> Event {
    Event {
        v: 1,
        time: time::macros::datetime!(2026-11-21 00:00 UTC),
        request: n,
        op: "status".into(),
        uid: 1000,
        gid: 1000,
        pid: Some(42),
        on_behalf_of: None,
        role: None,
        target: None,
        decision: "allowed".into(),
        result: Some("succeeded".into()),
        code: None,
        count: None,
        until: None,
        prev: String::new(),
    }
}

fn limits(max_bytes: u64, keep_bytes: u64) -> Limits {
    Limits {
        max_bytes,
        keep_bytes,
        burst: Duration::ZERO,
    }
}

fn rewrite(path: &Path, change: impl FnOnce(&mut Vec<String>)) {
    let mut lines: Vec<String> = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    change(&mut lines);
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

fn bad_at(verdict: &Verdict) -> Option<(&str, u64)> {
    verdict
        .first_bad
        .as_ref()
        .map(|(file, line, _)| (file.as_str(), *line))
}

fn dir_bytes(dir: &Path) -> u64 {
    files(dir)
        .iter()
        .map(|f| std::fs::metadata(&f.path).unwrap().len())
        .sum()
}

#[test]
fn the_chain_survives_rotation_and_catches_edits_deletions_and_reordering() {
    let state = tempfile::tempdir().unwrap();
    let audit = Audit::new(state.path(), limits(4096, 1 << 20));
    for n in 0..40 {
        audit.record(event(n));
    }
    assert!(files(audit.dir()).len() > 1, "the trail was rotated");
    let verdict = audit.snapshot().verify();
    assert_eq!(verdict.first_bad, None);
    // 40 events and a checkpoint opening each file after the first.
    assert_eq!(verdict.lines, 40 + files(audit.dir()).len() as u64 - 1);
    // A new daemon continues the chain.
    drop(audit);
    let again = Audit::new(state.path(), limits(4096, 1 << 20));
    again.record(event(40));
    assert_eq!(again.snapshot().verify().first_bad, None);
    let page = again.snapshot().page(3, None, 1 << 20);
    assert_eq!(page.lines.len(), 3);
    assert!(page.lines[2].contains("\"request\":40"));

    let first = files(again.dir())[0].path.clone();
    let name = first.file_name().unwrap().to_str().unwrap().to_owned();
    // An edited line still carries the right `prev`: the chain breaks at
    // the line after it. A removed or moved line breaks it at once.
    type Change = Box<dyn FnOnce(&mut Vec<String>)>;
    let cases: Vec<(&str, u64, Change)> = vec![
        (
            "an edit",
            4,
            Box::new(|l| l[2] = l[2].replace("\"uid\":1000", "\"uid\":0")),
        ),
        (
            "a deletion",
            3,
            Box::new(|l| {
                l.remove(2);
            }),
        ),
        ("a reordering", 3, Box::new(|l| l.swap(2, 3))),
    ];
    for (what, bad_line, change) in cases {
        let saved = std::fs::read(&first).unwrap();
        rewrite(&first, change);
        let verdict = again.snapshot().verify();
        assert_eq!(bad_at(&verdict), Some((name.as_str(), bad_line)), "{what}");
        std::fs::write(&first, saved).unwrap();
    }
    assert_eq!(again.snapshot().verify().first_bad, None);
}

#[test]
fn the_directory_stays_under_its_bound_and_verifies_from_the_oldest_file_kept() {
    let state = tempfile::tempdir().unwrap();
    let audit = Audit::new(state.path(), limits(4096, 16384));
    for n in 0..500 {
        audit.record(event(n));
        assert!(dir_bytes(audit.dir()) <= 16384, "after event {n}");
    }
    let kept = files(audit.dir());
    assert!(kept[0].number.unwrap() > 1, "old files were removed");
    let verdict = audit.snapshot().verify();
    assert_eq!(verdict.first_bad, None);
    assert!(verdict.removed > 0);
    // Every line since the genesis is counted: the removed and the kept.
    let head = audit.snapshot().end();
    assert_eq!(verdict.removed + verdict.lines, head.lines);
    // The same after a restart, from the head file.
    drop(audit);
    let again = Audit::new(state.path(), limits(4096, 16384));
    assert_eq!(again.snapshot().verify().first_bad, None);

    // Removing the oldest file kept, or one in the middle, is caught.
    for victim in [0, 1] {
        let path = &kept[victim].path;
        let saved = std::fs::read(path).unwrap();
        std::fs::remove_file(path).unwrap();
        let verdict = again.snapshot().verify();
        assert!(verdict.first_bad.is_some(), "removing file {victim}");
        std::fs::write(path, saved).unwrap();
    }
    assert_eq!(again.snapshot().verify().first_bad, None);
}

#[test]
fn a_lowered_bound_applies_at_the_next_start_and_says_so_in_the_chain() {
    let state = tempfile::tempdir().unwrap();
    let audit = Audit::new(state.path(), limits(4096, 1 << 20));
    for n in 0..200 {
        audit.record(event(n));
    }
    drop(audit);
    let audit = Audit::new(state.path(), limits(4096, 12288));
    audit.record(event(200));
    assert!(dir_bytes(audit.dir()) <= 12288);
    let verdict = audit.snapshot().verify();
    assert_eq!(verdict.first_bad, None);
    assert!(verdict.removed > 0);
}

#[test]
fn cutting_the_newest_lines_or_editing_the_last_is_caught_while_the_daemon_runs() {
    let state = tempfile::tempdir().unwrap();
    let audit = Audit::new(state.path(), limits(1 << 20, 4 << 20));
    for n in 0..10 {
        audit.record(event(n));
    }
    let log = audit.dir().join(CURRENT);
    let saved = std::fs::read(&log).unwrap();
    rewrite(&log, |l| l.truncate(8));
    let verdict = audit.snapshot().verify();
    assert_eq!(bad_at(&verdict), Some((CURRENT, 8)));
    assert!(verdict
        .first_bad
        .unwrap()
        .2
        .contains("newest lines were removed"));
    std::fs::write(&log, &saved).unwrap();
    rewrite(&log, |l| {
        l[9] = l[9].replace("\"request\":9", "\"request\":99")
    });
    let verdict = audit.snapshot().verify();
    assert_eq!(bad_at(&verdict), Some((CURRENT, 10)));
    assert!(verdict.first_bad.unwrap().2.contains("edited"));
    // Without the head (the files alone) neither shows: that is what the
    // head is for.
    assert_eq!(Snapshot::of_dir(audit.dir()).verify().first_bad, None);
    std::fs::write(&log, &saved).unwrap();
    assert_eq!(audit.snapshot().verify().first_bad, None);
}

#[test]
fn a_trail_cut_while_the_daemon_was_stopped_is_reported_after_the_restart() {
    let state = tempfile::tempdir().unwrap();
    let audit = Audit::new(state.path(), limits(1 << 20, 4 << 20));
    for n in 0..10 {
        audit.record(event(n));
    }
    drop(audit);
    let log = state.path().join("audit").join(CURRENT);
    rewrite(&log, |l| l.truncate(7));
    let again = Audit::new(state.path(), limits(1 << 20, 4 << 20));
    again.record(event(10));
    let verdict = again.snapshot().verify();
    let (file, line, why) = verdict.first_bad.unwrap();
    assert_eq!((file.as_str(), line), (CURRENT, 8));
    assert!(why.contains("did not end where it had left it"), "{why}");
}

#[test]
fn a_line_half_written_when_the_daemon_died_is_cut_and_the_chain_goes_on() {
    let state = tempfile::tempdir().unwrap();
    let audit = Audit::new(state.path(), limits(1 << 20, 4 << 20));
    for n in 0..3 {
        audit.record(event(n));
    }
    let current = audit.dir().join(CURRENT);
    drop(audit);
    // The daemon died (or the disk filled) in the middle of a line.
    let mut torn = std::fs::OpenOptions::new()
        .append(true)
        .open(&current)
        .unwrap();
    std::io::Write::write_all(&mut torn, br#"{"v":1,"time":"2026-11-"#).unwrap();
    drop(torn);
    let again = Audit::new(state.path(), limits(1 << 20, 4 << 20));
    again.record(event(3));
    let verdict = again.snapshot().verify();
    assert_eq!((verdict.first_bad, verdict.lines), (None, 4));
}

#[test]
fn a_head_that_lags_after_a_crash_is_no_alarm() {
    let state = tempfile::tempdir().unwrap();
    let audit = Audit::new(state.path(), limits(1 << 20, 4 << 20));
    for n in 0..5 {
        audit.record(event(n));
    }
    let head_file = audit.dir().join(chain::HEAD_FILE);
    let lagging = std::fs::read(&head_file).unwrap();
    audit.record(event(5));
    drop(audit);
    // The daemon died after writing the line, before saving the head.
    std::fs::write(&head_file, lagging).unwrap();
    let again = Audit::new(state.path(), limits(1 << 20, 4 << 20));
    again.record(event(6));
    let verdict = again.snapshot().verify();
    assert_eq!((verdict.first_bad, verdict.lines), (None, 7));
}

#[test]
fn pages_go_back_to_the_oldest_line_kept_whatever_their_size() {
    let state = tempfile::tempdir().unwrap();
    let audit = Audit::new(state.path(), limits(4096, 16384));
    for n in 0..300 {
        audit.record(event(n));
    }
    let snapshot = audit.snapshot();
    let everything = snapshot.page(100_000, None, usize::MAX).lines;
    let kept: Vec<String> = files(audit.dir())
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(&f.path)
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(everything, kept);
    // Pages of at most 1000 bytes, newest first, put back together.
    let mut pages = Vec::new();
    let mut before = None;
    loop {
        let page = snapshot.page(25, before, 1000);
        assert!(!page.lines.is_empty());
        assert!(page.lines.len() <= 25);
        assert!(page.lines.iter().map(String::len).sum::<usize>() <= 1000);
        pages.push(page.lines);
        match page.next {
            Some(n) => before = Some(n),
            None => break,
        }
    }
    let joined: Vec<String> = pages.into_iter().rev().flatten().collect();
    assert_eq!(joined, kept);
    // A line longer than the budget still comes, alone.
    assert_eq!(snapshot.page(5, None, 1).lines.len(), 1);
    assert!(snapshot.page(0, None, 1000).lines.is_empty());
}

#[test]
fn a_trail_written_before_checkpoints_still_verifies_and_gets_them() {
    // Two files as an older daemon wrote them: no checkpoint, no head.
    let state = tempfile::tempdir().unwrap();
    let dir = state.path().join("audit");
    std::fs::create_dir(&dir).unwrap();
    let mut prev = chain::GENESIS.to_owned();
    for (file, range) in [("audit.log.1", 0..5), (CURRENT, 5..8)] {
        let mut text = String::new();
        for n in range {
            let line = serde_json::to_string(&Event {
                prev: prev.clone(),
                ..event(n)
            })
            .unwrap();
            prev = chain::hash(&line);
            text.push_str(&line);
            text.push('\n');
        }
        std::fs::write(dir.join(file), text).unwrap();
    }
    let audit = Audit::new(state.path(), limits(4096, 8192));
    for n in 8..100 {
        audit.record(event(n));
    }
    assert!(dir_bytes(audit.dir()) <= 8192);
    let verdict = audit.snapshot().verify();
    assert_eq!(verdict.first_bad, None);
    assert_eq!(
        verdict.removed + verdict.lines,
        audit.snapshot().end().lines
    );
}

#[test]
fn a_burst_of_identical_denials_is_written_once_with_its_count() {
    let state = tempfile::tempdir().unwrap();
    let audit = Audit::new(
        state.path(),
        Limits {
            burst: Duration::from_secs(60),
            ..limits(1 << 20, 4 << 20)
        },
    );
    let denial = Event {
        decision: "denied".into(),
        result: None,
        code: Some(ErrorCode::Forbidden),
        ..event(1)
    };
    for _ in 0..50 {
        audit.record(denial.clone());
    }
    audit.record(event(2));
    // Reading the trail writes the bursts still open.
    let lines = audit.snapshot().page(100, None, 1 << 20).lines;
    assert_eq!(lines.len(), 2, "{lines:?}");
    let collapsed: Event = serde_json::from_str(&lines[1]).unwrap();
    assert_eq!(
        (collapsed.decision.as_str(), collapsed.count),
        ("denied", Some(50))
    );
    assert_eq!(audit.snapshot().verify().first_bad, None);
}

#[test]
fn events_and_checkpoints_read_as_the_protocol_document_shows_them() {
    let doc = include_str!("../../../docs/PROTOCOL.md");
    let trail = &doc[doc.find("### 6.28 The audit trail").unwrap()..];
    let examples: Vec<&str> = trail
        .lines()
        .take_while(|l| !l.starts_with("## 7."))
        .filter(|l| l.starts_with("{\"v\":1,"))
        .collect();
    assert_eq!(examples.len(), 3, "a single event, a burst, a checkpoint");
    let keys = |text: &str| -> Vec<String> {
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        let mut keys: Vec<(usize, String)> = v
            .as_object()
            .unwrap()
            .keys()
            .map(|k| (text.find(&format!("\"{k}\":")).unwrap(), k.clone()))
            .collect();
        keys.sort();
        keys.into_iter().map(|(_, k)| k).collect()
    };
    for example in examples {
        // What the daemon reads, it writes with the same fields in the
        // same order.
        let written = match chain::Line::parse(example).expect(example) {
            chain::Line::Event(e) => serde_json::to_string(&e).unwrap(),
            chain::Line::Checkpoint(c) => serde_json::to_string(&c).unwrap(),
        };
        assert_eq!(keys(&written), keys(example));
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&written).unwrap()["prev"],
            serde_json::from_str::<serde_json::Value>(example).unwrap()["prev"]
        );
    }
}

#[test]
fn new_limits_apply_from_the_next_rotation_and_the_next_burst() {
    let state = tempfile::tempdir().unwrap();
    let audit = Audit::new(state.path(), limits(4096, 1 << 20));
    for n in 0..200 {
        audit.record(event(n));
    }
    assert!(dir_bytes(audit.dir()) > 16384);
    audit.set_limits(limits(4096, 16384));
    for n in 200..220 {
        audit.record(event(n));
    }
    assert!(dir_bytes(audit.dir()) <= 16384);
    assert_eq!(audit.snapshot().verify().first_bad, None);
    // Bursts now: two identical denials are one event.
    audit.set_limits(Limits {
        burst: Duration::from_secs(60),
        ..limits(4096, 16384)
    });
    let denial = Event {
        decision: "denied".into(),
        result: None,
        code: Some(ErrorCode::Forbidden),
        ..event(1)
    };
    audit.record(denial.clone());
    audit.record(denial);
    let last = audit.snapshot().page(1, None, 1 << 20).lines;
    let event: Event = serde_json::from_str(&last[0]).unwrap();
    assert_eq!(event.count, Some(2));
}
