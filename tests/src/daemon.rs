//! A berkutd fixture: the real binary, as a real process, on a socket in a
//! temporary directory, with its own state and backup directories and a
//! fresh key. Tests talk to it with the real client (`berkut_proto::wire`)
//! or the real `berkutctl` binary.

use std::fs::File;
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use berkut_proto::archive::{Keyring, MasterKey};
use berkut_proto::wire::Client;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

pub use crate::activation::ListenPid;
use crate::activation::{activated_command, Activation};
use crate::wait::wait_for;

/// How long a daemon may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Finds a binary of this workspace next to the running test executable
/// (`target/<profile>/deps/..`). Binaries are built by `cargo test
/// --workspace` / `cargo nextest run --workspace`.
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its own path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binaries live in target/<profile>/deps");
    let bin = dir.join(name);
    assert!(
        bin.exists(),
        "{} is missing: build the workspace first (`cargo build --workspace --bins`), \
         or run the suite with `cargo nextest run --workspace`",
        bin.display()
    );
    bin
}

/// Code run in the daemon's process between fork and exec.
type Hook = Arc<dyn Fn() -> std::io::Result<()> + Send + Sync>;

pub struct DaemonBuilder {
    database_url: String,
    env: Vec<(String, String)>,
    unset: Vec<String>,
    args: Vec<String>,
    key: MasterKey,
    dir: Option<tempfile::TempDir>,
    socket: Option<PathBuf>,
    activation: Option<Activation>,
    hooks: Vec<Hook>,
}

impl DaemonBuilder {
    pub fn new(database_url: impl Into<String>) -> DaemonBuilder {
        DaemonBuilder {
            database_url: database_url.into(),
            env: Vec::new(),
            unset: Vec::new(),
            args: Vec::new(),
            key: MasterKey::generate(),
            dir: None,
            socket: None,
            activation: None,
            hooks: Vec::new(),
        }
    }

    /// Runs `hook` in the daemon's process between fork and exec, at every
    /// start (e.g. to give it a mount namespace of its own).
    ///
    /// # Safety
    ///
    /// As for `CommandExt::pre_exec`: the hook runs in a forked copy of a
    /// multi-threaded process and must only make async-signal-safe calls
    /// (no allocation, no locks).
    pub unsafe fn pre_exec(
        mut self,
        hook: impl Fn() -> std::io::Result<()> + Send + Sync + 'static,
    ) -> DaemonBuilder {
        self.hooks.push(Arc::new(hook));
        self
    }

    /// Does not give the daemon a variable the fixture would otherwise set
    /// (e.g. `BERKUT_LOG`, so that a configuration file decides).
    pub fn env_remove(mut self, name: &str) -> DaemonBuilder {
        self.unset.push(name.to_owned());
        self
    }

    /// Adds a command-line argument (e.g. `--config FILE`).
    pub fn arg(mut self, arg: impl Into<String>) -> DaemonBuilder {
        self.args.push(arg.into());
        self
    }

    /// Sends the daemon's notifications (`NOTIFY_SOCKET`) to `socket`.
    pub fn notify(self, socket: &crate::NotifySocket) -> DaemonBuilder {
        let path = socket.path().display().to_string();
        self.env("NOTIFY_SOCKET", path)
    }

    /// Puts the daemon's socket at `path` instead of the temporary
    /// directory's `run/berkutd.sock`.
    pub fn socket(mut self, path: &Path) -> DaemonBuilder {
        self.socket = Some(path.to_owned());
        self
    }

    /// Passes `listener` as fd 3 with `LISTEN_FDS=1` and `LISTEN_PID` set
    /// as `pid` says, like systemd's socket activation; again at every
    /// restart.
    pub fn socket_activation(mut self, listener: UnixListener, pid: ListenPid) -> DaemonBuilder {
        self.activation = Some(Activation::new(listener, pid));
        self
    }

    /// Sets an environment variable for the daemon.
    pub fn env(mut self, name: &str, value: impl Into<String>) -> DaemonBuilder {
        self.env.push((name.to_owned(), value.into()));
        self
    }

    pub fn max_parallel(self, n: usize) -> DaemonBuilder {
        self.env("BERKUT_BACKUP_MAX_PARALLEL", n.to_string())
    }

    /// Uses another pg_dump (a fake, usually); pg_dumpall stays the real one.
    pub fn pg_dump(self, bin: &Path) -> DaemonBuilder {
        let real = crate::pg_bin_dir();
        self.env("BERKUT_BACKUP_PGDUMP_BIN", bin.display().to_string())
            .env(
                "BERKUT_BACKUP_PGDUMPALL_BIN",
                real.join("pg_dumpall").display().to_string(),
            )
            .env(
                "BERKUT_RESTORE_PGRESTORE_BIN",
                real.join("pg_restore").display().to_string(),
            )
            .env(
                "BERKUT_RESTORE_PSQL_BIN",
                real.join("psql").display().to_string(),
            )
    }

    /// Uses another pg_restore (a fake, usually).
    pub fn pg_restore(self, bin: &Path) -> DaemonBuilder {
        self.env("BERKUT_RESTORE_PGRESTORE_BIN", bin.display().to_string())
    }

    pub fn key(mut self, key: MasterKey) -> DaemonBuilder {
        self.key = key;
        self
    }

    /// Reuses a directory (state, backups, socket) from an earlier daemon.
    pub fn dir(mut self, dir: tempfile::TempDir) -> DaemonBuilder {
        self.dir = Some(dir);
        self
    }

    pub fn start(self) -> Daemon {
        let dir = self.dir.unwrap_or_else(|| crate::temp_dir("berkutd-"));
        let mut daemon = Daemon {
            socket: self
                .socket
                .unwrap_or_else(|| dir.path().join("run/berkutd.sock")),
            state_dir: dir.path().join("state"),
            backup_dir: dir.path().join("backups"),
            log_path: dir.path().join("berkutd.log"),
            key: self.key,
            database_url: self.database_url,
            env: self.env,
            unset: self.unset,
            args: self.args,
            activation: self.activation,
            hooks: self.hooks,
            dir,
            child: None,
        };
        daemon.spawn();
        daemon
    }
}

pub struct Daemon {
    pub socket: PathBuf,
    pub state_dir: PathBuf,
    pub backup_dir: PathBuf,
    pub log_path: PathBuf,
    pub key: MasterKey,
    database_url: String,
    env: Vec<(String, String)>,
    unset: Vec<String>,
    args: Vec<String>,
    activation: Option<Activation>,
    hooks: Vec<Hook>,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Daemon {
    fn spawn(&mut self) {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("daemon log file");
        let bin = workspace_bin("berkutd");
        let mut cmd = match &self.activation {
            Some(activation) => activated_command(&bin, activation),
            None => Command::new(&bin),
        };
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("BERKUT_LOG", "info,berkut_daemon=debug")
            .env("BERKUT_SOCKET", &self.socket)
            .env("BERKUT_STATE_DIR", &self.state_dir)
            .env("BERKUT_BACKUP_PATH", &self.backup_dir)
            .env("BERKUT_DATABASE_URL", &self.database_url)
            .env("BERKUT_BACKUP_ENCRYPTION_KEY", &*self.key.to_base64())
            .env(
                "BERKUT_BACKUP_PGDUMP_BIN",
                crate::pg_bin_dir().join("pg_dump"),
            )
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        for k in &self.unset {
            cmd.env_remove(k);
        }
        cmd.args(&self.args);
        for hook in &self.hooks {
            let hook = Arc::clone(hook);
            // SAFETY: `DaemonBuilder::pre_exec` requires hooks that are
            // async-signal-safe.
            unsafe {
                cmd.pre_exec(move || hook());
            }
        }
        let child = cmd.spawn().expect("berkutd starts");
        self.child = Some(child);
        let socket = self.socket.clone();
        wait_for("berkutd to listen on its socket", START_TIMEOUT, || {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "berkutd exited during start-up ({status}); its log:\n{}",
                    self.log()
                );
            }
            std::os::unix::net::UnixStream::connect(&socket)
                .ok()
                .map(|_| ())
        });
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Opens the socket (and its directory) to every user, so that only
    /// the daemon's own check (its grants) stands between a test user and
    /// the daemon.
    pub fn open_socket_to_all(&self) {
        use std::os::unix::fs::PermissionsExt;
        let dir = self.socket.parent().expect("the socket is in a directory");
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&self.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    }

    /// A keyring with this daemon's key, for reading its archives.
    pub fn keyring(&self) -> Keyring {
        Keyring::new(MasterKey::parse(&self.key.to_base64()).expect("own key parses"))
    }

    pub async fn client(&self) -> Client {
        Client::connect(&self.socket, "berkut-testkit")
            .await
            .expect("connect to berkutd")
    }

    /// Everything the daemon has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn archive_path(&self, id: &str) -> PathBuf {
        self.backup_dir.join(format!("{id}.bscc"))
    }

    /// Files in the backup directory, hidden ones included, sorted.
    pub fn backup_files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.backup_dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal_and_wait(Signal::SIGTERM)
    }

    /// Sends a signal and returns at once.
    pub fn signal(&self, signal: Signal) {
        let child = self.child.as_ref().expect("the daemon is running");
        kill(Pid::from_raw(child.id() as i32), signal).expect("signal berkutd");
    }

    /// Waits up to `timeout` for the daemon to exit (after a signal).
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("the daemon is running");
        wait_for("berkutd to exit", timeout, || {
            child.try_wait().ok().flatten()
        })
    }

    /// Whether the daemon is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// Kills the daemon with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        self.signal_and_wait(Signal::SIGKILL);
    }

    fn signal_and_wait(&mut self, signal: Signal) -> ExitStatus {
        let mut child = self.child.take().expect("the daemon is running");
        let _ = kill(Pid::from_raw(child.id() as i32), signal);
        wait_for("berkutd to exit", Duration::from_secs(30), || {
            child.try_wait().ok().flatten()
        })
    }

    /// Stops the daemon (if running) and hands over its directories, so a
    /// daemon with another configuration can take them over with
    /// `DaemonBuilder::dir`.
    pub fn into_dir(mut self) -> tempfile::TempDir {
        if self.child.is_some() {
            self.stop();
        }
        let placeholder = tempfile::tempdir().expect("a placeholder directory");
        std::mem::replace(&mut self.dir, placeholder)
    }

    /// Starts the daemon again on the same directories.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop or kill the daemon first");
        self.spawn();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- berkutd log ---\n{}--- end of berkutd log ---",
                self.log()
            );
        }
    }
}
