//! `maintenance_status`: whether maintenance is on, and why.

use std::sync::Arc;

use berkut_proto::wire::ops::MaintenanceStatus;
use berkut_proto::wire::{Reply, Role};

use super::{Op, Responder};
use crate::error::OpError;
use crate::state::Daemon;

impl Op for MaintenanceStatus {
    const IN_MAINTENANCE: bool = true;

    fn role(&self) -> Role {
        Role::Viewer
    }

    fn target(&self) -> Option<String> {
        None
    }

    async fn handle(self, daemon: &Arc<Daemon>, _: &Responder) -> Result<Reply, OpError> {
        Ok(Reply::Maintenance {
            maintenance: daemon.maintenance.current(),
        })
    }
}
