//! `berkutctl backup list`: every backup, fetched page by page.

use std::process::ExitCode;

use berkut_proto::wire::{ops, Operation, Reply};

use super::Context;
use crate::display;

pub async fn run(ctx: &Context) -> anyhow::Result<ExitCode> {
    let mut client = ctx.connect().await?;
    let mut all = Vec::new();
    loop {
        let op = Operation::BackupList(ops::BackupList {
            offset: all.len() as u64,
            limit: None,
        });
        let Reply::Backups { backups, total } = client.call(op).await? else {
            anyhow::bail!("unexpected reply from the daemon");
        };
        let done = backups.is_empty() || all.len() + backups.len() >= total as usize;
        all.extend(backups);
        if done {
            break;
        }
    }
    display::show(ctx.json, all.as_slice());
    Ok(ExitCode::SUCCESS)
}
