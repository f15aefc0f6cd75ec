//! `restore_rollback` and `restore_cleanup`.

use berkut_proto::ids::RestoreId;
use berkut_proto::wire::Reply;

use crate::error::OpError;
use crate::restore::rollback;
use crate::state::Daemon;

pub async fn rollback(daemon: &Daemon, id: &RestoreId) -> Result<Reply, OpError> {
    Ok(Reply::Restore {
        restore: rollback::rollback(daemon, id).await?,
    })
}

pub async fn cleanup(daemon: &Daemon, id: &RestoreId) -> Result<Reply, OpError> {
    Ok(Reply::Restore {
        restore: rollback::cleanup(daemon, id).await?,
    })
}
