//! `plan_set`: validates a whole plan and puts it in force (enabled). A
//! plan that does not validate is `invalid` and the old plan stays.

use std::sync::Arc;

use berkut_proto::wire::ops::PlanSet;
use berkut_proto::wire::{Reply, Role};

use super::plan_show;
use super::{Op, Responder};
use crate::error::OpError;
use crate::schedule::plan::{self, StoredPlan};
use crate::state::Daemon;

impl Op for PlanSet {
    const IN_MAINTENANCE: bool = false;

    fn role(&self) -> Role {
        Role::Admin
    }

    fn target(&self) -> Option<String> {
        None
    }

    async fn handle(self, daemon: &Arc<Daemon>, _: &Responder) -> Result<Reply, OpError> {
        let spec = self.plan;
        if spec.include_files && daemon.config().file_roots.is_empty() {
            return Err(OpError::invalid(
                "include_files was asked for, but no file roots are configured",
            ));
        }
        let stored = StoredPlan::from_spec(&spec, daemon.now()).map_err(OpError::invalid)?;
        put_in_force(daemon, stored)?;
        Ok(Reply::Plan {
            plan: plan_show::info(daemon),
        })
    }
}

/// Persists a plan, then hands it to the scheduler. Both happen under the
/// plan's lock, so a reload re-reading the file cannot come in between.
pub fn put_in_force(daemon: &Daemon, stored: StoredPlan) -> Result<(), OpError> {
    let state_dir = daemon.config().state_dir.clone();
    let mut saved = Ok(());
    daemon.plan.send_if_modified(|current| {
        saved = plan::save(&state_dir, &stored);
        if saved.is_ok() {
            *current = Some(stored.clone());
        }
        saved.is_ok()
    });
    saved.map_err(|e| OpError::unavailable("the plan could not be saved").with_detail(e))?;
    tracing::info!(preset = stored.preset.as_str(), enabled = stored.enabled, timezone = %stored.timezone, "backup plan changed");
    Ok(())
}
