//! Time as a dependency. Everything that stamps or schedules asks a `Clock`,
//! so tests can drive time instead of waiting for it. A clock that tests
//! move (`ManualClock`) also says when it moved (`subscribe`), so the
//! scheduler loop looks again at once instead of at its next minute.

use time::OffsetDateTime;
use tokio::sync::watch;

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> OffsetDateTime;

    /// Changes whenever the time is moved by hand; `None` for a clock
    /// that simply runs.
    fn subscribe(&self) -> Option<watch::Receiver<OffsetDateTime>> {
        None
    }
}

/// The real wall clock, in UTC.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that only moves when told to.
pub struct ManualClock(watch::Sender<OffsetDateTime>);

impl ManualClock {
    pub fn new(at: OffsetDateTime) -> ManualClock {
        ManualClock(watch::Sender::new(at))
    }

    pub fn set(&self, at: OffsetDateTime) {
        self.0.send_replace(at);
    }

    pub fn advance(&self, by: time::Duration) {
        self.0.send_modify(|now| *now += by);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.borrow()
    }

    fn subscribe(&self) -> Option<watch::Receiver<OffsetDateTime>> {
        Some(self.0.subscribe())
    }
}
