//! `berkutctl plan set`: `--preset P --at HH:MM [--weekday D]` or
//! `--cron EXPR`, with zone, scope and retention.

use std::process::ExitCode;

use berkut_proto::manifest::Scope;
use berkut_proto::wire::{ops, Operation, PlanSpec, Preset};

use super::{expect_plan, Context};
use crate::display;

/// The command line's plan options.
#[derive(clap::Args)]
pub struct PlanArgs {
    /// daily, weekly, monthly-start, monthly-end (or cron, implied by --cron).
    #[arg(long, required_unless_present = "cron")]
    preset: Option<Preset>,
    /// Time of day, HH:MM (24-hour), in the plan's time zone.
    #[arg(long, value_name = "HH:MM")]
    at: Option<String>,
    /// For weekly plans: monday … sunday.
    #[arg(long)]
    weekday: Option<String>,
    /// A cron expression (five fields) instead of a preset.
    #[arg(long, value_name = "EXPR", conflicts_with_all = ["preset", "at", "weekday"])]
    cron: Option<String>,
    /// An IANA time zone, e.g. Europe/Berlin [default: the daemon's system zone]
    #[arg(long, value_name = "ZONE")]
    timezone: Option<String>,
    /// What automatic backups cover: full, database or schema.
    #[arg(long, default_value = "full")]
    scope: Scope,
    /// Also archive the configured file roots.
    #[arg(long)]
    include_files: bool,
    /// Delete backups older than this many days (0: never).
    #[arg(long, default_value_t = 30)]
    retention_days: u32,
    /// Always keep this many newest successful backups.
    #[arg(long = "keep-last", default_value_t = 7)]
    keep_last: u32,
    /// Do not make up for a slot missed while the daemon was down.
    #[arg(long)]
    no_catch_up: bool,
}

pub async fn run(ctx: &Context, args: PlanArgs) -> anyhow::Result<ExitCode> {
    let spec = PlanSpec {
        preset: if args.cron.is_some() {
            Preset::Cron
        } else {
            args.preset.unwrap_or(Preset::Daily)
        },
        at: args.at,
        weekday: args.weekday,
        timezone: args.timezone,
        cron: args.cron,
        scope: args.scope,
        include_files: args.include_files,
        retention_days: args.retention_days,
        keep_last_successful: args.keep_last,
        catch_up: !args.no_catch_up,
    };
    let mut client = ctx.connect().await?;
    let plan = expect_plan(
        client
            .call(Operation::PlanSet(ops::PlanSet { plan: spec }))
            .await?,
    )?;
    display::show(ctx.json, &plan);
    Ok(ExitCode::SUCCESS)
}
