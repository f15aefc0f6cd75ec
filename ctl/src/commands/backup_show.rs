//! `berkutctl backup show ID`.

use std::process::ExitCode;

use berkut_proto::wire::{ops, Operation};

use super::{expect_backup, parse_id, Context};
use crate::display;

pub async fn run(ctx: &Context, id: &str) -> anyhow::Result<ExitCode> {
    let id = parse_id(id)?;
    let mut client = ctx.connect().await?;
    let record = expect_backup(
        client
            .call(Operation::BackupShow(ops::BackupShow { id }))
            .await?,
    )?;
    display::show(ctx.json, &record);
    Ok(ExitCode::SUCCESS)
}
