//! `backup_pin`: a pinned backup is never deleted by retention (it can
//! still be deleted by hand). `backup_unpin` undoes it through `set_pinned`.

use std::sync::Arc;

use berkut_proto::ids::BackupId;
use berkut_proto::wire::ops::BackupPin;
use berkut_proto::wire::{Reply, Role};

use super::backup_show::not_found;
use super::{Op, Responder};
use crate::error::OpError;
use crate::state::Daemon;

impl Op for BackupPin {
    const IN_MAINTENANCE: bool = false;

    fn role(&self) -> Role {
        Role::Admin
    }

    fn target(&self) -> Option<String> {
        Some(self.id.to_string())
    }

    async fn handle(self, daemon: &Arc<Daemon>, _: &Responder) -> Result<Reply, OpError> {
        set_pinned(daemon, &self.id, Pin::Pinned)
    }
}

/// What a backup's pin is set to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Pin {
    Pinned,
    Unpinned,
}

/// Sets the backup's pin and answers with its record.
pub(super) fn set_pinned(daemon: &Daemon, id: &BackupId, pin: Pin) -> Result<Reply, OpError> {
    let pinned = pin == Pin::Pinned;
    let record = daemon.update_catalogue(|c| {
        c.get_mut(id).map(|e| {
            e.pinned = pinned;
            e.record()
        })
    })?;
    let backup = record.ok_or_else(|| not_found(id))?;
    tracing::info!(backup = %id, pinned, "backup pin changed");
    Ok(Reply::Backup { backup })
}
