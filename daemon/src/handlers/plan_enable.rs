//! `plan_enable`. Enabling starts the plan afresh: slots that passed while
//! it was off are not caught up. `plan_disable` shares `set_enabled`.

use std::sync::Arc;

use berkut_proto::wire::ops::PlanEnable;
use berkut_proto::wire::{Reply, Role};

use super::{plan_set, plan_show, Op, Responder};
use crate::error::OpError;
use crate::state::Daemon;

impl Op for PlanEnable {
    const IN_MAINTENANCE: bool = false;

    fn role(&self) -> Role {
        Role::Admin
    }

    fn target(&self) -> Option<String> {
        None
    }

    async fn handle(self, daemon: &Arc<Daemon>, _: &Responder) -> Result<Reply, OpError> {
        set_enabled(daemon, Switch::On)
    }
}

/// Whether the plan runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Switch {
    On,
    Off,
}

/// Turns the plan on or off (a plan already so is left as it is) and
/// answers with it.
pub(super) fn set_enabled(daemon: &Daemon, switch: Switch) -> Result<Reply, OpError> {
    let enabled = switch == Switch::On;
    let Some(mut stored) = daemon.plan.borrow().clone() else {
        return Err(OpError::not_found(
            "no backup plan has been set; set one with plan_set",
        ));
    };
    if stored.enabled != enabled {
        stored.enabled = enabled;
        stored.effective_since = daemon.now();
        plan_set::put_in_force(daemon, stored)?;
    }
    Ok(Reply::Plan {
        plan: plan_show::info(daemon),
    })
}
