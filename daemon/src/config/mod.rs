//! The daemon's configuration: a TOML file whose every key can also come from
//! the environment, the environment winning. Everything is validated here,
//! once, so the rest of the daemon works with values it can trust. Every
//! setting is declared once, in `settings.rs`, and read through its
//! declaration (`Source`); `Config::load` only adds what ties settings
//! together (defaults that follow others, checks across them). Key
//! material is held only as `MasterKey`, which never prints its bytes.

mod access;
pub mod compression;
mod connections;
pub mod drill;
mod file_roots;
mod key;
pub mod notify;
mod reload;
pub mod remote;
mod settings;
pub mod smoke;
mod source;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use berkut_proto::archive::Keyring;

use crate::auth::{Grant, Subject};
use source::Source;

pub use crate::db::DatabaseUrl;
pub use connections::{ConnectionLimits, DEFAULT_MAX_CONNECTIONS};
pub use file_roots::{
    matching as excluded_by, resolve as resolve_file_root, FileRoot, FileRootEntry,
};
pub use key::load_dev_key;
pub use settings::{Reload, Setting, SETTINGS};

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
    /// A bad value, with where it came from: an environment variable, or
    /// a key in the file (`max_parallel in /etc/berkut/berkutd.toml`).
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
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

/// The validated configuration. Cloning it copies the key, which zeroes
/// its copy when dropped like the original. Every field but `dev` holds a
/// setting declared in `settings::SETTINGS`, whence its `Debug`, which
/// lists every setting and shows no secret.
#[derive(Clone)]
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
    /// Where the primary key was read from, when from a file.
    pub encryption_key_file: Option<PathBuf>,
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
    /// Directories archived when a backup asks for `include_files`: every
    /// root, from `file_roots` and from `[[file_root]]`.
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
    /// Where off-site copies go (`[[remote]]`), none by default.
    pub remotes: Vec<remote::RemoteConfig>,
    /// How long the newest successful backup may wait for its off-site
    /// copy before `status` flags the off-site RPO as missed.
    pub offsite_rpo: Duration,
    /// The wait after a first failed upload; doubled with each attempt.
    pub remote_retry: Duration,
    /// The operator's `[[smoke_check]]` queries, run in every restored
    /// database before it is trusted.
    pub smoke_checks: Vec<smoke::SmokeCheck>,
    /// The statement timeout of each smoke check.
    pub smoke_check_timeout: Duration,
    /// How long the newest successful backup may go without a drill
    /// verdict before `status` calls the drill overdue.
    pub drill_overdue: Duration,
    /// The recovery time objective a drill is measured against.
    pub rto_target: Duration,
    /// When the daemon drills by itself (`[drill]`).
    pub drill: drill::DrillPolicy,
    /// How many drills' evidence is kept per backup.
    pub evidence_keep_drills: usize,
    /// How long a real restore's evidence is kept.
    pub evidence_keep_restore_days: u32,
    /// How backups store their parts (`compression`, with
    /// `compression_threads` zstd workers).
    pub compression: berkut_proto::archive::Compression,
    /// Each of `file_roots` with its rules (exclude globs, redaction).
    pub file_rules: Vec<FileRoot>,
    /// Words that make a key look like a secret, beyond the built-in ones.
    pub redact_keys: Vec<String>,
    /// A file larger than this is not archived (and the manifest says so).
    pub file_max_bytes: u64,
    /// A backup whose files would take more than this is refused.
    pub files_max_total_bytes: u64,
    /// Where node_exporter's textfile collector finds the metrics.
    pub metrics_textfile: Option<PathBuf>,
    /// Where events are delivered (`[[notify]]`).
    pub notify: Vec<notify::Sink>,
}

/// A source of environment variables, injectable for tests.
pub type Env = HashMap<String, String>;

impl Config {
    /// Loads the configuration from an optional file and the process
    /// environment.
    pub fn from_process(file: Option<&Path>, dev: bool) -> Result<Config, ConfigError> {
        Self::load(file, &std::env::vars().collect(), dev)
    }

    /// Loads every setting through its declaration (`settings::SETTINGS`):
    /// the environment first, then the file, then the default.
    pub fn load(file: Option<&Path>, env: &Env, dev: bool) -> Result<Config, ConfigError> {
        let src = Source::new(file, env)?;

        // `--dev` keeps its state, backups and socket in one local directory.
        let base = PathBuf::from(DEV_DIR);
        let local = |key: &str, dev_name: &str| -> Result<PathBuf, ConfigError> {
            Ok(match src.path(key)? {
                Some(path) => path,
                None if dev => base.join(dev_name),
                None => src.text_or_default(key)?.into(),
            })
        };
        let state_dir = local("state_dir", "state")?;
        let backup_path = local("backup_path", "backups")?;
        let socket = local("socket", "berkutd.sock")?;
        let pg_dump_bin = PathBuf::from(src.text_or_default("pg_dump_bin")?);
        let beside_pg_dump = |key: &str, name: &str| -> Result<PathBuf, ConfigError> {
            Ok(src
                .path(key)?
                .unwrap_or_else(|| sibling(&pg_dump_bin, name)))
        };
        let pg_dumpall_bin = beside_pg_dump("pg_dumpall_bin", "pg_dumpall")?;
        let pg_restore_bin = beside_pg_dump("pg_restore_bin", "pg_restore")?;
        let psql_bin = beside_pg_dump("psql_bin", "psql")?;
        let restore_jobs = src.number("restore_jobs")?;
        let url = |key: &str| -> Result<Option<DatabaseUrl>, ConfigError> {
            let Some((url, origin)) = src.text(key)? else {
                return Ok(None);
            };
            url.parse::<tokio_postgres::Config>()
                .map_err(|_| origin.invalid("is not a valid libpq connection URL or string"))?;
            // The tools get the URL on their command line, which every local
            // user can read, and the password in their environment: a
            // password the daemon cannot take out of the URL is refused.
            let (rest, _) = crate::db::split_password(&url);
            let left = rest
                .parse::<tokio_postgres::Config>()
                .map(|c| c.get_password().is_some())
                .unwrap_or(true);
            if left {
                return Err(origin.invalid(
                    "holds its password in a form berkutd cannot take out of it for the tools' \
                     command line; percent-encode the password (? as %3F, / as %2F, @ as %40) \
                     or write the password parameter unencoded",
                ));
            }
            Ok(Some(DatabaseUrl::new(url)))
        };
        let drill_database_url = url("drill_database_url")?;
        let max_parallel = src.number("max_parallel")?;
        let upload_max_bytes = src.number("upload_max_bytes")?;
        let database_url = match url("database_url")? {
            Some(url) => url,
            None if dev => DatabaseUrl::new("postgresql:///postgres?host=/run/postgresql".into()),
            None => return Err(ConfigError::MissingDatabase),
        };
        let file_roots = match src.paths("file_roots")? {
            Some((roots, origin)) => {
                if roots.iter().any(|root| !root.is_absolute()) {
                    return Err(origin.invalid("every file root must be an absolute path"));
                }
                roots
            }
            None => Vec::new(),
        };
        let mut file_rules: Vec<FileRoot> = file_roots.into_iter().map(FileRoot::plain).collect();
        if let Some((value, origin)) = src.file_value("file_root") {
            let entries: Vec<file_roots::FileRootEntry> = value.try_into().map_err(|e| {
                origin.invalid(format!(
                    "must be [[file_root]] entries: {}",
                    e.message().lines().next().unwrap_or("not valid")
                ))
            })?;
            for entry in entries {
                file_rules.push(file_roots::resolve(entry).map_err(|m| origin.invalid(m))?);
            }
        }
        let mut seen = std::collections::HashSet::new();
        for rule in &file_rules {
            if !seen.insert(&rule.path) {
                return Err(ConfigError::Invalid {
                    origin: "file_roots and [[file_root]]".into(),
                    message: format!("the root {} is configured twice", rule.path.display()),
                });
            }
        }
        let file_roots: Vec<PathBuf> = file_rules.iter().map(|r| r.path.clone()).collect();
        let redact_keys = match src.file_value("redact_keys") {
            Some((value, origin)) => {
                let words: Vec<String> = value
                    .try_into()
                    .map_err(|_| origin.invalid("must be a list of strings"))?;
                file_roots::secret_words(words).map_err(|m| origin.invalid(m))?
            }
            None => Vec::new(),
        };
        let file_max_bytes = src.number("file_max_bytes")?;
        let files_max_total_bytes = src.number("files_max_total_bytes")?;
        let log_level = src.text_or_default("log_level")?;
        if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&log_level) {
            let origin = src.text("log_level")?.map(|(_, origin)| origin);
            let origin = origin.unwrap_or(source::Origin::Default("log_level"));
            return Err(origin.invalid(format!("is not a log filter: {e}")));
        }
        let grace = src.number("shutdown_grace_seconds")?;
        let count_rows = src.flag("count_rows")?;

        let key_text = src.text("encryption_key")?.map(|(text, _)| text);
        let encryption_key_file = src.path("encryption_key_file")?;
        let dev_key = base.join("dev.key");
        let primary = key::primary(
            key_text,
            encryption_key_file.as_deref(),
            dev.then_some(dev_key.as_path()),
        )?;

        // Older keys stay usable for reading until every archive has been
        // rewrapped under the primary one.
        let old_key_files = src.paths("old_key_files")?.map(|(paths, _)| paths);
        let mut keyring = Keyring::new(primary);
        for path in old_key_files.unwrap_or_default() {
            keyring = keyring.with_other(key::read_key_file(&path)?);
        }
        let access = match src.file_value("access") {
            Some((value, origin)) => {
                let entries: Vec<access::AccessEntry> = value.try_into().map_err(|e| {
                    origin.invalid(format!(
                        "must be [[access]] entries: {}",
                        e.message().lines().next().unwrap_or("not valid")
                    ))
                })?;
                entries
                    .iter()
                    .map(|entry| access::resolve(entry).map_err(|m| origin.invalid(m)))
                    .collect::<Result<Vec<_>, _>>()?
            }
            None => Vec::new(),
        };
        let socket_group = match src.text("socket_group")? {
            Some((name, origin)) => match nix::unistd::Group::from_name(&name) {
                Ok(Some(g)) => Some(g.gid.as_raw()),
                _ => return Err(origin.invalid(format!("there is no group {name:?}"))),
            },
            None => None,
        };
        let audit_max_bytes = src.number("audit_max_bytes")?;
        let restore_analyze = src.flag("restore_analyze")?;
        let connections = connections::load(&src)?;
        // At least two files' worth, so a rotation keeps the file it
        // rotated; 1 GiB by default, 16 files of the default size.
        let (audit_keep_bytes, origin) = src.number_or(
            "audit_keep_bytes",
            (1u64 << 30).max(audit_max_bytes.saturating_mul(2)),
        )?;
        if audit_keep_bytes < audit_max_bytes.saturating_mul(2) {
            return Err(origin.invalid(format!(
                "must be at least twice audit_max_bytes ({audit_max_bytes})"
            )));
        }
        let audit_burst_seconds = src.number("audit_burst_seconds")?;
        let remotes = match src.file_value("remote") {
            Some((value, origin)) => {
                let entries: Vec<remote::RemoteEntry> = value.try_into().map_err(|e| {
                    origin.invalid(format!(
                        "must be [[remote]] entries: {}",
                        e.message().lines().next().unwrap_or("not valid")
                    ))
                })?;
                remote::resolve(&entries).map_err(|m| origin.invalid(m))?
            }
            None => Vec::new(),
        };
        let offsite_rpo = Duration::from_secs(src.number("offsite_rpo_seconds")?);
        let remote_retry = Duration::from_secs(src.number("remote_retry_seconds")?);
        let smoke_checks = match src.file_value("smoke_check") {
            Some((value, origin)) => smoke::parse(value).map_err(|m| origin.invalid(m))?,
            None => Vec::new(),
        };
        let smoke_check_timeout = src.number("smoke_check_timeout_seconds")?;
        let drill_overdue_hours = src.number("drill_overdue_hours")?;
        let rto_target_minutes = src.number("rto_target_minutes")?;
        let evidence_keep_drills = src.number("evidence_keep_drills")?;
        let evidence_keep_restore_days = src.number("evidence_keep_restore_days")?;
        let drill = match src.file_value("drill") {
            Some((value, origin)) => drill::parse(value).map_err(|m| origin.invalid(m))?,
            None => drill::DrillPolicy::default(),
        };
        let compression_threads = src.number("compression_threads")? as u32;
        let compression = {
            let text = src.text_or_default("compression")?;
            compression::parse(&text, compression_threads).map_err(|m| {
                let origin = src.text("compression").ok().flatten().map(|(_, o)| o);
                origin
                    .unwrap_or(source::Origin::Default("compression"))
                    .invalid(m)
            })?
        };
        let metrics_textfile = match src.text("metrics_textfile")? {
            Some((text, origin)) => {
                let path = PathBuf::from(text);
                crate::metrics::textfile::check(&path).map_err(|m| origin.invalid(m))?;
                Some(path)
            }
            None => None,
        };
        let notify = match src.file_value("notify") {
            Some((value, origin)) => {
                let entries: Vec<notify::NotifyEntry> = value.try_into().map_err(|e| {
                    origin.invalid(format!(
                        "must be [[notify]] entries: {}",
                        e.message().lines().next().unwrap_or("not valid")
                    ))
                })?;
                if entries.len() > notify::MAX_SINKS {
                    return Err(
                        origin.invalid(format!("at most {} [[notify]] entries", notify::MAX_SINKS))
                    );
                }
                entries
                    .iter()
                    .enumerate()
                    .map(|(i, entry)| {
                        notify::resolve(entry)
                            .map_err(|m| origin.invalid(format!("entry {}: {m}", i + 1)))
                    })
                    .collect::<Result<Vec<_>, _>>()?
            }
            None => Vec::new(),
        };
        Ok(Config {
            compression,
            metrics_textfile,
            notify,
            restore_analyze,
            access,
            audit_max_bytes,
            socket_group,
            backup_path,
            keyring,
            encryption_key_file,
            pg_dump_bin,
            pg_dumpall_bin,
            max_parallel: max_parallel as usize,
            upload_max_bytes,
            database_url,
            socket,
            state_dir,
            file_roots,
            log_level,
            shutdown_grace: Duration::from_secs(grace),
            count_rows,
            pg_restore_bin,
            psql_bin,
            restore_jobs: restore_jobs as u32,
            drill_database_url,
            dev,
            connections,
            audit_keep_bytes,
            audit_burst: Duration::from_secs(audit_burst_seconds),
            remotes,
            offsite_rpo,
            remote_retry,
            file_rules,
            redact_keys,
            file_max_bytes,
            files_max_total_bytes,
            smoke_checks,
            smoke_check_timeout: Duration::from_secs(smoke_check_timeout),
            drill_overdue: Duration::from_secs(drill_overdue_hours * 3600),
            rto_target: Duration::from_secs(rto_target_minutes * 60),
            drill,
            evidence_keep_drills: evidence_keep_drills as usize,
            evidence_keep_restore_days: evidence_keep_restore_days as u32,
        })
    }

    /// The database URL with any password replaced, fit for a log line.
    pub fn redacted_database_url(&self) -> String {
        self.database_url.redacted()
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
