//! A job's progress while it runs: a live bar on a terminal, JSON lines
//! with `--json`, nothing when output goes to a file or pipe without
//! `--json` (logs should not fill with carriage returns). Backups show
//! tables and bytes, restores their steps, transfers bytes.

use std::io::IsTerminal;
use std::time::Duration;

use berkut_proto::wire::{Phase, Progress, RestoreRecord, StepState};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use super::json_line;
use super::text::bytes;

/// A bar on stderr with this template, when stderr is a terminal and the
/// output is not JSON.
fn bar(json: bool, total: u64, template: &str) -> Option<ProgressBar> {
    (!json && std::io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(template)
                .expect("the template is valid")
                .progress_chars("=> "),
        );
        bar
    })
}

/// A bar that moves by itself while no update comes.
fn ticking_bar(json: bool, template: &str) -> Option<ProgressBar> {
    let bar = bar(json, 0, template)?;
    bar.enable_steady_tick(Duration::from_millis(120));
    Some(bar)
}

/// A progress record as a JSON line: the record's fields and `event`.
#[derive(Serialize)]
struct Event<'a, T: Serialize> {
    event: &'static str,
    #[serde(flatten)]
    record: &'a T,
}

/// A backup's progress.
pub struct ProgressView {
    json: bool,
    bar: Option<ProgressBar>,
}

impl ProgressView {
    pub fn new(json: bool) -> ProgressView {
        ProgressView {
            json,
            bar: ticking_bar(
                json,
                "{spinner} {prefix:>10} [{bar:30}] {pos}/{len} tables  {msg}  {elapsed}",
            ),
        }
    }

    pub fn update(&self, p: &Progress) {
        if self.json {
            json_line(&Event {
                event: "progress",
                record: p,
            });
        }
        if let Some(bar) = &self.bar {
            bar.set_prefix(p.phase.as_str());
            bar.set_length(p.tables_total);
            bar.set_position(p.tables_done);
            bar.set_message(format!("{} sealed", bytes(p.bytes_done)));
            if p.phase == Phase::Done {
                bar.finish();
            }
        }
    }

    pub fn finish(&self) {
        finish(&self.bar);
    }
}

/// A restore's live progress: the running step on a bar, or JSON lines.
pub struct RestoreView {
    json: bool,
    bar: Option<ProgressBar>,
}

impl RestoreView {
    pub fn new(json: bool) -> RestoreView {
        RestoreView {
            json,
            bar: ticking_bar(
                json,
                "{spinner} {prefix:>15} [{bar:30}] {pos}/{len}  {msg}  {elapsed}",
            ),
        }
    }

    pub fn update(&self, r: &RestoreRecord) {
        if self.json {
            json_line(&Event {
                event: "restore_progress",
                record: r,
            });
        }
        if let Some(bar) = &self.bar {
            let done = r
                .steps
                .iter()
                .filter(|s| matches!(s.state, StepState::Done | StepState::Skipped))
                .count();
            if let Some(step) = r.steps.iter().find(|s| s.state == StepState::Running) {
                bar.set_prefix(step.name.clone());
                match (step.done, step.total) {
                    (Some(d), Some(t)) if step.name == "decrypt" => {
                        bar.set_message(format!("{} of {}", bytes(d), bytes(t)))
                    }
                    (Some(d), Some(t)) => bar.set_message(format!("{d} of {t} tables")),
                    _ => bar.set_message(String::new()),
                }
            }
            bar.set_length(r.steps.len() as u64);
            bar.set_position(done as u64);
        }
    }

    pub fn finish(&self) {
        finish(&self.bar);
    }
}

/// A transfer's bytes (download, import), on a terminal only.
pub struct BytesView {
    bar: Option<ProgressBar>,
}

impl BytesView {
    pub fn new(json: bool, total: u64) -> BytesView {
        BytesView {
            bar: bar(
                json,
                total,
                "{spinner} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}  {elapsed}",
            ),
        }
    }

    pub fn update(&self, position: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(position);
        }
    }

    pub fn finish(&self) {
        finish(&self.bar);
    }
}

fn finish(bar: &Option<ProgressBar>) {
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}
