//! `restore_cleanup`: drops the database a real restore kept for rollback.

use std::sync::Arc;

use berkut_proto::wire::ops::RestoreCleanup;
use berkut_proto::wire::{Reply, Role};

use super::{Op, Responder};
use crate::error::OpError;
use crate::restore::rollback;
use crate::state::Daemon;

impl Op for RestoreCleanup {
    const IN_MAINTENANCE: bool = false;

    fn role(&self) -> Role {
        Role::Admin
    }

    fn target(&self) -> Option<String> {
        Some(self.restore_id.to_string())
    }

    async fn handle(self, daemon: &Arc<Daemon>, _: &Responder) -> Result<Reply, OpError> {
        Ok(Reply::Restore {
            restore: rollback::cleanup(daemon, &self.restore_id).await?,
        })
    }
}
