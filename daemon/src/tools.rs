//! Running PostgreSQL's own tools (`pg_dump`, `pg_dumpall`, `pg_restore`,
//! `psql`) and notification hooks (`run_hook`) as child processes. This is
//! the only place in the daemon that spawns processes.
//! A child starts from an empty environment: the daemon's own holds the
//! master key and the database URL with its password, and anything in a
//! child's environment can be read in `/proc/<pid>/environ`. It gets only
//! what `ALLOWED_ENV` names from the daemon's environment, plus what the
//! caller set on the command (libpq's `PG*` variables, `PGPASSWORD` when
//! the URL has a password).
//! A `ChildSlot` remembers which child is running so that a cancelled job can
//! stop it from another thread; the pid is forgotten before the child is
//! reaped, so a recycled pid is never signalled.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::error::OpError;

/// The child a job is running, if any, and whether the job was cancelled.
#[derive(Default)]
pub struct ChildSlot {
    pid: Mutex<Option<u32>>,
    cancelled: AtomicBool,
}

impl ChildSlot {
    pub fn new() -> Arc<ChildSlot> {
        Arc::new(ChildSlot::default())
    }

    /// Stops the current child and any child started from now on.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        if let Some(pid) = *self.pid.lock().unwrap() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    fn register(&self, child: &Child) {
        let mut slot = self.pid.lock().unwrap();
        *slot = Some(child.id());
        if self.is_cancelled() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        }
    }

    fn forget(&self) {
        *self.pid.lock().unwrap() = None;
    }
}

/// A tool's outcome, with its stderr kept for the log.
pub struct ToolOutput {
    pub status: ExitStatus,
    pub stderr: String,
}

impl ToolOutput {
    /// Turns a failed run into an error a client can read. The tool's stderr
    /// may name sockets, files or SQL, so it goes only to the log.
    pub fn check(&self, tool: &str, slot: &ChildSlot) -> Result<(), OpError> {
        if self.status.success() {
            return Ok(());
        }
        if slot.is_cancelled() {
            return Err(shutdown_error());
        }
        let detail = format!("{tool} {}: {}", self.status, last_lines(&self.stderr, 20));
        let (code, message) = if self.stderr.contains("connection to server")
            || self.stderr.contains("could not connect")
        {
            (
                berkut_proto::wire::ErrorCode::Unavailable,
                format!("{tool} could not connect to the database"),
            )
        } else {
            (
                berkut_proto::wire::ErrorCode::Internal,
                format!("{tool} failed ({})", describe(self.status)),
            )
        };
        Err(OpError::new(code, message).with_detail(detail))
    }
}

/// What a child may take from the daemon's environment: where to find
/// programs, the locale and the time zone. Nothing else: not the daemon's
/// configuration (`BERKUT_*`, the key, the database URL), not the service
/// manager's variables (a tool could ping the daemon's watchdog), and not
/// libpq's `PG*` variables, so that the tools reach exactly the server the
/// daemon's URL names. `HOME` is not needed: libpq finds the home directory
/// from the user database.
fn allowed_env(name: &str) -> bool {
    matches!(name, "PATH" | "LANG" | "LANGUAGE" | "TZ") || name.starts_with("LC_")
}

/// The environment a child starts with: the allowed part of the daemon's,
/// then what the caller set on the command (which wins).
fn minimal_env(cmd: &Command) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = std::env::vars_os()
        .filter(|(k, _)| k.to_str().is_some_and(allowed_env))
        .collect();
    for (k, v) in cmd.get_envs() {
        env.retain(|(name, _)| name != k);
        if let Some(v) = v {
            env.push((k.to_owned(), v.to_owned()));
        }
    }
    env
}

/// Gives `cmd` the minimal environment instead of the daemon's.
fn confine_env(cmd: &mut Command) {
    let env = minimal_env(cmd);
    cmd.env_clear().envs(env);
}

/// The error of a job stopped because the daemon is shutting down.
pub fn shutdown_error() -> OpError {
    OpError::unavailable(SHUTDOWN)
}

const SHUTDOWN: &str = "shutdown: the daemon stopped before the job finished";

/// Whether `e` is `shutdown_error()`: a job the daemon's stop cut short.
pub fn is_shutdown(e: &OpError) -> bool {
    e.message == SHUTDOWN
}

/// Runs `cmd` with stdout handed to `on_stdout` and each stderr line to
/// `on_stderr_line`, both while the child runs. Returns once the child has
/// exited and both streams are drained.
pub fn run_streaming(
    cmd: Command,
    slot: &ChildSlot,
    on_stdout: impl FnOnce(&mut dyn Read) -> std::io::Result<()>,
    mut on_stderr_line: impl FnMut(&str) + Send,
) -> Result<(ToolOutput, std::io::Result<()>), OpError> {
    let (mut child, program) = spawn(cmd, slot, Stdio::null(), Stdio::piped())?;
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let (stderr_text, pumped) = std::thread::scope(|s| {
        let errs = s.spawn(|| read_stderr(stderr, &mut on_stderr_line));
        let pumped = on_stdout(&mut stdout);
        if pumped.is_err() {
            // The reader gave up (disk full, archive error): stop the tool
            // rather than let it block on a full pipe.
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        }
        // Drain what is left so the child is never blocked writing.
        let _ = std::io::copy(&mut stdout, &mut std::io::sink());
        (errs.join().unwrap_or_default(), pumped)
    });
    let status = reap(child, slot, &program)?;
    Ok((
        ToolOutput {
            status,
            stderr: stderr_text,
        },
        pumped,
    ))
}

/// At most this much of a tool's stderr is kept in memory.
const MAX_STDERR: usize = 1 << 20;

/// Starts `cmd` with its stdin and stdout as given and stderr piped, tied
/// to the daemon's life, and registered in `slot` for cancellation. Returns
/// the child and the program's name for messages.
fn spawn(
    mut cmd: Command,
    slot: &ChildSlot,
    stdin: Stdio,
    stdout: Stdio,
) -> Result<(Child, String), OpError> {
    cmd.stdin(stdin).stdout(stdout).stderr(Stdio::piped());
    confine_env(&mut cmd);
    // If the daemon dies, its tools die with it rather than run on
    // unwatched. The signal follows the spawning thread, which is the
    // caller's blocking thread and outlives the child.
    // SAFETY: the closure runs between fork and exec and only makes one
    // async-signal-safe system call.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).map_err(std::io::Error::from)
        });
    }
    let program = Path::new(cmd.get_program())
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let child = cmd.spawn().map_err(|e| {
        OpError::unavailable(format!("{program} could not be started")).with_detail(e)
    })?;
    slot.register(&child);
    Ok((child, program))
}

/// Reads a tool's stderr to its end, handing each line to `on_line` and
/// keeping the first `MAX_STDERR` bytes.
fn read_stderr(
    stderr: std::process::ChildStderr,
    on_line: &mut (impl FnMut(&str) + Send),
) -> String {
    let mut text = String::new();
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        on_line(&line);
        if text.len() < MAX_STDERR {
            text.push_str(&line);
            text.push('\n');
        }
    }
    text
}

/// Waits for a child whose pid `slot` no longer holds.
fn reap(mut child: Child, slot: &ChildSlot, program: &str) -> Result<ExitStatus, OpError> {
    slot.forget();
    child
        .wait()
        .map_err(|e| OpError::internal(format!("waiting for {program}: {e}")))
}

/// The first line a tool prints for `--version`.
pub async fn version(bin: &Path) -> Result<String, OpError> {
    let name = bin
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut std_cmd = Command::new(bin);
    confine_env(&mut std_cmd);
    let mut cmd = tokio::process::Command::from(std_cmd);
    let out = cmd
        .arg("--version")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| {
            OpError::unavailable(format!("{name} could not be started"))
                .with_detail(format!("{}: {e}", bin.display()))
        })?;
    if !out.status.success() {
        return Err(OpError::unavailable(format!("{name} --version failed"))
            .with_detail(String::from_utf8_lossy(&out.stderr)));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_owned())
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => match Signal::try_from(sig) {
            Ok(s) => format!("killed by signal {sig} ({})", s.as_str()),
            Err(_) => format!("killed by signal {sig}"),
        },
        _ => status.to_string(),
    }
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

/// Runs `cmd` with `input` on its stdin (kept in memory: role definitions
/// are secrets and never go to a file), each stderr line handed to
/// `on_stderr_line`; stdout is discarded.
pub fn run_with_input(
    cmd: Command,
    slot: &ChildSlot,
    input: &[u8],
    mut on_stderr_line: impl FnMut(&str) + Send,
) -> Result<ToolOutput, OpError> {
    let (mut child, program) = spawn(cmd, slot, Stdio::piped(), Stdio::null())?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let stderr_text = std::thread::scope(|s| {
        let errs = s.spawn(|| read_stderr(stderr, &mut on_stderr_line));
        let _ = std::io::Write::write_all(&mut stdin, input);
        drop(stdin);
        errs.join().unwrap_or_default()
    });
    let status = reap(child, slot, &program)?;
    Ok(ToolOutput {
        status,
        stderr: stderr_text,
    })
}

/// Runs `cmd` feeding its stdin from `feed` (on this thread) while its
/// stdout goes to `on_stdout` and its stderr, line by line, to
/// `on_stderr_line` (each on a thread of its own). A tool that exits
/// without reading all its input (`pg_restore --list` stops after the table
/// of contents) makes `feed` fail with a broken pipe, which is reported as
/// `Ok(false)`: the tool's exit status says whether that was fine. Any
/// other failure of `feed` stops the tool.
pub fn run_fed(
    cmd: Command,
    slot: &ChildSlot,
    feed: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
    on_stdout: impl FnOnce(&mut dyn Read) -> std::io::Result<()> + Send,
    mut on_stderr_line: impl FnMut(&str) + Send,
) -> Result<(ToolOutput, std::io::Result<bool>), OpError> {
    let (mut child, program) = spawn(cmd, slot, Stdio::piped(), Stdio::piped())?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let (stderr_text, fed) = std::thread::scope(|s| {
        let errs = s.spawn(|| read_stderr(stderr, &mut on_stderr_line));
        let outs = s.spawn(move || {
            let result = on_stdout(&mut stdout);
            // Drain what is left so the child is never blocked writing.
            let _ = std::io::copy(&mut stdout, &mut std::io::sink());
            result
        });
        let fed = match feed(&mut stdin) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
            Err(e) => {
                // The archive failed (or the disk): stop the tool rather
                // than let it act on a cut input.
                let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
                Err(e)
            }
        };
        drop(stdin);
        let out = outs.join().unwrap_or(Ok(()));
        let fed = fed.and_then(|f| out.map(|()| f));
        (errs.join().unwrap_or_default(), fed)
    });
    let status = reap(child, slot, &program)?;
    Ok((
        ToolOutput {
            status,
            stderr: stderr_text,
        },
        fed,
    ))
}

/// How a hook run ended badly.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("could not be started: {0}")]
    Start(std::io::ErrorKind),
    #[error("was killed at its timeout of {0} s")]
    TimedOut(u64),
    #[error("failed while running: {0}")]
    Wait(std::io::ErrorKind),
}

/// Runs a notification hook: `program`, no arguments, `input` on its
/// stdin, the minimal environment (no key, no database URL), its output
/// discarded, in a process group of its own so that at `timeout` the whole
/// group (a shell script's children too) is killed.
pub async fn run_hook(
    program: &Path,
    input: &[u8],
    timeout: std::time::Duration,
) -> Result<ExitStatus, HookError> {
    use tokio::io::AsyncWriteExt;
    let mut std_cmd = Command::new(program);
    confine_env(&mut std_cmd);
    std_cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    // SAFETY: as in `spawn`: one async-signal-safe call between fork and exec.
    unsafe {
        std_cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
        });
    }
    let mut child = tokio::process::Command::from(std_cmd)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| HookError::Start(e.kind()))?;
    let pid = child.id();
    let mut stdin = child.stdin.take();
    let ran = tokio::time::timeout(timeout, async {
        if let Some(mut pipe) = stdin.take() {
            // A hook that does not read its input is its own business.
            let _ = pipe.write_all(input).await;
        }
        child.wait().await
    })
    .await;
    match ran {
        Ok(Ok(status)) => Ok(status),
        Ok(Err(e)) => Err(HookError::Wait(e.kind())),
        Err(_) => {
            if let Some(pid) = pid {
                let _ = nix::sys::signal::killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
            }
            let _ = child.kill().await;
            Err(HookError::TimedOut(timeout.as_secs()))
        }
    }
}

/// A hook's exit status in words.
pub fn describe_status(status: ExitStatus) -> String {
    describe(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_gets_what_the_caller_set_and_the_allowed_variables_only() {
        let mut cmd = Command::new("true");
        cmd.env("PGPASSWORD", "secret")
            .env("PGHOST", "/run/postgresql")
            .env_remove("PGPASSFILE");
        let env = minimal_env(&cmd);
        let names: Vec<&str> = env.iter().map(|(k, _)| k.to_str().unwrap()).collect();
        assert!(names.contains(&"PGPASSWORD") && names.contains(&"PGHOST"));
        for name in names {
            assert!(
                allowed_env(name) || name.starts_with("PG"),
                "{name} reaches the child"
            );
        }
        assert!(!allowed_env("BERKUT_BACKUP_ENCRYPTION_KEY"));
        assert!(!allowed_env("BERKUT_DATABASE_URL"));
        assert!(!allowed_env("PGPASSWORD"));
        assert!(!allowed_env("NOTIFY_SOCKET"));
        assert!(allowed_env("LC_ALL") && allowed_env("PATH"));
    }
}
