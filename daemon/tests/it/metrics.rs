//! Prometheus metrics end to end: the textfile for node_exporter, checked
//! by `promtool check metrics` (Debian's `prometheus` package, installed by
//! scripts/ensure-deps.sh), its figures following backups that succeed and
//! fail and surviving a restart, never seen half-written while the daemon
//! replaces it, and a path the daemon cannot write refused at start and at
//! reload.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use berkut_proto::manifest::Scope;
use berkut_proto::wire::BackupStatus;
use berkut_testkit::{fake_pg_dump, pg_bin_dir, wait_for, workspace_bin};
use nix::sys::signal::Signal;

use crate::helpers::*;

/// The value of the series `series` (name and labels exactly as written).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Runs `promtool check metrics` on `text`; panics with its words if it
/// finds a problem.
pub fn promtool_accepts(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs (scripts/ensure-deps.sh installs Debian's prometheus package)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A pg_dump that fails while `flag` exists and dumps for real otherwise.
fn switchable_pg_dump(dir: &Path) -> (PathBuf, PathBuf) {
    let flag = dir.join("fail");
    let fake = fake_pg_dump(
        dir,
        "pg_dump",
        &format!(
            "if [ -e {} ]; then exit 1; fi\nexec {} \"$@\"",
            flag.display(),
            pg_bin_dir().join("pg_dump").display()
        ),
    );
    (fake, flag)
}

/// Waits until the file at `path` satisfies `check`, and returns its text.
fn file_when(path: &Path, what: &str, check: impl Fn(&str) -> bool) -> String {
    wait_for(what, LONG, || {
        std::fs::read_to_string(path).ok().filter(|t| check(t))
    })
}

const OK_MANUAL: &str = "berkut_backup_runs_total{origin=\"manual\",result=\"succeeded\"}";
const DRILLS_OK: &str = "berkut_restore_runs_total{kind=\"drill\",result=\"succeeded\"}";
const FAILED_MANUAL: &str = "berkut_backup_runs_total{origin=\"manual\",result=\"failed\"}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_textfile_parses_follows_backups_and_survives_a_restart() {
    let pg = small_cluster();
    let dir = berkut_testkit::temp_dir("metrics-");
    let prom = dir.path().join("berkut.prom");
    let (fake, flag) = switchable_pg_dump(dir.path());
    let mut daemon = daemon_for(&pg)
        .pg_dump(&fake)
        .env("BERKUT_METRICS_TEXTFILE", prom.display().to_string())
        .start();
    let text = file_when(&prom, "the first textfile", |_| true);
    promtool_accepts(&text);
    assert_eq!(value(&text, "berkut_up"), Some(1.0));
    assert_eq!(value(&text, OK_MANUAL), Some(0.0));
    assert_eq!(value(&text, "berkut_backups_stored"), Some(0.0));
    assert_eq!(value(&text, "berkut_rpo_breached"), Some(0.0));
    assert!(value(&text, "berkut_backup_dir_free_bytes").unwrap() > 0.0);
    assert!(!text.contains("berkut_backup_last_success_timestamp_seconds "));
    assert!(text.contains(&format!(
        "berkut_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    )));

    // A reader in a loop while the daemon replaces the file: every read
    // is a whole file (the last family is there, the last line ends).
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (stop, prom) = (Arc::clone(&stop), prom.clone());
        std::thread::spawn(move || {
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let text = std::fs::read_to_string(&prom).expect("the file is always there");
                assert!(
                    text.ends_with('\n') && text.contains("# TYPE berkut_restore_runs_total"),
                    "a torn read: {text:?}"
                );
                reads += 1;
            }
            reads
        })
    };

    let mut client = daemon.client().await;
    let good = backup_now(&mut client, Scope::Database).await;
    assert_eq!(good.status, BackupStatus::Succeeded);
    let text = file_when(&prom, "the success counted", |t| {
        value(t, OK_MANUAL) == Some(1.0)
    });
    promtool_accepts(&text);
    assert_eq!(value(&text, "berkut_backups_stored"), Some(1.0));
    assert_eq!(
        value(&text, "berkut_backup_last_size_bytes"),
        good.size_bytes.map(|s| s as f64)
    );
    assert_eq!(
        value(&text, "berkut_backup_last_success_timestamp_seconds"),
        good.finished_at.map(|t| t.unix_timestamp() as f64)
    );
    assert!(value(&text, "berkut_backup_oldest_timestamp_seconds").is_some());

    // A drill: the restore counter and the drill's time.
    let drill = restored(client.call(restore_op(&good.id, true, false)).await);
    let drill = restore_outcome(&mut client, drill.restore_id).await;
    assert_eq!(drill.status, berkut_proto::wire::RestoreStatus::Succeeded);
    let text = file_when(&prom, "the drill counted", |t| {
        value(t, DRILLS_OK) == Some(1.0)
    });
    assert_eq!(
        value(&text, "berkut_drill_last_success_timestamp_seconds"),
        drill.finished_at.map(|t| t.unix_timestamp() as f64)
    );

    std::fs::write(&flag, "").unwrap();
    let failed = backup_now(&mut client, Scope::Database).await;
    assert_eq!(failed.status, BackupStatus::Failed);
    let text = file_when(&prom, "the failure counted", |t| {
        value(t, FAILED_MANUAL) == Some(1.0)
    });
    promtool_accepts(&text);
    assert_eq!(
        value(&text, "berkut_backup_last_failure_timestamp_seconds"),
        failed.finished_at.map(|t| t.unix_timestamp() as f64)
    );
    assert_eq!(value(&text, OK_MANUAL), Some(1.0));
    assert_eq!(value(&text, "berkut_backups_stored"), Some(1.0));
    stop.store(true, Ordering::Relaxed);
    let reads = reader.join().expect("no torn read");
    assert!(reads > 10, "{reads} reads");

    // The counters come back from the records after a restart.
    daemon.stop();
    std::fs::remove_file(&prom).unwrap();
    daemon.restart();
    let text = file_when(&prom, "the textfile after a restart", |_| true);
    assert_eq!(value(&text, OK_MANUAL), Some(1.0));
    assert_eq!(value(&text, FAILED_MANUAL), Some(1.0));
    assert_eq!(value(&text, DRILLS_OK), Some(1.0));
    assert!(value(&text, "berkut_drill_last_success_timestamp_seconds").is_some());
}

/// berkutd with `BERKUT_METRICS_TEXTFILE=path`, expected to refuse to
/// start; returns its stderr.
fn refused_start(path: &str) -> String {
    let dir = berkut_testkit::temp_dir("metrics-");
    let out = Command::new(workspace_bin("berkutd"))
        .env_clear()
        .env("BERKUT_DATABASE_URL", "postgresql:///app")
        .env("BERKUT_BACKUP_ENCRYPTION_KEY", "ab".repeat(32))
        .env("BERKUT_STATE_DIR", dir.path().join("state"))
        .env("BERKUT_METRICS_TEXTFILE", path)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(!dir.path().join("state").exists(), "nothing is created");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_textfile_in_a_missing_or_unwritable_directory_stops_the_start() {
    let missing = refused_start("/nonexistent-berkut-dir/berkut.prom");
    assert!(
        missing.contains("BERKUT_METRICS_TEXTFILE")
            && missing.contains("/nonexistent-berkut-dir")
            && missing.contains("cannot be used"),
        "{missing}"
    );
    // sysfs refuses new files even to root.
    let unwritable = refused_start("/sys/fs/berkut.prom");
    assert!(
        unwritable.contains("BERKUT_METRICS_TEXTFILE")
            && unwritable.contains("cannot write in /sys/fs"),
        "{unwritable}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_to_an_unwritable_textfile_is_refused_and_the_old_one_stays_in_use() {
    let pg = small_cluster();
    let dir = berkut_testkit::temp_dir("metrics-");
    let prom = dir.path().join("berkut.prom");
    let config = dir.path().join("berkutd.toml");
    std::fs::write(
        &config,
        format!("metrics_textfile = \"{}\"\n", prom.display()),
    )
    .unwrap();
    let daemon = daemon_for(&pg)
        .arg("--config")
        .arg(config.display().to_string())
        .start();
    file_when(&prom, "the textfile", |t| value(t, OK_MANUAL) == Some(0.0));
    std::fs::write(
        &config,
        "metrics_textfile = \"/nonexistent-berkut-dir/berkut.prom\"\n",
    )
    .unwrap();
    daemon.signal(Signal::SIGHUP);
    let log = wait_for("the refused reload", LONG, || {
        let log = daemon.log();
        log.contains("configuration reload refused").then_some(log)
    });
    assert!(
        log.contains("metrics_textfile") && log.contains("/nonexistent-berkut-dir"),
        "{log}"
    );
    // The path in force is still written after a job.
    let mut client = daemon.client().await;
    backup_now(&mut client, Scope::Database).await;
    file_when(&prom, "the old textfile updated", |t| {
        value(t, OK_MANUAL) == Some(1.0)
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_socket_serves_the_same_metrics_when_the_textfile_cannot_be_written() {
    let pg = small_cluster();
    let dir = berkut_testkit::temp_dir("metrics-");
    let textdir = dir.path().join("node-exporter");
    std::fs::create_dir(&textdir).unwrap();
    let prom = textdir.join("berkut.prom");
    let daemon = daemon_for(&pg)
        .env("BERKUT_METRICS_TEXTFILE", prom.display().to_string())
        .start();
    let from_file = file_when(&prom, "the textfile", |_| true);
    // Through berkutctl, as a user would: the same text (but the free
    // space of the backup directory, which moves with everything else on
    // the machine).
    let run = ctl(&daemon, &["metrics"]).ok();
    promtool_accepts(&run.stdout);
    let steady = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| !l.starts_with("berkut_backup_dir_free_bytes"))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(steady(&run.stdout), steady(&from_file));
    let json = ctl(&daemon, &["--json", "metrics"]).ok().last_json();
    assert_eq!(steady(json["text"].as_str().unwrap()), steady(&from_file));

    // The textfile's directory goes away: the log says so once, and the
    // socket goes on answering, its figures moving.
    std::fs::remove_dir_all(&textdir).unwrap();
    let mut client = daemon.client().await;
    backup_now(&mut client, Scope::Database).await;
    wait_for("the write failure in the log", LONG, || {
        daemon
            .log()
            .contains("cannot write the metrics textfile")
            .then_some(())
    });
    let text = ctl(&daemon, &["metrics"]).ok().stdout;
    promtool_accepts(&text);
    assert_eq!(value(&text, OK_MANUAL), Some(1.0));
    assert_eq!(value(&text, "berkut_backups_stored"), Some(1.0));
}
