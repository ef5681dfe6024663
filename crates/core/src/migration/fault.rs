//! Test-only pause points: a daemon built for tests (debug builds or the
//! `fault-injection` feature) can be told to hold a migration at a named point,
//! so a test can kill or stop it there deterministically.
//!
//! Two ways to ask for a hold:
//! - `MIGRATED_PAUSE_AT=perform-done` in the daemon's environment
//!   ([`ManagerConfig::pause_at`](super::ManagerConfig)), for every migration;
//! - a file `<state_dir>/pause-at` holding a point's name, read at each point,
//!   so a running daemon can be told per test case (the fault-matrix tests).
//!
//! At a requested point the daemon writes the marker file
//! `<state_dir>/paused-at-<name>` and holds the migration until the marker is
//! removed (a test waits for the marker, injects its fault, then removes the
//! marker to let the daemon go on, or kills it). Release builds without the
//! feature ignore both.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use crate::error::Error;

/// Environment variable naming a [`PausePoint`].
pub const PAUSE_AT_ENV: &str = "MIGRATED_PAUSE_AT";

/// File in the state directory naming the point to hold at.
pub const PAUSE_REQUEST_FILE: &str = "pause-at";

/// Prefix of the marker file written when a point is reached.
pub const PAUSED_MARKER_PREFIX: &str = "paused-at-";

/// How often a held migration checks whether its marker is gone.
const RELEASE_POLL: Duration = Duration::from_millis(10);

/// Longest hold: a test that forgets to release must not leave a daemon
/// stuck beyond any test's lifetime.
const MAX_HOLD: Duration = Duration::from_secs(600);

/// Where a migration can be held, in the order a migration reaches them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PausePoint {
    /// Source: Begin3 checked the guest (and journalled the job under
    /// CHANGE_PROTECTION); the reply is not yet sent.
    Begin,
    /// Destination: the incoming guest exists and Prepare3 is journalled; the
    /// reply is not yet sent.
    Prepare,
    /// Source: Perform3 is journalled, nothing sent yet.
    PerformStart,
    /// Source: the first bytes of the guest were sent; sending stops while held.
    PerformMid,
    /// Source: all data sent, guest paused, Perform3Done journalled, reply not yet sent.
    PerformDone,
    /// Destination: the guest runs here and Finish3Done is journalled; the
    /// reply is not yet sent.
    Finish,
    /// Source: Confirm3 is journalled; the guest is not yet stopped or resumed.
    Confirm,
}

impl PausePoint {
    /// Every point, in the order a migration reaches them.
    pub const ALL: [PausePoint; 7] = [
        PausePoint::Begin,
        PausePoint::Prepare,
        PausePoint::PerformStart,
        PausePoint::PerformMid,
        PausePoint::PerformDone,
        PausePoint::Finish,
        PausePoint::Confirm,
    ];

    /// The point's name, as written in [`PAUSE_AT_ENV`] or [`PAUSE_REQUEST_FILE`].
    pub const fn name(self) -> &'static str {
        match self {
            PausePoint::Begin => "begin",
            PausePoint::Prepare => "prepare",
            PausePoint::PerformStart => "perform-start",
            PausePoint::PerformMid => "perform-mid",
            PausePoint::PerformDone => "perform-done",
            PausePoint::Finish => "finish",
            PausePoint::Confirm => "confirm",
        }
    }

    /// The point named in [`PAUSE_AT_ENV`], if any.
    ///
    /// # Errors
    /// [`Error::InvalidArg`] for an unknown name.
    pub fn from_env() -> Result<Option<Self>, Error> {
        match std::env::var(PAUSE_AT_ENV) {
            Ok(v) if !v.is_empty() => v.parse().map(Some),
            _ => Ok(None),
        }
    }

    /// The marker file a daemon with state directory `state_dir` writes when
    /// it holds at this point.
    pub fn marker(self, state_dir: &Path) -> PathBuf {
        state_dir.join(format!("{PAUSED_MARKER_PREFIX}{}", self.name()))
    }
}

impl FromStr for PausePoint {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        PausePoint::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                let known: Vec<_> = PausePoint::ALL.iter().map(|p| p.name()).collect();
                Error::InvalidArg {
                    operation: PAUSE_AT_ENV,
                    reason: format!(
                        "unknown migration pause point '{s}' (known: {})",
                        known.join(", ")
                    ),
                }
            })
    }
}

/// Whether pause points work in this build.
const ENABLED: bool = cfg!(any(debug_assertions, feature = "fault-injection"));

/// Whether `<state_dir>/pause-at` asks for `point`.
pub(crate) fn requested(state_dir: &Path, point: PausePoint) -> bool {
    ENABLED
        && std::fs::read_to_string(state_dir.join(PAUSE_REQUEST_FILE))
            .is_ok_and(|s| s.trim() == point.name())
}

/// Holds (test builds) at `point`: writes its marker under `state_dir` and
/// waits until the marker is removed.
pub(crate) async fn hold(state_dir: &Path, point: PausePoint) {
    if !ENABLED {
        tracing::warn!(
            point = point.name(),
            "pause points are ignored in release builds"
        );
        return;
    }
    let marker = point.marker(state_dir);
    if let Err(err) = std::fs::write(&marker, std::process::id().to_string()) {
        tracing::warn!(path = %marker.display(), error = %err, "cannot write pause marker");
    }
    tracing::warn!(
        point = point.name(),
        "migration held at pause point (test build)"
    );
    let released = async {
        while marker.exists() {
            tokio::time::sleep(RELEASE_POLL).await;
        }
    };
    if tokio::time::timeout(MAX_HOLD, released).await.is_err() {
        tracing::warn!(point = point.name(), "pause point never released; going on");
    }
    tracing::warn!(point = point.name(), "migration released from pause point");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back() {
        for p in PausePoint::ALL {
            assert_eq!(p.name().parse::<PausePoint>().expect("known"), p);
        }
        let err = "nowhere".parse::<PausePoint>().expect_err("unknown");
        assert!(err.to_string().contains("perform-mid"), "{err}");
    }

    #[tokio::test]
    async fn a_requested_point_writes_its_marker_and_waits_for_its_removal() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(!requested(dir.path(), PausePoint::Finish));
        std::fs::write(dir.path().join(PAUSE_REQUEST_FILE), "finish\n").expect("write");
        assert!(requested(dir.path(), PausePoint::Finish));
        assert!(!requested(dir.path(), PausePoint::Confirm));

        let state = dir.path().to_path_buf();
        let held = tokio::spawn(async move { hold(&state, PausePoint::Finish).await });
        let marker = PausePoint::Finish.marker(dir.path());
        for _ in 0..500 {
            if marker.exists() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(marker.exists(), "marker written");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!held.is_finished(), "still held while the marker exists");
        std::fs::remove_file(&marker).expect("release");
        tokio::time::timeout(Duration::from_secs(5), held)
            .await
            .expect("released in time")
            .expect("task");
    }
}
