//! `berkutctl plan enable` and `plan disable`.

use std::process::ExitCode;

use berkut_proto::wire::{ops, Operation};

use super::{expect_plan, Context};
use crate::display;

pub async fn enable(ctx: &Context) -> anyhow::Result<ExitCode> {
    run(ctx, Operation::PlanEnable(ops::PlanEnable {})).await
}

pub async fn disable(ctx: &Context) -> anyhow::Result<ExitCode> {
    run(ctx, Operation::PlanDisable(ops::PlanDisable {})).await
}

async fn run(ctx: &Context, op: Operation) -> anyhow::Result<ExitCode> {
    let mut client = ctx.connect().await?;
    let plan = expect_plan(client.call(op).await?)?;
    display::show(ctx.json, &plan);
    Ok(ExitCode::SUCCESS)
}
