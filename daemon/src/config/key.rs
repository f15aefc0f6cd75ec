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

/// Decides where the primary key comes from. A key given as text (the
/// environment or the file's `encryption_key`) and a key file at once are
/// refused: one of them silently winning could seal new backups with a key
/// the operator did not mean.
pub fn primary(
    text: Option<String>,
    file: Option<&Path>,
    dev_key: Option<&Path>,
) -> Result<MasterKey, ConfigError> {
    match (text, file) {
        (Some(_), Some(path)) => Err(ConfigError::Key(format!(
            "both an encryption key (BERKUT_BACKUP_ENCRYPTION_KEY, BACKUP_ENCRYPTION_KEY or \
             encryption_key) and a key file ({}, from BERKUT_BACKUP_ENCRYPTION_KEY_FILE or \
             encryption_key_file) are configured; keep exactly one of them",
            path.display()
        ))),
        (Some(text), None) => parse(&Zeroizing::new(text)),
        (None, Some(path)) => read_key_file(path),
        (None, None) => match dev_key {
            Some(path) => load_dev_key(path),
            None => Err(ConfigError::MissingKey),
        },
    }
}

/// Reads a key file, refusing one that other users can read (a key that
/// has leaked is no key) or that belongs to another user than the daemon's
/// or root (its owner could swap the key). The checks and the read use one
/// open file, so the file checked is the file read.
pub fn read_key_file(path: &Path) -> Result<MasterKey, ConfigError> {
    parse(&read_private(path, "key file", "key")?)
}

/// Reads a file holding a secret (`what`: "key file", "secret file"),
/// with the key file's checks: owned by the daemon's user or root, and
/// readable by its owner only. The secret is never in an error.
pub fn read_private(
    path: &Path,
    what: &str,
    thing: &str,
) -> Result<Zeroizing<String>, ConfigError> {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    let unreadable = |e: std::io::Error| {
        ConfigError::Key(format!("cannot read the {what} {}: {e}", path.display()))
    };
    let mut file = std::fs::File::open(path).map_err(unreadable)?;
    let meta = file.metadata().map_err(unreadable)?;
    let own_uid = nix::unistd::geteuid().as_raw();
    if meta.uid() != own_uid && meta.uid() != 0 {
        let owner = user_name(meta.uid());
        return Err(ConfigError::Key(format!(
            "the {what} {} belongs to {owner}, not to berkutd's user ({}) or root; \
             that user could replace the {thing}: run `chown {} {}` on it",
            path.display(),
            user_name(own_uid),
            user_name(own_uid),
            path.display()
        )));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(ConfigError::Key(format!(
            "the {what} {} can be read by other users (mode {:o}); run `chmod 600` on it",
            path.display(),
            meta.permissions().mode() & 0o777
        )));
    }
    // A secret is small; a huge file is a mistake, not a secret.
    let mut text = Zeroizing::new(String::new());
    Read::by_ref(&mut file)
        .take(64 * 1024)
        .read_to_string(&mut text)
        .map_err(unreadable)?;
    Ok(text)
}

/// A user's name for a message, or the uid when it has none.
fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map_or_else(|| format!("uid {uid}"), |u| u.name)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn key_file(dir: &Path, name: &str, mode: u32) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, "ab".repeat(32)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn a_key_file_of_another_user_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = key_file(dir.path(), "k", 0o600);
        assert!(read_key_file(&path).is_ok());
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped the owner check: giving a file away needs root");
            return;
        }
        // nobody
        nix::unistd::chown(&path, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
        let err = read_key_file(&path).unwrap_err().to_string();
        assert!(err.contains("belongs to") && err.contains("chown"), "{err}");
        assert!(!err.contains(&"ab".repeat(32)), "{err}");
    }

    #[test]
    fn a_key_file_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = key_file(dir.path(), "k", 0o640);
        let err = read_key_file(&path).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }

    #[test]
    fn a_key_and_a_key_file_together_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = key_file(dir.path(), "k", 0o600);
        let text = "cd".repeat(32);
        let err = primary(Some(text.clone()), Some(&path), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("keep exactly one"), "{err}");
        assert!(!err.contains(&text), "{err}");
        assert!(primary(Some(text), None, None).is_ok());
        assert!(primary(None, Some(&path), None).is_ok());
        assert!(matches!(
            primary(None, None, None),
            Err(ConfigError::MissingKey)
        ));
    }
}
