//! Connection URLs and their passwords, next to the code that connects.
//! A URL may hold a password: `DatabaseUrl` keeps it out of `Debug` (so
//! `Config` can be logged whole), `redact_url` out of a log line, and
//! `split_password` and `tool_env` out of a tool's command line, which every
//! user can read; tools get it through their environment instead.
//!
//! `DatabaseUrl` shows only the parts that are not secret, taken from the
//! parsed settings rather than by editing the text, so no spelling of a
//! password (a keyword string, quotes, a query parameter) can slip through.

use std::fmt;
use std::ops::Deref;

/// A libpq connection URL or keyword string, validated at load. It
/// dereferences to the text for the code that connects; its `Debug` shows
/// the user, hosts, ports and database, and `password=***` when there is
/// one.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn new(url: String) -> DatabaseUrl {
        DatabaseUrl(url)
    }
}

impl Deref for DatabaseUrl {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl DatabaseUrl {
    /// The settings that are not secret, as libpq keywords, for a log line:
    /// `user=app host=/run/postgresql dbname=app password=***`.
    pub fn redacted(&self) -> String {
        let Ok(parsed) = self.0.parse::<tokio_postgres::Config>() else {
            return "***".to_owned();
        };
        let mut words = Vec::new();
        if let Some(user) = parsed.get_user() {
            words.push(format!("user={user}"));
        }
        for host in parsed.get_hosts() {
            match host {
                tokio_postgres::config::Host::Tcp(name) => words.push(format!("host={name}")),
                tokio_postgres::config::Host::Unix(path) => {
                    words.push(format!("host={}", path.display()))
                }
            }
        }
        for port in parsed.get_ports() {
            words.push(format!("port={port}"));
        }
        if let Some(db) = parsed.get_dbname() {
            words.push(format!("dbname={db}"));
        }
        if parsed.get_password().is_some() {
            words.push("password=***".to_owned());
        }
        words.join(" ")
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

/// What the tools' sessions set over the database's and role's settings.
const TOOL_SESSION_OPTIONS: &str =
    "-c statement_timeout=0 -c lock_timeout=0 -c idle_in_transaction_session_timeout=0";

/// What PostgreSQL's command-line tools need to reach a database of this
/// server: libpq's environment variables, the password among them (never on
/// a command line, where every user could read it).
pub fn tool_env(config: &tokio_postgres::Config, dbname: &str) -> Vec<(&'static str, String)> {
    use std::os::unix::ffi::OsStrExt;
    let mut env = vec![
        ("PGDATABASE", dbname.to_owned()),
        ("PGAPPNAME", super::APPLICATION_NAME.to_owned()),
    ];
    if let Some(host) = config.get_hosts().first() {
        let host = match host {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            tokio_postgres::config::Host::Unix(path) => {
                String::from_utf8_lossy(path.as_os_str().as_bytes()).into_owned()
            }
        };
        env.push(("PGHOST", host));
    }
    if let Some(port) = config.get_ports().first() {
        env.push(("PGPORT", port.to_string()));
    }
    if let Some(user) = config.get_user() {
        env.push(("PGUSER", user.to_owned()));
    }
    if let Some(password) = config.get_password() {
        env.push(("PGPASSWORD", String::from_utf8_lossy(password).into_owned()));
    }
    // A database or role may set a statement or lock timeout for its
    // application; pg_dump's first queries run before it sets its own, and
    // pg_restore's long statements would be cancelled by it.
    let options = config.get_options().unwrap_or_default();
    let options = if options.contains(TOOL_SESSION_OPTIONS) {
        options.to_owned()
    } else {
        format!("{options} {TOOL_SESSION_OPTIONS}")
    };
    env.push(("PGOPTIONS", options.trim().to_owned()));
    env
}

/// A command for one of PostgreSQL's tools, connected through `env`
/// (`tool_env`): the one way every tool the daemon runs reaches the server.
/// No `PG*` variable of the daemon's own reaches it: `tools::spawn` starts
/// every child with only what is set here and a few harmless variables.
pub fn tool_command(
    bin: &std::path::Path,
    env: &[(&'static str, String)],
) -> std::process::Command {
    let mut cmd = std::process::Command::new(bin);
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    cmd
}

/// Replaces the password in a libpq URL or keyword string with `***`.
pub fn redact_url(url: &str) -> String {
    rewrite_password(url, Some("***")).0
}

/// Splits a connection URL into the URL without its password and the
/// password, so that tools get the password through their environment
/// rather than a command line that every user can read.
pub fn split_password(url: &str) -> (String, Option<String>) {
    rewrite_password(url, None)
}

fn rewrite_password(url: &str, replacement: Option<&str>) -> (String, Option<String>) {
    let mut found = None;
    let rewritten = if let Some(rest) = url
        .strip_prefix("postgresql://")
        .or_else(|| url.strip_prefix("postgres://"))
    {
        let scheme = &url[..url.len() - rest.len()];
        let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
        let authority = match authority.rsplit_once('@') {
            Some((userinfo, host)) => match userinfo.split_once(':') {
                Some((user, password)) => {
                    found = Some(percent_decode(password));
                    match replacement {
                        Some(r) => format!("{user}:{r}@{host}"),
                        None => format!("{user}@{host}"),
                    }
                }
                None => authority.to_owned(),
            },
            None => authority.to_owned(),
        };
        let (path, query) = match tail.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (tail, None),
        };
        let query = query.map(|q| {
            let (q, in_query) = rewrite_words(q, '&', replacement);
            found = found.take().or(in_query.map(|p| percent_decode(&p)));
            q
        });
        match query {
            Some(q) if !q.is_empty() => format!("{scheme}{authority}{path}?{q}"),
            _ => format!("{scheme}{authority}{path}"),
        }
    } else {
        match keywords(url) {
            // The keyword form, read the way libpq reads it (spaces around
            // `=`, quoted values), so that no spelling of the password
            // stays behind on a tool's command line.
            Some(pairs) => {
                let mut words = Vec::with_capacity(pairs.len());
                for (key, value) in pairs {
                    if key.eq_ignore_ascii_case("password") {
                        found = Some(value);
                        if let Some(r) = replacement {
                            words.push(format!("password={r}"));
                        }
                    } else {
                        words.push(format!("{key}={}", quote_value(&value)));
                    }
                }
                words.join(" ")
            }
            None => {
                let (text, in_words) = rewrite_words(url, ' ', replacement);
                found = in_words;
                text
            }
        }
    };
    (rewritten, found)
}

/// The `key = value` pairs of a libpq keyword string, values unquoted and
/// unescaped; `None` when it does not parse (libpq would refuse it too).
fn keywords(text: &str) -> Option<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(pairs);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if key.is_empty() || chars.next() != Some('=') {
            return None;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            loop {
                match chars.next()? {
                    '\\' => value.push(chars.next()?),
                    '\'' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                chars.next();
                if c == '\\' {
                    value.push(chars.next()?);
                } else {
                    value.push(c);
                }
            }
        }
        pairs.push((key, value));
    }
}

/// A keyword value as libpq reads it back: as it is when it can be,
/// otherwise quoted with `\` and `'` escaped.
fn quote_value(value: &str) -> String {
    let plain = !value.is_empty()
        && !value
            .chars()
            .any(|c| c.is_whitespace() || c == '\'' || c == '\\');
    if plain {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
    }
}

/// Rewrites `password=...` among `sep`-separated words (URL query
/// parameters or libpq keywords).
fn rewrite_words(text: &str, sep: char, replacement: Option<&str>) -> (String, Option<String>) {
    let mut found = None;
    let mut words = Vec::new();
    for w in text.split(sep) {
        if w.to_ascii_lowercase().starts_with("password=") {
            found = Some(w["password=".len()..].to_owned());
            if let Some(r) = replacement {
                words.push(format!("password={r}"));
            }
        } else {
            words.push(w.to_owned());
        }
    }
    (words.join(&sep.to_string()), found)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tools_run_without_the_databases_timeouts_and_keep_the_urls_options() {
        let mut config = tokio_postgres::Config::new();
        config.host("/run/postgresql").options("-c search_path=app");
        let env = tool_env(&config, "app");
        let options = &env.iter().find(|(k, _)| *k == "PGOPTIONS").unwrap().1;
        assert!(options.starts_with("-c search_path=app "), "{options}");
        assert!(options.contains("statement_timeout=0"), "{options}");
        assert!(options.contains("lock_timeout=0"), "{options}");
        config.options(options.as_str());
        let again = tool_env(&config, "app");
        let again = &again.iter().find(|(k, _)| *k == "PGOPTIONS").unwrap().1;
        assert_eq!(again, options, "not repeated");
    }

    #[test]
    fn no_spelling_of_a_password_reaches_debug() {
        for url in [
            "postgresql://app:hunter2@db.example/app",
            "postgresql://app@/app?host=/run/postgresql&password=hunter2",
            "host=/run/postgresql user=app password=hunter2 dbname=app",
            "host=/run/postgresql user=app password = hunter2 dbname=app",
            "host=/run/postgresql user=app password='hunter2 x' dbname=app",
            "postgresql://app:hunter%32@db/app",
            "not a url password=hunter2 '",
        ] {
            let shown = format!("{:?}", DatabaseUrl::new(url.into()));
            assert!(
                !shown.contains("hunter") && !shown.contains("%32"),
                "{url} -> {shown}"
            );
        }
        let shown = format!(
            "{:?}",
            DatabaseUrl::new("postgresql://app:hunter2@db.example:5433/app".into())
        );
        assert_eq!(
            shown,
            "\"user=app host=db.example port=5433 dbname=app password=***\""
        );
    }

    #[test]
    fn every_spelling_of_a_keyword_password_is_split_out() {
        for (url, password) in [
            (
                "host=/run/pg user=app password=hunter2 dbname=app",
                "hunter2",
            ),
            (
                "host=/run/pg user=app password = hunter2 dbname=app",
                "hunter2",
            ),
            (
                "host=/run/pg user=app password='hunter 2' dbname=app",
                "hunter 2",
            ),
            (r"host=/run/pg password='it\'s' dbname=app", "it's"),
            ("host=/run/pg PASSWORD =hunter2", "hunter2"),
        ] {
            let (rest, found) = split_password(url);
            assert_eq!(found.as_deref(), Some(password), "{url}");
            assert!(!rest.contains(password), "{url} -> {rest}");
            assert!(!rest.to_ascii_lowercase().contains("password"), "{rest}");
            // What remains still means the same to libpq.
            let parsed: tokio_postgres::Config = rest.parse().unwrap();
            assert_eq!(parsed.get_dbname().is_some(), url.contains("dbname"));
            assert!(!redact_url(url).contains(password), "{url}");
        }
    }

    #[test]
    fn passwords_are_redacted_and_split_out() {
        let url = "postgresql://app:s%40cret@db.example/app?sslmode=disable";
        assert_eq!(
            redact_url(url),
            "postgresql://app:***@db.example/app?sslmode=disable"
        );
        assert_eq!(
            split_password(url),
            (
                "postgresql://app@db.example/app?sslmode=disable".into(),
                Some("s@cret".into())
            )
        );
        let q = "postgresql:///app?password=pw&host=/run/postgresql";
        assert_eq!(
            redact_url(q),
            "postgresql:///app?password=***&host=/run/postgresql"
        );
        assert_eq!(
            split_password(q),
            (
                "postgresql:///app?host=/run/postgresql".into(),
                Some("pw".into())
            )
        );
        assert_eq!(
            split_password("host=/tmp dbname=app password=x user=u"),
            ("host=/tmp dbname=app user=u".into(), Some("x".into()))
        );
        assert_eq!(
            split_password("postgresql:///app"),
            ("postgresql:///app".into(), None)
        );
        assert_eq!(
            split_password("postgresql:///app?password=%zz%"),
            ("postgresql:///app".into(), Some("%zz%".into()))
        );
    }
}
