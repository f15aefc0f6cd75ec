//! What the remote operations do, apart from the protocol: list what a
//! remote holds (a ranged read of each header), fetch a copy into the
//! store (downloaded into quarantine, authenticated whole, then committed
//! like an import), verify copies (the same download and authentication,
//! nothing kept), each remote's state, and deleting copies. Every object
//! key is made from a `BackupId` (`storage.rs`), so a client's text never
//! names an object.

use std::sync::Arc;

use berkut_proto::archive::HEADER_LEN;
use berkut_proto::ids::BackupId;
use berkut_proto::manifest::Origin;
use berkut_proto::wire::{
    BackupRecord, BackupStatus, CopyState, ErrorCode, RemoteArchive, RemoteInfo, RemoteVerdict,
};
use time::OffsetDateTime;
use tokio::io::AsyncWriteExt;

use super::storage::{Failure, RemoteError, Storage};
use crate::catalogue::{BackupState, Entry};
use crate::config::remote::RemoteKind;
use crate::error::OpError;
use crate::state::Daemon;
use crate::store::io_error;

/// The most archives one `remote_verify` of a whole remote looks at.
const MAX_VERIFIED: usize = 1000;

/// A remote's failure as a client sees it: `unavailable`, naming the
/// remote, in its safe words.
pub fn op_error(e: RemoteError) -> OpError {
    match e.kind {
        Failure::NotFound => OpError::not_found(e.to_string()),
        Failure::Mismatch => OpError::invalid(e.to_string()),
        _ => OpError::unavailable(e.to_string()),
    }
}

/// Opens the configured remote called `name`, or says there is none.
pub fn open(daemon: &Daemon, name: &str) -> Result<Storage, OpError> {
    match super::storage(&daemon.config(), name) {
        Some(storage) => storage.map_err(op_error),
        None => Err(OpError::not_found(format!(
            "no remote is called {}",
            berkut_proto::wire::input::quote(name)
        ))),
    }
}

/// When a backup was created, from its id (`YYYYMMDDTHHMMSSZ-…`).
pub fn created_of(id: &BackupId) -> OffsetDateTime {
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    time::PrimitiveDateTime::parse(&id.as_str()[..16], format)
        .map(|t| t.assume_utc())
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

pub async fn list(daemon: &Daemon, name: &str) -> Result<Vec<RemoteArchive>, OpError> {
    let storage = open(daemon, name)?;
    let objects = storage.list().await.map_err(op_error)?;
    let mut out = Vec::with_capacity(objects.len());
    for (id, size) in objects {
        let (key_id, problem) = match storage.head_bytes(&id, HEADER_LEN as u64).await {
            Ok(bytes) => match <&[u8; HEADER_LEN]>::try_from(bytes.as_slice())
                .ok()
                .map(berkut_proto::archive::Header::parse)
            {
                Some(Ok(header)) => (Some(header.key_id.to_string()), None),
                Some(Err(e)) => (None, Some(format!("not a Berkut archive header: {e}"))),
                None => (None, Some("shorter than an archive header".to_owned())),
            },
            Err(e) => (None, Some(e.words)),
        };
        out.push(RemoteArchive {
            known: daemon.catalogue.contains(&id),
            created_at: created_of(&id),
            id,
            size_bytes: size,
            key_id,
            problem,
        });
    }
    Ok(out)
}

/// Downloads a copy into quarantine and authenticates it whole: the
/// manifest must name `id` (an archive of another backup put under its
/// key is refused). Returns the quarantine, the manifest and the facts.
async fn download_verified(
    daemon: &Arc<Daemon>,
    storage: &Storage,
    id: &BackupId,
) -> Result<
    (
        crate::store::Quarantine,
        berkut_proto::manifest::Manifest,
        crate::catalogue::ArchiveFacts,
    ),
    OpError,
> {
    // A slot first: downloads in the backup directory are bounded in
    // number, whoever asks (clients, restores), so verifies cannot fill it.
    let _slot = daemon
        .replication
        .download_slots
        .acquire()
        .await
        .map_err(|_| OpError::unavailable("the daemon is stopping"))?;
    let config = daemon.config();
    // The size to expect: what the server says the object holds, which
    // must be what the catalogue recorded for a backup it knows. Archives
    // have no size limit of their own, so neither has their recovery; the
    // download is held to this size and to the room in the directory.
    let Some(size) = storage.size_of(id).await.map_err(op_error)? else {
        return Err(OpError::not_found(format!(
            "remote {} holds no backup {id}",
            storage.name()
        )));
    };
    // A copy the catalogue knows must be the very archive it recorded:
    // its size now, its SHA-256 once downloaded.
    let recorded = daemon.catalogue.entry(id).and_then(|e| e.archive);
    if let Some(r) = recorded.as_ref().filter(|r| r.size_bytes != size) {
        return Err(OpError::invalid(format!(
            "remote {}: the copy of backup {id} has {size} bytes, the catalogue recorded {}",
            storage.name(),
            r.size_bytes
        )));
    }
    let room = crate::fsutil::free_bytes(&config.backup_path).unwrap_or(u64::MAX);
    if room < size.saturating_add(size / 20) {
        return Err(OpError::unavailable(format!(
            "the backup directory has {room} bytes free, too few for the {size} bytes of backup \
             {id} from remote {}",
            storage.name()
        )));
    }
    let (file, quarantine) = daemon.store.quarantine("remote").map_err(io_error)?;
    let mut file = tokio::fs::File::from_std(file);
    let got = storage
        .download(id, &mut file, size)
        .await
        .map_err(op_error)?;
    if got != size {
        return Err(OpError::invalid(format!(
            "remote {}: the copy of backup {id} ended after {got} of its {size} bytes",
            storage.name()
        )));
    }
    file.flush().await.map_err(io_error)?;
    file.sync_all().await.map_err(io_error)?;
    drop(file);
    let (d, p) = (Arc::clone(daemon), quarantine.path().to_owned());
    let (manifest, facts) = tokio::task::spawn_blocking(move || {
        crate::store::verify_file(&p, &d.config().keyring).map_err(crate::restore::archive::refused)
    })
    .await
    .unwrap_or_else(|e| Err(OpError::internal(format!("verification panicked: {e}"))))?;
    if manifest.backup_id != id.as_str() {
        return Err(OpError::invalid(format!(
            "remote {}: the object under backup {id}'s name holds another backup's archive",
            storage.name()
        )));
    }
    if recorded.is_some_and(|r| r.sha256 != facts.sha256) {
        return Err(OpError::invalid(format!(
            "remote {}: the copy of backup {id} differs from the archive the catalogue recorded",
            storage.name()
        )));
    }
    Ok((quarantine, manifest, facts))
}

/// Brings a remote's copy of `id` into the store, origin `remote`. A
/// backup the catalogue knows only as remote-only or missing gets its
/// archive back; one whose archive is here is a conflict.
pub async fn fetch(
    daemon: &Arc<Daemon>,
    name: &str,
    id: &BackupId,
) -> Result<BackupRecord, OpError> {
    let storage = open(daemon, name)?;
    // Whether the archive is here already, asked of the catalogue given,
    // so that it also works under the catalogue's lock.
    let local_here = |cat: &crate::catalogue::Catalogue| {
        cat.get(id)
            .is_some_and(|e| !e.remote_only && e.state.status() != BackupStatus::Missing)
            || daemon.store.archive_path(id).exists()
    };
    if daemon.catalogue.read(local_here) {
        return Err(OpError::conflict(format!(
            "backup {id} is already in the store"
        )));
    }
    // Held until the archive is in the store: retention or a delete of
    // this copy waits rather than pulling the object from under the fetch.
    let _lease = daemon.downloads.acquire(id);
    let (mut quarantine, manifest, facts) = download_verified(daemon, &storage, id).await?;
    let now = daemon.now();
    let record = daemon.try_update_catalogue(|cat| {
        if local_here(cat) {
            return Err(OpError::conflict(format!(
                "backup {id} is already in the store"
            )));
        }
        let entry = match cat.get(id).cloned() {
            Some(mut known) => {
                known.state = match known.state {
                    BackupState::Missing { .. } => known.state.found(),
                    state => state,
                };
                known.remote_only = false;
                known.archive = Some(facts);
                known
            }
            None => {
                let mut entry = Entry::from_archive(id.clone(), manifest, facts, Origin::Remote);
                entry.copies = super::pending_copies(&daemon.config(), now);
                entry
            }
        };
        let mut entry = entry;
        // The remote it came from holds it.
        match entry.copies.iter_mut().find(|c| c.record.remote == name) {
            Some(copy) => {
                copy.record.state = CopyState::Copied;
                copy.record.at = Some(now);
                copy.record.last_error = None;
                copy.next_attempt_at = None;
            }
            None => {
                let mut copy = crate::catalogue::Copy::pending(name, now);
                copy.record.state = CopyState::Copied;
                entry.copies.push(copy);
            }
        }
        daemon
            .store
            .commit_quarantine(&mut quarantine, id)
            .map_err(io_error)?;
        let record = entry.record();
        cat.insert(entry);
        Ok(record)
    });
    if record.is_err() && quarantine.committed() {
        // The archive was moved into the store but its record could not
        // be saved: take it out again, or it would sit there unlisted and
        // every later fetch would call it already present.
        if let Err(e) = std::fs::remove_file(daemon.store.archive_path(id)) {
            tracing::warn!(backup = %id, error = %e, "a fetched archive without a record could not be removed");
        }
    }
    let record = record?;
    daemon.replication.wake();
    tracing::info!(backup = %id, remote = name, "archive fetched from the remote");
    Ok(record)
}

/// Downloads and authenticates one copy, or every copy the remote holds;
/// nothing is kept.
pub async fn verify(
    daemon: &Arc<Daemon>,
    name: &str,
    id: Option<&BackupId>,
) -> Result<Vec<RemoteVerdict>, OpError> {
    let storage = open(daemon, name)?;
    // One copy asked for and not there is `not_found`, not a verdict.
    let single = id.is_some();
    let ids: Vec<BackupId> = match id {
        Some(id) => vec![id.clone()],
        None => storage
            .list()
            .await
            .map_err(op_error)?
            .into_iter()
            .map(|(id, _)| id)
            .take(MAX_VERIFIED)
            .collect(),
    };
    let mut out = Vec::new();
    for id in ids {
        let _lease = daemon.downloads.acquire(&id);
        let verdict = match download_verified(daemon, &storage, &id).await {
            Ok(_) => RemoteVerdict {
                id,
                ok: true,
                problem: None,
            },
            Err(e) if single && e.code == ErrorCode::NotFound => return Err(e),
            Err(e) => RemoteVerdict {
                id,
                ok: false,
                problem: Some(e.message),
            },
        };
        if !verdict.ok {
            tracing::warn!(backup = %verdict.id, remote = name, problem = verdict.problem.as_deref().unwrap_or(""), "a remote copy does not verify");
        }
        out.push(verdict);
    }
    Ok(out)
}

/// Each configured remote's state.
pub async fn status(daemon: &Daemon) -> Vec<RemoteInfo> {
    let config = daemon.config();
    let now = daemon.now();
    let mut out = Vec::new();
    for remote in &config.remotes {
        let (kind, location) = match &remote.kind {
            RemoteKind::S3 {
                endpoint, bucket, ..
            } => ("s3", format!("{endpoint}/{bucket}/{}", remote.prefix)),
            RemoteKind::Fs { path } => ("fs", format!("{}/{}", path.display(), remote.prefix)),
        };
        let check = match Storage::open(remote) {
            Ok(storage) => storage.check().await,
            Err(e) => Err(e),
        };
        let mut info = RemoteInfo {
            name: remote.name.clone(),
            kind: kind.to_owned(),
            location,
            reachable: check.is_ok(),
            error: check.err().map(|e| e.to_string()),
            pending: 0,
            uploading: 0,
            failed: 0,
            copied: 0,
            uncopied_age_seconds: None,
            last_error: None,
            last_error_at: None,
        };
        daemon.catalogue.read(|c| {
            for e in c.list() {
                let Some(copy) = e.copies.iter().find(|c| c.record.remote == remote.name) else {
                    continue;
                };
                match copy.record.state {
                    CopyState::Pending => info.pending += 1,
                    CopyState::Uploading => info.uploading += 1,
                    CopyState::Failed => info.failed += 1,
                    CopyState::Copied => info.copied += 1,
                }
            }
            info.uncopied_age_seconds =
                uncopied_since(c, &remote.name).map(|at| (now - at).whole_seconds().max(0) as u64);
        });
        if let Some((at, words)) = daemon.replication.last_error(&remote.name) {
            info.last_error = Some(words);
            info.last_error_at = Some(at);
        }
        out.push(info);
    }
    out
}

/// When the newest successful backup was created, if its copy on `remote`
/// is not made yet: how long the off-site copy has lagged.
pub fn uncopied_since(c: &crate::catalogue::Catalogue, remote: &str) -> Option<OffsetDateTime> {
    let newest = c
        .list()
        .find(|e| e.state.status() == BackupStatus::Succeeded && !e.remote_only)?;
    let copied = newest
        .copies
        .iter()
        .any(|c| c.record.remote == remote && c.record.state == CopyState::Copied);
    (!copied).then(|| {
        newest
            .state
            .finished_at()
            .unwrap_or(newest.state.created_at())
    })
}

/// Deletes the copy of `id` on the remote `name` and forgets it; a record
/// left with neither a local archive nor a copy goes.
pub async fn delete_copy(daemon: &Daemon, id: &BackupId, name: &str) -> Result<(), OpError> {
    // The pair is claimed as an upload claims it, for the whole deletion:
    // the queue cannot start copying the backup there meanwhile (the copy
    // would land after the delete and stay, unrecorded, an orphan that a
    // recovery machine would list as a backup).
    let Some(_claim) = daemon.replication.hold(id, name) else {
        return Err(OpError::conflict(format!(
            "backup {id} is being copied to remote {name}"
        )));
    };
    if daemon.downloads.is_busy(id) {
        return Err(OpError::conflict(format!(
            "backup {id} is being downloaded, fetched or verified"
        )));
    }
    let storage = open(daemon, name)?;
    storage.delete(id).await.map_err(op_error)?;
    daemon.update_catalogue(|cat| {
        let gone = cat.get_mut(id).is_some_and(|e| {
            e.copies.retain(|c| c.record.remote != name);
            if !e.dropped_from.iter().any(|r| r == name) {
                e.dropped_from.push(name.to_owned());
            }
            e.remote_only && e.copies.is_empty()
        });
        if gone {
            cat.remove(id);
        }
    })?;
    tracing::info!(backup = %id, remote = name, "remote copy deleted");
    Ok(())
}

/// Before a restore: a backup whose local archive is gone (remote-only,
/// or missing) is fetched from the first configured remote that holds a
/// copy. Does nothing for a backup whose archive is here; a backup no
/// remote can give back is left to the restore's own refusal.
pub async fn fetch_for_restore(daemon: &Arc<Daemon>, id: &BackupId) -> Result<(), OpError> {
    let Some(entry) = daemon.catalogue.entry(id) else {
        return Ok(());
    };
    if !entry.remote_only && entry.state.status() != BackupStatus::Missing {
        return Ok(());
    }
    let config = daemon.config();
    let holders: Vec<&str> = entry
        .copies
        .iter()
        .filter(|c| c.record.state == CopyState::Copied)
        .map(|c| c.record.remote.as_str())
        .filter(|name| config.remotes.iter().any(|r| r.name == *name))
        .collect();
    let mut last = None;
    for name in holders {
        tracing::info!(backup = %id, remote = name, "the local archive is gone; fetching the remote copy for the restore");
        match fetch(daemon, name, id).await {
            Ok(_) => return Ok(()),
            Err(e) => {
                tracing::warn!(backup = %id, remote = name, error = %e, "could not fetch the remote copy");
                last = Some(e);
            }
        }
    }
    match last {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
