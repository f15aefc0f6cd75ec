//! `audit_verify`: checks the audit trail's hash chain from its first line.

use std::sync::Arc;

use berkut_proto::wire::ops::AuditVerify;
use berkut_proto::wire::{Reply, Role};

use super::{Op, Responder};
use crate::error::OpError;
use crate::state::Daemon;

impl Op for AuditVerify {
    const IN_MAINTENANCE: bool = false;

    fn role(&self) -> Role {
        Role::Admin
    }

    fn target(&self) -> Option<String> {
        None
    }

    async fn handle(self, daemon: &Arc<Daemon>, _: &Responder) -> Result<Reply, OpError> {
        let verdict = daemon.audit.snapshot().verify();
        Ok(Reply::AuditVerified {
            lines: verdict.lines,
            first_bad: verdict
                .first_bad
                .map(|(file, line, why)| format!("{file}:{line}: {why}")),
            removed: verdict.removed,
        })
    }
}
