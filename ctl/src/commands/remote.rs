//! `berkutctl remote list NAME`, `remote fetch NAME ID`, `remote verify
//! NAME [ID]` and `remote status`: what a remote holds, bringing a copy
//! into the store, checking copies, and every remote's state. `verify`
//! exits 1 when a copy is refused, `status` when a remote is unreachable
//! or has failed copies, so both can be scheduled and monitored.

use std::process::ExitCode;

use berkut_proto::wire::{ops, Operation, Reply};

use super::{parse_id, Context};
use crate::{display, exit};

pub async fn list(ctx: &Context, remote: String) -> anyhow::Result<ExitCode> {
    let mut client = ctx.connect().await?;
    let Reply::RemoteArchives { archives, .. } = client
        .call(Operation::RemoteList(ops::RemoteList { remote }))
        .await?
    else {
        anyhow::bail!("unexpected reply from the daemon");
    };
    display::show(ctx.json, archives.as_slice());
    Ok(ExitCode::SUCCESS)
}

pub async fn fetch(ctx: &Context, remote: String, id: &str) -> anyhow::Result<ExitCode> {
    let id = parse_id(id)?;
    let mut client = ctx.connect().await?;
    let Reply::Backup { backup } = client
        .call(Operation::RemoteFetch(ops::RemoteFetch { remote, id }))
        .await?
    else {
        anyhow::bail!("unexpected reply from the daemon");
    };
    display::show(ctx.json, &backup);
    Ok(ExitCode::SUCCESS)
}

pub async fn verify(ctx: &Context, remote: String, id: Option<&str>) -> anyhow::Result<ExitCode> {
    let id = id.map(parse_id).transpose()?;
    let mut client = ctx.connect().await?;
    let Reply::RemoteVerified { verdicts, .. } = client
        .call(Operation::RemoteVerify(ops::RemoteVerify { remote, id }))
        .await?
    else {
        anyhow::bail!("unexpected reply from the daemon");
    };
    display::show(ctx.json, verdicts.as_slice());
    Ok(if verdicts.iter().all(|v| v.ok) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::FAILED)
    })
}

pub async fn status(ctx: &Context) -> anyhow::Result<ExitCode> {
    let mut client = ctx.connect().await?;
    let Reply::Remotes { remotes } = client
        .call(Operation::RemoteStatus(ops::RemoteStatus {}))
        .await?
    else {
        anyhow::bail!("unexpected reply from the daemon");
    };
    display::show(ctx.json, remotes.as_slice());
    Ok(if remotes.iter().all(|r| r.reachable && r.failed == 0) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::FAILED)
    })
}
