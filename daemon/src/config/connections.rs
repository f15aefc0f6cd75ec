//! The connection limits: how many clients the daemon serves at once, how
//! many of those one user may hold, how many only administrators may take,
//! and how long a greeted connection may sit idle. Together they keep one
//! user (or a peer with no grant at all) from locking everybody else out;
//! `connection::admission` applies them.

use std::time::Duration;

use super::source::Source;
use super::ConfigError;

/// Connections served at once unless configured. Each costs a task, a
/// descriptor and about 128 KiB at most while it transfers.
pub const DEFAULT_MAX_CONNECTIONS: u64 = 256;
pub(super) const MAX_MAX_CONNECTIONS: u64 = 4096;

/// A greeted connection with nothing running is closed after this long
/// unless configured.
pub const DEFAULT_IDLE_TIMEOUT_SECONDS: u64 = 300;
pub(super) const MAX_IDLE_TIMEOUT_SECONDS: u64 = 86_400;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections served at once, by everyone.
    pub max_connections: usize,
    /// Connections one uid may hold at once, unless it is an admin.
    pub max_per_uid: usize,
    /// Of `max_connections`, how many only admins may take: the last ones,
    /// so that an administrator gets in when everybody else's are used.
    pub admin_reserved: usize,
    /// A greeted connection with no request running, no transfer and no
    /// unread answer is closed after this long without traffic.
    pub idle_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> ConnectionLimits {
        let max = DEFAULT_MAX_CONNECTIONS as usize;
        ConnectionLimits {
            max_connections: max,
            max_per_uid: default_per_uid(max),
            admin_reserved: default_admin_reserved(max),
            idle_timeout: Duration::from_secs(DEFAULT_IDLE_TIMEOUT_SECONDS),
        }
    }
}

/// An eighth of all connections (32 of 256): far more than a client needs
/// (berkutctl uses one, an application a small pool and a watch), yet eight
/// users at their cap still leave room for the rest.
fn default_per_uid(max: usize) -> usize {
    (max / 8).max(1)
}

/// A sixteenth of all connections (16 of 256), at least one: enough for an
/// administrator's shell, scripts and monitoring when everything else is
/// taken.
fn default_admin_reserved(max: usize) -> usize {
    (max / 16).max(1)
}

/// Loads the limits through their declarations (`settings.rs`: the
/// ranges of the total and the idle time), then checks what depends on the
/// total: a user's cap and the admins' reserve, which leaves room for
/// everybody else.
pub(super) fn load(src: &Source) -> Result<ConnectionLimits, ConfigError> {
    let max = src.number("max_connections")? as usize;
    let (per_uid, origin) =
        src.number_or("max_connections_per_uid", default_per_uid(max) as u64)?;
    if !(1..=max as u64).contains(&per_uid) {
        return Err(origin.invalid(format!("must be between 1 and max_connections ({max})")));
    }
    let (reserved, origin) = src.number_or(
        "admin_reserved_connections",
        default_admin_reserved(max) as u64,
    )?;
    if !(1..max as u64).contains(&reserved) {
        return Err(origin.invalid(format!(
            "must be at least 1 and less than max_connections ({max}), \
             so that administrators and everybody else both get in"
        )));
    }
    let idle = src.number("idle_timeout_seconds")?;
    Ok(ConnectionLimits {
        max_connections: max,
        max_per_uid: per_uid as usize,
        admin_reserved: reserved as usize,
        idle_timeout: Duration::from_secs(idle),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_FILE: &str = "";

    /// Loads the limits from `pairs` (the environment) and `file` (TOML).
    fn load_with(pairs: &[(&str, &str)], file: &str) -> Result<ConnectionLimits, ConfigError> {
        let env: super::super::Env = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let path = std::path::Path::new("berkutd.toml");
        load(&Source::parse(file, path, &env)?)
    }

    fn limits(pairs: &[(&str, &str)]) -> Result<ConnectionLimits, ConfigError> {
        load_with(pairs, NO_FILE)
    }

    #[test]
    fn the_file_gives_values_and_the_environment_wins() {
        let file = || {
            "max_connections = 100\nmax_connections_per_uid = 5\n\
             admin_reserved_connections = 10\nidle_timeout_seconds = 60\n"
        };
        let l = load_with(&[], file()).unwrap();
        assert_eq!(
            (
                l.max_connections,
                l.max_per_uid,
                l.admin_reserved,
                l.idle_timeout
            ),
            (100, 5, 10, Duration::from_secs(60))
        );
        let l = load_with(&[("BERKUT_IDLE_TIMEOUT_SECONDS", "7")], file()).unwrap();
        assert_eq!(l.idle_timeout, Duration::from_secs(7));
        // The derived defaults follow a configured total.
        let l = load_with(&[], "max_connections = 64\n").unwrap();
        assert_eq!((l.max_per_uid, l.admin_reserved), (8, 4));
    }

    #[test]
    fn defaults_leave_room_for_admins_and_scale_with_the_total() {
        let l = limits(&[]).unwrap();
        assert_eq!(l, ConnectionLimits::default());
        assert_eq!(
            (l.max_connections, l.max_per_uid, l.admin_reserved),
            (256, 32, 16)
        );
        assert_eq!(l.idle_timeout, Duration::from_secs(300));
        let small = limits(&[("BERKUT_MAX_CONNECTIONS", "8")]).unwrap();
        assert_eq!((small.max_per_uid, small.admin_reserved), (1, 1));
    }

    #[test]
    fn out_of_range_values_are_refused_with_the_setting_named() {
        for (name, value) in [
            ("BERKUT_MAX_CONNECTIONS", "1"),
            ("BERKUT_MAX_CONNECTIONS", "5000"),
            ("BERKUT_MAX_CONNECTIONS", "many"),
            ("BERKUT_MAX_CONNECTIONS_PER_UID", "0"),
            ("BERKUT_MAX_CONNECTIONS_PER_UID", "257"),
            ("BERKUT_ADMIN_RESERVED_CONNECTIONS", "0"),
            ("BERKUT_ADMIN_RESERVED_CONNECTIONS", "256"),
            ("BERKUT_IDLE_TIMEOUT_SECONDS", "0"),
            ("BERKUT_IDLE_TIMEOUT_SECONDS", "86401"),
        ] {
            let err = limits(&[(name, value)]).unwrap_err().to_string();
            assert!(err.starts_with(name), "{name}={value}: {err}");
        }
        let ok = limits(&[
            ("BERKUT_MAX_CONNECTIONS", "10"),
            ("BERKUT_MAX_CONNECTIONS_PER_UID", "10"),
            ("BERKUT_ADMIN_RESERVED_CONNECTIONS", "9"),
            ("BERKUT_IDLE_TIMEOUT_SECONDS", "1"),
        ])
        .unwrap();
        assert_eq!((ok.max_per_uid, ok.admin_reserved), (10, 9));
    }
}
