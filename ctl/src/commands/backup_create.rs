//! `berkutctl backup create`.

use std::process::ExitCode;

use berkut_proto::manifest::Scope;
use berkut_proto::wire::Operation;

use super::{expect_backup, finish_with_record, Context};
use crate::progress::ProgressView;

pub async fn run(
    ctx: &Context,
    label: String,
    scope: Scope,
    include_files: bool,
    wait: bool,
) -> anyhow::Result<ExitCode> {
    let mut client = ctx.connect().await?;
    let view = ProgressView::new(ctx.json);
    let op = Operation::BackupCreate {
        label,
        scope,
        include_files,
        wait,
    };
    let reply = client.call_with_progress(op, |p| view.update(p)).await;
    view.finish();
    let record = expect_backup(reply?)?;
    Ok(finish_with_record(ctx, &record))
}
