//! `berkutctl metrics`: the daemon's metrics in the Prometheus text format,
//! the same text as its `metrics_textfile` (for a scrape through a wrapper,
//! or a look by hand).

use std::process::ExitCode;

use berkut_proto::wire::{ops, Operation, Reply};

use super::Context;
use crate::display;

pub async fn run(ctx: &Context) -> anyhow::Result<ExitCode> {
    let mut client = ctx.connect().await?;
    let Reply::Metrics { text } = client.call(Operation::Metrics(ops::Metrics {})).await? else {
        anyhow::bail!("unexpected reply from the daemon");
    };
    display::monitoring::metrics(ctx.json, &text);
    Ok(ExitCode::SUCCESS)
}
