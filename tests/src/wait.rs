//! Bounded waiting: tests never sleep blindly.

use std::time::{Duration, Instant};

/// Polls `ready` every 20 ms until it returns `Some`, or panics after
/// `timeout` naming `what` was awaited.
///
/// # Panics
/// When the deadline passes.
pub fn wait_until<T>(timeout: Duration, what: &str, mut ready: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = ready() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
