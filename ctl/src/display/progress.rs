//! A job's progress while it runs: a live bar on a terminal, JSON lines
//! with `--json`, nothing when output goes to a file or pipe without
//! `--json` (logs should not fill with carriage returns). Backups show
//! tables and bytes, restores their steps, transfers bytes.

use std::io::IsTerminal;
use std::marker::PhantomData;
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

/// A progress record as a JSON line: the record's fields and `event`.
#[derive(Serialize)]
struct Event<'a, T: Serialize> {
    event: &'static str,
    #[serde(flatten)]
    record: &'a T,
}

/// What a job streams while it runs, and how it is drawn.
pub trait Live: Serialize {
    /// The `event` of its JSON lines.
    const EVENT: &'static str;
    /// The bar's template.
    const TEMPLATE: &'static str;
    /// Moves the bar to this state.
    fn draw(&self, bar: &ProgressBar);
}

/// A backup's progress: its phase, tables and bytes sealed.
impl Live for Progress {
    const EVENT: &'static str = "progress";
    const TEMPLATE: &'static str =
        "{spinner} {prefix:>10} [{bar:30}] {pos}/{len} tables  {msg}  {elapsed}";

    fn draw(&self, bar: &ProgressBar) {
        let p = self;
        bar.set_prefix(p.phase.as_str());
        bar.set_length(p.tables_total);
        bar.set_position(p.tables_done);
        bar.set_message(format!("{} sealed", bytes(p.bytes_done)));
        if p.phase == Phase::Done {
            bar.finish();
        }
    }
}

/// A restore's progress: the running step, and the steps done.
impl Live for RestoreRecord {
    const EVENT: &'static str = "restore_progress";
    const TEMPLATE: &'static str =
        "{spinner} {prefix:>15} [{bar:30}] {pos}/{len}  {msg}  {elapsed}";

    fn draw(&self, bar: &ProgressBar) {
        let r = self;
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

/// A running job's progress, as a bar or JSON lines.
pub struct LiveView<T> {
    json: bool,
    bar: Option<ProgressBar>,
    shows: PhantomData<fn(&T)>,
}

impl<T: Live> LiveView<T> {
    pub fn new(json: bool) -> LiveView<T> {
        let bar = bar(json, 0, T::TEMPLATE);
        if let Some(bar) = &bar {
            bar.enable_steady_tick(Duration::from_millis(120));
        }
        LiveView {
            json,
            bar,
            shows: PhantomData,
        }
    }

    pub fn update(&self, record: &T) {
        if self.json {
            json_line(&Event {
                event: T::EVENT,
                record,
            });
        }
        if let Some(bar) = &self.bar {
            record.draw(bar);
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
