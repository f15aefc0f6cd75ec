//! Secrets and the files around them: a child process inherits none of the
//! daemon's configuration, temporary files in the state directory never
//! follow a planted link, directories others can write to and key files
//! that are not the daemon's own stop the start, with a message saying
//! what to change.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use berkut_proto::manifest::Scope;
use berkut_proto::wire::BackupStatus;
use berkut_testkit::{wait_for, workspace_bin, Gate};

use crate::helpers::*;

/// The processes whose parent is `pid`, with their command lines.
fn children_of(pid: u32) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(child) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may hold spaces, so split after ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) {
            let cmdline = std::fs::read(format!("/proc/{child}/cmdline")).unwrap_or_default();
            out.push((child, String::from_utf8_lossy(&cmdline).replace('\0', " ")));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_inherits_no_secret_of_the_daemon() {
    let pg = small_cluster();
    let bin = berkut_testkit::temp_dir("fake-");
    let gate = Gate::new(bin.path(), "gate");
    let fake = gate.gated_pg_dump(bin.path(), "pg_dump");
    // The cluster trusts local connections, so a password in the URL is
    // ignored by the server but still handed to the tools.
    let url = pg.url("app").replace("postgres@", "postgres:pw-S3CRET-xyz@");
    let daemon = berkut_testkit::DaemonBuilder::new(url)
        .pg_dump(&fake)
        .env("BERKUT_SOME_SETTING_OF_THE_DAEMON", "daemon-only")
        .env("PGSERVICE", "not-for-the-tools")
        .env("LC_ALL", "C.UTF-8")
        .start();
    let key = daemon.key.to_base64().to_string();
    let mut client = daemon.client().await;
    let queued = backup(client.call(create_op("env", Scope::Database, false)).await);
    let daemon_pid = daemon.pid().unwrap();
    let fake_path = fake.display().to_string();
    let child = wait_for("the gated pg_dump to run", LONG, || {
        children_of(daemon_pid)
            .into_iter()
            .find(|(_, cmdline)| cmdline.contains(&fake_path))
    });
    let environ = std::fs::read(format!("/proc/{}/environ", child.0)).unwrap();
    let vars: Vec<String> = environ
        .split(|b| *b == 0)
        .filter(|v| !v.is_empty())
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    gate.open_forever();
    let text = vars.join("\n");
    assert!(!text.contains(&key), "the master key reaches pg_dump:\n{text}");
    for var in &vars {
        let name = var.split('=').next().unwrap();
        assert!(
            !name.starts_with("BERKUT_"),
            "pg_dump inherits {name}:\n{text}"
        );
        assert!(
            !var.contains("pw-S3CRET-xyz") || name == "PGPASSWORD",
            "the password reaches pg_dump in {name}:\n{text}"
        );
        assert!(
            ["PATH", "LANG", "LANGUAGE", "TZ"].contains(&name)
                || name.starts_with("LC_")
                || name.starts_with("PG"),
            "pg_dump gets {name}, which is not on the allow-list:\n{text}"
        );
    }
    assert!(vars.iter().any(|v| v == "PGPASSWORD=pw-S3CRET-xyz"), "{text}");
    assert!(vars.iter().any(|v| v == "LC_ALL=C.UTF-8"), "{text}");
    assert!(vars.iter().any(|v| v.starts_with("PATH=")), "{text}");
    assert!(
        !vars.iter().any(|v| v.starts_with("PGSERVICE=")),
        "the daemon's own libpq variables do not redirect the tools:\n{text}"
    );
    let done = backup(
        client
            .call(berkut_proto::wire::Operation::JobAttach { id: queued.id })
            .await,
    );
    assert_eq!(done.status, BackupStatus::Succeeded, "{done:?}");
}
