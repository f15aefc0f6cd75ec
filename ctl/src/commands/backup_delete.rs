//! `berkutctl backup delete ID [--remote NAME | --everywhere]`. Alone it
//! deletes the local archive (a record whose copy a remote holds stays,
//! remote-only); `--remote` deletes that remote's copy, `--everywhere` the
//! archive and every copy.

use std::process::ExitCode;

use berkut_proto::wire::{ops, Operation, Reply};

use super::{parse_id, Context};
use crate::display;

pub async fn run(
    ctx: &Context,
    id: &str,
    remote: Option<String>,
    everywhere: bool,
) -> anyhow::Result<ExitCode> {
    let id = parse_id(id)?;
    let mut client = ctx.connect().await?;
    let op = if remote.is_some() || everywhere {
        Operation::RemoteDelete(ops::RemoteDelete {
            id,
            remote,
            everywhere,
        })
    } else {
        Operation::BackupDelete(ops::BackupDelete { id })
    };
    let Reply::Deleted { id } = client.call(op).await? else {
        anyhow::bail!("unexpected reply from the daemon");
    };
    display::backup::deleted(ctx.json, &id);
    Ok(ExitCode::SUCCESS)
}
