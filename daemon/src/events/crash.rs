//! Telling a crash from a stop: a marker file, `berkutd.running`, in the
//! state directory for as long as the daemon runs; a clean stop removes it.
//! Found at start, it means the last run ended without a clean stop (a
//! crash, a kill, the watchdog, a power cut), which `daemon_crashed_restart`
//! reports. Recovery repairs what such an end left (interrupted backups and
//! restores); the marker also catches the crash of an idle daemon, which
//! leaves nothing to repair.

use std::path::{Path, PathBuf};

pub const MARKER: &str = "berkutd.running";

/// The marker of a running daemon; `clean_stop` removes it.
pub struct RunMarker {
    path: PathBuf,
}

impl RunMarker {
    /// Puts the marker down; returns whether one was already there (the
    /// last run did not stop cleanly). A marker that cannot be written is
    /// logged: crash reports are lost then, nothing else.
    pub fn begin(state_dir: &Path) -> (RunMarker, bool) {
        let path = state_dir.join(MARKER);
        let crashed = path.exists();
        if let Err(e) = crate::fsutil::write_atomically(&path, b"") {
            tracing::warn!(error = %e, "cannot write the run marker; a crash will not be reported at the next start");
        }
        (RunMarker { path }, crashed)
    }

    /// The daemon stopped cleanly.
    pub fn clean_stop(self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            tracing::warn!(error = %e, "cannot remove the run marker; the next start will report a crash");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_left_behind_means_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let (m, crashed) = RunMarker::begin(dir.path());
        assert!(!crashed, "first start");
        m.clean_stop();
        let (m, crashed) = RunMarker::begin(dir.path());
        assert!(!crashed, "after a clean stop");
        drop(m); // a crash: never stopped cleanly
        let (_m, crashed) = RunMarker::begin(dir.path());
        assert!(crashed);
    }
}
