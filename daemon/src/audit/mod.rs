//! The audit trail (R10): one event per request, allowed or denied, to the
//! log and to an append-only file `<state_dir>/audit/audit.log`, one JSON
//! object per line. Every line carries `prev`, the sha256 of the line
//! before it (the first line of all, 64 zeros), so an edit, a deletion or a
//! reordering anywhere breaks the chain at that point.
//!
//! The file is rotated by size into `audit.log.<n>`, and the oldest rotated
//! files are removed to keep the directory under `audit_keep_bytes`
//! (`retention`); each file begun by rotation opens with a checkpoint line
//! (`chain`) so the chain can be checked from the oldest file kept. The
//! daemon knows the trail's head (its number of lines and the hash of the
//! last) and keeps it in `audit.head`, so lines cut from the end or an edit
//! of the last line are caught too (`read::Snapshot::verify`). Identical
//! denials in a burst are one event with a count (`burst`).

mod burst;
pub mod chain;
mod note;
mod read;
mod retention;
#[cfg(test)]
mod tests;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use berkut_proto::wire::{ErrorCode, OnBehalfOf};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use burst::Bursts;
use chain::{Checkpoint, Head, Mark, Reason, CURRENT};
pub use note::AuditNote;
pub use read::{Page, Snapshot, Verdict};

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
    /// A burst of identical denials (see `burst`): how many, and when the
    /// last came. Absent for a single request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub until: Option<OffsetDateTime>,
    /// The sha256 of the previous line.
    pub prev: String,
}

/// How big the trail may grow and how denials are collapsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The current file is rotated when a line would take it past this.
    pub max_bytes: u64,
    /// The most the trail's files may take together.
    pub keep_bytes: u64,
    /// How long a burst of identical denials stays open (zero: no bursts).
    pub burst: Duration,
}

impl Limits {
    /// The limits a configuration sets, at start and at every reload.
    pub fn of(config: &crate::config::Config) -> Limits {
        Limits {
            max_bytes: config.audit_max_bytes,
            keep_bytes: config.audit_keep_bytes,
            burst: config.audit_burst,
        }
    }
}

struct Tail {
    file: File,
    size: u64,
    head: Head,
    /// The number the current file gets when it is rotated.
    next_number: u64,
}

struct Inner {
    tail: Option<Tail>,
    bursts: Bursts,
}

pub struct Audit {
    dir: PathBuf,
    limits: RwLock<Limits>,
    inner: Mutex<Inner>,
}

fn open_current(dir: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(dir.join(CURRENT))
}

/// Cuts off the end of the current file after its last newline: a line
/// the daemon was writing when it died. That line was never counted in the
/// head (the head is saved after the line), so the chain stays whole.
/// Returns the file's size after.
fn cut_torn_line(file: &File) -> std::io::Result<u64> {
    use std::io::{Read, Seek, SeekFrom};
    let size = file.metadata()?.len();
    if size == 0 {
        return Ok(0);
    }
    // Lines are bounded; look back at most this far for the last newline.
    const LOOK_BACK: u64 = 1 << 20;
    let from = size.saturating_sub(LOOK_BACK);
    let mut end = Vec::new();
    let mut reader = file;
    reader.seek(SeekFrom::Start(from))?;
    reader.take(size - from).read_to_end(&mut end)?;
    if end.last() == Some(&b'\n') {
        return Ok(size);
    }
    let keep = match end.iter().rposition(|b| *b == b'\n') {
        Some(i) => from + i as u64 + 1,
        None if from == 0 => 0,
        None => return Ok(size),
    };
    tracing::warn!(
        cut = size - keep,
        "the audit file ended in a line half written (the daemon stopped or the disk filled while writing it); that part is cut off"
    );
    file.set_len(keep)?;
    Ok(keep)
}

impl Audit {
    pub fn new(state_dir: &Path, limits: Limits) -> Audit {
        Audit {
            dir: state_dir.join("audit"),
            limits: RwLock::new(limits),
            inner: Mutex::new(Inner {
                tail: None,
                bursts: Bursts::new(limits.burst),
            }),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn limits(&self) -> Limits {
        *self.limits.read().unwrap()
    }

    /// New limits, from a reload: the file size and the bound apply from
    /// the next rotation, the burst window to bursts opened from now on.
    pub fn set_limits(&self, limits: Limits) {
        let mut inner = self.inner.lock().unwrap();
        *self.limits.write().unwrap() = limits;
        inner.bursts.set_window(limits.burst);
    }

    /// Records an event: at once, or, for a denial, when its burst closes.
    /// A trail that cannot be written is logged loudly; the request it
    /// records has already been answered.
    pub fn record(&self, event: Event) {
        let mut inner = self.inner.lock().unwrap();
        let now = Instant::now();
        let mut due = inner.bursts.close(Some(now));
        due.extend(inner.bursts.offer(event, now));
        for event in due {
            self.write(&mut inner, event);
        }
    }

    /// Writes the bursts whose window has passed (all of them with `all`).
    pub fn flush(&self, all: bool) {
        let mut inner = self.inner.lock().unwrap();
        let due = inner.bursts.close((!all).then(Instant::now));
        for event in due {
            self.write(&mut inner, event);
        }
    }

    /// Closes bursts as their windows pass, until `shutdown`; then writes
    /// those still open.
    pub async fn flush_bursts(&self, shutdown: &tokio_util::sync::CancellationToken) {
        loop {
            // A quarter of the window late at most; the window may change
            // on a reload.
            let tick =
                (self.limits().burst / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
            tokio::select! {
                _ = tokio::time::sleep(tick) => self.flush(false),
                _ = shutdown.cancelled() => break,
            }
        }
        self.flush(true);
    }

    /// The trail as it stands, with the head, for reading: open bursts
    /// are written first, so the reader sees every request answered.
    pub fn snapshot(&self) -> Snapshot {
        let mut inner = self.inner.lock().unwrap();
        for event in inner.bursts.close(None) {
            self.write(&mut inner, event);
        }
        if inner.tail.is_none() {
            inner.tail = self.open().ok();
        }
        let head = inner.tail.as_ref().map(|t| t.head.clone());
        let files = chain::files(&self.dir)
            .into_iter()
            .filter_map(|f| {
                let file = File::open(&f.path).ok()?;
                let len = file.metadata().ok()?.len();
                Some((f, file, len))
            })
            .collect();
        Snapshot::new(files, head)
    }

    fn write(&self, inner: &mut Inner, mut event: Event) {
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
            count = ?event.count,
            "audit"
        );
        let result = (|| -> std::io::Result<()> {
            if inner.tail.is_none() {
                inner.tail = Some(self.open()?);
            }
            let tail = inner.tail.as_mut().expect("opened above");
            // A hash is 64 characters whatever the line before: the length
            // does not depend on `prev`.
            event.prev = tail.head.last.clone();
            let length = serde_json::to_string(&event)
                .expect("an event serialises")
                .len() as u64;
            if tail.size > 0 && tail.size + length + 1 > self.limits().max_bytes {
                self.rotate(tail)?;
                event.prev = tail.head.last.clone();
            }
            let line = serde_json::to_string(&event).expect("an event serialises");
            self.append(tail, &line)
        })();
        if let Err(e) = result {
            tracing::error!(error = %e, "the audit trail could not be written");
            inner.tail = None;
        }
    }

    /// Appends one line and moves the head past it.
    fn append(&self, tail: &mut Tail, line: &str) -> std::io::Result<()> {
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        if let Err(e) = tail
            .file
            .write_all(&bytes)
            .and_then(|()| tail.file.sync_data())
        {
            // A line half written (the disk filled) must not stay: the next
            // line would run on from it and break the chain for good.
            let _ = tail.file.set_len(tail.size);
            return Err(e);
        }
        tail.size += bytes.len() as u64;
        tail.head = Head {
            lines: tail.head.lines + 1,
            last: chain::hash(line),
        };
        chain::write_head(&self.dir, &tail.head)
    }

    fn checkpoint(&self, tail: &mut Tail, mark: Mark) -> std::io::Result<()> {
        let line = serde_json::to_string(&Checkpoint {
            v: 1,
            time: OffsetDateTime::now_utc(),
            checkpoint: mark,
            prev: tail.head.last.clone(),
        })
        .expect("a checkpoint serialises");
        self.append(tail, &line)
    }

    /// What the rotated files may take: the bound less a full current file.
    fn rotated_budget(&self) -> u64 {
        let limits = self.limits();
        limits.keep_bytes.saturating_sub(limits.max_bytes)
    }

    /// Opens the current file and finds where the trail ends, comparing it
    /// with the head file: a trail that does not end where the daemon left
    /// it gets a `head_mismatch` checkpoint, which `audit_verify` reports
    /// from then on. A trail longer than the head is accepted when it still
    /// holds the head's line (the daemon stopped after writing a line and
    /// before saving the head).
    fn open(&self) -> std::io::Result<Tail> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)?;
        let file = open_current(&self.dir)?;
        let size = cut_torn_line(&file)?;
        let here = Snapshot::of_dir(&self.dir);
        let found = here.end();
        let rotated: Vec<u64> = chain::files(&self.dir)
            .iter()
            .filter_map(|f| f.number)
            .collect();
        let mut tail = Tail {
            file,
            size,
            head: found.clone(),
            next_number: rotated.last().map_or(1, |n| n + 1),
        };
        let mismatch = match chain::read_head(&self.dir) {
            None => {
                if found.lines > 0 {
                    tracing::warn!(lines = found.lines, "the audit trail has no head file (written by an older daemon): its end cannot be checked this once");
                }
                None
            }
            Some(Some(recorded)) if recorded == found => None,
            Some(Some(recorded))
                if recorded.lines < found.lines
                    && here.hash_at(recorded.lines).as_deref() == Some(recorded.last.as_str()) =>
            {
                tracing::warn!(recorded = recorded.lines, found = found.lines, "the audit trail goes on past its recorded head: the daemon stopped before saving it");
                None
            }
            Some(recorded) => {
                tracing::error!(recorded = ?recorded, found = ?found, "the audit trail does not end where the daemon left it: lines were cut, added or edited while it was stopped");
                Some(recorded)
            }
        };
        if size == 0 && !rotated.is_empty() {
            let after = format!("{CURRENT}.{}", rotated[rotated.len() - 1]);
            let mark = Mark {
                reason: Reason::Rotated,
                lines: tail.head.lines,
                first: rotated.first().copied(),
                after: Some(after),
                expected: None,
            };
            self.checkpoint(&mut tail, mark)?;
        }
        if let Some(expected) = mismatch {
            let mark = Mark {
                reason: Reason::HeadMismatch,
                lines: tail.head.lines,
                first: rotated.first().copied(),
                after: None,
                expected,
            };
            self.checkpoint(&mut tail, mark)?;
        }
        // A bound lowered since the last start applies now.
        let (first, removed) = retention::enforce(&self.dir, self.rotated_budget())?;
        if !removed.is_empty() {
            tracing::info!(target: "berkut::audit", removed = ?removed, "old audit files removed to keep the directory under audit_keep_bytes");
            let mark = Mark {
                reason: Reason::Removed,
                lines: tail.head.lines,
                first,
                after: None,
                expected: None,
            };
            self.checkpoint(&mut tail, mark)?;
        }
        chain::write_head(&self.dir, &tail.head)?;
        Ok(tail)
    }

    /// Renames the current file to the next number, removes the oldest
    /// files past the bound, and opens a new current file with a
    /// checkpoint. The head goes to the log as well, for an anchor outside
    /// the directory.
    fn rotate(&self, tail: &mut Tail) -> std::io::Result<()> {
        let name = format!("{CURRENT}.{}", tail.next_number);
        std::fs::rename(self.dir.join(CURRENT), self.dir.join(&name))?;
        tail.next_number += 1;
        tail.file = open_current(&self.dir)?;
        tail.size = tail.file.metadata()?.len();
        let (first, removed) = retention::enforce(&self.dir, self.rotated_budget())?;
        tracing::info!(
            target: "berkut::audit",
            file = %name,
            lines = tail.head.lines,
            last = %tail.head.last,
            removed = ?removed,
            "audit file rotated; the trail's head"
        );
        let mark = Mark {
            reason: Reason::Rotated,
            lines: tail.head.lines,
            first,
            after: Some(name),
            expected: None,
        };
        self.checkpoint(tail, mark)
    }
}
