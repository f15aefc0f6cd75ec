//! `backup_delete`: removes an archive and its record. A backup that is
//! queued or being written is a `conflict`: deleting it would race the job.

use berkut_proto::ids::BackupId;
use berkut_proto::wire::Reply;

use super::backup_show::not_found;
use crate::error::OpError;
use crate::state::Daemon;

pub async fn handle(daemon: &Daemon, id: &BackupId) -> Result<Reply, OpError> {
    if !daemon.catalogue.contains(id) {
        return Err(not_found(id));
    }
    daemon.remove_backup(id)?;
    tracing::info!(backup = %id, "backup deleted");
    Ok(Reply::Deleted { id: id.clone() })
}
