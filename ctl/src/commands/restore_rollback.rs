//! `berkutctl restore rollback RID` and `restore cleanup RID`. They exit 0
//! when the daemon did the work, whatever the restore's own outcome was: a
//! cleanup of a failed or interrupted restore is a successful cleanup.

use std::process::ExitCode;

use berkut_proto::wire::{ops, Operation};

use super::{expect_restore, parse_id, Context};
use crate::display;

pub async fn rollback(ctx: &Context, id: &str) -> anyhow::Result<ExitCode> {
    let restore_id = parse_id(id)?;
    run(
        ctx,
        Operation::RestoreRollback(ops::RestoreRollback { restore_id }),
    )
    .await
}

pub async fn cleanup(ctx: &Context, id: &str) -> anyhow::Result<ExitCode> {
    let restore_id = parse_id(id)?;
    run(
        ctx,
        Operation::RestoreCleanup(ops::RestoreCleanup { restore_id }),
    )
    .await
}

async fn run(ctx: &Context, op: Operation) -> anyhow::Result<ExitCode> {
    let mut client = ctx.connect().await?;
    let record = expect_restore(client.call(op).await?)?;
    display::show(ctx.json, &record);
    Ok(ExitCode::SUCCESS)
}
