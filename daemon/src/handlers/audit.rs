//! `audit_tail` and `audit_verify`.

use berkut_proto::wire::Reply;

use crate::error::OpError;
use crate::state::Daemon;

pub fn tail(daemon: &Daemon, lines: u32) -> Result<Reply, OpError> {
    Ok(Reply::Audit {
        lines: daemon.audit.tail_lines(lines.min(10_000) as usize),
    })
}

pub fn verify(daemon: &Daemon) -> Result<Reply, OpError> {
    let verdict = crate::audit::verify(daemon.audit.dir());
    Ok(Reply::AuditVerified {
        lines: verdict.lines,
        first_bad: verdict
            .first_bad
            .map(|(file, line, why)| format!("{file}:{line}: {why}")),
    })
}
