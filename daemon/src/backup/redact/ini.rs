//! INI files and systemd units: `[section]` headers, `key = value` or
//! `key: value` lines, bare keys (`skip-networking`), `#` and `;` comments,
//! and indented continuation lines. INI has no grammar beyond this, so its
//! parser is this line reader; what it does not recognise (braces, say) is
//! not INI, and the file goes to the line scanner instead. A systemd
//! `Environment=` line is read as the assignments it holds.

use super::keyvalue::{environment, value_hit};
use super::{join, Failure, Hit, Words, MARKER};

pub(super) fn hits(text: &str, words: &Words) -> Result<Vec<Hit>, Failure> {
    let mut hits = Vec::new();
    let mut section = String::new();
    // The previous key, when it was a secret: its continuation lines are
    // part of its value.
    let mut secret_key: Option<String> = None;
    let mut at = 0;
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let start = at;
        at += line.len();
        let content = line.trim_end_matches(['\n', '\r']);
        let body = content.trim_start();
        let offset = start + (content.len() - body.len());
        if body.is_empty() || body.starts_with('#') || body.starts_with(';') {
            continue;
        }
        if offset > start {
            // A continuation line.
            if let Some(key) = &secret_key {
                let value = body.trim_end();
                if value != MARKER {
                    hits.push(Hit::new(offset..offset + value.len(), MARKER, key.clone()));
                }
            }
            continue;
        }
        if let Some(name) = body.strip_prefix('[') {
            let Some(name) = name.trim_end().strip_suffix(']') else {
                return Err(not_ini(n));
            };
            section = name.trim().to_owned();
            secret_key = None;
            continue;
        }
        let Some(sep) = body.find(['=', ':']) else {
            // A bare key, allowed when it is one word.
            if body.trim_end().contains(char::is_whitespace) || body.contains(['{', '}']) {
                return Err(not_ini(n));
            }
            secret_key = None;
            continue;
        };
        let key = body[..sep].trim();
        if key.is_empty() || key.contains(['{', '}', '[', ']', '"']) {
            return Err(not_ini(n));
        }
        let rest = &body[sep + 1..];
        let trimmed = rest.trim();
        let value_start = offset + sep + 1 + (rest.len() - rest.trim_start().len());
        let value = value_start..value_start + trimmed.len();
        if key == "Environment" {
            environment(text, value, &join(&section, key), words, &mut hits);
            secret_key = None;
            continue;
        }
        // A quoted value is replaced inside its quotes.
        let value = match trimmed.as_bytes() {
            [q @ (b'"' | b'\''), .., last] if last == q && trimmed.len() >= 2 => {
                value.start + 1..value.end - 1
            }
            _ => value,
        };
        value_hit(text, value, key, &section, words, &mut hits);
        secret_key = words.is_secret(key).then(|| join(&section, key));
    }
    Ok(hits)
}

fn not_ini(line: usize) -> Failure {
    Failure::NotParsed(format!("line {} is not INI", line + 1))
}
