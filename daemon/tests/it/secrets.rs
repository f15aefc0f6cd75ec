//! Secrets and the files around them: a child process inherits none of the
//! daemon's configuration, temporary files in the state directory never
//! follow a planted link, directories others can write to and key files
//! that are not the daemon's own stop the start, with a message saying
//! what to change.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use berkut_proto::manifest::Scope;
use berkut_proto::wire::{ops, BackupStatus};
use berkut_testkit::{wait_for, workspace_bin, Gate};

use crate::helpers::*;

/// The processes whose parent is `pid`, with their command lines.
fn children_of(pid: u32) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
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
    let url = pg
        .url("app")
        .replace("postgres@", "postgres:pw-S3CRET-xyz@");
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
    assert!(
        !text.contains(&key),
        "the master key reaches pg_dump:\n{text}"
    );
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
    assert!(
        vars.iter().any(|v| v == "PGPASSWORD=pw-S3CRET-xyz"),
        "{text}"
    );
    assert!(vars.iter().any(|v| v == "LC_ALL=C.UTF-8"), "{text}");
    assert!(vars.iter().any(|v| v.starts_with("PATH=")), "{text}");
    assert!(
        !vars.iter().any(|v| v.starts_with("PGSERVICE=")),
        "the daemon's own libpq variables do not redirect the tools:\n{text}"
    );
    let done = backup(
        client
            .call(berkut_proto::wire::Operation::JobAttach(ops::JobAttach {
                id: queued.id,
            }))
            .await,
    );
    assert_eq!(done.status, BackupStatus::Succeeded, "{done:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_planted_at_a_temporary_name_is_never_written_through() {
    let pg = small_cluster();
    let daemon = daemon_for(&pg).start();
    let outside = berkut_testkit::temp_dir("victim-");
    let victim = outside.path().join("passwd");
    std::fs::write(&victim, "root:x:0:0\n").unwrap();
    for name in ["catalogue.tmp", "summary.tmp", "plan.tmp"] {
        std::os::unix::fs::symlink(&victim, daemon.state_dir.join(name)).unwrap();
    }
    let mut client = daemon.client().await;
    let record = backup_now(&mut client, Scope::Database).await;
    assert_eq!(record.status, BackupStatus::Succeeded, "{record:?}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root:x:0:0\n");
    let catalogue = std::fs::read_to_string(daemon.state_dir.join("catalogue.json")).unwrap();
    assert!(
        catalogue.contains(record.id.as_str()),
        "the catalogue was written"
    );
}

/// Runs berkutd with its state under `dir` and returns whether it started
/// and what it said; it stops at the directory checks, before any database
/// is needed.
fn start_in(dir: &std::path::Path, extra: &[(&str, String)]) -> (bool, String) {
    let key = berkut_proto::archive::MasterKey::generate();
    let mut cmd = Command::new(workspace_bin("berkutd"));
    cmd.env_clear()
        .env("BERKUT_DATABASE_URL", "postgresql:///app")
        .env("BERKUT_STATE_DIR", dir.join("state"))
        .env("BERKUT_BACKUP_PATH", dir.join("backups"))
        .env("BERKUT_SOCKET", dir.join("run/berkutd.sock"))
        .env("BERKUT_BACKUP_ENCRYPTION_KEY", &*key.to_base64())
        .current_dir(dir);
    for (k, v) in extra {
        if v.is_empty() {
            cmd.env_remove(k);
        } else {
            cmd.env(k, v);
        }
    }
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A daemon that got past the checks listens; stop it then.
    let socket = dir.join("run/berkutd.sock");
    let exited = wait_for("berkutd to exit or listen", LONG, || {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(Some(status));
        }
        std::os::unix::net::UnixStream::connect(&socket)
            .ok()
            .map(|_| None)
    });
    if exited.is_none() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    (exited.is_none(), text)
}

#[test]
fn directories_others_can_write_to_stop_the_start() {
    for which in ["state", "backups"] {
        let dir = berkut_testkit::temp_dir("open-dir-");
        for sub in ["state", "backups"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
            std::fs::set_permissions(dir.path().join(sub), std::fs::Permissions::from_mode(0o700))
                .unwrap();
        }
        std::fs::set_permissions(
            dir.path().join(which),
            std::fs::Permissions::from_mode(0o1777),
        )
        .unwrap();
        let (started, said) = start_in(dir.path(), &[]);
        assert!(!started, "berkutd started with {which} at 1777:\n{said}");
        assert!(
            said.contains("writable by every user") && said.contains("chmod go-w"),
            "{said}"
        );
        assert!(
            said.contains(&dir.path().join(which).display().to_string()),
            "{said}"
        );
        std::fs::set_permissions(
            dir.path().join(which),
            std::fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        let (started, said) = start_in(dir.path(), &[]);
        assert!(started, "a private directory is accepted:\n{said}");

        // Writable by a group that is not the daemon's: refused too.
        if nix::unistd::geteuid().is_root() {
            let path = dir.path().join(which);
            nix::unistd::chown(&path, None, Some(nix::unistd::Gid::from_raw(65534))).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o770)).unwrap();
            let (started, said) = start_in(dir.path(), &[]);
            assert!(
                !started,
                "berkutd started with {which} group-writable:\n{said}"
            );
            assert!(said.contains("writable by the members of group"), "{said}");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o750)).unwrap();
            let (started, said) = start_in(dir.path(), &[]);
            assert!(started, "a group may read:\n{said}");
        }
    }
}

#[test]
fn a_key_file_of_another_user_or_a_second_key_stops_the_start() {
    let dir = berkut_testkit::temp_dir("keys-");
    let path = dir.path().join("berkut.key");
    std::fs::write(
        &path,
        &*berkut_proto::archive::MasterKey::generate().to_base64(),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let file = (
        "BERKUT_BACKUP_ENCRYPTION_KEY_FILE",
        path.display().to_string(),
    );
    let no_text = ("BERKUT_BACKUP_ENCRYPTION_KEY", String::new());

    // The daemon's own file, alone: accepted.
    let (started, said) = start_in(dir.path(), &[file.clone(), no_text.clone()]);
    assert!(started, "{said}");

    // The same file beside a key in the environment: which one would seal?
    let (started, said) = start_in(dir.path(), std::slice::from_ref(&file));
    assert!(!started, "a key and a key file were both accepted:\n{said}");
    assert!(said.contains("keep exactly one"), "{said}");

    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped the owner check: giving a file away needs root");
        return;
    }
    nix::unistd::chown(&path, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
    let (started, said) = start_in(dir.path(), &[file, no_text]);
    assert!(!started, "a key file of another user was accepted:\n{said}");
    assert!(
        said.contains("belongs to") && said.contains("chown"),
        "{said}"
    );
}
