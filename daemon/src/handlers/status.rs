//! `status`: what the daemon is and what it is doing, and whether the
//! newest good backup is recent enough (the RPO watch, R17); the running
//! and queued counts include restores. Faults monitoring must see: backups
//! whose archive is missing, the store alarm, background tasks that died.
//! And what drills proved: the newest verified backup and its age (the
//! recovery point one can count on), a drill overdue or failed.

use std::sync::Arc;

use berkut_proto::wire::ops::Status;
use berkut_proto::wire::{BackupStatus, Reply, Role, StatusInfo, PROTOCOL_VERSION};

use super::{Op, Responder};
use crate::error::OpError;
use crate::restore::verdict;
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
        let overdue_after = daemon.config().drill_overdue;
        let (backups, missing, proof) = daemon.catalogue.read(|cat| {
            let missing = cat
                .list()
                .filter(|e| e.state.status() == BackupStatus::Missing)
                .count() as u64;
            (
                cat.len() as u64,
                missing,
                verdict::proof(cat, now, overdue_after),
            )
        });
        let drill_failed = proof.failed();
        let rpo = crate::schedule::rpo_state(daemon, now);
        let offsite = crate::remote::offsite_rpo(daemon, now);
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
                newest_success_at: rpo.newest_success_at,
                newest_success_age_seconds: rpo.age_seconds,
                rpo_limit_seconds: rpo.limit_seconds,
                rpo_breached: rpo.breached,
                dev_mode: daemon.config().dev,
                missing,
                store_alarm: crate::recovery::store_alarm(daemon),
                task_faults: daemon.health.task_faults(),
                offsite_rpo_limit_seconds: offsite.limit_seconds,
                offsite_uncopied_age_seconds: offsite.uncopied_age_seconds,
                offsite_rpo_breached: offsite.breached,
                verified_backup: proof.verified.as_ref().map(|(id, _)| id.clone()),
                verified_at: proof.verified.as_ref().map(|(_, at)| *at),
                verified_age_seconds: proof.verified_age_seconds(now),
                last_drill_backup: proof.last.as_ref().map(|(id, _)| id.clone()),
                last_drill: proof.last.map(|(_, v)| v),
                drill_overdue: proof.overdue,
                drill_failed,
            },
        })
    }
}
