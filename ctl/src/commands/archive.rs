//! `berkutctl archive inspect | verify | extract | rewrap`: tools that need
//! only an archive file and the key, no daemon and no database, so that an
//! operator is never locked in. Extraction writes into a private temporary
//! directory beside the target and renames it into place only once the whole
//! archive has verified, so a damaged archive leaves nothing behind.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use berkut_proto::archive::{self, Header};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::Context;
use crate::{keys, output};

fn open(path: &Path) -> anyhow::Result<BufReader<File>> {
    Ok(BufReader::with_capacity(
        1 << 20,
        File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
    ))
}

/// The header only: no key needed.
pub fn inspect(ctx: &Context, path: &Path) -> anyhow::Result<ExitCode> {
    let header = Header::read_from(&mut open(path)?)
        .with_context(|| format!("{} is not a readable .bscc archive", path.display()))?;
    let size = std::fs::metadata(path)?.len();
    if ctx.json {
        output::json_line(&json!({
            "format_version": header.version,
            "key_id": header.key_id.to_string(),
            "chunk_size": header.chunk_size,
            "size_bytes": size,
        }));
    } else {
        println!("format:     .bscc version {}", header.version);
        println!("key_id:     {}", header.key_id);
        println!(
            "chunk size: {}",
            output::bytes(u64::from(header.chunk_size))
        );
        println!("size:       {}", output::bytes(size));
    }
    Ok(ExitCode::SUCCESS)
}

/// Authenticates everything and checks every part against the manifest.
pub fn verify(ctx: &Context, path: &Path, key_files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let keyring = keys::keyring(key_files)?;
    let mut hasher = Sha256::new();
    let reader = HashTee {
        inner: open(path)?,
        hasher: &mut hasher,
    };
    let manifest = archive::verify(reader, &keyring, |_, _| Ok(()))
        .with_context(|| format!("{} does not verify", path.display()))?;
    let sha256 = hex::encode(hasher.finalize());
    if ctx.json {
        output::json_line(&json!({ "verified": true, "sha256": sha256, "manifest": manifest }));
    } else {
        println!("verified:   every chunk authenticated, every part matches the manifest");
        println!(
            "backup:     {} ({}, {})",
            manifest.backup_id,
            manifest.scope.as_str(),
            manifest.database.name
        );
        println!("sha256:     {sha256}");
        for p in &manifest.parts {
            println!(
                "  {:<16} {:>12}  {}",
                p.name,
                output::bytes(p.size),
                p.sha256
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes every part into `out` (which must not exist yet), plus the
/// manifest as `manifest.json`.
pub fn extract(
    ctx: &Context,
    path: &Path,
    key_files: &[PathBuf],
    out: &Path,
) -> anyhow::Result<ExitCode> {
    let keyring = keys::keyring(key_files)?;
    if out.exists() {
        anyhow::bail!("{} already exists; name a new directory", out.display());
    }
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let staging = parent.join(format!(
        ".{}.partial",
        out.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("extract")
    ));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&staging)
        .with_context(|| format!("cannot create {}", staging.display()))?;
    let result = (|| -> anyhow::Result<berkut_proto::manifest::Manifest> {
        let manifest = archive::verify(open(path)?, &keyring, |name, part| {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(staging.join(name))?;
            std::io::copy(part, &mut file)?;
            file.sync_all()
        })
        .with_context(|| format!("{} does not verify", path.display()))?;
        let mut m = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(staging.join("manifest.json"))?;
        m.write_all(&serde_json::to_vec_pretty(&manifest)?)?;
        Ok(manifest)
    })();
    let manifest = match result {
        Ok(m) => m,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    std::fs::rename(&staging, out)
        .with_context(|| format!("cannot move the extracted parts to {}", out.display()))?;
    if ctx.json {
        output::json_line(&json!({ "directory": out, "parts": manifest.parts }));
    } else {
        println!(
            "extracted {} parts and manifest.json into {}",
            manifest.parts.len(),
            out.display()
        );
        if manifest.parts.iter().any(|p| p.name == "dump.pgcustom") {
            println!(
                "restore with: pg_restore -d DATABASE {}",
                out.join("dump.pgcustom").display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Re-wraps the archive's data key under `new_key` (the payload is copied
/// untouched), writing `out`, or replacing the file when `out` is absent.
pub fn rewrap(
    ctx: &Context,
    path: &Path,
    key_files: &[PathBuf],
    new_key: &Path,
    out: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let keyring = keys::keyring(key_files)?;
    let new = keys::read_key(new_key)?;
    let target = out.unwrap_or(path);
    let tmp = target.with_extension("bscc.rewrap-partial");
    let result = (|| -> anyhow::Result<(Header, Header)> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        let mut w = BufWriter::new(file);
        let headers = archive::rewrap(open(path)?, &mut w, &keyring, &new)
            .with_context(|| format!("{} cannot be rewrapped", path.display()))?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        Ok(headers)
    })();
    let (old, rewrapped) = match result {
        Ok(h) => h,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    std::fs::rename(&tmp, target)?;
    if ctx.json {
        output::json_line(
            &json!({ "file": target, "old_key_id": old.key_id.to_string(), "key_id": rewrapped.key_id.to_string() }),
        );
    } else {
        println!(
            "{} is now wrapped under key {} (was {})",
            target.display(),
            rewrapped.key_id,
            old.key_id
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A reader that hashes what passes through it.
struct HashTee<'h, R> {
    inner: R,
    hasher: &'h mut Sha256,
}

impl<R: Read> Read for HashTee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}
