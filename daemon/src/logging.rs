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
//!
//! Log lines carry what clients sent (a client's name, a label, a user id,
//! a reason); the text format escapes control characters in every field and
//! message (`EscapingFields`), so no value can end a line and forge the
//! next one, or send escape sequences to a terminal. Journald keeps fields
//! apart by itself.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::os::fd::AsFd;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FormatFields, MakeWriter};

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
    let stderr = journald
        .is_none()
        .then(|| text_layer(std::io::stderr, std::io::stderr().is_terminal()));
    tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::filter::filter_fn(|meta| {
            !is_foreign(meta.target())
        }))
        .with(journald)
        .with(stderr)
        .init();
    (LogControl { handle, rust_log }, sink)
}

/// The text log: one line per event, every field escaped.
pub fn text_layer<S, W>(writer: W, ansi: bool) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .fmt_fields(EscapingFields)
        .with_writer(writer)
}

/// Formats fields like the default text format (`message key=value ...`,
/// strings recorded as such in quotes) with control characters escaped in
/// every name and value, whether it was recorded with `?`, `%` or as is.
pub struct EscapingFields;

impl<'w> FormatFields<'w> for EscapingFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'w>,
        fields: R,
    ) -> std::fmt::Result {
        let mut visitor = EscapingVisitor {
            line: String::new(),
        };
        fields.record(&mut visitor);
        writer.write_str(&visitor.line)
    }
}

struct EscapingVisitor {
    line: String,
}

impl EscapingVisitor {
    fn push(&mut self, field: &Field, text: &str) {
        if field.name().starts_with("log.") {
            // tracing-log's metadata fields, which the default format hides.
            return;
        }
        if !self.line.is_empty() {
            self.line.push(' ');
        }
        if field.name() != "message" {
            escape_into(&mut self.line, field.name());
            self.line.push('=');
        }
        escape_into(&mut self.line, text);
    }
}

impl Visit for EscapingVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.push(field, value);
        } else {
            self.push(field, &format!("{value:?}"));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.push(field, &format!("{value:?}"));
    }
}

/// Appends `text` with every control character written as an escape
/// (`\n`, `\r`, `\t`, `\u{1b}`), so it stays on one line and inert.
pub fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
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

/// Whether a log line comes from a library that speaks to the network on
/// berkutd's behalf (the storage library, the HTTP client). Their lines
/// can quote URLs (a webhook's path may be its secret), request headers
/// and a server's raw reply, so they never reach berkutd's log, whatever
/// the level: berkutd says what went wrong in its own words.
pub fn is_foreign(target: &str) -> bool {
    // Asked for every event: no allocation.
    ["opendal", "reqwest", "hyper", "h2", "rustls"]
        .iter()
        .any(|c| {
            target.strip_prefix(c).is_some_and(|rest| {
                rest.is_empty() || rest.starts_with("::") || rest.starts_with('_')
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn network_libraries_are_foreign_and_berkut_is_not() {
        for target in [
            "opendal::layers::retry",
            "opendal_service_s3::backend",
            "reqwest::connect",
            "hyper",
            "hyper_util::client",
            "h2::codec",
            "rustls::client",
        ] {
            assert!(is_foreign(target), "{target}");
        }
        for target in ["berkut_daemon::remote", "berkut::audit", "hyperion", "h2o"] {
            assert!(!is_foreign(target), "{target}");
        }
    }

    #[test]
    fn no_field_or_message_can_start_a_line_or_send_an_escape() {
        let buffer = Buffer::default();
        let writer = {
            let b = buffer.clone();
            move || b.clone()
        };
        let subscriber = tracing_subscriber::registry().with(text_layer(writer, false));
        let forged = "x\n2026-01-01T00:00:00Z  INFO berkutd: forged\r\u{1b}[2J";
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("conn", peer = %forged);
            let _entered = span.enter();
            tracing::info!(client = %forged, label = forged, debug = ?forged, "hello {forged}");
            let err: &(dyn std::error::Error + 'static) = &std::io::Error::other(forged);
            tracing::warn!(error = err, "failed");
        });
        let out = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        assert!(!out.contains('\r') && !out.contains('\u{1b}'), "{out:?}");
        assert!(
            lines[0].contains("hello x\\n2026-01-01T00:00:00Z  INFO berkutd: forged\\r\\u{1b}[2J"),
            "{out}"
        );
        assert!(lines[0].contains("client=x\\n2026"), "{out}");
        // Values recorded as strings keep the default format's quotes.
        assert!(lines[0].contains("label=\"x\\n2026"), "{out}");
        assert!(lines[1].contains("error=x\\n2026"), "{out}");
    }

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
