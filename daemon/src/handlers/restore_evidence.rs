//! `restore_evidence`: what a finished restore proved, read from its
//! evidence on disk.

use std::sync::Arc;

use berkut_proto::wire::ops::RestoreEvidence;
use berkut_proto::wire::{Reply, Role};

use super::restore_status::not_found;
use super::{Op, Responder};
use crate::error::OpError;
use crate::restore::record;
use crate::state::Daemon;

impl Op for RestoreEvidence {
    const IN_MAINTENANCE: bool = false;

    fn role(&self) -> Role {
        Role::Operator
    }

    fn target(&self) -> Option<String> {
        Some(self.restore_id.to_string())
    }

    async fn handle(self, daemon: &Arc<Daemon>, _: &Responder) -> Result<Reply, OpError> {
        let id = &self.restore_id;
        let evidence =
            record::evidence(&daemon.config().state_dir, id).ok_or_else(|| not_found(id))?;
        Ok(Reply::Evidence {
            evidence: Box::new(evidence),
        })
    }
}
