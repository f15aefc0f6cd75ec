//! `metrics`: every metric in the Prometheus text format, rendered from the
//! state now; the same text as the `metrics_textfile`, whether or not that
//! file can be written. For viewers, and served during maintenance, since
//! monitoring should not go blind while a restore runs.

use std::sync::Arc;

use berkut_proto::wire::ops::Metrics;
use berkut_proto::wire::{Reply, Role};

use super::{Op, Responder};
use crate::error::OpError;
use crate::state::Daemon;

impl Op for Metrics {
    const IN_MAINTENANCE: bool = true;

    fn role(&self) -> Role {
        Role::Viewer
    }

    fn target(&self) -> Option<String> {
        None
    }

    async fn handle(self, daemon: &Arc<Daemon>, _: &Responder) -> Result<Reply, OpError> {
        Ok(Reply::Metrics {
            text: crate::metrics::render(daemon),
        })
    }
}
