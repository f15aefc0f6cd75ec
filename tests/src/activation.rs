//! Socket activation for the daemon fixture: a listening socket handed to
//! berkutd as fd 3 with `LISTEN_FDS` and `LISTEN_PID`, the way systemd does
//! it for a socket unit.

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

/// Whose pid `LISTEN_PID` names when a socket is passed.
#[derive(Clone, Copy, Debug)]
pub enum ListenPid {
    /// The daemon's, as systemd does it.
    Daemon,
    /// Some other process's: the daemon must not take the socket.
    Other(u32),
}

/// A listening socket handed to the daemon as fd 3, the way systemd's
/// socket activation does.
#[derive(Clone)]
pub(crate) struct Activation {
    listener: Arc<UnixListener>,
    pid: ListenPid,
}

impl Activation {
    pub(crate) fn new(listener: UnixListener, pid: ListenPid) -> Activation {
        Activation {
            listener: Arc::new(listener),
            pid,
        }
    }
}

/// A command that starts berkutd with the listener as fd 3, as systemd
/// passes it. The descriptor is moved to 3 in a `pre_exec` hook (dup2
/// leaves the copy without close-on-exec). `LISTEN_PID` must be the
/// daemon's own pid, which exists only after the fork; std applies the
/// command's environment after `pre_exec` hooks run, so a hook cannot set
/// it. A shell sets it instead and `exec`s the daemon, which keeps the
/// shell's pid (`$$`). Arguments added later go to the daemon.
pub(crate) fn activated_command(bin: &Path, activation: &Activation) -> Command {
    let listen_pid = match activation.pid {
        ListenPid::Daemon => "$$".to_owned(),
        ListenPid::Other(pid) => pid.to_string(),
    };
    let mut sh = Command::new("/bin/sh");
    sh.arg("-c")
        .arg(format!(
            "LISTEN_PID={listen_pid} LISTEN_FDS=1; export LISTEN_PID LISTEN_FDS; exec \"$0\" \"$@\""
        ))
        .arg(bin);
    let fd = activation.listener.as_raw_fd();
    // SAFETY: the hook only makes async-signal-safe system calls.
    unsafe {
        sh.pre_exec(move || {
            use nix::libc::{dup2, fcntl, FD_CLOEXEC, F_GETFD, F_SETFD};
            if fd == 3 {
                let flags = fcntl(3, F_GETFD);
                if flags < 0 || fcntl(3, F_SETFD, flags & !FD_CLOEXEC) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    sh
}
