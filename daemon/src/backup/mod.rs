//! Backup jobs: accepting a request, queueing it behind the parallelism
//! limit, running the pipeline in a blocking thread, and recording the
//! outcome. The catalogue is updated at each step, before watchers hear of it,
//! so what a client is told has always been persisted first.

pub mod files;
mod pipeline;
pub mod redact;

use std::sync::Arc;

use berkut_proto::ids::BackupId;
use berkut_proto::manifest::{Origin, Scope};
use berkut_proto::wire::{JobKind, Phase, Progress};
use tokio::sync::watch;

use crate::catalogue::{ArchiveFacts, BackupState, Entry};
use crate::error::OpError;
use crate::events::{Event, EventType};
use crate::inventory;
use crate::jobs::{JobContext, JobView};
use crate::state::Daemon;
use crate::store::io_error;
use crate::tools::{self, shutdown_error, ChildSlot};
use pipeline::{Plan, Sealed};

/// A validated request for a backup.
#[derive(Clone, Debug)]
pub struct BackupRequest {
    pub label: String,
    pub scope: Scope,
    pub include_files: bool,
    pub origin: Origin,
}

/// Publishes a job's progress to its watchers. Byte counts are published
/// once per MiB, so a fast dump does not flood them.
pub struct Reporter {
    view: watch::Sender<JobView>,
}

impl Reporter {
    fn phase(&self, phase: Phase) {
        self.view.send_modify(|v| v.progress.phase = phase);
    }

    fn table_done(&self) {
        self.view.send_modify(|v| {
            v.progress.tables_done = (v.progress.tables_done + 1).min(v.progress.tables_total)
        });
    }

    fn add_bytes(&self, n: u64) {
        self.view.send_if_modified(|v| {
            let before = v.progress.bytes_done;
            v.progress.bytes_done += n;
            before >> 20 != v.progress.bytes_done >> 20
        });
    }
}

/// Queues a backup and returns a view of its job. The database is checked
/// first, so that a backup of an unreachable database is refused at once
/// with `unavailable` instead of failing later.
pub async fn submit(
    daemon: &Arc<Daemon>,
    request: BackupRequest,
) -> Result<watch::Receiver<JobView>, OpError> {
    if daemon.shutdown.is_cancelled() {
        return Err(OpError::unavailable(
            "the daemon is stopping; try again when it is back",
        ));
    }
    if request.include_files && daemon.config().file_roots.is_empty() {
        return Err(OpError::invalid(
            "include_files was asked for, but no file roots are configured",
        ));
    }
    daemon.db.check().await?;
    let created_at = daemon.now();
    let id = BackupId::generate(created_at);
    let entry = Entry {
        id: id.clone(),
        label: request.label.clone(),
        scope: request.scope,
        include_files: request.include_files,
        origin: request.origin,
        state: BackupState::Queued { created_at },
        database: None,
        archive: None,
        pinned: false,
        properties: None,
        copies: Vec::new(),
        remote_only: false,
        dropped_from: Vec::new(),
        files: None,
        drill: None,
    };
    let record = entry.record();
    daemon.update_catalogue(|c| c.insert(entry))?;
    tracing::info!(backup = %id, scope = request.scope.as_str(), origin = ?request.origin, "backup queued");
    let initial = JobView {
        kind: JobKind::Backup,
        progress: Progress {
            job_id: id.clone(),
            phase: Phase::Queued,
            tables_done: 0,
            tables_total: 0,
            bytes_done: 0,
        },
        record,
    };
    let daemon2 = Arc::clone(daemon);
    Ok(daemon
        .jobs
        .spawn(initial, move |ctx| run_job(daemon2, id, request, ctx)))
}

async fn run_job(daemon: Arc<Daemon>, id: BackupId, request: BackupRequest, mut ctx: JobContext) {
    // However this task ends (a panic included), the record does not stay
    // queued or running.
    let mut unfinished = Unfinished {
        daemon: &daemon,
        id: &id,
        armed: true,
    };
    let outcome = match ctx.acquire().await {
        None => Err(shutdown_error()),
        Some(_permit) => {
            let started_at = daemon.now();
            match mark(&daemon, &ctx, &id, |state| BackupState::Running {
                created_at: state.created_at(),
                started_at,
            }) {
                Ok(()) => execute(&daemon, &id, &request, &ctx).await,
                Err(e) => Err(e),
            }
        }
    };
    let finished_at = daemon.now();
    let succeeded = outcome.is_ok();
    let result = match outcome {
        Ok(sealed) => {
            tracing::info!(backup = %id, size = sealed.size_bytes, "backup succeeded");
            let facts = ArchiveFacts {
                size_bytes: sealed.size_bytes,
                sha256: sealed.sha256,
                key_id: daemon.config().keyring.primary().key_id().to_string(),
            };
            let database = sealed.manifest.database.name.clone();
            let properties = sealed.manifest.properties.clone();
            let copies = crate::remote::pending_copies(&daemon.config(), finished_at);
            let files = berkut_proto::manifest::FilesSummary::of(&sealed.manifest.files);
            record_outcome(&daemon, &id, |e| {
                e.copies = copies;
                e.state = BackupState::Succeeded {
                    created_at: e.state.created_at(),
                    started_at: e.state.started_at().unwrap_or(finished_at),
                    finished_at,
                };
                e.archive = Some(facts);
                e.database = Some(database);
                e.properties = properties;
                e.files = files;
            })
        }
        Err(e) => {
            let failure = e.into_failure(&format!("backup {id}"));
            tracing::warn!(backup = %id, code = %failure.code, reason = %failure.reason, "backup failed");
            // A backup the daemon's own stop cut short is no news.
            if !daemon.shutdown.is_cancelled() {
                daemon.events.emit(
                    Event::new(EventType::BackupFailed)
                        .backup(&id)
                        .reason(&failure.reason),
                );
            }
            record_outcome(&daemon, &id, |e| {
                e.state = e.state.failed(finished_at, failure);
            })
        }
    };
    unfinished.armed = false;
    daemon.metrics.backup_ended(request.origin, succeeded);
    if let Err(e) = result {
        tracing::error!(backup = %id, error = %e, "the backup's outcome could not be written to the catalogue; it is kept in memory and written as soon as a write works");
    }
    // A new good backup may let older ones go. The job is still registered
    // as active here, so retention cannot touch the backup just made; and
    // it runs before the outcome is published, so a client that has seen
    // the outcome sees retention's effect too.
    if succeeded {
        crate::retention::run(&daemon).await;
        daemon.replication.wake();
    }
    ctx.leave();
    publish(&daemon, &ctx, &id);
    // The drill policy may drill what just succeeded.
    daemon.scheduler_wake.notify_one();
}

/// Records a job's outcome. Unlike `Daemon::update_catalogue`, a failed
/// write does not undo the change in memory: the job has ended whatever
/// the disk says, and a record left `running` would hold its id busy until
/// a restart. The catalogue is marked unsaved; the next save writes it.
fn record_outcome(
    daemon: &Daemon,
    id: &BackupId,
    change: impl FnOnce(&mut Entry),
) -> Result<(), crate::catalogue::CatalogueError> {
    daemon.catalogue.update_keeping(|cat| {
        if let Some(e) = cat.get_mut(id) {
            change(e);
        }
    })
}

/// Fails a job's record if its task ends before recording an outcome (a
/// panic): the record must not stay queued or running.
struct Unfinished<'a> {
    daemon: &'a Daemon,
    id: &'a BackupId,
    armed: bool,
}

impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let now = self.daemon.now();
        tracing::error!(backup = %self.id, "a backup job ended without an outcome; its record is marked failed");
        let failure = berkut_proto::wire::Failure {
            code: berkut_proto::wire::ErrorCode::Internal,
            reason: "the backup job stopped unexpectedly; the daemon's log has the details".into(),
        };
        let reason = failure.reason.clone();
        let _ = record_outcome(self.daemon, self.id, |e| {
            if !e.state.status().is_finished() {
                e.state = e.state.failed(now, failure);
            }
        });
        if let Some(entry) = self.daemon.catalogue.entry(self.id) {
            self.daemon.metrics.backup_ended(entry.origin, false);
        }
        self.daemon.events.emit(
            Event::new(EventType::BackupFailed)
                .backup(self.id)
                .reason(&reason),
        );
    }
}

/// Queues a backup like `submit`; when it cannot even start (the database
/// is down), records a failed backup, so that an automatic backup that did
/// not happen is visible in the catalogue and not just in the log.
pub async fn submit_or_record(
    daemon: &Arc<Daemon>,
    request: BackupRequest,
) -> Result<watch::Receiver<JobView>, OpError> {
    let error = match submit(daemon, request.clone()).await {
        Ok(view) => return Ok(view),
        Err(e) => e,
    };
    let now = daemon.now();
    let failure = error.into_failure("automatic backup");
    let id = BackupId::generate(now);
    daemon.metrics.backup_ended(request.origin, false);
    daemon.events.emit(
        Event::new(EventType::BackupFailed)
            .backup(&id)
            .reason(&failure.reason),
    );
    let entry = Entry {
        id,
        label: request.label,
        scope: request.scope,
        include_files: request.include_files,
        origin: request.origin,
        state: BackupState::Failed {
            created_at: now,
            started_at: None,
            finished_at: now,
            failure: failure.clone(),
        },
        database: None,
        archive: None,
        pinned: false,
        properties: None,
        copies: Vec::new(),
        remote_only: false,
        dropped_from: Vec::new(),
        files: None,
        drill: None,
    };
    daemon.update_catalogue(|c| c.insert(entry))?;
    Err(OpError::new(failure.code, failure.reason))
}

/// Changes a job's state in the catalogue, then tells its watchers.
fn mark(
    daemon: &Daemon,
    ctx: &JobContext,
    id: &BackupId,
    next: impl FnOnce(&BackupState) -> BackupState,
) -> Result<(), OpError> {
    daemon.update_catalogue(|c| {
        if let Some(e) = c.get_mut(id) {
            e.state = next(&e.state);
        }
    })?;
    publish(daemon, ctx, id);
    Ok(())
}

fn publish(daemon: &Daemon, ctx: &JobContext, id: &BackupId) {
    let record = daemon.catalogue.record(id);
    if let Some(record) = record {
        ctx.view.send_modify(|v| {
            if record.status.is_finished() {
                v.progress.phase = Phase::Done;
            }
            v.record = record;
        });
    }
}

/// Runs the pipeline and puts the archive in place. On any failure the
/// partial file is removed, so no file that looks complete is left behind.
async fn execute(
    daemon: &Arc<Daemon>,
    id: &BackupId,
    request: &BackupRequest,
    ctx: &JobContext,
) -> Result<Sealed, OpError> {
    let config = daemon.config();
    ctx.view
        .send_modify(|v| v.progress.phase = Phase::Connecting);
    let facts = daemon.db.facts().await?;
    ctx.view.send_modify(|v| {
        v.progress.tables_total = if request.scope == Scope::Schema {
            0
        } else {
            facts.tables
        }
    });
    let pg_dump_version = tools::version(&config.pg_dump_bin).await?;
    // Row counts come from the snapshot pg_dump will dump, so a restore can
    // check that it got back exactly what was dumped.
    let snapshot = if config.count_rows && request.scope != Scope::Schema {
        Some(daemon.db.export_snapshot().await?)
    } else {
        None
    };
    let tables = match &snapshot {
        Some(s) => Some(s.count_rows().await?),
        None => None,
    };
    // The database's own properties and its objects by kind, which the
    // dump alone does not carry, in the same snapshot when there is one.
    let (properties, objects) = {
        let own;
        let client = match &snapshot {
            Some(s) => s.client(),
            None => {
                own = daemon.db.connect_to(&facts.database).await?;
                &own
            }
        };
        let properties = inventory::properties(client, &facts.database).await?;
        let objects = inventory::inventory(client, request.scope != Scope::Schema).await?;
        (properties, objects)
    };
    // pg_dump's first queries run before it lifts the database's statement
    // timeout; the tools' session options lift it from the start.
    let tool_env = crate::db::tool_env(daemon.db.config(), &facts.database);
    let plan = Plan {
        id: id.clone(),
        label: request.label.clone(),
        scope: request.scope,
        include_files: request.include_files,
        origin: request.origin,
        created_at: daemon
            .catalogue
            .entry(id)
            .map(|e| e.state.created_at())
            .unwrap_or_else(|| daemon.now()),
        facts,
        pg_dump_version,
        pg_dump: config.pg_dump_bin.clone(),
        pg_dumpall: config.pg_dumpall_bin.clone(),
        tool_env,
        files: files::FilesPlan {
            roots: config.file_rules.clone(),
            words: redact::Words::new(config.redact_keys.clone()),
            max_file: config.file_max_bytes,
            max_total: config.files_max_total_bytes,
        },
        snapshot: snapshot.as_ref().map(|s| s.id.clone()),
        tables,
        properties,
        objects: Some(objects),
        compression: config.compression,
    };
    let (file, partial) = daemon.store.create_partial(id).map_err(io_error)?;
    let slot = ChildSlot::new();
    let stopper = {
        let slot = Arc::clone(&slot);
        let cancel = ctx.cancel.clone();
        tokio::spawn(async move {
            cancel.cancelled().await;
            slot.cancel();
        })
    };
    let reporter = Reporter {
        view: ctx.view.clone(),
    };
    let daemon2 = Arc::clone(daemon);
    let slot2 = Arc::clone(&slot);
    let sealed = tokio::task::spawn_blocking(move || {
        pipeline::write_archive(
            &plan,
            config.keyring.primary(),
            file,
            &reporter,
            &slot2,
            daemon2.clock.as_ref(),
        )
    })
    .await
    .unwrap_or_else(|e| Err(OpError::internal(format!("backup pipeline panicked: {e}"))));
    stopper.abort();
    // pg_dump has finished with the snapshot; ending our transaction now.
    drop(snapshot);
    // A cancelled job failed because the daemon stopped it, however its
    // tools happened to die; its record says so.
    let sealed = match sealed {
        _ if slot.is_cancelled() => {
            remove_partial(&partial);
            return Err(shutdown_error());
        }
        Ok(sealed) => sealed,
        Err(e) => {
            remove_partial(&partial);
            return Err(e);
        }
    };
    if let Err(e) = daemon.store.commit(&partial, id) {
        remove_partial(&partial);
        return Err(io_error(e));
    }
    Ok(sealed)
}

fn remove_partial(path: &std::path::Path) {
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::error!(error = %e, "could not remove a partial archive; it will be removed at the next start");
        }
    }
}
