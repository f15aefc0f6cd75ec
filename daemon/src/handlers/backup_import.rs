//! `backup_import`: takes an uploaded archive into the store. The bytes go
//! into a quarantine file in the backup directory (refused with `too_large`
//! the moment they pass the configured limit) and, in the same pass, to a
//! checker that authenticates the whole archive and checks every part
//! against the manifest while it arrives (`import_check.rs`); only when it
//! has passed (the checker fsyncs the file) is it renamed into place and catalogued with
//! origin `imported`.
//! Anything refused, and an upload cut off midway, leaves nothing. The
//! archive of a backup recorded as `missing` is taken in as that backup's
//! (it turns `succeeded` again) rather than refused as a conflict.
//! At most `IMPORT_SLOTS` imports run at once (the rest wait for a slot
//! before their `continue`), and an upload that sends nothing for the
//! connections' idle timeout is cut off.

use std::sync::Arc;

use berkut_proto::archive::HEADER_LEN;
use berkut_proto::ids::BackupId;
use berkut_proto::manifest::Origin;
use berkut_proto::wire::ops::BackupImport;
use berkut_proto::wire::{BackupStatus, ErrorCode, Reply, Role};
use tokio::sync::mpsc;

use super::{Op, Responder};
use crate::catalogue::Entry;
use crate::error::OpError;
use crate::state::Daemon;
use crate::store::io_error;

/// Imports running at once, daemon-wide: each holds two threads while it
/// checks what arrives (`import_check`), and a client that opens imports
/// and sends nothing held them until the blocking pool ran out.
pub const IMPORT_SLOTS: usize = 4;

/// One piece of an upload, as the connection hands it over: its data in
/// the buffer the frame was read into.
pub enum Piece {
    Data(crate::connection::Piece),
    End,
}

impl Op for BackupImport {
    const IN_MAINTENANCE: bool = false;

    fn role(&self) -> Role {
        Role::Admin
    }

    fn target(&self) -> Option<String> {
        None
    }

    async fn handle(self, daemon: &Arc<Daemon>, resp: &Responder) -> Result<Reply, OpError> {
        let size = self.size;
        let limit = daemon.config().upload_max_bytes;
        if size > limit {
            return Err(OpError::new(
                ErrorCode::TooLarge,
                format!("the archive is {size} bytes; imports are limited to {limit}"),
            ));
        }
        let mut pieces = resp
            .take_upload()
            .ok_or_else(|| OpError::internal("an import without an upload channel"))?;
        // A slot before `continue`: each running import holds a thread of
        // the blocking pool (its checker) and one hashing, so their number
        // is bounded whoever asks; the others wait here, holding nothing.
        let _slot = daemon
            .imports
            .acquire()
            .await
            .map_err(|_| OpError::unavailable("the daemon is stopping"))?;
        // An upload that stops sending is cut off after the connections'
        // idle timeout, as an idle connection would be: it holds a slot.
        let stall = daemon.config().connections.idle_timeout;
        let (file, mut quarantine) = daemon.store.quarantine("import").map_err(io_error)?;
        // The checker's thread writes the pieces to the file as it checks
        // them, and fsyncs it once the upload is complete.
        let mut check = super::import_check::Check::start(daemon, file);
        let mut head = Vec::with_capacity(HEADER_LEN);
        resp.proceed().await;
        let mut received = 0u64;
        loop {
            let Ok(piece) = tokio::time::timeout(stall, pieces.recv()).await else {
                return Err(OpError::invalid(format!(
                    "the upload sent nothing for {} s and was cut off",
                    stall.as_secs()
                )));
            };
            match piece {
                Some(Piece::Data(data)) => {
                    received += data.len() as u64;
                    if received > limit {
                        return Err(OpError::new(
                            ErrorCode::TooLarge,
                            format!("the upload passed the import limit of {limit} bytes"),
                        ));
                    }
                    if received > size {
                        return Err(OpError::invalid(format!(
                            "the upload is longer than the {size} bytes announced"
                        )));
                    }
                    if head.len() < HEADER_LEN {
                        let take = (HEADER_LEN - head.len()).min(data.len());
                        head.extend_from_slice(&data.filled()[..take]);
                    }
                    if !check.feed(data).await {
                        // The checker has refused the archive already: no
                        // need to take in the rest.
                        return Err(match check.verdict(&head).await {
                            Err(e) => e,
                            Ok(_) => OpError::internal("the archive check stopped early"),
                        });
                    }
                }
                Some(Piece::End) => break,
                None => return Err(OpError::invalid("the upload was cut off before its end")),
            }
        }
        if received != size {
            return Err(OpError::invalid(format!(
                "the upload ended after {received} of the {size} bytes announced"
            )));
        }
        let (manifest, facts) = check.verdict(&head).await?;
        let id: BackupId = manifest
            .backup_id
            .parse()
            .map_err(|_| OpError::invalid("the archive's manifest names no valid backup id"))?;
        let mut entry = Entry::from_archive(id.clone(), manifest, facts, Origin::Imported);
        // Checked, put in place and recorded under the catalogue's lock, so two
        // imports of one archive cannot both pass the check.
        // A failed save rolls the record back; the archive stays in place and
        // start-up recovery catalogues it.
        let record = daemon.try_update_catalogue(|cat| {
            let previous = cat.get(&id).cloned();
            // The archive of a backup recorded as missing comes home: the
            // record turns succeeded again, as it was (origin, label, pin).
            let returning = previous
                .as_ref()
                .filter(|e| e.state.status() == BackupStatus::Missing);
            if let Some(missing) = returning {
                entry = Entry {
                    state: missing.state.found(),
                    archive: entry.archive,
                    database: entry.database.or_else(|| missing.database.clone()),
                    ..missing.clone()
                };
            }
            if (previous.is_some() && returning.is_none())
                || daemon.store.archive_path(&id).exists()
            {
                return Err(OpError::conflict(format!(
                    "backup {id} is already in the store"
                )));
            }
            daemon
                .store
                .commit_quarantine(&mut quarantine, &id)
                .map_err(io_error)?;
            entry.copies = crate::remote::pending_copies(&daemon.config(), daemon.now());
            let record = entry.record();
            cat.insert(entry);
            Ok(record)
        })?;
        daemon.replication.wake();
        tracing::info!(backup = %id, size = received, "archive imported");
        // A missing backup coming home keeps its origin and was counted when
        // it ran; a new one is an imported run.
        if record.origin == Origin::Imported {
            daemon.metrics.backup_ended(Origin::Imported, true);
        } else {
            daemon.metrics.touch();
        }
        Ok(Reply::Backup { backup: record })
    }
}

/// The channel the connection feeds an import through: small, so a fast
/// client waits for the disk instead of filling memory (and an import
/// holds few of the upload pool's buffers, `connection::UPLOADS`).
pub fn channel() -> (mpsc::Sender<Piece>, mpsc::Receiver<Piece>) {
    mpsc::channel(2)
}
