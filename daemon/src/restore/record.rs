//! A restore's record and evidence, kept under
//! `<state_dir>/restores/<restore id>/`: `summary.json` (the record with its
//! steps, the digests checked, the counts expected and found, the verdict,
//! and how far the swap got) rewritten atomically at every step, one raw
//! log per step under `logs/`, and, once the restore has ended, a `DIGEST`
//! of them all (`digest`). The `Tracker` is the only writer; watchers
//! of the restore get each change through a watch channel.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use berkut_proto::ids::RestoreId;
use berkut_proto::wire::{
    CountCheck, DigestCheck, Evidence, RestoreRecord, RestoreStatus, RestoreStep, StepLog,
    StepState,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::watch;

use super::step::Step;
use crate::error::OpError;

pub const SUMMARY_VERSION: u32 = 1;

/// How far a real restore's swap of database names got: what start-up
/// recovery needs to know to put things right after a crash.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SwapPhase {
    /// The live database was never touched.
    #[default]
    NotStarted,
    /// Connections to the live database were being refused and its name
    /// changed: it may be under either name.
    Started,
    /// The restored database carries the live name; the old one is kept.
    Done,
}

/// `summary.json`: persisted state, versioned, with a fixture in the tests.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub summary_version: u32,
    pub record: RestoreRecord,
    #[serde(default)]
    pub archive_sha256: Option<String>,
    #[serde(default)]
    pub digests: Vec<DigestCheck>,
    #[serde(default)]
    pub counts: Vec<CountCheck>,
    #[serde(default)]
    pub verdict: Option<String>,
    #[serde(default)]
    pub swap: SwapPhase,
    /// Whether this restore turned maintenance on.
    #[serde(default)]
    pub maintenance: bool,
    /// Set while a rollback renames databases, so that start-up recovery
    /// can put the live name back after a crash in the middle.
    #[serde(default)]
    pub rolling_back: bool,
    /// Set when the restore ended but its scratch database could not be
    /// dropped (the server was down): the next start, or a cleanup, does.
    #[serde(default)]
    pub scratch_left: bool,
}

impl Summary {
    /// A step of the record. Every record this daemon makes lists every
    /// step; one read from an older daemon's file may lack a later one.
    fn step_mut(&mut self, step: Step) -> Option<&mut RestoreStep> {
        self.record
            .steps
            .iter_mut()
            .find(|st| st.name == step.name())
    }

    /// Marks the running steps (if any) failed with `detail`: the restore
    /// failed in them, or was interrupted.
    pub fn fail_running_steps(&mut self, now: OffsetDateTime, detail: &str) {
        for st in self
            .record
            .steps
            .iter_mut()
            .filter(|st| st.state == StepState::Running)
        {
            st.state = StepState::Failed;
            st.finished_at = Some(now);
            st.detail = Some(detail.to_owned());
        }
    }
}

/// The directory of all restores' evidence.
pub fn restores_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("restores")
}

pub struct Tracker {
    dir: PathBuf,
    summary: Mutex<Summary>,
    view: watch::Sender<RestoreRecord>,
}

impl Tracker {
    /// Creates the evidence directory and the first summary.
    pub fn create(state_dir: &Path, record: RestoreRecord) -> Result<Tracker, OpError> {
        let dir = restores_dir(state_dir).join(record.restore_id.as_str());
        std::fs::create_dir_all(dir.join("logs")).map_err(|e| {
            OpError::unavailable("the restore's evidence directory could not be made")
                .with_detail(e)
        })?;
        let summary = Summary {
            summary_version: SUMMARY_VERSION,
            record: record.clone(),
            archive_sha256: None,
            digests: Vec::new(),
            counts: Vec::new(),
            verdict: None,
            swap: SwapPhase::NotStarted,
            maintenance: false,
            rolling_back: false,
            scratch_left: false,
        };
        let tracker = Tracker {
            dir,
            summary: Mutex::new(summary),
            view: watch::Sender::new(record),
        };
        tracker.persist()?;
        Ok(tracker)
    }

    pub fn subscribe(&self) -> watch::Receiver<RestoreRecord> {
        self.view.subscribe()
    }

    pub fn record(&self) -> RestoreRecord {
        self.summary.lock().unwrap().record.clone()
    }

    pub fn summary(&self) -> Summary {
        self.summary.lock().unwrap().clone()
    }

    /// Changes the summary, writes it, and tells watchers.
    pub fn update<T>(&self, change: impl FnOnce(&mut Summary) -> T) -> T {
        let (out, record) = {
            let mut summary = self.summary.lock().unwrap();
            let out = change(&mut summary);
            (out, summary.record.clone())
        };
        if let Err(e) = self.persist() {
            tracing::error!(error = %e, restore = %record.restore_id, "the restore's summary could not be written");
        }
        // An ended restore's evidence is digested before anyone hears of
        // the end, so whoever sees it ended finds the DIGEST in place.
        if record.status.is_finished() {
            self.seal();
        }
        self.view.send_replace(record);
        out
    }

    /// Changes only what watchers see (progress counters), without a write.
    pub fn progress(&self, step: Step, done: u64, total: Option<u64>) {
        let record = {
            let mut summary = self.summary.lock().unwrap();
            if let Some(s) = summary.step_mut(step) {
                s.done = Some(done);
                if total.is_some() {
                    s.total = total;
                }
            }
            summary.record.clone()
        };
        self.view.send_replace(record);
    }

    pub fn begin(&self, step: Step, now: OffsetDateTime) {
        self.set_step(step, StepState::Running, now, None);
    }

    pub fn finish(&self, step: Step, now: OffsetDateTime, detail: impl Into<String>) {
        self.set_step(step, StepState::Done, now, Some(detail.into()));
    }

    /// Says what a running step is doing now (waiting, say).
    pub fn note(&self, step: Step, detail: impl Into<String>) {
        self.update(|s| {
            if let Some(st) = s.step_mut(step) {
                st.detail = Some(detail.into());
            }
        });
    }

    pub fn skip(&self, step: Step, detail: impl Into<String>) {
        self.update(|s| {
            if let Some(st) = s.step_mut(step) {
                st.state = StepState::Skipped;
                st.detail = Some(detail.into());
            }
        });
    }

    /// Marks the running step failed (if any) with `detail`.
    pub fn fail_running(&self, now: OffsetDateTime, detail: &str) {
        self.update(|s| s.fail_running_steps(now, detail));
    }

    fn set_step(&self, step: Step, state: StepState, now: OffsetDateTime, detail: Option<String>) {
        self.update(|s| {
            if let Some(st) = s.step_mut(step) {
                match state {
                    StepState::Running => st.started_at = Some(now),
                    _ => st.finished_at = Some(now),
                }
                st.state = state;
                if detail.is_some() {
                    st.detail = detail;
                }
            }
        });
    }

    /// The raw log of a step, appended to.
    pub fn log(&self, step: Step) -> StepLogFile {
        let path = self
            .dir
            .join("logs")
            .join(format!("{:02}-{}.log", step.index(), step.name()));
        StepLogFile(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .ok(),
        )
    }

    /// Writes the evidence's `DIGEST`: when the restore has ended.
    pub fn seal(&self) {
        if let Err(e) = super::digest::write(&self.dir) {
            tracing::error!(error = %e, dir = %self.dir.display(), "the evidence's DIGEST could not be written");
        }
    }

    fn persist(&self) -> Result<(), OpError> {
        let summary = self.summary.lock().unwrap().clone();
        write(&self.dir.join("summary.json"), &summary)
    }
}

/// A step's raw log. Writing to it never fails a restore: evidence that
/// cannot be written is logged, not fatal.
pub struct StepLogFile(Option<std::fs::File>);

impl StepLogFile {
    pub fn line(&mut self, text: &str) {
        if let Some(f) = &mut self.0 {
            let _ = writeln!(f, "{text}");
        }
    }
}

/// Reads a restore's summary from disk.
pub fn load(state_dir: &Path, id: &RestoreId) -> Option<Summary> {
    let path = restores_dir(state_dir)
        .join(id.as_str())
        .join("summary.json");
    let text = std::fs::read(path).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Writes a summary back (for start-up recovery and later operations on a
/// finished restore).
pub fn store(state_dir: &Path, summary: &Summary) -> Result<(), OpError> {
    let dir = restores_dir(state_dir).join(summary.record.restore_id.as_str());
    write(&dir.join("summary.json"), summary)?;
    // A finished restore's evidence changed: its DIGEST follows.
    super::digest::write(&dir).map_err(|e| {
        OpError::unavailable("the evidence's DIGEST could not be written").with_detail(e)
    })
}

/// Writes a summary to `path`, atomically.
fn write(path: &Path, summary: &Summary) -> Result<(), OpError> {
    let mut text = serde_json::to_vec_pretty(summary).expect("a summary always serialises");
    text.push(b'\n');
    crate::fsutil::write_atomically(path, &text).map_err(|e| {
        OpError::unavailable("the restore's summary could not be written").with_detail(e)
    })
}

/// Every restore's summary, oldest first (by when it was queued: ids from
/// one second sort by their random suffix).
pub fn load_all(state_dir: &Path) -> Vec<Summary> {
    let Ok(entries) = std::fs::read_dir(restores_dir(state_dir)) else {
        return Vec::new();
    };
    let mut all: Vec<Summary> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.parse::<RestoreId>().ok())
        })
        .filter_map(|id| load(state_dir, &id))
        .collect();
    all.sort_by(|a, b| {
        (a.record.created_at, &a.record.restore_id)
            .cmp(&(b.record.created_at, &b.record.restore_id))
    });
    all
}

/// The evidence of a restore: its summary and the tail of each step log.
pub fn evidence(state_dir: &Path, id: &RestoreId) -> Option<Evidence> {
    let summary = load(state_dir, id)?;
    let logs_dir = restores_dir(state_dir).join(id.as_str()).join("logs");
    let mut names: Vec<String> = std::fs::read_dir(&logs_dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let logs = names
        .into_iter()
        .filter_map(|name| {
            let text = std::fs::read(logs_dir.join(&name)).ok()?;
            let tail = &text[text.len().saturating_sub(64 * 1024)..];
            let step = name
                .trim_end_matches(".log")
                .split_once('-')
                .map(|(_, s)| s.to_owned())
                .unwrap_or(name);
            Some(StepLog {
                step,
                text: String::from_utf8_lossy(tail).into_owned(),
            })
        })
        .collect();
    Some(Evidence {
        record: summary.record,
        archive_sha256: summary.archive_sha256,
        digests: summary.digests,
        counts: summary.counts,
        verdict: summary.verdict,
        logs,
        digest: check_digest(&restores_dir(state_dir).join(id.as_str())),
    })
}

/// The evidence directory against its `DIGEST`; `None` when there is no
/// `DIGEST` (the restore runs, or an older daemon kept the evidence).
fn check_digest(dir: &Path) -> Option<berkut_proto::wire::DigestVerdict> {
    const SHOWN: usize = 100;
    if !dir.join(super::digest::DIGEST_FILE).exists() {
        return None;
    }
    let (matched, mut problems) = match super::digest::verify(dir) {
        Ok(checked) => (checked.matched as u64, checked.problems),
        Err(e) => {
            tracing::warn!(error = %e, dir = %dir.display(), "the evidence could not be checked against its DIGEST");
            (
                0,
                vec!["the evidence could not be read to check it".to_owned()],
            )
        }
    };
    problems.truncate(SHOWN);
    Some(berkut_proto::wire::DigestVerdict { matched, problems })
}

/// A new record with every step pending.
pub fn new_record(
    restore_id: RestoreId,
    backup_id: berkut_proto::ids::BackupId,
    dry_run: bool,
    with_globals: bool,
    database: String,
    scratch: String,
    now: OffsetDateTime,
) -> RestoreRecord {
    RestoreRecord {
        restore_id,
        backup_id,
        dry_run,
        with_globals,
        status: RestoreStatus::Queued,
        created_at: now,
        started_at: None,
        finished_at: None,
        database,
        scratch_database: scratch,
        rollback_database: None,
        steps: Step::ALL
            .iter()
            .map(|step| berkut_proto::wire::RestoreStep {
                name: step.name().to_owned(),
                state: StepState::Pending,
                started_at: None,
                finished_at: None,
                done: None,
                total: None,
                detail: None,
            })
            .collect(),
        failure: None,
        redacted_files: Vec::new(),
        smoke_checks: Vec::new(),
    }
}
