//! `backup_list`: every backup the catalogue knows, newest first.

use berkut_proto::wire::Reply;

use crate::error::OpError;
use crate::state::Daemon;

pub fn handle(daemon: &Daemon) -> Result<Reply, OpError> {
    let backups = daemon
        .catalogue
        .lock()
        .unwrap()
        .list()
        .map(|e| e.record())
        .collect();
    Ok(Reply::Backups { backups })
}
