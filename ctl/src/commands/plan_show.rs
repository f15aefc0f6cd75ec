//! `berkutctl plan show`.

use std::process::ExitCode;

use berkut_proto::wire::{ops, Operation};

use super::{expect_plan, Context};
use crate::display;

pub async fn run(ctx: &Context) -> anyhow::Result<ExitCode> {
    let mut client = ctx.connect().await?;
    let plan = expect_plan(client.call(Operation::PlanShow(ops::PlanShow {})).await?)?;
    display::show(ctx.json, &plan);
    Ok(ExitCode::SUCCESS)
}
