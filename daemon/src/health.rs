//! What the daemon knows to be wrong with itself, for `status` and the
//! watchdog: the store alarm (most recorded archives missing), and
//! background tasks that died. Background tasks (the scheduler, retention,
//! the supervisor) run under `supervised`, which logs a task's death at
//! error, records it here, and starts the task again after a pause, so no
//! panic stops the schedule for good; the scheduler's heartbeat is stopped
//! while it is dead, so the watchdog is not fed meanwhile.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berkut_proto::wire::TaskFault;
use time::OffsetDateTime;

use crate::state::Daemon;

/// The first pause before a dead task starts again; it doubles on every
/// death up to `MAX_RESTART_PAUSE`, so a task that dies at once every time
/// does not spin.
const FIRST_RESTART_PAUSE: Duration = Duration::from_secs(1);
const MAX_RESTART_PAUSE: Duration = Duration::from_secs(60);

#[derive(Default)]
pub struct Health {
    store_alarm: Mutex<Option<String>>,
    faults: Mutex<BTreeMap<&'static str, TaskFault>>,
}

impl Health {
    pub fn set_store_alarm(&self, alarm: Option<String>) {
        *self.store_alarm.lock().unwrap() = alarm;
    }

    pub fn store_alarm(&self) -> Option<String> {
        self.store_alarm.lock().unwrap().clone()
    }

    /// Records that `task` died. The record stays for the daemon's life:
    /// an operator should look at the log, and monitoring keeps saying so.
    pub fn task_died(&self, task: &'static str, at: OffsetDateTime) {
        let mut faults = self.faults.lock().unwrap();
        let fault = faults.entry(task).or_insert_with(|| TaskFault {
            task: task.to_owned(),
            failures: 0,
            last_at: at,
            message: String::new(),
        });
        fault.failures += 1;
        fault.last_at = at;
        fault.message = format!(
            "the {task} task stopped with a panic and was restarted; the daemon's log has the details"
        );
    }

    pub fn task_faults(&self) -> Vec<TaskFault> {
        self.faults.lock().unwrap().values().cloned().collect()
    }
}

/// Aborts a task when dropped, so that aborting a supervisor also ends the
/// task it watches.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs the task `make` builds until it ends on its own (the daemon
/// stopping); when it dies of a panic, logs it at error, records it in
/// `Health` and starts a new one after a pause.
pub async fn supervised<F, Fut>(daemon: Arc<Daemon>, name: &'static str, make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut pause = FIRST_RESTART_PAUSE;
    loop {
        let handle = tokio::spawn(make());
        let guard = AbortOnDrop(handle.abort_handle());
        let outcome = handle.await;
        drop(guard);
        match outcome {
            Ok(()) => return,
            Err(e) if e.is_cancelled() => return,
            Err(e) => {
                let why = panic_text(e);
                if name == "scheduler" {
                    daemon.scheduler_beat.stop();
                }
                daemon.health.task_died(name, daemon.now());
                tracing::error!(task = name, panic = %why, restart_in_seconds = pause.as_secs(), "a background task died; starting it again");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = daemon.shutdown.cancelled() => return,
        }
        pause = (pause * 2).min(MAX_RESTART_PAUSE);
    }
}

/// Runs one piece of work as a task of its own and waits for it; a panic
/// is logged and recorded under `name` instead of taking the caller down.
pub async fn guarded<Fut>(daemon: &Daemon, name: &'static str, work: Fut)
where
    Fut: Future<Output = ()> + Send + 'static,
{
    let handle = tokio::spawn(work);
    let guard = AbortOnDrop(handle.abort_handle());
    let outcome = handle.await;
    drop(guard);
    if let Err(e) = outcome {
        if !e.is_cancelled() {
            let why = panic_text(e);
            daemon.health.task_died(name, daemon.now());
            tracing::error!(task = name, panic = %why, "a background task died; it runs again at its next turn");
        }
    }
}

/// Fault injection for the test suite (debug builds only):
/// `BERKUT_FAULT_PANIC_TASK=scheduler` panics the named task at every
/// turn, `scheduler:2` only at its first two.
#[cfg(debug_assertions)]
pub fn injected_panic(task: &str) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static PANICS: AtomicU64 = AtomicU64::new(0);
    let Ok(spec) = std::env::var("BERKUT_FAULT_PANIC_TASK") else {
        return;
    };
    let (name, limit) = match spec.split_once(':') {
        Some((name, n)) => (name.to_owned(), n.parse().unwrap_or(u64::MAX)),
        None => (spec, u64::MAX),
    };
    if name == task && PANICS.fetch_add(1, Ordering::SeqCst) < limit {
        panic!("fault injected into the {task} task");
    }
}

fn panic_text(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_owned()),
        Err(e) => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn a_task_fault_counts_and_stays() {
        let health = Health::default();
        assert!(health.task_faults().is_empty());
        health.task_died("scheduler", datetime!(2026-11-01 00:00 UTC));
        health.task_died("scheduler", datetime!(2026-11-01 00:01 UTC));
        let faults = health.task_faults();
        assert_eq!(faults.len(), 1);
        assert_eq!(faults[0].failures, 2);
        assert_eq!(faults[0].last_at, datetime!(2026-11-01 00:01 UTC));
        assert!(!faults[0].message.contains("panicked at"));
    }
}
