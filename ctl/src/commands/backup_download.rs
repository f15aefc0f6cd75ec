//! `berkutctl backup download ID -o FILE`: writes to a temporary file beside
//! FILE and renames it only when every byte has arrived, in order, and the
//! sha256 the daemon took of what it read from its disk and sent matches
//! the catalogue's record. The daemon's hash is the check: the pieces come
//! over a local stream socket, each at the offset where the one before
//! ended (`Client::download` checks that and the total), so a second hash
//! here would only take the same bytes' digest again, at a cost of one
//! SHA-256 pass, the largest share of a download's time.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use berkut_proto::archive::WriteBehind;
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
    let (file, tmp) = super::create_beside(out, "download")?;
    // Large pieces (256 KiB) are written as they come, uncopied; small ones
    // (32 KiB, when the daemon's pool is busy) gathered four to a write.
    // The disk gets the file as it arrives, so the fsync at the end is short.
    let mut file = std::io::BufWriter::with_capacity(128 << 10, WriteBehind::new(file));
    let view = BytesView::new(ctx.json, record.size_bytes.unwrap_or(0));
    let result = client
        .download(id.clone(), |offset, data| {
            file.write_all(data)?;
            view.update(offset + data.len() as u64);
            Ok(())
        })
        .await;
    view.finish();
    let checked = result
        .map_err(anyhow::Error::from)
        .and_then(|(size, sha256)| {
            if Some(&sha256) != record.sha256.as_ref() || Some(size) != record.size_bytes {
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
