//! `berkutctl backup download ID -o FILE`: writes to a temporary file beside
//! FILE and renames it only when every byte has arrived and its sha256
//! matches what the daemon sent and what the catalogue recorded.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use berkut_proto::archive::BackgroundHasher;
use berkut_proto::ids::BackupId;
use berkut_proto::wire::{ops, Operation};

use super::{expect_backup, parse_id, Context};
use crate::display;
use crate::display::progress::BytesView;

pub async fn run(ctx: &Context, id: &str, out: &Path) -> anyhow::Result<ExitCode> {
    let id: BackupId = parse_id(id)?;
    let mut client = ctx.connect().await?;
    let record = expect_backup(
        client
            .call(Operation::BackupShow(ops::BackupShow { id: id.clone() }))
            .await?,
    )?;
    // SHA-256 is the costliest step here; its own thread takes it off the
    // one that receives and writes. Started first: nothing to clean up yet.
    let mut hasher = BackgroundHasher::new(1 << 20)?;
    let (file, tmp) = super::create_beside(out, "download")?;
    // The daemon's pieces are at most 256 KiB; one write per megabyte.
    let mut file = std::io::BufWriter::with_capacity(1 << 20, file);
    let view = BytesView::new(ctx.json, record.size_bytes.unwrap_or(0));
    let result = client
        .download(id.clone(), |offset, data| {
            hasher.update(data)?;
            file.write_all(data)?;
            view.update(offset + data.len() as u64);
            Ok(())
        })
        .await;
    view.finish();
    let checked = result
        .map_err(anyhow::Error::from)
        .and_then(|(size, sha256)| {
            let ours = hex::encode(hasher.finalize()?);
            if ours != sha256 || Some(&sha256) != record.sha256.as_ref() {
                anyhow::bail!(
                    "the downloaded archive's sha256 does not match the catalogue's record"
                );
            }
            file.flush()?;
            file.get_ref().sync_all()?;
            Ok((size, sha256))
        });
    let (size, sha256) = match checked {
        Ok(v) => v,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    std::fs::rename(&tmp, out)
        .with_context(|| format!("cannot move the download to {}", out.display()))?;
    display::backup::downloaded(ctx.json, &id, out, size, &sha256);
    Ok(ExitCode::SUCCESS)
}
