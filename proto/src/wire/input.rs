//! What a client may send as text, and how the daemon speaks of it. Every
//! string field of every request has a maximum length here, checked when the
//! request is decoded (`frame::decode_request`), before any handler sees it;
//! and every error that repeats something a client sent quotes it with
//! `quote`, which shows at most `QUOTE_MAX_CHARS` characters with control
//! characters escaped, so an error can never be larger (or more dangerous
//! in a terminal or a log) than a line. `docs/PROTOCOL.md` §1.6 lists the
//! same limits.

use super::messages::{ClientMessage, MAX_LABEL_CHARS};

/// The longest string a request may hold anywhere (a key or a value), in
/// bytes. The longest field allows 256 characters; 1 KiB leaves room for
/// multi-byte characters in the 200-character fields (a label of 200
/// four-byte characters is 800 bytes). Checked by the frame scan before
/// serde copies a single string.
pub const MAX_REQUEST_STRING_BYTES: usize = 1024;

/// How much of a client's text an error repeats.
pub const QUOTE_MAX_CHARS: usize = 100;

/// A text field's bounds, in characters (Unicode scalar values). No text
/// field of a request may contain control characters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TextLimit {
    /// The field as the protocol names it, from the message's top level.
    pub field: &'static str,
    pub min_chars: usize,
    pub max_chars: usize,
}

/// `hello.client`: a name and version for the daemon's log
/// (`berkutctl 0.1.0`); 200 like a label.
pub const CLIENT_NAME: TextLimit = TextLimit {
    field: "client",
    min_chars: 0,
    max_chars: 200,
};

/// `on_behalf_of.user`: the application's id of its user, written into
/// every audit event; long enough for an e-mail address or a UUID.
pub const USER: TextLimit = TextLimit {
    field: "on_behalf_of.user",
    min_chars: 1,
    max_chars: 200,
};

/// `backup_create.label`, shown in lists and logs.
pub const LABEL: TextLimit = TextLimit {
    field: "op.label",
    min_chars: 0,
    max_chars: MAX_LABEL_CHARS,
};

/// `plan.at`: `HH:MM` is five; 16 leaves room for a near miss
/// (`7:30 pm`) to be told what is wrong with it rather than its length.
pub const PLAN_AT: TextLimit = TextLimit {
    field: "op.plan.at",
    min_chars: 0,
    max_chars: 16,
};

/// `plan.weekday`: `wednesday` is nine.
pub const PLAN_WEEKDAY: TextLimit = TextLimit {
    field: "op.plan.weekday",
    min_chars: 0,
    max_chars: 16,
};

/// `plan.timezone`: the longest IANA name is 32 characters
/// (`America/Argentina/ComodRivadavia`).
pub const PLAN_TIMEZONE: TextLimit = TextLimit {
    field: "op.plan.timezone",
    min_chars: 0,
    max_chars: 64,
};

/// `plan.cron`: five fields; room for lists (`0,15,30,45 8-18 * * 1-5` is
/// 24) many times over.
pub const PLAN_CRON: TextLimit = TextLimit {
    field: "op.plan.cron",
    min_chars: 0,
    max_chars: 256,
};

/// `remote`: a configured remote's name (`[[remote]]`, 1 to 32 of a-z,
/// 0-9 and -; the daemon refuses a name it does not know).
pub const REMOTE: TextLimit = TextLimit {
    field: "op.remote",
    min_chars: 1,
    max_chars: 32,
};

/// Every limit, for documentation and tests.
pub const TEXT_LIMITS: [TextLimit; 8] = [
    CLIENT_NAME,
    USER,
    LABEL,
    PLAN_AT,
    PLAN_WEEKDAY,
    PLAN_TIMEZONE,
    PLAN_CRON,
    REMOTE,
];

impl TextLimit {
    /// Checks `text`; the error names the field and never repeats the text.
    pub fn check(&self, text: &str) -> Result<(), String> {
        let field = self.field;
        // Counting stops past the maximum: the scan has already bounded the
        // bytes, but there is no need to walk them all.
        let chars = text.chars().take(self.max_chars + 1).count();
        if chars > self.max_chars {
            return Err(format!(
                "{field}: at most {} characters are allowed, found {}",
                self.max_chars,
                text.chars().count()
            ));
        }
        if chars < self.min_chars {
            return Err(format!(
                "{field}: at least {} character{} required, found {chars}",
                self.min_chars,
                if self.min_chars == 1 { " is" } else { "s are" }
            ));
        }
        if let Some(c) = text.chars().find(|c| c.is_control()) {
            return Err(format!(
                "{field}: control characters are not allowed, found U+{:04X}",
                u32::from(c)
            ));
        }
        Ok(())
    }
}

/// Checks every text field of a decoded message against its limit: the
/// request's own fields through its type's `ops::Validate`, which every
/// request type must implement, so a new one cannot be added without
/// deciding what its strings may hold (ids are checked by their own types
/// when decoded).
pub fn check_message(msg: &ClientMessage) -> Result<(), String> {
    match msg {
        ClientMessage::Hello { client, .. } => CLIENT_NAME.check(client),
        ClientMessage::Data { .. } => Ok(()),
        ClientMessage::Request {
            op, on_behalf_of, ..
        } => {
            if let Some(who) = on_behalf_of {
                USER.check(&who.user)?;
            }
            op.validate()
        }
    }
}

/// A path to a field (`op.plan.timezone`) as an error shows it: keys that
/// are not short printable names become `?`, and of a path deeper than any
/// real field only the last levels are kept, so a hostile nesting of long
/// keys cannot make an error long.
pub fn field_path<'a>(keys: impl IntoIterator<Item = Option<&'a str>>) -> String {
    const MAX_KEY: usize = 32;
    const MAX_LEVELS: usize = 4;
    let parts: Vec<&str> = keys
        .into_iter()
        .map(|k| match k {
            Some(k) if k.len() <= MAX_KEY && !k.contains(char::is_control) => k,
            _ => "?",
        })
        .collect();
    if parts.len() > MAX_LEVELS {
        format!("….{}", parts[parts.len() - MAX_LEVELS..].join("."))
    } else {
        parts.join(".")
    }
}

/// Quotes text a client sent, for an error or a log line: in double
/// quotes, control characters, quotes and backslashes escaped, at most
/// `QUOTE_MAX_CHARS` characters of it, and when it was longer an ellipsis
/// and its full length. The result is short and one line whatever `text`
/// holds.
pub fn quote(text: &str) -> String {
    let mut out = String::with_capacity(QUOTE_MAX_CHARS + 8);
    out.push('"');
    let mut chars = text.chars();
    for c in chars.by_ref().take(QUOTE_MAX_CHARS) {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    if chars.next().is_some() {
        out.push_str(&format!("…\" ({} characters)", text.chars().count()));
    } else {
        out.push('"');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_is_short_escaped_and_one_line() {
        assert_eq!(quote("Europe/Berlin"), "\"Europe/Berlin\"");
        assert_eq!(quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(quote("x\n2026 INFO y\u{1}"), "\"x\\n2026 INFO y\\u{1}\"");
        let long = "\u{1}".repeat(4 << 20);
        let q = quote(&long);
        assert!(q.len() < 800, "{}", q.len());
        assert!(q.ends_with(&format!("…\" ({} characters)", 4 << 20)));
        assert!(!q.chars().any(char::is_control));
        // Exactly the maximum is not cut.
        let exact = "é".repeat(QUOTE_MAX_CHARS);
        assert_eq!(quote(&exact), format!("\"{exact}\""));
    }

    #[test]
    fn a_field_path_stays_short() {
        assert_eq!(
            field_path([Some("op"), Some("plan"), Some("at")]),
            "op.plan.at"
        );
        let long = "k".repeat(33);
        let deep: Vec<Option<&str>> = (0..31).map(|_| Some(long.as_str())).collect();
        assert_eq!(field_path(deep), "….?.?.?.?");
        assert_eq!(field_path([Some("a\nb"), None]), "?.?");
    }

    #[test]
    fn every_limit_is_checked_without_repeating_the_text() {
        for limit in TEXT_LIMITS {
            assert!(limit.max_chars * 4 <= MAX_REQUEST_STRING_BYTES);
            assert_eq!(limit.check(&"é".repeat(limit.max_chars)), Ok(()));
            let long = "é".repeat(limit.max_chars + 1);
            let err = limit.check(&long).unwrap_err();
            assert!(err.starts_with(limit.field) && !err.contains('é'), "{err}");
            let err = limit.check("a\nb").unwrap_err();
            assert!(err.contains("U+000A") && !err.contains('\n'), "{err}");
        }
        assert!(USER
            .check("")
            .unwrap_err()
            .contains("at least 1 character is"));
        assert_eq!(LABEL.check(""), Ok(()));
    }
}
