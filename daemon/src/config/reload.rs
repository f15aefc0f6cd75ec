//! What a reload (SIGHUP) may change. Some settings are woven into what the
//! daemon built at start (the socket it listens on, the directories it
//! recovered and locked, the database pools, the keys it seals and reads
//! with, the size of its job semaphore) and
//! change only with a restart. Every other setting is read where it is used,
//! from the configuration in force, so it can change under a running daemon.
//!
//! A reload therefore takes the new configuration as a whole and puts back
//! only the settings declared `Reload::Restart` (in `settings.rs`, each with
//! how to keep its old value): a setting added later applies on reload by
//! default and cannot be forgotten (forgetting `[[access]]` once kept
//! revoked grants working until a restart). The log names, from the same
//! declarations, exactly what took effect and what waits for a restart.

use super::settings::{Reload, SETTINGS};
use super::Config;

/// The outcome of merging a freshly loaded configuration into the one in
/// force.
pub struct Reloaded {
    /// The configuration to put in force.
    pub config: Config,
    /// Settings that changed and took effect.
    pub applied: Vec<&'static str>,
    /// Settings that changed in the file or environment but keep their old
    /// value until the daemon restarts.
    pub needs_restart: Vec<&'static str>,
}

impl Config {
    /// Merges `new` into this configuration: everything comes from `new`
    /// except the restart-only settings, which stay as they are.
    pub fn reloaded(&self, new: Config) -> Reloaded {
        let mut applied = Vec::new();
        let mut needs_restart = Vec::new();
        let mut config = new;
        for s in SETTINGS {
            // Compared by how they show, never logged: a value may hold a
            // password.
            if (s.shown)(self) == (s.shown)(&config) {
                continue;
            }
            match s.reload {
                Reload::Applies => applied.push(s.key),
                Reload::Restart(_) => needs_restart.push(s.key),
            }
        }
        for s in SETTINGS {
            if let Reload::Restart(keep) = s.reload {
                keep(&mut config, self);
            }
        }
        // A command-line flag, not a setting: it cannot change on reload.
        config.dev = self.dev;
        Reloaded {
            config,
            applied,
            needs_restart,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Env;
    use super::*;

    fn load_with(file: Option<&str>, pairs: &[(&str, &str)]) -> Config {
        let mut env: Env = [
            (
                "BERKUT_BACKUP_ENCRYPTION_KEY",
                "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
            ),
            ("BERKUT_DATABASE_URL", "postgresql:///app"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        env.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("berkutd.toml");
        if let Some(text) = file {
            std::fs::write(&path, text).unwrap();
        }
        Config::load(file.map(|_| path.as_path()), &env, false).unwrap()
    }

    fn load(pairs: &[(&str, &str)]) -> Config {
        load_with(None, pairs)
    }

    use super::super::settings::setting;

    /// The settings declared restart-only.
    fn restart_only() -> Vec<&'static str> {
        SETTINGS
            .iter()
            .filter(|s| s.restart_only())
            .map(|s| s.key)
            .collect()
    }

    /// Every setting changed at once, restart-only ones included.
    fn everything_changed() -> Config {
        use std::os::unix::fs::PermissionsExt;
        let other_key = "ff".repeat(32);
        let keys = tempfile::tempdir().unwrap();
        let old_key = keys.path().join("old.key");
        std::fs::write(&old_key, "ee".repeat(32)).unwrap();
        std::fs::set_permissions(&old_key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let old_key = old_key.display().to_string();
        // The primary key from a file now (the old configuration has it as
        // text), and another key: both key settings change.
        let key_file = keys.path().join("primary.key");
        std::fs::write(&key_file, &other_key).unwrap();
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let key_file = key_file.display().to_string();
        let metrics = keys.path().join("berkut.prom").display().to_string();
        load_with(
            Some(
                "file_roots = [\"/srv/files\"]\n\
                 redact_keys = [\"pin\"]\n\
                 [[access]]\nuid = 4242\nrole = \"viewer\"\n\
                 [[remote]]\nname = \"disk\"\nkind = \"fs\"\npath = \"/mnt/offsite\"\n\
                 [[file_root]]\npath = \"/srv/conf\"\nexclude = [\"*.pem\"]\n\
                 [[notify]]\nkind = \"exec\"\ncommand = \"/bin/true\"\n\
                 [[smoke_check]]\nname = \"users\"\nsql = \"select true\"\n\
                 [drill]\nafter_backup = true\n",
            ),
            &[
                ("BERKUT_BACKUP_PGDUMP_BIN", "/opt/pg/bin/pg_dump"),
                ("BERKUT_BACKUP_PGDUMPALL_BIN", "/opt/pg/bin/pg_dumpall2"),
                ("BERKUT_RESTORE_PGRESTORE_BIN", "/opt/pg/bin/pg_restore2"),
                ("BERKUT_RESTORE_PSQL_BIN", "/opt/pg/bin/psql2"),
                ("BERKUT_BACKUP_UPLOAD_MAX_BYTES", "1234"),
                ("BERKUT_LOG", "debug"),
                ("BERKUT_SHUTDOWN_GRACE_SECONDS", "5"),
                ("BERKUT_BACKUP_COUNT_ROWS", "false"),
                ("BERKUT_RESTORE_JOBS", "4"),
                ("BERKUT_RESTORE_ANALYZE", "false"),
                ("BERKUT_AUDIT_KEEP_BYTES", "65536"),
                ("BERKUT_AUDIT_BURST_SECONDS", "9"),
                ("BERKUT_MAX_CONNECTIONS", "100"),
                ("BERKUT_MAX_CONNECTIONS_PER_UID", "5"),
                ("BERKUT_ADMIN_RESERVED_CONNECTIONS", "7"),
                ("BERKUT_IDLE_TIMEOUT_SECONDS", "60"),
                ("BERKUT_AUDIT_MAX_BYTES", "8192"),
                ("BERKUT_OFFSITE_RPO_SECONDS", "120"),
                ("BERKUT_REMOTE_RETRY_SECONDS", "5"),
                ("BERKUT_BACKUP_COMPRESSION", "zstd:9"),
                ("BERKUT_BACKUP_COMPRESSION_THREADS", "0"),
                ("BERKUT_SOCKET_GROUP", "root"),
                ("BERKUT_BACKUP_PATH", "/elsewhere/backups"),
                ("BERKUT_STATE_DIR", "/elsewhere/state"),
                ("BERKUT_SOCKET", "/elsewhere.sock"),
                ("BERKUT_DATABASE_URL", "postgresql:///other"),
                ("BERKUT_BACKUP_MAX_PARALLEL", "7"),
                ("BERKUT_DRILL_DATABASE_URL", "postgresql:///drill"),
                ("BERKUT_BACKUP_ENCRYPTION_KEY", ""),
                ("BERKUT_BACKUP_ENCRYPTION_KEY_FILE", &key_file),
                ("BERKUT_BACKUP_OLD_KEY_FILES", &old_key),
                ("BERKUT_BACKUP_FILE_MAX_BYTES", "4096"),
                ("BERKUT_BACKUP_FILES_MAX_TOTAL_BYTES", "8192"),
                ("BERKUT_METRICS_TEXTFILE", &metrics),
                ("BERKUT_SMOKE_CHECK_TIMEOUT_SECONDS", "7"),
                ("BERKUT_DRILL_OVERDUE_HOURS", "48"),
                ("BERKUT_RTO_TARGET_MINUTES", "90"),
                ("BERKUT_EVIDENCE_KEEP_DRILLS", "5"),
                ("BERKUT_EVIDENCE_KEEP_RESTORE_DAYS", "10"),
            ],
        )
    }

    #[test]
    fn reloadable_settings_change_and_the_others_wait_for_a_restart() {
        let old = load(&[]);
        let new = load(&[
            ("BERKUT_BACKUP_PGDUMP_BIN", "/opt/pg/bin/pg_dump"),
            ("BERKUT_LOG", "debug"),
            ("BERKUT_SHUTDOWN_GRACE_SECONDS", "5"),
            ("BERKUT_RESTORE_JOBS", "4"),
            ("BERKUT_BACKUP_MAX_PARALLEL", "7"),
            ("BERKUT_SOCKET", "/elsewhere.sock"),
            ("BERKUT_BACKUP_ENCRYPTION_KEY", &"ff".repeat(32)),
        ]);
        let r = old.reloaded(new);
        assert_eq!(
            r.applied,
            [
                "pg_dump_bin",
                "pg_dumpall_bin",
                "log_level",
                "shutdown_grace_seconds",
                // Found beside pg_dump unless configured.
                "pg_restore_bin",
                "psql_bin",
                "restore_jobs",
            ]
        );
        assert_eq!(
            r.needs_restart,
            ["socket", "max_parallel", "encryption_key"]
        );
        assert_eq!(r.config.pg_dump_bin.to_str(), Some("/opt/pg/bin/pg_dump"));
        assert_eq!(r.config.log_level, "debug");
        assert_eq!(r.config.shutdown_grace.as_secs(), 5);
        assert_eq!(r.config.restore_jobs, 4);
        assert_eq!(r.config.max_parallel, old.max_parallel);
        assert_eq!(r.config.socket, old.socket);
        assert_eq!(
            r.config.keyring.primary().key_id(),
            old.keyring.primary().key_id()
        );
    }

    /// What the log reports is what is in force: every setting named as
    /// applied has the new value in the merged configuration, every one
    /// named as waiting for a restart has the old one, and with everything
    /// changed, every setting is named one way or the other.
    #[test]
    fn every_setting_reported_as_applied_is_in_force() {
        let old = load(&[]);
        let new = everything_changed();
        let r = old.reloaded(new.clone());
        for name in &r.applied {
            let s = setting(name);
            assert_eq!(
                (s.shown)(&r.config),
                (s.shown)(&new),
                "{name} is reported as applied but the old value is in force"
            );
        }
        for name in &r.needs_restart {
            let s = setting(name);
            assert_eq!(
                (s.shown)(&r.config),
                (s.shown)(&old),
                "{name} is reported as waiting for a restart but changed"
            );
        }
        let mut named: Vec<&str> = r.applied.iter().chain(&r.needs_restart).copied().collect();
        named.sort_unstable();
        let mut all: Vec<&str> = SETTINGS.iter().map(|s| s.key).collect();
        all.sort_unstable();
        assert_eq!(named, all, "the test changes every setting");
        assert!(r.applied.contains(&"access"), "grants apply on reload");
        assert_eq!(r.config.access, new.access);
    }

    /// The settings declared restart-only and what their declarations put
    /// back agree.
    #[test]
    fn exactly_the_restart_only_settings_are_kept() {
        let old = load(&[]);
        let new = everything_changed();
        let r = old.reloaded(new.clone());
        let mut waiting = r.needs_restart.clone();
        waiting.sort_unstable();
        let mut listed = restart_only();
        listed.sort_unstable();
        assert_eq!(waiting, listed);
        for s in SETTINGS {
            let kept = (s.shown)(&r.config) == (s.shown)(&old);
            assert_eq!(kept, s.restart_only(), "{}: kept {kept}", s.key);
        }
    }

    #[test]
    fn an_unchanged_configuration_changes_nothing() {
        let r = load(&[]).reloaded(load(&[]));
        assert!(r.applied.is_empty() && r.needs_restart.is_empty());
    }
}
