//! `berkutctl drill run [ID] [--wait]`: a drill by hand, of the backup
//! named or of the one the daemon's drill policy would choose.

use std::process::ExitCode;

use berkut_proto::wire::{ops, Operation};

use super::{follow_restore, parse_id, Context};

pub async fn run(ctx: &Context, id: Option<&str>, wait: bool) -> anyhow::Result<ExitCode> {
    let backup_id = id.map(parse_id).transpose()?;
    follow_restore(ctx, Operation::DrillRun(ops::DrillRun { backup_id, wait })).await
}
