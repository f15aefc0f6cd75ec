//! Showing a job's progress: a live bar on a terminal, JSON lines with
//! `--json`, nothing when output goes to a file or pipe without `--json`
//! (logs should not fill with carriage returns).

use std::io::IsTerminal;
use std::time::Duration;

use berkut_proto::wire::{Phase, Progress};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::output;

pub struct ProgressView {
    json: bool,
    bar: Option<ProgressBar>,
}

#[derive(Serialize)]
struct ProgressLine<'a> {
    event: &'static str,
    #[serde(flatten)]
    progress: &'a Progress,
}

impl ProgressView {
    pub fn new(json: bool) -> ProgressView {
        let bar = (!json && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} {prefix:>10} [{bar:30}] {pos}/{len} tables  {msg}  {elapsed}",
                )
                .expect("the template is valid")
                .progress_chars("=> "),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        ProgressView { json, bar }
    }

    pub fn update(&self, p: &Progress) {
        if self.json {
            output::json_line(&ProgressLine {
                event: "progress",
                progress: p,
            });
        }
        if let Some(bar) = &self.bar {
            bar.set_prefix(p.phase.as_str());
            bar.set_length(p.tables_total);
            bar.set_position(p.tables_done);
            bar.set_message(format!("{} sealed", output::bytes(p.bytes_done)));
            if p.phase == Phase::Done {
                bar.finish();
            }
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// A byte-count bar for transfers, on a terminal only.
pub fn bytes_bar(json: bool, total: u64) -> Option<ProgressBar> {
    (!json && std::io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}  {elapsed}",
            )
            .expect("the template is valid")
            .progress_chars("=> "),
        );
        bar
    })
}
