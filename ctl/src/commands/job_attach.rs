//! `berkutctl job attach ID`: follow a job started elsewhere (by another
//! administrator, the main application or the schedule).

use std::process::ExitCode;

use berkut_proto::wire::{ops, Operation};

use super::{follow_backup, parse_id, Context};

pub async fn run(ctx: &Context, id: &str) -> anyhow::Result<ExitCode> {
    let id = parse_id(id)?;
    follow_backup(ctx, Operation::JobAttach(ops::JobAttach { id })).await
}
