//! JSON (with the comments and trailing commas configuration files often
//! have), read with `jsonc-parser`, whose syntax tree says where each
//! value is. Its parser recurses, so the nesting is measured first, by a
//! scan that does not: a file nested past `MAX_DEPTH` is refused. Every
//! value under a secret-looking key becomes `"BERKUT-REDACTED"`; a URL's
//! password in any other string is replaced inside the string.

use jsonc_parser::ast::{ObjectPropName, Value};
use jsonc_parser::common::Ranged;
use jsonc_parser::{parse_to_ast, CollectOptions, ParseOptions};

use super::{join, url_hits, Failure, Hit, Words, MARKER, MAX_DEPTH};

pub(super) fn hits(text: &str, words: &Words) -> Result<Vec<Hit>, Failure> {
    if depth(text) > MAX_DEPTH {
        return Err(Failure::Refused(format!(
            "JSON nested deeper than {MAX_DEPTH} levels"
        )));
    }
    let parsed =
        parse_to_ast(text, &CollectOptions::default(), &ParseOptions::default()).map_err(|e| {
            let line = text[..e.range().start.min(text.len())]
                .matches('\n')
                .count()
                + 1;
            Failure::NotParsed(format!("not valid JSON (line {line})"))
        })?;
    let mut hits = Vec::new();
    if let Some(value) = &parsed.value {
        walk(text, value, "", None, words, &mut hits);
    }
    Ok(hits)
}

/// The deepest nesting of arrays and objects, strings skipped.
fn depth(text: &str) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0, false, false);
    for b in text.bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

fn walk(
    text: &str,
    value: &Value,
    path: &str,
    secret: Option<&str>,
    words: &Words,
    hits: &mut Vec<Hit>,
) {
    match value {
        Value::Object(o) => {
            for prop in &o.properties {
                let key = match &prop.name {
                    ObjectPropName::String(s) => s.value.as_ref(),
                    ObjectPropName::Word(w) => w.value,
                };
                let here = join(path, key);
                let inner = secret.or(words.is_secret(key).then_some(here.as_str()));
                let inner = inner.map(str::to_owned);
                walk(text, &prop.value, &here, inner.as_deref(), words, hits);
            }
        }
        Value::Array(a) => {
            for v in &a.elements {
                walk(text, v, path, secret, words, hits);
            }
        }
        scalar => {
            let range = scalar.range();
            let range = range.start..range.end;
            match secret {
                Some(key) => {
                    let already = matches!(scalar, Value::StringLit(s) if s.value == MARKER);
                    if !already {
                        hits.push(Hit::new(range, format!("\"{MARKER}\""), key));
                    }
                }
                None => url_hits(&text[range.clone()], range.start, path, hits),
            }
        }
    }
}
