//! Settings that hold a secret are kept in types whose `Debug` cannot show
//! it, so `Config` can derive `Debug` (and so list every setting, a new one
//! included) and still be logged whole. A connection URL may hold a
//! password: `DatabaseUrl` shows only the parts of it that are not secret,
//! taken from the parsed settings rather than by editing the text, so no
//! spelling of a password (a keyword string, quotes, a query parameter) can
//! slip through.

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
