//! `status`: what the daemon is and what it is doing.

use berkut_proto::wire::{BackupStatus, Reply, StatusInfo, PROTOCOL_VERSION};

use crate::error::OpError;
use crate::state::Daemon;

pub fn handle(daemon: &Daemon) -> Result<Reply, OpError> {
    let now = daemon.now();
    let jobs = daemon.jobs.list();
    let count = |s| jobs.iter().filter(|j| j.record.status == s).count() as u32;
    Ok(Reply::Status {
        status: StatusInfo {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            protocol_version: PROTOCOL_VERSION,
            started_at: daemon.started_at,
            uptime_seconds: (now - daemon.started_at).whole_seconds().max(0) as u64,
            max_parallel: daemon.jobs.max_parallel() as u32,
            running: count(BackupStatus::Running),
            queued: count(BackupStatus::Queued),
            jobs: jobs.iter().map(|j| j.info()).collect(),
            backups: daemon.catalogue.lock().unwrap().len() as u64,
            dev_mode: daemon.config.dev,
        },
    })
}
