//! `maintenance_clear`: lifts maintenance left on by an interrupted
//! restore. Refused while a restore is really running.

use std::sync::Arc;

use berkut_proto::wire::ops::MaintenanceClear;
use berkut_proto::wire::{Reply, Role};

use super::{Op, Responder};
use crate::error::OpError;
use crate::state::Daemon;

impl Op for MaintenanceClear {
    const IN_MAINTENANCE: bool = true;

    fn role(&self) -> Role {
        Role::Admin
    }

    fn target(&self) -> Option<String> {
        None
    }

    async fn handle(self, daemon: &Arc<Daemon>, _: &Responder) -> Result<Reply, OpError> {
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
}
