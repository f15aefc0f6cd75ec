//! The Berkut test kit: what the integration tests of the other crates share.
//!
//! It starts throwaway PostgreSQL clusters from the system's binaries
//! ([`PgCluster`]), fills databases with a rich fixture and compares them by
//! [`Fingerprint`], and waits for conditions by polling with deadlines
//! ([`wait_for`]). It depends on no other crate of the workspace, so any of
//! them can use it as a dev-dependency.

pub mod daemon;
pub mod fakes;
pub mod fixture;
pub mod notify;
pub mod pg;
pub mod tmpfs;
pub mod users;
pub mod wait;

mod activation;
mod os;
mod reap;
mod template;

#[cfg(test)]
mod tests;

pub use daemon::{workspace_bin, Daemon, DaemonBuilder, ListenPid};
pub use fakes::{fake_pg_dump, fake_tool, Gate};
pub use fixture::{fingerprint, row_counts, Fingerprint, TableFp, RICH_FIXTURE_SQL};
pub use notify::NotifySocket;
pub use pg::{pg_bin_dir, quote_ident, quote_literal, PgCluster};
pub use tmpfs::Tmpfs;
pub use users::{test_users, TestUser, TEST_USERS};
pub use wait::{wait_for, wait_for_async};

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
