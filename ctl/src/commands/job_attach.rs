//! `berkutctl job attach ID`: follow a job started elsewhere (by another
//! administrator, the main application or the schedule).

use std::process::ExitCode;

use berkut_proto::wire::Operation;

use super::{expect_backup, finish_with_record, parse_id, Context};
use crate::progress::ProgressView;

pub async fn run(ctx: &Context, id: &str) -> anyhow::Result<ExitCode> {
    let id = parse_id(id)?;
    let mut client = ctx.connect().await?;
    let view = ProgressView::new(ctx.json);
    let reply = client
        .call_with_progress(Operation::JobAttach { id }, |p| view.update(p))
        .await;
    view.finish();
    let record = expect_backup(reply?)?;
    Ok(finish_with_record(ctx, &record))
}
