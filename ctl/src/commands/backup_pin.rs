//! `berkutctl backup pin ID` and `backup unpin ID`.

use std::process::ExitCode;

use berkut_proto::wire::{ops, Operation};

use super::{expect_backup, parse_id, Context};
use crate::display;

pub async fn pin(ctx: &Context, id: &str) -> anyhow::Result<ExitCode> {
    let id = parse_id(id)?;
    run(ctx, Operation::BackupPin(ops::BackupPin { id })).await
}

pub async fn unpin(ctx: &Context, id: &str) -> anyhow::Result<ExitCode> {
    let id = parse_id(id)?;
    run(ctx, Operation::BackupUnpin(ops::BackupUnpin { id })).await
}

async fn run(ctx: &Context, op: Operation) -> anyhow::Result<ExitCode> {
    let mut client = ctx.connect().await?;
    let record = expect_backup(client.call(op).await?)?;
    display::backup::pinned(ctx.json, &record);
    Ok(ExitCode::SUCCESS)
}
