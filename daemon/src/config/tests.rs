//! Configuration: precedence, defaults, validation and secret hygiene.

use super::*;

const KEY_B64: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn env(pairs: &[(&str, &str)]) -> Env {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn base() -> Vec<(&'static str, &'static str)> {
    vec![
        ("BERKUT_BACKUP_ENCRYPTION_KEY", KEY_B64),
        (
            "BERKUT_DATABASE_URL",
            "postgresql://app@/app?host=/run/postgresql",
        ),
    ]
}

#[test]
fn environment_wins_over_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("berkutd.toml");
    std::fs::write(
        &file,
        "max_parallel = 3\nbackup_path = \"/srv/from-file\"\nstate_dir = \"/srv/state\"\n",
    )
    .unwrap();
    let mut vars = base();
    vars.push(("BERKUT_BACKUP_PATH", "/srv/from-env"));
    let config = Config::load(Some(&file), &env(&vars), false).unwrap();
    assert_eq!(config.backup_path, PathBuf::from("/srv/from-env"));
    assert_eq!(config.state_dir, PathBuf::from("/srv/state"));
    assert_eq!(config.max_parallel, 3);
    assert_eq!(config.socket, PathBuf::from(DEFAULT_SOCKET));
}

#[test]
fn a_key_is_required_outside_dev_mode() {
    let vars = env(&[("BERKUT_DATABASE_URL", "postgresql:///app")]);
    let err = Config::load(None, &vars, false).unwrap_err();
    assert!(matches!(err, ConfigError::MissingKey));
    assert!(err.to_string().contains("berkutctl key generate"));
}

#[test]
fn both_key_variable_names_work_and_the_berkut_one_wins() {
    let mut vars = env(&[
        ("BERKUT_DATABASE_URL", "postgresql:///app"),
        ("BACKUP_ENCRYPTION_KEY", KEY_B64),
    ]);
    let a = Config::load(None, &vars, false).unwrap();
    vars.insert("BERKUT_BACKUP_ENCRYPTION_KEY".into(), "ff".repeat(32));
    let b = Config::load(None, &vars, false).unwrap();
    assert_ne!(a.keyring.primary().key_id(), b.keyring.primary().key_id());
}

#[test]
fn a_bad_key_is_refused_without_echoing_it() {
    let secret = "this-is-not-a-key-but-a-secret-passphrase";
    let mut vars = env(&base());
    vars.insert("BERKUT_BACKUP_ENCRYPTION_KEY".into(), secret.into());
    let err = Config::load(None, &vars, false).unwrap_err().to_string();
    assert!(!err.contains(secret), "{err}");
    assert!(err.contains("berkutctl key generate"), "{err}");
}

#[test]
fn a_key_file_readable_by_others_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    std::fs::write(&key, KEY_B64).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut vars = env(&[("BERKUT_DATABASE_URL", "postgresql:///app")]);
    vars.insert(
        "BERKUT_BACKUP_ENCRYPTION_KEY_FILE".into(),
        key.display().to_string(),
    );
    let err = Config::load(None, &vars, false).unwrap_err().to_string();
    assert!(err.contains("chmod 600"), "{err}");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(Config::load(None, &vars, false).is_ok());
}

#[test]
fn numbers_and_lists_are_validated() {
    for (name, value) in [
        ("BERKUT_BACKUP_MAX_PARALLEL", "0"),
        ("BERKUT_BACKUP_MAX_PARALLEL", "many"),
        ("BERKUT_BACKUP_MAX_PARALLEL", "65"),
        ("BERKUT_BACKUP_UPLOAD_MAX_BYTES", "-1"),
        ("BERKUT_BACKUP_FILE_ROOTS", "relative/dir"),
        ("BERKUT_DATABASE_URL", "postgresql://[bad"),
        ("BERKUT_SHUTDOWN_GRACE_SECONDS", "soon"),
        ("BERKUT_SHUTDOWN_GRACE_SECONDS", "3601"),
        ("BERKUT_LOG", "info,[unclosed"),
        ("BERKUT_BACKUP_COUNT_ROWS", "maybe"),
    ] {
        let mut vars = env(&base());
        vars.insert(name.into(), value.into());
        assert!(
            Config::load(None, &vars, false).is_err(),
            "{name}={value} was accepted"
        );
    }
}

#[test]
fn the_shutdown_grace_time_has_a_default_and_comes_from_file_or_environment() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("berkutd.toml");
    let config = Config::load(None, &env(&base()), false).unwrap();
    assert_eq!(
        config.shutdown_grace,
        Duration::from_secs(DEFAULT_SHUTDOWN_GRACE_SECONDS)
    );
    std::fs::write(&file, "shutdown_grace_seconds = 7\nlog_level = \"warn\"\n").unwrap();
    let config = Config::load(Some(&file), &env(&base()), false).unwrap();
    assert_eq!(config.shutdown_grace, Duration::from_secs(7));
    assert_eq!(config.log_level, "warn");
    let mut vars = base();
    vars.push(("BERKUT_SHUTDOWN_GRACE_SECONDS", "0"));
    let config = Config::load(Some(&file), &env(&vars), false).unwrap();
    assert_eq!(config.shutdown_grace, Duration::ZERO);
}

#[test]
fn unknown_keys_and_bad_toml_are_refused_without_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("berkutd.toml");
    std::fs::write(&file, "max_paralel = 3\n").unwrap();
    let err = Config::load(Some(&file), &env(&base()), false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("max_paralel"), "{err}");
    std::fs::write(&file, "encryption_key = \"sekrit-value\nmax_parallel = 2\n").unwrap();
    let err = Config::load(Some(&file), &env(&base()), false)
        .unwrap_err()
        .to_string();
    assert!(!err.contains("sekrit-value"), "{err}");
}

#[test]
fn dev_mode_needs_nothing_and_keeps_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("dev.key");
    let first = load_dev_key(&key_path).unwrap();
    let second = load_dev_key(&key_path).unwrap();
    assert_eq!(first.key_id(), second.key_id());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key_path).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn debug_output_holds_no_secrets() {
    let mut vars = env(&base());
    vars.insert(
        "BERKUT_DATABASE_URL".into(),
        "postgresql://app:hunter2@/app".into(),
    );
    let config = Config::load(None, &vars, false).unwrap();
    let shown = format!("{config:?}");
    assert!(!shown.contains("hunter2"));
    assert!(!shown.contains(KEY_B64));
    assert!(shown.contains(&config.keyring.primary().key_id().to_string()));
}

/// Every key of the configuration file: the declared settings.
fn file_keys() -> Vec<String> {
    let keys: Vec<String> = SETTINGS.iter().map(|s| s.key.to_owned()).collect();
    assert!(keys.len() > 10, "{keys:?}");
    keys
}

#[test]
fn debug_lists_every_setting_and_no_secret() {
    let mut vars = env(&base());
    vars.insert(
        "BERKUT_DATABASE_URL".into(),
        "host=/run/postgresql user=app password = hunter2 dbname=app".into(),
    );
    vars.insert(
        "BERKUT_DRILL_DATABASE_URL".into(),
        "postgresql://drill:swordfish@localhost/app".into(),
    );
    let config = Config::load(None, &vars, false).unwrap();
    let shown = format!("{config:?}");
    for secret in ["hunter2", "swordfish", KEY_B64] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    // `Debug` names every setting by its key in the file.
    fn held_as(key: &str) -> &str {
        key
    }
    // Every secret setting is among those given a secret above.
    let secret: Vec<&str> = SETTINGS
        .iter()
        .filter(|s| s.secret)
        .map(|s| s.key)
        .collect();
    assert_eq!(
        secret,
        [
            "notify",
            "database_url",
            "drill_database_url",
            "encryption_key"
        ]
    );
    for key in file_keys() {
        let field = held_as(&key);
        assert!(
            shown.contains(&format!("{field}: ")),
            "Debug of the configuration leaves out {key} (as {field}): {shown}"
        );
    }
}

#[test]
fn the_connection_limits_come_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("berkutd.toml");
    std::fs::write(
        &file,
        "max_connections = 100\nmax_connections_per_uid = 4\n\
         admin_reserved_connections = 20\nidle_timeout_seconds = 30\n",
    )
    .unwrap();
    let config = Config::load(Some(&file), &env(&base()), false).unwrap();
    assert_eq!(
        config.connections,
        super::ConnectionLimits {
            max_connections: 100,
            max_per_uid: 4,
            admin_reserved: 20,
            idle_timeout: Duration::from_secs(30),
        }
    );
    std::fs::write(&file, "admin_reserved_connections = 256\n").unwrap();
    let err = Config::load(Some(&file), &env(&base()), false).unwrap_err();
    // Named as the file has it, with the file.
    assert!(
        err.to_string().contains("admin_reserved_connections in ")
            && err.to_string().contains(&file.display().to_string()),
        "{err}"
    );
}

#[test]
fn the_audit_bound_and_burst_window_have_defaults_and_limits() {
    let config = Config::load(None, &env(&base()), false).unwrap();
    assert_eq!(
        (config.audit_keep_bytes, config.audit_burst),
        (1 << 30, Duration::from_secs(5))
    );
    // A large file size raises the default bound to two files.
    let mut vars = base();
    vars.push(("BERKUT_AUDIT_MAX_BYTES", "1073741824"));
    let config = Config::load(None, &env(&vars), false).unwrap();
    assert_eq!(config.audit_keep_bytes, 2 << 30);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("berkutd.toml");
    std::fs::write(
        &file,
        "audit_max_bytes = 4096\naudit_keep_bytes = 8192\naudit_burst_seconds = 0\n",
    )
    .unwrap();
    let config = Config::load(Some(&file), &env(&base()), false).unwrap();
    assert_eq!(
        (config.audit_keep_bytes, config.audit_burst),
        (8192, Duration::ZERO)
    );
    for (name, value, why) in [
        ("BERKUT_AUDIT_KEEP_BYTES", "8191", "twice"),
        ("BERKUT_AUDIT_BURST_SECONDS", "61", "0 to 60"),
        ("BERKUT_AUDIT_BURST_SECONDS", "-1", "whole number"),
    ] {
        let mut vars = base();
        vars.push(("BERKUT_AUDIT_MAX_BYTES", "4096"));
        vars.push((name, value));
        let e = Config::load(None, &env(&vars), false)
            .unwrap_err()
            .to_string();
        assert!(e.contains(name) && e.contains(why), "{name}={value}: {e}");
    }
    let shown = format!(
        "{:?}",
        Config::load(Some(&file), &env(&base()), false).unwrap()
    );
    assert!(
        shown.contains("audit_keep_bytes: 8192") && shown.contains("audit_burst_seconds: 0,"),
        "{shown}"
    );
}

/// A bad value in the file is named by its key and the file; one in the
/// environment by its variable, which wins over the file.
#[test]
fn bad_values_name_the_file_and_key_they_came_from() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("berkutd.toml");
    let shown = file.display().to_string();
    for (text, key, why) in [
        ("restore_jobs = 65\n", "restore_jobs", "from 1 to 64"),
        ("compression = \"gzip\"\n", "compression", "zstd:N"),
        ("compression = \"zstd:22\"\n", "compression", "from 1 to 19"),
        (
            "compression_threads = 17\n",
            "compression_threads",
            "from 0 to 16",
        ),
        ("max_parallel = \"two\"\n", "max_parallel", "whole number"),
        ("count_rows = \"maybe\"\n", "count_rows", "true or false"),
        ("file_roots = [\"relative\"]\n", "file_roots", "absolute"),
        (
            "[[file_root]]\npath = \"relative\"\n",
            "file_root",
            "absolute",
        ),
        (
            "[[file_root]]\npath = \"/a\"\nexclude = [\"a[\"]\n",
            "file_root",
            "not valid",
        ),
        (
            "[[file_root]]\npath = \"/a\"\nredact = \"no\"\n",
            "file_root",
            "[[file_root]] entries",
        ),
        ("redact_keys = [1]\n", "redact_keys", "list of strings"),
        (
            "redact_keys = [\"--\"]\n",
            "redact_keys",
            "letters or digits",
        ),
        (
            "socket_group = \"no-such-group-zz\"\n",
            "socket_group",
            "no group",
        ),
        (
            "[[access]]\nuser = \"no-such-user-zz\"\nrole = \"viewer\"\n",
            "access",
            "no user",
        ),
        (
            "[[access]]\nuid = 1\nrole = \"boss\"\n",
            "access",
            "unknown role",
        ),
    ] {
        std::fs::write(&file, text).unwrap();
        let e = Config::load(Some(&file), &env(&base()), false)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!("{key} in {shown}: ")) && e.contains(why),
            "{text:?}: {e}"
        );
    }
    std::fs::write(&file, "restore_jobs = 3\n").unwrap();
    let mut vars = base();
    vars.push(("BERKUT_RESTORE_JOBS", "0"));
    let e = Config::load(Some(&file), &env(&vars), false)
        .unwrap_err()
        .to_string();
    assert_eq!(e, "BERKUT_RESTORE_JOBS: must be from 1 to 64");
}

/// `Config::load` reads every declared number through its declaration: a
/// value past its declared range, in the environment or the file, is
/// refused and named where it came from.
#[test]
fn every_declared_range_is_enforced_from_either_source() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("berkutd.toml");
    let mut checked = 0;
    for s in SETTINGS {
        let Some((min, max)) = s.range else { continue };
        let bad = if max < u64::MAX { max + 1 } else { min - 1 };
        let mut vars = base();
        let text = bad.to_string();
        vars.push((s.env[0], &text));
        let e = Config::load(None, &env(&vars), false)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(&format!("{}: must be", s.env[0])), "{e}");
        std::fs::write(&file, format!("{} = {bad}\n", s.key)).unwrap();
        let e = Config::load(Some(&file), &env(&base()), false)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(&format!("{} in ", s.key)), "{e}");
        checked += 1;
    }
    assert!(checked >= 8, "{checked} ranges");
}

#[test]
fn a_password_that_would_stay_on_the_tools_command_line_is_refused() {
    for url in [
        "postgresql://app:se?cret@db/app",
        "postgresql://app@db/app?pass%77ord=secret",
    ] {
        let mut vars = env(&base());
        vars.insert("BERKUT_DATABASE_URL".into(), url.into());
        let err = Config::load(None, &vars, false).unwrap_err().to_string();
        assert!(err.contains("percent-encode"), "{url}: {err}");
        assert!(!err.contains("secret"), "{err}");
    }
    // The ordinary spellings load.
    for url in [
        "postgresql://app:se%3Fcret@db/app",
        "host=/run/pg user=app password = 'se cret' dbname=app",
    ] {
        let mut vars = env(&base());
        vars.insert("BERKUT_DATABASE_URL".into(), url.into());
        Config::load(None, &vars, false).unwrap();
    }
}

/// The plain list keeps working with the safe defaults (redacted, nothing
/// excluded); `[[file_root]]` adds roots with their own rules; both end up
/// in `file_roots`, which restores use.
#[test]
fn file_roots_and_file_root_entries_make_one_list_of_rules() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("berkutd.toml");
    std::fs::write(
        &file,
        "file_roots = [\"/srv/uploads\"]\nredact_keys = [\"License-ID\"]\n\
         [[file_root]]\npath = \"/srv/app/config\"\nexclude = [\"*.key\", \"secrets/**\"]\n\
         [[file_root]]\npath = \"/srv/app/public\"\nredact = false\n",
    )
    .unwrap();
    let c = Config::load(Some(&file), &env(&base()), false).unwrap();
    let roots: Vec<_> = c
        .file_roots
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    assert_eq!(
        roots,
        ["/srv/uploads", "/srv/app/config", "/srv/app/public"]
    );
    let rules: Vec<_> = c
        .file_rules
        .iter()
        .map(|r| (r.exclude.len(), r.redact))
        .collect();
    assert_eq!(rules, [(0, true), (2, true), (0, false)]);
    let config = &c.file_rules[1];
    for (rel, hit) in [
        ("tls/server.key", Some("*.key")),
        ("secrets/db/pass.txt", Some("secrets/**")),
        ("app.yaml", None),
    ] {
        assert_eq!(
            crate::config::excluded_by(config, std::path::Path::new(rel)).as_deref(),
            hit,
            "{rel}"
        );
    }
    assert_eq!(c.redact_keys, ["licenseid"]);
    assert_eq!(c.file_max_bytes, 64 << 20);
    assert_eq!(c.files_max_total_bytes, 1 << 30);

    std::fs::write(
        &file,
        "file_roots = [\"/a\"]\n[[file_root]]\npath = \"/a\"\n",
    )
    .unwrap();
    let e = Config::load(Some(&file), &env(&base()), false)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "file_roots and [[file_root]]: the root /a is configured twice"
    );
}
