//! `berkutctl backup import FILE`: uploads an archive; the daemon verifies
//! it completely before it enters the store.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;

use super::{expect_backup, finish_with_record, Context};
use crate::progress::bytes_bar;

pub async fn run(ctx: &Context, file: &Path) -> anyhow::Result<ExitCode> {
    let source = tokio::fs::File::open(file)
        .await
        .with_context(|| format!("cannot open {}", file.display()))?;
    let size = source.metadata().await?.len();
    let mut client = ctx.connect().await?;
    let bar = bytes_bar(ctx.json, size);
    let reply = client
        .upload(size, source, |sent| {
            if let Some(bar) = &bar {
                bar.set_position(sent)
            }
        })
        .await;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let record = expect_backup(reply?)?;
    Ok(finish_with_record(ctx, &record))
}
