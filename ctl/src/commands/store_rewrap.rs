//! `berkutctl store rewrap`: the daemon re-wraps every archive not under
//! its primary key. Exits 1 when any was left out (in use, or failed).

use std::process::ExitCode;

use berkut_proto::wire::{ops, Operation, Reply};

use super::Context;
use crate::{display, exit};

pub async fn run(ctx: &Context) -> anyhow::Result<ExitCode> {
    let mut client = ctx.connect().await?;
    let Reply::Rewrapped {
        rewrapped,
        unchanged,
        busy,
        failed,
    } = client
        .call(Operation::StoreRewrap(ops::StoreRewrap {}))
        .await?
    else {
        anyhow::bail!("unexpected reply from the daemon");
    };
    display::store::rewrapped(ctx.json, &rewrapped, unchanged, &busy, &failed);
    Ok(if busy.is_empty() && failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::FAILED)
    })
}
