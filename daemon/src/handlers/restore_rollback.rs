//! `restore_rollback`: puts the database that a real restore replaced back
//! in place.

use std::sync::Arc;

use berkut_proto::wire::ops::RestoreRollback;
use berkut_proto::wire::{Reply, Role};

use super::{Op, Responder};
use crate::error::OpError;
use crate::restore::rollback;
use crate::state::Daemon;

impl Op for RestoreRollback {
    const IN_MAINTENANCE: bool = false;

    fn role(&self) -> Role {
        Role::Admin
    }

    fn target(&self) -> Option<String> {
        Some(self.restore_id.to_string())
    }

    async fn handle(self, daemon: &Arc<Daemon>, _: &Responder) -> Result<Reply, OpError> {
        Ok(Reply::Restore {
            restore: rollback::rollback(daemon, &self.restore_id).await?,
        })
    }
}
