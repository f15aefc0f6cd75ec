//! `maintenance_status`, `maintenance_watch` (a stream of changes for the
//! main application) and `maintenance_clear`.

use berkut_proto::wire::Reply;

use super::Responder;
use crate::error::OpError;
use crate::state::Daemon;

pub fn handle(daemon: &Daemon) -> Result<Reply, OpError> {
    Ok(Reply::Maintenance {
        maintenance: daemon.maintenance.current(),
    })
}

/// Sends the current state, then every change, until the client goes away
/// (noticed at once, not at the next change, so that its connection slot
/// comes back) or the daemon stops.
pub async fn watch(daemon: &Daemon, resp: &Responder) -> Result<Reply, OpError> {
    let mut rx = daemon.maintenance.subscribe();
    loop {
        let current = rx.borrow_and_update().clone();
        if !resp.event(current).await {
            return Err(OpError::unavailable("the client went away"));
        }
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { break },
            _ = daemon.shutdown.cancelled() => break,
            _ = resp.client_gone() => return Err(OpError::unavailable("the client went away")),
        }
    }
    Ok(Reply::Maintenance {
        maintenance: daemon.maintenance.current(),
    })
}

/// Lifts maintenance left on by an interrupted restore. Refused while a
/// restore is really running.
pub fn clear(daemon: &Daemon) -> Result<Reply, OpError> {
    if daemon.restores.real_in_progress() {
        return Err(OpError::conflict(
            "a real restore is running; maintenance ends when it does",
        ));
    }
    daemon.maintenance.end()?;
    Ok(Reply::Maintenance {
        maintenance: daemon.maintenance.current(),
    })
}
