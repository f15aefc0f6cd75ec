//! `store_rewrap`: re-wraps every stored archive that is not under the
//! primary key, so that an old key can be removed from the configuration.
//! Each archive is rewritten beside itself (the payload copied untouched),
//! fsynced and renamed over the old file; the catalogue then records its new
//! digest and key id. An archive a job is using is left for a later run.

use std::io::BufWriter;
use std::sync::Arc;

use berkut_proto::ids::BackupId;
use berkut_proto::wire::ops::StoreRewrap;
use berkut_proto::wire::{Reply, Role};

use super::{Op, Responder};
use crate::error::OpError;
use crate::state::Daemon;
use crate::store::{io_error, HashingWriter};

impl Op for StoreRewrap {
    const IN_MAINTENANCE: bool = false;

    fn role(&self) -> Role {
        Role::Admin
    }

    fn target(&self) -> Option<String> {
        None
    }

    async fn handle(self, daemon: &Arc<Daemon>, _: &Responder) -> Result<Reply, OpError> {
        let primary = daemon.config().keyring.primary().key_id().to_string();
        let candidates: Vec<(BackupId, String)> = daemon.catalogue.read(|cat| {
            cat.list()
                // A missing backup keeps its archive's facts, but not its file.
                .filter(|e| e.state.status() != berkut_proto::wire::BackupStatus::Missing)
                .filter_map(|e| e.archive.as_ref().map(|a| (e.id.clone(), a.key_id.clone())))
                .collect()
        });
        let (mut rewrapped, mut unchanged, mut busy, mut failed) =
            (Vec::new(), 0u64, Vec::new(), Vec::new());
        for (id, key_id) in candidates {
            if key_id == primary {
                unchanged += 1;
                continue;
            }
            if daemon.backup_busy(&id) {
                busy.push(id);
                continue;
            }
            // The lease keeps a delete out while the file is rewritten.
            let _lease = daemon.downloads.acquire(&id);
            let d = Arc::clone(daemon);
            let id2 = id.clone();
            let outcome = tokio::task::spawn_blocking(move || rewrap_one(&d, &id2))
                .await
                .unwrap_or_else(|e| Err(OpError::internal(format!("rewrap panicked: {e}"))))
                .and_then(|(sha256, new_key)| {
                    daemon.update_catalogue(|c| {
                        if let Some(a) = c.get_mut(&id).and_then(|e| e.archive.as_mut()) {
                            a.sha256 = sha256;
                            a.key_id = new_key;
                        }
                    })
                });
            if let Err(e) = outcome {
                let body = e.into_body("store_rewrap");
                tracing::warn!(backup = %id, code = %body.code, message = %body.message, "an archive could not be rewrapped");
                failed.push(id);
                continue;
            }
            tracing::info!(backup = %id, from = %key_id, to = %primary, "archive rewrapped under the primary key");
            rewrapped.push(id);
        }
        Ok(Reply::Rewrapped {
            rewrapped,
            unchanged,
            busy,
            failed,
        })
    }
}

fn rewrap_one(daemon: &Daemon, id: &BackupId) -> Result<(String, String), OpError> {
    let keyring = &daemon.config().keyring;
    let source = std::fs::File::open(daemon.store.archive_path(id)).map_err(io_error)?;
    let (file, partial) = daemon.store.create_partial(id).map_err(io_error)?;
    let result = (|| {
        let mut out = HashingWriter::new(BufWriter::new(berkut_proto::archive::WriteBehind::new(
            file,
        )));
        let (_, header) = berkut_proto::archive::rewrap(
            std::io::BufReader::new(source),
            &mut out,
            keyring,
            keyring.primary(),
        )
        .map_err(|e| match e {
            berkut_proto::archive::ArchiveError::Io(e) => io_error(e),
            other => OpError::invalid(format!("archive {id} cannot be rewrapped: {other}")),
        })?;
        let (buffered, _, sha256) = out.finish();
        buffered
            .into_inner()
            .map_err(|e| io_error(e.into_error()))?
            .sync_all()
            .map_err(io_error)?;
        daemon.store.commit(&partial, id).map_err(io_error)?;
        Ok((sha256, header.key_id.to_string()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}
