//! Where the gateway listens: `unix:PATH` (a socket of mode 0660 whose
//! group may be given, for the application's reverse proxy or backend) or
//! a loopback address such as `127.0.0.1:8088`. Anything else is refused:
//! the gateway trusts `X-Berkut-User` and `X-Berkut-Role`, so only the
//! application's own side may reach it. Under systemd the socket unit
//! passes a listening socket instead (`LISTEN_FDS`, fd 3), checked by the
//! same rules.

use std::net::SocketAddr;
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{bail, Context, Result};

/// The first descriptor systemd passes (SD_LISTEN_FDS_START).
const LISTEN_FDS_START: RawFd = 3;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

impl FromStr for Listen {
    type Err = String;
    fn from_str(s: &str) -> Result<Listen, String> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err("unix: needs a path, e.g. unix:/run/berkut-http/http.sock".into());
            }
            return Ok(Listen::Unix(PathBuf::from(path)));
        }
        let addr: SocketAddr = s.parse().map_err(|_| {
            format!("{s:?} is neither unix:PATH nor an address such as 127.0.0.1:8088")
        })?;
        if !addr.ip().is_loopback() {
            return Err(format!(
                "{addr} is not a loopback address: the gateway trusts the X-Berkut-* headers, \
                 so it listens only on loopback or a Unix socket (put a reverse proxy in front)"
            ));
        }
        Ok(Listen::Tcp(addr))
    }
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listen::Unix(p) => write!(f, "unix:{}", p.display()),
            Listen::Tcp(a) => write!(f, "{a}"),
        }
    }
}

pub enum Bound {
    Unix(tokio::net::UnixListener, PathBuf),
    Tcp(tokio::net::TcpListener),
}

impl Bound {
    /// Where it listens, for the log (a port 0 resolved).
    pub fn describe(&self) -> String {
        match self {
            Bound::Unix(_, p) => format!("unix:{}", p.display()),
            Bound::Tcp(l) => l
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|_| "?".into()),
        }
    }
}

/// The socket systemd passed, if any is meant for this process.
pub fn from_systemd() -> Result<Option<Bound>> {
    let pid_ok = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        == Some(std::process::id());
    let Some(fds) = std::env::var("LISTEN_FDS").ok().filter(|_| pid_ok) else {
        return Ok(None);
    };
    let fds: u32 = fds.parse().context("LISTEN_FDS is not a number")?;
    if fds != 1 {
        bail!("systemd passed {fds} sockets; berkut-http takes exactly one (ListenStream=)");
    }
    let fd = LISTEN_FDS_START;
    // Ours for good: no later child should inherit it.
    nix::fcntl::fcntl(
        // SAFETY: fd 3 is the socket systemd passed for this process.
        unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) },
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .context("the passed socket (fd 3) is not open")?;
    let addr: nix::sys::socket::SockaddrStorage =
        nix::sys::socket::getsockname(fd).context("fd 3 is not a socket")?;
    if let Some(unix) = addr.as_unix_addr() {
        // SAFETY: fd 3 is a listening socket that this process now owns.
        let std_listener = unsafe { std::os::unix::net::UnixListener::from_raw_fd(fd) };
        std_listener.set_nonblocking(true)?;
        let path = unix.path().map(PathBuf::from).unwrap_or_default();
        return Ok(Some(Bound::Unix(
            tokio::net::UnixListener::from_std(std_listener)?,
            path,
        )));
    }
    // SAFETY: as above, for an IP socket.
    let std_listener = unsafe { std::net::TcpListener::from_raw_fd(fd) };
    let local = std_listener
        .local_addr()
        .context("the passed socket is neither a Unix nor an IP stream socket")?;
    if !local.ip().is_loopback() {
        bail!("systemd passed a socket on {local}, which is not loopback; refusing to serve there");
    }
    std_listener.set_nonblocking(true)?;
    Ok(Some(Bound::Tcp(tokio::net::TcpListener::from_std(
        std_listener,
    )?)))
}

/// Binds where `listen` says; a Unix socket gets mode 0660 and `group`.
pub async fn bind(listen: &Listen, group: Option<&str>) -> Result<Bound> {
    match listen {
        Listen::Tcp(addr) => Ok(Bound::Tcp(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr}"))?,
        )),
        Listen::Unix(path) => {
            let gid = match group {
                None => None,
                Some(name) => Some(
                    nix::unistd::Group::from_name(name)
                        .context("cannot read the group database")?
                        .with_context(|| format!("no group {name:?}"))?
                        .gid,
                ),
            };
            if let Ok(meta) = std::fs::symlink_metadata(path) {
                if !meta.file_type().is_socket() {
                    bail!("{} exists and is not a socket", path.display());
                }
                if std::os::unix::net::UnixStream::connect(path).is_ok() {
                    bail!("{} is in use by another server", path.display());
                }
                // A socket nobody serves: left by an earlier run.
                std::fs::remove_file(path)
                    .with_context(|| format!("cannot remove the stale {}", path.display()))?;
            }
            let listener = tokio::net::UnixListener::bind(path)
                .with_context(|| format!("cannot listen on {}", path.display()))?;
            if let Some(gid) = gid {
                nix::unistd::chown(path, None, Some(gid))
                    .with_context(|| format!("cannot give {} its group", path.display()))?;
            }
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
                .with_context(|| format!("cannot set the mode of {}", path.display()))?;
            Ok(Bound::Unix(listener, path.clone()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_and_unix_sockets_are_accepted() {
        assert_eq!(
            "127.0.0.1:8088".parse::<Listen>(),
            Ok(Listen::Tcp("127.0.0.1:8088".parse().unwrap()))
        );
        assert!("[::1]:8088".parse::<Listen>().is_ok());
        assert!("127.1.2.3:80".parse::<Listen>().is_ok());
        assert_eq!(
            "unix:/run/x.sock".parse::<Listen>(),
            Ok(Listen::Unix("/run/x.sock".into()))
        );
        for bad in [
            "0.0.0.0:8088",
            "[::]:8088",
            "192.168.1.2:80",
            "localhost:80",
            "unix:",
            "8088",
        ] {
            assert!(bad.parse::<Listen>().is_err(), "{bad} was accepted");
        }
    }
}
