//! `berkutctl status`. Exits 1 when the daemon reports a fault (the store
//! alarm, a background task that died), so monitoring can run it.

use std::process::ExitCode;

use berkut_proto::wire::{Operation, Reply};

use super::Context;
use crate::output;

pub async fn run(ctx: &Context) -> anyhow::Result<ExitCode> {
    let mut client = ctx.connect().await?;
    let Reply::Status { status } = client.call(Operation::Status).await? else {
        anyhow::bail!("unexpected reply from the daemon");
    };
    // Monitoring runs `berkutctl status`: a fault the daemon reports (the
    // store alarm, a background task that died) is a non-zero exit.
    let verdict = if status.has_fault() {
        ExitCode::from(crate::exit::FAILED)
    } else {
        ExitCode::SUCCESS
    };
    if ctx.json {
        output::json_line(&status);
        return Ok(verdict);
    }
    println!(
        "berkutd {} (protocol {})",
        status.version, status.protocol_version
    );
    if status.dev_mode {
        println!("mode:      DEVELOPMENT (generated key; not for production)");
    }
    println!(
        "started:   {} (up {}s)",
        output::rfc3339(status.started_at),
        status.uptime_seconds
    );
    println!(
        "jobs:      {} running, {} queued, at most {} at once",
        status.running, status.queued, status.max_parallel
    );
    println!("backups:   {}", status.backups);
    match (status.newest_success_at, status.newest_success_age_seconds) {
        (Some(at), Some(age)) => println!(
            "newest:    {} ({} ago)",
            output::rfc3339(at),
            output::duration(age)
        ),
        _ => println!("newest:    no successful backup yet"),
    }
    if let Some(limit) = status.rpo_limit_seconds {
        let verdict = if status.rpo_breached {
            "BREACHED"
        } else {
            "ok"
        };
        println!("rpo:       {verdict} (limit {})", output::duration(limit));
    }
    if status.missing > 0 {
        println!(
            "missing:   {} backups whose archive is not in the backup directory",
            status.missing
        );
    }
    if let Some(alarm) = &status.store_alarm {
        println!("ALARM:     {alarm}");
        eprintln!("berkutctl: store alarm: {alarm}");
    }
    for fault in &status.task_faults {
        println!(
            "FAULT:     {} died {} times, last at {}: {}",
            fault.task,
            fault.failures,
            output::rfc3339(fault.last_at),
            fault.message
        );
        eprintln!("berkutctl: the daemon's {} task died", fault.task);
    }
    for job in &status.jobs {
        println!(
            "  {}  {:<8} {:<10} {}/{} tables  {}",
            job.id,
            output::status_word(job.status),
            job.progress.phase.as_str(),
            job.progress.tables_done,
            job.progress.tables_total,
            output::bytes(job.progress.bytes_done)
        );
    }
    Ok(verdict)
}
