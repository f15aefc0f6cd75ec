//! Where the log goes and how much of it. Under systemd, stderr is already
//! connected to the journal (`JOURNAL_STREAM` names it); the daemon then
//! sends structured events to journald itself, with its fields as journal
//! fields (`BERKUT_BACKUP=...`) and levels as priorities (info is 6,
//! debug 7), and writes nothing
//! to stderr, so no line is logged twice. Anywhere else it writes text to
//! stderr.
//!
//! The level is the configuration's `log_level` unless `RUST_LOG` is set,
//! which wins. A reload can change it (`LogControl::set_level`).

use std::io::IsTerminal;
use std::os::fd::AsFd;

use tracing_journald::{Priority, PriorityMappings};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

/// Changes the log filter of a running daemon.
pub struct LogControl {
    handle: reload::Handle<EnvFilter, Registry>,
    /// `RUST_LOG` as it was at start; it overrides the configuration.
    rust_log: Option<String>,
}

/// Where the events go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sink {
    Journald,
    Stderr,
}

impl LogControl {
    /// Puts the configured level in force, unless `RUST_LOG` overrides it.
    /// Returns whether the filter changed.
    pub fn set_level(&self, level: &str) -> Result<bool, String> {
        if self.rust_log.is_some() {
            return Ok(false);
        }
        let filter = EnvFilter::builder()
            .parse(level)
            .map_err(|e| format!("log_level {level:?}: {e}"))?;
        self.handle.reload(filter).map_err(|e| e.to_string())?;
        Ok(true)
    }
}

/// Sets up the process's logging. Call once, early.
pub fn init(level: &str) -> (LogControl, Sink) {
    let rust_log = std::env::var("RUST_LOG").ok().filter(|v| !v.is_empty());
    let filter = rust_log
        .as_deref()
        .and_then(|v| EnvFilter::builder().parse(v).ok())
        .unwrap_or_else(|| EnvFilter::builder().parse_lossy(level));
    let (filter, handle) = reload::Layer::new(filter);
    let journald = if stderr_is_journal() {
        tracing_journald::layer().ok().map(|layer| {
            // tracing-journald maps INFO to notice by default; our info
            // lines (every request) are informational, which is 6.
            let priorities = PriorityMappings {
                info: Priority::Informational,
                debug: Priority::Debug,
                ..PriorityMappings::new()
            };
            layer
                .with_syslog_identifier("berkutd".to_owned())
                .with_field_prefix(Some("BERKUT".to_owned()))
                .with_priority_mappings(priorities)
        })
    } else {
        None
    };
    let sink = if journald.is_some() {
        Sink::Journald
    } else {
        Sink::Stderr
    };
    let stderr = journald.is_none().then(|| {
        tracing_subscriber::fmt::layer()
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(journald)
        .with(stderr)
        .init();
    (LogControl { handle, rust_log }, sink)
}

/// Whether stderr is the journal's stream: `JOURNAL_STREAM` holds the
/// device and inode of the stream systemd connected, and stderr is still
/// that file (not redirected by a wrapper script).
pub fn stderr_is_journal() -> bool {
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(stat) = nix::sys::stat::fstat(std::io::stderr().as_fd()) else {
        return false;
    };
    is_stream(&value.to_string_lossy(), stat.st_dev, stat.st_ino)
}

/// Whether a `JOURNAL_STREAM` value (`<device>:<inode>`, in decimal) names
/// the file with this device and inode.
pub fn is_stream(value: &str, dev: u64, ino: u64) -> bool {
    let Some((d, i)) = value.split_once(':') else {
        return false;
    };
    d.parse() == Ok(dev) && i.parse() == Ok(ino)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn the_journal_stream_is_recognised_by_device_and_inode() {
        let file = tempfile::tempfile().unwrap();
        let meta = file.metadata().unwrap();
        let value = format!("{}:{}", meta.dev(), meta.ino());
        assert!(is_stream(&value, meta.dev(), meta.ino()));
        assert!(!is_stream(&value, meta.dev(), meta.ino() + 1));
        assert!(!is_stream(&value, meta.dev() + 1, meta.ino()));
        assert!(!is_stream("", meta.dev(), meta.ino()));
        assert!(!is_stream("garbage", meta.dev(), meta.ino()));
        assert!(!is_stream(
            &format!("{}:{}x", meta.dev(), meta.ino()),
            meta.dev(),
            meta.ino()
        ));
    }
}
