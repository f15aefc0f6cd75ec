//! `backup_delete`: removes an archive and its record. A backup that is
//! queued or being written is a `conflict`: deleting it would race the job.

use berkut_proto::ids::BackupId;
use berkut_proto::wire::Reply;

use super::backup_show::not_found;
use crate::backup::io_error;
use crate::error::OpError;
use crate::state::Daemon;

pub async fn handle(daemon: &Daemon, id: &BackupId) -> Result<Reply, OpError> {
    if daemon.catalogue.lock().unwrap().get(id).is_none() {
        return Err(not_found(id));
    }
    if daemon.jobs.is_active(id) {
        return Err(OpError::conflict(format!(
            "backup {id} is still in progress"
        )));
    }
    // The file goes first: a crash in between leaves a record whose archive
    // is missing, which start-up recovery marks as such, never an archive
    // without a record that would be resurrected.
    daemon.store.delete(id).map_err(io_error)?;
    daemon.update_catalogue(|c| c.remove(id))?;
    tracing::info!(backup = %id, "backup deleted");
    Ok(Reply::Deleted { id: id.clone() })
}
