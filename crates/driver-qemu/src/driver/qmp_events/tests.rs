use migrated_core::event::IoError;
use serde_json::json;

use super::*;

/// A live definition with aliases as the driver sets them at start.
fn live_def() -> DomainDef {
    let mut def = DomainDef::parse(
        "<domain type='kvm'><name>g</name><memory unit='KiB'>262144</memory>
         <os><type arch='x86_64' machine='pc'>hvm</type></os>
         <devices>
           <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
             <source file='/img/g.qcow2'/><target dev='vda' bus='virtio'/></disk>
           <disk type='file' device='cdrom'><source file='/img/cd.iso'/>
             <target dev='sda' bus='sata'/><readonly/></disk>
           <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
           <channel type='unix'><target type='virtio' name='org.example.other'/></channel>
         </devices></domain>",
    )
    .expect("valid XML");
    crate::spec::set_aliases(&mut def);
    def
}

fn one_event(name: &str, data: Value) -> DomainEventKind {
    let out = translate(name, &data, &live_def()).expect("mapped");
    assert_eq!(out.events.len(), 1, "{out:?}");
    out.events[0].clone()
}

#[test]
fn rtc_change_carries_qemus_offset() {
    assert_eq!(
        one_event("RTC_CHANGE", json!({"offset": -3600})),
        DomainEventKind::RtcChange { offset: -3600 }
    );
    assert!(translate("RTC_CHANGE", &json!({}), &live_def()).is_none());
}

#[test]
fn watchdog_pause_also_pauses_a_running_guest() {
    let out = translate("WATCHDOG", &json!({"action": "pause"}), &live_def()).expect("mapped");
    assert_eq!(out.events, [DomainEventKind::Watchdog { action: 1 }]);
    let t = out.transition.expect("pauses");
    assert_eq!(t.from, DomainState::Running);
    assert_eq!(
        (t.to.state, t.to.reason),
        (DomainState::Paused, paused_reason::WATCHDOG)
    );
    assert_eq!(t.event, (LifecycleEvent::Suspended, 3));
    let reset = translate("WATCHDOG", &json!({"action": "reset"}), &live_def()).expect("mapped");
    assert_eq!(reset.events, [DomainEventKind::Watchdog { action: 2 }]);
    assert!(reset.transition.is_none());
}

#[test]
fn block_io_error_names_the_disk_by_node_and_sends_both_events() {
    let out = translate(
        "BLOCK_IO_ERROR",
        &json!({"device": "", "node-name": "drive-vda", "operation": "write",
                "action": "stop", "nospace": true, "reason": "No space left on device"}),
        &live_def(),
    )
    .expect("mapped");
    let error = IoError {
        src_path: "/img/g.qcow2".into(),
        dev_alias: "vda".into(),
        action: io_error_action::PAUSE,
        reason: "enospc".into(),
    };
    assert_eq!(
        out.events,
        [
            DomainEventKind::IoError(error.clone()),
            DomainEventKind::IoErrorReason(error)
        ]
    );
    let t = out.transition.expect("pauses");
    assert_eq!(
        (t.to.reason, t.event.1),
        (paused_reason::IOERROR, event_detail::SUSPENDED_IOERROR)
    );
}

#[test]
fn block_io_error_on_an_unknown_node_reports_empty_names_and_no_pause_for_report() {
    let out = translate(
        "BLOCK_IO_ERROR",
        &json!({"device": "", "node-name": "#block123", "operation": "read",
                "action": "report", "nospace": false}),
        &live_def(),
    )
    .expect("mapped");
    let DomainEventKind::IoErrorReason(e) = &out.events[1] else {
        panic!("{out:?}")
    };
    assert_eq!(
        (
            e.src_path.as_str(),
            e.dev_alias.as_str(),
            e.action,
            e.reason.as_str()
        ),
        ("", "", io_error_action::REPORT, "")
    );
    assert!(out.transition.is_none());
}

#[test]
fn vnc_events_carry_both_ends_auth_and_identities() {
    let server = json!({"host": "127.0.0.1", "service": "5900", "family": "ipv4",
                        "websocket": false, "auth": "none"});
    let client = json!({"host": "127.0.0.1", "service": "41234", "family": "ipv4",
                        "websocket": false, "sasl_username": "joe"});
    let DomainEventKind::Graphics(g) = one_event(
        "VNC_INITIALIZED",
        json!({"server": server, "client": client}),
    ) else {
        panic!("not graphics")
    };
    assert_eq!(g.phase, graphics_phase::INITIALIZE);
    assert_eq!(
        (
            g.local.family,
            g.local.node.as_str(),
            g.local.service.as_str()
        ),
        (0, "127.0.0.1", "5900")
    );
    assert_eq!(g.remote.service, "41234");
    assert_eq!(g.auth_scheme, "none");
    assert_eq!(g.subject, [("saslUsername".to_owned(), "joe".to_owned())]);
    assert!(translate("VNC_CONNECTED", &json!({"server": {}}), &live_def()).is_none());
}

#[test]
fn spice_events_read_the_port_field() {
    let end = |port: &str| json!({"host": "::1", "port": port, "family": "ipv6"});
    let DomainEventKind::Graphics(g) = one_event(
        "SPICE_DISCONNECTED",
        json!({"server": end("5901"), "client": end("5000")}),
    ) else {
        panic!("not graphics")
    };
    assert_eq!(g.phase, graphics_phase::DISCONNECT);
    assert_eq!((g.local.family, g.local.service.as_str()), (1, "5901"));
    assert_eq!(g.auth_scheme, "");
}

#[test]
fn tray_moves_name_the_disk_by_its_device_id() {
    assert_eq!(
        one_event(
            "DEVICE_TRAY_MOVED",
            json!({"device": "", "id": "sda", "tray-open": true})
        ),
        DomainEventKind::TrayChange {
            alias: "sda".into(),
            reason: tray_reason::OPEN
        }
    );
    assert!(translate(
        "DEVICE_TRAY_MOVED",
        &json!({"device": "", "id": "nope", "tray-open": false}),
        &live_def()
    )
    .is_none());
}

#[test]
fn pm_events_move_between_running_and_pmsuspended() {
    let out = translate("SUSPEND", &json!({}), &live_def()).expect("mapped");
    assert_eq!(out.events, [DomainEventKind::PmSuspend]);
    let t = out.transition.expect("suspends");
    assert_eq!(
        (t.from, t.to.state, t.event),
        (
            DomainState::Running,
            DomainState::PmSuspended,
            (LifecycleEvent::PmSuspended, 0)
        )
    );
    let disk = translate("SUSPEND_DISK", &json!({}), &live_def()).expect("mapped");
    assert_eq!(disk.events, [DomainEventKind::PmSuspendDisk]);
    assert_eq!(disk.transition.expect("suspends").event.1, 1);
    let wake = translate("WAKEUP", &json!({}), &live_def()).expect("mapped");
    assert_eq!(wake.events, [DomainEventKind::PmWakeup]);
    let t = wake.transition.expect("wakes");
    assert_eq!(
        (t.from, t.to.reason, t.event),
        (
            DomainState::PmSuspended,
            running_reason::WAKEUP,
            (LifecycleEvent::Started, 4)
        )
    );
}

#[test]
fn balloon_change_is_in_kib_and_updates_current_memory() {
    let out = translate(
        "BALLOON_CHANGE",
        &json!({"actual": 134_217_728u64}),
        &live_def(),
    )
    .expect("mapped");
    assert_eq!(
        out.events,
        [DomainEventKind::BalloonChange {
            actual_kib: 131_072
        }]
    );
    assert_eq!(out.live, Some(LiveUpdate::CurrentMemory(131_072)));
}

#[test]
fn only_the_agent_channel_sends_agent_lifecycle() {
    let out = translate(
        "VSERPORT_CHANGE",
        &json!({"id": "channel0", "open": true}),
        &live_def(),
    )
    .expect("mapped");
    assert_eq!(
        out.events,
        [DomainEventKind::AgentLifecycle {
            state: agent_lifecycle::CONNECTED,
            reason: agent_lifecycle::REASON_CHANNEL
        }]
    );
    let other = translate(
        "VSERPORT_CHANGE",
        &json!({"id": "channel1", "open": false}),
        &live_def(),
    )
    .expect("mapped");
    assert!(other.events.is_empty());
    assert_eq!(
        other.live,
        Some(LiveUpdate::ChannelState {
            alias: "channel1".into(),
            connected: false
        })
    );
}

#[test]
fn unplug_refusal_and_memory_failure_map_as_libvirt() {
    assert_eq!(
        one_event(
            "DEVICE_UNPLUG_GUEST_ERROR",
            json!({"device": "net1", "path": "/machine/peripheral/net1"})
        ),
        DomainEventKind::DeviceRemovalFailed {
            alias: "net1".into()
        }
    );
    assert_eq!(
        one_event(
            "MEMORY_FAILURE",
            json!({"recipient": "guest", "action": "inject",
                   "flags": {"action-required": true, "recursive": true}})
        ),
        DomainEventKind::MemoryFailure {
            recipient: 1,
            action: 1,
            flags: 3
        }
    );
    assert!(translate("STOP", &json!({}), &live_def()).is_none());
}
