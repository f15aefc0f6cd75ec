//! Polling with deadlines, the kit's only way to wait for something.
//!
//! Tests never sleep for a fixed time hoping that something has happened;
//! they poll a condition, starting at 20 ms between attempts and backing off
//! to 100 ms, and fail with a message naming what they waited for when the
//! deadline passes.

use std::future::Future;
use std::time::Duration;

/// The deadline for what takes long on a loaded machine (a backup, a
/// restore, a daemon's start): generous, since it is only reached when the
/// test fails anyway.
pub const LONG: Duration = Duration::from_secs(60);

const FIRST_INTERVAL: Duration = Duration::from_millis(20);
const MAX_INTERVAL: Duration = Duration::from_millis(100);

fn next_interval(interval: Duration) -> Duration {
    (interval * 3 / 2).min(MAX_INTERVAL)
}

/// Calls `f` until it returns `Some`, and returns that value.
///
/// Panics, naming `what`, if `timeout` passes first. `f` is always called at
/// least once, and once more after the deadline so that a condition that
/// became true during the last pause is not missed.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + timeout;
    let mut interval = FIRST_INTERVAL;
    loop {
        let expired = std::time::Instant::now() >= deadline;
        if let Some(value) = f() {
            return value;
        }
        if expired {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(interval);
        interval = next_interval(interval);
    }
}

/// The async form of [`wait_for`]: awaits `f()` until it yields `Some`,
/// pausing with `tokio::time::sleep` between attempts.
///
/// The deadline is measured with tokio's clock, so it stays meaningful in
/// tests that pause time.
pub async fn wait_for_async<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut interval = FIRST_INTERVAL;
    loop {
        let expired = tokio::time::Instant::now() >= deadline;
        if let Some(value) = f().await {
            return value;
        }
        if expired {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(interval).await;
        interval = next_interval(interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_the_first_value() {
        let mut calls = 0;
        let got = wait_for("the third call", Duration::from_secs(5), || {
            calls += 1;
            (calls == 3).then_some(calls)
        });
        assert_eq!(got, 3);
    }

    #[test]
    #[should_panic(expected = "waiting for nothing")]
    fn panics_with_the_description() {
        wait_for("nothing", Duration::from_millis(50), || None::<()>);
    }

    #[tokio::test]
    async fn async_returns_the_first_value() {
        let mut calls = 0;
        let got = wait_for_async("the second call", Duration::from_secs(5), || {
            calls += 1;
            let n = calls;
            async move { (n == 2).then_some(n) }
        })
        .await;
        assert_eq!(got, 2);
    }
}
