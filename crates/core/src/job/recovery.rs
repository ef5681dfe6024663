//! What a restarted daemon does with a job it finds in the journal.
//!
//! The rule is one `match` on the recorded phase. The invariant it keeps: the
//! guest never runs on both hosts. So a source that had already paused the guest
//! for the final copy (Perform3Done) must not resume it on its own — the
//! destination may be running it — and keeps it paused until the peer's outcome
//! is known (an operator or the peer query decides, see
//! [`Manager::resolve`](crate::migration::Manager::resolve)).

use crate::flags::MigrateFlags;
use crate::job::journal::JournalEntry;
use crate::job::phase::{DestinationPhase, Phase, SourcePhase};

/// The recovery decision for one journalled job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryAction {
    /// Source: the destination cannot have started the guest; run it here.
    ResumeSource,
    /// Source: the destination may be running the guest; keep it paused here
    /// until its outcome is known.
    KeepPausedUntilPeerOutcome,
    /// Source: confirmed; make sure the guest is stopped (and undefined as flagged) here.
    CompleteSourceCleanup,
    /// Destination: the guest never became ours; kill the incoming instance.
    KillIncoming,
    /// Destination: the guest runs here; nothing to undo.
    KeepRunning,
}

/// Decides what to do with `entry` after a restart.
pub fn recover(entry: &JournalEntry) -> RecoveryAction {
    match &entry.phase {
        Phase::Source(SourcePhase::Begin3 { .. } | SourcePhase::Perform3) => {
            RecoveryAction::ResumeSource
        }
        // A recovered post-copy migration needs no peer: the destination
        // runs the guest, and QEMU's own outcome decides (the backend stops
        // the source only once QEMU completes).
        Phase::Source(SourcePhase::Perform3Done)
            if MigrateFlags(entry.flags).contains(MigrateFlags::POSTCOPY_RESUME) =>
        {
            RecoveryAction::CompleteSourceCleanup
        }
        Phase::Source(SourcePhase::Perform3Done) => RecoveryAction::KeepPausedUntilPeerOutcome,
        Phase::Source(SourcePhase::Confirm3) => RecoveryAction::CompleteSourceCleanup,
        Phase::Source(SourcePhase::Confirm3Cancelled) => RecoveryAction::ResumeSource,
        Phase::Destination(
            DestinationPhase::Prepare3 { .. }
            | DestinationPhase::Finish3
            | DestinationPhase::Finish3Cancelled,
        ) => RecoveryAction::KillIncoming,
        Phase::Destination(DestinationPhase::Finish3Done) => RecoveryAction::KeepRunning,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn at(phase: Phase) -> RecoveryAction {
        recover(&JournalEntry {
            job_id: Uuid::nil(),
            name: "a".into(),
            uuid: Uuid::nil(),
            phase,
            flags: 0,
            peer_host: None,
        })
    }

    #[test]
    fn source_before_the_final_pause_resumes() {
        assert_eq!(
            at(Phase::Source(SourcePhase::Begin3 { offline: false })),
            RecoveryAction::ResumeSource
        );
        assert_eq!(
            at(Phase::Source(SourcePhase::Perform3)),
            RecoveryAction::ResumeSource
        );
    }

    #[test]
    fn source_after_perform_done_keeps_the_guest_paused() {
        assert_eq!(
            at(Phase::Source(SourcePhase::Perform3Done)),
            RecoveryAction::KeepPausedUntilPeerOutcome
        );
    }

    #[test]
    fn a_post_copy_recovery_after_perform_leaves_it_to_qemu() {
        let entry = JournalEntry {
            job_id: Uuid::nil(),
            name: "a".into(),
            uuid: Uuid::nil(),
            phase: Phase::Source(SourcePhase::Perform3Done),
            flags: (MigrateFlags::POSTCOPY | MigrateFlags::POSTCOPY_RESUME).bits(),
            peer_host: None,
        };
        assert_eq!(recover(&entry), RecoveryAction::CompleteSourceCleanup);
    }

    #[test]
    fn source_confirm_phases_finish_what_they_started() {
        assert_eq!(
            at(Phase::Source(SourcePhase::Confirm3)),
            RecoveryAction::CompleteSourceCleanup
        );
        assert_eq!(
            at(Phase::Source(SourcePhase::Confirm3Cancelled)),
            RecoveryAction::ResumeSource
        );
    }

    #[test]
    fn destination_kills_unfinished_incoming_guests() {
        for p in [
            DestinationPhase::Prepare3 { offline: false },
            DestinationPhase::Finish3,
            DestinationPhase::Finish3Cancelled,
        ] {
            assert_eq!(at(Phase::Destination(p)), RecoveryAction::KillIncoming);
        }
    }

    #[test]
    fn destination_after_finish_keeps_running() {
        assert_eq!(
            at(Phase::Destination(DestinationPhase::Finish3Done)),
            RecoveryAction::KeepRunning
        );
    }
}
