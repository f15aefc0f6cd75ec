//! `berkutctl restore ID [--dry-run] [--with-globals] [--wait]`, and the
//! printing shared by the restore commands.

use std::process::ExitCode;

use berkut_proto::wire::{
    Operation, Reply, RestoreRecord, RestoreStatus, ServerMessage, StepState,
};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use super::{parse_id, Context};
use crate::{exit, output};

pub async fn run(
    ctx: &Context,
    id: &str,
    dry_run: bool,
    with_globals: bool,
    wait: bool,
) -> anyhow::Result<ExitCode> {
    let backup_id = parse_id(id)?;
    let op = Operation::RestoreStart {
        backup_id,
        dry_run,
        with_globals,
        wait,
    };
    follow(ctx, op).await
}

/// Sends a restore operation and shows its progress until the final record.
pub async fn follow(ctx: &Context, op: Operation) -> anyhow::Result<ExitCode> {
    let mut client = ctx.connect().await?;
    let view = RestoreView::new(ctx.json);
    let reply = client
        .call_streaming(op, |m| {
            if let ServerMessage::RestoreProgress { restore, .. } = m {
                view.update(restore)
            }
        })
        .await;
    view.finish();
    let record = expect_restore(reply?)?;
    Ok(finish_with_record(ctx, &record))
}

pub fn expect_restore(reply: Reply) -> anyhow::Result<RestoreRecord> {
    match reply {
        Reply::Restore { restore } => Ok(restore),
        other => anyhow::bail!("unexpected reply from the daemon: {other:?}"),
    }
}

/// Prints the record; a failed or interrupted restore is a failed command.
pub fn finish_with_record(ctx: &Context, r: &RestoreRecord) -> ExitCode {
    if ctx.json {
        output::json_line(r);
    } else {
        print(r);
    }
    match r.status {
        RestoreStatus::Failed | RestoreStatus::Interrupted => {
            if let (false, Some(f)) = (ctx.json, &r.failure) {
                eprintln!(
                    "berkutctl: restore {} {}: {}: {}",
                    r.restore_id,
                    r.status.as_str(),
                    f.code,
                    f.reason
                );
            }
            ExitCode::from(exit::FAILED)
        }
        _ => ExitCode::SUCCESS,
    }
}

pub fn print(r: &RestoreRecord) {
    let opt =
        |t: Option<time::OffsetDateTime>| t.map(output::rfc3339).unwrap_or_else(|| "-".into());
    println!("restore_id:    {}", r.restore_id);
    println!("backup:        {}", r.backup_id);
    println!(
        "kind:          {}",
        if r.dry_run { "dry-run" } else { "real restore" }
    );
    println!("status:        {}", r.status.as_str());
    println!(
        "database:      {} (scratch {})",
        r.database, r.scratch_database
    );
    if let Some(kept) = &r.rollback_database {
        println!("kept aside:    {kept}");
    }
    println!("started_at:    {}", opt(r.started_at));
    println!("finished_at:   {}", opt(r.finished_at));
    if let Some(f) = &r.failure {
        println!("failure:       {}: {}", f.code, f.reason);
    }
    println!("steps:");
    for s in &r.steps {
        let took = match (s.started_at, s.finished_at) {
            (Some(a), Some(b)) => format!("{:.1}s", (b - a).as_seconds_f64()),
            _ => "".into(),
        };
        println!(
            "  {:<15} {:<8} {:>7}  {}",
            s.name,
            state_word(s.state),
            took,
            s.detail.as_deref().unwrap_or("")
        );
    }
}

fn state_word(s: StepState) -> &'static str {
    match s {
        StepState::Pending => "pending",
        StepState::Running => "running",
        StepState::Done => "done",
        StepState::Failed => "FAILED",
        StepState::Skipped => "skipped",
    }
}

/// A restore's live progress: the running step on a bar, or JSON lines.
struct RestoreView {
    json: bool,
    bar: Option<ProgressBar>,
}

#[derive(Serialize)]
struct ProgressLine<'a> {
    event: &'static str,
    #[serde(flatten)]
    restore: &'a RestoreRecord,
}

impl RestoreView {
    fn new(json: bool) -> RestoreView {
        use std::io::IsTerminal;
        let bar = (!json && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} {prefix:>15} [{bar:30}] {pos}/{len}  {msg}  {elapsed}",
                )
                .expect("the template is valid")
                .progress_chars("=> "),
            );
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        });
        RestoreView { json, bar }
    }

    fn update(&self, r: &RestoreRecord) {
        if self.json {
            output::json_line(&ProgressLine {
                event: "restore_progress",
                restore: r,
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
                        bar.set_message(format!("{} of {}", output::bytes(d), output::bytes(t)))
                    }
                    (Some(d), Some(t)) => bar.set_message(format!("{d} of {t} tables")),
                    _ => bar.set_message(String::new()),
                }
            }
            bar.set_length(r.steps.len() as u64);
            bar.set_position(done as u64);
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
