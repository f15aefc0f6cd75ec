//! `berkutctl notify test`: the daemon sends a test event to every
//! notification sink and reports each one's result. Exits 1 when a sink
//! failed or none is configured, so a deployment script can check its
//! sinks.

use std::process::ExitCode;

use berkut_proto::wire::{ops, Operation, Reply};

use super::Context;
use crate::{display, exit};

pub async fn run(ctx: &Context) -> anyhow::Result<ExitCode> {
    let mut client = ctx.connect().await?;
    let Reply::NotifyTested { results } = client
        .call(Operation::NotifyTest(ops::NotifyTest {}))
        .await?
    else {
        anyhow::bail!("unexpected reply from the daemon");
    };
    display::monitoring::notify_tested(ctx.json, &results);
    Ok(if results.is_empty() || results.iter().any(|r| !r.ok) {
        ExitCode::from(exit::FAILED)
    } else {
        ExitCode::SUCCESS
    })
}
