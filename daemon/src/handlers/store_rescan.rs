//! `store_rescan`: looks at the backup directory again without a restart,
//! for when a mount that was not up at start is up now (or an archive was
//! put back by hand). `missing` backups whose archive is back and
//! authenticates turn `succeeded`; `succeeded` ones whose archive is gone
//! turn `missing`; archives the catalogue does not know are added. The
//! archives are read without the catalogue's lock; each change is applied
//! only if the entry is still as it was when looked at.

use std::collections::BTreeSet;
use std::sync::Arc;

use berkut_proto::ids::BackupId;
use berkut_proto::wire::ops::StoreRescan;
use berkut_proto::wire::{Reply, Role};

use super::{Op, Responder};
use crate::error::OpError;
use crate::recovery;
use crate::state::Daemon;
use crate::store::io_error;

impl Op for StoreRescan {
    const IN_MAINTENANCE: bool = false;

    fn role(&self) -> Role {
        Role::Admin
    }

    fn target(&self) -> Option<String> {
        None
    }

    async fn handle(self, daemon: &Arc<Daemon>, _: &Responder) -> Result<Reply, OpError> {
        let known = daemon.catalogue.read(recovery::statuses);
        let d = Arc::clone(daemon);
        let findings = tokio::task::spawn_blocking(move || {
            let on_disk: BTreeSet<BackupId> = d.store.list()?.into_iter().collect();
            Ok::<_, std::io::Error>(recovery::look(
                &d.store,
                &d.config().keyring,
                &known,
                &on_disk,
            ))
        })
        .await
        .map_err(|e| OpError::internal(format!("the rescan panicked: {e}")))?
        .map_err(io_error)?;
        let now = daemon.now();
        let scan = daemon.update_catalogue(|c| recovery::apply(c, findings, now))?;
        scan.log();
        match (&scan.alarm, daemon.health.store_alarm()) {
            (Some(alarm), _) => {
                tracing::error!(%alarm, "most recorded archives are missing from the backup directory; is it mounted?")
            }
            (None, Some(_)) => {
                tracing::info!("the store alarm is over: the recorded archives are there")
            }
            (None, None) => {}
        }
        daemon.health.set_store_alarm(scan.alarm.clone());
        tracing::info!(
            found = scan.found.len(),
            missing = scan.missing.len(),
            added = scan.added.len(),
            unverified = scan.unverified.len(),
            "the backup directory was rescanned"
        );
        Ok(Reply::Rescanned {
            found: scan.found,
            missing: scan.missing,
            added: scan.added,
            unverified: scan.unverified,
            store_alarm: scan.alarm,
        })
    }
}
