//! `berkutctl restore status RID [--wait]` and `restore evidence RID
//! [--verify]`.

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

/// With `verify`, a failed command when the evidence does not match its
/// `DIGEST` (or has none).
pub async fn evidence(ctx: &Context, id: &str, verify: bool) -> anyhow::Result<ExitCode> {
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
    if verify {
        if let Some(why) = display::restore::digest_failure(&evidence) {
            eprintln!("berkutctl: {why}");
            return Ok(ExitCode::from(crate::exit::FAILED));
        }
    }
    Ok(ExitCode::SUCCESS)
}
