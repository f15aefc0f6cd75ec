//! The Berkut test kit: what the integration tests of the other crates share.
//!
//! It starts throwaway PostgreSQL clusters from the system's binaries
//! ([`PgCluster`], ready-made ones in [`clusters`]), fills databases with a
//! rich fixture and compares them by [`Fingerprint`], runs the real daemon
//! ([`DaemonBuilder`]), drives it with the protocol's client ([`client`]),
//! looks into its archives ([`archives`]), runs `berkutctl` as a user would
//! ([`ctl`], as another user with [`run_as`]), and waits for conditions by
//! polling with deadlines ([`wait_for`]). Of the workspace it depends only on
//! `berkut-proto` (the client and the archive reader), so the daemon and
//! `berkutctl` can use it as a dev-dependency.

pub mod archives;
pub mod client;
pub mod clusters;
pub mod ctl;
pub mod daemon;
pub mod fakes;
pub mod fixture;
pub mod notify;
pub mod pg;
pub mod s3;
pub mod tmpfs;
pub mod users;
pub mod venv;
pub mod wait;
pub mod webhook;

mod activation;
mod os;
mod reap;
mod template;

#[cfg(test)]
mod tests;

pub use archives::{
    assert_no_partials, import, read_parts, reseal, restore_into, tmp_dir_is_empty,
};
pub use client::{
    assert_safe, backup, backup_now, backup_with_files_now, create_op, evidence, list, plan,
    restore_op, restore_outcome, restore_status, restored, server_error, spec, status, step_log,
    step_states, wait_for_status, wait_for_step, INTERNALS,
};
pub use clusters::{
    daemon_for, daemon_with_gated_restores, databases, rich_cluster, small_cluster,
};
pub use ctl::{run_ctl, run_ctl_with, Run};
pub use daemon::{workspace_bin, Daemon, DaemonBuilder, ListenPid};
pub use fakes::{fake_pg_dump, fake_tool, Gate};
pub use fixture::{fingerprint, row_counts, Fingerprint, TableFp, RICH_FIXTURE_SQL};
pub use notify::NotifySocket;
pub use pg::{pg_bin_dir, quote_ident, quote_literal, PgCluster};
pub use s3::S3Server;
pub use tmpfs::Tmpfs;
pub use users::{run_as, test_uids, test_users, TestUser, TEST_USERS};
pub use venv::{venv, venv_bin};
pub use wait::{wait_for, wait_for_async, LONG};
pub use webhook::{closed_url, Answer, Receiver};

/// Creates a temporary directory named `<prefix>XXXXXX` that the PostgreSQL
/// server account can also reach (mode 0755, under a directory that account
/// can traverse), since tests put sockets and archives there. It is removed
/// when the returned value is dropped.
///
/// Panics if the directory cannot be created.
pub fn temp_dir(prefix: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(os::base_temp_dir())
        .unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"));
    os::make_traversable(dir.path()).unwrap_or_else(|e| panic!("{e:#}"));
    dir
}
