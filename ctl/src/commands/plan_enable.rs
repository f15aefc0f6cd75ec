//! `berkutctl plan enable` and `plan disable`.

use std::process::ExitCode;

use berkut_proto::wire::Operation;

use super::{plan_show, Context};

pub async fn run(ctx: &Context, enabled: bool) -> anyhow::Result<ExitCode> {
    let op = if enabled {
        Operation::PlanEnable
    } else {
        Operation::PlanDisable
    };
    let mut client = ctx.connect().await?;
    let plan = plan_show::expect_plan(client.call(op).await?)?;
    plan_show::print(ctx, &plan);
    Ok(ExitCode::SUCCESS)
}
