//! `remote_verify`: one copy, or every copy a remote holds, downloaded and
//! authenticated whole; nothing decrypted is written and nothing is kept
//! (`remote::ops::verify`).

use std::sync::Arc;

use berkut_proto::wire::ops::RemoteVerify;
use berkut_proto::wire::{Reply, Role};

use super::{Op, Responder};
use crate::error::OpError;
use crate::state::Daemon;

impl Op for RemoteVerify {
    const IN_MAINTENANCE: bool = false;

    /// It downloads whole archives: work an operator schedules, like a
    /// drill.
    fn role(&self) -> Role {
        Role::Operator
    }

    fn target(&self) -> Option<String> {
        self.id.as_ref().map(|id| id.to_string())
    }

    async fn handle(self, daemon: &Arc<Daemon>, _: &Responder) -> Result<Reply, OpError> {
        let verdicts = crate::remote::ops::verify(daemon, &self.remote, self.id.as_ref()).await?;
        Ok(Reply::RemoteVerified {
            remote: self.remote,
            verdicts,
        })
    }
}
