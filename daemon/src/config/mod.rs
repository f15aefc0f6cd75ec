//! The daemon's configuration: a TOML file whose every key can also come from
//! the environment, the environment winning. Everything is validated here,
//! once, so the rest of the daemon works with values it can trust. Key
//! material is held only as `MasterKey`, which never prints its bytes.

mod access;
mod connections;
mod key;
mod reload;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use berkut_proto::archive::Keyring;

use crate::auth::{Grant, Subject};
use access::AccessEntry;
use serde::Deserialize;

pub use crate::db::DatabaseUrl;
pub use connections::{ConnectionLimits, DEFAULT_MAX_CONNECTIONS};
pub use key::load_dev_key;

/// Where `--dev` keeps everything, relative to the working directory.
pub const DEV_DIR: &str = ".berkut-dev";

/// The socket both berkutd and berkutctl use unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/berkut/berkutd.sock";

/// How long running jobs may go on after SIGTERM unless configured. The
/// unit's `TimeoutStopSec=` must leave room for it.
pub const DEFAULT_SHUTDOWN_GRACE_SECONDS: u64 = 30;
const MAX_SHUTDOWN_GRACE_SECONDS: u64 = 3600;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the configuration file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{name}: {message}")]
    Invalid { name: &'static str, message: String },
    #[error(
        "no encryption key configured: set BERKUT_BACKUP_ENCRYPTION_KEY (or \
         BACKUP_ENCRYPTION_KEY, or encryption_key_file in the configuration) to 32 random \
         bytes in base64 or hex; make one with `berkutctl key generate`. Only `berkutd --dev` \
         runs without a key."
    )]
    MissingKey,
    #[error(
        "no database configured: set BERKUT_DATABASE_URL (or database_url in the \
         configuration), e.g. postgresql://berkut@/app?host=/run/postgresql"
    )]
    MissingDatabase,
    #[error("{0}")]
    Key(String),
}

/// The file's shape. Every key is optional here; defaults and the
/// environment are applied in `Config::load`.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    backup_path: Option<PathBuf>,
    encryption_key: Option<String>,
    encryption_key_file: Option<PathBuf>,
    pg_dump_bin: Option<PathBuf>,
    pg_dumpall_bin: Option<PathBuf>,
    max_parallel: Option<u64>,
    upload_max_bytes: Option<u64>,
    database_url: Option<String>,
    socket: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    file_roots: Option<Vec<PathBuf>>,
    log_level: Option<String>,
    shutdown_grace_seconds: Option<u64>,
    count_rows: Option<bool>,
    pg_restore_bin: Option<PathBuf>,
    psql_bin: Option<PathBuf>,
    restore_jobs: Option<u64>,
    drill_database_url: Option<String>,
    old_key_files: Option<Vec<PathBuf>>,
    access: Option<Vec<AccessEntry>>,
    audit_max_bytes: Option<u64>,
    socket_group: Option<String>,
    restore_analyze: Option<bool>,
    // Connection limits (see `connections`).
    max_connections: Option<u64>,
    max_connections_per_uid: Option<u64>,
    admin_reserved_connections: Option<u64>,
    idle_timeout_seconds: Option<u64>,
    // The audit directory's bound and the burst window (issue 10).
    audit_keep_bytes: Option<u64>,
    audit_burst_seconds: Option<u64>,
}

/// The validated configuration. Cloning it copies the key, which zeroes
/// its copy when dropped like the original. `Debug` is derived, so it lists
/// every setting; a setting that holds a secret must be of a type whose
/// `Debug` hides it (`MasterKey`, `DatabaseUrl`).
#[derive(Clone, Debug)]
pub struct Config {
    /// Who may do what (`[[access]]` entries, resolved to ids at load).
    pub access: Vec<(Subject, Grant)>,
    /// The audit file is rotated when it would pass this size.
    pub audit_max_bytes: u64,
    /// The group the socket file is given (mode 0660), when the daemon
    /// binds it itself; systemd's socket unit sets it otherwise.
    pub socket_group: Option<u32>,
    /// Directory holding the `.bscc` archives.
    pub backup_path: PathBuf,
    pub keyring: Keyring,
    pub pg_dump_bin: PathBuf,
    pub pg_dumpall_bin: PathBuf,
    pub max_parallel: usize,
    pub upload_max_bytes: u64,
    /// A libpq connection URL; may hold a password, so it is never logged
    /// as is (see `redacted_database_url`; its `Debug` hides the password).
    pub database_url: DatabaseUrl,
    pub socket: PathBuf,
    /// Directory for the catalogue and other state.
    pub state_dir: PathBuf,
    /// Directories archived when a backup asks for `include_files`.
    pub file_roots: Vec<PathBuf>,
    /// A `tracing` filter (`info`, `warn,berkut_daemon=debug`, ...),
    /// checked when loaded; `RUST_LOG`, when set, overrides it.
    pub log_level: String,
    /// How long a stopping daemon lets running jobs finish before it
    /// cancels them.
    pub shutdown_grace: Duration,
    /// Whether backups record exact per-table row counts (taken in the
    /// dump's own snapshot) for restores to check against. Counting scans
    /// every table once more; very large databases may turn it off.
    pub count_rows: bool,
    pub pg_restore_bin: PathBuf,
    pub psql_bin: PathBuf,
    /// `pg_restore -j`: parallel jobs for the data and post-data sections.
    pub restore_jobs: u32,
    /// A separate server for dry-runs (restore drills), so they do not load
    /// the live one; the live server when absent.
    pub drill_database_url: Option<DatabaseUrl>,
    /// Development mode: generated key, local directories, loud warnings.
    pub dev: bool,
    /// Whether a restore gathers planner statistics (ANALYZE) on the new
    /// database before it goes live.
    pub restore_analyze: bool,
    /// How many connections, how many per user, how many kept for
    /// admins, and how long one may sit idle.
    pub connections: ConnectionLimits,
    /// The most the audit files may take together; the oldest are removed
    /// past it.
    pub audit_keep_bytes: u64,
    /// How long a burst of identical denials is collapsed into one audit
    /// event (zero: never).
    pub audit_burst: Duration,
}

/// A source of environment variables, injectable for tests.
pub type Env = HashMap<String, String>;

impl Config {
    /// Loads the configuration from an optional file and the process
    /// environment.
    pub fn from_process(file: Option<&Path>, dev: bool) -> Result<Config, ConfigError> {
        Self::load(file, &std::env::vars().collect(), dev)
    }

    pub fn load(file: Option<&Path>, env: &Env, dev: bool) -> Result<Config, ConfigError> {
        let fc = match file {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let var = |name: &str| env.get(name).filter(|v| !v.is_empty()).cloned();
        let path_var = |name: &str| var(name).map(PathBuf::from);

        let base = PathBuf::from(DEV_DIR);
        let state_dir = path_var("BERKUT_STATE_DIR")
            .or(fc.state_dir)
            .unwrap_or_else(|| {
                if dev {
                    base.join("state")
                } else {
                    "/var/lib/berkut".into()
                }
            });
        let backup_path = path_var("BERKUT_BACKUP_PATH")
            .or(fc.backup_path)
            .unwrap_or_else(|| {
                if dev {
                    base.join("backups")
                } else {
                    "/var/lib/berkut/backups".into()
                }
            });
        let socket = path_var("BERKUT_SOCKET").or(fc.socket).unwrap_or_else(|| {
            if dev {
                base.join("berkutd.sock")
            } else {
                DEFAULT_SOCKET.into()
            }
        });
        let pg_dump_bin = path_var("BERKUT_BACKUP_PGDUMP_BIN")
            .or(fc.pg_dump_bin)
            .unwrap_or_else(|| "pg_dump".into());
        let pg_dumpall_bin = path_var("BERKUT_BACKUP_PGDUMPALL_BIN")
            .or(fc.pg_dumpall_bin)
            .unwrap_or_else(|| sibling(&pg_dump_bin, "pg_dumpall"));
        let pg_restore_bin = path_var("BERKUT_RESTORE_PGRESTORE_BIN")
            .or(fc.pg_restore_bin)
            .unwrap_or_else(|| sibling(&pg_dump_bin, "pg_restore"));
        let psql_bin = path_var("BERKUT_RESTORE_PSQL_BIN")
            .or(fc.psql_bin)
            .unwrap_or_else(|| sibling(&pg_dump_bin, "psql"));
        let restore_jobs = number(
            var("BERKUT_RESTORE_JOBS"),
            fc.restore_jobs,
            "BERKUT_RESTORE_JOBS",
            2,
        )?;
        if !(1..=64).contains(&restore_jobs) {
            return Err(invalid("BERKUT_RESTORE_JOBS", "must be between 1 and 64"));
        }
        let drill_database_url = var("BERKUT_DRILL_DATABASE_URL").or(fc.drill_database_url);
        if let Some(url) = &drill_database_url {
            url.parse::<tokio_postgres::Config>().map_err(|_| {
                invalid(
                    "BERKUT_DRILL_DATABASE_URL",
                    "is not a valid libpq connection URL or string",
                )
            })?;
        }
        let max_parallel = number(
            var("BERKUT_BACKUP_MAX_PARALLEL"),
            fc.max_parallel,
            "BERKUT_BACKUP_MAX_PARALLEL",
            2,
        )?;
        if !(1..=64).contains(&max_parallel) {
            return Err(invalid(
                "BERKUT_BACKUP_MAX_PARALLEL",
                "must be between 1 and 64",
            ));
        }
        let upload_max_bytes = number(
            var("BERKUT_BACKUP_UPLOAD_MAX_BYTES"),
            fc.upload_max_bytes,
            "BERKUT_BACKUP_UPLOAD_MAX_BYTES",
            10 * 1024 * 1024 * 1024,
        )?;
        if upload_max_bytes == 0 {
            return Err(invalid(
                "BERKUT_BACKUP_UPLOAD_MAX_BYTES",
                "must be greater than zero",
            ));
        }
        let database_url = match var("BERKUT_DATABASE_URL").or(fc.database_url) {
            Some(url) => url,
            None if dev => "postgresql:///postgres?host=/run/postgresql".into(),
            None => return Err(ConfigError::MissingDatabase),
        };
        database_url
            .parse::<tokio_postgres::Config>()
            .map_err(|_| {
                invalid(
                    "BERKUT_DATABASE_URL",
                    "is not a valid libpq connection URL or string",
                )
            })?;
        let file_roots = match var("BERKUT_BACKUP_FILE_ROOTS") {
            Some(list) => list
                .split(':')
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
                .collect(),
            None => fc.file_roots.unwrap_or_default(),
        };
        for root in &file_roots {
            if !root.is_absolute() {
                return Err(invalid(
                    "file_roots",
                    "every file root must be an absolute path",
                ));
            }
        }
        let log_level = var("BERKUT_LOG")
            .or(fc.log_level)
            .unwrap_or_else(|| "info".into());
        if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&log_level) {
            return Err(invalid("BERKUT_LOG", &format!("is not a log filter: {e}")));
        }
        let grace = number(
            var("BERKUT_SHUTDOWN_GRACE_SECONDS"),
            fc.shutdown_grace_seconds,
            "BERKUT_SHUTDOWN_GRACE_SECONDS",
            DEFAULT_SHUTDOWN_GRACE_SECONDS,
        )?;
        if grace > MAX_SHUTDOWN_GRACE_SECONDS {
            return Err(invalid(
                "BERKUT_SHUTDOWN_GRACE_SECONDS",
                &format!("must be at most {MAX_SHUTDOWN_GRACE_SECONDS} (an hour)"),
            ));
        }
        let count_rows = match var("BERKUT_BACKUP_COUNT_ROWS") {
            Some(text) => parse_bool(&text)
                .ok_or_else(|| invalid("BERKUT_BACKUP_COUNT_ROWS", "must be true or false"))?,
            None => fc.count_rows.unwrap_or(true),
        };

        let key_text = var("BERKUT_BACKUP_ENCRYPTION_KEY")
            .or_else(|| var("BACKUP_ENCRYPTION_KEY"))
            .or(fc.encryption_key);
        let key_file = path_var("BERKUT_BACKUP_ENCRYPTION_KEY_FILE").or(fc.encryption_key_file);
        let dev_key = base.join("dev.key");
        let primary = key::primary(
            key_text,
            key_file.as_deref(),
            dev.then_some(dev_key.as_path()),
        )?;

        // Older keys stay usable for reading until every archive has been
        // rewrapped under the primary one.
        let old_key_files: Vec<PathBuf> = match var("BERKUT_BACKUP_OLD_KEY_FILES") {
            Some(list) => list
                .split(':')
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
                .collect(),
            None => fc.old_key_files.unwrap_or_default(),
        };
        let mut keyring = Keyring::new(primary);
        for path in &old_key_files {
            keyring = keyring.with_other(key::read_key_file(path)?);
        }
        let access = match fc.access {
            Some(entries) => entries
                .iter()
                .map(access::resolve)
                .collect::<Result<Vec<_>, _>>()?,
            None => Vec::new(),
        };
        let socket_group = match var("BERKUT_SOCKET_GROUP").or(fc.socket_group) {
            Some(name) => match nix::unistd::Group::from_name(&name) {
                Ok(Some(g)) => Some(g.gid.as_raw()),
                _ => {
                    return Err(invalid(
                        "socket_group",
                        &format!("there is no group {name:?}"),
                    ))
                }
            },
            None => None,
        };
        let audit_max_bytes = number(
            var("BERKUT_AUDIT_MAX_BYTES"),
            fc.audit_max_bytes,
            "BERKUT_AUDIT_MAX_BYTES",
            64 << 20,
        )?;
        if audit_max_bytes < 4096 {
            return Err(invalid("BERKUT_AUDIT_MAX_BYTES", "must be at least 4096"));
        }
        let restore_analyze = match var("BERKUT_RESTORE_ANALYZE") {
            Some(text) => parse_bool(&text)
                .ok_or_else(|| invalid("BERKUT_RESTORE_ANALYZE", "must be true or false"))?,
            None => fc.restore_analyze.unwrap_or(true),
        };
        let connections = connections::load(
            var,
            connections::FileLimits {
                max_connections: fc.max_connections,
                max_connections_per_uid: fc.max_connections_per_uid,
                admin_reserved_connections: fc.admin_reserved_connections,
                idle_timeout_seconds: fc.idle_timeout_seconds,
            },
        )?;
        // At least two files' worth, so a rotation keeps the file it
        // rotated; 1 GiB by default, 16 files of the default size.
        let audit_keep_bytes = number(
            var("BERKUT_AUDIT_KEEP_BYTES"),
            fc.audit_keep_bytes,
            "BERKUT_AUDIT_KEEP_BYTES",
            (1u64 << 30).max(audit_max_bytes.saturating_mul(2)),
        )?;
        if audit_keep_bytes < audit_max_bytes.saturating_mul(2) {
            return Err(invalid(
                "BERKUT_AUDIT_KEEP_BYTES",
                "must be at least twice BERKUT_AUDIT_MAX_BYTES",
            ));
        }
        let audit_burst_seconds = number(
            var("BERKUT_AUDIT_BURST_SECONDS"),
            fc.audit_burst_seconds,
            "BERKUT_AUDIT_BURST_SECONDS",
            5,
        )?;
        if audit_burst_seconds > 60 {
            return Err(invalid(
                "BERKUT_AUDIT_BURST_SECONDS",
                "must be 0 to 60 seconds",
            ));
        }
        Ok(Config {
            restore_analyze,
            access,
            audit_max_bytes,
            socket_group,
            backup_path,
            keyring,
            pg_dump_bin,
            pg_dumpall_bin,
            max_parallel: max_parallel as usize,
            upload_max_bytes,
            database_url: DatabaseUrl::new(database_url),
            socket,
            state_dir,
            file_roots,
            log_level,
            shutdown_grace: Duration::from_secs(grace),
            count_rows,
            pg_restore_bin,
            psql_bin,
            restore_jobs: restore_jobs as u32,
            drill_database_url: drill_database_url.map(DatabaseUrl::new),
            dev,
            connections,
            audit_keep_bytes,
            audit_burst: Duration::from_secs(audit_burst_seconds),
        })
    }

    /// The database URL with any password replaced, fit for a log line.
    pub fn redacted_database_url(&self) -> String {
        self.database_url.redacted()
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        // toml's message quotes the offending line, which could be the key;
        // keep only the first line, which names the problem and position.
        message: e
            .message()
            .lines()
            .next()
            .unwrap_or("syntax error")
            .to_owned(),
    })
}

fn number(
    env: Option<String>,
    file: Option<u64>,
    name: &'static str,
    default: u64,
) -> Result<u64, ConfigError> {
    match env {
        Some(text) => text
            .trim()
            .parse()
            .map_err(|_| invalid(name, &format!("{text:?} is not a whole number"))),
        None => Ok(file.unwrap_or(default)),
    }
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

fn invalid(name: &'static str, message: &str) -> ConfigError {
    ConfigError::Invalid {
        name,
        message: message.to_owned(),
    }
}

/// `pg_dumpall` lives beside `pg_dump`; a bare name stays a bare name so that
/// PATH decides.
fn sibling(pg_dump: &Path, name: &str) -> PathBuf {
    match pg_dump.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join(name),
        _ => PathBuf::from(name),
    }
}

#[cfg(test)]
mod tests;
