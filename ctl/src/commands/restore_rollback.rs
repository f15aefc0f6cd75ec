//! `berkutctl restore rollback RID` and `restore cleanup RID`.

use std::process::ExitCode;

use berkut_proto::wire::Operation;

use super::restore_start::{expect_restore, finish_with_record};
use super::restore_status::parse_restore_id;
use super::Context;

pub async fn run(ctx: &Context, id: &str, rollback: bool) -> anyhow::Result<ExitCode> {
    let restore_id = parse_restore_id(id)?;
    let op = if rollback {
        Operation::RestoreRollback { restore_id }
    } else {
        Operation::RestoreCleanup { restore_id }
    };
    let mut client = ctx.connect().await?;
    let record = expect_restore(client.call(op).await?)?;
    Ok(finish_with_record(ctx, &record))
}
