//! `berkutctl restore status RID [--wait]` and `restore evidence RID`.

use std::process::ExitCode;

use berkut_proto::ids::RestoreId;
use berkut_proto::wire::{ClientError, ErrorBody, ErrorCode, Operation, Reply};

use super::restore_start::{follow, print};
use super::Context;
use crate::output;

pub fn parse_restore_id(text: &str) -> anyhow::Result<RestoreId> {
    text.parse::<RestoreId>().map_err(|e| {
        anyhow::Error::new(ClientError::Server(ErrorBody::new(
            ErrorCode::Invalid,
            format!("{text:?} is {e}"),
        )))
    })
}

pub async fn run(ctx: &Context, id: &str, wait: bool) -> anyhow::Result<ExitCode> {
    let restore_id = parse_restore_id(id)?;
    follow(ctx, Operation::RestoreStatus { restore_id, wait }).await
}

pub async fn evidence(ctx: &Context, id: &str) -> anyhow::Result<ExitCode> {
    let restore_id = parse_restore_id(id)?;
    let mut client = ctx.connect().await?;
    let Reply::Evidence { evidence } = client
        .call(Operation::RestoreEvidence { restore_id })
        .await?
    else {
        anyhow::bail!("unexpected reply from the daemon");
    };
    if ctx.json {
        output::json_line(&evidence);
        return Ok(ExitCode::SUCCESS);
    }
    print(&evidence.record);
    println!(
        "verdict:       {}",
        evidence.verdict.as_deref().unwrap_or("-")
    );
    println!(
        "archive:       sha256 {}",
        evidence.archive_sha256.as_deref().unwrap_or("-")
    );
    println!("digests:");
    for d in &evidence.digests {
        let mark = if d.expected == d.found {
            "ok"
        } else {
            "MISMATCH"
        };
        println!("  {:<16} {mark:<8} {}", d.part, d.found);
    }
    let differ = evidence
        .counts
        .iter()
        .filter(|c| c.found.is_none() || (c.expected.is_some() && c.expected != c.found))
        .count();
    println!(
        "row counts:    {} tables, {differ} differ",
        evidence.counts.len()
    );
    for c in evidence
        .counts
        .iter()
        .filter(|c| c.found.is_none() || (c.expected.is_some() && c.expected != c.found))
    {
        println!(
            "  {}.{}: expected {:?}, found {:?}",
            c.schema, c.table, c.expected, c.found
        );
    }
    println!(
        "logs:          {} (with --json, their text)",
        evidence
            .logs
            .iter()
            .map(|l| l.step.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(ExitCode::SUCCESS)
}
