//! `berkutctl status`. Exits 1 when the daemon reports a fault (the store
//! alarm, a background task that died), so monitoring can run it.

use std::process::ExitCode;

use berkut_proto::wire::{ops, Operation, Reply};

use super::Context;
use crate::{display, exit};

pub async fn run(ctx: &Context) -> anyhow::Result<ExitCode> {
    let mut client = ctx.connect().await?;
    let Reply::Status { status } = client.call(Operation::Status(ops::Status {})).await? else {
        anyhow::bail!("unexpected reply from the daemon");
    };
    display::show(ctx.json, &status);
    // Monitoring runs `berkutctl status`: a fault the daemon reports (the
    // store alarm, a background task that died) is a non-zero exit.
    Ok(if status.has_fault() {
        ExitCode::from(exit::FAILED)
    } else {
        ExitCode::SUCCESS
    })
}
