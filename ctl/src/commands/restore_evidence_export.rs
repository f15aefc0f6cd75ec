//! `berkutctl restore evidence RID --export FILE [--force] [--verify]`: the
//! daemon streams the restore's evidence directory as a tar archive
//! (`restore_evidence_export`; berkutctl need not read the daemon's state
//! directory); it is compressed here by FILE's name (`.tar.gz`/`.tgz`:
//! gzip, `.tar.zst`/`.tzst`: zstd, else a plain tar), written to a 0600
//! temporary file beside FILE, and moved to FILE only when every byte has
//! arrived and its sha256 matches what the daemon sent. An existing FILE is
//! never replaced without `--force`, not even by one appearing meanwhile
//! (the temporary file is linked to FILE, which fails if FILE exists).
//! Tampered evidence is exported as it is, with a warning; `--verify` makes
//! that (or evidence without a DIGEST) a failed command.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use berkut_proto::ids::RestoreId;
use berkut_proto::wire::{ops, Operation, Reply, ServerMessage};
use sha2::{Digest, Sha256};

use super::{parse_id, Context};
use crate::display;

pub async fn run(
    ctx: &Context,
    id: &str,
    out: &Path,
    force: bool,
    verify: bool,
) -> anyhow::Result<ExitCode> {
    let restore_id: RestoreId = parse_id(id)?;
    // Refused before the daemon is asked: nothing is sent for nothing.
    if !force && std::fs::symlink_metadata(out).is_ok() {
        return Ok(exists(out));
    }
    let (file, tmp) = super::create_beside(out, "export")?;
    let result = receive(ctx, restore_id, Sink::for_name(out, file)?)
        .await
        .and_then(|(reply, file)| {
            file.sync_all()?;
            place(&tmp, out, force)?;
            Ok(reply)
        });
    let reply = match result {
        Ok(reply) => reply,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            if e.downcast_ref::<Exists>().is_some() {
                return Ok(exists(out));
            }
            return Err(e);
        }
    };
    let failure = display::restore::exported(ctx.json, out, &reply);
    if let Some(why) = failure {
        eprintln!("berkutctl: {why}");
        if verify {
            return Ok(ExitCode::from(crate::exit::FAILED));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Streams the export into `sink`; the reply once every piece arrived in
/// order and their sha256 is the daemon's.
async fn receive(
    ctx: &Context,
    restore_id: RestoreId,
    mut sink: Sink,
) -> anyhow::Result<(Reply, File)> {
    let mut client = ctx.connect().await?;
    let mut hasher = Sha256::new();
    let mut received = 0u64;
    let mut failed: Option<anyhow::Error> = None;
    let reply = client
        .call_streaming(
            Operation::RestoreEvidenceExport(ops::RestoreEvidenceExport { restore_id }),
            |m| {
                let ServerMessage::Data { offset, data, .. } = m else {
                    return;
                };
                if failed.is_some() {
                    return;
                }
                if *offset != received {
                    failed = Some(anyhow::anyhow!(
                        "the daemon sent a piece at {offset} where {received} was expected"
                    ));
                    return;
                }
                hasher.update(data);
                received += data.len() as u64;
                if let Err(e) = sink.write_all(data) {
                    failed = Some(anyhow::Error::from(e).context("cannot write the export"));
                }
            },
        )
        .await?;
    if let Some(e) = failed {
        return Err(e);
    }
    let Reply::EvidenceExported {
        size_bytes, sha256, ..
    } = &reply
    else {
        anyhow::bail!("unexpected reply from the daemon");
    };
    if *size_bytes != received || *sha256 != hex::encode(hasher.finalize()) {
        anyhow::bail!("the export did not arrive whole (its size or sha256 differs)");
    }
    let file = sink.finish().context("cannot write the export")?;
    Ok((reply, file))
}

/// Moves the finished file to `out`: a rename with `--force`, else a link
/// (which refuses an existing `out`) and the temporary name removed.
fn place(tmp: &Path, out: &Path, force: bool) -> anyhow::Result<()> {
    if force {
        return std::fs::rename(tmp, out)
            .with_context(|| format!("cannot move the export to {}", out.display()));
    }
    match std::fs::hard_link(tmp, out) {
        Ok(()) => {
            let _ = std::fs::remove_file(tmp);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(Exists.into()),
        // A file system without hard links: checked, then renamed (a FILE
        // made in between would be replaced; only there).
        Err(_) if std::fs::symlink_metadata(out).is_err() => std::fs::rename(tmp, out)
            .with_context(|| format!("cannot move the export to {}", out.display())),
        Err(_) => Err(Exists.into()),
    }
}

/// FILE appeared while the export ran, and `--force` was not given.
#[derive(Debug)]
struct Exists;

impl std::fmt::Display for Exists {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the file exists")
    }
}

impl std::error::Error for Exists {}

/// An existing FILE without `--force`: wrong usage (exit 2), FILE untouched.
fn exists(out: &Path) -> ExitCode {
    eprintln!(
        "berkutctl: {} exists; give --force to replace it",
        display::text::printable(&out.display().to_string())
    );
    ExitCode::from(2)
}

/// Where the tar goes: the file itself, or a compressor in front of it.
enum Sink {
    Plain(File),
    Gzip(flate2::write::GzEncoder<File>),
    Zstd(zstd::Encoder<'static, File>),
}

impl Sink {
    fn for_name(out: &Path, file: File) -> anyhow::Result<Sink> {
        let name = out.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        Ok(if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
            Sink::Gzip(flate2::write::GzEncoder::new(
                file,
                flate2::Compression::default(),
            ))
        } else if name.ends_with(".tar.zst") || name.ends_with(".tzst") {
            Sink::Zstd(zstd::Encoder::new(file, 0).context("cannot start zstd")?)
        } else {
            Sink::Plain(file)
        })
    }

    fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Plain(f) => f.write_all(data),
            Sink::Gzip(g) => g.write_all(data),
            Sink::Zstd(z) => z.write_all(data),
        }
    }

    /// Ends the compressed stream; the file, to sync.
    fn finish(self) -> std::io::Result<File> {
        match self {
            Sink::Plain(f) => Ok(f),
            Sink::Gzip(g) => g.finish(),
            Sink::Zstd(z) => z.finish(),
        }
    }
}
