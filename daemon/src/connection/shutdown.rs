//! How a connection ends. The request loop stops reading when the client
//! closes or breaks the protocol, when the daemon stops, or when the
//! connection has been idle (nothing running, nothing read or written) for
//! the configured idle timeout; the requests still running then finish
//! (see `requests`), and the writer either delivers what they answered or,
//! for an idle connection whose client reads nothing, is dropped with it.

use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::answer::Answers;
use super::outbox::Activity;
use crate::state::Daemon;

/// How the request loop ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Ended {
    /// The client closed, broke the protocol, or the daemon stops.
    Closed,
    /// The idle timeout passed with nothing running.
    Idle,
}

/// What ends a connection that is still reading: the daemon stopping, or
/// the idle timeout.
pub(super) struct Stop {
    daemon: Arc<Daemon>,
    shutdown: CancellationToken,
    activity: Arc<Activity>,
    check_idle: tokio::time::Instant,
}

impl Stop {
    pub fn new(daemon: Arc<Daemon>, shutdown: CancellationToken, activity: Arc<Activity>) -> Stop {
        let check_idle = tokio::time::Instant::now() + daemon.config().connections.idle_timeout;
        Stop {
            daemon,
            shutdown,
            activity,
            check_idle,
        }
    }

    /// A message was read: the idle clock starts again.
    pub fn read_something(&self) {
        self.activity.touch();
    }

    /// Resolves when the connection should stop reading. Cancel-safe: the
    /// next idle check is kept across calls.
    pub async fn wait(&mut self, tasks: &TaskTracker, uid: u32) -> Ended {
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return Ended::Closed,
                _ = tokio::time::sleep_until(self.check_idle) => {}
            }
            // A request running (a watch, a waited-for job, a transfer) is
            // not idleness; otherwise the clock runs from the last message
            // read or frame written. The timeout is read again each time:
            // a reload may have changed it.
            let timeout = self.daemon.config().connections.idle_timeout;
            if !tasks.is_empty() {
                self.check_idle = tokio::time::Instant::now() + timeout;
                continue;
            }
            let quiet_since = self.activity.last();
            if quiet_since.elapsed() >= timeout {
                tracing::debug!(
                    uid,
                    timeout_s = timeout.as_secs(),
                    "closing an idle connection"
                );
                return Ended::Idle;
            }
            self.check_idle = (quiet_since + timeout).into();
        }
    }
}

/// Closes the way out once the loop has ended and its requests finished.
pub(super) async fn close(ended: Ended, answers: Answers, writer: JoinHandle<()>) {
    // The last sender: the writer ends once what is queued is written.
    drop(answers);
    match ended {
        // Nothing runs and the client reads nothing: what it left unread
        // is dropped with the connection.
        Ended::Idle => writer.abort(),
        Ended::Closed => {
            let _ = writer.await;
        }
    }
}
