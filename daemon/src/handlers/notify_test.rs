//! `notify_test`: a `test` event to every configured sink, whatever its
//! filter, once (no retries), and each sink's result, so an operator can
//! check a webhook's URL and secret or a hook before something goes wrong.
//! For admins: it sends messages out and runs programs.

use std::sync::Arc;

use berkut_proto::wire::ops::NotifyTest;
use berkut_proto::wire::{Reply, Role, SinkResult};

use super::{Op, Responder};
use crate::error::OpError;
use crate::state::Daemon;

impl Op for NotifyTest {
    const IN_MAINTENANCE: bool = false;

    fn role(&self) -> Role {
        Role::Admin
    }

    fn target(&self) -> Option<String> {
        None
    }

    async fn handle(self, daemon: &Arc<Daemon>, _: &Responder) -> Result<Reply, OpError> {
        let results = daemon
            .events
            .test()
            .await
            .into_iter()
            .map(|d| SinkResult {
                sink: d.sink,
                ok: d.ok,
                detail: d.detail,
            })
            .collect();
        Ok(Reply::NotifyTested { results })
    }
}
