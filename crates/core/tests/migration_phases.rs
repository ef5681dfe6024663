//! Property: whatever order messages arrive in, whichever steps fail and
//! whenever either daemon restarts (recovering from its journal), the two
//! state machines never both consider the guest running.
//!
//! Both sides are modelled with the real machines and the real recovery rule.
//! Events are random; the only constraints are causal ones — a message can
//! only be sent once what it reports has happened (Finish(ok) after all data
//! was sent, Confirm(ok) after Finish succeeded, Confirm(cancelled) only when
//! Finish did not succeed), as in libvirt-wire.md §8.6.

use migrated_core::job::{
    recover, DestinationEvent, DestinationPhase, JournalEntry, Phase, RecoveryAction, SourceEvent,
    SourcePhase,
};
use proptest::prelude::*;
use uuid::Uuid;

#[derive(Debug, Clone, Copy)]
enum Ev {
    PerformStart,
    PerformOk,
    PerformFail,
    Finish { cancelled: bool },
    FinishOk,
    FinishFail,
    Confirm { cancelled: bool },
    CrashSource,
    CrashDestination,
}

fn ev() -> impl Strategy<Value = Ev> {
    prop_oneof![
        Just(Ev::PerformStart),
        Just(Ev::PerformOk),
        Just(Ev::PerformFail),
        any::<bool>().prop_map(|cancelled| Ev::Finish { cancelled }),
        Just(Ev::FinishOk),
        Just(Ev::FinishFail),
        any::<bool>().prop_map(|cancelled| Ev::Confirm { cancelled }),
        Just(Ev::CrashSource),
        Just(Ev::CrashDestination),
    ]
}

fn entry(phase: Phase) -> JournalEntry {
    JournalEntry {
        job_id: Uuid::nil(),
        name: "g".into(),
        uuid: Uuid::nil(),
        phase,
        flags: 0,
        peer_host: None,
    }
}

/// The source phase after a restart, per the recovery rule.
fn restart_source(p: SourcePhase) -> SourcePhase {
    match recover(&entry(Phase::Source(p.clone()))) {
        RecoveryAction::ResumeSource => SourcePhase::Confirm3Cancelled,
        RecoveryAction::CompleteSourceCleanup => SourcePhase::Confirm3,
        RecoveryAction::KeepPausedUntilPeerOutcome => p,
        other => panic!("source recovery gave {other:?}"),
    }
}

fn restart_destination(p: DestinationPhase) -> DestinationPhase {
    match recover(&entry(Phase::Destination(p.clone()))) {
        RecoveryAction::KillIncoming => DestinationPhase::Finish3Cancelled,
        RecoveryAction::KeepRunning => p,
        other => panic!("destination recovery gave {other:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn the_guest_never_runs_on_both_hosts(events in proptest::collection::vec(ev(), 0..40)) {
        let mut src = SourcePhase::Begin3 { offline: false };
        let mut dst = DestinationPhase::Prepare3 { offline: false };
        for e in events {
            match e {
                Ev::PerformStart => src = src.clone().advance(SourceEvent::PerformStarted).unwrap_or(src),
                Ev::PerformOk => src = src.clone().advance(SourceEvent::PerformSucceeded).unwrap_or(src),
                Ev::PerformFail => src = src.clone().advance(SourceEvent::PerformFailed).unwrap_or(src),
                // Finish(ok) is only sent once Perform succeeded (all data sent).
                Ev::Finish { cancelled: false } if src != SourcePhase::Perform3Done => {}
                Ev::Finish { cancelled } => {
                    dst = dst.clone().advance(DestinationEvent::FinishStarted { cancelled }).unwrap_or(dst)
                }
                // The data can only verify if the source sent it all and still holds it paused.
                Ev::FinishOk if src != SourcePhase::Perform3Done => {}
                Ev::FinishOk => dst = dst.clone().advance(DestinationEvent::FinishSucceeded).unwrap_or(dst),
                Ev::FinishFail => dst = dst.clone().advance(DestinationEvent::FinishFailed).unwrap_or(dst),
                // Confirm(ok) needs Finish's success; Confirm(cancelled) its absence.
                Ev::Confirm { cancelled: false } if dst != DestinationPhase::Finish3Done => {}
                Ev::Confirm { cancelled: true } if dst == DestinationPhase::Finish3Done => {}
                Ev::Confirm { cancelled: true } if dst == DestinationPhase::Finish3 => {}
                Ev::Confirm { cancelled } => {
                    src = src.clone().advance(SourceEvent::Confirmed { cancelled }).unwrap_or(src)
                }
                Ev::CrashSource => src = restart_source(src),
                Ev::CrashDestination => dst = restart_destination(dst),
            }
            prop_assert!(
                !(src.guest_may_run() && dst.guest_may_run()),
                "both run: source {:?}, destination {:?}", src, dst
            );
        }
    }
}
