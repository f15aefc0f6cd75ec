//! `berkutctl plan enable` and `plan disable`.

use std::process::ExitCode;

use berkut_proto::wire::Operation;

use super::{expect_plan, Context};
use crate::display;

pub async fn run(ctx: &Context, enabled: bool) -> anyhow::Result<ExitCode> {
    let op = if enabled {
        Operation::PlanEnable
    } else {
        Operation::PlanDisable
    };
    let mut client = ctx.connect().await?;
    let plan = expect_plan(client.call(op).await?)?;
    display::show(ctx.json, &plan);
    Ok(ExitCode::SUCCESS)
}
