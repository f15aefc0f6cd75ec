//! `berkutctl backup import FILE`: uploads an archive; the daemon verifies
//! it completely before it enters the store.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;

use super::{expect_backup, Context};
use crate::display;
use crate::display::progress::BytesView;

pub async fn run(ctx: &Context, file: &Path) -> anyhow::Result<ExitCode> {
    let source = tokio::fs::File::open(file)
        .await
        .with_context(|| format!("cannot open {}", file.display()))?;
    let size = source.metadata().await?.len();
    let mut client = ctx.connect().await?;
    let view = BytesView::new(ctx.json, size);
    let reply = client.upload(size, source, |sent| view.update(sent)).await;
    view.finish();
    let record = expect_backup(reply?)?;
    Ok(display::finish(ctx.json, &record))
}
