//! `berkutctl backup create`: JSON lines, the human record, the progress bar
//! on a terminal, and the exit code of a failed backup.

use std::process::Command;

use crate::helpers::*;

#[test]
fn wait_json_streams_progress_then_the_record() {
    let env = env();
    let run = ctl(
        &env.daemon,
        &["backup", "create", "--label", "nightly", "--wait", "--json"],
    )
    .ok();
    let lines = run.json_lines();
    assert!(lines.len() >= 2, "{}", run.stdout);
    for line in &lines[..lines.len() - 1] {
        assert_eq!(line["event"], "progress", "{line}");
        assert!(line["job_id"].is_string() && line["phase"].is_string());
    }
    let record = lines.last().unwrap();
    assert_record_shape(record);
    assert_eq!(record["status"], "succeeded");
    assert_eq!(record["label"], "nightly");
    assert_eq!(record["scope"], "full");
    assert_eq!(record["origin"], "manual");
    assert_eq!(record["key_id"], env.daemon.key.key_id().to_string());
    let id = record["id"].as_str().unwrap();
    let size = std::fs::metadata(env.daemon.archive_path(id))
        .unwrap()
        .len();
    assert_eq!(record["size_bytes"], size);
}

#[test]
fn without_json_the_record_is_printed_for_people() {
    let env = env();
    let run = ctl(
        &env.daemon,
        &["backup", "create", "--scope", "schema", "--wait"],
    )
    .ok();
    assert!(
        run.stdout.contains("status:        succeeded"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("scope:         schema"),
        "{}",
        run.stdout
    );
    // Not a terminal: no progress bar escape codes anywhere.
    assert!(
        !run.stderr.contains('\r') && !run.stderr.contains('\u{1b}'),
        "{:?}",
        run.stderr
    );

    let queued = ctl(&env.daemon, &["backup", "create", "--json"])
        .ok()
        .last_json();
    assert_record_shape(&queued);
    assert!(
        queued["status"] == "queued" || queued["status"] == "running",
        "{queued}"
    );
}

#[test]
fn a_failed_backup_exits_non_zero_with_the_reason() {
    let bin = berkut_testkit::temp_dir("fake-");
    let fake = berkut_testkit::fake_pg_dump(
        bin.path(),
        "pg_dump",
        "echo 'pg_dump: error: boom' >&2; exit 2",
    );
    let env = env_with(|b| b.pg_dump(&fake));
    let run = ctl(&env.daemon, &["backup", "create", "--wait"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("failed"), "{}", run.stderr);
    assert!(
        run.stderr.contains("pg_dump failed (exit status 2)"),
        "{}",
        run.stderr
    );

    let json = ctl(&env.daemon, &["backup", "create", "--wait", "--json"]);
    assert_eq!(json.code, 1);
    let record = json.last_json();
    assert_eq!(record["status"], "failed");
    assert_eq!(record["failure"]["code"], "internal");
}

#[test]
fn bad_arguments_are_refused() {
    let env = env();
    let run = ctl(&env.daemon, &["backup", "create", "--scope", "everything"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("unknown scope"), "{}", run.stderr);
    let label = "x".repeat(300);
    let run = ctl(&env.daemon, &["backup", "create", "--label", &label]);
    assert_eq!(run.code, 9, "{}", run.stderr);
    assert!(run.stderr.contains("invalid"), "{}", run.stderr);
    env.pg.stop().unwrap();
    let run = ctl(&env.daemon, &["backup", "create", "--wait"]);
    assert_eq!(run.code, 8, "{}", run.stderr);
    assert!(run.stderr.contains("unavailable"), "{}", run.stderr);
}

/// On a terminal (a pseudo-terminal made by `script`), `--wait` draws a
/// live progress bar on stderr.
#[test]
fn on_a_terminal_wait_shows_a_progress_bar() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!(
            "skipped: `script` (util-linux) is not installed, so no pseudo-terminal can be made"
        );
        return;
    }
    let env = env();
    let cmd = format!("{} backup create --wait", ctl_bin());
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("BERKUT_SOCKET", &env.daemon.socket)
        .env("TERM", "xterm")
        .output()
        .unwrap();
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{screen}");
    assert!(
        screen.contains("tables"),
        "no progress bar drawn: {screen:?}"
    );
    assert!(screen.contains("status:        succeeded"), "{screen}");
}
