//! Loading the master key: from configuration text, from a key file, or, in
//! development mode only, from a generated file. Error messages say how to
//! make a good key and never repeat what was given.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use berkut_proto::archive::MasterKey;
use zeroize::Zeroizing;

use super::ConfigError;

pub fn parse(text: &str) -> Result<MasterKey, ConfigError> {
    MasterKey::parse(text)
        .map_err(|e| ConfigError::Key(format!("the encryption key is not usable: {e}")))
}

/// Reads a key file, refusing one that other users can read: a key that has
/// leaked is no key.
pub fn read_key_file(path: &Path) -> Result<MasterKey, ConfigError> {
    let meta = std::fs::metadata(path).map_err(|e| {
        ConfigError::Key(format!("cannot read the key file {}: {e}", path.display()))
    })?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(ConfigError::Key(format!(
            "the key file {} can be read by other users (mode {:o}); run `chmod 600` on it",
            path.display(),
            meta.permissions().mode() & 0o777
        )));
    }
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
        ConfigError::Key(format!("cannot read the key file {}: {e}", path.display()))
    })?);
    parse(&text)
}

/// Loads the development key, generating it on first use. Only `--dev`
/// calls this.
pub fn load_dev_key(path: &Path) -> Result<MasterKey, ConfigError> {
    if path.exists() {
        return read_key_file(path);
    }
    let key = MasterKey::generate();
    let fail = |e: std::io::Error| {
        ConfigError::Key(format!("cannot write the dev key {}: {e}", path.display()))
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(fail)?;
    let text = key.to_base64();
    file.write_all(text.as_bytes()).map_err(fail)?;
    file.write_all(b"\n").map_err(fail)?;
    file.sync_all().map_err(fail)?;
    Ok(key)
}
