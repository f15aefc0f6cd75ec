//! Every setting, declared once. A declaration says what the setting is
//! called in the file and in the environment, its default, the range of a
//! number, whether a reload applies it or it waits for a restart (and then
//! how the old value is kept), whether it holds a secret, and how its value
//! in force is shown. From this one table come: which keys the file may
//! hold, where a value is looked up (the environment first, then the file),
//! the range checks and the errors naming where a bad value came from
//! (`source.rs`), the `Debug` of `Config`, the reload's diff and merge
//! (`reload.rs`), and the README's settings table (a test compares them).
//!
//! Adding a setting: a field in `Config`, a line here, and reading it in
//! `Config::load` (`Source::number`, `text`, `path`, `flag`, `paths`).

use std::fmt;

use super::Config;

/// When a changed setting takes effect.
#[derive(Clone, Copy)]
pub enum Reload {
    /// It is read where it is used, from the configuration in force, so a
    /// reload applies it.
    Applies,
    /// It is woven into what the daemon built at start (the socket, the
    /// directories, the pools, the keys, the job semaphore): a reload puts
    /// the old value back with this function, and the log says it waits for
    /// a restart.
    Restart(fn(&mut Config, &Config)),
}

/// A setting's value when neither the environment nor the file gives one.
#[derive(Clone, Copy)]
pub enum Fallback {
    Number(u64),
    Flag(bool),
    Text(&'static str),
    /// None, or one that depends on other settings; the text says which
    /// (for the README) and `Config::load` computes it.
    Described(&'static str),
}

/// One setting. See the module's text.
#[derive(Clone, Copy)]
pub struct Setting {
    /// The key in the TOML file, and the name the log and README use.
    pub key: &'static str,
    /// The environment variables, the first one set winning; none when the
    /// setting comes only from the file.
    pub env: &'static [&'static str],
    /// How the environment spells it beyond its name, for the README.
    pub env_note: &'static str,
    pub fallback: Fallback,
    /// The smallest and largest number accepted.
    pub range: Option<(u64, u64)>,
    pub reload: Reload,
    /// Whether the value is a secret: `shown` must then show only what is
    /// not (a key id, a URL without its password).
    pub secret: bool,
    /// What the setting does, for the README.
    pub meaning: &'static str,
    /// The value in force, as `Debug` shows it and a reload compares it.
    pub shown: fn(&Config) -> String,
}

impl Setting {
    const fn new(
        key: &'static str,
        env: &'static [&'static str],
        fallback: Fallback,
        meaning: &'static str,
        shown: fn(&Config) -> String,
    ) -> Setting {
        Setting {
            key,
            env,
            env_note: "",
            fallback,
            range: None,
            reload: Reload::Applies,
            secret: false,
            meaning,
            shown,
        }
    }

    const fn range(self, min: u64, max: u64) -> Setting {
        Setting {
            range: Some((min, max)),
            ..self
        }
    }

    const fn restart(self, keep: fn(&mut Config, &Config)) -> Setting {
        Setting {
            reload: Reload::Restart(keep),
            ..self
        }
    }

    const fn secret(self) -> Setting {
        Setting {
            secret: true,
            ..self
        }
    }

    const fn env_note(self, env_note: &'static str) -> Setting {
        Setting { env_note, ..self }
    }

    pub fn restart_only(&self) -> bool {
        matches!(self.reload, Reload::Restart(_))
    }
}

fn show(value: &impl fmt::Debug) -> String {
    format!("{value:?}")
}

const NO_ENV: &[&str] = &[];
const GIB: u64 = 1 << 30;

/// Every setting. Reloadable ones first, then those that wait for a
/// restart: the log names changed settings in this order.
pub const SETTINGS: &[Setting] = &[
    Setting::new(
        "pg_dump_bin",
        &["BERKUT_BACKUP_PGDUMP_BIN"],
        Fallback::Text("pg_dump"),
        "the `pg_dump` to use (a bare name is looked up on `PATH`)",
        |c| show(&c.pg_dump_bin),
    ),
    Setting::new(
        "pg_dumpall_bin",
        &["BERKUT_BACKUP_PGDUMPALL_BIN"],
        Fallback::Described("beside `pg_dump`"),
        "for the cluster's roles (`--scope full`)",
        |c| show(&c.pg_dumpall_bin),
    ),
    Setting::new(
        "upload_max_bytes",
        &["BERKUT_BACKUP_UPLOAD_MAX_BYTES"],
        Fallback::Number(10 * GIB),
        "largest archive accepted by import",
        |c| show(&c.upload_max_bytes),
    )
    .range(1, u64::MAX),
    Setting::new(
        "file_roots",
        &["BERKUT_BACKUP_FILE_ROOTS"],
        Fallback::Described("none"),
        "directories archived by `--include-files` (absolute paths)",
        |c| show(&c.file_roots),
    )
    .env_note("(`:`-separated)"),
    Setting::new(
        "file_root",
        NO_ENV,
        Fallback::Described("none"),
        "`[[file_root]]` entries: a root (`path`) with its own `exclude` globs and `redact` \
         switch, see below",
        |c| {
            show(
                &c.file_rules
                    .iter()
                    .map(|r| (&r.path, &r.exclude, r.redact))
                    .collect::<Vec<_>>(),
            )
        },
    ),
    Setting::new(
        "redact_keys",
        NO_ENV,
        Fallback::Described("none"),
        "more words that make a key in an archived file look like a secret",
        |c| show(&c.redact_keys),
    ),
    Setting::new(
        "file_max_bytes",
        &["BERKUT_BACKUP_FILE_MAX_BYTES"],
        Fallback::Number(64 << 20),
        "a file larger than this is left out of a backup, and its manifest says so \
         (files are read whole into memory to be checked)",
        |c| show(&c.file_max_bytes),
    )
    .range(1, 4 * GIB),
    Setting::new(
        "files_max_total_bytes",
        &["BERKUT_BACKUP_FILES_MAX_TOTAL_BYTES"],
        Fallback::Number(GIB),
        "a backup whose files would take more than this is refused",
        |c| show(&c.files_max_total_bytes),
    )
    .range(1, u64::MAX),
    Setting::new(
        "log_level",
        &["BERKUT_LOG"],
        Fallback::Text("info"),
        "log filter",
        |c| show(&c.log_level),
    )
    .env_note("(or `RUST_LOG`)"),
    Setting::new(
        "shutdown_grace_seconds",
        &["BERKUT_SHUTDOWN_GRACE_SECONDS"],
        Fallback::Number(super::DEFAULT_SHUTDOWN_GRACE_SECONDS),
        "how long running backups may finish after SIGTERM",
        |c| show(&c.shutdown_grace.as_secs()),
    )
    .range(0, super::MAX_SHUTDOWN_GRACE_SECONDS),
    Setting::new(
        "count_rows",
        &["BERKUT_BACKUP_COUNT_ROWS"],
        Fallback::Flag(true),
        "record exact row counts in the dump's snapshot",
        |c| show(&c.count_rows),
    ),
    Setting::new(
        "pg_restore_bin",
        &["BERKUT_RESTORE_PGRESTORE_BIN"],
        Fallback::Described("beside `pg_dump`"),
        "the `pg_restore` to use",
        |c| show(&c.pg_restore_bin),
    ),
    Setting::new(
        "psql_bin",
        &["BERKUT_RESTORE_PSQL_BIN"],
        Fallback::Described("beside `pg_dump`"),
        "for applying archived roles",
        |c| show(&c.psql_bin),
    ),
    Setting::new(
        "restore_jobs",
        &["BERKUT_RESTORE_JOBS"],
        Fallback::Number(2),
        "connections loading a restore's rows, and `pg_restore -j`",
        |c| show(&c.restore_jobs),
    )
    .range(1, 64),
    Setting::new(
        "restore_analyze",
        &["BERKUT_RESTORE_ANALYZE"],
        Fallback::Flag(true),
        "gather planner statistics (ANALYZE) on a restored database before it goes live",
        |c| show(&c.restore_analyze),
    ),
    Setting::new(
        "audit_keep_bytes",
        &["BERKUT_AUDIT_KEEP_BYTES"],
        Fallback::Described("1 GiB (at least twice `audit_max_bytes`)"),
        "the most the audit files take together; the oldest rotated ones are removed past it",
        |c| show(&c.audit_keep_bytes),
    ),
    Setting::new(
        "audit_burst_seconds",
        &["BERKUT_AUDIT_BURST_SECONDS"],
        Fallback::Number(5),
        "identical denials from one peer within this window are one audit event with a \
         count; 0 turns it off",
        |c| show(&c.audit_burst.as_secs()),
    )
    .range(0, 60),
    Setting::new(
        "max_connections",
        &["BERKUT_MAX_CONNECTIONS"],
        Fallback::Number(super::DEFAULT_MAX_CONNECTIONS),
        "client connections served at once",
        |c| show(&c.connections.max_connections),
    )
    .range(2, super::connections::MAX_MAX_CONNECTIONS),
    Setting::new(
        "max_connections_per_uid",
        &["BERKUT_MAX_CONNECTIONS_PER_UID"],
        Fallback::Described("`max_connections / 8` (32)"),
        "connections one user may hold at once; admins are not limited by it \
         (1–`max_connections`)",
        |c| show(&c.connections.max_per_uid),
    ),
    Setting::new(
        "admin_reserved_connections",
        &["BERKUT_ADMIN_RESERVED_CONNECTIONS"],
        Fallback::Described("`max_connections / 16` (16)"),
        "of `max_connections`, how many only admins may take (1 to `max_connections` − 1)",
        |c| show(&c.connections.admin_reserved),
    ),
    Setting::new(
        "idle_timeout_seconds",
        &["BERKUT_IDLE_TIMEOUT_SECONDS"],
        Fallback::Number(super::connections::DEFAULT_IDLE_TIMEOUT_SECONDS),
        "a connection with nothing running and no traffic for this long is closed, and so is an import's upload that sends nothing for this long",
        |c| show(&c.connections.idle_timeout.as_secs()),
    )
    .range(1, super::connections::MAX_IDLE_TIMEOUT_SECONDS),
    Setting::new(
        "access",
        NO_ENV,
        Fallback::Described("none (root and the daemon's user are admins)"),
        "`[[access]]` grants, see below",
        |c| show(&c.access),
    ),
    Setting::new(
        "audit_max_bytes",
        &["BERKUT_AUDIT_MAX_BYTES"],
        Fallback::Number(64 << 20),
        "size at which the audit file is rotated",
        |c| show(&c.audit_max_bytes),
    )
    .range(4096, u64::MAX),
    Setting::new(
        "remote",
        NO_ENV,
        Fallback::Described("none"),
        "`[[remote]]` off-site copies (S3-compatible or a mounted directory), see below",
        // Names, kinds and places; never a credential.
        |c| show(&c.remotes.iter().map(|r| r.summary()).collect::<Vec<_>>()),
    ),
    Setting::new(
        "offsite_rpo_seconds",
        &["BERKUT_OFFSITE_RPO_SECONDS"],
        Fallback::Number(3600),
        "how long the newest successful backup may wait for its off-site copies before \
         `status` flags the off-site RPO as missed",
        |c| show(&c.offsite_rpo.as_secs()),
    )
    .range(1, 30 * 86_400),
    Setting::new(
        "remote_retry_seconds",
        &["BERKUT_REMOTE_RETRY_SECONDS"],
        Fallback::Number(30),
        "the wait after a failed off-site upload, doubled with each attempt up to an hour",
        |c| show(&c.remote_retry.as_secs()),
    )
    .range(1, 3600),
    Setting::new(
        "smoke_check",
        NO_ENV,
        Fallback::Described("none"),
        "`[[smoke_check]]` queries run read-only in every restored database before it is \
         trusted (drills and real restores), see below",
        |c| show(&c.smoke_checks),
    ),
    Setting::new(
        "smoke_check_timeout_seconds",
        &["BERKUT_SMOKE_CHECK_TIMEOUT_SECONDS"],
        Fallback::Number(30),
        "statement timeout of each `[[smoke_check]]` query; past it the check fails",
        |c| show(&c.smoke_check_timeout.as_secs()),
    )
    .range(1, 3600),
    Setting::new(
        "drill_overdue_hours",
        &["BERKUT_DRILL_OVERDUE_HOURS"],
        Fallback::Number(24),
        "`status` flags the drill as overdue when the newest successful backup has had no \
         drill verdict for this long after it finished",
        |c| show(&(c.drill_overdue.as_secs() / 3600)),
    )
    .range(1, 8760),
    Setting::new(
        "rto_target_minutes",
        &["BERKUT_RTO_TARGET_MINUTES"],
        Fallback::Number(30),
        "the recovery time objective: a drill that takes longer is flagged",
        |c| show(&(c.rto_target.as_secs() / 60)),
    )
    .range(1, 10080),
    Setting::new(
        "drill",
        NO_ENV,
        Fallback::Described("none (no automatic drills)"),
        "the `[drill]` policy: drill every scheduled backup once it succeeded \
         (`after_backup`), and/or on a schedule of its own, see below",
        |c| show(&c.drill),
    ),
    Setting::new(
        "evidence_keep_drills",
        &["BERKUT_EVIDENCE_KEEP_DRILLS"],
        Fallback::Number(3),
        "the evidence of this many newest drills of each backup is kept (and always that of \
         the newest passing drill of a backup still listed)",
        |c| show(&c.evidence_keep_drills),
    )
    .range(1, 1000),
    Setting::new(
        "evidence_keep_restore_days",
        &["BERKUT_EVIDENCE_KEEP_RESTORE_DAYS"],
        Fallback::Number(90),
        "the evidence of a real restore is kept this many days after it ended (longer while \
         its old database is kept for rollback)",
        |c| show(&c.evidence_keep_restore_days),
    )
    .range(1, 36500),
    Setting::new(
        "compression",
        &["BERKUT_BACKUP_COMPRESSION"],
        Fallback::Text("zstd:1"),
        "how backups store their parts: `zstd:N` (level 1 to 19), `zstd` (level 1) or `none`",
        |c| match c.compression.codec {
            berkut_proto::archive::Codec::None => "none".into(),
            berkut_proto::archive::Codec::Zstd => format!("zstd:{}", c.compression.level),
        },
    ),
    Setting::new(
        "compression_threads",
        &["BERKUT_BACKUP_COMPRESSION_THREADS"],
        Fallback::Number(2),
        "zstd worker threads per backup; 0 compresses on the thread that encrypts",
        |c| show(&c.compression.threads),
    )
    .range(0, 16),
    Setting::new(
        "metrics_textfile",
        &["BERKUT_METRICS_TEXTFILE"],
        Fallback::Described("none"),
        "a Prometheus textfile for node_exporter's textfile collector, rewritten after every \
         job and at least every 60 s; its directory must exist and be writable",
        |c| show(&c.metrics_textfile),
    ),
    Setting::new(
        "notify",
        NO_ENV,
        Fallback::Described("none"),
        "`[[notify]]` sinks for events (webhook or exec), see below",
        |c| show(&c.notify),
    )
    .secret(),
    // Restart-only from here on.
    Setting::new(
        "socket_group",
        &["BERKUT_SOCKET_GROUP"],
        Fallback::Described("none"),
        "the group the socket file is given",
        |c| show(&c.socket_group),
    )
    .restart(|new, old| new.socket_group = old.socket_group),
    Setting::new(
        "backup_path",
        &["BERKUT_BACKUP_PATH"],
        Fallback::Text("/var/lib/berkut/backups"),
        "where archives are kept",
        |c| show(&c.backup_path),
    )
    .restart(|new, old| new.backup_path = old.backup_path.clone()),
    Setting::new(
        "state_dir",
        &["BERKUT_STATE_DIR"],
        Fallback::Text("/var/lib/berkut"),
        "catalogue and other state",
        |c| show(&c.state_dir),
    )
    .restart(|new, old| new.state_dir = old.state_dir.clone()),
    Setting::new(
        "socket",
        &["BERKUT_SOCKET"],
        Fallback::Text(super::DEFAULT_SOCKET),
        "the control socket (berkutctl reads it too)",
        |c| show(&c.socket),
    )
    .restart(|new, old| new.socket = old.socket.clone()),
    Setting::new(
        "database_url",
        &["BERKUT_DATABASE_URL"],
        Fallback::Described("— (required)"),
        "libpq URL of the database to back up",
        // `DatabaseUrl`'s `Debug` hides the password.
        |c| show(&c.database_url),
    )
    .restart(|new, old| new.database_url = old.database_url.clone())
    .secret(),
    Setting::new(
        "max_parallel",
        &["BERKUT_BACKUP_MAX_PARALLEL"],
        Fallback::Number(2),
        "jobs running at once",
        |c| show(&c.max_parallel),
    )
    .range(1, 64)
    .restart(|new, old| new.max_parallel = old.max_parallel),
    Setting::new(
        "drill_database_url",
        &["BERKUT_DRILL_DATABASE_URL"],
        Fallback::Described("the live server"),
        "where dry-runs restore; dry-runs `--with-globals` need it to be another server",
        |c| show(&c.drill_database_url),
    )
    .restart(|new, old| new.drill_database_url = old.drill_database_url.clone())
    .secret(),
    Setting::new(
        "encryption_key",
        &["BERKUT_BACKUP_ENCRYPTION_KEY", "BACKUP_ENCRYPTION_KEY"],
        Fallback::Described("—"),
        "the master key: 32 bytes, base64 or hex",
        // The key's id, never the key.
        |c| c.keyring.primary().key_id().to_string(),
    )
    .restart(|new, old| new.keyring = old.keyring.clone())
    .secret(),
    Setting::new(
        "encryption_key_file",
        &["BERKUT_BACKUP_ENCRYPTION_KEY_FILE"],
        Fallback::Described("—"),
        "the key in a file owned by the daemon's user (or root) that only its owner can \
         read (mode 0600 or 0400)",
        |c| show(&c.encryption_key_file),
    )
    .restart(|new, old| {
        new.keyring = old.keyring.clone();
        new.encryption_key_file = old.encryption_key_file.clone();
    }),
    Setting::new(
        "old_key_files",
        &["BERKUT_BACKUP_OLD_KEY_FILES"],
        Fallback::Described("none"),
        "older keys, for reading only",
        |c| {
            show(
                &c.keyring
                    .others
                    .iter()
                    .map(|k| k.key_id().to_string())
                    .collect::<Vec<_>>(),
            )
        },
    )
    .env_note("(`:`-separated)")
    .restart(|new, old| new.keyring = old.keyring.clone()),
];

/// The declaration of `key`. Every name `Config::load` asks for is
/// declared, so a misspelled one fails every load (and so every test).
pub fn setting(key: &str) -> &'static Setting {
    SETTINGS
        .iter()
        .find(|s| s.key == key)
        .unwrap_or_else(|| panic!("the setting {key} is not declared"))
}

/// `Config`'s `Debug`: every declared setting, as its declaration shows it
/// (so no secret), and the mode.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Shown(String);
        impl fmt::Debug for Shown {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        let mut out = f.debug_struct("Config");
        for s in SETTINGS {
            out.field(s.key, &Shown((s.shown)(self)));
        }
        out.field("dev", &self.dev).finish()
    }
}

/// The README's settings table, generated from the declarations.
#[cfg(test)]
pub fn readme_table() -> String {
    let mut out = String::from(
        "| TOML key | environment | default | on reload | meaning |\n\
         | --- | --- | --- | --- | --- |\n",
    );
    for s in SETTINGS {
        let env = match s.env {
            [] => "—".to_owned(),
            names => names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(" or "),
        };
        let env = match s.env_note {
            "" => env,
            note => format!("{env} {note}"),
        };
        let default = match s.fallback {
            Fallback::Number(n) if s.key.ends_with("_bytes") && n % GIB == 0 => {
                format!("{} GiB", n / GIB)
            }
            Fallback::Number(n) if s.key.ends_with("_bytes") && n % (1 << 20) == 0 => {
                format!("{} MiB", n >> 20)
            }
            Fallback::Number(n) => format!("`{n}`"),
            Fallback::Flag(b) => format!("`{b}`"),
            Fallback::Text(text) => format!("`{text}`"),
            Fallback::Described(text) => text.to_owned(),
        };
        let reload = if s.restart_only() {
            "restart"
        } else {
            "applies"
        };
        let mut meaning = s.meaning.to_owned();
        match s.range {
            Some((min, u64::MAX)) if min > 1 => meaning += &format!(" (at least {min})"),
            Some((_, u64::MAX)) | None => {}
            Some((min, max)) => meaning += &format!(" ({min}–{max})"),
        }
        if s.secret {
            meaning += "; holds a secret, which logs and errors never show";
        }
        out += &format!(
            "| `{}` | {env} | {default} | {reload} | {meaning} |\n",
            s.key
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's table is the one the declarations give; when this
    /// fails, paste the expected table into the README.
    #[test]
    fn the_readme_table_is_generated_from_the_declarations() {
        let readme = include_str!("../../../README.md");
        let expected = readme_table();
        let header = expected.lines().next().unwrap();
        let start = readme
            .find(header)
            .expect("the README has the settings table's header");
        let table: String = readme[start..]
            .lines()
            .take_while(|line| line.starts_with('|'))
            .map(|line| format!("{line}\n"))
            .collect();
        assert!(
            table == expected,
            "the README's settings table differs from the declarations; it should be:\n{expected}"
        );
    }

    #[test]
    fn keys_and_variables_are_declared_once_and_defaults_are_in_range() {
        let mut keys: Vec<&str> = SETTINGS.iter().map(|s| s.key).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), SETTINGS.len(), "a key is declared twice");
        let mut vars: Vec<&str> = SETTINGS
            .iter()
            .flat_map(|s| s.env.iter().copied())
            .collect();
        let count = vars.len();
        vars.sort_unstable();
        vars.dedup();
        assert_eq!(vars.len(), count, "a variable is declared twice");
        for s in SETTINGS {
            if let (Fallback::Number(n), Some((min, max))) = (s.fallback, s.range) {
                assert!(
                    (min..=max).contains(&n),
                    "{}: default {n} out of range",
                    s.key
                );
            }
        }
    }

    /// The packaged example configuration names only declared settings, and
    /// where it shows a number or flag with its default, that is the
    /// declared default.
    #[test]
    fn the_example_configuration_agrees_with_the_declarations() {
        let example = include_str!("../../../packaging/berkutd.toml");
        let mut seen = 0;
        for line in example.lines() {
            let Some((key, value)) = line.strip_prefix('#').and_then(|l| l.split_once(" = "))
            else {
                continue;
            };
            if key.contains(' ') {
                continue;
            }
            let s = SETTINGS
                .iter()
                .find(|s| s.key == key)
                .unwrap_or_else(|| panic!("the example names {key}, which is not declared"));
            match s.fallback {
                Fallback::Number(n) => assert_eq!(value, n.to_string(), "{key}"),
                Fallback::Flag(b) => assert_eq!(value, b.to_string(), "{key}"),
                _ => {}
            }
            seen += 1;
        }
        assert!(seen > 10, "{seen} settings in the example");
    }
}
