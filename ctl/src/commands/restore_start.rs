//! `berkutctl restore ID [--dry-run] [--with-globals] [--wait]`.

use std::process::ExitCode;

use berkut_proto::wire::{ops, Operation};

use super::{follow_restore, parse_id, Context};

pub async fn run(
    ctx: &Context,
    id: &str,
    dry_run: bool,
    with_globals: bool,
    wait: bool,
) -> anyhow::Result<ExitCode> {
    let backup_id = parse_id(id)?;
    let op = Operation::RestoreStart(ops::RestoreStart {
        backup_id,
        dry_run,
        with_globals,
        wait,
    });
    follow_restore(ctx, op).await
}
