//! The MESSAGEs of the domain events that exist only in the callback form
//! or whose legacy form no libvirt 9.0 client registers for: RTC_CHANGE
//! (320), WATCHDOG (321), IO_ERROR (322), GRAPHICS (323), IO_ERROR_REASON
//! (324), TRAY_CHANGE (328), PMWAKEUP (329), PMSUSPEND (330),
//! BALLOON_CHANGE (331), PMSUSPEND_DISK (332), TUNABLE (346),
//! AGENT_LIFECYCLE (348), DEVICE_REMOVAL_FAILED (367), METADATA_CHANGE
//! (379) and MEMORY_FAILURE (423), laid out as libvirt's remote_protocol.x.

use bytes::Bytes;
use migrated_core::driver::DomainEventKind;
use migrated_core::event::{Graphics, GraphicsAddress, IoError};
use migrated_proto::{
    DomainEventBalloonChangeMsg, DomainEventCallbackAgentLifecycleMsg,
    DomainEventCallbackBalloonChangeMsg, DomainEventCallbackDeviceRemovalFailedMsg,
    DomainEventCallbackGraphicsMsg, DomainEventCallbackIoErrorMsg,
    DomainEventCallbackIoErrorReasonMsg, DomainEventCallbackMetadataChangeMsg,
    DomainEventCallbackPmsuspendDiskMsg, DomainEventCallbackPmsuspendMsg,
    DomainEventCallbackPmwakeupMsg, DomainEventCallbackRtcChangeMsg,
    DomainEventCallbackTrayChangeMsg, DomainEventCallbackTunableMsg,
    DomainEventCallbackWatchdogMsg, DomainEventGraphicsAddress, DomainEventGraphicsIdentity,
    DomainEventGraphicsMsg, DomainEventIoErrorMsg, DomainEventIoErrorReasonMsg,
    DomainEventMemoryFailureMsg, DomainEventPmsuspendDiskMsg, DomainEventPmsuspendMsg,
    DomainEventPmwakeupMsg, DomainEventRtcChangeMsg, DomainEventTrayChangeMsg,
    DomainEventWatchdogMsg, NonnullDomain, Procedure,
};

use super::encode;

fn address(a: &GraphicsAddress) -> DomainEventGraphicsAddress {
    DomainEventGraphicsAddress {
        family: a.family,
        node: a.node.clone(),
        service: a.service.clone(),
    }
}

fn graphics(dom: &NonnullDomain, g: &Graphics) -> DomainEventGraphicsMsg {
    DomainEventGraphicsMsg {
        dom: dom.clone(),
        phase: g.phase,
        local: address(&g.local),
        remote: address(&g.remote),
        auth_scheme: g.auth_scheme.clone(),
        subject: g
            .subject
            .iter()
            .map(|(kind, name)| DomainEventGraphicsIdentity {
                r#type: kind.clone(),
                name: name.clone(),
            })
            .collect(),
    }
}

fn io_error(dom: &NonnullDomain, e: &IoError) -> DomainEventIoErrorMsg {
    DomainEventIoErrorMsg {
        dom: dom.clone(),
        src_path: e.src_path.clone(),
        dev_alias: e.dev_alias.clone(),
        action: e.action,
    }
}

/// The callback MESSAGE of `kind` for callback `callback_id`; `None` for
/// the kinds `super` encodes itself (or one that does not encode).
pub(super) fn callback_message(
    callback_id: i32,
    dom: &NonnullDomain,
    kind: &DomainEventKind,
) -> Option<(Procedure, Bytes)> {
    let dom = dom.clone();
    match kind {
        DomainEventKind::RtcChange { offset } => encode(
            Procedure::DomainEventCallbackRtcChange,
            &DomainEventCallbackRtcChangeMsg {
                callback_id,
                msg: DomainEventRtcChangeMsg {
                    dom,
                    offset: *offset,
                },
            },
        ),
        DomainEventKind::Watchdog { action } => encode(
            Procedure::DomainEventCallbackWatchdog,
            &DomainEventCallbackWatchdogMsg {
                callback_id,
                msg: DomainEventWatchdogMsg {
                    dom,
                    action: *action,
                },
            },
        ),
        DomainEventKind::IoError(e) => encode(
            Procedure::DomainEventCallbackIoError,
            &DomainEventCallbackIoErrorMsg {
                callback_id,
                msg: io_error(&dom, e),
            },
        ),
        DomainEventKind::IoErrorReason(e) => encode(
            Procedure::DomainEventCallbackIoErrorReason,
            &DomainEventCallbackIoErrorReasonMsg {
                callback_id,
                msg: DomainEventIoErrorReasonMsg {
                    dom,
                    src_path: e.src_path.clone(),
                    dev_alias: e.dev_alias.clone(),
                    action: e.action,
                    reason: e.reason.clone(),
                },
            },
        ),
        DomainEventKind::Graphics(g) => encode(
            Procedure::DomainEventCallbackGraphics,
            &DomainEventCallbackGraphicsMsg {
                callback_id,
                msg: graphics(&dom, g),
            },
        ),
        DomainEventKind::TrayChange { alias, reason } => encode(
            Procedure::DomainEventCallbackTrayChange,
            &DomainEventCallbackTrayChangeMsg {
                callback_id,
                msg: DomainEventTrayChangeMsg {
                    dom,
                    dev_alias: alias.clone(),
                    reason: *reason,
                },
            },
        ),
        // libvirt's QEMU driver always sends reason 0 for the three PM events.
        DomainEventKind::PmWakeup => encode(
            Procedure::DomainEventCallbackPmwakeup,
            &DomainEventCallbackPmwakeupMsg {
                callback_id,
                reason: 0,
                msg: DomainEventPmwakeupMsg { dom },
            },
        ),
        DomainEventKind::PmSuspend => encode(
            Procedure::DomainEventCallbackPmsuspend,
            &DomainEventCallbackPmsuspendMsg {
                callback_id,
                reason: 0,
                msg: DomainEventPmsuspendMsg { dom },
            },
        ),
        DomainEventKind::PmSuspendDisk => encode(
            Procedure::DomainEventCallbackPmsuspendDisk,
            &DomainEventCallbackPmsuspendDiskMsg {
                callback_id,
                reason: 0,
                msg: DomainEventPmsuspendDiskMsg { dom },
            },
        ),
        DomainEventKind::BalloonChange { actual_kib } => encode(
            Procedure::DomainEventCallbackBalloonChange,
            &DomainEventCallbackBalloonChangeMsg {
                callback_id,
                msg: DomainEventBalloonChangeMsg {
                    dom,
                    actual: *actual_kib,
                },
            },
        ),
        DomainEventKind::Tunable { params } => encode(
            Procedure::DomainEventCallbackTunable,
            &DomainEventCallbackTunableMsg {
                callback_id,
                dom,
                params: params.clone().into_wire(),
            },
        ),
        DomainEventKind::AgentLifecycle { state, reason } => encode(
            Procedure::DomainEventCallbackAgentLifecycle,
            &DomainEventCallbackAgentLifecycleMsg {
                callback_id,
                dom,
                state: *state,
                reason: *reason,
            },
        ),
        DomainEventKind::DeviceRemovalFailed { alias } => encode(
            Procedure::DomainEventCallbackDeviceRemovalFailed,
            &DomainEventCallbackDeviceRemovalFailedMsg {
                callback_id,
                dom,
                dev_alias: alias.clone(),
            },
        ),
        DomainEventKind::MetadataChange { kind, uri } => encode(
            Procedure::DomainEventCallbackMetadataChange,
            &DomainEventCallbackMetadataChangeMsg {
                callback_id,
                dom,
                r#type: *kind,
                nsuri: uri.clone(),
            },
        ),
        DomainEventKind::MemoryFailure {
            recipient,
            action,
            flags,
        } => encode(
            Procedure::DomainEventMemoryFailure,
            &DomainEventMemoryFailureMsg {
                callback_id,
                dom,
                recipient: *recipient,
                action: *action,
                flags: *flags,
            },
        ),
        _ => None,
    }
}
