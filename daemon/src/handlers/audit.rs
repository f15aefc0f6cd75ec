//! `audit_tail` and `audit_verify`.

use berkut_proto::wire::Reply;

use crate::error::OpError;
use crate::state::Daemon;

/// The most events one `audit_tail` reply carries.
pub const MAX_TAIL_LINES: u32 = 10_000;

/// The most bytes of lines one `audit_tail` reply carries: far below the
/// frame limit (4 MiB) whatever the lines hold, so a page always fits; the
/// client asks for the rest page by page.
pub const PAGE_BYTES: usize = 1 << 20;

pub fn tail(daemon: &Daemon, lines: u32, before: Option<u64>) -> Result<Reply, OpError> {
    let page = daemon
        .audit
        .snapshot()
        .page(lines.min(MAX_TAIL_LINES) as usize, before, PAGE_BYTES);
    Ok(Reply::Audit {
        lines: page.lines,
        next: page.next,
    })
}

pub fn verify(daemon: &Daemon) -> Result<Reply, OpError> {
    let verdict = daemon.audit.snapshot().verify();
    Ok(Reply::AuditVerified {
        lines: verdict.lines,
        first_bad: verdict
            .first_bad
            .map(|(file, line, why)| format!("{file}:{line}: {why}")),
        removed: verdict.removed,
    })
}
