//! `--include-files` of configuration (issue 18, R16): a fixture tree with
//! an `.env`, a YAML and a TOML file holding secrets, a PEM key and an
//! ordinary file goes into the archive with its secrets replaced and the
//! key left out; no secret of the fixture is anywhere in the archive (every
//! part extracted and searched), the daemon's log, the evidence or any
//! reply; the manifest and `backup show` say what happened; a restore puts
//! the files back and says they are redacted. Also: the per-root rules of
//! `[[file_root]]`, and faults that must not fail or leak (a root missing
//! or linking to `/`, a FIFO).

use std::path::Path;

use berkut_proto::manifest::{FileOutcome, Manifest, MANIFEST_PART};
use berkut_proto::wire::{ops, BackupStatus, ErrorCode, Operation, Reply, RestoreStatus};

use crate::helpers::*;

/// The fixture's secret values: none may appear anywhere.
const SECRETS: &[&str] = &[
    "env-pass-7f3a9c",
    "url-pass-2b8e1d",
    "yaml-pass-5c0f4e",
    "toml-key-9d1a6b",
    "pem-body-4e2f8a1b",
];

const ENV: &str = "APP_ENV=production\nDB_PASSWORD=env-pass-7f3a9c\n\
                   DATABASE_URL=postgres://app:url-pass-2b8e1d@db:5432/app\n";
const ENV_REDACTED: &str = "APP_ENV=production\nDB_PASSWORD=BERKUT-REDACTED\n\
                            DATABASE_URL=postgres://app:BERKUT-REDACTED@db:5432/app\n";
const YAML: &str = "server:\n  port: 8080   # public\ndatabase:\n  user: app\n  \
                    password: yaml-pass-5c0f4e\n";
const YAML_REDACTED: &str = "server:\n  port: 8080   # public\ndatabase:\n  user: app\n  \
                             password: \"BERKUT-REDACTED\"\n";
const TOML: &str = "[service]\nname = \"app\"\n\n[service.auth]\napi_key = \"toml-key-9d1a6b\"\n";
const TOML_REDACTED: &str =
    "[service]\nname = \"app\"\n\n[service.auth]\napi_key = \"BERKUT-REDACTED\"\n";
const PEM: &str = "-----BEGIN PRIVATE KEY-----\npem-body-4e2f8a1b\n-----END PRIVATE KEY-----\n";
const README: &str = "Ordinary notes: deploy with make.\n";

fn fixture(root: &Path) {
    std::fs::create_dir_all(root.join("tls")).unwrap();
    std::fs::write(root.join(".env"), ENV).unwrap();
    std::fs::write(root.join("app.yaml"), YAML).unwrap();
    std::fs::write(root.join("app.toml"), TOML).unwrap();
    std::fs::write(root.join("tls/server.pem"), PEM).unwrap();
    std::fs::write(root.join("readme.txt"), README).unwrap();
}

#[track_caller]
fn assert_no_secret(what: &str, bytes: &[u8]) {
    for s in SECRETS {
        assert!(
            !bytes.windows(s.len()).any(|w| w == s.as_bytes()),
            "{what} holds the fixture secret {s}"
        );
    }
}

/// The files part as path → content (a link's target for a link).
fn files_part(parts: &[(String, Vec<u8>)]) -> std::collections::BTreeMap<String, Vec<u8>> {
    let tar_bytes = &parts.iter().find(|(n, _)| n == "files.tar").unwrap().1;
    let mut out = std::collections::BTreeMap::new();
    for entry in tar::Archive::new(&tar_bytes[..]).entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().display().to_string();
        let mut content = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut content).unwrap();
        out.insert(path, content);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_is_archived_without_its_secrets_and_restored_marked_redacted() {
    let pg = small_cluster();
    let dir = berkut_testkit::temp_dir("redact-");
    let root = dir.path().join("config");
    fixture(&root);
    let config = dir.path().join("berkutd.toml");
    std::fs::write(
        &config,
        format!("[[file_root]]\npath = {:?}\n", root.display().to_string()),
    )
    .unwrap();
    let daemon = daemon_for(&pg)
        .arg("--config")
        .arg(config.display().to_string())
        .start();
    let mut client = daemon.client().await;

    let record = backup_with_files_now(&mut client).await;
    assert_eq!(record.status, BackupStatus::Succeeded, "{record:?}");

    // Every part of the archive, decrypted with the kit, and searched.
    let parts = read_parts(&daemon, &record.id);
    for (name, bytes) in &parts {
        assert_no_secret(&format!("the archive's part {name}"), bytes);
    }
    let files = files_part(&parts);
    let base = root.strip_prefix("/").unwrap().display().to_string();
    let file = |name: &str| {
        files
            .get(&format!("{base}/{name}"))
            .map(|b| String::from_utf8_lossy(b).into_owned())
    };
    assert_eq!(
        file("readme.txt").as_deref(),
        Some(README),
        "the ordinary file is unchanged"
    );
    assert_eq!(file(".env").as_deref(), Some(ENV_REDACTED));
    assert_eq!(file("app.yaml").as_deref(), Some(YAML_REDACTED));
    assert_eq!(file("app.toml").as_deref(), Some(TOML_REDACTED));
    assert_eq!(file("tls/server.pem"), None, "the key file is not archived");

    // The manifest says what happened to each.
    let manifest: Manifest =
        serde_json::from_slice(&parts.iter().find(|(n, _)| n == MANIFEST_PART).unwrap().1).unwrap();
    let entry = |name: &str| {
        manifest
            .files
            .iter()
            .find(|f| f.path == format!("{base}/{name}"))
            .unwrap_or_else(|| panic!("{name} in {:#?}", manifest.files))
    };
    assert_eq!(entry("readme.txt").outcome, FileOutcome::Archived);
    assert_eq!(entry(".env").outcome, FileOutcome::Redacted);
    assert_eq!(
        entry(".env").keys,
        ["DB_PASSWORD", "DATABASE_URL (URL password)"]
    );
    assert_eq!(entry("app.yaml").keys, ["database.password"]);
    assert_eq!(entry("app.toml").keys, ["service.auth.api_key"]);
    let pem = entry("tls/server.pem");
    assert_eq!(pem.outcome, FileOutcome::Excluded);
    assert_eq!(pem.reason.as_deref(), Some("holds a private key (PEM)"));

    // `backup show` lists them, in the record and on the command line.
    let summary = record.files.as_deref().expect("the record has the files");
    assert_eq!(summary.archived, 1);
    assert_eq!(summary.redacted().count(), 3);
    let shown = ctl(&daemon, &["backup", "show", record.id.as_str()]).ok();
    assert!(
        shown
            .stdout
            .contains("1 archived as they are, 3 redacted, 1 left out")
            && shown
                .stdout
                .contains("values of DB_PASSWORD, DATABASE_URL (URL password)")
            && shown
                .stdout
                .contains("tls/server.pem: holds a private key (PEM)"),
        "{}",
        shown.stdout
    );
    assert_no_secret("backup show", shown.stdout.as_bytes());

    // A real restore puts the files back as archived and says so.
    std::fs::write(root.join("readme.txt"), "changed since").unwrap();
    let restored = restored(client.call(restore_op(&record.id, false, true)).await);
    assert_eq!(restored.status, RestoreStatus::Succeeded, "{restored:#?}");
    let mut redacted = restored.redacted_files.clone();
    redacted.sort();
    assert_eq!(
        redacted,
        [".env", "app.toml", "app.yaml"].map(|n| format!("{base}/{n}"))
    );
    let detail = restored.step("files").unwrap().detail.clone().unwrap();
    assert!(
        detail.contains("3 written back redacted (secret values replaced by BERKUT-REDACTED, not working copies)"),
        "{detail}"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("readme.txt")).unwrap(),
        README
    );
    assert_eq!(
        std::fs::read_to_string(root.join(".env")).unwrap(),
        ENV_REDACTED
    );
    assert_eq!(
        std::fs::read_to_string(root.join("app.toml")).unwrap(),
        TOML_REDACTED
    );
    assert!(!root.join("tls/server.pem").exists());

    let Ok(Reply::Evidence { evidence }) = client
        .call(Operation::RestoreEvidence(ops::RestoreEvidence {
            restore_id: restored.restore_id.clone(),
        }))
        .await
    else {
        panic!("no evidence")
    };
    let evidence = serde_json::to_vec(&evidence).unwrap();
    assert_no_secret("the evidence", &evidence);
    let text = String::from_utf8_lossy(&evidence);
    assert!(text.contains("left out at backup time") && text.contains("redacted at backup time"));
    let status = ctl(
        &daemon,
        &["restore", "status", restored.restore_id.as_str()],
    )
    .ok();
    assert!(
        status.stdout.contains("written back redacted"),
        "{}",
        status.stdout
    );

    assert_no_secret("the daemon's log", daemon.log().as_bytes());
}

/// `[[file_root]]` rules: globs exclude, `redact = false` keeps values (but
/// never a key file), and the plain list still redacts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_root_rules_exclude_and_switch_redaction() {
    let pg = small_cluster();
    let dir = berkut_testkit::temp_dir("redact-rules-");
    let (globbed, verbatim, plain) = (
        dir.path().join("globbed"),
        dir.path().join("verbatim"),
        dir.path().join("plain"),
    );
    for root in [&globbed, &verbatim, &plain] {
        fixture(root);
    }
    std::fs::create_dir_all(globbed.join("secrets")).unwrap();
    std::fs::write(globbed.join("secrets/token.txt"), "x").unwrap();
    let config = dir.path().join("berkutd.toml");
    std::fs::write(
        &config,
        format!(
            "file_roots = [{:?}]\n\
             [[file_root]]\npath = {:?}\nexclude = [\"*.yaml\", \"secrets/**\"]\n\
             [[file_root]]\npath = {:?}\nredact = false\n",
            plain.display().to_string(),
            globbed.display().to_string(),
            verbatim.display().to_string()
        ),
    )
    .unwrap();
    let daemon = daemon_for(&pg)
        .arg("--config")
        .arg(config.display().to_string())
        .start();
    let mut client = daemon.client().await;
    let record = backup_with_files_now(&mut client).await;
    assert_eq!(record.status, BackupStatus::Succeeded, "{record:?}");
    let parts = read_parts(&daemon, &record.id);
    let files = files_part(&parts);
    let get = |root: &Path, name: &str| {
        files
            .get(&format!(
                "{}/{name}",
                root.strip_prefix("/").unwrap().display()
            ))
            .map(|b| String::from_utf8_lossy(b).into_owned())
    };
    assert_eq!(get(&plain, ".env").as_deref(), Some(ENV_REDACTED));
    assert_eq!(get(&globbed, "app.yaml"), None);
    assert_eq!(get(&globbed, "secrets/token.txt"), None);
    assert_eq!(get(&globbed, "app.toml").as_deref(), Some(TOML_REDACTED));
    assert_eq!(
        get(&verbatim, ".env").as_deref(),
        Some(ENV),
        "redact = false"
    );
    assert_eq!(
        get(&verbatim, "tls/server.pem"),
        None,
        "a key file never goes in"
    );
    let notable = &record.files.as_deref().unwrap().notable;
    let yaml = format!("{}/app.yaml", globbed.strip_prefix("/").unwrap().display());
    let why = notable.iter().find(|f| f.path == yaml).unwrap();
    assert_eq!(why.reason.as_deref(), Some("exclude glob \"*.yaml\""));
}

/// A root that is missing or links to `/`, a FIFO, a YAML bomb and deeply
/// nested JSON in a root do not fail the backup, hang it, or pull in the
/// whole system: each is left out and named. A file over the per-backup limit refuses the backup clearly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_roots_and_special_files_are_noted_and_limits_refuse() {
    let pg = small_cluster();
    let dir = berkut_testkit::temp_dir("redact-faults-");
    let good = dir.path().join("good");
    fixture(&good);
    nix::unistd::mkfifo(&good.join("pipe"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    // A "billion laughs" YAML and JSON nested 100000 deep.
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for (prev, name) in "abcdefghi".chars().zip("bcdefghij".chars()) {
        bomb += &format!(
            "{name}: &{name} [{}]\n",
            vec![format!("*{prev}"); 10].join(", ")
        );
    }
    std::fs::write(good.join("bomb.yaml"), bomb).unwrap();
    std::fs::write(
        good.join("deep.json"),
        format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)),
    )
    .unwrap();
    let slash = dir.path().join("slash");
    std::os::unix::fs::symlink("/", &slash).unwrap();
    let missing = dir.path().join("missing");
    let roots = [&good, &slash, &missing]
        .map(|p| p.display().to_string())
        .join(":");
    let mut daemon = daemon_for(&pg)
        .env("BERKUT_BACKUP_FILE_ROOTS", roots.clone())
        .start();
    let mut client = daemon.client().await;
    let record = backup_with_files_now(&mut client).await;
    assert_eq!(record.status, BackupStatus::Succeeded, "{record:?}");
    let notable = &record.files.as_deref().unwrap().notable;
    let reason = |p: &Path| {
        let path = p.strip_prefix("/").unwrap().display().to_string();
        notable
            .iter()
            .find(|f| f.path == path)
            .and_then(|f| f.reason.clone())
            .unwrap_or_else(|| panic!("{path} in {notable:#?}"))
    };
    assert_eq!(reason(&slash), "the root is a symbolic link to /");
    assert_eq!(reason(&missing), "the root is missing");
    assert_eq!(reason(&good.join("pipe")), "a FIFO, skipped");
    assert_eq!(
        reason(&good.join("bomb.yaml")),
        "YAML whose aliases expand to more than 1000000 nodes (a YAML bomb)"
    );
    assert_eq!(
        reason(&good.join("deep.json")),
        "JSON nested deeper than 128 levels"
    );
    let parts = read_parts(&daemon, &record.id);
    let files = files_part(&parts);
    assert!(
        files
            .keys()
            .all(|k| k.starts_with(&good.strip_prefix("/").unwrap().display().to_string())),
        "only the good root is archived: {:?}",
        files.keys().take(5).collect::<Vec<_>>()
    );
    drop(client);
    daemon.stop();

    let daemon = daemon_for(&pg)
        .env("BERKUT_BACKUP_FILE_ROOTS", good.display().to_string())
        .env("BERKUT_BACKUP_FILES_MAX_TOTAL_BYTES", "64")
        .start();
    let mut client = daemon.client().await;
    let record = backup_with_files_now(&mut client).await;
    assert_eq!(record.status, BackupStatus::Failed);
    let failure = record.failure.unwrap();
    assert_eq!(failure.code, ErrorCode::TooLarge);
    assert!(
        failure.reason.contains("files_max_total_bytes (64 bytes)"),
        "{}",
        failure.reason
    );
    assert_no_secret("the failure", failure.reason.as_bytes());
    assert_no_secret("the daemon's log", daemon.log().as_bytes());
}
