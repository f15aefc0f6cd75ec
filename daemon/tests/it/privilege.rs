//! Rights that must not widen: a dry-run with roles changes nothing live
//! and needs admin; a grant removed by a reload (SIGHUP) stops working at
//! once, and one added starts working, as real other users see it.

use berkut_proto::archive::MasterKey;
use berkut_proto::manifest::Scope;
use berkut_proto::wire::{ops, ErrorCode, Operation, RestoreStatus, StepState};
use berkut_testkit::{NotifySocket, PgCluster};
use nix::sys::signal::Signal;

use crate::helpers::*;

/// The test roles as the server keeps them: attributes and password hash.
fn roles(pg: &PgCluster) -> String {
    pg.psql(
        "postgres",
        "SELECT rolname, rolsuper, rolcreaterole, rolcanlogin, rolpassword FROM pg_authid \
         WHERE rolname LIKE 'berkut_victim%' ORDER BY rolname",
    )
    .unwrap()
}

fn drill_with_globals(backup_id: &berkut_proto::ids::BackupId) -> Operation {
    Operation::RestoreStart(ops::RestoreStart {
        backup_id: backup_id.clone(),
        dry_run: true,
        with_globals: true,
        wait: true,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_applies_roles_only_on_a_separate_drill_server() {
    let live = small_cluster();
    live.psql(
        "postgres",
        "CREATE ROLE berkut_victim LOGIN SUPERUSER PASSWORD 'old-password'; \
         CREATE ROLE berkut_victim_dropped LOGIN;",
    )
    .unwrap();
    let at_backup = roles(&live);
    let key = MasterKey::generate();
    let first = daemon_for(&live).key(key.clone()).start();
    let backup = backup_now(&mut first.client().await, Scope::Full).await;
    // After the backup the administrator takes superuser and the old
    // password away and drops a role: none of it may come back.
    live.psql(
        "postgres",
        "ALTER ROLE berkut_victim NOSUPERUSER PASSWORD 'new-password'; \
         DROP ROLE berkut_victim_dropped;",
    )
    .unwrap();
    let now = roles(&live);
    assert_ne!(now, at_backup);

    // No drill server: the drill would run on the live server.
    let err = server_error(
        first
            .client()
            .await
            .call(drill_with_globals(&backup.id))
            .await,
    );
    assert_eq!(err.code, ErrorCode::Invalid, "{err:?}");
    assert!(err.message.contains("drill_database_url"), "{err:?}");
    assert_eq!(roles(&live), now, "the live roles changed");

    // A drill URL that leads to the live server (another database of it).
    let dir = first.into_dir();
    let second = daemon_for(&live)
        .key(key.clone())
        .dir(dir)
        .env("BERKUT_DRILL_DATABASE_URL", live.url("postgres"))
        .start();
    let err = server_error(
        second
            .client()
            .await
            .call(drill_with_globals(&backup.id))
            .await,
    );
    assert_eq!(err.code, ErrorCode::Invalid, "{err:?}");
    assert!(err.message.contains("live server"), "{err:?}");
    assert_eq!(roles(&live), now, "the live roles changed");

    // A separate drill server: the roles go there, as they were at the
    // backup, and the live server keeps its own.
    let drill = PgCluster::start().unwrap();
    drill.create_db("app").unwrap();
    let dir = second.into_dir();
    let third = daemon_for(&live)
        .key(key)
        .dir(dir)
        .env("BERKUT_DRILL_DATABASE_URL", drill.url("postgres"))
        .start();
    let record = restored(
        third
            .client()
            .await
            .call(drill_with_globals(&backup.id))
            .await,
    );
    assert_eq!(record.status, RestoreStatus::Succeeded, "{record:#?}");
    assert_eq!(record.step("globals").unwrap().state, StepState::Done);
    assert_eq!(
        roles(&drill),
        at_backup,
        "the drill server has the archived roles"
    );
    assert_eq!(roles(&live), now, "the live roles changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applying_roles_needs_admin_even_in_a_dry_run() {
    let Some(uids) = test_uids() else { return };
    let pg = small_cluster();
    let daemon = daemon_with_grants(&pg);
    let backup = backup_now(&mut daemon.client().await, Scope::Full).await;
    let id = backup.id.to_string();
    let drill = ["restore", &id, "--dry-run", "--with-globals", "--wait"];
    // berkut-t-operator: may drill, but not with roles.
    let Run { code, stderr, .. } = as_user(&daemon, uids[1], &drill);
    assert_eq!(code, 6, "{stderr}");
    assert!(stderr.contains("forbidden"), "{stderr}");
    // berkut-t-admin passes the permission check and meets the drill check.
    let Run { code, stderr, .. } = as_user(&daemon, uids[2], &drill);
    assert_eq!(code, 9, "{stderr}");
    assert!(stderr.contains("drill_database_url"), "{stderr}");
}

/// Writes a configuration granting `berkut-t-viewer` the viewer role, or
/// nothing.
fn write_grants(file: &std::path::Path, viewer: bool) {
    let text = if viewer {
        "[[access]]\nuser = \"berkut-t-viewer\"\nrole = \"viewer\"\n"
    } else {
        "[[access]]\nuser = \"berkut-t-admin\"\nrole = \"admin\"\n"
    };
    std::fs::write(file, text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_removed_by_a_reload_stops_working_and_an_added_one_starts() {
    let Some(uids) = test_uids() else { return };
    let viewer = uids[0];
    let pg = small_cluster();
    let dir = berkut_testkit::temp_dir("grants-reload-");
    let file = dir.path().join("berkutd.toml");
    write_grants(&file, true);
    let mut notify = NotifySocket::bind(dir.path());
    let daemon = daemon_for(&pg)
        .arg("--config")
        .arg(file.display().to_string())
        .notify(&notify)
        .start();
    notify.wait_for("READY=1", LONG, |l| l == "READY=1");
    daemon.open_socket_to_all();
    let Run { code, stderr, .. } = as_user(&daemon, viewer, &["status"]);
    assert_eq!(code, 0, "granted at start: {stderr}");

    let mut reloads = 0;
    for granted in [false, true, false] {
        write_grants(&file, granted);
        daemon.signal(Signal::SIGHUP);
        notify.wait_for("READY=1 after the reload", LONG, |l| l == "READY=1");
        reloads += 1;
        let log = daemon.log();
        assert_eq!(
            log.matches("configuration reloaded").count(),
            reloads,
            "{log}"
        );
        let Run { code, stderr, .. } = as_user(&daemon, viewer, &["status"]);
        if granted {
            assert_eq!(code, 0, "the grant added by the reload works: {stderr}");
        } else {
            assert_eq!(
                code, 6,
                "the grant removed by the reload still works: {stderr}"
            );
            assert!(stderr.contains("forbidden"), "{stderr}");
        }
    }
}
