//! `plan_show`: the plan with its next run and the last successful
//! automatic backup.

use std::sync::Arc;

use berkut_proto::manifest::Origin;
use berkut_proto::wire::ops::PlanShow;
use berkut_proto::wire::{PlanInfo, Reply, Role};

use super::{Op, Responder};
use crate::error::OpError;
use crate::state::Daemon;

impl Op for PlanShow {
    const IN_MAINTENANCE: bool = false;

    fn role(&self) -> Role {
        Role::Viewer
    }

    fn target(&self) -> Option<String> {
        None
    }

    async fn handle(self, daemon: &Arc<Daemon>, _: &Responder) -> Result<Reply, OpError> {
        Ok(Reply::Plan { plan: info(daemon) })
    }
}

/// The plan as clients see it.
pub fn info(daemon: &Daemon) -> PlanInfo {
    let last_success = daemon.catalogue.newest_success(Some(Origin::Scheduled));
    let plan = daemon.plan.borrow().clone();
    let Some(plan) = plan else {
        return PlanInfo {
            enabled: false,
            preset: None,
            at: None,
            weekday: None,
            timezone: None,
            cron: None,
            scope: Default::default(),
            include_files: false,
            retention_days: 0,
            keep_last_successful: 0,
            catch_up: false,
            next_run: None,
            last_success,
        };
    };
    let next_run = if plan.enabled {
        plan.timing().ok().and_then(|t| t.next_after(daemon.now()))
    } else {
        None
    };
    PlanInfo {
        enabled: plan.enabled,
        preset: Some(plan.preset),
        at: plan.at,
        weekday: plan.weekday,
        timezone: Some(plan.timezone),
        cron: plan.cron,
        scope: plan.scope,
        include_files: plan.include_files,
        retention_days: plan.retention_days,
        keep_last_successful: plan.keep_last_successful,
        catch_up: plan.catch_up,
        next_run,
        last_success,
    }
}
