//! `status`: what the daemon is and what it is doing, and whether the
//! newest good backup is recent enough (the RPO watch, R17); the running
//! and queued counts include restores. Faults monitoring must see: backups
//! whose archive is missing, the store alarm, background tasks that died.

use std::sync::Arc;

use berkut_proto::wire::ops::Status;
use berkut_proto::wire::{BackupStatus, Reply, Role, StatusInfo, PROTOCOL_VERSION};

use super::{Op, Responder};
use crate::error::OpError;
use crate::schedule::Objective;
use crate::state::Daemon;

impl Op for Status {
    const IN_MAINTENANCE: bool = true;

    fn role(&self) -> Role {
        Role::Viewer
    }

    fn target(&self) -> Option<String> {
        None
    }

    async fn handle(self, daemon: &Arc<Daemon>, _: &Responder) -> Result<Reply, OpError> {
        let now = daemon.now();
        let jobs = daemon.jobs.list();
        // Restores wait for and hold the same slots as backups: the counts
        // include them (the list shows backups only, see JobInfo).
        let counts = *daemon.jobs.counts().borrow();
        let (backups, newest_success_at, missing) = daemon.catalogue.read(|cat| {
            let missing = cat
                .list()
                .filter(|e| e.state.status() == BackupStatus::Missing)
                .count() as u64;
            (cat.len() as u64, cat.newest_success(None), missing)
        });
        let age = newest_success_at.map(|t| (now - t).whole_seconds().max(0) as u64);
        let objective = crate::schedule::objective(daemon.plan.borrow().as_ref(), now);
        let (limit, rpo_breached) = match objective {
            Objective::None => (None, false),
            Objective::Broken => (None, true),
            Objective::Limit(limit) => {
                let limit = limit.whole_seconds().max(0) as u64;
                (Some(limit), age.is_none_or(|age| age > limit))
            }
        };
        Ok(Reply::Status {
            status: StatusInfo {
                version: env!("CARGO_PKG_VERSION").to_owned(),
                protocol_version: PROTOCOL_VERSION,
                started_at: daemon.started_at,
                uptime_seconds: (now - daemon.started_at).whole_seconds().max(0) as u64,
                max_parallel: daemon.jobs.max_parallel() as u32,
                running: counts.running as u32,
                queued: counts.queued as u32,
                jobs: jobs.iter().map(|j| j.info()).collect(),
                backups,
                newest_success_at,
                newest_success_age_seconds: age,
                rpo_limit_seconds: limit,
                rpo_breached,
                dev_mode: daemon.config().dev,
                missing,
                store_alarm: crate::recovery::store_alarm(daemon),
                task_faults: daemon.health.task_faults(),
            },
        })
    }
}
