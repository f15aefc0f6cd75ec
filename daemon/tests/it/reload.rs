//! SIGHUP: the configuration file is read again. What can change at runtime
//! (here the log level and the pg_dump to use) takes effect without dropping
//! the connection of a client; what needs a restart is named in the log; a
//! configuration that does not load is refused and the old one stays.

use berkut_proto::manifest::Scope;
use berkut_proto::wire::{ops, BackupStatus, Operation};
use berkut_testkit::{fake_pg_dump, NotifySocket};
use nix::sys::signal::Signal;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_a_good_configuration_and_refuses_a_broken_one() {
    let pg = small_cluster();
    let dir = berkut_testkit::temp_dir("reload-");
    let bin = berkut_testkit::temp_dir("fake-");
    let failing = fake_pg_dump(bin.path(), "pg_dump", "exit 1");
    let pg_bin = berkut_testkit::pg_bin_dir();
    let file = dir.path().join("berkutd.toml");
    let write = |log_level: &str, pg_dump: &std::path::Path, extra: &str| {
        std::fs::write(
            &file,
            format!(
                "log_level = \"{log_level}\"\npg_dump_bin = \"{}\"\npg_dumpall_bin = \"{}\"\n{extra}",
                pg_dump.display(),
                pg_bin.join("pg_dumpall").display()
            ),
        )
        .unwrap()
    };
    write("warn", &failing, "");
    let mut notify = NotifySocket::bind(dir.path());
    let daemon = daemon_for(&pg)
        .env_remove("BERKUT_LOG")
        .env_remove("BERKUT_BACKUP_PGDUMP_BIN")
        .arg("--config")
        .arg(file.display().to_string())
        .notify(&notify)
        .start();
    notify.wait_for("READY=1", LONG, |l| l == "READY=1");
    let mut client = daemon.client().await;
    let record = backup_now(&mut client, Scope::Database).await;
    assert_eq!(record.status, BackupStatus::Failed, "the fake pg_dump ran");
    assert!(!daemon.log().contains(" INFO "), "{}", daemon.log());

    // A good configuration: the new level and pg_dump take effect, the
    // changed max_parallel waits for a restart.
    write("info", &pg_bin.join("pg_dump"), "max_parallel = 5\n");
    daemon.signal(Signal::SIGHUP);
    let (_, reloading) = notify.wait_for("RELOADING=1", LONG, |l| l == "RELOADING=1");
    assert!(
        reloading.lines().any(|l| l.starts_with("MONOTONIC_USEC=")),
        "{reloading}"
    );
    notify.wait_for("READY=1 after the reload", LONG, |l| l == "READY=1");
    let log = daemon.log();
    assert!(log.contains("configuration reloaded"), "{log}");
    assert!(
        log.contains("takes effect only when berkutd restarts") && log.contains("max_parallel"),
        "{log}"
    );
    let record = backup_now(&mut client, Scope::Database).await;
    assert_eq!(record.status, BackupStatus::Succeeded, "{record:?}");
    assert!(daemon.log().contains(" INFO "), "the log level stayed");

    // Broken configurations: bad TOML, then a value out of range. Each is
    // refused, and the daemon goes on with the configuration in force.
    for (n, broken) in ["log_level = [\n", "max_parallel = 0\n"]
        .into_iter()
        .enumerate()
    {
        std::fs::write(&file, broken).unwrap();
        daemon.signal(Signal::SIGHUP);
        notify.wait_for("READY=1 after a refused reload", LONG, |l| l == "READY=1");
        let refusals = daemon.log().matches("configuration reload refused").count();
        assert_eq!(refusals, n + 1, "{}", daemon.log());
        assert!(client.call(Operation::Status(ops::Status {})).await.is_ok());
        let record = backup_now(&mut client, Scope::Database).await;
        assert_eq!(record.status, BackupStatus::Succeeded, "{record:?}");
    }
}
