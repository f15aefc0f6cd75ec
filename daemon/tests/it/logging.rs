//! Where the log goes. Under systemd (stderr is the stream `JOURNAL_STREAM`
//! names) events go to journald as structured fields and nothing to stderr,
//! so no line is logged twice; anywhere else they go to stderr as text.
//!
//! The journald test gives the daemon a mount namespace of its own in which
//! the test's datagram socket is `/run/systemd/journal/socket`, the fixed
//! path of journald's native protocol. That takes root (as CI runs); run as
//! another user it says so and checks nothing.

use std::collections::HashMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use berkut_proto::wire::{ops, Operation};

use crate::helpers::*;

/// One journal entry in the native protocol: `NAME\n<u64 LE length><value>\n`
/// or `NAME=value\n` per field.
fn parse_entry(mut data: &[u8]) -> HashMap<String, String> {
    let mut fields = HashMap::new();
    while !data.is_empty() {
        let Some(nl) = data.iter().position(|&b| b == b'\n') else {
            break;
        };
        let line = &data[..nl];
        if let Some(eq) = line.iter().position(|&b| b == b'=') {
            fields.insert(
                String::from_utf8_lossy(&line[..eq]).into_owned(),
                String::from_utf8_lossy(&line[eq + 1..]).into_owned(),
            );
            data = &data[nl + 1..];
        } else {
            let name = String::from_utf8_lossy(line).into_owned();
            let rest = &data[nl + 1..];
            let len = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
            let value = String::from_utf8_lossy(&rest[8..8 + len]).into_owned();
            fields.insert(name, value);
            data = &rest[8 + len + 1..];
        }
    }
    fields
}

fn wait_entry(
    journal: &UnixDatagram,
    what: &str,
    seen: &mut Vec<HashMap<String, String>>,
    pred: impl Fn(&HashMap<String, String>) -> bool,
) -> HashMap<String, String> {
    let deadline = Instant::now() + LONG;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "timed out waiting for {what}; journal entries: {seen:#?}"
        );
        journal
            .set_read_timeout(Some(left.min(Duration::from_secs(1))))
            .unwrap();
        if let Ok(n) = journal.recv(&mut buf) {
            let entry = parse_entry(&buf[..n]);
            if pred(&entry) {
                return entry;
            }
            seen.push(entry);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_systemd_events_go_to_journald_as_fields_and_not_to_stderr() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: a mount namespace for the journal socket needs root");
        return;
    }
    let pg = small_cluster();
    // The daemon's /run: the journal socket at systemd's fixed path.
    let run = berkut_testkit::temp_dir("journal-");
    std::fs::create_dir_all(run.path().join("systemd/journal")).unwrap();
    let journal = UnixDatagram::bind(run.path().join("systemd/journal/socket")).unwrap();
    // stderr will be this file; JOURNAL_STREAM names it as systemd would.
    let dir = berkut_testkit::temp_dir("berkutd-");
    let log = dir.path().join("berkutd.log");
    std::fs::write(&log, b"").unwrap();
    let meta = std::fs::metadata(&log).unwrap();
    let run_path = CString::new(run.path().as_os_str().as_bytes()).unwrap();
    let (root, target) = (CString::new("/").unwrap(), CString::new("/run").unwrap());
    // SAFETY: only system calls, on strings made before the fork.
    let builder = unsafe {
        daemon_for(&pg)
            .dir(dir)
            .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
            .pre_exec(move || {
                use nix::libc::{mount, unshare, CLONE_NEWNS, MS_BIND, MS_PRIVATE, MS_REC};
                let null = std::ptr::null();
                // Private first, so that nothing propagates to the host.
                if unshare(CLONE_NEWNS) != 0
                    || mount(null, root.as_ptr(), null, MS_REC | MS_PRIVATE, null.cast()) != 0
                    || mount(
                        run_path.as_ptr(),
                        target.as_ptr(),
                        null,
                        MS_BIND,
                        null.cast(),
                    ) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            })
    };
    let mut daemon = builder.start();
    let mut seen = Vec::new();
    let ready = wait_entry(&journal, "the ready event", &mut seen, |e| {
        e.get("MESSAGE")
            .is_some_and(|m| m.starts_with("berkutd ") && m.ends_with(" ready"))
    });
    assert_eq!(
        ready.get("SYSLOG_IDENTIFIER").map(String::as_str),
        Some("berkutd")
    );
    assert_eq!(ready.get("PRIORITY").map(String::as_str), Some("6"));
    assert_eq!(
        ready.get("BERKUT_SOCKET").map(String::as_str),
        Some(daemon.socket.to_str().unwrap()),
        "{ready:?}"
    );
    assert_eq!(
        ready.get("BERKUT_MAX_PARALLEL").map(String::as_str),
        Some("2")
    );

    let mut client = daemon.client().await;
    assert!(client.call(Operation::Status(ops::Status {})).await.is_ok());
    let request = wait_entry(&journal, "the request event", &mut seen, |e| {
        e.get("MESSAGE").is_some_and(|m| m == "request")
    });
    assert_eq!(
        request.get("BERKUT_OP").map(String::as_str),
        Some("status"),
        "{request:?}"
    );
    drop(client);
    assert!(daemon.stop().success());
    wait_entry(&journal, "the stopped event", &mut seen, |e| {
        e.get("MESSAGE").is_some_and(|m| m == "stopped")
    });
    assert_eq!(daemon.log(), "", "events were also written to stderr");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_stream_that_is_not_stderr_leaves_the_log_on_stderr() {
    let pg = small_cluster();
    let mut daemon = daemon_for(&pg).env("JOURNAL_STREAM", "1:1").start();
    assert!(daemon.stop().success());
    let log = daemon.log();
    assert!(log.contains(" ready") && log.contains("stopped"), "{log}");
}
