//! `berkutctl backup list`.

use std::process::ExitCode;

use berkut_proto::wire::{Operation, Reply};

use super::Context;
use crate::output;

pub async fn run(ctx: &Context) -> anyhow::Result<ExitCode> {
    let mut client = ctx.connect().await?;
    let Reply::Backups { backups } = client.call(Operation::BackupList).await? else {
        anyhow::bail!("unexpected reply from the daemon");
    };
    if ctx.json {
        output::json_line(&backups);
    } else {
        output::print_table(&backups);
    }
    Ok(ExitCode::SUCCESS)
}
