//! `berkutctl plan show`, and the printing shared by the plan commands.

use std::process::ExitCode;

use berkut_proto::wire::{Operation, PlanInfo, Reply};

use super::Context;
use crate::output;

pub async fn run(ctx: &Context) -> anyhow::Result<ExitCode> {
    let mut client = ctx.connect().await?;
    let plan = expect_plan(client.call(Operation::PlanShow).await?)?;
    print(ctx, &plan);
    Ok(ExitCode::SUCCESS)
}

pub fn expect_plan(reply: Reply) -> anyhow::Result<PlanInfo> {
    match reply {
        Reply::Plan { plan } => Ok(plan),
        other => anyhow::bail!("unexpected reply from the daemon: {other:?}"),
    }
}

pub fn print(ctx: &Context, plan: &PlanInfo) {
    if ctx.json {
        output::json_line(plan);
        return;
    }
    let Some(preset) = plan.preset else {
        println!("no backup plan is set (berkutctl plan set --preset daily --at 02:30)");
        return;
    };
    let when = match (&plan.cron, &plan.at, &plan.weekday) {
        (Some(cron), _, _) => format!("cron {cron:?}"),
        (None, Some(at), Some(day)) => format!("{} on {day} at {at}", preset.as_str()),
        (None, Some(at), None) => format!("{} at {at}", preset.as_str()),
        _ => preset.as_str().to_owned(),
    };
    let opt =
        |t: Option<time::OffsetDateTime>| t.map(output::rfc3339).unwrap_or_else(|| "-".into());
    println!(
        "enabled:        {}",
        if plan.enabled { "yes" } else { "no" }
    );
    println!(
        "schedule:       {when} ({})",
        plan.timezone.as_deref().unwrap_or("-")
    );
    println!(
        "scope:          {}{}",
        plan.scope.as_str(),
        if plan.include_files { " + files" } else { "" }
    );
    println!(
        "retention:      {} days, always keeping the newest {} successful",
        plan.retention_days, plan.keep_last_successful
    );
    println!(
        "catch-up:       {}",
        if plan.catch_up {
            "one backup after a missed slot"
        } else {
            "off"
        }
    );
    println!("next run:       {}", opt(plan.next_run));
    println!("last success:   {}", opt(plan.last_success));
}
