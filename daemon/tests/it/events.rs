//! Notifications end to end: the real daemon delivering events to a real
//! HTTP receiver on 127.0.0.1 (`berkut_testkit::webhook`) and to hook
//! programs. A failed backup, a breached and recovered RPO, a failed drill
//! and a crash arrive signed; endpoints that are down, hang, fail or
//! redirect are retried, then dropped with a log line, and the jobs go on;
//! a hanging hook is killed at its timeout.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use berkut_proto::manifest::Scope;
use berkut_proto::wire::{ops, BackupStatus, Operation, RestoreStatus};
use berkut_testkit::{
    closed_url, fake_pg_dump, fake_tool, pg_bin_dir, wait_for, Answer, DaemonBuilder, Receiver,
};

use crate::helpers::*;

const SECRET: &[u8] = b"webhook-secret-for-tests";

/// A secret file (mode 0600) in `dir`.
fn secret_file(dir: &Path) -> PathBuf {
    let path = dir.join("webhook.secret");
    let mut text = SECRET.to_vec();
    text.push(b'\n');
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// A `[[notify]]` webhook entry for `url`.
fn webhook(url: &str, secret: &Path, extra: &str) -> String {
    format!(
        "[[notify]]\nkind = \"webhook\"\nurl = \"{url}\"\nsecret_file = \"{}\"\n{extra}\n",
        secret.display()
    )
}

/// A configuration file holding `text`, given to the daemon.
fn with_config(builder: DaemonBuilder, dir: &Path, text: &str) -> DaemonBuilder {
    let path = dir.join("berkutd.toml");
    std::fs::write(&path, text).unwrap();
    builder.arg("--config").arg(path.display().to_string())
}

/// A pg_dump that fails while `flag` exists and dumps for real otherwise.
fn switchable_pg_dump(dir: &Path) -> (PathBuf, PathBuf) {
    let flag = dir.join("fail");
    let real = pg_bin_dir().join("pg_dump");
    let fake = fake_pg_dump(
        dir,
        "pg_dump",
        &format!(
            "if [ -e {} ]; then echo 'pg_dump: error: no good at /var/lib/secret' >&2; exit 1; fi\nexec {} \"$@\"",
            flag.display(),
            real.display()
        ),
    );
    (fake, flag)
}

/// Waits until `receiver` has `n` events of `kind`, and returns them.
fn events(receiver: &Receiver, kind: &str, n: usize) -> Vec<berkut_testkit::webhook::Request> {
    wait_for(&format!("{n} {kind} event(s)"), LONG, || {
        let got = receiver.events(kind);
        (got.len() >= n).then_some(got)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_backup_and_the_rpo_reach_the_webhook_signed() {
    let pg = small_cluster();
    let dir = berkut_testkit::temp_dir("events-");
    let receiver = Receiver::start(Answer::Ok);
    let secret = secret_file(dir.path());
    let (fake, flag) = switchable_pg_dump(dir.path());
    let daemon = with_config(
        daemon_for(&pg).pg_dump(&fake),
        dir.path(),
        &webhook(&receiver.url(), &secret, ""),
    )
    .start();
    let mut client = daemon.client().await;

    std::fs::write(&flag, "").unwrap();
    let failed = backup_now(&mut client, Scope::Database).await;
    assert_eq!(failed.status, BackupStatus::Failed);
    let got = events(&receiver, "backup_failed", 1);
    let event = &got[0];
    assert_eq!(event.method, "POST");
    assert_eq!(event.header("Content-Type"), Some("application/json"));
    assert!(event.signed_with(SECRET), "{:?}", event.headers);
    assert!(!event.signed_with(b"another secret"));
    let json = event.json();
    assert_eq!(json["backup_id"], failed.id.as_str());
    assert!(
        json["reason"].as_str().unwrap().contains("pg_dump failed"),
        "{json}"
    );
    assert!(!json["host"].as_str().unwrap().is_empty());
    let body = String::from_utf8_lossy(&event.body);
    for secret in [
        "/var/lib",
        "postgresql://",
        "webhook-secret",
        &*daemon.key.to_base64(),
    ] {
        assert!(!body.contains(secret), "{secret} in {body}");
    }

    // A plan and no good backup: breached. A good backup: recovered.
    plan(
        client
            .call(Operation::PlanSet(ops::PlanSet {
                plan: spec(
                    serde_json::json!({"preset": "daily", "at": "02:00", "timezone": "UTC"}),
                ),
            }))
            .await,
    );
    let breached = events(&receiver, "rpo_breached", 1);
    assert!(breached[0].signed_with(SECRET));
    assert!(receiver.events("rpo_recovered").is_empty());
    std::fs::remove_file(&flag).unwrap();
    let good = backup_now(&mut client, Scope::Database).await;
    assert_eq!(good.status, BackupStatus::Succeeded);
    let recovered = events(&receiver, "rpo_recovered", 1);
    assert!(recovered[0].signed_with(SECRET));
    assert_eq!(
        receiver.events("rpo_breached").len(),
        1,
        "only changes are events"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_drill_reaches_the_webhook_and_a_filter_keeps_other_events_out() {
    let pg = small_cluster();
    let dir = berkut_testkit::temp_dir("events-");
    let everything = Receiver::start(Answer::Ok);
    let drills_only = Receiver::start(Answer::Ok);
    let secret = secret_file(dir.path());
    let (fake, flag) = switchable_pg_dump(dir.path());
    let failing_restore = fake_tool(dir.path(), "pg_restore", "exit 1");
    let config = webhook(&everything.url(), &secret, "")
        + &webhook(&drills_only.url(), &secret, "events = [\"drill_failed\"]");
    let daemon = with_config(
        daemon_for(&pg).pg_dump(&fake).pg_restore(&failing_restore),
        dir.path(),
        &config,
    )
    .start();
    let mut client = daemon.client().await;
    let good = backup_now(&mut client, Scope::Database).await;
    assert_eq!(good.status, BackupStatus::Succeeded);
    std::fs::write(&flag, "").unwrap();
    let failed = backup_now(&mut client, Scope::Database).await;
    assert_eq!(failed.status, BackupStatus::Failed);
    let started = restored(client.call(restore_op(&good.id, true, false)).await);
    let record = restore_outcome(&mut client, started.restore_id.clone()).await;
    assert_eq!(record.status, RestoreStatus::Failed);
    for receiver in [&everything, &drills_only] {
        let got = events(receiver, "drill_failed", 1);
        assert!(got[0].signed_with(SECRET));
        let json = got[0].json();
        assert_eq!(json["restore_id"], started.restore_id.as_str());
        assert_eq!(json["backup_id"], good.id.as_str());
    }
    // One sink's events arrive in the order they happened: the failed
    // backup came before the drill, so the filter has had its say.
    assert_eq!(everything.events("backup_failed").len(), 1);
    assert!(
        drills_only
            .requests()
            .iter()
            .all(|r| r.json()["type"] == "drill_failed"),
        "the filter lets only drill_failed through"
    );
    // A dry-run is a drill: no restore_started for it.
    assert!(everything.events("restore_started").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_down_hanging_failing_or_redirecting_are_retried_then_dropped_and_jobs_go_on() {
    let pg = small_cluster();
    let dir = berkut_testkit::temp_dir("events-");
    let secret = secret_file(dir.path());
    let (fake, flag) = switchable_pg_dump(dir.path());
    let failing = Receiver::start(Answer::Status(500));
    let redirecting = Receiver::start(Answer::Redirect);
    let slow = Receiver::start(Answer::Hang);
    // Holds its first attempt for five minutes: were delivery in the job's
    // way, no backup would end meanwhile.
    let stuck = Receiver::start(Answer::Hang);
    let quick = "timeout_seconds = 1\nretries = 1";
    let config = webhook(&closed_url(), &secret, quick)
        + &webhook(&failing.url(), &secret, quick)
        + &webhook(&redirecting.url(), &secret, quick)
        + &webhook(&slow.url(), &secret, quick)
        + &webhook(&stuck.url(), &secret, "timeout_seconds = 300\nretries = 0");
    let daemon = with_config(daemon_for(&pg).pg_dump(&fake), dir.path(), &config).start();
    let mut client = daemon.client().await;

    std::fs::write(&flag, "").unwrap();
    let failed = backup_now(&mut client, Scope::Database).await;
    assert_eq!(failed.status, BackupStatus::Failed);
    std::fs::remove_file(&flag).unwrap();
    let good = backup_now(&mut client, Scope::Database).await;
    assert_eq!(good.status, BackupStatus::Succeeded);
    assert_eq!(
        stuck.events("backup_failed").len(),
        1,
        "the hanging endpoint still holds the event while the jobs went on"
    );

    // Each failing endpoint got the first attempt and one retry, and the
    // event was then dropped with a log line naming the sink's host only.
    for receiver in [&failing, &redirecting, &slow] {
        let got = events(receiver, "backup_failed", 2);
        assert!(got.iter().all(|r| r.signed_with(SECRET)));
    }
    let log = wait_for("four dropped notifications in the log", LONG, || {
        let log = daemon.log();
        (log.matches("could not be delivered and was dropped")
            .count()
            >= 4)
            .then_some(log)
    });
    assert!(log.contains("answered 500"), "{log}");
    assert!(log.contains("a redirect, which is not followed"), "{log}");
    assert!(log.contains("no answer within 1 s"), "{log}");
    assert!(log.contains("could not connect"), "{log}");
    assert!(
        !log.contains("/hook"),
        "the URL's path stays out of the log"
    );
    assert!(
        redirecting.requests().iter().all(|r| r.path == "/hook"),
        "the redirect is not followed"
    );
    assert_eq!(failing.events("backup_failed").len(), 2, "no more retries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_hook_is_killed_at_its_timeout_and_a_crash_is_reported_at_the_next_start() {
    let pg = small_cluster();
    let dir = berkut_testkit::temp_dir("events-");
    let (fake, flag) = switchable_pg_dump(dir.path());
    let out = dir.path().join("hook");
    let hook = fake_tool(
        dir.path(),
        "hook.sh",
        &format!(
            "cat > {0}.json.tmp; mv {0}.json.tmp {0}.json; sleep 600 & echo $$ $! > {0}.pids; wait",
            out.display()
        ),
    );
    let receiver = Receiver::start(Answer::Ok);
    let secret = secret_file(dir.path());
    let config = format!(
        "[[notify]]\nkind = \"exec\"\ncommand = \"{}\"\ntimeout_seconds = 1\nevents = [\"backup_failed\"]\n",
        hook.display()
    ) + &webhook(&receiver.url(), &secret, "");
    let mut daemon = with_config(daemon_for(&pg).pg_dump(&fake), dir.path(), &config).start();
    let mut client = daemon.client().await;
    std::fs::write(&flag, "").unwrap();
    let failed = backup_now(&mut client, Scope::Database).await;
    assert_eq!(failed.status, BackupStatus::Failed);

    let json = wait_for("the hook's input", LONG, || {
        std::fs::read(dir.path().join("hook.json")).ok()
    });
    let json: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(json["type"], "backup_failed");
    assert_eq!(json["backup_id"], failed.id.as_str());
    let pids = wait_for("the hook's pids", LONG, || {
        std::fs::read_to_string(dir.path().join("hook.pids"))
            .ok()
            .filter(|t| t.ends_with('\n'))
    });
    for pid in pids.split_whitespace() {
        wait_for(&format!("hook process {pid} to be killed"), LONG, || {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            (stat.is_empty() || stat.contains(") Z ")).then_some(())
        });
    }
    wait_for("the timeout in the log", LONG, || {
        daemon
            .log()
            .contains("the hook was killed at its timeout of 1 s")
            .then_some(())
    });
    events(&receiver, "backup_failed", 1);
    assert!(receiver.events("daemon_crashed_restart").is_empty());

    // A clean stop is no crash; a kill is.
    daemon.stop();
    daemon.restart();
    let mut client = daemon.client().await;
    backup_now(&mut client, Scope::Database).await;
    // Events of one sink arrive in order: the second failure comes after
    // any report of the (clean) restart would have.
    events(&receiver, "backup_failed", 2);
    assert!(receiver.events("daemon_crashed_restart").is_empty());
    daemon.kill();
    daemon.restart();
    let crashed = events(&receiver, "daemon_crashed_restart", 1);
    assert!(crashed[0].signed_with(SECRET));
    assert!(crashed[0].json()["reason"]
        .as_str()
        .unwrap()
        .contains("without a clean stop"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_test_reports_each_sink_whatever_its_filter() {
    let pg = small_cluster();
    let dir = berkut_testkit::temp_dir("events-");
    let good = Receiver::start(Answer::Ok);
    let failing = Receiver::start(Answer::Status(500));
    let secret = secret_file(dir.path());
    let hook = fake_tool(dir.path(), "page.sh", "cat >/dev/null; exit 3");
    let config = webhook(&good.url(), &secret, "events = [\"backup_failed\"]")
        + &webhook(&failing.url(), &secret, "retries = 5")
        + &format!(
            "[[notify]]\nkind = \"exec\"\ncommand = \"{}\"\n",
            hook.display()
        );
    let daemon = with_config(daemon_for(&pg), dir.path(), &config).start();
    let run = ctl(&daemon, &["notify", "test"]);
    assert_eq!(run.code, 1, "a sink failed: {}{}", run.stdout, run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", run.stdout);
    assert!(
        lines[0].starts_with("webhook http://127.0.0.1:")
            && lines[0].ends_with("delivered (answered 200 OK)"),
        "{}",
        lines[0]
    );
    assert!(lines[1].contains("FAILED (answered 500"), "{}", lines[1]);
    assert_eq!(
        lines[2],
        "exec page.sh: FAILED (the hook failed (exit status 3))"
    );
    assert!(!run.stdout.contains("/hook"), "no URL path: {}", run.stdout);
    // The filter does not keep the test out; the failing one is tried once.
    let test = events(&good, "test", 1);
    assert!(test[0].signed_with(SECRET));
    assert_eq!(failing.events("test").len(), 1, "no retries for a test");
    let json = ctl(&daemon, &["--json", "notify", "test"]).last_json();
    let results = json["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["ok"], true);
    assert_eq!(results[1]["ok"], false);
    events(&good, "test", 2);
}

/// A reload (SIGHUP) that names another webhook moves the events there:
/// what happens after the reload reaches the new sink only, and a failed
/// backup after it is told to the new sink, not the old one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_moves_events_to_the_new_sinks() {
    let pg = small_cluster();
    let dir = berkut_testkit::temp_dir("events-");
    let old = Receiver::start(Answer::Ok);
    let new = Receiver::start(Answer::Ok);
    let secret = secret_file(dir.path());
    let (fake, flag) = switchable_pg_dump(dir.path());
    let builder = daemon_for(&pg).env("BERKUT_BACKUP_PGDUMP_BIN", fake.display().to_string());
    let daemon = with_config(builder, dir.path(), &webhook(&old.url(), &secret, "")).start();
    assert_eq!(ctl(&daemon, &["notify", "test"]).code, 0);
    events(&old, "test", 1);

    std::fs::write(
        dir.path().join("berkutd.toml"),
        webhook(&new.url(), &secret, ""),
    )
    .unwrap();
    daemon.signal(nix::sys::signal::Signal::SIGHUP);
    wait_for("the reload", LONG, || {
        daemon
            .log()
            .contains("configuration reloaded")
            .then_some(())
    });
    std::fs::write(&flag, "").unwrap();
    let mut client = daemon.client().await;
    let failed = backup_now(&mut client, Scope::Database).await;
    assert_eq!(failed.status, BackupStatus::Failed);
    let told = events(&new, "backup_failed", 1);
    assert_eq!(told[0].json()["backup_id"], failed.id.as_str());
    assert!(told[0].signed_with(SECRET));
    assert_eq!(ctl(&daemon, &["notify", "test"]).code, 0);
    events(&new, "test", 1);
    // Everything after the reload went to the new sink only.
    assert_eq!(
        old.requests().len(),
        1,
        "the old sink got only the first test"
    );
}
