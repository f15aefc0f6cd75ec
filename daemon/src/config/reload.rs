//! What a reload (SIGHUP) may change. Some settings take effect for the
//! next job or the next log line and can change under a running daemon;
//! others are woven into what it built at start (the socket it listens on,
//! the directories it recovered, the database pools, the keys it seals and
//! reads with, the size of its job semaphore) and change only with a restart. A reload
//! takes the first kind from the new configuration, keeps the second kind as
//! it is, and names both, so the log says exactly what happened.

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
    /// Merges `new` into this configuration: the reloadable settings come
    /// from `new`, the others stay as they are.
    pub fn reloaded(&self, new: Config) -> Reloaded {
        let mut applied = Vec::new();
        let mut needs_restart = Vec::new();
        let mut note = |changed: bool, name: &'static str, reloadable: bool| {
            if changed {
                if reloadable {
                    applied.push(name);
                } else {
                    needs_restart.push(name);
                }
            }
        };
        note(self.pg_dump_bin != new.pg_dump_bin, "pg_dump_bin", true);
        note(
            self.pg_dumpall_bin != new.pg_dumpall_bin,
            "pg_dumpall_bin",
            true,
        );
        note(
            self.upload_max_bytes != new.upload_max_bytes,
            "upload_max_bytes",
            true,
        );
        note(self.file_roots != new.file_roots, "file_roots", true);
        note(self.log_level != new.log_level, "log_level", true);
        note(
            self.shutdown_grace != new.shutdown_grace,
            "shutdown_grace_seconds",
            true,
        );
        note(self.count_rows != new.count_rows, "count_rows", true);
        note(
            self.pg_restore_bin != new.pg_restore_bin,
            "pg_restore_bin",
            true,
        );
        note(self.psql_bin != new.psql_bin, "psql_bin", true);
        note(self.restore_jobs != new.restore_jobs, "restore_jobs", true);
        note(
            self.restore_analyze != new.restore_analyze,
            "restore_analyze",
            true,
        );
        // Grants are read for every request, so new ones apply at once.
        note(self.access != new.access, "access", true);
        note(
            self.audit_max_bytes != new.audit_max_bytes,
            "audit_max_bytes",
            false,
        );
        note(self.socket_group != new.socket_group, "socket_group", false);
        note(self.backup_path != new.backup_path, "backup_path", false);
        note(self.state_dir != new.state_dir, "state_dir", false);
        note(self.socket != new.socket, "socket", false);
        note(self.database_url != new.database_url, "database_url", false);
        note(self.max_parallel != new.max_parallel, "max_parallel", false);
        note(
            self.drill_database_url != new.drill_database_url,
            "drill_database_url",
            false,
        );
        note(
            self.keyring.primary().key_id() != new.keyring.primary().key_id(),
            "encryption_key",
            false,
        );
        let ids = |c: &Config| -> Vec<_> { c.keyring.others.iter().map(|k| k.key_id()).collect() };
        note(ids(self) != ids(&new), "old_key_files", false);
        let config = Config {
            pg_dump_bin: new.pg_dump_bin,
            pg_dumpall_bin: new.pg_dumpall_bin,
            upload_max_bytes: new.upload_max_bytes,
            file_roots: new.file_roots,
            log_level: new.log_level,
            shutdown_grace: new.shutdown_grace,
            count_rows: new.count_rows,
            pg_restore_bin: new.pg_restore_bin,
            psql_bin: new.psql_bin,
            restore_jobs: new.restore_jobs,
            restore_analyze: new.restore_analyze,
            ..self.clone()
        };
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

    fn load(pairs: &[(&str, &str)]) -> Config {
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
        Config::load(None, &env, false).unwrap()
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

    #[test]
    fn an_unchanged_configuration_changes_nothing() {
        let r = load(&[]).reloaded(load(&[]));
        assert!(r.applied.is_empty() && r.needs_restart.is_empty());
    }
}
