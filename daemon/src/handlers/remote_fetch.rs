//! `remote_fetch`: a remote's copy downloaded into quarantine,
//! authenticated whole and taken into the store with origin `remote`
//! (`remote::ops::fetch`); anything refused leaves nothing.

use std::sync::Arc;

use berkut_proto::wire::ops::RemoteFetch;
use berkut_proto::wire::{Reply, Role};

use super::{Op, Responder};
use crate::error::OpError;
use crate::state::Daemon;

impl Op for RemoteFetch {
    const IN_MAINTENANCE: bool = false;

    /// It adds an archive to the store, as an import does.
    fn role(&self) -> Role {
        Role::Admin
    }

    fn target(&self) -> Option<String> {
        Some(self.id.to_string())
    }

    async fn handle(self, daemon: &Arc<Daemon>, _: &Responder) -> Result<Reply, OpError> {
        let backup = crate::remote::ops::fetch(daemon, &self.remote, &self.id).await?;
        Ok(Reply::Backup { backup })
    }
}
