//! `KEY=VALUE` files (`.env`, `EnvironmentFile=`) and the assignments of
//! a systemd `Environment=` line. A line is a comment, blank, or an
//! assignment with an optional `export`; a value is bare (to a ` #`
//! comment or the line's end), or quoted, a double-quoted one possibly
//! over several lines. A commented-out assignment of a secret is redacted
//! too: an old password is still a password. Anything else is not this
//! format, and the file goes to the line scanner instead.

use super::{join, url_hits, Failure, Hit, Words, MARKER};

pub(super) fn hits(text: &str, words: &Words) -> Result<Vec<Hit>, Failure> {
    let mut hits = Vec::new();
    let mut at = 0;
    let mut line_no = 0;
    while at < text.len() {
        line_no += 1;
        let line_end = text[at..].find('\n').map_or(text.len(), |n| at + n);
        let line = &text[at..line_end];
        let body = line.trim_start();
        let start = at + (line.len() - body.len());
        let (commented, body, start) = match body.strip_prefix('#') {
            Some(rest) => {
                let trimmed = rest.trim_start();
                (true, trimmed, start + 1 + (rest.len() - trimmed.len()))
            }
            None => (false, body, start),
        };
        if body.trim().is_empty() {
            at = line_end + 1;
            continue;
        }
        match assignment(text, start, body.len(), words, &mut hits) {
            Some(end) => at = end.max(line_end) + 1,
            // A comment that is prose, not an assignment.
            None if commented => at = line_end + 1,
            None => {
                return Err(Failure::NotParsed(format!(
                    "line {line_no} is not KEY=VALUE"
                )))
            }
        }
    }
    Ok(hits)
}

/// Parses the assignment at `start` (its line `len` bytes long), adding a
/// hit for a secret value; returns where the value ended (past its line
/// for a multi-line quoted value), or None if it is not an assignment.
fn assignment(
    text: &str,
    start: usize,
    len: usize,
    words: &Words,
    hits: &mut Vec<Hit>,
) -> Option<usize> {
    let line = &text[start..start + len];
    let (line, start) = match line.strip_prefix("export ") {
        Some(rest) => {
            let trimmed = rest.trim_start();
            (trimmed, start + (line.len() - trimmed.len()))
        }
        None => (line, start),
    };
    let eq = line.find('=')?;
    let key = line[..eq].trim_end();
    if key.is_empty()
        || !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        || key.starts_with(|c: char| c.is_ascii_digit())
    {
        return None;
    }
    let (range, end) = value_range(text, start + eq + 1, start + line.len())?;
    value_hit(text, range, key, "", words, hits);
    Some(end)
}

/// Adds a hit for the value at `range` of `key` (under `path`), if secret.
pub(super) fn value_hit(
    text: &str,
    range: std::ops::Range<usize>,
    key: &str,
    path: &str,
    words: &Words,
    hits: &mut Vec<Hit>,
) {
    let value = &text[range.clone()];
    let name = join(path, key);
    if words.is_secret(key) {
        if !value.is_empty() && value != MARKER {
            hits.push(Hit::new(range, MARKER, name));
        }
    } else {
        url_hits(value, range.start, &name, hits);
    }
}

/// The value starting at `from` on a line ending at `line_end`: its bytes
/// inside any quotes, and where it ends.
fn value_range(
    text: &str,
    from: usize,
    line_end: usize,
) -> Option<(std::ops::Range<usize>, usize)> {
    let rest = &text[from..line_end];
    let skipped = rest.len() - rest.trim_start().len();
    let v = from + skipped;
    match text[v..].chars().next() {
        Some(q @ ('"' | '\'')) => {
            // Double quotes may span lines and escape a quote.
            let mut i = v + 1;
            let bytes = text.as_bytes();
            while i < text.len() {
                match bytes[i] {
                    b'\\' if q == '"' => i += 2,
                    b if b == q as u8 => return Some((v + 1..i, i + 1)),
                    b'\n' if q == '\'' => return None,
                    _ => i += 1,
                }
            }
            None
        }
        _ => {
            let body = &text[v..line_end];
            let end = body.find(" #").unwrap_or(body.len());
            let value = body[..end].trim_end();
            Some((v..v + value.len(), line_end))
        }
    }
}

/// The assignments of one systemd `Environment=` value, which holds
/// `KEY=VALUE` words, each possibly quoted as a whole.
pub(super) fn environment(
    text: &str,
    range: std::ops::Range<usize>,
    path: &str,
    words: &Words,
    hits: &mut Vec<Hit>,
) {
    let bytes = text.as_bytes();
    let mut i = range.start;
    while i < range.end {
        while i < range.end && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= range.end {
            break;
        }
        let (word, next) = match bytes[i] {
            q @ (b'"' | b'\'') => {
                let close = text[i + 1..range.end]
                    .find(q as char)
                    .map_or(range.end, |n| i + 1 + n);
                (i + 1..close, (close + 1).min(range.end))
            }
            _ => {
                let end = text[i..range.end]
                    .find(char::is_whitespace)
                    .map_or(range.end, |n| i + n);
                (i..end, end)
            }
        };
        let w = &text[word.clone()];
        if let Some(eq) = w.find('=') {
            let value = word.start + eq + 1..word.end;
            value_hit(text, value, &w[..eq], path, words, hits);
        }
        i = next;
    }
}
