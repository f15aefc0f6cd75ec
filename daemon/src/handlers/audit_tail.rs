//! `audit_tail`: a page of the audit trail, newest last.

use std::sync::Arc;

use berkut_proto::wire::ops::AuditTail;
use berkut_proto::wire::{Reply, Role};

use super::{Op, Responder};
use crate::error::OpError;
use crate::state::Daemon;

/// The most events one `audit_tail` reply carries.
pub const MAX_TAIL_LINES: u32 = 10_000;

/// The most bytes of lines one `audit_tail` reply carries: far below the
/// frame limit (4 MiB) whatever the lines hold, so a page always fits; the
/// client asks for the rest page by page.
pub const PAGE_BYTES: usize = 1 << 20;

impl Op for AuditTail {
    const IN_MAINTENANCE: bool = false;

    fn role(&self) -> Role {
        Role::Admin
    }

    fn target(&self) -> Option<String> {
        None
    }

    async fn handle(self, daemon: &Arc<Daemon>, _: &Responder) -> Result<Reply, OpError> {
        let page = daemon.audit.snapshot().page(
            self.lines.min(MAX_TAIL_LINES) as usize,
            self.before,
            PAGE_BYTES,
        );
        Ok(Reply::Audit {
            lines: page.lines,
            next: page.next,
        })
    }
}
