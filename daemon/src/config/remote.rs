//! `[[remote]]` entries: where off-site copies of the archives go, an
//! S3-compatible bucket (`kind = "s3"`) or a mounted directory
//! (`kind = "fs"`). Everything a remote's name, prefix or endpoint could do
//! to escape where it belongs is refused here, at load, so the rest of the
//! daemon builds object keys from values it can trust. The secret access
//! key is read from a file with the key file's checks and held only as a
//! `Secret`, whose `Debug` shows nothing of it.

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;
use zeroize::Zeroizing;

/// Longest remote name; it appears in records, logs and commands.
pub const MAX_REMOTE_NAME: usize = 32;
/// Longest prefix inside a bucket or directory.
pub const MAX_PREFIX: usize = 256;
/// The most remotes one daemon copies to.
pub const MAX_REMOTES: usize = 8;

/// One entry as the file spells it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteEntry {
    name: String,
    kind: String,
    endpoint: Option<String>,
    region: Option<String>,
    bucket: Option<String>,
    prefix: Option<String>,
    path_style: Option<bool>,
    access_key_id: Option<String>,
    secret_access_key_file: Option<PathBuf>,
    retention_days: Option<u32>,
    keep_last_successful: Option<u32>,
    path: Option<PathBuf>,
}

/// A secret read from a file; never shown.
#[derive(Clone)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

/// Where a remote keeps its objects.
#[derive(Clone, Debug)]
pub enum RemoteKind {
    S3 {
        endpoint: String,
        region: String,
        bucket: String,
        path_style: bool,
        access_key_id: String,
        secret_access_key: Secret,
        /// Where the secret was read from, for messages.
        secret_file: PathBuf,
    },
    Fs {
        path: PathBuf,
    },
}

/// A validated remote.
#[derive(Clone, Debug)]
pub struct RemoteConfig {
    pub name: String,
    pub kind: RemoteKind,
    /// Empty, or relative segments ending in `/`.
    pub prefix: String,
    /// Copies older than this many days may go (`None`: kept by age).
    pub retention_days: Option<u32>,
    /// The newest this many successful backups are kept whatever their age.
    pub keep_last_successful: Option<u32>,
}

impl RemoteConfig {
    /// What the configuration's `Debug` shows: no secret, no key id.
    pub fn summary(&self) -> String {
        match &self.kind {
            RemoteKind::S3 {
                endpoint, bucket, ..
            } => format!(
                "{} (s3 {endpoint} bucket {bucket} prefix {:?})",
                self.name, self.prefix
            ),
            RemoteKind::Fs { path } => {
                format!(
                    "{} (fs {} prefix {:?})",
                    self.name,
                    path.display(),
                    self.prefix
                )
            }
        }
    }
}

/// Checks a remote's name: 1 to 32 of `a-z`, `0-9` and `-`.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_REMOTE_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "a remote's name is 1 to {MAX_REMOTE_NAME} of a-z, 0-9 and -, not {}",
            berkut_proto::wire::input::quote(name)
        ))
    }
}

/// A prefix is relative segments of `A-Za-z0-9._-`, none of them `.` or
/// `..`, so no object key built on it leaves it. Returned ending in `/`.
pub fn check_prefix(prefix: &str) -> Result<String, String> {
    let trimmed = prefix.strip_suffix('/').unwrap_or(prefix);
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    let bad = prefix.len() > MAX_PREFIX
        || trimmed.split('/').any(|seg| {
            seg.is_empty()
                || seg == "."
                || seg == ".."
                || !seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        });
    if bad {
        return Err(format!(
            "prefix must be relative path segments of A-Z, a-z, 0-9, '.', '_' and '-' (no '..', \
             no leading or doubled '/'), at most {MAX_PREFIX} bytes; not {}",
            berkut_proto::wire::input::quote(prefix)
        ));
    }
    Ok(format!("{trimmed}/"))
}

fn check_bucket(bucket: &str) -> Result<(), String> {
    let ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !bucket.starts_with(['-', '.'])
        && !bucket.contains("..");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "bucket must be 3 to 63 of a-z, 0-9, '-' and '.'; not {}",
            berkut_proto::wire::input::quote(bucket)
        ))
    }
}

fn check_endpoint(endpoint: &str) -> Result<(), String> {
    let rest = endpoint
        .strip_prefix("https://")
        .or_else(|| endpoint.strip_prefix("http://"));
    let ok = endpoint.len() <= 512
        && rest.is_some_and(|r| {
            !r.is_empty() && !r.contains('@') && r.bytes().all(|b| b.is_ascii_graphic())
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "endpoint must be an http:// or https:// URL without user or password; not {}",
            berkut_proto::wire::input::quote(endpoint)
        ))
    }
}

/// Validates the entries; an error names the remote (never a secret) and
/// the caller says which file it came from.
pub fn resolve(entries: &[RemoteEntry]) -> Result<Vec<RemoteConfig>, String> {
    if entries.len() > MAX_REMOTES {
        return Err(format!("at most {MAX_REMOTES} remotes"));
    }
    let mut out: Vec<RemoteConfig> = Vec::new();
    for entry in entries {
        check_name(&entry.name)?;
        if out.iter().any(|r| r.name == entry.name) {
            return Err(format!("two remotes are named {:?}", entry.name));
        }
        out.push(resolve_one(entry).map_err(|m| format!("remote {:?}: {m}", entry.name))?);
    }
    Ok(out)
}

fn resolve_one(e: &RemoteEntry) -> Result<RemoteConfig, String> {
    let prefix = check_prefix(e.prefix.as_deref().unwrap_or(""))?;
    if e.retention_days == Some(0) || e.retention_days.is_some_and(|d| d > 36_500) {
        return Err("retention_days must be 1 to 36500".into());
    }
    if e.keep_last_successful.is_some_and(|n| n > 10_000) {
        return Err("keep_last_successful must be at most 10000".into());
    }
    let kind = match e.kind.as_str() {
        "s3" => {
            if e.path.is_some() {
                return Err("path goes with kind = \"fs\" only".into());
            }
            let need = |v: &Option<String>, what: &str| {
                v.clone()
                    .ok_or_else(|| format!("kind = \"s3\" needs {what}"))
            };
            let endpoint = need(&e.endpoint, "endpoint")?;
            check_endpoint(&endpoint)?;
            let bucket = need(&e.bucket, "bucket")?;
            check_bucket(&bucket)?;
            let region = e.region.clone().unwrap_or_else(|| "us-east-1".into());
            if region.is_empty()
                || region.len() > 64
                || !region
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err("region must be 1 to 64 of A-Z, a-z, 0-9, '-' and '_'".into());
            }
            let access_key_id = need(&e.access_key_id, "access_key_id")?;
            if access_key_id.is_empty()
                || access_key_id.len() > 128
                || !access_key_id.bytes().all(|b| b.is_ascii_graphic())
            {
                return Err("access_key_id must be 1 to 128 printable characters".into());
            }
            let secret_file = e
                .secret_access_key_file
                .clone()
                .ok_or("kind = \"s3\" needs secret_access_key_file")?;
            let text = super::key::read_private(&secret_file, "secret access key file", "secret")
                .map_err(|e| e.to_string())?;
            let secret = text.trim();
            if secret.is_empty()
                || secret.len() > 256
                || !secret.bytes().all(|b| b.is_ascii_graphic())
            {
                return Err(format!(
                    "the secret access key file {} must hold one line of 1 to 256 printable \
                     characters",
                    secret_file.display()
                ));
            }
            RemoteKind::S3 {
                endpoint: endpoint.trim_end_matches('/').to_owned(),
                region,
                bucket,
                path_style: e.path_style.unwrap_or(true),
                access_key_id,
                secret_access_key: Secret(Zeroizing::new(secret.to_owned())),
                secret_file,
            }
        }
        "fs" => {
            if e.endpoint.is_some()
                || e.bucket.is_some()
                || e.access_key_id.is_some()
                || e.secret_access_key_file.is_some()
                || e.region.is_some()
                || e.path_style.is_some()
            {
                return Err(
                    "endpoint, region, bucket, path_style and credentials go with kind = \"s3\" only"
                        .into(),
                );
            }
            let path = e.path.clone().ok_or("kind = \"fs\" needs path")?;
            if !path.is_absolute() || path.as_os_str().len() > 4096 {
                return Err("path must be an absolute path".into());
            }
            RemoteKind::Fs { path }
        }
        other => {
            return Err(format!(
                "kind must be \"s3\" or \"fs\", not {}",
                berkut_proto::wire::input::quote(other)
            ))
        }
    };
    Ok(RemoteConfig {
        name: e.name.clone(),
        kind,
        prefix,
        retention_days: e.retention_days,
        keep_last_successful: e.keep_last_successful,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_prefixes_that_could_escape_are_refused() {
        for bad in ["", "Off", "a/b", "..", "a b", &"x".repeat(33)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_name("offsite-2").is_ok());
        for bad in ["../x", "/abs", "a//b", "a/./b", "a/../b", "a\\b", "a b/"] {
            assert!(check_prefix(bad).is_err(), "{bad:?}");
        }
        assert_eq!(check_prefix("prod").unwrap(), "prod/");
        assert_eq!(check_prefix("prod/db-1/").unwrap(), "prod/db-1/");
        assert_eq!(check_prefix("").unwrap(), "");
    }

    #[test]
    fn endpoints_with_credentials_or_odd_schemes_are_refused() {
        assert!(check_endpoint("http://127.0.0.1:9000").is_ok());
        for bad in ["ftp://x", "http://user:pw@host", "http://", "http://a b"] {
            assert!(check_endpoint(bad).is_err(), "{bad:?}");
        }
    }

    fn load(toml: &str) -> Result<crate::config::Config, crate::config::ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("berkutd.toml");
        let toml = toml.replace("DIR", &dir.path().display().to_string());
        std::fs::write(&file, &toml).unwrap();
        let env = [
            (
                "BERKUT_BACKUP_ENCRYPTION_KEY",
                "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
            ),
            (
                "BERKUT_DATABASE_URL",
                "postgresql://app@/app?host=/run/postgresql",
            ),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let secret = dir.path().join("s3.secret");
        std::fs::write(&secret, "hunter2-the-secret\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = if toml.contains("# open") {
            0o644
        } else {
            0o600
        };
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(mode)).unwrap();
        crate::config::Config::load(Some(&file), &env, false)
    }

    const S3: &str =
        "[[remote]]\nname = \"offsite\"\nkind = \"s3\"\nendpoint = \"http://127.0.0.1:9\"\n\
        bucket = \"berkut\"\nprefix = \"prod/\"\naccess_key_id = \"AKIA\"\n\
        secret_access_key_file = \"DIR/s3.secret\"\n";

    #[test]
    fn a_remote_is_loaded_and_its_secret_never_shown() {
        let config = load(S3).unwrap();
        assert_eq!(config.remotes.len(), 1);
        assert_eq!(config.remotes[0].prefix, "prod/");
        let shown = format!("{config:?}");
        assert!(shown.contains("offsite"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!format!("{:?}", config.remotes[0]).contains("hunter2"));
    }

    #[test]
    fn a_secret_file_others_can_read_is_refused() {
        let err = load(&format!("{S3}# open\n")).unwrap_err().to_string();
        assert!(err.contains("offsite"), "{err}");
        assert!(err.contains("can be read by other users"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn bad_remotes_are_refused_naming_them() {
        let twice = format!("{S3}{S3}");
        assert!(load(&twice)
            .unwrap_err()
            .to_string()
            .contains("two remotes"));
        let escaping = S3.replace("prod/", "../other");
        let err = load(&escaping).unwrap_err().to_string();
        assert!(err.contains("offsite") && err.contains("prefix"), "{err}");
        let fs_with_creds =
            "[[remote]]\nname = \"disk\"\nkind = \"fs\"\npath = \"/mnt/x\"\nbucket = \"b\"\n";
        assert!(load(fs_with_creds)
            .unwrap_err()
            .to_string()
            .contains("disk"));
        let unknown = S3.replace("kind = \"s3\"", "kind = \"ftp\"");
        assert!(load(&unknown).is_err());
        let typo = format!("{S3}buckett = \"x\"\n");
        assert!(load(&typo).is_err());
    }
}
