//! `plan_disable`: stops the plan; the plan itself is kept.

use std::sync::Arc;

use berkut_proto::wire::ops::PlanDisable;
use berkut_proto::wire::{Reply, Role};

use super::plan_enable::{set_enabled, Switch};
use super::{Op, Responder};
use crate::error::OpError;
use crate::state::Daemon;

impl Op for PlanDisable {
    const IN_MAINTENANCE: bool = false;

    fn role(&self) -> Role {
        Role::Admin
    }

    fn target(&self) -> Option<String> {
        None
    }

    async fn handle(self, daemon: &Arc<Daemon>, _: &Responder) -> Result<Reply, OpError> {
        set_enabled(daemon, Switch::Off)
    }
}
