//! `status`: what the daemon is and what it is doing, and whether the
//! newest good backup is recent enough (the RPO watch, R17).

use berkut_proto::wire::{BackupStatus, Reply, StatusInfo, PROTOCOL_VERSION};

use crate::error::OpError;
use crate::state::Daemon;

pub fn handle(daemon: &Daemon) -> Result<Reply, OpError> {
    let now = daemon.now();
    let jobs = daemon.jobs.list();
    let count = |s| jobs.iter().filter(|j| j.record.status == s).count() as u32;
    let (backups, newest_success_at) = {
        let cat = daemon.catalogue.lock().unwrap();
        let newest = cat
            .list()
            .filter(|e| e.state.status() == BackupStatus::Succeeded)
            .map(|e| e.state.created_at())
            .max();
        (cat.len() as u64, newest)
    };
    let age = newest_success_at.map(|t| (now - t).whole_seconds().max(0) as u64);
    let limit = crate::schedule::rpo_limit(daemon.plan.borrow().as_ref(), now)
        .map(|d| d.whole_seconds().max(0) as u64);
    let rpo_breached = match (limit, age) {
        (Some(limit), Some(age)) => age > limit,
        (Some(_), None) => true,
        (None, _) => false,
    };
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
            backups,
            newest_success_at,
            newest_success_age_seconds: age,
            rpo_limit_seconds: limit,
            rpo_breached,
            dev_mode: daemon.config().dev,
        },
    })
}
