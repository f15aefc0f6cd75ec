//! `berkutctl status`.

use crate::helpers::*;

#[test]
fn status_for_people_and_for_scripts() {
    let env = env();
    let human = ctl(&env.daemon, &["status"]).ok();
    assert!(human.stdout.starts_with("berkutd "), "{}", human.stdout);
    assert!(
        human.stdout.contains("0 running, 0 queued"),
        "{}",
        human.stdout
    );

    let json = ctl(&env.daemon, &["status", "--json"]).ok();
    let v = json.last_json();
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["running"], 0);
    assert!(v["uptime_seconds"].is_u64());
}

#[test]
fn an_unreachable_daemon_has_its_own_exit_code_and_a_hint() {
    let dir = berkut_testkit::temp_dir("nodaemon-");
    let run = ctl_alone(&["status"], &dir.path().join("absent.sock"));
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("is berkutd running?"), "{}", run.stderr);
    assert!(run.stdout.is_empty());
}
