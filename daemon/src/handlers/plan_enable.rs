//! `plan_enable` and `plan_disable`. Enabling starts the plan afresh: slots
//! that passed while it was off are not caught up.

use berkut_proto::wire::Reply;

use super::{plan_set, plan_show};
use crate::error::OpError;
use crate::state::Daemon;

pub fn handle(daemon: &Daemon, enabled: bool) -> Result<Reply, OpError> {
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
