//! `drill_run`: a drill started by hand (`berkutctl drill run [ID]`), like
//! one the drill policy starts: of the backup named, or of the one the
//! policy would choose. One drill at a time: refused with `conflict` while
//! another is queued or running. `restore_start` with `dry_run` stays,
//! without that limit.

use std::sync::Arc;

use berkut_proto::wire::ops::DrillRun;
use berkut_proto::wire::{BackupStatus, Reply, Role};

use super::restore_status::follow;
use super::{Op, Responder};
use crate::drill::{self, Facts};
use crate::error::OpError;
use crate::state::Daemon;

impl Op for DrillRun {
    const IN_MAINTENANCE: bool = false;

    fn role(&self) -> Role {
        // Like a dry-run without roles: nothing live is touched.
        Role::Operator
    }

    fn target(&self) -> Option<String> {
        self.backup_id.as_ref().map(ToString::to_string)
    }

    async fn handle(self, daemon: &Arc<Daemon>, resp: &Responder) -> Result<Reply, OpError> {
        let id = match self.backup_id {
            Some(id) => id,
            None => daemon
                .catalogue
                .read(|cat| {
                    Facts::of(cat).candidate.or_else(|| {
                        cat.list()
                            .find(|e| e.state.status() == BackupStatus::Succeeded)
                            .map(|e| e.id.clone())
                    })
                })
                .ok_or_else(|| OpError::not_found("there is no successful backup to drill"))?,
        };
        let view = drill::start(daemon, &id).await?;
        let restore = if self.wait {
            follow(view, resp).await?
        } else {
            view.borrow().clone()
        };
        Ok(Reply::Restore { restore })
    }
}
