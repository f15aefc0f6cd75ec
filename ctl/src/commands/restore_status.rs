//! `berkutctl restore status RID [--wait]` and `restore evidence RID`.

use std::process::ExitCode;

use berkut_proto::wire::{ops, Operation, Reply};

use super::{follow_restore, parse_id, Context};
use crate::display;

pub async fn run(ctx: &Context, id: &str, wait: bool) -> anyhow::Result<ExitCode> {
    let restore_id = parse_id(id)?;
    follow_restore(
        ctx,
        Operation::RestoreStatus(ops::RestoreStatus { restore_id, wait }),
    )
    .await
}

pub async fn evidence(ctx: &Context, id: &str) -> anyhow::Result<ExitCode> {
    let restore_id = parse_id(id)?;
    let mut client = ctx.connect().await?;
    let Reply::Evidence { evidence } = client
        .call(Operation::RestoreEvidence(ops::RestoreEvidence {
            restore_id,
        }))
        .await?
    else {
        anyhow::bail!("unexpected reply from the daemon");
    };
    display::show(ctx.json, &*evidence);
    Ok(ExitCode::SUCCESS)
}
