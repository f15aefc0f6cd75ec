//! `backup_unpin`: gives a pinned backup back to retention.

use std::sync::Arc;

use berkut_proto::wire::ops::BackupUnpin;
use berkut_proto::wire::{Reply, Role};

use super::backup_pin::{set_pinned, Pin};
use super::{Op, Responder};
use crate::error::OpError;
use crate::state::Daemon;

impl Op for BackupUnpin {
    const IN_MAINTENANCE: bool = false;

    fn role(&self) -> Role {
        Role::Admin
    }

    fn target(&self) -> Option<String> {
        Some(self.id.to_string())
    }

    async fn handle(self, daemon: &Arc<Daemon>, _: &Responder) -> Result<Reply, OpError> {
        set_pinned(daemon, &self.id, Pin::Unpinned)
    }
}
