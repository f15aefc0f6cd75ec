//! The authorization point, with real processes as real other users: for
//! every role and every command, allowed or `forbidden` as the permission
//! table says; delegation by the main application; the audit trail of it
//! all. Creating users needs root; without root the tests say so and skip.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use berkut_proto::manifest::Scope;
use berkut_testkit::{wait_for, workspace_bin};

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_gets_exactly_what_the_table_gives() {
    let Some(uids) = test_uids() else { return };
    let pg = small_cluster();
    let daemon = daemon_with_grants(&pg);
    let backup = backup_now(&mut daemon.client().await, Scope::Database).await;
    let id = backup.id.to_string();
    let out_file = format!("/tmp/berkut-access-{}.bscc", std::process::id());
    // Each command with the least role it needs: 0 viewer, 1 operator, 2 admin.
    let table: Vec<(Vec<&str>, usize)> = vec![
        (vec!["status"], 0),
        (vec!["backup", "list"], 0),
        (vec!["backup", "show", &id], 0),
        (vec!["job", "attach", &id], 0),
        (vec!["plan", "show"], 0),
        (vec!["maintenance", "status"], 0),
        (vec!["restore", "status", "r-20000101T000000Z-00000000"], 0),
        (vec!["backup", "create", "--scope", "schema"], 1),
        (vec!["backup", "download", &id, "-o", &out_file], 1),
        (vec!["restore", &id, "--dry-run", "--wait"], 1),
        (
            vec!["restore", "evidence", "r-20000101T000000Z-00000000"],
            1,
        ),
        (vec!["backup", "pin", &id], 2),
        (vec!["backup", "unpin", &id], 2),
        (vec!["plan", "disable"], 2),
        (
            vec![
                "plan",
                "set",
                "--preset",
                "daily",
                "--at",
                "03:00",
                "--timezone",
                "UTC",
            ],
            2,
        ),
        (
            vec!["restore", "rollback", "r-20000101T000000Z-00000000"],
            2,
        ),
        (vec!["maintenance", "clear"], 2),
        (vec!["store", "rewrap"], 2),
        (vec!["audit", "tail"], 2),
        (vec!["audit", "verify"], 2),
        (vec!["backup", "delete", "20000101T000000Z-00000000"], 2),
    ];
    // viewer, operator, admin, and a user with no grant at all.
    for (who, level) in [
        (0usize, Some(0usize)),
        (1, Some(1)),
        (2, Some(2)),
        (4, None),
    ] {
        for (args, needs) in &table {
            let Run { code, stderr, .. } = as_user(&daemon, uids[who], args);
            let allowed = level.is_some_and(|l| l >= *needs);
            assert_eq!(
                code == 6,
                !allowed,
                "{} running {args:?}: exit {code}, {stderr}",
                berkut_testkit::TEST_USERS[who]
            );
        }
    }
    let _ = std::fs::remove_file(&out_file);

    // The main application acts for its users: a viewer cannot delete, an
    // admin can; without naming a user it gets nothing; others may not
    // delegate.
    let app = uids[3];
    let for_user = |uid: u32, user: &str, role: &str, args: &[&str]| {
        let mut all = vec!["--on-behalf-of", user, "--role", role];
        all.extend_from_slice(args);
        as_user(&daemon, uid, &all).code
    };
    assert_eq!(
        for_user(app, "alice", "viewer", &["backup", "delete", &id]),
        6
    );
    assert_eq!(for_user(app, "alice", "viewer", &["backup", "list"]), 0);
    assert_eq!(
        as_user(&daemon, app, &["backup", "delete", &id]).code,
        6,
        "an app must name its user"
    );
    assert_eq!(
        for_user(uids[2], "mallory", "viewer", &["status"]),
        6,
        "only the app delegates"
    );
    assert_eq!(for_user(app, "bob", "admin", &["backup", "delete", &id]), 0);

    // Every one of those requests is in the audit trail, with its uid.
    let tail = Command::new(workspace_bin("berkutctl"))
        .args(["audit", "tail", "-n", "1000", "--json"])
        .env("BERKUT_SOCKET", &daemon.socket)
        .output()
        .unwrap();
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&tail.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let denied_for_none = events
        .iter()
        .filter(|e| e["uid"] == uids[4] && e["decision"] == "denied")
        .count();
    assert_eq!(
        denied_for_none,
        table.len(),
        "every request of the user without a grant is audited as denied"
    );
    let alice = events
        .iter()
        .find(|e| e["on_behalf_of"]["user"] == "alice" && e["op"] == "backup_delete")
        .expect("the delegated delete is audited");
    assert_eq!(
        (alice["uid"].as_u64(), alice["decision"].as_str()),
        (Some(u64::from(app)), Some("denied"))
    );
    let bob = events
        .iter()
        .find(|e| e["on_behalf_of"]["user"] == "bob")
        .expect("bob's delete is audited");
    assert_eq!(
        (
            bob["decision"].as_str(),
            bob["result"].as_str(),
            bob["target"].as_str()
        ),
        (Some("allowed"), Some("succeeded"), Some(id.as_str()))
    );
    let verify = Command::new(workspace_bin("berkutctl"))
        .args(["audit", "verify"])
        .env("BERKUT_SOCKET", &daemon.socket)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );

    // Tampering with the trail is caught, at the line where it breaks.
    let log = daemon.state_dir.join("audit/audit.log");
    let text = std::fs::read_to_string(&log).unwrap();
    std::fs::write(
        &log,
        text.replacen(&format!("\"uid\":{}", uids[4]), "\"uid\":0", 1),
    )
    .unwrap();
    let verify = Command::new(workspace_bin("berkutctl"))
        .args(["audit", "verify"])
        .env("BERKUT_SOCKET", &daemon.socket)
        .output()
        .unwrap();
    assert_eq!(verify.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&verify.stderr).contains("audit.log:"),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
}

#[test]
fn a_stranger_is_forbidden_even_through_an_open_socket() {
    let Some(uids) = test_uids() else { return };
    let pg = small_cluster();
    let daemon = daemon_for(&pg).start();
    daemon.open_socket_to_all();
    for args in [
        &["status"][..],
        &["backup", "list"],
        &["backup", "create", "--wait"],
    ] {
        let Run { code, stderr, .. } = as_user(&daemon, uids[4], args);
        assert_eq!(code, 6, "{args:?}: {stderr}");
        assert!(stderr.contains("forbidden"), "{stderr}");
    }
    // Denials are written (to the log too) when their burst closes, a few
    // seconds later.
    wait_for("the denial is audited in the log", LONG, || {
        daemon.log().contains("decision=denied").then_some(())
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_socket_belongs_to_its_group_and_its_directory_must_be_private() {
    let Some(uids) = test_uids() else { return };
    let group = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uids[3]))
        .unwrap()
        .unwrap()
        .gid;
    let group_name = nix::unistd::Group::from_gid(group).unwrap().unwrap().name;
    let pg = small_cluster();
    let dir = berkut_testkit::temp_dir("grants-");
    let config = dir.path().join("berkutd.toml");
    std::fs::write(
        &config,
        "[[access]]\nuser = \"berkut-t-app\"\nrole = \"app\"\n",
    )
    .unwrap();
    let daemon = daemon_for(&pg)
        .arg("--config")
        .arg(config.display().to_string())
        .env("BERKUT_SOCKET_GROUP", group_name)
        .start();
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(&daemon.socket).unwrap();
    assert_eq!((meta.gid(), meta.mode() & 0o777), (group.as_raw(), 0o660));
    // The app reaches the socket through its group alone.
    let Run { code, stderr, .. } = as_user(
        &daemon,
        uids[3],
        &["--on-behalf-of", "alice", "--role", "viewer", "status"],
    );
    assert_eq!(code, 0, "{stderr}");
    // A user outside the group cannot even connect.
    let Run { code, .. } = as_user(&daemon, uids[4], &["status"]);
    assert_eq!(code, 3);
    drop(daemon);

    let open = berkut_testkit::temp_dir("open-");
    std::fs::set_permissions(open.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = Command::new(workspace_bin("berkutd"))
        .env("BERKUT_SOCKET", open.path().join("berkutd.sock"))
        .env("BERKUT_STATE_DIR", dir.path().join("state"))
        .env("BERKUT_BACKUP_PATH", dir.path().join("backups"))
        .env("BERKUT_DATABASE_URL", pg.url("app"))
        .env(
            "BERKUT_BACKUP_ENCRYPTION_KEY",
            &*berkut_proto::archive::MasterKey::generate().to_base64(),
        )
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("writable by every user"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
