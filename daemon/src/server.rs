//! The listening socket: taking the one systemd passes (socket activation)
//! or binding it safely (never over a live daemon's socket), accepting
//! connections until shutdown (each then takes a slot under the connection
//! limits, or is refused with the reason, see `connection`), and removing
//! the socket file afterwards only if this daemon created it.

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::connection::{self, Slots};
use crate::state::Daemon;

/// What the service manager passed (`LISTEN_FDS`, `LISTEN_PID`).
#[derive(Debug)]
pub enum Activation {
    /// Nothing: the daemon binds its socket itself.
    None,
    /// A socket passed as fd 3.
    Socket(OwnedFd),
    /// `LISTEN_PID` named another process: the descriptors are not ours.
    OtherPid(String),
}

/// Takes the socket systemd passed, if any, and removes `LISTEN_PID`,
/// `LISTEN_FDS` and `LISTEN_FDNAMES` from the environment so that child
/// processes do not believe the socket is theirs. The descriptor is marked
/// close-on-exec.
///
/// # Safety
///
/// Changes the environment: call it while the process has a single thread
/// (before any runtime starts), like `std::env::remove_var`.
pub unsafe fn take_activation() -> io::Result<Activation> {
    let pid = std::env::var("LISTEN_PID").ok();
    // SAFETY: the caller guarantees a single thread.
    let fds: Vec<_> = unsafe { sd_notify::listen_fds_and_unset_env() }?.collect();
    std::env::remove_var("LISTEN_FDNAMES");
    match (fds.len(), pid) {
        (0, Some(pid)) if pid.trim() != std::process::id().to_string() => {
            Ok(Activation::OtherPid(pid))
        }
        (0, _) => Ok(Activation::None),
        // SAFETY: systemd passed the descriptor to this process (LISTEN_PID
        // is ours) and nothing else in it owns fd 3.
        (1, _) => Ok(Activation::Socket(unsafe {
            <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fds[0])
        })),
        (n, _) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("systemd passed {n} sockets; berkutd listens on exactly one (one ListenStream= in berkutd.socket)"),
        )),
    }
}

/// Turns a passed descriptor into the listener, after checking that it is
/// what berkutd.socket promises: a listening Unix stream socket.
pub fn adopt(fd: OwnedFd, configured: &Path) -> io::Result<UnixListener> {
    use nix::sys::socket::{getsockname, getsockopt, sockopt, SockType, UnixAddr};
    use std::os::fd::AsRawFd;
    let wrong = |what: &str| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "the socket systemd passed is {what}; berkutd.socket must have ListenStream=<path>"
            ),
        )
    };
    if getsockopt(&fd, sockopt::SockType).map_err(io::Error::from)? != SockType::Stream {
        return Err(wrong("not a stream socket"));
    }
    if !getsockopt(&fd, sockopt::AcceptConn).map_err(io::Error::from)? {
        return Err(wrong("not listening"));
    }
    let addr: UnixAddr = getsockname(fd.as_raw_fd()).map_err(|_| wrong("not a Unix socket"))?;
    match addr.path() {
        Some(path) if path == configured => {}
        Some(path) => tracing::warn!(
            passed = %path.display(),
            configured = %configured.display(),
            "the socket systemd passed is not the configured one; berkutctl looks for the configured path"
        ),
        None => tracing::warn!("the socket systemd passed has no path (abstract or unnamed)"),
    }
    let listener = std::os::unix::net::UnixListener::from(fd);
    listener.set_nonblocking(true)?;
    UnixListener::from_std(listener)
}

/// A socket file this daemon created, removed when the daemon stops. The
/// file is removed only if it is still the one bound (same device and
/// inode): never a socket someone else put in its place.
pub struct OwnedPath {
    path: PathBuf,
    id: (u64, u64),
}

impl OwnedPath {
    pub fn remove(self) {
        match std::fs::symlink_metadata(&self.path) {
            Ok(meta) if (meta.dev(), meta.ino()) == self.id => {
                if let Err(e) = std::fs::remove_file(&self.path) {
                    tracing::warn!(error = %e, "cannot remove the socket file");
                }
            }
            _ => {}
        }
    }
}

/// Binds the socket at `path`, returning the listener and the socket file
/// to remove at the end.
pub fn bind_owned(path: &Path) -> io::Result<(UnixListener, OwnedPath)> {
    let listener = bind(path)?;
    let meta = std::fs::symlink_metadata(path)?;
    let owned = OwnedPath {
        path: path.to_owned(),
        id: (meta.dev(), meta.ino()),
    };
    Ok((listener, owned))
}

/// Binds the socket. A stale socket file left by a crashed daemon is
/// replaced; a socket some process still answers on is not.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        if !dir.exists() {
            std::fs::create_dir_all(dir)?;
            // Others may reach the socket (its group, through the file
            // mode); nobody else may put anything beside it.
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
        }
        check_runtime_dir(dir)?;
    }
    if path.exists() {
        match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("another process is listening on {}", path.display()),
                ))
            }
            Err(_) => std::fs::remove_file(path)?,
        }
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    Ok(listener)
}

/// Refuses a socket directory in which any user could replace the socket:
/// world-writable without the sticky bit.
fn check_runtime_dir(dir: &Path) -> io::Result<()> {
    let mode = std::fs::metadata(dir)?.permissions().mode();
    if mode & 0o002 != 0 && mode & 0o1000 == 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{} is writable by every user; put the socket in a directory only berkutd may write (e.g. /run/berkut)", dir.display()),
        ));
    }
    if mode & 0o002 != 0 {
        tracing::warn!(dir = %dir.display(), "the socket's directory is world-writable (sticky); a private directory such as /run/berkut is safer");
    }
    Ok(())
}

/// Gives the socket file to `group`, so that members of it (the main
/// application's user, say) can connect; the daemon's own check still
/// decides what they may do.
pub fn set_socket_group(path: &Path, group: u32) -> io::Result<()> {
    nix::unistd::chown(path, None, Some(nix::unistd::Gid::from_raw(group))).map_err(io::Error::from)
}

/// Accepts connections until `shutdown`; returns the tracker of the
/// connections still open, so the caller decides how long to wait for them.
pub async fn accept(
    daemon: Arc<Daemon>,
    listener: UnixListener,
    shutdown: CancellationToken,
) -> TaskTracker {
    let connections = TaskTracker::new();
    let slots = Slots::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                // Admission needs the peer's grants (a lookup of its
                // groups), so it happens in the connection's own task.
                Ok((stream, _)) => {
                    let (daemon, shutdown) = (Arc::clone(&daemon), shutdown.clone());
                    connections.spawn(connection::serve(daemon, stream, Arc::clone(&slots), shutdown));
                }
                Err(e) => {
                    // Running out of descriptors is temporary; back off a
                    // little rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
            _ = shutdown.cancelled() => break,
        }
    }
    connections.close();
    connections
}
