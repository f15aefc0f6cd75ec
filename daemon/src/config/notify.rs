//! `[[notify]]` entries: where events go (`kind = "webhook"` with a `url`
//! and a `secret_file`, or `kind = "exec"` with a `command`), which events
//! (`events`, all by default), and how long one delivery may take
//! (`timeout_seconds`) and how often a webhook is retried (`retries`).
//! Checked whole at load: a bad entry fails the start or refuses a reload.
//! The secret is read here, with the key file's checks, and kept only in
//! memory; what `Debug` and the reload's diff show of a sink leaves out
//! the secret and the URL's path and query (a chat webhook's URL is often a
//! credential itself), keeping a short digest of the URL to notice a change.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use sha2::Digest;
use zeroize::Zeroizing;

use crate::events::EventType;

/// At most this many sinks.
pub const MAX_SINKS: usize = 16;
const MAX_URL_LEN: usize = 2048;
const MAX_SECRET_LEN: usize = 4096;
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 10;
pub const MAX_TIMEOUT_SECONDS: u64 = 300;
pub const DEFAULT_RETRIES: u32 = 3;
pub const MAX_RETRIES: u32 = 10;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyEntry {
    kind: String,
    url: Option<String>,
    secret_file: Option<PathBuf>,
    events: Option<Vec<String>>,
    command: Option<PathBuf>,
    timeout_seconds: Option<u64>,
    retries: Option<u32>,
}

/// Where a sink delivers.
#[derive(Clone)]
pub enum SinkTarget {
    Webhook {
        url: reqwest::Url,
        /// The HMAC key of `X-Berkut-Signature`.
        secret: Arc<Zeroizing<Vec<u8>>>,
        secret_file: PathBuf,
    },
    Exec {
        command: PathBuf,
    },
}

/// One configured sink.
#[derive(Clone)]
pub struct Sink {
    pub target: SinkTarget,
    /// The events it takes; `None`: all.
    pub events: Option<Vec<EventType>>,
    pub timeout: Duration,
    /// Further attempts after a webhook's first fails (hooks run once).
    pub retries: u32,
}

impl Sink {
    pub fn wants(&self, kind: EventType) -> bool {
        self.events.as_ref().is_none_or(|list| list.contains(&kind))
    }

    /// How the sink is named in the log and by `notify_test`: its kind and
    /// the URL's host, or the command's file name. No secret, no path.
    pub fn name(&self) -> String {
        match &self.target {
            SinkTarget::Webhook { url, .. } => format!(
                "webhook {}://{}{}",
                url.scheme(),
                url.host_str().unwrap_or(""),
                url.port().map(|p| format!(":{p}")).unwrap_or_default()
            ),
            SinkTarget::Exec { command } => format!(
                "exec {}",
                command
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            ),
        }
    }
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = f.debug_struct("Sink");
        out.field("name", &self.name());
        match &self.target {
            SinkTarget::Webhook {
                url, secret_file, ..
            } => {
                let digest = sha2::Sha256::digest(url.as_str().as_bytes());
                out.field("url_digest", &hex::encode(&digest[..4]))
                    .field("secret_file", secret_file);
            }
            SinkTarget::Exec { command } => {
                out.field("command", command);
            }
        }
        out.field(
            "events",
            &self
                .events
                .as_ref()
                .map(|l| l.iter().map(|e| e.as_str()).collect::<Vec<_>>()),
        )
        .field("timeout_seconds", &self.timeout.as_secs())
        .field("retries", &self.retries)
        .finish()
    }
}

/// Checks one entry and reads its secret; the message of an error is for
/// the caller to say where the entry came from.
pub fn resolve(entry: &NotifyEntry) -> Result<Sink, String> {
    let events = match &entry.events {
        None => None,
        Some(names) => Some(
            names
                .iter()
                .map(|n| {
                    EventType::parse(n).ok_or_else(|| {
                        format!(
                            "unknown event {:?} (expected one of {})",
                            n.chars().take(64).collect::<String>(),
                            EventType::ALL.map(|t| t.as_str()).join(", ")
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let timeout = entry.timeout_seconds.unwrap_or(DEFAULT_TIMEOUT_SECONDS);
    if !(1..=MAX_TIMEOUT_SECONDS).contains(&timeout) {
        return Err(format!(
            "timeout_seconds must be from 1 to {MAX_TIMEOUT_SECONDS}"
        ));
    }
    let retries = entry.retries.unwrap_or(DEFAULT_RETRIES);
    if retries > MAX_RETRIES {
        return Err(format!("retries must be from 0 to {MAX_RETRIES}"));
    }
    let target = match entry.kind.as_str() {
        "webhook" => {
            if entry.command.is_some() {
                return Err("a webhook takes a url, not a command".into());
            }
            let url = entry.url.as_deref().ok_or("a webhook needs a url")?;
            if url.len() > MAX_URL_LEN {
                return Err(format!("the url is longer than {MAX_URL_LEN} bytes"));
            }
            let url = reqwest::Url::parse(url).map_err(|e| format!("the url is not valid: {e}"))?;
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                return Err("the url must be http:// or https:// with a host".into());
            }
            let secret_file = entry
                .secret_file
                .clone()
                .ok_or("a webhook needs a secret_file (the key of X-Berkut-Signature)")?;
            let text = super::key::read_private(&secret_file, "secret file", "secret")
                .map_err(|e| e.to_string())?;
            let secret = text.trim_end_matches(['\n', '\r']).as_bytes().to_vec();
            if secret.is_empty() || secret.len() > MAX_SECRET_LEN {
                return Err(format!(
                    "the secret file {} must hold 1 to {MAX_SECRET_LEN} bytes",
                    secret_file.display()
                ));
            }
            SinkTarget::Webhook {
                url,
                secret: Arc::new(Zeroizing::new(secret)),
                secret_file,
            }
        }
        "exec" => {
            if entry.url.is_some() || entry.secret_file.is_some() {
                return Err("an exec sink takes a command, not a url or secret_file".into());
            }
            let command = entry
                .command
                .clone()
                .ok_or("an exec sink needs a command")?;
            if !command.is_absolute() {
                return Err("the command must be an absolute path".into());
            }
            use std::os::unix::fs::PermissionsExt;
            match std::fs::metadata(&command) {
                Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => {}
                Ok(_) => return Err(format!("{} is not an executable file", command.display())),
                Err(e) => return Err(format!("cannot use {}: {e}", command.display())),
            }
            SinkTarget::Exec { command }
        }
        other => {
            return Err(format!(
                "unknown kind {:?} (expected webhook or exec)",
                other.chars().take(64).collect::<String>()
            ))
        }
    };
    Ok(Sink {
        target,
        events,
        timeout: Duration::from_secs(timeout),
        retries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn entry(toml_text: &str) -> NotifyEntry {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn bad_entries_are_refused_in_words() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("s");
        std::fs::write(&secret, "topsecretvalue\n").unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        let ok = format!(
            "kind = \"webhook\"\nurl = \"http://127.0.0.1:9/x?token=abc\"\nsecret_file = \"{}\"\n",
            secret.display()
        );
        let sink = resolve(&entry(&ok)).unwrap();
        assert!(sink.wants(EventType::Test));
        let shown = format!("{sink:?}");
        assert!(
            !shown.contains("topsecret") && !shown.contains("token"),
            "{shown}"
        );
        match &sink.target {
            SinkTarget::Webhook { secret, .. } => assert_eq!(&***secret, b"topsecretvalue"),
            _ => panic!(),
        }
        let cases = [
            (
                format!("{ok}events = [\"backup_faild\"]\n"),
                "unknown event",
            ),
            (format!("{ok}timeout_seconds = 0\n"), "timeout_seconds"),
            (ok.replace("http://", "ftp://"), "http://"),
            (ok.replace("webhook", "pager"), "unknown kind"),
            (
                "kind = \"webhook\"\nurl = \"http://h/\"\n".to_owned(),
                "secret_file",
            ),
            (
                "kind = \"exec\"\ncommand = \"hook.sh\"\n".to_owned(),
                "absolute",
            ),
            (
                "kind = \"exec\"\ncommand = \"/nonexistent/hook\"\n".to_owned(),
                "cannot use",
            ),
        ];
        for (text, words) in cases {
            let e = resolve(&entry(&text)).err().unwrap();
            assert!(e.contains(words), "{text}: {e}");
            assert!(!e.contains("topsecret"), "{e}");
        }
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = resolve(&entry(&ok)).err().unwrap();
        assert!(e.contains("chmod 600") && e.contains("secret file"), "{e}");
        let filtered = format!("{ok}events = [\"rpo_breached\"]\n");
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        let sink = resolve(&entry(&filtered)).unwrap();
        assert!(sink.wants(EventType::RpoBreached) && !sink.wants(EventType::BackupFailed));
    }
}
