//! Throwaway PostgreSQL clusters for tests.
//!
//! A [`PgCluster`] is a real server started from the system's PostgreSQL
//! binaries, listening only on a Unix socket inside a temporary directory,
//! with trust authentication and a superuser named `postgres`. It is copied
//! from a cached template (see `template.rs`), so starting one costs a copy
//! and a server start rather than an `initdb`. When the tests run as root the
//! server runs as the `postgres` OS user, because PostgreSQL refuses root.
//! Dropping the cluster stops the server and removes its directory.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use anyhow::{Context, Result};
use tempfile::TempDir;

use crate::os::{self, server_command};
use crate::{reap, template};

/// The name prefix of every cluster directory; the reaper uses it too.
pub(crate) const CLUSTER_PREFIX: &str = "berkut-testkit-pg-";

/// The file in a cluster directory that names the test process owning it.
pub(crate) const OWNER_FILE: &str = "owner.pid";

/// How long a server may take to start or stop before the kit gives up.
const PG_CTL_TIMEOUT_SECS: &str = "30";

/// The directory holding the PostgreSQL programs the tests use.
///
/// It is `BERKUT_PG_BIN` if set, else the highest-versioned
/// `/usr/lib/postgresql/*/bin` that has `initdb`, else `pg_config --bindir`.
/// Panics with installation advice when there is none.
pub fn pg_bin_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        find_bin_dir().unwrap_or_else(|| {
            panic!(
                "the tests need the PostgreSQL server programs (initdb, pg_ctl, postgres, \
                 pg_dump, pg_restore, psql) and none were found: install them with \
                 `apt-get install postgresql`, or set BERKUT_PG_BIN to the directory holding them"
            )
        })
    })
    .clone()
}

fn find_bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("BERKUT_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    let out = Command::new("pg_config").arg("--bindir").output().ok()?;
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    (out.status.success() && dir.join("initdb").exists()).then_some(dir)
}

/// Quotes an SQL identifier, e.g. a database or schema name.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes an SQL string literal.
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A running throwaway PostgreSQL cluster; see the module documentation.
pub struct PgCluster {
    data: PathBuf,
    socket: PathBuf,
    log: PathBuf,
    port: u16,
    // Declared last so that it is removed after `Drop::drop` stopped the server.
    root: TempDir,
}

impl PgCluster {
    /// Creates a cluster from the template and starts it, returning once the
    /// server accepts connections.
    pub fn start() -> Result<PgCluster> {
        reap::reap_leftovers_once();
        let template = template::template_dir()?;
        let root = tempfile::Builder::new()
            .prefix(CLUSTER_PREFIX)
            .tempdir_in(os::base_temp_dir())
            .context("create the cluster directory")?;
        let path = root.path();
        // Written first, so the reaper can tell a directory whose test
        // process died from one still being set up.
        fs::write(path.join(OWNER_FILE), std::process::id().to_string())
            .context("write the cluster owner file")?;
        os::make_traversable(path)?;
        os::give_to_server(path)?;
        let data = path.join("data");
        os::run(
            Command::new("cp").arg("-a").arg(&template).arg(&data),
            "copy the template cluster",
        )?;
        let socket = path.join("socket");
        fs::create_dir(&socket).context("create the socket directory")?;
        os::make_traversable(&socket)?;
        os::give_to_server(&socket)?;
        let conf = data.join("postgresql.conf");
        let mut text = fs::read_to_string(&conf).context("read postgresql.conf")?;
        let socket_str = socket.to_str().context("the socket path is not UTF-8")?;
        text.push_str(&format!(
            "unix_socket_directories = {}\n",
            quote_literal(socket_str)
        ));
        fs::write(&conf, text).context("write postgresql.conf")?;
        let cluster = PgCluster {
            data,
            socket,
            log: path.join("server.log"),
            port: 5432,
            root,
        };
        cluster.start_again()?;
        Ok(cluster)
    }

    /// Starts the server again after [`PgCluster::stop`], waiting until it
    /// accepts connections.
    pub fn start_again(&self) -> Result<()> {
        let result = os::run(
            server_command(&self.bin("pg_ctl"))
                .arg("-D")
                .arg(&self.data)
                .arg("-l")
                .arg(&self.log)
                .args(["-w", "-t", PG_CTL_TIMEOUT_SECS, "-s", "start"]),
            "pg_ctl start",
        );
        result.with_context(|| format!("server log:\n{}", self.server_log()))?;
        Ok(())
    }

    /// Stops the server with a fast shutdown (sessions are disconnected), so a
    /// test can see how its subject copes with the database being down.
    pub fn stop(&self) -> Result<()> {
        os::run(
            server_command(&self.bin("pg_ctl"))
                .arg("-D")
                .arg(&self.data)
                .args(["-m", "fast", "-w", "-t", PG_CTL_TIMEOUT_SECS, "-s", "stop"]),
            "pg_ctl stop",
        )?;
        Ok(())
    }

    /// Whether the server accepts connections right now.
    pub fn is_accepting(&self) -> bool {
        self.command("pg_isready")
            .arg("-q")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// The temporary directory holding the data directory, socket and log.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The data directory (owned by the `postgres` OS user when root).
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// The directory of the server's Unix socket.
    pub fn socket_dir(&self) -> &Path {
        &self.socket
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The path of a PostgreSQL program, e.g. `bin("pg_dump")`.
    pub fn bin(&self, name: &str) -> PathBuf {
        pg_bin_dir().join(name)
    }

    /// A libpq connection URL for database `db` as the `postgres` superuser.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgresql://postgres@/{}?host={}&port={}",
            percent_encode(db),
            percent_encode(&self.socket.to_string_lossy()),
            self.port
        )
    }

    /// The libpq environment that points a client program at this cluster.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("PGHOST", self.socket.to_string_lossy().into_owned()),
            ("PGPORT", self.port.to_string()),
            ("PGUSER", "postgres".to_owned()),
            // The fixture and the fingerprints are UTF-8 whatever the locale.
            ("PGCLIENTENCODING", "UTF8".to_owned()),
        ]
    }

    /// A command for a PostgreSQL client program (`pg_dump`, `pg_restore`,
    /// `psql`, ...) that connects to this cluster; no other libpq variable
    /// is inherited from the test's environment.
    pub fn command(&self, name: &str) -> Command {
        let mut cmd = Command::new(self.bin(name));
        for var in os::PG_ENV {
            cmd.env_remove(var);
        }
        cmd.envs(self.env());
        cmd
    }

    /// Runs SQL (any number of statements) in database `db` through psql and
    /// returns its unaligned, tuples-only output, trimmed. Stops at the first
    /// error and returns it with psql's messages.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String> {
        let out = self.psql_with(db, sql, &[])?;
        Ok(out.trim().to_owned())
    }

    /// Like [`PgCluster::psql`] with extra psql arguments and untrimmed output.
    pub(crate) fn psql_with(&self, db: &str, sql: &str, args: &[&str]) -> Result<String> {
        let mut cmd = self.command("psql");
        // The tests' own queries observe; a database's timeouts under test
        // (a statement_timeout of 1 ms) must not cancel them, not even the
        // `SET` that would lift them (a timer that fires as a statement
        // ends is even reported as "user request"). Options sent at
        // connection outrank the database's and the role's settings.
        cmd.env("PGOPTIONS", "-c statement_timeout=0 -c lock_timeout=0");
        cmd.args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d", db])
            .args(args)
            .args(["-f", "-"]);
        let what = format!("psql in database {db:?} running {:?}", abbreviate(sql));
        let out = os::run_with_input(&mut cmd, sql.as_bytes(), &what)?;
        String::from_utf8(out.stdout).context("psql printed something that is not UTF-8")
    }

    pub fn create_db(&self, name: &str) -> Result<()> {
        self.psql(
            "postgres",
            &format!("CREATE DATABASE {}", quote_ident(name)),
        )?;
        Ok(())
    }

    /// Drops a database if it exists, disconnecting its sessions.
    pub fn drop_db(&self, name: &str) -> Result<()> {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(name));
        self.psql("postgres", &sql)?;
        Ok(())
    }

    /// The server's log so far (empty if there is none yet).
    pub fn server_log(&self) -> String {
        fs::read(&self.log)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        stop_immediately(&self.data);
        // The directory itself goes when `root` is dropped after this.
    }
}

/// Stops a server, if one runs on `data`, without a clean shutdown; errors
/// are ignored because this runs while cleaning up.
pub(crate) fn stop_immediately(data: &Path) {
    if data.join("postmaster.pid").exists() {
        let _ = server_command(&pg_bin_dir().join("pg_ctl"))
            .arg("-D")
            .arg(data)
            .args([
                "-m",
                "immediate",
                "-w",
                "-t",
                PG_CTL_TIMEOUT_SECS,
                "-s",
                "stop",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn abbreviate(sql: &str) -> String {
    let line = sql.trim().lines().next().unwrap_or("");
    let mut short: String = line.chars().take(80).collect();
    if short.len() < sql.trim().len() {
        short.push_str(" ...");
    }
    short
}
