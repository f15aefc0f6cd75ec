//! Prometheus metrics (issue 16): the daemon's state as figures
//! (`figures.rs`), encoded in the Prometheus text format by
//! `prometheus-client` (`encode.rs`, where every metric is described
//! once), served two ways: the `metrics` socket operation and the textfile
//! for node_exporter (`textfile.rs`, the `metrics_textfile` setting). The
//! run counters (`counters.rs`) are derived from the records. Nothing here
//! holds state of its own beyond those counters: every rendering reads the
//! state afresh, so the two ways always show the same figures.

pub mod counters;
pub mod encode;
pub mod figures;
pub mod textfile;

use berkut_proto::manifest::Origin;
use tokio::sync::watch;

use crate::state::Daemon;
use counters::{Outcome, RestoreKind, RunCounters};

/// The run counters, and a signal that something the metrics show changed
/// (a job ended, a reload), which the textfile writer and the RPO watch
/// wait on besides their timers.
pub struct Metrics {
    pub counters: RunCounters,
    changed: watch::Sender<u64>,
}

impl Metrics {
    pub fn new(counters: RunCounters) -> Metrics {
        Metrics {
            counters,
            changed: watch::Sender::new(0),
        }
    }

    pub fn backup_ended(&self, origin: Origin, ok: bool) {
        self.counters.backup_ended(origin, Outcome::of(ok));
        self.touch();
    }

    /// A restore ended at `at`.
    pub fn restore_ended(&self, dry_run: bool, ok: bool, at: time::OffsetDateTime) {
        self.counters
            .restore_ended(RestoreKind::of(dry_run), Outcome::of(ok));
        if dry_run && ok {
            self.counters.drill_succeeded(at.unix_timestamp());
        }
        self.touch();
    }

    /// Something the figures show changed: writers render again now.
    pub fn touch(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

/// Every metric, as Prometheus text, from the daemon's state now.
pub fn render(daemon: &Daemon) -> String {
    encode::encode(&figures::gather(daemon))
}
