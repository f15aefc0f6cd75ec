//! Talking to the service manager (`sd_notify`): readiness, a status line
//! that says what the daemon is doing, the watchdog, and the reload and stop
//! transitions. Outside systemd (no `NOTIFY_SOCKET`) every call does
//! nothing.
//!
//! The watchdog is pinged from a task on the daemon's runtime that first
//! checks the daemon can still do its work: it takes the catalogue lock (a
//! deadlock there hangs the task, so the pings stop) and looks at the
//! scheduler loop's heartbeat. If the runtime is wedged the task never runs;
//! if the scheduler is stuck the task withholds the ping. Either way systemd
//! sees the silence and restarts the daemon.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sd_notify::NotifyState;

use crate::jobs::JobCounts;
use crate::state::Daemon;

/// How long the scheduler loop may go without a turn before the daemon
/// counts as hung. The loop wakes at least once a minute.
pub const SCHEDULER_STALL: Duration = Duration::from_secs(180);

/// The service manager's side of the daemon. Errors sending are logged,
/// never fatal: a daemon that cannot tell systemd how it is does not stop
/// doing its work.
pub struct Notifier {
    enabled: bool,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID`.
    pub fn from_env() -> Notifier {
        Notifier {
            enabled: std::env::var_os("NOTIFY_SOCKET").is_some(),
            watchdog: sd_notify::watchdog_enabled().filter(|d| !d.is_zero()),
        }
    }

    /// A notifier that sends nothing (for tests of the library).
    pub fn disabled() -> Notifier {
        Notifier {
            enabled: false,
            watchdog: None,
        }
    }

    fn send(&self, states: &[NotifyState]) {
        if !self.enabled {
            return;
        }
        if let Err(e) = sd_notify::notify(states) {
            tracing::warn!(error = %e, "cannot notify the service manager");
        }
    }

    /// `READY=1`: the socket listens and the state is recovered. Also sent
    /// after a reload, which is how systemd learns that the reload ended.
    pub fn ready(&self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    pub fn status(&self, status: &str) {
        self.send(&[NotifyState::Status(status)]);
    }

    /// `RELOADING=1` with the monotonic time, which systemd 253 and later
    /// require to match the reload with its request.
    pub fn reloading(&self) {
        let mut states = vec![
            NotifyState::Reloading,
            NotifyState::Status("reloading the configuration"),
        ];
        if let Ok(now) = NotifyState::monotonic_usec_now() {
            states.push(now);
        }
        self.send(&states);
    }

    pub fn stopping(&self, status: &str) {
        self.send(&[NotifyState::Stopping, NotifyState::Status(status)]);
    }

    /// How often to ping the watchdog: half its timeout, as sd_watchdog_enabled(3)
    /// recommends, so one late ping is not fatal.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog.filter(|_| self.enabled).map(|d| d / 2)
    }
}

/// What the daemon is doing, in the words of the status line
/// (`systemctl status berkutd`). Restores count as jobs, like backups.
pub fn describe(counts: JobCounts, stopping: bool, maintenance: bool) -> String {
    let jobs = |n: usize| if n == 1 { "job" } else { "jobs" };
    let work = match (stopping, counts.running, counts.queued) {
        (true, 0, _) => "stopping".to_owned(),
        (true, running, _) => format!(
            "stopping: waiting for {running} running {} to finish",
            jobs(running)
        ),
        (false, 0, 0) => "idle".to_owned(),
        (false, running, 0) => format!("running {running} {}", jobs(running)),
        (false, running, queued) => {
            format!("running {running} {}, {queued} queued", jobs(running))
        }
    };
    if maintenance {
        format!("maintenance (a restore is replacing the database); {work}")
    } else {
        work
    }
}

/// The status line for the daemon as it is now, with the faults `status`
/// reports (the store alarm, background tasks that died) after the work.
pub fn status_of(daemon: &Daemon) -> String {
    let mut line = describe(
        *daemon.jobs.counts().borrow(),
        daemon.shutdown.is_cancelled(),
        daemon.maintenance.is_active(),
    );
    if let Some(alarm) = crate::recovery::store_alarm(daemon) {
        line.push_str("; ALARM: ");
        line.push_str(&alarm);
    }
    let faults = daemon.health.task_faults();
    if !faults.is_empty() {
        let tasks: Vec<&str> = faults.iter().map(|f| f.task.as_str()).collect();
        line.push_str(&format!(
            "; FAULT: the {} task died and was restarted",
            tasks.join(", ")
        ));
    }
    line
}

/// When a loop last went round; read by the watchdog. A loop beats at the
/// end of each turn it completes, so a loop that dies part-way through
/// every turn never beats.
pub struct Heartbeat {
    base: Instant,
    last_ms: AtomicU64,
    /// Set when the loop's task died, cleared by its next completed turn.
    dead: AtomicBool,
}

impl Default for Heartbeat {
    fn default() -> Heartbeat {
        Heartbeat {
            base: Instant::now(),
            last_ms: AtomicU64::new(0),
            dead: AtomicBool::new(false),
        }
    }
}

impl Heartbeat {
    pub fn beat(&self) {
        let ms = self.base.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
        self.dead.store(false, Ordering::Relaxed);
    }

    /// The loop's task died: it counts as stalled until it beats again.
    pub fn stop(&self) {
        self.dead.store(true, Ordering::Relaxed);
    }

    /// How long ago the last beat was; `Duration::MAX` while the loop is
    /// dead.
    pub fn age(&self) -> Duration {
        if self.dead.load(Ordering::Relaxed) {
            return Duration::MAX;
        }
        self.base
            .elapsed()
            .saturating_sub(Duration::from_millis(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// Whether the daemon may tell the watchdog it is alive. The scheduler
/// ends when the daemon stops, so its heartbeat counts only before.
pub fn health(scheduler_age: Duration, stopping: bool) -> Result<(), String> {
    if !stopping && scheduler_age == Duration::MAX {
        return Err("the scheduler task died and has not completed a turn since".to_owned());
    }
    if !stopping && scheduler_age > SCHEDULER_STALL {
        return Err(format!(
            "the scheduler loop has not run for {} s",
            scheduler_age.as_secs()
        ));
    }
    Ok(())
}

fn check(daemon: &Daemon) -> Result<(), String> {
    // Blocks for as long as someone holds the lock: a deadlock here stops
    // the pings, which is the point.
    if !daemon.catalogue.lock_works() {
        return Err("the catalogue lock is poisoned by a panic".to_owned());
    }
    health(daemon.scheduler_beat.age(), daemon.shutdown.is_cancelled())
}

/// Keeps the status line current and pings the watchdog, until aborted.
pub async fn supervise(daemon: Arc<Daemon>, notifier: Arc<Notifier>) {
    let mut counts = daemon.jobs.counts();
    let mut maintenance = daemon.maintenance.subscribe();
    let mut last_status = status_of(&daemon);
    let mut tick = notifier.watchdog_interval().map(|every| {
        let mut interval = tokio::time::interval(every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval
    });
    let mut unhealthy = false;
    loop {
        tokio::select! {
            changed = counts.changed() => {
                if changed.is_err() {
                    return;
                }
                counts.borrow_and_update();
                let status = status_of(&daemon);
                if status != last_status {
                    notifier.status(&status);
                    last_status = status;
                }
            }
            changed = maintenance.changed() => {
                if changed.is_err() {
                    return;
                }
                maintenance.borrow_and_update();
                let status = status_of(&daemon);
                if status != last_status {
                    notifier.status(&status);
                    last_status = status;
                }
            }
            _ = async { tick.as_mut().expect("guarded").tick().await }, if tick.is_some() => {
                match check(&daemon) {
                    Ok(()) => {
                        if unhealthy {
                            tracing::info!("the daemon is healthy again; watchdog pings resume");
                            unhealthy = false;
                        }
                        notifier.send(&[NotifyState::Watchdog]);
                    }
                    Err(why) => {
                        if !unhealthy {
                            tracing::error!(reason = %why, "withholding the watchdog ping, so that systemd restarts the daemon");
                            unhealthy = true;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(running: usize, queued: usize) -> JobCounts {
        JobCounts { running, queued }
    }

    #[test]
    fn the_status_line_says_what_the_daemon_does() {
        assert_eq!(describe(counts(0, 0), false, false), "idle");
        assert_eq!(describe(counts(1, 0), false, false), "running 1 job");
        assert_eq!(
            describe(counts(2, 3), false, false),
            "running 2 jobs, 3 queued"
        );
        assert_eq!(
            describe(counts(1, 0), true, false),
            "stopping: waiting for 1 running job to finish"
        );
        assert_eq!(describe(counts(0, 0), true, false), "stopping");
        assert_eq!(
            describe(counts(1, 0), false, true),
            "maintenance (a restore is replacing the database); running 1 job"
        );
    }

    #[test]
    fn a_stalled_scheduler_withholds_the_ping_until_the_daemon_stops() {
        assert!(health(Duration::from_secs(61), false).is_ok());
        let err = health(SCHEDULER_STALL + Duration::from_secs(1), false).unwrap_err();
        assert!(err.contains("scheduler"), "{err}");
        assert!(health(SCHEDULER_STALL * 10, true).is_ok());
    }

    #[test]
    fn a_heartbeat_ages_from_its_last_beat() {
        let beat = Heartbeat::default();
        beat.beat();
        assert!(beat.age() < Duration::from_secs(5));
    }

    /// A dead scheduler withholds the ping at once, not only after the
    /// stall time; its next completed turn lifts that.
    #[test]
    fn a_dead_scheduler_withholds_the_ping_until_it_beats_again() {
        let beat = Heartbeat::default();
        beat.beat();
        beat.stop();
        let err = health(beat.age(), false).unwrap_err();
        assert!(err.contains("died"), "{err}");
        assert!(health(beat.age(), true).is_ok());
        beat.beat();
        assert!(health(beat.age(), false).is_ok());
    }
}
