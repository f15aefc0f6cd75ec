//! The audit trail (R10): one event per request, allowed or denied, to the
//! log and to an append-only file `<state_dir>/audit/audit.log`, one JSON
//! object per line. Every line carries `prev`, the sha256 of the line
//! before it (the first line of all, 64 zeros), so an edit, a deletion or a
//! reordering anywhere breaks the chain at that point. The file is rotated by
//! size into `audit.log.<n>`; the new file's first line continues the chain
//! from the old file's last.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use berkut_proto::wire::{ErrorCode, OnBehalfOf};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audited request. Persisted state: the shape is versioned by `v`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub v: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    pub request: u64,
    pub op: String,
    pub uid: u32,
    pub gid: u32,
    pub pid: Option<i32>,
    #[serde(default)]
    pub on_behalf_of: Option<OnBehalfOf>,
    /// The role the request was allowed with (absent when denied).
    #[serde(default)]
    pub role: Option<berkut_proto::wire::Role>,
    /// The backup or restore the request names, if any.
    #[serde(default)]
    pub target: Option<String>,
    /// `allowed` or `denied`.
    pub decision: String,
    /// For allowed requests: `succeeded` or `failed`.
    #[serde(default)]
    pub result: Option<String>,
    #[serde(default)]
    pub code: Option<ErrorCode>,
    /// The sha256 of the previous line.
    pub prev: String,
}

struct Tail {
    file: File,
    size: u64,
    last_hash: String,
}

pub struct Audit {
    dir: PathBuf,
    max_bytes: u64,
    tail: Mutex<Option<Tail>>,
}

fn hash(line: &str) -> String {
    hex::encode(Sha256::digest(line.as_bytes()))
}

/// The files of the trail, oldest first: rotated ones by number, then the
/// current one.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut rotated: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    name.strip_prefix("audit.log.")
                        .and_then(|n| n.parse().ok())
                        .map(|n| (n, e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    rotated.sort();
    let mut all: Vec<PathBuf> = rotated.into_iter().map(|(_, p)| p).collect();
    let current = dir.join("audit.log");
    if current.exists() {
        all.push(current);
    }
    all
}

fn last_line(path: &Path) -> Option<String> {
    let file = File::open(path).ok()?;
    BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter(|l| !l.is_empty())
        .last()
}

impl Audit {
    pub fn new(state_dir: &Path, max_bytes: u64) -> Audit {
        Audit {
            dir: state_dir.join("audit"),
            max_bytes,
            tail: Mutex::new(None),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Opens the current file, continuing the chain from the last line of
    /// the trail.
    fn open(&self) -> std::io::Result<Tail> {
        std::fs::create_dir_all(&self.dir)?;
        let last_hash = files(&self.dir)
            .iter()
            .rev()
            .find_map(|p| last_line(p))
            .map(|l| hash(&l))
            .unwrap_or_else(|| GENESIS.to_owned());
        let path = self.dir.join("audit.log");
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)?;
        let size = file.metadata()?.len();
        Ok(Tail {
            file,
            size,
            last_hash,
        })
    }

    /// Appends an event, to the log as well. A trail that cannot be written
    /// is logged loudly; the request it records has already been answered.
    pub fn record(&self, mut event: Event) {
        tracing::info!(
            target: "berkut::audit",
            request = event.request,
            op = %event.op,
            uid = event.uid,
            gid = event.gid,
            pid = ?event.pid,
            on_behalf_of = ?event.on_behalf_of.as_ref().map(|o| format!("{} ({})", o.user, o.role.as_str())),
            target_id = ?event.target,
            decision = %event.decision,
            result = ?event.result,
            code = ?event.code,
            "audit"
        );
        let mut guard = self.tail.lock().unwrap();
        let result = (|| -> std::io::Result<()> {
            if guard.is_none() {
                *guard = Some(self.open()?);
            }
            let tail = guard.as_mut().expect("opened above");
            event.prev = tail.last_hash.clone();
            let line = serde_json::to_string(&event).expect("an event serialises");
            if tail.size > 0 && tail.size + line.len() as u64 + 1 > self.max_bytes {
                self.rotate(tail)?;
            }
            tail.file.write_all(line.as_bytes())?;
            tail.file.write_all(b"\n")?;
            tail.file.sync_data()?;
            tail.size += line.len() as u64 + 1;
            tail.last_hash = hash(&line);
            Ok(())
        })();
        if let Err(e) = result {
            tracing::error!(error = %e, "the audit trail could not be written");
            *guard = None;
        }
    }

    fn rotate(&self, tail: &mut Tail) -> std::io::Result<()> {
        let next = files(&self.dir)
            .iter()
            .filter_map(|p| p.extension()?.to_str()?.parse::<u64>().ok())
            .max()
            .map_or(1, |n| n + 1);
        std::fs::rename(
            self.dir.join("audit.log"),
            self.dir.join(format!("audit.log.{next}")),
        )?;
        tail.file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(self.dir.join("audit.log"))?;
        tail.size = 0;
        Ok(())
    }

    /// The last `n` lines of the trail.
    pub fn tail_lines(&self, n: usize) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for path in files(&self.dir).iter().rev() {
            let Ok(file) = File::open(path) else { continue };
            let lines: Vec<String> = BufReader::new(file)
                .lines()
                .map_while(Result::ok)
                .filter(|l| !l.is_empty())
                .collect();
            let take = n.saturating_sub(out.len()).min(lines.len());
            let mut chunk = lines[lines.len() - take..].to_vec();
            chunk.append(&mut out);
            out = chunk;
            if out.len() >= n {
                break;
            }
        }
        out
    }
}

/// The outcome of checking the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub lines: u64,
    /// The first line that does not follow from the one before: file name,
    /// line number (from 1), and why.
    pub first_bad: Option<(String, u64, String)>,
}

/// Checks the whole trail: every line parses and carries the sha256 of the
/// line before it.
pub fn verify(dir: &Path) -> Verdict {
    let mut prev = GENESIS.to_owned();
    let mut lines = 0;
    for path in files(dir) {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Ok(file) = File::open(&path) else {
            continue;
        };
        for (i, line) in BufReader::new(file).lines().enumerate() {
            let number = i as u64 + 1;
            let Ok(line) = line else {
                return Verdict {
                    lines,
                    first_bad: Some((name, number, "unreadable".into())),
                };
            };
            lines += 1;
            match serde_json::from_str::<Event>(&line) {
                Err(_) => return Verdict { lines, first_bad: Some((name, number, "not an audit event".into())) },
                Ok(event) if event.prev != prev => {
                    return Verdict { lines, first_bad: Some((name, number, "does not follow from the line before it (this line or the one before was edited, removed or moved)".into())) }
                }
                Ok(_) => prev = hash(&line),
            }
        }
    }
    Verdict {
        lines,
        first_bad: None,
    }
}

/// What the connection knows of a request when it arrives, to audit it
/// when its outcome is known.
#[derive(Clone)]
pub struct AuditNote {
    event: Event,
}

impl AuditNote {
    pub fn new(
        peer: &crate::auth::Peer,
        request: u64,
        op: &berkut_proto::wire::Operation,
        on_behalf_of: Option<OnBehalfOf>,
        time: OffsetDateTime,
    ) -> AuditNote {
        AuditNote {
            event: Event {
                v: 1,
                time,
                request,
                op: op.name().to_owned(),
                uid: peer.uid,
                gid: peer.gid,
                pid: peer.pid,
                on_behalf_of,
                role: None,
                target: target_of(op),
                decision: "allowed".into(),
                result: None,
                code: None,
                prev: String::new(),
            },
        }
    }

    /// The note of a request allowed with `role`.
    pub fn with_role(mut self, role: berkut_proto::wire::Role) -> AuditNote {
        self.event.role = Some(role);
        self
    }

    pub fn denied(&self) -> Event {
        Event {
            decision: "denied".into(),
            code: Some(ErrorCode::Forbidden),
            ..self.event.clone()
        }
    }

    /// The event of an allowed request that ended with `code` (none: it
    /// succeeded).
    pub fn finished(&self, code: Option<ErrorCode>) -> Event {
        Event {
            result: Some(
                if code.is_none() {
                    "succeeded"
                } else {
                    "failed"
                }
                .into(),
            ),
            code,
            ..self.event.clone()
        }
    }
}

/// The backup or restore an operation names.
fn target_of(op: &berkut_proto::wire::Operation) -> Option<String> {
    use berkut_proto::wire::Operation as Op;
    match op {
        Op::BackupShow { id }
        | Op::BackupDelete { id }
        | Op::JobAttach { id }
        | Op::BackupPin { id }
        | Op::BackupUnpin { id }
        | Op::BackupDownload { id } => Some(id.to_string()),
        Op::RestoreStart { backup_id, .. } => Some(backup_id.to_string()),
        Op::RestoreStatus { restore_id, .. }
        | Op::RestoreEvidence { restore_id }
        | Op::RestoreRollback { restore_id }
        | Op::RestoreCleanup { restore_id } => Some(restore_id.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: u64) -> Event {
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
            prev: String::new(),
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

    #[test]
    fn the_chain_survives_rotation_and_catches_edits_deletions_and_reordering() {
        let state = tempfile::tempdir().unwrap();
        let audit = Audit::new(state.path(), 4096);
        for n in 0..40 {
            audit.record(event(n));
        }
        assert!(files(audit.dir()).len() > 1, "the trail was rotated");
        assert_eq!(
            verify(audit.dir()),
            Verdict {
                lines: 40,
                first_bad: None
            }
        );
        // A new daemon continues the chain.
        let again = Audit::new(state.path(), 4096);
        again.record(event(40));
        assert_eq!(verify(again.dir()).first_bad, None);
        assert_eq!(again.tail_lines(3).len(), 3);
        assert!(again.tail_lines(3)[2].contains("\"request\":40"));

        let first = files(audit.dir())[0].clone();
        // An edited line still carries the right `prev`: the chain breaks at
        // the line after it. A removed or moved line breaks it at once.
        for (what, bad_line, change) in [
            (
                "an edit",
                4,
                Box::new(|l: &mut Vec<String>| l[2] = l[2].replace("\"uid\":1000", "\"uid\":0"))
                    as Box<dyn FnOnce(&mut Vec<String>)>,
            ),
            (
                "a deletion",
                3,
                Box::new(|l: &mut Vec<String>| {
                    l.remove(2);
                }),
            ),
            (
                "a reordering",
                3,
                Box::new(|l: &mut Vec<String>| l.swap(2, 3)),
            ),
        ] {
            let saved = std::fs::read(&first).unwrap();
            rewrite(&first, change);
            let verdict = verify(audit.dir());
            let (file, line, _) = verdict
                .first_bad
                .unwrap_or_else(|| panic!("{what} was not caught"));
            assert_eq!(
                (file.as_str(), line),
                (first.file_name().unwrap().to_str().unwrap(), bad_line),
                "{what}"
            );
            std::fs::write(&first, saved).unwrap();
        }
        assert_eq!(verify(audit.dir()).first_bad, None);
    }
}
