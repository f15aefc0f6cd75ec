//! `maintenance_watch`: a stream of maintenance changes for the main
//! application.

use std::sync::Arc;

use berkut_proto::wire::ops::MaintenanceWatch;
use berkut_proto::wire::{Reply, Role};

use super::{Op, Responder};
use crate::error::OpError;
use crate::state::Daemon;

impl Op for MaintenanceWatch {
    const IN_MAINTENANCE: bool = true;

    fn role(&self) -> Role {
        Role::Viewer
    }

    fn target(&self) -> Option<String> {
        None
    }

    /// Sends the current state, then every change, until the client goes
    /// away (noticed at once, not at the next change, so that its
    /// connection slot comes back) or the daemon stops.
    async fn handle(self, daemon: &Arc<Daemon>, resp: &Responder) -> Result<Reply, OpError> {
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
}
