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

#[cfg(test)]
mod tests {
    use migrated_core::event::{graphics_family, graphics_phase};
    use migrated_core::typed_params::{TypedParams, TypedValue};
    use serde::de::DeserializeOwned;

    use super::*;

    fn dom() -> NonnullDomain {
        NonnullDomain {
            name: "g".into(),
            uuid: [7; 16],
            id: 4,
        }
    }

    fn decode<T: DeserializeOwned>(kind: &DomainEventKind, procedure: Procedure) -> T {
        let (got, bytes) = callback_message(9, &dom(), kind).expect("encodes");
        assert_eq!(got, procedure);
        migrated_xdr::from_bytes(&bytes).expect("decodes as libvirt's layout")
    }

    #[test]
    fn rtc_watchdog_and_balloon_nest_their_legacy_struct_after_the_callback_id() {
        let rtc: DomainEventCallbackRtcChangeMsg = decode(
            &DomainEventKind::RtcChange { offset: -7200 },
            Procedure::DomainEventCallbackRtcChange,
        );
        assert_eq!((rtc.callback_id, rtc.msg.offset), (9, -7200));
        let (_, bytes) = callback_message(9, &dom(), &DomainEventKind::RtcChange { offset: -7200 })
            .expect("encodes");
        // callbackID, name (len 1 + pad), uuid, id, then the hyper offset.
        assert_eq!(bytes.len(), 4 + 8 + 16 + 4 + 8);
        assert_eq!(&bytes[bytes.len() - 8..], &(-7200i64).to_be_bytes());
        let w: DomainEventCallbackWatchdogMsg = decode(
            &DomainEventKind::Watchdog { action: 1 },
            Procedure::DomainEventCallbackWatchdog,
        );
        assert_eq!(w.msg.action, 1);
        let b: DomainEventCallbackBalloonChangeMsg = decode(
            &DomainEventKind::BalloonChange {
                actual_kib: 524_288,
            },
            Procedure::DomainEventCallbackBalloonChange,
        );
        assert_eq!(b.msg.actual, 524_288);
    }

    #[test]
    fn io_errors_and_graphics_carry_their_strings() {
        let e = IoError {
            src_path: "/img/a.qcow2".into(),
            dev_alias: "vda".into(),
            action: 1,
            reason: "enospc".into(),
        };
        let plain: DomainEventCallbackIoErrorMsg = decode(
            &DomainEventKind::IoError(e.clone()),
            Procedure::DomainEventCallbackIoError,
        );
        assert_eq!(
            (plain.msg.src_path.as_str(), plain.msg.dev_alias.as_str()),
            ("/img/a.qcow2", "vda")
        );
        let reason: DomainEventCallbackIoErrorReasonMsg = decode(
            &DomainEventKind::IoErrorReason(e),
            Procedure::DomainEventCallbackIoErrorReason,
        );
        assert_eq!(
            (reason.msg.action, reason.msg.reason.as_str()),
            (1, "enospc")
        );
        let end = |service: &str| GraphicsAddress {
            family: graphics_family::IPV4,
            node: "127.0.0.1".into(),
            service: service.into(),
        };
        let g: DomainEventCallbackGraphicsMsg = decode(
            &DomainEventKind::Graphics(Box::new(Graphics {
                phase: graphics_phase::CONNECT,
                local: end("5900"),
                remote: end("40000"),
                auth_scheme: "none".into(),
                subject: vec![("x509dname".into(), "CN=a".into())],
            })),
            Procedure::DomainEventCallbackGraphics,
        );
        assert_eq!(g.msg.remote.service, "40000");
        assert_eq!(g.msg.subject[0].r#type, "x509dname");
    }

    #[test]
    fn pm_events_send_reason_zero_before_the_domain() {
        let w: DomainEventCallbackPmwakeupMsg = decode(
            &DomainEventKind::PmWakeup,
            Procedure::DomainEventCallbackPmwakeup,
        );
        assert_eq!((w.callback_id, w.reason, w.msg.dom.id), (9, 0, 4));
        let s: DomainEventCallbackPmsuspendMsg = decode(
            &DomainEventKind::PmSuspend,
            Procedure::DomainEventCallbackPmsuspend,
        );
        assert_eq!(s.reason, 0);
        let d: DomainEventCallbackPmsuspendDiskMsg = decode(
            &DomainEventKind::PmSuspendDisk,
            Procedure::DomainEventCallbackPmsuspendDisk,
        );
        assert_eq!(d.msg.dom.name, "g");
    }

    #[test]
    fn the_flat_callback_only_messages() {
        let params = TypedParams::new()
            .with("blkdeviotune.disk", TypedValue::String("vda".into()))
            .with("blkdeviotune.total_iops_sec", TypedValue::ULLong(100));
        let t: DomainEventCallbackTunableMsg = decode(
            &DomainEventKind::Tunable { params },
            Procedure::DomainEventCallbackTunable,
        );
        assert_eq!(t.params.len(), 2);
        let a: DomainEventCallbackAgentLifecycleMsg = decode(
            &DomainEventKind::AgentLifecycle {
                state: 1,
                reason: 2,
            },
            Procedure::DomainEventCallbackAgentLifecycle,
        );
        assert_eq!((a.state, a.reason), (1, 2));
        let r: DomainEventCallbackDeviceRemovalFailedMsg = decode(
            &DomainEventKind::DeviceRemovalFailed {
                alias: "net1".into(),
            },
            Procedure::DomainEventCallbackDeviceRemovalFailed,
        );
        assert_eq!(r.dev_alias, "net1");
        let m: DomainEventCallbackMetadataChangeMsg = decode(
            &DomainEventKind::MetadataChange {
                kind: 2,
                uri: Some("http://example.org/x".into()),
            },
            Procedure::DomainEventCallbackMetadataChange,
        );
        assert_eq!(
            (m.r#type, m.nsuri.as_deref()),
            (2, Some("http://example.org/x"))
        );
        let f: DomainEventMemoryFailureMsg = decode(
            &DomainEventKind::MemoryFailure {
                recipient: 1,
                action: 2,
                flags: 3,
            },
            Procedure::DomainEventMemoryFailure,
        );
        assert_eq!(
            (f.callback_id, f.recipient, f.action, f.flags),
            (9, 1, 2, 3)
        );
        let t = DomainEventKind::TrayChange {
            alias: "sda".into(),
            reason: 1,
        };
        let tray: DomainEventCallbackTrayChangeMsg =
            decode(&t, Procedure::DomainEventCallbackTrayChange);
        assert_eq!((tray.msg.dev_alias.as_str(), tray.msg.reason), ("sda", 1));
        assert!(callback_message(9, &dom(), &DomainEventKind::Reboot).is_none());
    }
}
