//! `remote_list`: the archives a remote holds, from a listing and a ranged
//! read of each header (`remote::ops::list`), including ones the catalogue
//! has never seen: the first step of a recovery on a bare machine.

use std::sync::Arc;

use berkut_proto::wire::ops::RemoteList;
use berkut_proto::wire::{Reply, Role};

use super::{Op, Responder};
use crate::error::OpError;
use crate::state::Daemon;

impl Op for RemoteList {
    const IN_MAINTENANCE: bool = false;

    fn role(&self) -> Role {
        Role::Viewer
    }

    fn target(&self) -> Option<String> {
        None
    }

    async fn handle(self, daemon: &Arc<Daemon>, _: &Responder) -> Result<Reply, OpError> {
        let archives = crate::remote::ops::list(daemon, &self.remote).await?;
        Ok(Reply::RemoteArchives {
            remote: self.remote,
            archives,
        })
    }
}
