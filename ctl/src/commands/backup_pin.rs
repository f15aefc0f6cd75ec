//! `berkutctl backup pin ID` and `backup unpin ID`.

use std::process::ExitCode;

use berkut_proto::wire::Operation;

use super::{expect_backup, parse_id, Context};
use crate::display;

pub async fn run(ctx: &Context, id: &str, pinned: bool) -> anyhow::Result<ExitCode> {
    let id = parse_id(id)?;
    let op = if pinned {
        Operation::BackupPin { id }
    } else {
        Operation::BackupUnpin { id }
    };
    let mut client = ctx.connect().await?;
    let record = expect_backup(client.call(op).await?)?;
    display::backup::pinned(ctx.json, &record);
    Ok(ExitCode::SUCCESS)
}
