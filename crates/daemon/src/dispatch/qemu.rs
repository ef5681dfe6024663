//! libvirt's QEMU program (`QEMU_PROGRAM`, 0x20008087) on the same
//! connections as the remote program: what `libvirt-qemu` calls (`virsh
//! qemu-monitor-command`, `qemu-agent-command`, `qemu-monitor-event`,
//! python's `libvirt_qemu`), as libvirtd's qemuDispatch* functions.
//!
//! Access as libvirt 9.0's: every call is refused on read-only connections
//! ("read only access prevents virDomainQemuMonitorCommand",
//! "... virConnectDomainQemuMonitorEventRegister", ...). `DOMAIN_ATTACH` is answered "not supported" (libvirt removed
//! attaching to outside QEMU processes). Monitor-event registrations live
//! per connection; one task per connection forwards the driver's QMP events
//! that match a registration's guest and event filter as
//! `QEMU_PROC_DOMAIN_MONITOR_EVENT` messages.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use migrated_core::qemu_monitor::{MonitorEvent, EVENT_REGISTER_NOCASE, EVENT_REGISTER_REGEX};
use migrated_proto::{
    QemuCall, QemuConnectDomainMonitorEventDeregisterArgs,
    QemuConnectDomainMonitorEventRegisterArgs, QemuConnectDomainMonitorEventRegisterRet,
    QemuDomainAgentCommandRet, QemuDomainMonitorCommandRet, QemuDomainMonitorEventMsg,
    QemuProcedure, QEMU_PROGRAM,
};
use migrated_rpc::{ConnHandle, WireError};
use serde::Serialize;
use uuid::Uuid;

use super::{from_wire_dom, to_wire_dom};
use crate::handler::Session;
use crate::wire::{self, rpc_internal, to_wire_error};

/// The libvirt API behind a QEMU-program procedure (for "read only access
/// prevents ..." and "not supported" messages).
pub fn api_name(proc_: QemuProcedure) -> &'static str {
    match proc_ {
        QemuProcedure::DomainMonitorCommand => "virDomainQemuMonitorCommand",
        QemuProcedure::DomainAttach => "virDomainQemuAttach",
        QemuProcedure::DomainAgentCommand => "virDomainQemuAgentCommand",
        QemuProcedure::ConnectDomainMonitorEventRegister => {
            "virConnectDomainQemuMonitorEventRegister"
        }
        QemuProcedure::ConnectDomainMonitorEventDeregister => {
            "virConnectDomainQemuMonitorEventDeregister"
        }
        QemuProcedure::DomainMonitorEvent => "virConnectDomainQemuMonitorEventCallback",
    }
}

/// Which event names a registration wants.
#[derive(Debug, Clone)]
enum EventFilter {
    /// Every event.
    All,
    /// This name exactly, or ignoring ASCII case.
    Name { name: String, nocase: bool },
    /// Names the expression finds a match in (flag REGEX, as libvirt's
    /// regexec without anchors).
    Pattern(regex::Regex),
}

impl EventFilter {
    /// The filter of a registration, as libvirt's
    /// virDomainQemuMonitorEventStateRegisterID.
    ///
    /// # Errors
    /// Unknown flags, and an expression that does not compile
    /// (`VIR_ERR_INVALID_ARG` "failed to compile regex").
    fn new(event: Option<&str>, flags: u32) -> Result<Self, migrated_core::Error> {
        migrated_core::flags::check_flags(
            "virConnectDomainQemuMonitorEventRegister",
            u64::from(flags),
            u64::from(EVENT_REGISTER_REGEX | EVENT_REGISTER_NOCASE),
        )?;
        let nocase = flags & EVENT_REGISTER_NOCASE != 0;
        Ok(match event {
            None => EventFilter::All,
            Some(pattern) if flags & EVENT_REGISTER_REGEX != 0 => {
                let re = regex::RegexBuilder::new(pattern)
                    .case_insensitive(nocase)
                    .build()
                    .map_err(|e| migrated_core::Error::InvalidValue {
                        reason: format!("failed to compile regex '{pattern}': {e}"),
                    })?;
                EventFilter::Pattern(re)
            }
            Some(name) => EventFilter::Name {
                name: name.to_owned(),
                nocase,
            },
        })
    }

    fn matches(&self, event: &str) -> bool {
        match self {
            EventFilter::All => true,
            EventFilter::Name { name, nocase: true } => name.eq_ignore_ascii_case(event),
            EventFilter::Name {
                name,
                nocase: false,
            } => name == event,
            EventFilter::Pattern(re) => re.is_match(event),
        }
    }
}

/// One monitor-event registration.
#[derive(Debug, Clone)]
struct Registration {
    id: i32,
    /// Only this guest's events, when set.
    dom: Option<Uuid>,
    filter: EventFilter,
}

/// The monitor-event registrations of one connection.
#[derive(Debug, Default)]
pub struct MonitorRegistrations {
    list: Vec<Registration>,
    next_id: i32,
    /// Whether the forwarding task runs.
    forwarding: bool,
}

impl MonitorRegistrations {
    /// The messages `event` produces, one per matching registration.
    fn messages_for(&self, event: &MonitorEvent) -> Vec<QemuDomainMonitorEventMsg> {
        let dom = to_wire_dom(&event.dom);
        self.list
            .iter()
            .filter(|r| r.dom.map_or(true, |uuid| uuid == event.dom.uuid))
            .filter(|r| r.filter.matches(&event.event))
            .map(|r| QemuDomainMonitorEventMsg {
                callback_id: r.id,
                dom: dom.clone(),
                event: event.event.clone(),
                seconds: event.seconds,
                micros: event.micros,
                details: event.details.clone(),
            })
            .collect()
    }
}

fn lock(regs: &Mutex<MonitorRegistrations>) -> std::sync::MutexGuard<'_, MonitorRegistrations> {
    // Plain data; a panicked holder leaves it consistent enough to keep serving.
    regs.lock().unwrap_or_else(|e| e.into_inner())
}

fn encode<T: Serialize>(proc_: QemuProcedure, ret: &T) -> Result<Bytes, WireError> {
    migrated_xdr::to_bytes(ret)
        .map(Bytes::from)
        .map_err(|err| wire::cannot_encode(proc_.name(), &err))
}

/// Checks read-only and open state for `proc_`, as the remote program's gate.
///
/// # Errors
/// `VIR_ERR_OPERATION_DENIED` "read only access prevents ..." or
/// "hypervisor connection not open".
pub fn gate(session: &Session, proc_: QemuProcedure) -> Result<(), WireError> {
    if session.is_readonly() && !proc_.info().readonly {
        return Err(wire::read_only(api_name(proc_)));
    }
    session.driver()?;
    Ok(())
}

/// Runs one call of the QEMU program and encodes its reply.
///
/// # Errors
/// The call's `remote_error`.
pub async fn run(
    session: &Session,
    proc_: QemuProcedure,
    payload: &[u8],
) -> Result<Bytes, WireError> {
    gate(session, proc_)?;
    let call =
        QemuCall::decode(proc_, payload).map_err(|err| wire::bad_arguments(proc_.name(), &err))?;
    let driver = session.driver()?.driver;
    match call {
        QemuCall::DomainMonitorCommand(a) => {
            let result = driver
                .qemu_monitor_command(&from_wire_dom(&a.dom), &a.cmd, a.flags)
                .await
                .map_err(|e| to_wire_error(&e))?;
            encode(proc_, &QemuDomainMonitorCommandRet { result })
        }
        QemuCall::DomainAttach(_) => Err(wire::not_supported(api_name(proc_))),
        QemuCall::DomainAgentCommand(a) => {
            let result = driver
                .qemu_agent_command(&from_wire_dom(&a.dom), &a.cmd, a.timeout, a.flags)
                .await
                .map_err(|e| to_wire_error(&e))?;
            encode(proc_, &QemuDomainAgentCommandRet { result })
        }
        QemuCall::ConnectDomainMonitorEventRegister(a) => {
            let ret = register(session, a)?;
            encode(proc_, &ret)
        }
        QemuCall::ConnectDomainMonitorEventDeregister(a) => {
            deregister(session, &a)?;
            encode(proc_, &())
        }
    }
}

/// CONNECT_DOMAIN_MONITOR_EVENT_REGISTER (4).
///
/// # Errors
/// "not supported" for a driver without QMP events (libvirt's test
/// driver), unknown flags, a bad expression.
fn register(
    session: &Session,
    a: QemuConnectDomainMonitorEventRegisterArgs,
) -> Result<QemuConnectDomainMonitorEventRegisterRet, WireError> {
    let filter = EventFilter::new(a.event.as_deref(), a.flags).map_err(|e| to_wire_error(&e))?;
    let regs = Arc::clone(session.monitor_events());
    let start = {
        let guard = lock(&regs);
        !guard.forwarding
    };
    if start {
        let rx = session
            .driver()?
            .driver
            .subscribe_monitor_events()
            .map_err(|e| to_wire_error(&e))?;
        let mut guard = lock(&regs);
        if !guard.forwarding {
            guard.forwarding = true;
            tokio::spawn(forward(rx, Arc::clone(&regs), session.handle().clone()));
        }
    }
    let mut guard = lock(&regs);
    let id = guard.next_id;
    guard.next_id += 1;
    guard.list.push(Registration {
        id,
        dom: a.dom.map(|d| Uuid::from_bytes(d.uuid)),
        filter,
    });
    Ok(QemuConnectDomainMonitorEventRegisterRet { callback_id: id })
}

/// CONNECT_DOMAIN_MONITOR_EVENT_DEREGISTER (5).
///
/// # Errors
/// `VIR_ERR_INTERNAL_ERROR` for an id not registered, as libvirtd.
fn deregister(
    session: &Session,
    a: &QemuConnectDomainMonitorEventDeregisterArgs,
) -> Result<(), WireError> {
    let mut regs = lock(session.monitor_events());
    let before = regs.list.len();
    regs.list.retain(|r| r.id != a.callback_id);
    if regs.list.len() == before {
        return Err(rpc_internal(format!(
            "qemu monitor event callback {} not registered",
            a.callback_id
        )));
    }
    Ok(())
}

/// Sends each QMP event to this connection's matching registrations until
/// the connection closes.
async fn forward(
    rx: tokio::sync::broadcast::Receiver<MonitorEvent>,
    regs: Arc<Mutex<MonitorRegistrations>>,
    handle: ConnHandle,
) {
    let proc_ = QemuProcedure::DomainMonitorEvent as i32;
    super::events::forward_messages(rx, handle, "qemu monitor events", move |event| {
        lock(&regs)
            .messages_for(event)
            .iter()
            .filter_map(|msg| match migrated_xdr::to_bytes(msg) {
                Ok(bytes) => Some((QEMU_PROGRAM, proc_, Bytes::from(bytes))),
                Err(err) => {
                    tracing::warn!(error = %err, "monitor event not sent: it does not encode");
                    None
                }
            })
            .collect()
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use migrated_core::domain::DomainRef;
    use migrated_core::error::ErrorCode;

    fn event(uuid: Uuid, name: &str) -> MonitorEvent {
        MonitorEvent {
            dom: DomainRef {
                name: "g".into(),
                uuid,
                id: 2,
            },
            event: name.into(),
            seconds: 10,
            micros: 20,
            details: Some("{}".into()),
        }
    }

    fn registration(id: i32, dom: Option<Uuid>, event: Option<&str>, flags: u32) -> Registration {
        Registration {
            id,
            dom,
            filter: EventFilter::new(event, flags).expect("valid filter"),
        }
    }

    #[test]
    fn events_reach_registrations_by_guest_name_case_and_pattern() {
        let a = Uuid::from_u128(1);
        let b = Uuid::from_u128(2);
        let regs = MonitorRegistrations {
            list: vec![
                registration(0, None, None, 0),
                registration(1, Some(b), None, 0),
                registration(2, None, Some("STOP"), 0),
                registration(3, None, Some("stop"), 0),
                registration(4, None, Some("stop"), EVENT_REGISTER_NOCASE),
                registration(5, None, Some("^ST"), EVENT_REGISTER_REGEX),
                registration(6, None, Some("^st"), EVENT_REGISTER_REGEX),
                registration(
                    7,
                    None,
                    Some("^st"),
                    EVENT_REGISTER_REGEX | EVENT_REGISTER_NOCASE,
                ),
            ],
            next_id: 8,
            forwarding: true,
        };
        let ids = |e: &MonitorEvent| -> Vec<i32> {
            regs.messages_for(e).iter().map(|m| m.callback_id).collect()
        };
        assert_eq!(ids(&event(a, "STOP")), vec![0, 2, 4, 5, 7]);
        assert_eq!(ids(&event(b, "RESUME")), vec![0, 1]);
        let msg = &regs.messages_for(&event(a, "STOP"))[0];
        assert_eq!(
            (msg.event.as_str(), msg.seconds, msg.micros),
            ("STOP", 10, 20)
        );
        assert_eq!(msg.details.as_deref(), Some("{}"));
        // The message encodes as libvirt's qemu_domain_monitor_event_msg:
        // callback id first.
        let bytes = migrated_xdr::to_bytes(msg).expect("encodes");
        assert_eq!(&bytes[..4], &0i32.to_be_bytes());
    }

    #[test]
    fn bad_expressions_and_flags_are_refused_as_libvirt() {
        let err = EventFilter::new(Some("("), EVENT_REGISTER_REGEX).expect_err("bad regex");
        assert_eq!(err.code(), ErrorCode::InvalidArg);
        assert!(err
            .to_string()
            .starts_with("invalid argument: failed to compile regex '(': "));
        let err = EventFilter::new(None, 4).expect_err("unknown flag");
        assert_eq!(err.code(), ErrorCode::InvalidArg);
    }

    #[test]
    fn every_procedure_names_its_libvirt_api() {
        assert_eq!(
            api_name(QemuProcedure::DomainMonitorCommand),
            "virDomainQemuMonitorCommand"
        );
        assert_eq!(api_name(QemuProcedure::DomainAttach), "virDomainQemuAttach");
        // libvirt 9.0 refuses every one on a read-only connection.
        assert!(QemuProcedure::ALL.iter().all(|p| !p.info().readonly));
    }
}
