//! TOML, read with `toml_edit`, which keeps where each value was in the
//! text (and bounds nesting itself). Every value under a secret-looking
//! key (a table under `[credentials]` included) becomes the string
//! `"BERKUT-REDACTED"`; a URL's password in any other string is replaced
//! inside the string.

use toml_edit::{Document, Item, Table, Value};

use super::{join, url_hits, Failure, Hit, Words, MARKER};

pub(super) fn hits(text: &str, words: &Words) -> Result<Vec<Hit>, Failure> {
    let doc = Document::parse(text).map_err(|e| {
        // The error's message quotes the line; only its position is kept.
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        Failure::NotParsed(match line {
            Some(line) => format!("not valid TOML (line {line})"),
            None => "not valid TOML".into(),
        })
    })?;
    let mut walk = Walk {
        text,
        words,
        hits: Vec::new(),
    };
    walk.table(doc.as_table(), "", None);
    Ok(walk.hits)
}

struct Walk<'a> {
    text: &'a str,
    words: &'a Words,
    hits: Vec<Hit>,
}

impl Walk<'_> {
    /// `secret` is the path of the secret key this table is under, if any.
    fn table(&mut self, table: &Table, path: &str, secret: Option<&str>) {
        for (key, item) in table.iter() {
            let here = join(path, key);
            let secret = secret.or(self.words.is_secret(key).then_some(here.as_str()));
            let secret = secret.map(str::to_owned);
            self.item(item, &here, secret.as_deref());
        }
    }

    fn item(&mut self, item: &Item, path: &str, secret: Option<&str>) {
        match item {
            Item::None => {}
            Item::Value(v) => self.value(v, path, secret),
            Item::Table(t) => self.table(t, path, secret),
            Item::ArrayOfTables(a) => {
                for t in a.iter() {
                    self.table(t, path, secret);
                }
            }
        }
    }

    fn value(&mut self, value: &Value, path: &str, secret: Option<&str>) {
        match value {
            Value::Array(a) => {
                for v in a.iter() {
                    self.value(v, path, secret);
                }
            }
            Value::InlineTable(t) => {
                for (key, v) in t.iter() {
                    let here = join(path, key);
                    let inner = secret.or(self.words.is_secret(key).then_some(here.as_str()));
                    let inner = inner.map(str::to_owned);
                    self.value(v, &here, inner.as_deref());
                }
            }
            scalar => {
                let Some(span) = scalar.span() else { return };
                let raw = &self.text[span.clone()];
                match secret {
                    Some(key) => {
                        if scalar.as_str() != Some(MARKER) {
                            self.hits.push(Hit::new(span, format!("\"{MARKER}\""), key));
                        }
                    }
                    None => url_hits(raw, span.start, path, &mut self.hits),
                }
            }
        }
    }
}
