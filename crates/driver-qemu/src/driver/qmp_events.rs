//! QEMU's QMP events that libvirt 9.0 turns into domain events
//! (`qemuProcessHandle*` of `src/qemu/qemu_process.c`): RTC_CHANGE,
//! WATCHDOG, BLOCK_IO_ERROR, VNC_* and SPICE_*, DEVICE_TRAY_MOVED, WAKEUP,
//! SUSPEND, SUSPEND_DISK, BALLOON_CHANGE, VSERPORT_CHANGE (the guest
//! agent's channel), DEVICE_UNPLUG_GUEST_ERROR and MEMORY_FAILURE. What an
//! event means is decided here from the event and the live definition; the
//! monitor task records and sends it.

use migrated_core::domain::{
    event_detail, paused_reason, running_reason, DomainEventKind, DomainState, LifecycleEvent,
    StateReason,
};
use migrated_core::event::{
    agent_lifecycle, graphics_family, graphics_phase, io_error_action, memory_failure, tray_reason,
    watchdog_action, Graphics, GraphicsAddress, IoError,
};
use migrated_core::xml::{CharDevice, DomainDef};
use serde_json::Value;
use tracing::warn;

use super::agent::GUEST_AGENT_CHANNEL;
use crate::command::disk_node;
use crate::qmp::commands::QueryChardev;
use crate::qmp::Qmp;

/// `VIR_DOMAIN_PMSUSPENDED_UNKNOWN` (and `..._DISK_UNKNOWN`).
const PMSUSPENDED_UNKNOWN: i32 = 0;

/// A state change the event causes when the guest is in state `from`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Transition {
    /// The state it applies to.
    pub from: DomainState,
    /// The new state.
    pub to: StateReason,
    /// The lifecycle event, sent after the event's own ones.
    pub event: (LifecycleEvent, i32),
}

/// A change of the live definition the event reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum LiveUpdate {
    /// The balloon's new size, KiB (`<currentMemory>`).
    CurrentMemory(u64),
    /// A virtio channel's guest side opened or closed (`<target state=…>`).
    ChannelState {
        /// The channel's alias.
        alias: String,
        /// Whether the guest has it open.
        connected: bool,
    },
}

/// What one QMP event means.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct Outcome {
    /// The domain events to send, in libvirt's order.
    pub events: Vec<DomainEventKind>,
    /// The state change, if any.
    pub transition: Option<Transition>,
    /// The live definition's change, if any.
    pub live: Option<LiveUpdate>,
}

impl Outcome {
    fn events(events: Vec<DomainEventKind>) -> Self {
        Self {
            events,
            ..Self::default()
        }
    }
}

fn str_field<'a>(data: &'a Value, key: &str) -> Option<&'a str> {
    data.get(key).and_then(Value::as_str)
}

/// The meaning of QMP event `name` with `data` for a guest defined by
/// `def`; `None` for an event libvirt ignores or one whose data lacks
/// what libvirt needs (libvirt logs and drops those too).
pub(super) fn translate(name: &str, data: &Value, def: &DomainDef) -> Option<Outcome> {
    match name {
        "RTC_CHANGE" => {
            let offset = data.get("offset").and_then(Value::as_i64)?;
            Some(Outcome::events(vec![DomainEventKind::RtcChange { offset }]))
        }
        "WATCHDOG" => {
            let action = watchdog_action::from_qemu(str_field(data, "action")?)?;
            let transition = (action == watchdog_action::PAUSE).then_some(Transition {
                from: DomainState::Running,
                to: StateReason {
                    state: DomainState::Paused,
                    reason: paused_reason::WATCHDOG,
                },
                event: (LifecycleEvent::Suspended, event_detail::SUSPENDED_WATCHDOG),
            });
            Some(Outcome {
                events: vec![DomainEventKind::Watchdog { action }],
                transition,
                live: None,
            })
        }
        "BLOCK_IO_ERROR" => Some(io_error(data, def)),
        "VNC_CONNECTED" => vnc(data, graphics_phase::CONNECT),
        "VNC_INITIALIZED" => vnc(data, graphics_phase::INITIALIZE),
        "VNC_DISCONNECTED" => vnc(data, graphics_phase::DISCONNECT),
        "SPICE_CONNECTED" => spice(data, graphics_phase::CONNECT),
        "SPICE_INITIALIZED" => spice(data, graphics_phase::INITIALIZE),
        "SPICE_DISCONNECTED" => spice(data, graphics_phase::DISCONNECT),
        "DEVICE_TRAY_MOVED" => {
            let open = data.get("tray-open").and_then(Value::as_bool)?;
            let id = str_field(data, "id").filter(|s| !s.is_empty());
            let device = str_field(data, "device").filter(|s| !s.is_empty());
            let disk = def.devices.disks.iter().find(|d| {
                let alias = d.info.alias.as_deref();
                (id.is_some() && alias == id) || (device.is_some() && alias == device)
            })?;
            let reason = if open {
                tray_reason::OPEN
            } else {
                tray_reason::CLOSE
            };
            Some(Outcome::events(vec![DomainEventKind::TrayChange {
                alias: disk.info.alias.clone().unwrap_or_default(),
                reason,
            }]))
        }
        "WAKEUP" => Some(Outcome {
            events: vec![DomainEventKind::PmWakeup],
            transition: Some(Transition {
                from: DomainState::PmSuspended,
                to: StateReason {
                    state: DomainState::Running,
                    reason: running_reason::WAKEUP,
                },
                event: (LifecycleEvent::Started, event_detail::STARTED_WAKEUP),
            }),
            live: None,
        }),
        "SUSPEND" => Some(pm_suspend(
            DomainEventKind::PmSuspend,
            event_detail::PMSUSPENDED_MEMORY,
        )),
        "SUSPEND_DISK" => Some(pm_suspend(
            DomainEventKind::PmSuspendDisk,
            event_detail::PMSUSPENDED_DISK,
        )),
        "BALLOON_CHANGE" => {
            // QEMU counts bytes, libvirt KiB.
            let actual_kib = data.get("actual").and_then(Value::as_u64)? >> 10;
            Some(Outcome {
                events: vec![DomainEventKind::BalloonChange { actual_kib }],
                transition: None,
                live: Some(LiveUpdate::CurrentMemory(actual_kib)),
            })
        }
        "VSERPORT_CHANGE" => {
            let id = str_field(data, "id")?;
            let connected = data.get("open").and_then(Value::as_bool)?;
            let channel = def
                .devices
                .channels
                .iter()
                .find(|c| c.info.alias.as_deref() == Some(id))?;
            let is_agent = channel.target.as_ref().and_then(|t| t.name.as_deref())
                == Some(GUEST_AGENT_CHANNEL);
            let events = if is_agent {
                let state = if connected {
                    agent_lifecycle::CONNECTED
                } else {
                    agent_lifecycle::DISCONNECTED
                };
                vec![DomainEventKind::AgentLifecycle {
                    state,
                    reason: agent_lifecycle::REASON_CHANNEL,
                }]
            } else {
                Vec::new()
            };
            Some(Outcome {
                events,
                transition: None,
                live: Some(LiveUpdate::ChannelState {
                    alias: id.to_owned(),
                    connected,
                }),
            })
        }
        "DEVICE_UNPLUG_GUEST_ERROR" => {
            let alias = str_field(data, "device").filter(|s| !s.is_empty())?;
            Some(Outcome::events(vec![
                DomainEventKind::DeviceRemovalFailed {
                    alias: alias.to_owned(),
                },
            ]))
        }
        "MEMORY_FAILURE" => {
            let recipient = memory_failure::recipient_from_qemu(str_field(data, "recipient")?)?;
            let action = memory_failure::action_from_qemu(str_field(data, "action")?)?;
            let flag = |name: &str| {
                data.get("flags")
                    .and_then(|f| f.get(name))
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
            };
            let mut flags = 0;
            if flag("action-required") {
                flags |= memory_failure::FLAG_ACTION_REQUIRED;
            }
            if flag("recursive") {
                flags |= memory_failure::FLAG_RECURSIVE;
            }
            Some(Outcome::events(vec![DomainEventKind::MemoryFailure {
                recipient,
                action,
                flags,
            }]))
        }
        _ => None,
    }
}

fn pm_suspend(event: DomainEventKind, detail: i32) -> Outcome {
    Outcome {
        events: vec![event],
        transition: Some(Transition {
            from: DomainState::Running,
            to: StateReason {
                state: DomainState::PmSuspended,
                reason: PMSUSPENDED_UNKNOWN,
            },
            event: (LifecycleEvent::PmSuspended, detail),
        }),
        live: None,
    }
}

/// BLOCK_IO_ERROR: IO_ERROR then IO_ERROR_REASON about the disk QEMU names
/// (by device id, else by node name; `""` for both path and alias when
/// unknown), and a pause when QEMU stopped the guest for it.
fn io_error(data: &Value, def: &DomainDef) -> Outcome {
    let device = str_field(data, "device").filter(|s| !s.is_empty());
    let node = str_field(data, "node-name");
    let disk = def.devices.disks.iter().find(|d| match device {
        Some(id) => d.info.alias.as_deref() == Some(id),
        None => node.is_some_and(|n| n == disk_node(&d.target.dev)),
    });
    let action = io_error_action::from_qemu(str_field(data, "action").unwrap_or("ignore"));
    let reason = if data.get("nospace").and_then(Value::as_bool) == Some(true) {
        "enospc"
    } else {
        ""
    };
    let error = IoError {
        src_path: disk
            .and_then(|d| d.source.as_ref())
            .map(|s| s.path.clone())
            .unwrap_or_default(),
        dev_alias: disk.and_then(|d| d.info.alias.clone()).unwrap_or_default(),
        action,
        reason: reason.to_owned(),
    };
    let transition = (action == io_error_action::PAUSE).then_some(Transition {
        from: DomainState::Running,
        to: StateReason {
            state: DomainState::Paused,
            reason: paused_reason::IOERROR,
        },
        event: (LifecycleEvent::Suspended, event_detail::SUSPENDED_IOERROR),
    });
    Outcome {
        events: vec![
            DomainEventKind::IoError(error.clone()),
            DomainEventKind::IoErrorReason(error),
        ],
        transition,
        live: None,
    }
}

/// One end of a VNC or SPICE connection; SPICE names its port `port`.
fn address(end: &Value, port_key: &str) -> Option<GraphicsAddress> {
    Some(GraphicsAddress {
        family: graphics_family::from_qemu(str_field(end, "family")?)?,
        node: str_field(end, "host")?.to_owned(),
        service: str_field(end, port_key)?.to_owned(),
    })
}

fn graphics_event(data: &Value, phase: i32, port_key: &str) -> Option<Outcome> {
    let server = data.get("server")?;
    let client = data.get("client")?;
    let mut subject = Vec::new();
    if let Some(dname) = str_field(client, "x509_dname") {
        subject.push(("x509dname".to_owned(), dname.to_owned()));
    }
    if let Some(user) = str_field(client, "sasl_username") {
        subject.push(("saslUsername".to_owned(), user.to_owned()));
    }
    Some(Outcome::events(vec![DomainEventKind::Graphics(Box::new(
        Graphics {
            phase,
            local: address(server, port_key)?,
            remote: address(client, port_key)?,
            auth_scheme: str_field(server, "auth").unwrap_or_default().to_owned(),
            subject,
        },
    ))]))
}

fn vnc(data: &Value, phase: i32) -> Option<Outcome> {
    graphics_event(data, phase, "service")
}

fn spice(data: &Value, phase: i32) -> Option<Outcome> {
    graphics_event(data, phase, "port")
}

/// As libvirt's `qemuProcessRefreshChannelVirtioState` at start: records
/// whether the guest side of each virtio channel is open (`<target
/// state=…>`, from `query-chardev`'s `frontend-open`) and returns the
/// AGENT_LIFECYCLE event of the guest agent's channel (reason "domain
/// started"), if the guest has one and QEMU says.
pub(super) async fn record_channel_states(
    qmp: &Qmp,
    def: &mut DomainDef,
) -> Option<DomainEventKind> {
    let virtio =
        |c: &CharDevice| c.target.as_ref().and_then(|t| t.kind.as_deref()) == Some("virtio");
    if !def.devices.channels.iter().any(virtio) {
        return None;
    }
    let chardevs = match qmp.execute(&QueryChardev).await {
        Ok(chardevs) => chardevs,
        Err(e) => {
            warn!(error = %e.chain(), "cannot read the channels' state");
            return None;
        }
    };
    let mut event = None;
    for channel in def.devices.channels.iter_mut().filter(|c| virtio(c)) {
        let Some(alias) = channel.info.alias.as_deref() else {
            continue;
        };
        let label = format!("char{alias}");
        let Some(open) = chardevs
            .iter()
            .find(|c| c.label == label)
            .and_then(|c| c.frontend_open)
        else {
            continue;
        };
        let Some(target) = channel.target.as_mut() else {
            continue;
        };
        target.state = Some(if open { "connected" } else { "disconnected" }.to_owned());
        if target.name.as_deref() == Some(GUEST_AGENT_CHANNEL) {
            event = Some(DomainEventKind::AgentLifecycle {
                state: if open {
                    agent_lifecycle::CONNECTED
                } else {
                    agent_lifecycle::DISCONNECTED
                },
                reason: agent_lifecycle::REASON_DOMAIN_STARTED,
            });
        }
    }
    event
}

#[cfg(test)]
mod tests;
