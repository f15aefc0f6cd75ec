//! `backup_pin` and `backup_unpin`: a pinned backup is never deleted by
//! retention (it can still be deleted by hand).

use berkut_proto::ids::BackupId;
use berkut_proto::wire::Reply;

use super::backup_show::not_found;
use crate::error::OpError;
use crate::state::Daemon;

pub fn handle(daemon: &Daemon, id: &BackupId, pinned: bool) -> Result<Reply, OpError> {
    let record = daemon.update_catalogue(|c| {
        c.get_mut(id).map(|e| {
            e.pinned = pinned;
            e.record()
        })
    })?;
    let backup = record.ok_or_else(|| not_found(id))?;
    tracing::info!(backup = %id, pinned, "backup pin changed");
    Ok(Reply::Backup { backup })
}
