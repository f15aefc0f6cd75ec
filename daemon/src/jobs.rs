//! Bounded parallelism as data. A semaphore owns the limit
//! (`BERKUT_BACKUP_MAX_PARALLEL`); every job is a task that waits for a permit
//! while it is queued and holds it while it runs, so the limit cannot be
//! exceeded by construction. The registry here knows the jobs that are queued
//! or running, of every kind (backups, drills, real restores), and lets
//! clients watch the backups; what a job does is its owner's business (see
//! `backup` and `restore`). `status`, the service manager's status line and
//! shutdown all count jobs from here, so they count the same things.
//!
//! Stopping has two steps, so that SIGTERM does not throw away work that is
//! nearly done: first the queue drains (queued jobs give up their place,
//! running ones go on), then, when the grace time is over, the running jobs
//! are cancelled.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use berkut_proto::ids::{BackupId, RestoreId};
use berkut_proto::wire::{BackupRecord, JobInfo, JobKind, Progress};
use tokio::sync::{watch, AcquireError, OwnedSemaphorePermit, Semaphore};
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

/// What identifies a job in the registry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum JobId {
    Backup(BackupId),
    Restore(RestoreId),
}

/// The kinds of job. All of them wait for and hold the same slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Backup,
    /// A dry-run restore: into a scratch database, nothing live touched.
    Drill,
    /// A real restore: swaps the live database.
    Restore,
}

/// A job in the registry.
struct Entry {
    kind: Kind,
    /// Whether it has its slot (runs) rather than waiting for one.
    started: Arc<AtomicBool>,
    /// What a backup's watchers see.
    view: Option<watch::Receiver<JobView>>,
}

type Turn = Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, AcquireError>> + Send + Sync>>;

/// How many jobs wait and how many run; published on every change, for
/// the service manager's status line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JobCounts {
    pub running: usize,
    pub queued: usize,
}

/// A place in the queue: waits for a permit unless the daemon begins to
/// stop first, and keeps the counts of queued and running work.
struct Place {
    draining: CancellationToken,
    turn: Option<Turn>,
    started: Arc<AtomicBool>,
    counts: watch::Sender<JobCounts>,
    /// Set by `start`: how the job leaves the registry and the counts.
    release: Option<Arc<Release>>,
    /// Set by `start` for a drill: the registry whose queued backups and
    /// real restores the drill gives its turn to (`Place::acquire`).
    yields_to: Option<Arc<Jobs>>,
}

impl Place {
    /// Waits for a free slot. `None` when the daemon began to stop (or the
    /// work was cancelled) while it was queued: a stopping daemon starts no
    /// new work.
    ///
    /// A drill yields: when its turn comes while a backup or a real restore
    /// that it has not yet yielded to waits in the registry (queued after
    /// the drill, since the queue is first come, first served), it takes a
    /// new place at the end of the queue and only then lets its permit go,
    /// which the semaphore hands to the first waiter. Each job is yielded
    /// to once: that is enough to put the drill behind it, and it bounds
    /// the loop even when a job counted as waiting was in fact already
    /// handed a permit and not yet marked as started.
    async fn acquire(&mut self, cancel: &CancellationToken) -> Option<OwnedSemaphorePermit> {
        let mut yielded: Vec<JobId> = Vec::new();
        let permit = loop {
            let turn = self.turn.take()?;
            let permit = tokio::select! {
                biased;
                _ = self.draining.cancelled() => None,
                _ = cancel.cancelled() => None,
                permit = turn => permit.ok(),
            }?;
            let Some(jobs) = &self.yields_to else {
                break permit;
            };
            let waiting = jobs.waiting_non_drills();
            if waiting.iter().all(|id| yielded.contains(id)) {
                break permit;
            }
            yielded.extend(waiting);
            self.turn = Some(queue_up(&jobs.semaphore));
            drop(permit);
        };
        self.started.store(true, Ordering::SeqCst);
        self.counts.send_modify(|c| {
            c.queued -= 1;
            c.running += 1;
        });
        Some(permit)
    }
}

/// Handed to a job's body: how to publish progress, how to learn that it
/// should stop, and how to get its turn.
pub struct JobContext {
    pub view: watch::Sender<JobView>,
    pub cancel: CancellationToken,
    place: Place,
}

impl JobContext {
    /// Waits for a free slot; `None` when the daemon began to stop first.
    pub async fn acquire(&mut self) -> Option<OwnedSemaphorePermit> {
        self.place.acquire(&self.cancel).await
    }

    /// Takes the job out of the registry and the counts now, before its
    /// outcome is published: a client told the outcome then finds nothing
    /// running. (Otherwise this happens when the task ends.)
    pub fn leave(&self) {
        if let Some(release) = &self.place.release {
            release.run();
        }
    }
}

/// Handed to a job that is not a backup (a restore): its cancellation and
/// its place in the same queue, under the same limit.
pub struct TaskContext {
    pub cancel: CancellationToken,
    place: Place,
}

impl TaskContext {
    /// Waits for a free slot; `None` when the daemon began to stop first.
    pub async fn acquire(&mut self) -> Option<OwnedSemaphorePermit> {
        self.place.acquire(&self.cancel).await
    }

    /// Takes the job out of the registry and the counts now, before its
    /// outcome is published, as `JobContext::leave` does for backups.
    pub fn leave(&self) {
        if let Some(release) = &self.place.release {
            release.run();
        }
    }
}

/// Takes a place in the semaphore's queue now. Tokio's semaphore serves
/// waiters in the order they first polled, so polling once at submission
/// makes the queue first come, first served, whatever order the job tasks
/// are scheduled in.
fn queue_up(semaphore: &Arc<Semaphore>) -> Turn {
    let mut turn: Turn = Box::pin(semaphore.clone().acquire_owned());
    let mut cx = Context::from_waker(std::task::Waker::noop());
    if let Poll::Ready(permit) = turn.as_mut().poll(&mut cx) {
        return Box::pin(std::future::ready(permit));
    }
    turn
}

/// Takes a job out of the registry and the counts when dropped: when its
/// body returns, panics or is cancelled, so no job stays "in progress"
/// (and its backup undeletable) after its task is gone.
struct Release {
    jobs: Arc<Jobs>,
    id: JobId,
    started: Arc<AtomicBool>,
    done: AtomicBool,
}

impl Release {
    /// Once only, whichever comes first: `JobContext::leave` or the drop.
    fn run(&self) {
        if self.done.swap(true, Ordering::SeqCst) {
            return;
        }
        self.jobs
            .active
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&self.id);
        self.jobs.leave(&self.started);
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        self.run();
    }
}

pub struct Jobs {
    semaphore: Arc<Semaphore>,
    max_parallel: usize,
    active: Mutex<HashMap<JobId, Entry>>,
    tracker: TaskTracker,
    /// Cancelled when the daemon begins to stop: queued jobs leave.
    draining: CancellationToken,
    /// Cancelled when the grace time is over: running jobs stop.
    cancel: CancellationToken,
    counts: watch::Sender<JobCounts>,
}

impl Jobs {
    pub fn new(max_parallel: usize) -> Arc<Jobs> {
        Arc::new(Jobs {
            semaphore: Arc::new(Semaphore::new(max_parallel)),
            max_parallel,
            active: Mutex::new(HashMap::new()),
            tracker: TaskTracker::new(),
            draining: CancellationToken::new(),
            cancel: CancellationToken::new(),
            counts: watch::Sender::new(JobCounts::default()),
        })
    }

    /// The number of queued and running jobs, as it changes.
    pub fn counts(&self) -> watch::Receiver<JobCounts> {
        self.counts.subscribe()
    }

    pub fn max_parallel(&self) -> usize {
        self.max_parallel
    }

    /// Registers a backup job and starts its body. The job stays visible
    /// to `watch` until the body returns.
    pub fn spawn<F, Fut>(self: &Arc<Self>, initial: JobView, body: F) -> watch::Receiver<JobView>
    where
        F: FnOnce(JobContext) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let id = JobId::Backup(initial.record.id.clone());
        let (tx, rx) = watch::channel(initial);
        let view = Some(rx.clone());
        self.start(id, Kind::Backup, view, move |cancel, place| {
            body(JobContext {
                view: tx,
                cancel,
                place,
            })
        });
        rx
    }

    /// Registers a restore (a drill when `dry_run`) and starts its body,
    /// which queues behind the same limit as backups and is waited for at
    /// shutdown.
    pub fn spawn_restore<F, Fut>(self: &Arc<Self>, id: RestoreId, dry_run: bool, body: F)
    where
        F: FnOnce(TaskContext) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let kind = if dry_run { Kind::Drill } else { Kind::Restore };
        self.start(JobId::Restore(id), kind, None, move |cancel, place| {
            body(TaskContext { cancel, place })
        });
    }

    /// Registers a job of any kind, gives it its place in the queue, and
    /// runs its body as a task; the job leaves the registry and the counts
    /// however the task ends.
    fn start<F, Fut>(
        self: &Arc<Self>,
        id: JobId,
        kind: Kind,
        view: Option<watch::Receiver<JobView>>,
        body: F,
    ) where
        F: FnOnce(CancellationToken, Place) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (mut place, started) = self.place();
        let entry = Entry {
            kind,
            started: Arc::clone(&started),
            view,
        };
        self.active.lock().unwrap().insert(id.clone(), entry);
        let release = Arc::new(Release {
            jobs: Arc::clone(self),
            id,
            started,
            done: AtomicBool::new(false),
        });
        place.release = Some(Arc::clone(&release));
        if kind == Kind::Drill {
            place.yields_to = Some(Arc::clone(self));
        }
        let cancel = self.cancel.child_token();
        self.tracker.spawn(async move {
            // Held across the body: released however the task ends.
            let _release = release;
            body(cancel, place).await;
        });
    }

    /// Takes a place in the queue for new work.
    fn place(&self) -> (Place, Arc<AtomicBool>) {
        self.counts.send_modify(|c| c.queued += 1);
        let started = Arc::new(AtomicBool::new(false));
        let place = Place {
            draining: self.draining.clone(),
            turn: Some(queue_up(&self.semaphore)),
            started: Arc::clone(&started),
            counts: self.counts.clone(),
            release: None,
            yields_to: None,
        };
        (place, started)
    }

    /// Counts finished work out, from the queue or from the running.
    fn leave(&self, started: &AtomicBool) {
        self.counts.send_modify(|c| {
            if started.load(Ordering::SeqCst) {
                c.running -= 1;
            } else {
                c.queued -= 1;
            }
        });
    }

    /// Waits until every slot but `own` is free, then holds them: no job
    /// runs or starts until the permit is dropped. A real restore takes it
    /// (with `own` = 1, its own slot) for its swap, and a rollback (with 0),
    /// so that renaming the live database never cuts off a running backup.
    /// Queued jobs ahead of the caller run first (the semaphore is FIFO).
    pub async fn hold_others(&self, own: usize) -> Result<OwnedSemaphorePermit, AcquireError> {
        let others = self.max_parallel.saturating_sub(own) as u32;
        Arc::clone(&self.semaphore).acquire_many_owned(others).await
    }

    /// A live view of a queued or running backup job.
    pub fn watch(&self, id: &BackupId) -> Option<watch::Receiver<JobView>> {
        let active = self.active.lock().unwrap();
        active.get(&JobId::Backup(id.clone()))?.view.clone()
    }

    /// Whether a backup job is queued or running.
    pub fn is_active(&self, id: &BackupId) -> bool {
        let active = self.active.lock().unwrap();
        active.contains_key(&JobId::Backup(id.clone()))
    }

    /// The backups and real restores waiting for a slot, which a drill's
    /// turn goes to first.
    fn waiting_non_drills(&self) -> Vec<JobId> {
        let active = self.active.lock().unwrap();
        active
            .iter()
            .filter(|(_, e)| e.kind != Kind::Drill && !e.started.load(Ordering::SeqCst))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// How many jobs of `kind` run (hold their slot) now.
    pub fn running(&self, kind: Kind) -> usize {
        let active = self.active.lock().unwrap();
        active
            .values()
            .filter(|e| e.kind == kind && e.started.load(Ordering::SeqCst))
            .count()
    }

    /// The queued and running backup jobs, oldest first (the protocol's
    /// `JobInfo` describes backups; restores have their own record).
    pub fn list(&self) -> Vec<JobView> {
        let mut jobs: Vec<JobView> = self
            .active
            .lock()
            .unwrap()
            .values()
            .filter_map(|e| e.view.as_ref().map(|rx| rx.borrow().clone()))
            .collect();
        jobs.retain(|j| !j.record.status.is_finished());
        jobs.sort_by(|a, b| {
            (a.record.created_at, &a.record.id).cmp(&(b.record.created_at, &b.record.id))
        });
        jobs
    }

    /// Stops the jobs: queued ones give up at once, running ones get
    /// `grace` to finish, and whatever still runs then is cancelled (its
    /// tools stopped, its partial file removed, its record failed). Returns
    /// how many running jobs had to be cancelled.
    pub async fn shutdown(&self, grace: Duration) -> usize {
        self.draining.cancel();
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_ok()
        {
            return 0;
        }
        let running = self.counts.borrow().running;
        tracing::warn!(
            running,
            grace_seconds = grace.as_secs(),
            "the shutdown grace time is over; cancelling the jobs still running"
        );
        self.cancel.cancel();
        self.tracker.wait().await;
        running
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berkut_proto::manifest::{Origin, Scope};
    use berkut_proto::wire::BackupStatus;
    use berkut_proto::wire::Phase;
    use time::macros::datetime;

    fn view(n: u32) -> JobView {
        let id: BackupId = format!("20261121T000000Z-{n:08x}").parse().unwrap();
        JobView {
            kind: JobKind::Backup,
            progress: Progress {
                job_id: id.clone(),
                phase: Phase::Queued,
                tables_done: 0,
                tables_total: 0,
                bytes_done: 0,
            },
            record: BackupRecord {
                id,
                label: String::new(),
                scope: Scope::Full,
                include_files: false,
                origin: Origin::Manual,
                status: BackupStatus::Queued,
                created_at: datetime!(2026-11-21 00:00 UTC),
                started_at: None,
                finished_at: None,
                size_bytes: None,
                sha256: None,
                key_id: None,
                database: None,
                failure: None,
                pinned: false,
                properties: None,
                copies: Vec::new(),
                remote_only: false,
                files: None,
                drill: None,
                expected_restore: None,
            },
        }
    }

    /// Runs eight jobs under `limit` and returns the order they started in.
    async fn run_eight(limit: usize) -> Vec<u32> {
        let jobs = Jobs::new(limit);
        let started = Arc::new(Mutex::new(Vec::new()));
        let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (release_tx, release_rx) = watch::channel(false);
        for n in 0..8 {
            let (started, running, mut release) =
                (started.clone(), running.clone(), release_rx.clone());
            jobs.spawn(view(n), move |mut ctx| async move {
                let _permit = ctx.acquire().await.expect("not cancelled");
                let now = running.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                assert!(
                    now <= limit,
                    "{now} jobs ran at once under a limit of {limit}"
                );
                started.lock().unwrap().push(n);
                let _ = release.wait_for(|go| *go).await;
                running.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            });
        }
        release_tx.send(true).unwrap();
        jobs.tracker.close();
        jobs.tracker.wait().await;
        let order = started.lock().unwrap().clone();
        order
    }

    /// Jobs get their turn in the order they were submitted, however the
    /// runtime schedules their tasks.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_queue_is_first_come_first_served() {
        assert_eq!(run_eight(1).await, (0..8).collect::<Vec<_>>());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_more_than_the_limit_run_at_once() {
        let mut order = run_eight(3).await;
        order.sort();
        assert_eq!(order, (0..8).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn cancelling_releases_queued_jobs() {
        let jobs = Jobs::new(1);
        let outcomes = Arc::new(Mutex::new(Vec::new()));
        let (running_tx, mut running_rx) = tokio::sync::mpsc::unbounded_channel();
        for n in 0..3 {
            let (outcomes, running_tx) = (outcomes.clone(), running_tx.clone());
            jobs.spawn(view(n), move |mut ctx| async move {
                let got = ctx.acquire().await;
                if got.is_some() {
                    running_tx.send(n).unwrap();
                    ctx.cancel.cancelled().await;
                }
                outcomes.lock().unwrap().push((n, got.is_some()));
            });
        }
        assert_eq!(running_rx.recv().await, Some(0));
        assert_eq!(
            *jobs.counts().borrow(),
            JobCounts {
                running: 1,
                queued: 2
            }
        );
        assert_eq!(jobs.shutdown(Duration::ZERO).await, 1);
        let mut got = outcomes.lock().unwrap().clone();
        got.sort();
        assert_eq!(got, vec![(0, true), (1, false), (2, false)]);
        assert!(jobs.list().is_empty());
        assert_eq!(*jobs.counts().borrow(), JobCounts::default());
    }

    /// Stopping lets a running job finish within the grace time, while the
    /// queued ones leave at once instead of starting.
    #[tokio::test(start_paused = true)]
    async fn a_running_job_may_finish_within_the_grace_time() {
        let jobs = Jobs::new(1);
        let outcomes = Arc::new(Mutex::new(Vec::new()));
        let (running_tx, mut running_rx) = tokio::sync::mpsc::unbounded_channel();
        for n in 0..2 {
            let (outcomes, running_tx) = (outcomes.clone(), running_tx.clone());
            jobs.spawn(view(n), move |mut ctx| async move {
                let Some(_permit) = ctx.acquire().await else {
                    outcomes.lock().unwrap().push((n, "left the queue"));
                    return;
                };
                running_tx.send(n).unwrap();
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(10)) => outcomes.lock().unwrap().push((n, "finished")),
                    _ = ctx.cancel.cancelled() => outcomes.lock().unwrap().push((n, "cancelled")),
                }
            });
        }
        assert_eq!(running_rx.recv().await, Some(0));
        let started = tokio::time::Instant::now();
        assert_eq!(jobs.shutdown(Duration::from_secs(30)).await, 0);
        assert_eq!(started.elapsed(), Duration::from_secs(10));
        let mut got = outcomes.lock().unwrap().clone();
        got.sort();
        assert_eq!(got, vec![(0, "finished"), (1, "left the queue")]);
    }

    /// A job whose body panics is released all the same: it leaves the
    /// registry (so its backup is no longer "in progress") and the counts.
    #[tokio::test]
    async fn a_job_that_panics_is_released() {
        let jobs = Jobs::new(1);
        let rx = jobs.spawn(view(0), |mut ctx| async move {
            let _permit = ctx.acquire().await.expect("a free slot");
            panic!("a job body that panics");
        });
        let id = rx.borrow().record.id.clone();
        let restore: RestoreId = RestoreId::generate(datetime!(2026-11-21 00:00 UTC));
        jobs.spawn_restore(restore, true, |mut ctx| async move {
            let _permit = ctx.acquire().await.expect("a free slot");
            panic!("a restore body that panics");
        });
        jobs.tracker.close();
        jobs.tracker.wait().await;
        assert!(!jobs.is_active(&id));
        assert_eq!(*jobs.counts().borrow(), JobCounts::default());
        // The slot is free again.
        assert_eq!(jobs.semaphore.available_permits(), 1);
    }

    /// Backups and restores are kinds of one job: the counts hold both,
    /// and each kind's running jobs are counted apart, queued ones not.
    #[tokio::test]
    async fn backups_drills_and_restores_are_counted_by_kind() {
        let jobs = Jobs::new(2);
        let (running_tx, mut running_rx) = tokio::sync::mpsc::unbounded_channel();
        let (release_tx, release_rx) = watch::channel(false);
        {
            let (running_tx, mut release) = (running_tx.clone(), release_rx.clone());
            jobs.spawn(view(0), move |mut ctx| async move {
                let _permit = ctx.acquire().await.expect("a free slot");
                running_tx.send("backup").unwrap();
                let _ = release.wait_for(|go| *go).await;
            });
        }
        for (n, dry_run) in [(1, true), (2, false)] {
            let (running_tx, mut release) = (running_tx.clone(), release_rx.clone());
            let id = RestoreId::generate(datetime!(2026-11-21 00:00 UTC) + Duration::from_secs(n));
            jobs.spawn_restore(id, dry_run, move |mut ctx| async move {
                let _permit = ctx.acquire().await.expect("a free slot");
                running_tx
                    .send(if dry_run { "drill" } else { "restore" })
                    .unwrap();
                let _ = release.wait_for(|go| *go).await;
            });
        }
        assert_eq!(running_rx.recv().await, Some("backup"));
        // The drill gave its turn to the real restore queued behind it.
        assert_eq!(running_rx.recv().await, Some("restore"));
        assert_eq!(
            *jobs.counts().borrow(),
            JobCounts {
                running: 2,
                queued: 1
            }
        );
        assert_eq!(jobs.running(Kind::Backup), 1);
        assert_eq!(jobs.running(Kind::Restore), 1);
        assert_eq!(jobs.running(Kind::Drill), 0, "the drill is queued");
        // Only backups are listed and watchable.
        assert_eq!(jobs.list().len(), 1);
        release_tx.send(true).unwrap();
        assert_eq!(running_rx.recv().await, Some("drill"));
        jobs.tracker.close();
        jobs.tracker.wait().await;
        assert_eq!(*jobs.counts().borrow(), JobCounts::default());
        assert_eq!(jobs.running(Kind::Drill), 0);
    }

    /// A restore leaves the registry and the counts when it says so, before
    /// its task ends (and its outcome is published), and only once.
    #[tokio::test]
    async fn a_restore_leaves_the_counts_before_its_task_ends() {
        let jobs = Jobs::new(1);
        let (left_tx, left_rx) = tokio::sync::oneshot::channel();
        let (end_tx, end_rx) = tokio::sync::oneshot::channel::<()>();
        let id = RestoreId::generate(datetime!(2026-11-21 00:00 UTC));
        jobs.spawn_restore(id, false, move |mut ctx| async move {
            let permit = ctx.acquire().await.expect("a free slot");
            drop(permit);
            ctx.leave();
            left_tx.send(()).unwrap();
            let _ = end_rx.await;
            ctx.leave();
        });
        left_rx.await.unwrap();
        assert_eq!(*jobs.counts().borrow(), JobCounts::default());
        assert_eq!(jobs.running(Kind::Restore), 0);
        end_tx.send(()).unwrap();
        jobs.tracker.close();
        jobs.tracker.wait().await;
        assert_eq!(*jobs.counts().borrow(), JobCounts::default());
    }

    /// A drill queued first gives its turn to a backup and a real restore
    /// queued after it; with nothing else waiting it runs as queued.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_drill_yields_its_turn_to_backups_and_real_restores_queued_behind_it() {
        let jobs = Jobs::new(1);
        let (started_tx, mut started_rx) = tokio::sync::mpsc::unbounded_channel();
        let (release_tx, release_rx) = watch::channel(false);
        {
            let (started_tx, mut release) = (started_tx.clone(), release_rx.clone());
            jobs.spawn(view(0), move |mut ctx| async move {
                let _permit = ctx.acquire().await.expect("a free slot");
                started_tx.send("first backup").unwrap();
                let _ = release.wait_for(|go| *go).await;
            });
        }
        assert_eq!(started_rx.recv().await, Some("first backup"));
        let restore = |n: u64, dry_run: bool, what: &'static str| {
            let started_tx = started_tx.clone();
            let id = RestoreId::generate(datetime!(2026-11-21 00:00 UTC) + Duration::from_secs(n));
            jobs.spawn_restore(id, dry_run, move |mut ctx| async move {
                let _permit = ctx.acquire().await.expect("a free slot");
                started_tx.send(what).unwrap();
            });
        };
        restore(1, true, "drill");
        {
            let started_tx = started_tx.clone();
            jobs.spawn(view(1), move |mut ctx| async move {
                let _permit = ctx.acquire().await.expect("a free slot");
                started_tx.send("backup queued after the drill").unwrap();
            });
        }
        restore(2, false, "real restore queued after the drill");
        assert_eq!(
            *jobs.counts().borrow(),
            JobCounts {
                running: 1,
                queued: 3
            }
        );
        release_tx.send(true).unwrap();
        let mut order = Vec::new();
        for _ in 0..3 {
            order.push(started_rx.recv().await.unwrap());
        }
        assert_eq!(
            order,
            [
                "backup queued after the drill",
                "real restore queued after the drill",
                "drill"
            ]
        );
        jobs.tracker.close();
        jobs.tracker.wait().await;
        assert_eq!(*jobs.counts().borrow(), JobCounts::default());
        assert_eq!(jobs.semaphore.available_permits(), 1);

        // Alone in the queue, a drill takes its turn at once.
        restore(3, true, "lone drill");
        assert_eq!(started_rx.recv().await, Some("lone drill"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_running_job_is_cancelled_when_the_grace_time_is_over() {
        let jobs = Jobs::new(1);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        jobs.spawn(view(0), move |mut ctx| async move {
            let _permit = ctx.acquire().await.expect("a free slot");
            tx.send("running").unwrap();
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(3600)) => tx.send("finished").unwrap(),
                _ = ctx.cancel.cancelled() => tx.send("cancelled").unwrap(),
            }
        });
        assert_eq!(rx.recv().await, Some("running"));
        let started = tokio::time::Instant::now();
        assert_eq!(jobs.shutdown(Duration::from_secs(5)).await, 1);
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        assert_eq!(rx.recv().await, Some("cancelled"));
    }
}
