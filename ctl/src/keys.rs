//! Reading master keys from files for the offline archive commands, with
//! the daemon's own hygiene: a key file that other users can read is
//! refused, and key text never reaches an error message.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use berkut_proto::archive::{Keyring, MasterKey};
use zeroize::Zeroizing;

pub fn read_key(path: &Path) -> anyhow::Result<MasterKey> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("cannot read the key file {}", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        anyhow::bail!(
            "the key file {} can be read by other users (mode {mode:o}); run `chmod 600` on it",
            path.display()
        );
    }
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the key file {}", path.display()))?,
    );
    MasterKey::parse(&text)
        .map_err(|e| anyhow::anyhow!("the key file {} holds no usable key: {e}", path.display()))
}

/// A keyring of the given files, the first one primary.
pub fn keyring(files: &[PathBuf]) -> anyhow::Result<Keyring> {
    let (first, rest) = files
        .split_first()
        .ok_or_else(|| anyhow::anyhow!("name at least one --key-file"))?;
    let mut ring = Keyring::new(read_key(first)?);
    for f in rest {
        ring = ring.with_other(read_key(f)?);
    }
    Ok(ring)
}
