//! A stand-in for systemd's notification socket: a datagram socket the test
//! binds and hands to the daemon as `NOTIFY_SOCKET`, recording every message
//! with the time it arrived, so tests can check readiness, status lines,
//! watchdog pings and their rate.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub struct NotifySocket {
    path: PathBuf,
    socket: UnixDatagram,
    received: Vec<(Instant, String)>,
}

impl NotifySocket {
    /// Binds `notify.sock` in `dir`.
    pub fn bind(dir: &Path) -> NotifySocket {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        NotifySocket {
            path,
            socket,
            received: Vec::new(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Receives one message, or `None` if none arrives within `timeout`.
    fn recv_one(&mut self, timeout: Duration) -> Option<(Instant, String)> {
        self.socket
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
            .expect("set a read timeout");
        let mut buf = vec![0u8; 4096];
        let n = self.socket.recv(&mut buf).ok()?;
        let msg = (
            Instant::now(),
            String::from_utf8_lossy(&buf[..n]).into_owned(),
        );
        self.received.push(msg.clone());
        Some(msg)
    }

    /// Waits for a message with a line for which `pred` holds, and returns
    /// that message. Panics, naming `what`, after `timeout`.
    pub fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> (Instant, String) {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!(
                    "timed out after {timeout:?} waiting for {what}; received: {:#?}",
                    self.received
                );
            }
            if let Some((at, msg)) = self.recv_one(left) {
                if msg.lines().any(&pred) {
                    return (at, msg);
                }
            }
        }
    }

    /// Receives every message that arrives within `window` and returns
    /// them (also kept in `received`): for checking that something does
    /// not come, over an observation window of a known length.
    pub fn collect_for(&mut self, window: Duration) -> Vec<(Instant, String)> {
        let deadline = Instant::now() + window;
        let mut got = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return got;
            }
            if let Some(msg) = self.recv_one(left) {
                got.push(msg);
            }
        }
    }

    /// Every message received so far, oldest first.
    pub fn received(&self) -> &[(Instant, String)] {
        &self.received
    }
}
