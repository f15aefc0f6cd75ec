//! Why a MessagePack value is not a message, in the protocol's words. serde
//! and rmp-serde describe a mismatch in Rust's (`expected internally tagged
//! enum ClientMessage`, `expected struct PlanSpec`, `unknown variant`, the
//! whole list of operations, a wrong value repeated in full); a client is
//! told instead the field, what the protocol expects there and what it
//! found. Only the shapes of message listed here are translated; anything
//! else becomes a general sentence, so no new wording from a library can
//! reach a client.

use rmpv::Value;

use super::input::{field_path, quote};

/// Explains a deserialization error `message` about the frame `body`.
pub fn explain(message: &str, body: &[u8]) -> String {
    let tree = rmpv::decode::read_value(&mut &body[..]).ok();
    let tree = tree.as_ref();
    if let Some(field) = between(message, "missing field `", "`") {
        return format!("the field {} is missing", quote(field));
    }
    if let Some(field) = between(message, "duplicate field `", "`") {
        return format!("the field {} appears more than once", quote(field));
    }
    if let Some(rest) = message.strip_prefix("unknown variant `") {
        if let Some((name, choices)) = rest.split_once("`, ") {
            return unknown_name(name, choices, tree);
        }
    }
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix) {
            if let Some((found, expected)) = rest.rsplit_once(", expected ") {
                return mismatch(found, expected, tree);
            }
        }
    }
    if let Some(rest) = message.strip_prefix("invalid length ") {
        if let Some((n, expected)) = rest.split_once(", expected ") {
            let n = n.trim();
            let path = tree.and_then(|t| {
                locate(t, &|v| {
                    v.as_array().is_some_and(|a| a.len().to_string() == n)
                })
            });
            let at = path.map(|p| format!("{p}: ")).unwrap_or_default();
            return format!(
                "{at}expected {}, found an array of {n} values",
                expected_words(expected)
            );
        }
    }
    // Our own types' errors (an id of the wrong shape) are already written
    // for clients and repeat nothing they sent.
    if message.starts_with("not a valid ") && message.len() <= 120 {
        return message.to_owned();
    }
    "the message does not have the shape the protocol gives it".to_owned()
}

/// The text between `start` and the next `end` in `s`.
fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let rest = s.strip_prefix(start)?;
    rest.split_once(end).map(|(inner, _)| inner)
}

/// The first text in backticks (serde's quoting of a literal).
fn backticked(s: &str) -> Option<&str> {
    let mut parts = s.split('`');
    parts.next()?;
    let inner = parts.next()?;
    parts.next().map(|_| inner)
}

/// `unknown variant `name`, expected one of `a`, `b`` (or `expected `a``,
/// or `there are no variants`).
fn unknown_name(name: &str, choices: &str, tree: Option<&Value>) -> String {
    let choices: Vec<&str> = choices.split('`').skip(1).step_by(2).collect();
    let path = tree.and_then(|t| locate(t, &|v| v.as_str() == Some(name)));
    let at = path.map(|p| format!("{p}: ")).unwrap_or_default();
    let what = if choices.contains(&"backup_create") {
        // The whole list of operations is a page of the protocol, not an
        // error message.
        return format!(
            "{at}unknown operation {} (docs/PROTOCOL.md lists the operations)",
            quote(name)
        );
    } else if choices.contains(&"hello") {
        "message type"
    } else {
        "value"
    };
    if choices.is_empty() || choices.len() > 8 {
        return format!("{at}unknown {what} {}", quote(name));
    }
    format!(
        "{at}unknown {what} {} (expected {})",
        quote(name),
        or_list(&choices)
    )
}

fn or_list(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// `found` and `expected` as serde writes them (`integer `5``, `u32`).
fn mismatch(found: &str, expected: &str, tree: Option<&Value>) -> String {
    let (found_words, path) = match found_kind(found) {
        Some((kind, pred)) => {
            let path = tree.and_then(|t| locate(t, &pred));
            let words = match (
                kind,
                path.as_ref().and_then(|p| tree.and_then(|t| at(t, p))),
            ) {
                (Kind::Str, Some(Value::String(s))) => match s.as_str() {
                    Some(s) => format!("the string {}", quote(s)),
                    None => "a string that is not valid UTF-8".to_owned(),
                },
                (Kind::Bin, Some(Value::String(s))) if s.as_str().is_none() => {
                    "a string that is not valid UTF-8".to_owned()
                }
                (kind, _) => kind.words(found),
            };
            (words, path)
        }
        None => ("a value of another kind".to_owned(), None),
    };
    let at = path.map(|p| format!("{p}: ")).unwrap_or_default();
    format!(
        "{at}expected {}, found {found_words}",
        expected_words(expected)
    )
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    Float,
    Bool,
    Str,
    Nil,
    Array,
    Map,
    Bin,
    Ext,
}

impl Kind {
    fn words(self, found: &str) -> String {
        let literal = backticked(found).filter(|l| l.len() <= 40);
        match (self, literal) {
            (Kind::Int, Some(n)) => format!("the integer {n}"),
            (Kind::Int, None) => "an integer".into(),
            (Kind::Float, Some(n)) => format!("the number {n}"),
            (Kind::Float, None) => "a floating-point number".into(),
            (Kind::Bool, Some(b)) => b.to_owned(),
            (Kind::Bool, None) => "true or false".into(),
            (Kind::Str, _) => "a string".into(),
            (Kind::Nil, _) => "nil".into(),
            (Kind::Array, _) => "an array".into(),
            (Kind::Map, _) => "a map".into(),
            (Kind::Bin, _) => "binary data".into(),
            (Kind::Ext, _) => "a MessagePack extension value".into(),
        }
    }
}

type Pred = Box<dyn Fn(&Value) -> bool>;

/// What kind of value serde's `found` text describes, and a test for the
/// values in the tree it could be.
fn found_kind(found: &str) -> Option<(Kind, Pred)> {
    let literal = backticked(found).map(str::to_owned);
    Some(if found.starts_with("integer ") {
        let n = literal?;
        (
            Kind::Int,
            Box::new(move |v: &Value| (v.is_i64() || v.is_u64()) && v.to_string() == n),
        )
    } else if found.starts_with("floating point ") {
        let n = literal?;
        (
            Kind::Float,
            Box::new(move |v: &Value| match v {
                Value::F32(f) => format_float(f64::from(*f)) == n,
                Value::F64(f) => format_float(*f) == n,
                _ => false,
            }),
        )
    } else if found.starts_with("boolean ") {
        let b = literal?;
        (
            Kind::Bool,
            Box::new(move |v: &Value| v.as_bool().is_some_and(|x| x.to_string() == b)),
        )
    } else if let Some(s) = found.strip_prefix("string ") {
        let s = s.to_owned();
        (
            Kind::Str,
            Box::new(move |v: &Value| v.as_str().is_some_and(|x| format!("{x:?}") == s)),
        )
    } else {
        match found {
            "unit value" => (Kind::Nil, Box::new(Value::is_nil)),
            "sequence" => (Kind::Array, Box::new(Value::is_array)),
            "map" => (Kind::Map, Box::new(Value::is_map)),
            "byte array" => (
                Kind::Bin,
                Box::new(|v: &Value| {
                    // (rmpv's `is_bin` is true of every string too)
                    matches!(v, Value::Binary(_))
                        || matches!(v, Value::String(s) if s.as_str().is_none())
                }),
            ),
            "newtype struct" => (Kind::Ext, Box::new(|v: &Value| v.is_ext())),
            _ => return None,
        }
    })
}

/// serde prints a float like `1.0` or `1.5`; rmpv's F32/F64 print the same
/// through `f64`'s Debug.
fn format_float(f: f64) -> String {
    format!("{f:?}")
}

/// serde's `expected` text in the protocol's words.
fn expected_words(expected: &str) -> String {
    let e = expected.trim();
    let unsigned = |bits: u32| format!("a whole number from 0 to {}", u64::MAX >> (64 - bits));
    match e {
        "u8" => unsigned(8),
        "u16" => unsigned(16),
        "u32" => unsigned(32),
        "u64" => unsigned(64),
        "i8" | "i16" | "i32" | "i64" => "an integer".into(),
        "f32" | "f64" => "a number".into(),
        "a boolean" => "true or false".into(),
        "a string" | "a borrowed string" | "a character" => "a string".into(),
        "byte array" | "a byte array" => "binary data".into(),
        // A field whose values are names (scope, role, preset).
        "string or map" => "a string".into(),
        _ if e.starts_with("internally tagged enum") => "a map with a \"type\" field".into(),
        _ if e.starts_with("struct ") || e.starts_with("a map") => "a map".into(),
        _ if e.starts_with("variant index") || e.starts_with("variant identifier") => {
            "a string naming the type".into()
        }
        _ if e.starts_with("a sequence") || e.starts_with("tuple") => "an array".into(),
        _ => "a value of another kind".into(),
    }
}

/// The path (`op.plan.at`) of the one value in `tree` that `pred` accepts;
/// none when no value or more than one does, so that a field is named only
/// when it is certain.
fn locate(tree: &Value, pred: &dyn Fn(&Value) -> bool) -> Option<String> {
    let mut found = Vec::new();
    walk(tree, &mut Vec::new(), pred, &mut found);
    match found.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    }
}

fn walk<'a>(
    v: &'a Value,
    path: &mut Vec<Option<&'a str>>,
    pred: &dyn Fn(&Value) -> bool,
    found: &mut Vec<String>,
) {
    if found.len() > 1 {
        return;
    }
    if pred(v) && !path.is_empty() {
        found.push(field_path(path.iter().copied()));
    }
    match v {
        Value::Map(entries) => {
            for (k, child) in entries {
                path.push(k.as_str());
                walk(child, path, pred, found);
                path.pop();
            }
        }
        Value::Array(items) => {
            for child in items {
                path.push(Some("[]"));
                walk(child, path, pred, found);
                path.pop();
            }
        }
        _ => {}
    }
}

/// The value at a dotted path found by `locate` (no arrays in it).
fn at<'a>(tree: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(tree, |v, key| {
        v.as_map()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, child)| child)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pack(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        rmpv::encode::write_value(&mut out, v).unwrap();
        out
    }

    #[test]
    fn a_string_that_is_not_utf8_is_named() {
        let v = Value::Map(vec![
            ("type".into(), "request".into()),
            ("id".into(), 1.into()),
            (
                "op".into(),
                Value::Map(vec![
                    ("type".into(), "backup_create".into()),
                    ("label".into(), "\u{1}\u{1}".into()),
                ]),
            ),
        ]);
        let mut body = pack(&v);
        let i = body.windows(2).position(|w| w == [1, 1]).unwrap();
        body[i..i + 2].copy_from_slice(&[0xff, 0xfe]);
        assert_eq!(
            explain("invalid value: byte array, expected a string", &body),
            "op.label: expected a string, found a string that is not valid UTF-8"
        );
    }
}
