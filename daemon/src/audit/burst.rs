//! Collapsing bursts of identical denials. A peer that repeats a request it
//! may not make (a script in a retry loop, or one trying to fill the disk)
//! leaves one event per burst, with `count` and the time of the last
//! (`until`), instead of one per request.
//!
//! Identical means the same peer (uid, gid, pid), the same operation, the
//! same outcome (code), the same `on_behalf_of` and the same target: the
//! collapsed event says everything each of its requests would have said
//! but its `request` id and time. A burst opens with a denial and closes
//! `window` later; it is written then (or earlier, when the trail is read
//! or the daemon stops). A single denial is written the same way, with no
//! `count`. Requests that differ in any of those fields are separate
//! events: the size bound on the directory (retention), not this, is what
//! keeps a hostile peer from filling the disk.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use super::Event;

/// The most bursts open at once; past it, denials are written one by one.
/// Each open burst holds one event (under 2 KiB), so this bounds memory.
const MAX_OPEN: usize = 1024;

struct Burst {
    event: Event,
    count: u64,
    until: OffsetDateTime,
    opened: Instant,
}

impl Burst {
    fn into_event(self) -> Event {
        let mut event = self.event;
        if self.count > 1 {
            event.count = Some(self.count);
            event.until = Some(self.until);
        }
        event
    }
}

pub struct Bursts {
    window: Duration,
    open: HashMap<String, Burst>,
}

/// What makes two denials the same.
fn key(event: &Event) -> String {
    serde_json::to_string(&(
        event.uid,
        event.gid,
        event.pid,
        &event.op,
        &event.code,
        &event.on_behalf_of,
        &event.target,
    ))
    .expect("a key serialises")
}

impl Bursts {
    pub fn new(window: Duration) -> Bursts {
        Bursts {
            window,
            open: HashMap::new(),
        }
    }

    /// A new window, for bursts opened from now on (the open ones keep
    /// theirs: they close by their start and the new window).
    pub fn set_window(&mut self, window: Duration) {
        self.window = window;
    }

    /// Takes a denial into its burst; gives it back when it must be
    /// written now (collapsing is off, or too many bursts are open).
    pub fn offer(&mut self, event: Event, now: Instant) -> Option<Event> {
        if self.window.is_zero() || event.decision != "denied" {
            return Some(event);
        }
        let key = key(&event);
        if let Some(burst) = self.open.get_mut(&key) {
            burst.count += 1;
            burst.until = event.time;
            return None;
        }
        if self.open.len() >= MAX_OPEN {
            return Some(event);
        }
        self.open.insert(
            key,
            Burst {
                until: event.time,
                event,
                count: 1,
                opened: now,
            },
        );
        None
    }

    /// The bursts whose window has passed (all of them with `now` `None`),
    /// as events, oldest first.
    pub fn close(&mut self, now: Option<Instant>) -> Vec<Event> {
        let window = self.window;
        let due: Vec<String> = self
            .open
            .iter()
            .filter(|(_, b)| now.is_none_or(|now| now.duration_since(b.opened) >= window))
            .map(|(k, _)| k.clone())
            .collect();
        let mut closed: Vec<Burst> = due.iter().filter_map(|k| self.open.remove(k)).collect();
        closed.sort_by_key(|b| b.opened);
        closed.into_iter().map(Burst::into_event).collect()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn denial(pid: i32, op: &str, second: i64) -> Event {
        let mut event = crate::audit::tests::event(u64::from(pid.unsigned_abs()));
        event.pid = Some(pid);
        event.op = op.into();
        event.decision = "denied".into();
        event.result = None;
        event.code = Some(berkut_proto::wire::ErrorCode::Forbidden);
        event.time =
            time::macros::datetime!(2026-11-21 00:00 UTC) + time::Duration::seconds(second);
        event
    }

    #[test]
    fn identical_denials_in_a_window_are_one_event_with_their_count() {
        let start = Instant::now();
        let mut bursts = Bursts::new(Duration::from_secs(5));
        for s in 0..100 {
            assert!(bursts
                .offer(denial(42, "backup_delete", s / 50), start)
                .is_none());
        }
        // Another peer, another operation: bursts of their own.
        assert!(bursts
            .offer(denial(43, "backup_delete", 0), start)
            .is_none());
        assert!(bursts.offer(denial(42, "plan_set", 0), start).is_none());
        // An allowed request is never held back.
        let allowed = crate::audit::tests::event(7);
        assert_eq!(bursts.offer(allowed.clone(), start), Some(allowed));
        assert!(bursts
            .close(Some(start + Duration::from_secs(4)))
            .is_empty());
        let closed = bursts.close(Some(start + Duration::from_secs(5)));
        assert_eq!(closed.len(), 3);
        let many = closed.iter().find(|e| e.count.is_some()).unwrap();
        assert_eq!(
            (many.pid, many.op.as_str(), many.count),
            (Some(42), "backup_delete", Some(100))
        );
        assert_eq!(many.until, Some(many.time + time::Duration::seconds(1)));
        assert!(closed
            .iter()
            .filter(|e| e.count.is_none())
            .all(|e| e.until.is_none()));
        assert!(bursts.is_empty());
        // The window closed: the next denial opens a new burst.
        assert!(bursts
            .offer(denial(42, "backup_delete", 9), start)
            .is_none());
        assert_eq!(bursts.close(None).len(), 1);
    }

    #[test]
    fn without_a_window_or_past_the_cap_denials_are_written_at_once() {
        let now = Instant::now();
        let mut off = Bursts::new(Duration::ZERO);
        assert!(off.offer(denial(1, "status", 0), now).is_some());
        let mut bursts = Bursts::new(Duration::from_secs(5));
        for pid in 0..MAX_OPEN as i32 {
            assert!(bursts.offer(denial(pid, "status", 0), now).is_none());
        }
        assert!(bursts.offer(denial(-1, "status", 0), now).is_some());
    }
}
