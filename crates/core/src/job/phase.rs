//! The two migration state machines, one per role.
//!
//! ```text
//! source:       Begin3 ──PerformStarted──▶ Perform3 ──PerformSucceeded──▶ Perform3Done
//!                 │  │                        │                             │      │
//!                 │  └Confirmed(ok, offline)  └PerformFailed               ok│      │cancelled
//!                 │         ▼                       ▼                        ▼      ▼
//!                 └─Confirmed(cancelled)──▶ Confirm3Cancelled ◀───────── Confirm3  (terminal)
//!
//! destination:  Prepare3 ──FinishStarted──▶ Finish3 ──FinishSucceeded──▶ Finish3Done
//!                                              └──FinishFailed / cancelled──▶ Finish3Cancelled
//! ```
//!
//! Names follow libvirt's phase table (`qemuMigrationJobPhase`) so logs of both
//! projects compare. A phase holds only its own data. Transitions are one
//! `match` on `(phase, event)`; every other pair is [`JobError::InvalidPhase`]
//! (`VIR_ERR_OPERATION_INVALID`). Phases are never compared numerically.

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::migration::Role;

/// A transition that the current phase does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// `event` cannot happen in `phase`.
    #[error("migration {role} job in phase {phase} cannot handle {event}")]
    InvalidPhase {
        /// Which machine.
        role: Role,
        /// The current phase name.
        phase: &'static str,
        /// The refused event name.
        event: &'static str,
    },
}

impl From<JobError> for Error {
    fn from(e: JobError) -> Self {
        Error::invalid(e.to_string())
    }
}

/// Source-side phase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SourcePhase {
    /// Begin3 done: the migratable definition and cookie went to the client.
    Begin3 {
        /// OFFLINE: no Perform will follow.
        offline: bool,
    },
    /// Data is being sent; the guest is running (live) or paused (final phase).
    Perform3,
    /// All data sent and the guest paused here; only Confirm decides its fate.
    Perform3Done,
    /// Confirmed: the guest runs on the destination and is stopped here (terminal).
    Confirm3,
    /// Cancelled: the guest runs (again) here (terminal).
    Confirm3Cancelled,
}

/// What happens to a source job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceEvent {
    /// Perform3 starts sending.
    PerformStarted,
    /// Perform3 finished sending; the guest is paused.
    PerformSucceeded,
    /// Perform3 failed or was aborted; the guest is resumed.
    PerformFailed,
    /// Confirm3 arrived.
    Confirmed {
        /// Whether the migration was cancelled.
        cancelled: bool,
    },
}

impl SourceEvent {
    fn name(self) -> &'static str {
        match self {
            SourceEvent::PerformStarted => "perform-started",
            SourceEvent::PerformSucceeded => "perform-succeeded",
            SourceEvent::PerformFailed => "perform-failed",
            SourceEvent::Confirmed { cancelled: false } => "confirm",
            SourceEvent::Confirmed { cancelled: true } => "confirm-cancelled",
        }
    }
}

impl SourcePhase {
    /// The phase name as logged and journalled.
    pub fn name(&self) -> &'static str {
        match self {
            SourcePhase::Begin3 { .. } => "begin3",
            SourcePhase::Perform3 => "perform3",
            SourcePhase::Perform3Done => "perform3_done",
            SourcePhase::Confirm3 => "confirm3",
            SourcePhase::Confirm3Cancelled => "confirm3_cancelled",
        }
    }

    /// Whether the job is over.
    pub fn is_terminal(&self) -> bool {
        matches!(self, SourcePhase::Confirm3 | SourcePhase::Confirm3Cancelled)
    }

    /// Whether the guest may be executing on the source in this phase.
    pub fn guest_may_run(&self) -> bool {
        match self {
            SourcePhase::Begin3 { .. } | SourcePhase::Perform3 | SourcePhase::Confirm3Cancelled => {
                true
            }
            SourcePhase::Perform3Done | SourcePhase::Confirm3 => false,
        }
    }

    /// The next phase after `event`.
    ///
    /// # Errors
    /// [`JobError::InvalidPhase`] for any pair not in the diagram.
    pub fn advance(self, event: SourceEvent) -> Result<Self, JobError> {
        use SourceEvent as E;
        use SourcePhase as P;
        match (&self, event) {
            (P::Begin3 { offline: false }, E::PerformStarted) => Ok(P::Perform3),
            (P::Begin3 { offline: true }, E::Confirmed { cancelled: false }) => Ok(P::Confirm3),
            (P::Begin3 { .. }, E::Confirmed { cancelled: true }) => Ok(P::Confirm3Cancelled),
            (P::Perform3, E::PerformSucceeded) => Ok(P::Perform3Done),
            (P::Perform3, E::PerformFailed) => Ok(P::Confirm3Cancelled),
            (P::Perform3Done, E::Confirmed { cancelled: false }) => Ok(P::Confirm3),
            (P::Perform3Done, E::Confirmed { cancelled: true }) => Ok(P::Confirm3Cancelled),
            _ => Err(JobError::InvalidPhase {
                role: Role::Source,
                phase: self.name(),
                event: event.name(),
            }),
        }
    }
}

/// Destination-side phase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DestinationPhase {
    /// Prepare3 done: an incoming guest exists (paused) and waits for data.
    Prepare3 {
        /// OFFLINE: no data will come, Finish only defines the config.
        offline: bool,
    },
    /// Finish3 is verifying the data and starting the guest.
    Finish3,
    /// The guest runs here (terminal).
    Finish3Done,
    /// The incoming guest was killed (terminal).
    Finish3Cancelled,
}

/// What happens to a destination job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestinationEvent {
    /// Finish3 arrived.
    FinishStarted {
        /// Whether the source says the migration was cancelled.
        cancelled: bool,
    },
    /// The guest is running (or paused as asked) on this host.
    FinishSucceeded,
    /// Verification or start failed; the incoming guest is killed.
    FinishFailed,
}

impl DestinationEvent {
    fn name(self) -> &'static str {
        match self {
            DestinationEvent::FinishStarted { cancelled: false } => "finish",
            DestinationEvent::FinishStarted { cancelled: true } => "finish-cancelled",
            DestinationEvent::FinishSucceeded => "finish-succeeded",
            DestinationEvent::FinishFailed => "finish-failed",
        }
    }
}

impl DestinationPhase {
    /// The phase name as logged and journalled.
    pub fn name(&self) -> &'static str {
        match self {
            DestinationPhase::Prepare3 { .. } => "prepare3",
            DestinationPhase::Finish3 => "finish3",
            DestinationPhase::Finish3Done => "finish3_done",
            DestinationPhase::Finish3Cancelled => "finish3_cancelled",
        }
    }

    /// Whether the job is over.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            DestinationPhase::Finish3Done | DestinationPhase::Finish3Cancelled
        )
    }

    /// Whether the guest may be executing on the destination in this phase.
    pub fn guest_may_run(&self) -> bool {
        matches!(self, DestinationPhase::Finish3Done)
    }

    /// The next phase after `event`.
    ///
    /// # Errors
    /// [`JobError::InvalidPhase`] for any pair not in the diagram.
    pub fn advance(self, event: DestinationEvent) -> Result<Self, JobError> {
        use DestinationEvent as E;
        use DestinationPhase as P;
        match (&self, event) {
            (P::Prepare3 { .. }, E::FinishStarted { cancelled: false }) => Ok(P::Finish3),
            (P::Prepare3 { .. }, E::FinishStarted { cancelled: true }) => Ok(P::Finish3Cancelled),
            (P::Finish3, E::FinishSucceeded) => Ok(P::Finish3Done),
            (P::Finish3, E::FinishFailed) => Ok(P::Finish3Cancelled),
            _ => Err(JobError::InvalidPhase {
                role: Role::Destination,
                phase: self.name(),
                event: event.name(),
            }),
        }
    }
}

/// Either machine, as stored on a job and in the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// A source job.
    Source(SourcePhase),
    /// A destination job.
    Destination(DestinationPhase),
}

impl Phase {
    /// The phase name.
    pub fn name(&self) -> &'static str {
        match self {
            Phase::Source(p) => p.name(),
            Phase::Destination(p) => p.name(),
        }
    }

    /// The role of the machine.
    pub fn role(&self) -> Role {
        match self {
            Phase::Source(_) => Role::Source,
            Phase::Destination(_) => Role::Destination,
        }
    }

    /// Whether the job is over.
    pub fn is_terminal(&self) -> bool {
        match self {
            Phase::Source(p) => p.is_terminal(),
            Phase::Destination(p) => p.is_terminal(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source_phases() -> Vec<SourcePhase> {
        vec![
            SourcePhase::Begin3 { offline: false },
            SourcePhase::Begin3 { offline: true },
            SourcePhase::Perform3,
            SourcePhase::Perform3Done,
            SourcePhase::Confirm3,
            SourcePhase::Confirm3Cancelled,
        ]
    }

    fn source_events() -> Vec<SourceEvent> {
        vec![
            SourceEvent::PerformStarted,
            SourceEvent::PerformSucceeded,
            SourceEvent::PerformFailed,
            SourceEvent::Confirmed { cancelled: false },
            SourceEvent::Confirmed { cancelled: true },
        ]
    }

    #[test]
    fn every_source_pair_is_either_in_the_table_or_invalid_phase() {
        use SourceEvent as E;
        use SourcePhase as P;
        let allowed = [
            (P::Begin3 { offline: false }, E::PerformStarted, P::Perform3),
            (
                P::Begin3 { offline: true },
                E::Confirmed { cancelled: false },
                P::Confirm3,
            ),
            (
                P::Begin3 { offline: false },
                E::Confirmed { cancelled: true },
                P::Confirm3Cancelled,
            ),
            (
                P::Begin3 { offline: true },
                E::Confirmed { cancelled: true },
                P::Confirm3Cancelled,
            ),
            (P::Perform3, E::PerformSucceeded, P::Perform3Done),
            (P::Perform3, E::PerformFailed, P::Confirm3Cancelled),
            (
                P::Perform3Done,
                E::Confirmed { cancelled: false },
                P::Confirm3,
            ),
            (
                P::Perform3Done,
                E::Confirmed { cancelled: true },
                P::Confirm3Cancelled,
            ),
        ];
        for phase in source_phases() {
            for event in source_events() {
                let expected = allowed
                    .iter()
                    .find(|(p, e, _)| *p == phase && *e == event)
                    .map(|(_, _, next)| next.clone());
                match (phase.clone().advance(event), expected) {
                    (Ok(next), Some(want)) => assert_eq!(next, want, "{phase:?} + {event:?}"),
                    (Err(JobError::InvalidPhase { phase: name, .. }), None) => {
                        assert_eq!(name, phase.name())
                    }
                    (got, want) => panic!("{phase:?} + {event:?}: got {got:?}, want {want:?}"),
                }
            }
        }
    }

    #[test]
    fn every_destination_pair_is_either_in_the_table_or_invalid_phase() {
        use DestinationEvent as E;
        use DestinationPhase as P;
        let phases = [
            P::Prepare3 { offline: false },
            P::Prepare3 { offline: true },
            P::Finish3,
            P::Finish3Done,
            P::Finish3Cancelled,
        ];
        let events = [
            E::FinishStarted { cancelled: false },
            E::FinishStarted { cancelled: true },
            E::FinishSucceeded,
            E::FinishFailed,
        ];
        let allowed = |p: &P, e: E| -> Option<P> {
            match (p, e) {
                (P::Prepare3 { .. }, E::FinishStarted { cancelled: false }) => Some(P::Finish3),
                (P::Prepare3 { .. }, E::FinishStarted { cancelled: true }) => {
                    Some(P::Finish3Cancelled)
                }
                (P::Finish3, E::FinishSucceeded) => Some(P::Finish3Done),
                (P::Finish3, E::FinishFailed) => Some(P::Finish3Cancelled),
                _ => None,
            }
        };
        let mut valid = 0;
        for p in &phases {
            for e in events {
                match (p.clone().advance(e), allowed(p, e)) {
                    (Ok(next), Some(want)) => {
                        valid += 1;
                        assert_eq!(next, want)
                    }
                    (Err(_), None) => {}
                    (got, want) => panic!("{p:?} + {e:?}: got {got:?}, want {want:?}"),
                }
            }
        }
        assert_eq!(valid, 6);
    }

    #[test]
    fn invalid_phase_is_operation_invalid_naming_phase_and_event() {
        let err: Error = SourcePhase::Confirm3
            .advance(SourceEvent::Confirmed { cancelled: false })
            .expect_err("confirm twice")
            .into();
        assert_eq!(err.code(), crate::error::ErrorCode::OperationInvalid);
        let msg = err.to_string();
        assert!(msg.contains("confirm3") && msg.contains("confirm"), "{msg}");
    }

    #[test]
    fn terminal_phases_accept_nothing() {
        for p in [SourcePhase::Confirm3, SourcePhase::Confirm3Cancelled] {
            assert!(p.is_terminal());
            for e in source_events() {
                assert!(p.clone().advance(e).is_err());
            }
        }
    }
}
