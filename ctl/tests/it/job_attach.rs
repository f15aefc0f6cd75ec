//! `berkutctl job attach`: following a backup started by someone else.

use berkut_testkit::Gate;

use crate::helpers::*;

#[test]
fn attach_follows_a_job_to_its_end() {
    let bin = berkut_testkit::temp_dir("fake-");
    let gate = Gate::new(bin.path(), "gate");
    let fake = gate.gated_pg_dump(bin.path(), "pg_dump");
    let env = env_with(|b| b.pg_dump(&fake));
    let queued = ctl(
        &env.daemon,
        &["backup", "create", "--scope", "database", "--json"],
    )
    .ok()
    .last_json();
    let id = queued["id"].as_str().unwrap().to_owned();

    let socket = env.daemon.socket.clone();
    let follower = std::thread::spawn(move || {
        let out = std::process::Command::new(ctl_bin())
            .args(["job", "attach", &id, "--json"])
            .env("BERKUT_SOCKET", socket)
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8(out.stdout).unwrap())
    });
    gate.open_forever();
    let (code, stdout) = follower.join().unwrap();
    assert_eq!(code, Some(0), "{stdout}");
    let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["status"], "succeeded");
    assert_eq!(last["id"], queued["id"]);
}
