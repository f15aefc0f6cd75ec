//! `remote_status`: per remote, whether it answers, its copies by state,
//! how long the newest backup has waited for its copy (the off-site RPO)
//! and the last error (`remote::ops::status`).

use std::sync::Arc;

use berkut_proto::wire::ops::RemoteStatus;
use berkut_proto::wire::{Reply, Role};

use super::{Op, Responder};
use crate::error::OpError;
use crate::state::Daemon;

impl Op for RemoteStatus {
    const IN_MAINTENANCE: bool = false;

    fn role(&self) -> Role {
        Role::Viewer
    }

    fn target(&self) -> Option<String> {
        None
    }

    async fn handle(self, daemon: &Arc<Daemon>, _: &Responder) -> Result<Reply, OpError> {
        Ok(Reply::Remotes {
            remotes: crate::remote::ops::status(daemon).await,
        })
    }
}
