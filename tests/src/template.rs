//! The cached template data directory.
//!
//! `initdb` takes a second or two, and with cargo-nextest every test runs in
//! a process of its own, so the kit runs it once per machine, PostgreSQL
//! version and user, keeps the result under the temporary directory, and
//! copies it for every cluster. The template is built in a private directory
//! and renamed into place, so a reader never sees a half-built template and
//! concurrent builders simply race: the first rename wins and the losers
//! throw their copy away.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use nix::unistd::geteuid;

use crate::os::{self, server_command, server_user};
use crate::pg::pg_bin_dir;

/// Bumped whenever the initdb options or the settings below change, so that
/// an old template is not reused with new expectations.
const LAYOUT: &str = "r1";

/// Settings every test cluster shares: fast rather than durable, reachable
/// only through the Unix socket, quiet, and in UTC so that text forms of
/// timestamps are stable.
const SETTINGS: &str = "
# Added by berkut-testkit: a throwaway cluster tuned for speed, not safety.
listen_addresses = ''
port = 5432
fsync = off
synchronous_commit = off
full_page_writes = off
wal_level = minimal
max_wal_senders = 0
shared_buffers = 16MB
max_connections = 30
huge_pages = off
autovacuum = off
logging_collector = off
log_min_messages = warning
log_min_error_statement = error
lc_messages = 'C'
timezone = 'UTC'
log_timezone = 'UTC'
";

/// The name prefix of every template directory; the reaper uses it too.
pub(crate) fn template_name() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        format!(
            "berkut-testkit-pgtemplate-{}-{}-{LAYOUT}",
            server_version(),
            geteuid()
        )
    })
}

/// Returns the template data directory, building it first if no process on
/// this machine has done so yet.
pub(crate) fn template_dir() -> Result<PathBuf> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DIR.get_or_init(|| find_or_build().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

fn find_or_build() -> Result<PathBuf> {
    let dir = os::base_temp_dir().join(template_name());
    if !dir.join("PG_VERSION").exists() {
        build(&dir)?;
    }
    // Someone else's directory under a shared /tmp must not become the data
    // of our clusters.
    let owner = fs::metadata(&dir)
        .with_context(|| format!("stat {}", dir.display()))?
        .uid();
    if owner != server_user().uid.as_raw() {
        bail!(
            "the PostgreSQL template {} belongs to uid {owner}, not to the server user; remove it",
            dir.display()
        );
    }
    Ok(dir)
}

fn build(dir: &Path) -> Result<()> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let tmp = dir.with_file_name(format!(
        "{}.building-{}-{nanos}",
        template_name(),
        std::process::id()
    ));
    fs::create_dir(&tmp).with_context(|| format!("create {}", tmp.display()))?;
    let result = initdb(&tmp).and_then(|()| publish(&tmp, dir));
    // Still here after a failure, or after losing the race to publish.
    if tmp.exists() {
        let _ = fs::remove_dir_all(&tmp);
    }
    result
}

fn initdb(tmp: &Path) -> Result<()> {
    os::give_to_server(tmp)?;
    os::run(
        server_command(&pg_bin_dir().join("initdb"))
            .arg("-D")
            .arg(tmp)
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8"])
            // The C locale makes text ordering byte order, the same on every
            // machine, which the fingerprints rely on.
            .args(["--locale=C", "--no-sync"])
            // One-megabyte WAL segments make each copy of the template about
            // fifteen megabytes smaller.
            .arg("--wal-segsize=1"),
        "initdb of the template cluster",
    )?;
    let conf = tmp.join("postgresql.conf");
    let mut text = fs::read_to_string(&conf).with_context(|| format!("read {}", conf.display()))?;
    text.push_str(SETTINGS);
    fs::write(&conf, text).with_context(|| format!("write {}", conf.display()))
}

fn publish(tmp: &Path, dir: &Path) -> Result<()> {
    match fs::rename(tmp, dir) {
        Ok(()) => Ok(()),
        // Another process published its template first; theirs is as good.
        Err(_) if dir.join("PG_VERSION").exists() => Ok(()),
        Err(e) => Err(e).with_context(|| format!("rename template into {}", dir.display())),
    }
}

/// The server's version number as `postgres --version` prints it, e.g.
/// `15.18`, reduced to characters that are safe in a file name.
fn server_version() -> String {
    let bin = pg_bin_dir().join("postgres");
    let out = std::process::Command::new(&bin)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))
        .map(|w| {
            w.chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
                .collect()
        })
        .unwrap_or_else(|| {
            panic!(
                "cannot parse the version in {text:?} from {}",
                bin.display()
            )
        })
}
