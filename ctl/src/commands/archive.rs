//! `berkutctl archive inspect | verify | extract | rewrap`: tools that need
//! only an archive file and the key, no daemon and no database, so that an
//! operator is never locked in. Extraction writes into a private temporary
//! directory beside the target and renames it into place only once the whole
//! archive has verified, so a damaged archive leaves nothing behind.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use berkut_proto::archive::{self, Depth, Header, WriteBehind};

use super::Context;
use crate::{display, keys};

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
    display::archive::inspected(ctx.json, &header, size);
    Ok(ExitCode::SUCCESS)
}

/// Authenticates every chunk and checks the structure and every part
/// against the manifest; with `deep`, also decompresses every part and
/// recomputes its size and sha256.
pub fn verify(
    ctx: &Context,
    path: &Path,
    key_files: &[PathBuf],
    deep: bool,
) -> anyhow::Result<ExitCode> {
    let keyring = keys::keyring(key_files)?;
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    // The file's own sha256 is computed on a second thread while this one
    // authenticates: the two cost about the same and overlap on two cores.
    let mut reader = archive::HashingReadAhead::new(file);
    let depth = if deep {
        Depth::Deep
    } else {
        Depth::Authenticate
    };
    let manifest = archive::verify_with(&mut reader, &keyring, depth, |_, _| Ok(()))
        .with_context(|| format!("{} does not verify", path.display()))?;
    let (_, sha256) = reader
        .finish()
        .with_context(|| format!("cannot read {}", path.display()))?;
    display::archive::verified(ctx.json, &manifest, &sha256, deep);
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
            let mut file = WriteBehind::new(
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(staging.join(name))?,
            );
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
    display::archive::extracted(ctx.json, &manifest, out);
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
    let (file, tmp) = super::create_beside(target, "rewrap")?;
    let result = (|| -> anyhow::Result<(Header, Header)> {
        let mut w = BufWriter::new(WriteBehind::new(file));
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
    display::archive::rewrapped(ctx.json, target, &old, &rewrapped);
    Ok(ExitCode::SUCCESS)
}
