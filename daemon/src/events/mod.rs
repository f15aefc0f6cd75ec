//! Notifications (issue 16): events that matter (a backup failed, the RPO
//! breached or recovered, a drill failed, a restore started or finished,
//! an off-site copy failing, the daemon starting after a crash) delivered
//! as JSON to the sinks of `[[notify]]`: webhooks (`webhook.rs`, signed,
//! retried with backoff) and hooks (`exec.rs`, a program with the event on
//! its stdin, killed at its timeout).
//!
//! `Events::emit` is the one way in, and it never blocks or fails: each sink
//! has a bounded queue and a worker task of its own; a full queue drops the
//! event with a log line, so a dead endpoint can never hold a job up. Other
//! modules emit where the thing happens, e.g.
//! `daemon.events.emit(Event::new(EventType::DrillFailed).restore(&id).reason(r))`.
//! The RPO watch (`rpo.rs`) and the crash marker (`crash.rs`) emit the
//! events nothing else sees happen.

pub mod crash;
mod event;
pub mod exec;
pub mod rpo;
pub mod webhook;

use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

pub use event::{safe_reason, Event, EventType, EVENT_VERSION};

use crate::clock::Clock;
use crate::config::notify::{Sink, SinkTarget};

/// Events waiting for one sink beyond this are dropped.
pub const QUEUE_CAPACITY: usize = 64;

/// The sinks in force and their queues.
pub struct Events {
    clock: Arc<dyn Clock>,
    host: String,
    sinks: Mutex<Vec<Queue>>,
}

struct Queue {
    sink: Arc<Sink>,
    tx: mpsc::Sender<Arc<Vec<u8>>>,
}

/// What one delivery came to, for `notify_test`.
#[derive(Clone, Debug)]
pub struct Delivered {
    pub sink: String,
    pub ok: bool,
    pub detail: String,
}

impl Events {
    pub fn new(clock: Arc<dyn Clock>) -> Events {
        let host = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .map(|h| h.chars().take(255).collect())
            .unwrap_or_default();
        Events {
            clock,
            host,
            sinks: Mutex::new(Vec::new()),
        }
    }

    /// Puts `sinks` in force (at start and after a reload). The old
    /// workers deliver what is already queued, then end.
    pub fn configure(&self, sinks: &[Sink]) {
        let queues = sinks
            .iter()
            .map(|sink| {
                let sink = Arc::new(sink.clone());
                let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
                tokio::spawn(work(Arc::clone(&sink), rx));
                Queue { sink, tx }
            })
            .collect();
        *self.sinks.lock().unwrap() = queues;
    }

    /// The event with its time and host.
    fn stamp(&self, mut event: Event) -> Event {
        event.time = self.clock.now();
        event.host = self.host.clone();
        event
    }

    /// Hands `event` to every sink that wants it. Never blocks, never
    /// fails: a sink whose queue is full loses the event, with a log line.
    pub fn emit(&self, event: Event) {
        let event = self.stamp(event);
        let body = Arc::new(event.to_json());
        for q in self.sinks.lock().unwrap().iter() {
            if !q.sink.wants(event.kind) {
                continue;
            }
            if let Err(e) = q.tx.try_send(Arc::clone(&body)) {
                let why = match e {
                    mpsc::error::TrySendError::Full(_) => "its queue is full",
                    mpsc::error::TrySendError::Closed(_) => "it was replaced by a reload",
                };
                tracing::warn!(sink = %q.sink.name(), event = event.kind.as_str(), "a notification was dropped: {why}");
            }
        }
    }

    /// Sends a `test` event to every sink, whatever its filter, once
    /// (no retries), and says how each delivery went.
    pub async fn test(&self) -> Vec<Delivered> {
        let body = self.stamp(Event::new(EventType::Test)).to_json();
        let sinks: Vec<Arc<Sink>> = self
            .sinks
            .lock()
            .unwrap()
            .iter()
            .map(|q| Arc::clone(&q.sink))
            .collect();
        let attempts = sinks.iter().map(|sink| {
            let body = &body;
            async move {
                let outcome = deliver_once(sink, body).await;
                Delivered {
                    sink: sink.name(),
                    ok: outcome.is_ok(),
                    detail: outcome.unwrap_or_else(|e| e),
                }
            }
        });
        futures::future::join_all(attempts).await
    }
}

/// One attempt at delivering `body` to `sink`: Ok with what happened, or
/// why it failed (in words that name no secret and no URL path).
async fn deliver_once(sink: &Sink, body: &[u8]) -> Result<String, String> {
    match &sink.target {
        SinkTarget::Webhook { url, secret, .. } => {
            webhook::post(url, secret, body, sink.timeout).await
        }
        SinkTarget::Exec { command } => exec::run(command, body, sink.timeout).await,
    }
}

/// The first pause before a webhook is tried again; it doubles up to
/// `MAX_BACKOFF`.
const FIRST_BACKOFF: std::time::Duration = std::time::Duration::from_secs(1);
const MAX_BACKOFF: std::time::Duration = std::time::Duration::from_secs(30);

/// A sink's worker: delivers its queue in order. A webhook is tried
/// `1 + retries` times with a growing pause; a hook runs once. An event
/// that could not be delivered is dropped with a log line.
async fn work(sink: Arc<Sink>, mut rx: mpsc::Receiver<Arc<Vec<u8>>>) {
    let attempts = match sink.target {
        SinkTarget::Webhook { .. } => 1 + sink.retries,
        SinkTarget::Exec { .. } => 1,
    };
    while let Some(body) = rx.recv().await {
        let mut pause = FIRST_BACKOFF;
        for attempt in 1..=attempts {
            match deliver_once(&sink, &body).await {
                Ok(_) => break,
                Err(why) if attempt == attempts => {
                    tracing::warn!(sink = %sink.name(), attempts, reason = %why, "a notification could not be delivered and was dropped");
                }
                Err(why) => {
                    tracing::info!(sink = %sink.name(), attempt, reason = %why, retry_in_ms = pause.as_millis() as u64, "a notification could not be delivered; trying again");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}
