//! Redaction of archived configuration files (R16: configuration
//! snapshots never hold secrets). A file that is a secret as a whole is
//! excluded; a file in a format berkutd reads (`KEY=VALUE`, INI and systemd
//! units, TOML, YAML, JSON) is parsed by a parser that says where each value
//! is, and each secret value (the value of a secret-looking key, the
//! password of a URL) is replaced by `MARKER` in the original bytes, the
//! rest kept byte for byte; a file that cannot be parsed in its format, or
//! has none, is archived only if no line looks like it holds a secret.
//! What the parsers produced is scanned once more, so that a secret they
//! could not reach (a comment) excludes the file rather than leaking.
//! Parsing is bounded: files past `PARSE_MAX` are not parsed, JSON nested
//! past `MAX_DEPTH` and YAML whose aliases would expand past a bound are
//! excluded with the reason. No reason ever quotes the file.

mod ini;
mod json;
mod keyvalue;
mod secrets;
mod toml;
mod yaml;

use std::ops::Range;
use std::path::Path;

pub use secrets::{normalize_key, Words};

/// What a secret value is replaced by.
pub const MARKER: &str = "BERKUT-REDACTED";

/// Files larger than this are not parsed (they are scanned instead).
pub const PARSE_MAX: usize = 8 << 20;

/// How deep JSON and YAML may nest.
pub const MAX_DEPTH: usize = 128;

/// At most this many keys are named per file in the manifest.
const MAX_KEYS: usize = 100;

/// What becomes of one file.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Archived byte for byte.
    AsIs,
    /// Archived with the values of `keys` replaced.
    Redacted { content: Vec<u8>, keys: Vec<String> },
    /// Not archived, for this reason (never quoting the file).
    Excluded(String),
}

/// One value to replace: where it is, by what, and the key it belongs to.
#[derive(Debug)]
struct Hit {
    range: Range<usize>,
    replacement: String,
    key: String,
}

impl Hit {
    fn new(range: Range<usize>, replacement: impl Into<String>, key: impl Into<String>) -> Hit {
        Hit {
            range,
            replacement: replacement.into(),
            key: key.into(),
        }
    }
}

/// Why a parser gave up.
#[derive(Debug)]
enum Failure {
    /// The text is not in the format (the file may still be archived).
    NotParsed(String),
    /// The text is hostile to parsing (a YAML bomb, deep nesting): never
    /// archived.
    Refused(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    KeyValue,
    Ini,
    Toml,
    Yaml,
    Json,
    Other,
}

fn format_of(path: &Path) -> Format {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    if name == ".env" || name.starts_with(".env.") || ext == "env" || name == "environment" {
        return Format::KeyValue;
    }
    match ext {
        "yaml" | "yml" => Format::Yaml,
        "toml" => Format::Toml,
        "json" => Format::Json,
        "ini" | "cfg" | "conf" | "cnf" | "properties" | "service" | "socket" | "timer"
        | "mount" | "path" => Format::Ini,
        _ => Format::Other,
    }
}

/// Decides what to archive of the file at `path` (its name picks the
/// format) holding `content`. With `redact` off a file is archived as is
/// unless it is a secret as a whole.
pub fn check(path: &Path, content: &[u8], redact: bool, words: &Words) -> Outcome {
    if let Some(reason) = secrets::whole_secret(path, content) {
        return Outcome::Excluded(reason);
    }
    if !redact {
        return Outcome::AsIs;
    }
    let format = format_of(path);
    let parsed = match std::str::from_utf8(content) {
        _ if format == Format::Other => Err(Failure::NotParsed(
            "not in a format berkutd can redact".into(),
        )),
        _ if content.len() > PARSE_MAX => Err(Failure::NotParsed(format!(
            "larger than {} MiB, too large to parse",
            PARSE_MAX >> 20
        ))),
        Err(_) => Err(Failure::NotParsed("not UTF-8 text".into())),
        Ok(text) => match format {
            Format::KeyValue => keyvalue::hits(text, words),
            Format::Ini => ini::hits(text, words),
            Format::Toml => toml::hits(text, words),
            Format::Yaml => yaml::hits(text, words),
            Format::Json => json::hits(text, words),
            Format::Other => unreachable!("handled above"),
        },
    };
    let (content, keys) = match parsed {
        Err(Failure::Refused(reason)) => return Outcome::Excluded(reason),
        Err(Failure::NotParsed(why)) => {
            return match secrets::first_secret_line(content, words) {
                Some(line) => Outcome::Excluded(format!(
                    "{why}, and line {line} looks like it holds a secret"
                )),
                None => Outcome::AsIs,
            };
        }
        Ok(hits) if hits.is_empty() => (content.to_vec(), Vec::new()),
        Ok(hits) => splice(content, hits),
    };
    // What the parser did not reach (a comment, say) must not leak either.
    if let Some(line) = secrets::first_secret_line(&content, words) {
        return Outcome::Excluded(format!(
            "line {line} looks like it holds a secret outside any value the parser could \
             replace (a comment?)"
        ));
    }
    if keys.is_empty() {
        Outcome::AsIs
    } else {
        Outcome::Redacted { content, keys }
    }
}

/// The content with every hit replaced (an overlapping later hit is
/// dropped: the earlier, outer one already covers it) and the keys named,
/// once each.
fn splice(content: &[u8], mut hits: Vec<Hit>) -> (Vec<u8>, Vec<String>) {
    hits.sort_by_key(|h| (h.range.start, std::cmp::Reverse(h.range.end)));
    let mut out = Vec::with_capacity(content.len());
    let mut keys: Vec<String> = Vec::new();
    let mut at = 0;
    for hit in hits {
        if hit.range.start < at || hit.range.end > content.len() {
            continue;
        }
        out.extend_from_slice(&content[at..hit.range.start]);
        out.extend_from_slice(hit.replacement.as_bytes());
        at = hit.range.end;
        let key: String = hit.key.chars().take(200).collect();
        if keys.len() < MAX_KEYS && !keys.contains(&key) {
            keys.push(key);
        }
    }
    out.extend_from_slice(&content[at..]);
    (out, keys)
}

/// A dotted key path, its parts cut to a sane length.
fn join(path: &str, key: &str) -> String {
    let key: String = key.chars().take(100).collect();
    if path.is_empty() {
        key
    } else {
        format!("{path}.{key}")
    }
}

/// Hits for the URL passwords in `text`, which starts at `offset` of the
/// file.
fn url_hits(text: &str, offset: usize, key: &str, hits: &mut Vec<Hit>) {
    for r in secrets::url_passwords(text) {
        hits.push(Hit::new(
            offset + r.start..offset + r.end,
            MARKER,
            format!("{key} (URL password)"),
        ));
    }
}

#[cfg(test)]
mod tests;
