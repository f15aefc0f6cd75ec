//! The upload queue: a background task that gives every succeeded backup a
//! copy record per remote, and uploads the ones that are due, at most
//! `UPLOAD_SLOTS` at once (a semaphore owns that). The queue is the
//! catalogue: each copy's state, attempts and next attempt are persisted,
//! so a retry's backoff survives a restart, and a copy a stopped daemon
//! left `uploading` is started again (the object under its key is only
//! ever whole: an unfinished multipart upload is no object). A failure
//! waits `remote_retry_seconds`, doubled with each attempt up to an hour.

use std::sync::Arc;
use std::time::Duration;

use berkut_proto::ids::BackupId;
use berkut_proto::wire::{BackupStatus, CopyState};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use super::storage::{Failure, RemoteError, Storage};
use crate::catalogue::{Catalogue, Copy};
use crate::config::Config;
use crate::events::{Event, EventType};
use crate::state::Daemon;

/// The longest wait between two attempts at one copy.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// How often each remote's retention runs.
const RETENTION_EVERY: time::Duration = time::Duration::minutes(10);
/// The queue looks at the catalogue at least this often.
const IDLE_WAKE: Duration = Duration::from_secs(60);

/// One upload to start.
struct Due {
    id: BackupId,
    remote: String,
    size: u64,
}

pub async fn run(daemon: Arc<Daemon>, shutdown: CancellationToken) {
    let mut last_retention: Option<OffsetDateTime> = None;
    loop {
        let config = daemon.config();
        let now = daemon.now();
        if last_retention.is_none_or(|at| now - at >= RETENTION_EVERY) {
            last_retention = Some(now);
            // Each deletion is a call to the remote, which may hang until
            // its timeout (two minutes, and retries): a stop does not wait
            // for the pass. Cut between calls, a copy deleted but still
            // recorded is deleted again by the next pass.
            tokio::select! {
                () = super::retention::apply(&daemon) => {}
                () = shutdown.cancelled() => break,
            }
            clean_stale_uploads(&daemon, &config, now, &shutdown);
        }
        if let Err(e) = settle(&daemon, &config, now) {
            tracing::warn!(error = %e, "the off-site copy records could not be saved; trying again later");
        }
        let (due, next) = daemon.catalogue.read(|c| due(c, &config, &daemon, now));
        for work in due {
            let Ok(permit) = Arc::clone(&daemon.replication.slots).try_acquire_owned() else {
                break;
            };
            if !daemon.replication.claim(&work.id, &work.remote) {
                continue;
            }
            let storage = match super::storage(&config, &work.remote) {
                Some(Ok(storage)) => storage,
                Some(Err(e)) => {
                    daemon.replication.release(&work.id, &work.remote);
                    fail(&daemon, &config, &work, &e);
                    continue;
                }
                None => {
                    daemon.replication.release(&work.id, &work.remote);
                    continue;
                }
            };
            mark_uploading(&daemon, &work);
            let (daemon2, shutdown2) = (Arc::clone(&daemon), shutdown.clone());
            let config2 = Arc::clone(&config);
            daemon.replication.uploads.spawn(async move {
                let _permit = permit;
                upload(&daemon2, &config2, &storage, &work, &shutdown2).await;
                daemon2.replication.release(&work.id, &work.remote);
                // A slot is free: there may be more to do.
                daemon2.replication.wake();
            });
        }
        let wait = next
            .map(|at| (at - daemon.now()).clamp(time::Duration::ZERO, time::Duration::seconds(60)))
            .and_then(|d| Duration::try_from(d).ok())
            .unwrap_or(IDLE_WAKE)
            .max(Duration::from_millis(50));
        tokio::select! {
            () = daemon.replication.woken() => {}
            () = tokio::time::sleep(wait) => {}
            () = shutdown.cancelled() => break,
        }
    }
    // Running uploads see the same token, abort their multipart uploads
    // and leave their copies pending for the next start.
    daemon.replication.uploads.close();
    daemon.replication.uploads.wait().await;
}

/// Starts, beside the uploads, the clean-up of each remote's stale
/// multipart uploads, so an unreachable server never holds up the queue.
fn clean_stale_uploads(
    daemon: &Arc<Daemon>,
    config: &Config,
    now: OffsetDateTime,
    shutdown: &CancellationToken,
) {
    for remote in &config.remotes {
        let Ok(storage) = Storage::open(remote) else {
            continue;
        };
        let (daemon, shutdown) = (Arc::clone(daemon), shutdown.clone());
        daemon.replication.uploads.clone().spawn(async move {
            let name = storage.name().to_owned();
            let busy = |id: &BackupId| daemon.replication.is_uploading(id, &name);
            let cleaned = tokio::select! {
                r = storage.clean_stale_uploads(now, busy) => r,
                () = shutdown.cancelled() => return,
            };
            match cleaned {
                Ok(0) => {}
                Ok(n) => tracing::info!(remote = %name, aborted = n, "stale multipart uploads aborted"),
                Err(e) => tracing::warn!(remote = %name, error = %e, "stale multipart uploads could not be cleaned; trying again later"),
            }
        });
    }
}

/// Gives every succeeded backup with a local archive a copy record per
/// configured remote, and puts back to `pending` the copies left
/// `uploading` with no upload running (the daemon stopped mid-way).
/// Saves only when something changed.
fn settle(
    daemon: &Daemon,
    config: &Config,
    now: OffsetDateTime,
) -> Result<(), crate::catalogue::CatalogueError> {
    let needed = daemon
        .catalogue
        .read(|c| c.list().any(|e| needs_settling(e, config, daemon)));
    if !needed {
        return Ok(());
    }
    daemon.catalogue.update(|c| {
        let ids: Vec<BackupId> = c.list().map(|e| e.id.clone()).collect();
        for id in ids {
            let Some(e) = c.get_mut(&id) else { continue };
            if !copyable(e) {
                continue;
            }
            for remote in &config.remotes {
                if !owes_copy(e, &remote.name) {
                    continue;
                }
                if !e.copies.iter().any(|c| c.record.remote == remote.name) {
                    e.copies.push(Copy::pending(&remote.name, now));
                }
            }
            for copy in &mut e.copies {
                if copy.record.state == CopyState::Uploading
                    && !daemon.replication.is_uploading(&id, &copy.record.remote)
                {
                    copy.record.state = CopyState::Pending;
                    copy.record.at = Some(now);
                }
            }
        }
    })
}

/// Whether the backup still owes `remote` a copy: not when its copy there
/// was deleted on request.
fn owes_copy(e: &crate::catalogue::Entry, remote: &str) -> bool {
    !e.dropped_from.iter().any(|r| r == remote)
}

fn copyable(e: &crate::catalogue::Entry) -> bool {
    e.state.status() == BackupStatus::Succeeded && e.archive.is_some() && !e.remote_only
}

fn needs_settling(e: &crate::catalogue::Entry, config: &Config, daemon: &Daemon) -> bool {
    copyable(e)
        && (config
            .remotes
            .iter()
            .any(|r| owes_copy(e, &r.name) && !e.copies.iter().any(|c| c.record.remote == r.name))
            || e.copies.iter().any(|c| {
                c.record.state == CopyState::Uploading
                    && !daemon.replication.is_uploading(&e.id, &c.record.remote)
            }))
}

/// The uploads due now, oldest backup first, and when the next one
/// waiting for its backoff is due.
fn due(
    c: &Catalogue,
    config: &Config,
    daemon: &Daemon,
    now: OffsetDateTime,
) -> (Vec<Due>, Option<OffsetDateTime>) {
    let mut out = Vec::new();
    let mut next: Option<OffsetDateTime> = None;
    let mut entries: Vec<_> = c.list().filter(|e| copyable(e)).collect();
    entries.reverse();
    for e in entries {
        let size = e.archive.as_ref().map_or(0, |a| a.size_bytes);
        for copy in &e.copies {
            let r = &copy.record;
            let waiting = matches!(r.state, CopyState::Pending | CopyState::Failed);
            if !waiting
                || !config.remotes.iter().any(|x| x.name == r.remote)
                || daemon.replication.is_uploading(&e.id, &r.remote)
            {
                continue;
            }
            match copy.next_attempt_at {
                Some(at) if at > now => next = Some(next.map_or(at, |n| n.min(at))),
                _ => out.push(Due {
                    id: e.id.clone(),
                    remote: r.remote.clone(),
                    size,
                }),
            }
        }
    }
    (out, next)
}

fn change_copy(daemon: &Daemon, id: &BackupId, remote: &str, change: impl FnOnce(&mut Copy)) {
    let result = daemon.catalogue.update_keeping(|c| {
        if let Some(copy) = c
            .get_mut(id)
            .and_then(|e| e.copies.iter_mut().find(|c| c.record.remote == remote))
        {
            change(copy);
        }
    });
    if let Err(e) = result {
        tracing::warn!(backup = %id, remote, error = %e, "a copy's state could not be saved; it is kept in memory");
    }
}

fn mark_uploading(daemon: &Daemon, work: &Due) {
    let now = daemon.now();
    change_copy(daemon, &work.id, &work.remote, |copy| {
        copy.record.state = CopyState::Uploading;
        copy.record.attempts = copy.record.attempts.saturating_add(1);
        copy.record.at = Some(now);
        copy.next_attempt_at = None;
    });
}

async fn upload(
    daemon: &Daemon,
    config: &Config,
    storage: &Storage,
    work: &Due,
    shutdown: &CancellationToken,
) {
    let path = daemon.store.archive_path(&work.id);
    let started = std::time::Instant::now();
    tracing::info!(backup = %work.id, remote = %work.remote, size = work.size, "off-site copy started");
    match storage.upload(&work.id, &path, work.size, shutdown).await {
        Ok(()) => {
            let now = daemon.now();
            change_copy(daemon, &work.id, &work.remote, |copy| {
                copy.record.state = CopyState::Copied;
                copy.record.at = Some(now);
                copy.record.last_error = None;
                copy.next_attempt_at = None;
            });
            daemon.replication.clear_error(&work.remote);
            daemon.metrics.touch();
            tracing::info!(backup = %work.id, remote = %work.remote, size = work.size, seconds = started.elapsed().as_secs_f64(), "off-site copy done");
        }
        Err(e) if e.kind == Failure::Cancelled => {
            let now = daemon.now();
            change_copy(daemon, &work.id, &work.remote, |copy| {
                copy.record.state = CopyState::Pending;
                copy.record.at = Some(now);
            });
            tracing::info!(backup = %work.id, remote = %work.remote, "off-site copy stopped with the daemon; it starts again at the next start");
        }
        Err(e) => fail(daemon, config, work, &e),
    }
}

/// Records a failed attempt and when the next one is due.
fn fail(daemon: &Daemon, config: &Config, work: &Due, e: &RemoteError) {
    let now = daemon.now();
    let mut attempts = 1;
    change_copy(daemon, &work.id, &work.remote, |copy| {
        attempts = copy.record.attempts.max(1);
        copy.record.state = CopyState::Failed;
        copy.record.at = Some(now);
        copy.record.last_error = Some(e.words.clone());
        copy.next_attempt_at = Some(now + backoff(config.remote_retry, attempts));
    });
    // Failing for longer than the off-site RPO allows is worth waking
    // someone for; one failed attempt that the next one repairs is not.
    if daemon
        .replication
        .note_error(&work.remote, now, &e.words, config.offsite_rpo)
    {
        daemon.events.emit(
            Event::new(EventType::CopyFailing)
                .backup(&work.id)
                .remote(&work.remote)
                .reason(&format!(
                    "off-site copies to remote {} have failed for longer than {} s: {}",
                    work.remote,
                    config.offsite_rpo.as_secs(),
                    e.words
                )),
        );
    }
    daemon.metrics.touch();
    tracing::warn!(backup = %work.id, remote = %work.remote, attempts, error = %e, "off-site copy failed; it is tried again later");
}

/// The wait after the `attempts`-th failure: `base`, doubled each time,
/// at most an hour.
pub fn backoff(base: Duration, attempts: u32) -> Duration {
    let factor = 1u32 << attempts.saturating_sub(1).min(16);
    base.saturating_mul(factor).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        let base = Duration::from_secs(30);
        assert_eq!(backoff(base, 1), Duration::from_secs(30));
        assert_eq!(backoff(base, 2), Duration::from_secs(60));
        assert_eq!(backoff(base, 4), Duration::from_secs(240));
        assert_eq!(backoff(base, 40), MAX_BACKOFF);
    }
}
