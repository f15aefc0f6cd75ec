//! `berkutctl maintenance status | watch | clear`.

use std::process::ExitCode;

use berkut_proto::wire::{Operation, Reply, ServerMessage};

use super::Context;
use crate::display;

pub async fn run(ctx: &Context, op: Operation) -> anyhow::Result<ExitCode> {
    let mut client = ctx.connect().await?;
    let reply = client
        .call_streaming(op, |m| {
            if let ServerMessage::Event { maintenance, .. } = m {
                display::show(ctx.json, maintenance)
            }
        })
        .await?;
    let Reply::Maintenance { maintenance } = reply else {
        anyhow::bail!("unexpected reply from the daemon");
    };
    display::show(ctx.json, &maintenance);
    Ok(ExitCode::SUCCESS)
}
