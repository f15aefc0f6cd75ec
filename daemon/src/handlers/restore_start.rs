//! `restore_start`: queues a dry-run or a real restore, and either answers
//! with the queued record or follows it to its end.

use std::sync::Arc;

use berkut_proto::ids::BackupId;
use berkut_proto::wire::Reply;

use super::restore_status::follow;
use super::Responder;
use crate::error::OpError;
use crate::restore;
use crate::state::Daemon;

pub async fn handle(
    daemon: &Arc<Daemon>,
    backup_id: BackupId,
    dry_run: bool,
    with_globals: bool,
    wait: bool,
    resp: &Responder,
) -> Result<Reply, OpError> {
    let view = restore::submit(daemon, backup_id, dry_run, with_globals).await?;
    let restore = if wait {
        follow(view, resp).await?
    } else {
        view.borrow().clone()
    };
    Ok(Reply::Restore { restore })
}
