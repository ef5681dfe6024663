//! Test-only pause points: a daemon built for tests (debug builds or the
//! `fault-injection` feature) can be told to block forever at a named point of
//! a migration, so a test can kill it there deterministically
//! (`MIGRATED_PAUSE_AT=perform-done`, or [`ManagerConfig::pause_at`](super::ManagerConfig)).
//! Release builds without the feature ignore the setting.

use std::str::FromStr;

use crate::error::Error;

/// Environment variable naming a [`PausePoint`].
pub const PAUSE_AT_ENV: &str = "MIGRATED_PAUSE_AT";

/// Where a migration can be held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PausePoint {
    /// Source: all data sent, guest paused, Perform3Done journalled, reply not yet sent.
    PerformDone,
}

impl PausePoint {
    /// The point's name, as written in [`PAUSE_AT_ENV`].
    pub const fn name(self) -> &'static str {
        match self {
            PausePoint::PerformDone => "perform-done",
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
}

impl FromStr for PausePoint {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "perform-done" => Ok(PausePoint::PerformDone),
            other => Err(Error::InvalidArg {
                operation: PAUSE_AT_ENV,
                reason: format!("unknown migration pause point '{other}' (known: perform-done)"),
            }),
        }
    }
}

/// Blocks forever (test builds) at `point`.
pub(crate) async fn block_at(point: PausePoint) {
    if cfg!(any(debug_assertions, feature = "fault-injection")) {
        tracing::warn!(
            point = point.name(),
            "migration held at pause point (test build)"
        );
        std::future::pending::<()>().await;
    } else {
        tracing::warn!(
            point = point.name(),
            "pause points are ignored in release builds"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back() {
        let p: PausePoint = "perform-done".parse().expect("known");
        assert_eq!(p, PausePoint::PerformDone);
        assert_eq!(p.name(), "perform-done");
        assert!("nowhere".parse::<PausePoint>().is_err());
    }
}
