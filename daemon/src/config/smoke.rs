//! `[[smoke_check]]` entries of the configuration: the operator's own SQL
//! checks of a restored database (a name, one query, and what its single
//! row's first column must be). They are checked here, when the
//! configuration is loaded, for everything that can be known without a
//! database: bounded lengths and counts, names unique, printable and on one
//! line, a query that is one statement's worth of text, an expected value of
//! a kind the checks compare. Whether the SQL is valid is only known when it
//! runs (`restore::checks`), where a bad query fails its check.

use serde::Deserialize;

/// The most checks the configuration may hold: each runs in every drill
/// and every restore, and each result travels in the restore's record.
pub const MAX_SMOKE_CHECKS: usize = 32;
/// Longest check name, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// Longest query, in bytes.
pub const MAX_SQL_BYTES: usize = 8192;
/// Longest expected text, in characters.
pub const MAX_EXPECT_CHARS: usize = 200;

/// What the first column of a check's single row must be.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Expect {
    Bool(bool),
    Int(i64),
    Text(String),
}

impl Default for Expect {
    fn default() -> Self {
        Expect::Bool(true)
    }
}

impl std::fmt::Display for Expect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expect::Bool(b) => write!(f, "{b}"),
            Expect::Int(n) => write!(f, "{n}"),
            Expect::Text(t) => write!(f, "{t:?}"),
        }
    }
}

/// One check, validated.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmokeCheck {
    pub name: String,
    pub sql: String,
    #[serde(default)]
    pub expect: Expect,
}

/// The SQL is the operator's, not a secret, but it is long and may name
/// things a log reader need not see: `Debug` shows the name and the
/// expectation only.
impl std::fmt::Debug for SmokeCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} expects {}", self.name, self.expect)
    }
}

/// Reads and validates the entries; an error's text is for the caller to
/// say where the entries came from.
pub fn parse(value: toml::Value) -> Result<Vec<SmokeCheck>, String> {
    let checks: Vec<SmokeCheck> = value.try_into().map_err(|e: toml::de::Error| {
        format!(
            "must be [[smoke_check]] entries with a name, an sql and an optional expect \
             (true, false, a whole number or a text): {}",
            e.message().lines().next().unwrap_or("not valid")
        )
    })?;
    if checks.len() > MAX_SMOKE_CHECKS {
        return Err(format!(
            "holds {} checks; at most {MAX_SMOKE_CHECKS} are allowed",
            checks.len()
        ));
    }
    let mut names = std::collections::HashSet::new();
    for (i, check) in checks.iter().enumerate() {
        let which = format!("entry {}", i + 1);
        let name = check.name.trim();
        if name.is_empty() || name != check.name {
            return Err(format!(
                "{which}: the name must not be empty or start or end with spaces"
            ));
        }
        if check.name.chars().count() > MAX_NAME_CHARS {
            return Err(format!(
                "{which}: the name is longer than {MAX_NAME_CHARS} characters"
            ));
        }
        if check.name.chars().any(char::is_control) {
            return Err(format!(
                "{which}: the name must be one line of printable characters"
            ));
        }
        if !names.insert(check.name.as_str()) {
            return Err(format!("{which}: the name {:?} is used twice", check.name));
        }
        let which = format!("the check {:?}", check.name);
        if check.sql.trim().is_empty() {
            return Err(format!("{which}: the sql is empty"));
        }
        if check.sql.len() > MAX_SQL_BYTES {
            return Err(format!(
                "{which}: the sql is longer than {MAX_SQL_BYTES} bytes"
            ));
        }
        if check.sql.contains('\0') {
            return Err(format!("{which}: the sql holds a NUL character"));
        }
        if let Expect::Text(t) = &check.expect {
            if t.chars().count() > MAX_EXPECT_CHARS || t.contains('\0') {
                return Err(format!(
                    "{which}: the expected text is longer than {MAX_EXPECT_CHARS} characters \
                     or holds a NUL"
                ));
            }
        }
    }
    Ok(checks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Result<Vec<SmokeCheck>, String> {
        let table: toml::Table = toml::from_str(text).unwrap();
        parse(table["smoke_check"].clone())
    }

    #[test]
    fn entries_take_a_default_expectation_and_any_kind_of_value() {
        let checks = parsed(
            r#"
[[smoke_check]]
name = "users exist"
sql = "select count(*) > 0 from app.users"

[[smoke_check]]
name = "ten rows"
sql = "select count(*) from t"
expect = 10

[[smoke_check]]
name = "version"
sql = "select v from meta"
expect = "2.1"
"#,
        )
        .unwrap();
        assert_eq!(checks[0].expect, Expect::Bool(true));
        assert_eq!(checks[1].expect, Expect::Int(10));
        assert_eq!(checks[2].expect, Expect::Text("2.1".into()));
        // Debug leaves the SQL out.
        assert!(!format!("{checks:?}").contains("select"));
    }

    #[test]
    fn bad_entries_are_refused_with_a_reason() {
        let long_name = "n".repeat(MAX_NAME_CHARS + 1);
        let long_sql = "x".repeat(MAX_SQL_BYTES + 1);
        let many: String = (0..=MAX_SMOKE_CHECKS)
            .map(|i| format!("[[smoke_check]]\nname = \"c{i}\"\nsql = \"select true\"\n"))
            .collect();
        for (text, why) in [
            ("[[smoke_check]]\nname = \"a\"\n", "must be [[smoke_check]]"),
            (
                "[[smoke_check]]\nname = \"a\"\nsql = \"select 1\"\nwhat = 1\n",
                "must be [[smoke_check]]",
            ),
            (
                "[[smoke_check]]\nname = \"a\"\nsql = \"select 1\"\nexpect = 1.5\n",
                "must be [[smoke_check]]",
            ),
            ("[[smoke_check]]\nname = \"\"\nsql = \"select 1\"\n", "empty"),
            ("[[smoke_check]]\nname = \"a\\nb\"\nsql = \"select 1\"\n", "one line"),
            (
                &format!("[[smoke_check]]\nname = \"{long_name}\"\nsql = \"select 1\"\n"),
                "longer than",
            ),
            ("[[smoke_check]]\nname = \"a\"\nsql = \"  \"\n", "sql is empty"),
            (
                &format!("[[smoke_check]]\nname = \"a\"\nsql = \"{long_sql}\"\n"),
                "longer than",
            ),
            (
                "[[smoke_check]]\nname = \"a\"\nsql = \"select 1\"\n[[smoke_check]]\nname = \"a\"\nsql = \"select 2\"\n",
                "used twice",
            ),
            (&many, "at most"),
        ] {
            let e = parsed(text).unwrap_err();
            assert!(e.contains(why), "{text:?}: {e}");
        }
    }
}
