//! The listening socket: binding it safely (never over a live daemon's
//! socket) and accepting connections until shutdown.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use berkut_proto::wire::{Connection, ErrorBody, ErrorCode, ServerMessage};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::connection;
use crate::state::Daemon;

/// Connections served at once. Each costs a little memory and a task;
/// the bound keeps a misbehaving client from exhausting either.
pub const MAX_CONNECTIONS: usize = 256;

/// Tells a connection over the limit why it is closed.
async fn refuse(stream: UnixStream) {
    tracing::warn!("too many connections; refusing one");
    let mut conn = Connection::new(stream);
    let error = ErrorBody::new(
        ErrorCode::Unavailable,
        "the daemon has too many connections; try again later",
    );
    let _ = conn
        .write_message(&ServerMessage::Error { id: None, error })
        .await;
}

/// Binds the socket. A stale socket file left by a crashed daemon is
/// replaced; a socket some process still answers on is not.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
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

/// Accepts connections until `shutdown`; returns the tracker of the
/// connections still open, so the caller decides how long to wait for them.
pub async fn accept(
    daemon: Arc<Daemon>,
    listener: UnixListener,
    shutdown: CancellationToken,
) -> TaskTracker {
    let connections = TaskTracker::new();
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => match limit.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let (daemon, shutdown) = (Arc::clone(&daemon), shutdown.clone());
                        connections.spawn(async move {
                            connection::serve(daemon, stream, shutdown).await;
                            drop(permit);
                        });
                    }
                    Err(_) => {
                        connections.spawn(refuse(stream));
                    }
                },
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
