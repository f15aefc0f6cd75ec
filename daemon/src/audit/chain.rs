//! The trail's format apart from the events themselves: the hash chain,
//! the checkpoint lines the daemon writes into it, the head (how many lines
//! the trail holds and the hash of the last), and the head file that keeps
//! the head across restarts.
//!
//! A checkpoint is a line of the chain like any other (it carries `prev` and
//! the next line hashes it), so it cannot be removed or edited without
//! breaking the chain. It records how many lines came before it since the
//! genesis and which rotated file is the oldest the trail keeps; that is
//! what lets `audit_verify` start from a file whose predecessors were
//! removed under the size bound, and notice when one more was removed.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::Event;

/// The `prev` of the first line of all.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The name of the file being written.
pub const CURRENT: &str = "audit.log";

/// The file holding the head while the daemon is stopped.
pub const HEAD_FILE: &str = "audit.head";

pub fn hash(line: &str) -> String {
    hex::encode(Sha256::digest(line.as_bytes()))
}

/// Where the trail ends: its number of lines since the genesis (removed
/// ones included) and the hash of the last one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    pub lines: u64,
    pub last: String,
}

impl Head {
    pub fn genesis() -> Head {
        Head {
            lines: 0,
            last: GENESIS.to_owned(),
        }
    }
}

/// Why the daemon wrote a checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The first line of a file begun by rotation (or found empty at start).
    Rotated,
    /// Old files were removed at start-up to honour a lowered bound.
    Removed,
    /// At start-up the trail did not end where the head file said.
    HeadMismatch,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    pub reason: Reason,
    /// The lines of the trail before this one, since the genesis.
    pub lines: u64,
    /// The number of the oldest rotated file kept (`audit.log.<n>`); nil
    /// when none is.
    pub first: Option<u64>,
    /// The file this one continues (`rotated` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// `head_mismatch` only: the head the daemon had recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<Head>,
}

/// A checkpoint line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub v: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    pub checkpoint: Mark,
    pub prev: String,
}

/// A line of the trail.
pub enum Line {
    Event(Box<Event>),
    Checkpoint(Checkpoint),
}

impl Line {
    pub fn parse(text: &str) -> Option<Line> {
        if let Ok(event) = serde_json::from_str::<Event>(text) {
            return Some(Line::Event(Box::new(event)));
        }
        serde_json::from_str::<Checkpoint>(text)
            .ok()
            .map(Line::Checkpoint)
    }

    pub fn prev(&self) -> &str {
        match self {
            Line::Event(e) => &e.prev,
            Line::Checkpoint(c) => &c.prev,
        }
    }

    pub fn checkpoint(&self) -> Option<&Mark> {
        match self {
            Line::Checkpoint(c) => Some(&c.checkpoint),
            Line::Event(_) => None,
        }
    }
}

/// A file of the trail: `audit.log.<number>`, or the current `audit.log`
/// (no number).
#[derive(Clone, Debug)]
pub struct TrailFile {
    pub number: Option<u64>,
    pub path: PathBuf,
}

impl TrailFile {
    pub fn name(&self) -> String {
        match self.number {
            Some(n) => format!("{CURRENT}.{n}"),
            None => CURRENT.to_owned(),
        }
    }
}

/// The files of the trail, oldest first: rotated ones by number, then the
/// current one.
pub fn files(dir: &Path) -> Vec<TrailFile> {
    let mut all: Vec<TrailFile> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let digits = name.strip_prefix("audit.log.")?;
                    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                        return None;
                    }
                    Some(TrailFile {
                        number: Some(digits.parse().ok()?),
                        path: e.path(),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    all.sort_by_key(|f| f.number);
    let current = dir.join(CURRENT);
    if current.exists() {
        all.push(TrailFile {
            number: None,
            path: current,
        });
    }
    all
}

/// The lines of `file`'s first `len` bytes (the whole file when `None`),
/// without their newlines. A line that is not UTF-8 ends the reading with
/// an error.
pub fn read_lines(file: &File, len: Option<u64>) -> std::io::Result<Vec<String>> {
    let mut f = file;
    f.seek(SeekFrom::Start(0))?;
    let reader = BufReader::new(f.take(len.unwrap_or(u64::MAX)));
    reader.lines().collect()
}

/// The first line of `file`, if it has one.
pub fn first_line(file: &File) -> Option<String> {
    let mut f = file;
    f.seek(SeekFrom::Start(0)).ok()?;
    let mut line = String::new();
    BufReader::new(f).read_line(&mut line).ok()?;
    let line = line.strip_suffix('\n')?;
    Some(line.to_owned())
}

/// Reads the head file: `None` when there is none (a new trail, or one
/// written before heads were kept); `Some(None)` when it cannot be read.
pub fn read_head(dir: &Path) -> Option<Option<Head>> {
    match std::fs::read_to_string(dir.join(HEAD_FILE)) {
        Ok(text) => Some(serde_json::from_str(text.trim()).ok()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(_) => Some(None),
    }
}

/// Replaces the head file, never in place: a reader sees the old head or
/// the new one. The temporary file is created exclusively and a link
/// planted under its name is not followed. Not synced: after a power loss
/// the head may lag behind the trail, which start-up accepts when the trail
/// still holds the head's line (see `Audit::open`).
pub fn write_head(dir: &Path, head: &Head) -> std::io::Result<()> {
    let tmp = dir.join(format!("{HEAD_FILE}.tmp"));
    let mut file = crate::fsutil::create_exclusive(&tmp, 0o600)?;
    let text = serde_json::to_string(head).expect("a head serialises");
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")?;
    drop(file);
    std::fs::rename(&tmp, dir.join(HEAD_FILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_is_not_taken_for_an_event_nor_an_event_for_a_checkpoint() {
        let cp = Checkpoint {
            v: 1,
            time: time::macros::datetime!(2026-11-21 00:00 UTC),
            checkpoint: Mark {
                reason: Reason::Rotated,
                lines: 41,
                first: Some(3),
                after: Some("audit.log.7".into()),
                expected: None,
            },
            prev: GENESIS.into(),
        };
        let text = serde_json::to_string(&cp).unwrap();
        assert!(matches!(Line::parse(&text), Some(Line::Checkpoint(c)) if c == cp));
        assert!(Line::parse("{\"v\":1}").is_none());
    }

    #[test]
    fn the_head_file_is_replaced_whole_and_a_stale_temporary_is_no_obstacle() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_head(dir.path()), None);
        std::fs::write(dir.path().join("audit.head.tmp"), "junk").unwrap();
        let head = Head {
            lines: 7,
            last: hash("x"),
        };
        write_head(dir.path(), &head).unwrap();
        assert_eq!(read_head(dir.path()), Some(Some(head)));
        std::fs::write(dir.path().join(HEAD_FILE), "not json").unwrap();
        assert_eq!(read_head(dir.path()), Some(None));
    }
}
