//! Event callbacks: registration procedures and the per-connection task
//! that forwards the driver's domain events as MESSAGEs.
//!
//! Modern clients (feature 14) register with CALLBACK_REGISTER_ANY (316)
//! and get DOMAIN_EVENT_CALLBACK_LIFECYCLE (318),
//! DOMAIN_EVENT_CALLBACK_REBOOT (319),
//! DOMAIN_EVENT_CALLBACK_DEVICE_REMOVED (333),
//! DOMAIN_EVENT_CALLBACK_DEVICE_ADDED (354),
//! DOMAIN_EVENT_CALLBACK_MIGRATION_ITERATION (359),
//! DOMAIN_EVENT_CALLBACK_JOB_COMPLETED (363) and the kinds of
//! [`payloads`] (RTC change, watchdog, I/O error, graphics, tray, PM,
//! balloon, tunable, agent lifecycle, device removal failed, metadata,
//! memory failure) carrying their callback id;
//! legacy clients register with 105 or 167 and get DOMAIN_EVENT_LIFECYCLE
//! (107), and with 167 DOMAIN_EVENT_REBOOT (169) and
//! DOMAIN_EVENT_DEVICE_REMOVED (311). As libvirtd, every id
//! libvirt 9.0 knows registers (legacy ones only up to DEVICE_REMOVED, the
//! last with a legacy message); ids no
//! driver produces simply never fire. The legacy messages of RTC change,
//! watchdog, I/O error, graphics, tray, PM and balloon events (170-173,
//! 195, 268-270, 276, 292) are not sent: libvirt 9.0's virsh and python
//! ask for feature 14 and register with 316 (see /work/shared/captures).

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use migrated_core::domain::event_id;
use migrated_core::driver::{DomainEvent, DomainEventKind};
use migrated_core::error::ErrorCode;
use migrated_proto::{
    ConnectDomainEventCallbackDeregisterAnyArgs, ConnectDomainEventCallbackRegisterAnyArgs,
    ConnectDomainEventCallbackRegisterAnyRet, ConnectDomainEventDeregisterAnyArgs,
    ConnectDomainEventDeregisterRet, ConnectDomainEventRegisterAnyArgs,
    ConnectDomainEventRegisterRet, DomainEventCallbackDeviceAddedMsg,
    DomainEventCallbackDeviceRemovedMsg, DomainEventCallbackJobCompletedMsg,
    DomainEventCallbackLifecycleMsg, DomainEventCallbackMigrationIterationMsg,
    DomainEventCallbackRebootMsg, DomainEventDeviceRemovedMsg, DomainEventLifecycleMsg,
    DomainEventRebootMsg, NonnullDomain, Procedure, REMOTE_PROGRAM,
};
use migrated_rpc::{ConnHandle, WireError};
use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use super::to_wire_dom;
use crate::handler::Session;
use crate::wire::{rpc_internal, to_wire_error};

mod payloads;

/// One CALLBACK_REGISTER_ANY registration.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Callback {
    id: i32,
    event_id: i32,
    /// Only events of this domain, when set.
    dom: Option<Uuid>,
}

/// The event registrations of one connection.
#[derive(Debug, Default)]
pub struct Registrations {
    callbacks: Vec<Callback>,
    next_id: i32,
    /// Legacy registrations (105 and 167), by event id.
    legacy: Vec<i32>,
    /// Whether the forwarding task runs.
    forwarding: bool,
}

/// `payload` encoded as the MESSAGE of `procedure`; `None` (logged) if it
/// does not encode, which only a bug can cause.
fn encode(procedure: Procedure, payload: &impl Serialize) -> Option<(Procedure, Bytes)> {
    match migrated_xdr::to_bytes(payload) {
        Ok(bytes) => Some((procedure, Bytes::from(bytes))),
        Err(err) => {
            tracing::warn!(?procedure, error = %err, "event not sent: it does not encode");
            None
        }
    }
}

/// The MESSAGE for callback `callback_id` about `dom`.
fn callback_message(
    callback_id: i32,
    dom: &NonnullDomain,
    kind: &DomainEventKind,
) -> Option<(Procedure, Bytes)> {
    match kind {
        DomainEventKind::Lifecycle { event, detail } => encode(
            Procedure::DomainEventCallbackLifecycle,
            &DomainEventCallbackLifecycleMsg {
                callback_id,
                msg: DomainEventLifecycleMsg {
                    dom: dom.clone(),
                    event: *event as i32,
                    detail: *detail,
                },
            },
        ),
        DomainEventKind::Reboot => encode(
            Procedure::DomainEventCallbackReboot,
            &DomainEventCallbackRebootMsg {
                callback_id,
                msg: DomainEventRebootMsg { dom: dom.clone() },
            },
        ),
        DomainEventKind::MigrationIteration { iteration } => encode(
            Procedure::DomainEventCallbackMigrationIteration,
            &DomainEventCallbackMigrationIterationMsg {
                callback_id,
                dom: dom.clone(),
                iteration: *iteration,
            },
        ),
        DomainEventKind::JobCompleted { stats } => encode(
            Procedure::DomainEventCallbackJobCompleted,
            &DomainEventCallbackJobCompletedMsg {
                callback_id,
                dom: dom.clone(),
                params: stats.clone().into_wire(),
            },
        ),
        DomainEventKind::DeviceAdded { alias } => encode(
            Procedure::DomainEventCallbackDeviceAdded,
            &DomainEventCallbackDeviceAddedMsg {
                callback_id,
                dom: dom.clone(),
                dev_alias: alias.clone(),
            },
        ),
        DomainEventKind::DeviceRemoved { alias } => encode(
            Procedure::DomainEventCallbackDeviceRemoved,
            &DomainEventCallbackDeviceRemovedMsg {
                callback_id,
                msg: DomainEventDeviceRemovedMsg {
                    dom: dom.clone(),
                    dev_alias: alias.clone(),
                },
            },
        ),
        other => payloads::callback_message(callback_id, dom, other),
    }
}

impl Registrations {
    /// The MESSAGEs (procedure, payload) `event` produces for these registrations.
    fn messages_for(&self, event: &DomainEvent) -> Vec<(Procedure, Bytes)> {
        let dom = to_wire_dom(&event.dom);
        let id = event.kind.id();
        let mut out: Vec<_> = self
            .callbacks
            .iter()
            .filter(|cb| cb.event_id == id && cb.dom.map_or(true, |uuid| uuid == event.dom.uuid))
            .filter_map(|cb| callback_message(cb.id, &dom, &event.kind))
            .collect();
        // Only lifecycle, reboot and device-removed events have a legacy message.
        if !self.legacy.contains(&id) {
            return out;
        }
        if let Some((event_kind, detail)) = event.as_lifecycle() {
            out.extend(encode(
                Procedure::DomainEventLifecycle,
                &DomainEventLifecycleMsg {
                    dom,
                    event: event_kind as i32,
                    detail,
                },
            ));
        } else if matches!(event.kind, DomainEventKind::Reboot) {
            out.extend(encode(
                Procedure::DomainEventReboot,
                &DomainEventRebootMsg { dom },
            ));
        } else if let DomainEventKind::DeviceRemoved { alias } = &event.kind {
            out.extend(encode(
                Procedure::DomainEventDeviceRemoved,
                &DomainEventDeviceRemovedMsg {
                    dom,
                    dev_alias: alias.clone(),
                },
            ));
        }
        out
    }
}

fn lock(regs: &Mutex<Registrations>) -> std::sync::MutexGuard<'_, Registrations> {
    // Plain data; a panicked holder leaves it consistent enough to keep serving.
    regs.lock().unwrap_or_else(|e| e.into_inner())
}

/// libvirtd's answer to an event id outside `0..=last`:
/// `VIR_ERR_INTERNAL_ERROR` "unsupported event ID N".
fn check_event_id(event_id: i32, last: i32) -> Result<(), WireError> {
    if (0..=last).contains(&event_id) {
        Ok(())
    } else {
        Err(rpc_internal(format!("unsupported event ID {event_id}")))
    }
}

/// Starts the forwarding task of `session` unless it runs already.
fn ensure_forwarding(session: &Session) -> Result<(), WireError> {
    let regs = session.events().clone();
    {
        let mut guard = lock(&regs);
        if guard.forwarding {
            return Ok(());
        }
        guard.forwarding = true;
    }
    let driver = session.driver()?.driver;
    match driver.subscribe_events() {
        Ok(rx) => {
            tokio::spawn(forward(rx, regs, session.handle().clone()));
            Ok(())
        }
        // A driver without events: registrations are kept and never fire.
        Err(e) if e.code() == ErrorCode::NoSupport => Ok(()),
        Err(e) => {
            lock(&regs).forwarding = false;
            Err(to_wire_error(&e))
        }
    }
}

/// Sends each driver event to this connection's registrations until the
/// connection closes.
async fn forward(
    rx: tokio::sync::broadcast::Receiver<DomainEvent>,
    regs: Arc<Mutex<Registrations>>,
    handle: ConnHandle,
) {
    forward_messages(rx, handle, "domain events", move |event| {
        lock(&regs)
            .messages_for(event)
            .into_iter()
            .map(|(proc_, payload)| (REMOTE_PROGRAM, proc_ as i32, payload))
            .collect()
    })
    .await;
}

/// Sends the MESSAGEs (program, procedure, payload) `messages` makes of
/// each item of `rx` on `handle` until the connection closes or `rx` ends;
/// `what` names the items in the warning about a client too slow to keep up.
pub(crate) async fn forward_messages<E: Clone>(
    mut rx: tokio::sync::broadcast::Receiver<E>,
    handle: ConnHandle,
    what: &'static str,
    mut messages: impl FnMut(&E) -> Vec<(u32, i32, Bytes)>,
) {
    loop {
        let event = tokio::select! {
            _ = handle.closed() => return,
            event = rx.recv() => event,
        };
        match event {
            Ok(event) => {
                for (program, proc_, payload) in messages(&event) {
                    if handle.send_event(program, proc_, payload).is_err() {
                        return;
                    }
                }
            }
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(
                    conn_id = handle.info().id,
                    missed,
                    what,
                    "client too slow, events dropped"
                );
            }
            Err(RecvError::Closed) => return,
        }
    }
}

/// CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY (316).
///
/// # Errors
/// `VIR_ERR_INTERNAL_ERROR` "unsupported event ID N" for an id libvirt 9.0
/// does not know, as libvirtd.
pub fn callback_register_any(
    session: &Session,
    args: ConnectDomainEventCallbackRegisterAnyArgs,
) -> Result<ConnectDomainEventCallbackRegisterAnyRet, WireError> {
    check_event_id(args.event_id, event_id::LAST - 1)?;
    let callback_id = {
        let mut regs = lock(session.events());
        let id = regs.next_id;
        regs.next_id += 1;
        regs.callbacks.push(Callback {
            id,
            event_id: args.event_id,
            dom: args.dom.map(|d| Uuid::from_bytes(d.uuid)),
        });
        id
    };
    ensure_forwarding(session)?;
    Ok(ConnectDomainEventCallbackRegisterAnyRet { callback_id })
}

/// CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY (317).
///
/// # Errors
/// `VIR_ERR_INTERNAL_ERROR` "domain event callback N not registered".
pub fn callback_deregister_any(
    session: &Session,
    args: ConnectDomainEventCallbackDeregisterAnyArgs,
) -> Result<(), WireError> {
    let mut regs = lock(session.events());
    let before = regs.callbacks.len();
    regs.callbacks.retain(|cb| cb.id != args.callback_id);
    if regs.callbacks.len() == before {
        return Err(rpc_internal(format!(
            "domain event callback {} not registered",
            args.callback_id
        )));
    }
    Ok(())
}

fn legacy_register(
    session: &Session,
    operation: &'static str,
    event_id: i32,
) -> Result<(), WireError> {
    check_event_id(event_id, event_id::DEVICE_REMOVED)?;
    {
        let mut regs = lock(session.events());
        if regs.legacy.contains(&event_id) {
            return Err(to_wire_error(&migrated_core::Error::InvalidArg {
                operation,
                reason: format!("domain event {event_id} already registered"),
            }));
        }
        regs.legacy.push(event_id);
    }
    ensure_forwarding(session)
}

fn legacy_deregister(session: &Session, event_id: i32) -> Result<(), WireError> {
    check_event_id(event_id, event_id::DEVICE_REMOVED)?;
    let mut regs = lock(session.events());
    let before = regs.legacy.len();
    regs.legacy.retain(|id| *id != event_id);
    if regs.legacy.len() == before {
        return Err(rpc_internal(format!(
            "domain event {event_id} not registered"
        )));
    }
    Ok(())
}

/// CONNECT_DOMAIN_EVENT_REGISTER (105, legacy lifecycle).
///
/// # Errors
/// INVALID_ARG when already registered.
pub fn register(session: &Session) -> Result<ConnectDomainEventRegisterRet, WireError> {
    legacy_register(
        session,
        "virConnectDomainEventRegister",
        event_id::LIFECYCLE,
    )?;
    Ok(ConnectDomainEventRegisterRet { cb_registered: 1 })
}

/// CONNECT_DOMAIN_EVENT_DEREGISTER (106, legacy lifecycle).
///
/// # Errors
/// `VIR_ERR_INTERNAL_ERROR` "domain event 0 not registered".
pub fn deregister(session: &Session) -> Result<ConnectDomainEventDeregisterRet, WireError> {
    legacy_deregister(session, event_id::LIFECYCLE)?;
    Ok(ConnectDomainEventDeregisterRet { cb_registered: 0 })
}

/// CONNECT_DOMAIN_EVENT_REGISTER_ANY (167, legacy): ids up to
/// DEVICE_REMOVED (15), as libvirtd (later ids exist only for callbacks).
///
/// # Errors
/// `VIR_ERR_INTERNAL_ERROR` "unsupported event ID N" for a later or unknown
/// id, INVALID_ARG for one already registered.
pub fn register_any(
    session: &Session,
    args: ConnectDomainEventRegisterAnyArgs,
) -> Result<(), WireError> {
    legacy_register(session, "virConnectDomainEventRegisterAny", args.event_id)
}

/// CONNECT_DOMAIN_EVENT_DEREGISTER_ANY (168, legacy).
///
/// # Errors
/// `VIR_ERR_INTERNAL_ERROR`: "unsupported event ID N" as for 167, "domain
/// event N not registered".
pub fn deregister_any(
    session: &Session,
    args: ConnectDomainEventDeregisterAnyArgs,
) -> Result<(), WireError> {
    legacy_deregister(session, args.event_id)
}

#[cfg(test)]
mod tests {
    use migrated_core::driver::{DomainRef, LifecycleEvent};
    use migrated_core::typed_params::{TypedParams, TypedValue};

    use super::*;

    fn dom(uuid: Uuid) -> DomainRef {
        DomainRef {
            name: "g".into(),
            uuid,
            id: 3,
        }
    }

    fn event(uuid: Uuid) -> DomainEvent {
        DomainEvent::lifecycle(dom(uuid), LifecycleEvent::Started, 0)
    }

    fn callback(id: i32, event_id: i32, dom: Option<Uuid>) -> Callback {
        Callback { id, event_id, dom }
    }

    #[test]
    fn lifecycle_events_reach_matching_callbacks_and_legacy_registrations() {
        let a = Uuid::from_u128(1);
        let b = Uuid::from_u128(2);
        let regs = Registrations {
            callbacks: vec![
                callback(0, 0, None),
                callback(1, 0, Some(b)),
                callback(2, 5, None),
            ],
            next_id: 3,
            legacy: vec![0],
            forwarding: true,
        };
        let msgs = regs.messages_for(&event(a));
        let procs: Vec<Procedure> = msgs.iter().map(|(p, _)| *p).collect();
        assert_eq!(
            procs,
            vec![
                Procedure::DomainEventCallbackLifecycle,
                Procedure::DomainEventLifecycle
            ]
        );
        // callback id 0 leads the 318 payload; event 2 (STARTED) sits after the domain.
        let payload = &msgs[0].1;
        assert_eq!(&payload[..4], &0i32.to_be_bytes());
        assert_eq!(
            &payload[payload.len() - 8..payload.len() - 4],
            &2i32.to_be_bytes()
        );
        assert_eq!(regs.messages_for(&event(b)).len(), 3);
    }

    #[test]
    fn job_events_reach_only_their_callbacks_and_no_legacy_registration() {
        let a = Uuid::from_u128(1);
        let regs = Registrations {
            callbacks: vec![
                callback(0, event_id::LIFECYCLE, None),
                callback(1, event_id::MIGRATION_ITERATION, None),
                callback(2, event_id::JOB_COMPLETED, Some(a)),
                callback(3, event_id::JOB_COMPLETED, Some(Uuid::from_u128(2))),
            ],
            next_id: 4,
            legacy: vec![event_id::LIFECYCLE, event_id::MIGRATION_ITERATION],
            forwarding: true,
        };
        let iteration = DomainEvent {
            dom: dom(a),
            kind: DomainEventKind::MigrationIteration { iteration: 4 },
        };
        let msgs = regs.messages_for(&iteration);
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].0, Procedure::DomainEventCallbackMigrationIteration);
        let msg: DomainEventCallbackMigrationIterationMsg =
            migrated_xdr::from_bytes(&msgs[0].1).expect("decodes");
        assert_eq!((msg.callback_id, msg.iteration), (1, 4));
        assert_eq!(msg.dom.name, "g");

        let stats = TypedParams::new()
            .with("operation", TypedValue::Int(5))
            .with("data_total", TypedValue::ULLong(4096));
        let completed = DomainEvent {
            dom: dom(a),
            kind: DomainEventKind::JobCompleted { stats },
        };
        let msgs = regs.messages_for(&completed);
        assert_eq!(msgs.len(), 1, "only the callback for this domain");
        assert_eq!(msgs[0].0, Procedure::DomainEventCallbackJobCompleted);
        let msg: DomainEventCallbackJobCompletedMsg =
            migrated_xdr::from_bytes(&msgs[0].1).expect("decodes");
        assert_eq!(msg.callback_id, 2);
        let params = TypedParams::from_wire(msg.params, 64).expect("valid params");
        assert_eq!(params.get_ullong("data_total").expect("u64"), Some(4096));
    }

    #[test]
    fn reboot_events_reach_their_callbacks_and_legacy_registrations() {
        let a = Uuid::from_u128(1);
        let regs = Registrations {
            callbacks: vec![
                callback(0, event_id::LIFECYCLE, None),
                callback(1, event_id::REBOOT, Some(a)),
            ],
            next_id: 2,
            legacy: vec![event_id::LIFECYCLE, event_id::REBOOT],
            forwarding: true,
        };
        let reboot = DomainEvent {
            dom: dom(a),
            kind: DomainEventKind::Reboot,
        };
        let msgs = regs.messages_for(&reboot);
        let procedures: Vec<_> = msgs.iter().map(|m| m.0).collect();
        assert_eq!(
            procedures,
            [
                Procedure::DomainEventCallbackReboot,
                Procedure::DomainEventReboot
            ]
        );
        let msg: DomainEventCallbackRebootMsg =
            migrated_xdr::from_bytes(&msgs[0].1).expect("decodes");
        assert_eq!((msg.callback_id, msg.msg.dom.name.as_str()), (1, "g"));
        let legacy: DomainEventRebootMsg = migrated_xdr::from_bytes(&msgs[1].1).expect("decodes");
        assert_eq!(legacy.dom.name, "g");
    }

    #[test]
    fn device_events_reach_their_callbacks_and_removals_legacy_registrations() {
        let a = Uuid::from_u128(1);
        let regs = Registrations {
            callbacks: vec![
                callback(0, event_id::DEVICE_ADDED, None),
                callback(1, event_id::DEVICE_REMOVED, Some(a)),
            ],
            next_id: 2,
            legacy: vec![event_id::DEVICE_REMOVED],
            forwarding: true,
        };
        let added = DomainEvent {
            dom: dom(a),
            kind: DomainEventKind::DeviceAdded {
                alias: "vdb".into(),
            },
        };
        let msgs = regs.messages_for(&added);
        assert_eq!(msgs.len(), 1, "device-added has no legacy message");
        assert_eq!(msgs[0].0, Procedure::DomainEventCallbackDeviceAdded);
        let msg: DomainEventCallbackDeviceAddedMsg =
            migrated_xdr::from_bytes(&msgs[0].1).expect("decodes");
        assert_eq!((msg.callback_id, msg.dev_alias.as_str()), (0, "vdb"));
        let removed = DomainEvent {
            dom: dom(a),
            kind: DomainEventKind::DeviceRemoved {
                alias: "nic1".into(),
            },
        };
        let msgs = regs.messages_for(&removed);
        let procedures: Vec<_> = msgs.iter().map(|m| m.0).collect();
        assert_eq!(
            procedures,
            [
                Procedure::DomainEventCallbackDeviceRemoved,
                Procedure::DomainEventDeviceRemoved
            ]
        );
        let msg: DomainEventCallbackDeviceRemovedMsg =
            migrated_xdr::from_bytes(&msgs[0].1).expect("decodes");
        assert_eq!((msg.callback_id, msg.msg.dev_alias.as_str()), (1, "nic1"));
        let legacy: DomainEventDeviceRemovedMsg =
            migrated_xdr::from_bytes(&msgs[1].1).expect("decodes");
        assert_eq!(legacy.dev_alias, "nic1");
    }

    #[test]
    fn unknown_ids_get_libvirtds_internal_error() {
        assert!(check_event_id(event_id::LAST - 1, event_id::LAST - 1).is_ok());
        let err = check_event_id(event_id::LAST, event_id::LAST - 1).expect_err("unknown");
        assert_eq!(err.code, ErrorCode::InternalError as i32);
        assert_eq!(
            err.message.as_deref(),
            Some("internal error: unsupported event ID 27")
        );
        assert!(check_event_id(-1, event_id::LAST - 1).is_err());
        assert!(check_event_id(event_id::MIGRATION_ITERATION, event_id::DEVICE_REMOVED).is_err());
    }
}
