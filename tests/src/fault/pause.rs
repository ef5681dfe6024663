//! Driving a daemon's migration pause points (`crates/core/src/migration/fault.rs`)
//! from a test: ask for a point through `<state_dir>/pause-at`, wait for the
//! daemon's marker `<state_dir>/paused-at-<point>`, release it by removing the
//! marker. Only daemons built with debug assertions (the tests' default) or
//! the `fault-injection` feature honour them.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// File naming the point the daemon should hold at.
const REQUEST_FILE: &str = "pause-at";
/// Prefix of the marker the daemon writes when it holds.
const MARKER_PREFIX: &str = "paused-at-";

/// The migration points a daemon can hold at, in the order a migration
/// reaches them (names as the daemon spells them).
pub const POINTS: [&str; 7] = [
    "begin",
    "prepare",
    "perform-start",
    "perform-mid",
    "perform-done",
    "finish",
    "confirm",
];

/// The marker the daemon writes when held at `point`.
pub fn marker(state_dir: &Path, point: &str) -> PathBuf {
    state_dir.join(format!("{MARKER_PREFIX}{point}"))
}

/// Asks the daemon owning `state_dir` to hold its next migration at `point`.
///
/// # Panics
/// When the request file cannot be written.
pub fn request(state_dir: &Path, point: &str) {
    assert!(POINTS.contains(&point), "unknown pause point {point}");
    std::fs::write(state_dir.join(REQUEST_FILE), point).expect("write pause request");
}

/// Waits (bounded by `timeout`) until the daemon holds at `point`.
pub fn wait_held(state_dir: &Path, point: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let marker = marker(state_dir, point);
    while Instant::now() < deadline {
        if marker.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

/// Withdraws any request and lets a held migration go on.
pub fn release(state_dir: &Path) {
    let _ = std::fs::remove_file(state_dir.join(REQUEST_FILE));
    for point in POINTS {
        let _ = std::fs::remove_file(marker(state_dir, point));
    }
}
