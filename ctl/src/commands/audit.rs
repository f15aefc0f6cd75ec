//! `berkutctl audit tail [-n N]` and `berkutctl audit verify`.

use std::process::ExitCode;

use berkut_proto::wire::{ops, Operation, Reply};

use super::Context;
use crate::{display, exit};

/// The most lines one request asks for: the daemon sends no more.
const PAGE_LINES: u32 = 10_000;

/// Prints the newest `lines` lines, oldest first, asking page by page: the
/// daemon sends at most 10 000 lines and at most about 1 MiB per reply, and
/// says where the page before begins (`next`).
pub async fn tail(ctx: &Context, lines: u32) -> anyhow::Result<ExitCode> {
    let mut client = ctx.connect().await?;
    let mut pages: Vec<Vec<String>> = Vec::new();
    let mut wanted = lines;
    let mut before = None;
    while wanted > 0 {
        let op = Operation::AuditTail(ops::AuditTail {
            lines: wanted.min(PAGE_LINES),
            before,
        });
        let Reply::Audit { lines, next } = client.call(op).await? else {
            anyhow::bail!("unexpected reply from the daemon");
        };
        if lines.is_empty() {
            break;
        }
        wanted = wanted.saturating_sub(lines.len() as u32);
        pages.push(lines);
        match next {
            Some(n) => before = Some(n),
            None => break,
        }
    }
    for line in pages.into_iter().rev().flatten() {
        display::audit::line(ctx.json, &line);
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn verify(ctx: &Context) -> anyhow::Result<ExitCode> {
    let mut client = ctx.connect().await?;
    let Reply::AuditVerified {
        lines,
        first_bad,
        removed,
    } = client
        .call(Operation::AuditVerify(ops::AuditVerify {}))
        .await?
    else {
        anyhow::bail!("unexpected reply from the daemon");
    };
    display::audit::verified(ctx.json, lines, removed, first_bad.as_deref());
    Ok(match first_bad {
        None => ExitCode::SUCCESS,
        Some(_) => ExitCode::from(exit::FAILED),
    })
}
