//! Bounded parallelism as data. A semaphore owns the limit
//! (`BERKUT_BACKUP_MAX_PARALLEL`); every job is a task that waits for a permit
//! while it is queued and holds it while it runs, so the limit cannot be
//! exceeded by construction. The registry here knows the jobs that are queued
//! or running and lets clients watch them; what a job does is its owner's
//! business (see `backup`).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use berkut_proto::ids::BackupId;
use berkut_proto::wire::{BackupRecord, BackupStatus, JobInfo, JobKind, Progress};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What a watcher of a job sees: its latest progress and its record, which
/// turns `succeeded` or `failed` when the job ends.
#[derive(Clone, Debug)]
pub struct JobView {
    pub kind: JobKind,
    pub progress: Progress,
    pub record: BackupRecord,
}

impl JobView {
    pub fn info(&self) -> JobInfo {
        JobInfo {
            id: self.record.id.clone(),
            kind: self.kind,
            status: self.record.status,
            queued_at: self.record.created_at,
            started_at: self.record.started_at,
            progress: self.progress.clone(),
        }
    }
}

/// Handed to a job's body: how to publish progress, how to learn that it
/// should stop, and how to get its turn.
pub struct JobContext {
    pub view: watch::Sender<JobView>,
    pub cancel: CancellationToken,
    semaphore: Arc<Semaphore>,
}

impl JobContext {
    /// Waits for a free slot. `None` when the job was cancelled while queued.
    pub async fn acquire(&self) -> Option<OwnedSemaphorePermit> {
        tokio::select! {
            biased;
            _ = self.cancel.cancelled() => None,
            permit = self.semaphore.clone().acquire_owned() => permit.ok(),
        }
    }
}

pub struct Jobs {
    semaphore: Arc<Semaphore>,
    max_parallel: usize,
    active: Mutex<HashMap<BackupId, watch::Receiver<JobView>>>,
    tracker: TaskTracker,
    cancel: CancellationToken,
}

impl Jobs {
    pub fn new(max_parallel: usize, cancel: CancellationToken) -> Arc<Jobs> {
        Arc::new(Jobs {
            semaphore: Arc::new(Semaphore::new(max_parallel)),
            max_parallel,
            active: Mutex::new(HashMap::new()),
            tracker: TaskTracker::new(),
            cancel,
        })
    }

    pub fn max_parallel(&self) -> usize {
        self.max_parallel
    }

    /// Registers a job and starts its body. The job stays visible to
    /// `watch` until the body returns.
    pub fn spawn<F, Fut>(self: &Arc<Self>, initial: JobView, body: F) -> watch::Receiver<JobView>
    where
        F: FnOnce(JobContext) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let id = initial.record.id.clone();
        let (tx, rx) = watch::channel(initial);
        self.active.lock().unwrap().insert(id.clone(), rx.clone());
        let ctx = JobContext {
            view: tx,
            cancel: self.cancel.child_token(),
            semaphore: self.semaphore.clone(),
        };
        let jobs = Arc::clone(self);
        self.tracker.spawn(async move {
            body(ctx).await;
            jobs.active.lock().unwrap().remove(&id);
        });
        rx
    }

    /// A live view of a queued or running job.
    pub fn watch(&self, id: &BackupId) -> Option<watch::Receiver<JobView>> {
        self.active.lock().unwrap().get(id).cloned()
    }

    pub fn is_active(&self, id: &BackupId) -> bool {
        self.active.lock().unwrap().contains_key(id)
    }

    /// The queued and running jobs, oldest first.
    pub fn list(&self) -> Vec<JobView> {
        let mut jobs: Vec<JobView> = self.active.lock().unwrap().values().map(|rx| rx.borrow().clone()).collect();
        jobs.retain(|j| !j.record.status.is_finished());
        jobs.sort_by(|a, b| a.record.id.cmp(&b.record.id));
        jobs
    }

    pub fn count(&self, status: BackupStatus) -> usize {
        self.list().iter().filter(|j| j.record.status == status).count()
    }

    /// Cancels every job and waits for all of them to wind down.
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}
