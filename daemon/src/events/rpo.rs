//! The RPO watch for notifications: `rpo_breached` when the newest good
//! backup becomes older than the objective (or the daemon starts in
//! breach), `rpo_recovered` when a backup brings it back. Only changes are
//! events. It looks after every job, on every plan change, and at least
//! every `PERIOD`, through the same `schedule::rpo_state` that `status` and
//! the metrics read.

use std::sync::Arc;
use std::time::Duration;

use super::{Event, EventType};
use crate::state::Daemon;

pub const PERIOD: Duration = Duration::from_secs(30);

/// What the watch did with a new reading: the event to emit, if any.
pub fn transition(before: Option<bool>, now: bool) -> Option<EventType> {
    match (before, now) {
        (None | Some(false), true) => Some(EventType::RpoBreached),
        (Some(true), false) => Some(EventType::RpoRecovered),
        _ => None,
    }
}

pub async fn watch(daemon: Arc<Daemon>) {
    let mut changed = daemon.metrics.subscribe();
    let mut plan = daemon.plan.subscribe();
    let mut before: Option<bool> = None;
    loop {
        let rpo = crate::schedule::rpo_state(&daemon, daemon.now());
        if let Some(kind) = transition(before, rpo.breached) {
            let reason = match (kind, rpo.age_seconds, rpo.limit_seconds) {
                (EventType::RpoRecovered, _, _) => "a backup within the objective succeeded".into(),
                (_, None, _) => "no backup has succeeded".to_owned(),
                (_, Some(age), Some(limit)) => {
                    format!("the newest good backup is {age} s old; the objective is {limit} s")
                }
                (_, Some(_), None) => "the plan cannot be scheduled".to_owned(),
            };
            tracing::info!(event = kind.as_str(), %reason, "recovery point objective");
            daemon.events.emit(Event::new(kind).reason(&reason));
        }
        before = Some(rpo.breached);
        tokio::select! {
            _ = tokio::time::sleep(PERIOD) => {}
            r = changed.changed() => if r.is_err() { return },
            r = plan.changed() => if r.is_err() { return },
            _ = daemon.shutdown.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_changes_are_events() {
        assert_eq!(transition(None, false), None);
        assert_eq!(transition(None, true), Some(EventType::RpoBreached));
        assert_eq!(transition(Some(true), true), None);
        assert_eq!(transition(Some(true), false), Some(EventType::RpoRecovered));
        assert_eq!(transition(Some(false), true), Some(EventType::RpoBreached));
    }
}
