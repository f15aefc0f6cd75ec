//! `berkutctl backup delete ID`.

use std::process::ExitCode;

use berkut_proto::wire::{ops, Operation, Reply};

use super::{parse_id, Context};
use crate::display;

pub async fn run(ctx: &Context, id: &str) -> anyhow::Result<ExitCode> {
    let id = parse_id(id)?;
    let mut client = ctx.connect().await?;
    let Reply::Deleted { id } = client
        .call(Operation::BackupDelete(ops::BackupDelete { id }))
        .await?
    else {
        anyhow::bail!("unexpected reply from the daemon");
    };
    display::backup::deleted(ctx.json, &id);
    Ok(ExitCode::SUCCESS)
}
