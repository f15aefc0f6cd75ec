//! `berkutctl backup create`.

use std::process::ExitCode;

use berkut_proto::manifest::Scope;
use berkut_proto::wire::{ops, Operation};

use super::{follow_backup, Context};

pub async fn run(
    ctx: &Context,
    label: String,
    scope: Scope,
    include_files: bool,
    wait: bool,
) -> anyhow::Result<ExitCode> {
    let op = Operation::BackupCreate(ops::BackupCreate {
        label,
        scope,
        include_files,
        wait,
    });
    follow_backup(ctx, op).await
}
