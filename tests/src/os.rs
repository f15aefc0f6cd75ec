//! Operating-system plumbing shared by the cluster code: which OS account runs
//! the PostgreSQL server programs, where temporary directories go so that this
//! account can reach them, and small wrappers that run a command and turn a
//! failure into an error that carries the command's output.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use anyhow::{bail, Context, Result};
use nix::unistd::{chown, getegid, geteuid, Gid, Uid, User};

/// Environment variables of libpq and of the server programs that could point
/// a command at some other cluster or change how it behaves. Every command the
/// kit starts has them removed before the kit sets its own values.
pub(crate) const PG_ENV: &[&str] = &[
    "PGDATA",
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGUSER",
    "PGDATABASE",
    "PGPASSWORD",
    "PGPASSFILE",
    "PGSERVICE",
    "PGSERVICEFILE",
    "PGOPTIONS",
    "PGSSLMODE",
    "PGCONNECT_TIMEOUT",
    "PGAPPNAME",
    "PGTZ",
    "PGDATESTYLE",
    "PGCLIENTENCODING",
    "PGTARGETSESSIONATTRS",
    "PGREQUIRESSL",
    "PGGSSENCMODE",
    "PGCHANNELBINDING",
    "PGSYSCONFDIR",
    "PGLOCALEDIR",
];

/// The OS account that owns the data directories and runs the server.
///
/// PostgreSQL refuses to run as root, so when the tests run as root the server
/// programs run as the `postgres` account instead; otherwise they run as the
/// current user and `switch` is false.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ServerUser {
    pub uid: Uid,
    pub gid: Gid,
    pub switch: bool,
}

pub(crate) fn server_user() -> ServerUser {
    static USER: OnceLock<ServerUser> = OnceLock::new();
    *USER.get_or_init(|| {
        if !geteuid().is_root() {
            return ServerUser {
                uid: geteuid(),
                gid: getegid(),
                switch: false,
            };
        }
        match User::from_name("postgres") {
            Ok(Some(user)) => ServerUser {
                uid: user.uid,
                gid: user.gid,
                switch: true,
            },
            _ => panic!(
                "the tests run as root and PostgreSQL refuses to run as root, so they run the \
                 server as the `postgres` OS user, which does not exist here; install PostgreSQL \
                 (`apt-get install postgresql`), which creates it"
            ),
        }
    })
}

/// A command for a server program (`initdb`, `pg_ctl`): it runs as the server
/// account, with no libpq variables inherited and messages in English.
pub(crate) fn server_command(program: &Path) -> Command {
    let mut cmd = Command::new(program);
    for var in PG_ENV {
        cmd.env_remove(var);
    }
    // The server account may not be able to enter the test's working
    // directory (for example under /root), and initdb and postgres fail when
    // they cannot resolve their current directory.
    cmd.current_dir("/").env("LC_ALL", "C").stdin(Stdio::null());
    let user = server_user();
    if user.switch {
        // std drops the supplementary groups when root switches to another uid.
        cmd.uid(user.uid.as_raw()).gid(user.gid.as_raw());
    }
    cmd
}

/// Hands a directory the kit created over to the server account, so the
/// server can write its data, socket and log there.
pub(crate) fn give_to_server(path: &Path) -> Result<()> {
    let user = server_user();
    if user.switch {
        chown(path, Some(user.uid), Some(user.gid))
            .with_context(|| format!("chown {} to the postgres user", path.display()))?;
    }
    Ok(())
}

/// Makes a directory readable and traversable by everyone, so that the server
/// account and the test process can both reach what lies inside.
pub(crate) fn make_traversable(path: &Path) -> Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
        .with_context(|| format!("chmod 0755 {}", path.display()))
}

/// The directory under which the kit creates its temporary directories.
///
/// It is the usual temporary directory unless the server account could not
/// reach it (a private `TMPDIR` while running as root) or its path is so long
/// that a Unix socket path inside it would exceed the kernel's ~107 bytes; in
/// those cases it is `/tmp`.
pub(crate) fn base_temp_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let candidate = std::env::temp_dir();
        let short = candidate.as_os_str().len() <= 60;
        let reachable = !server_user().switch || traversable_by_others(&candidate);
        if short && reachable {
            candidate
        } else {
            PathBuf::from("/tmp")
        }
    })
}

fn traversable_by_others(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    path.ancestors()
        .filter(|p| !p.as_os_str().is_empty())
        .all(|p| fs::metadata(p).is_ok_and(|m| m.mode() & 0o001 != 0))
}

/// Runs a command to completion and fails, with its output, unless it exits
/// successfully.
pub(crate) fn run(cmd: &mut Command, what: &str) -> Result<Output> {
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("{what}: cannot start {:?}", cmd.get_program()))?;
    check(output, what)
}

/// Like [`run`], feeding `input` to the command's standard input from a
/// separate thread so that a command with much output cannot deadlock.
pub(crate) fn run_with_input(cmd: &mut Command, input: &[u8], what: &str) -> Result<Output> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("{what}: cannot start {:?}", cmd.get_program()))?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let input = input.to_vec();
    // A command that stops early (psql with ON_ERROR_STOP) closes its input;
    // the resulting broken pipe is not the error worth reporting, its exit
    // status and stderr are.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let output = child
        .wait_with_output()
        .with_context(|| format!("{what}: waiting for {:?}", cmd.get_program()))?;
    let _ = writer.join();
    check(output, what)
}

fn check(output: Output, what: &str) -> Result<Output> {
    if output.status.success() {
        return Ok(output);
    }
    bail!(
        "{what} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    )
}
