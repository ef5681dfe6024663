//! Event callbacks: registration procedures and the per-connection task
//! that forwards the driver's lifecycle events as MESSAGEs.
//!
//! Modern clients (feature 14) register with CALLBACK_REGISTER_ANY (316)
//! and get DOMAIN_EVENT_CALLBACK_LIFECYCLE (318) carrying their callback id;
//! legacy clients register with 105 or 167 and get DOMAIN_EVENT_LIFECYCLE
//! (107). Only lifecycle events (id 0) are produced; other ids may be
//! registered and simply never fire, as for a driver without such events.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use migrated_core::driver::DomainEvent;
use migrated_core::error::ErrorCode;
use migrated_proto::{
    ConnectDomainEventCallbackDeregisterAnyArgs, ConnectDomainEventCallbackRegisterAnyArgs,
    ConnectDomainEventCallbackRegisterAnyRet, ConnectDomainEventDeregisterAnyArgs,
    ConnectDomainEventDeregisterRet, ConnectDomainEventRegisterAnyArgs,
    ConnectDomainEventRegisterRet, DomainEventCallbackLifecycleMsg, DomainEventLifecycleMsg,
    Procedure, REMOTE_PROGRAM,
};
use migrated_rpc::{ConnHandle, WireError};
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use super::to_wire_dom;
use crate::handler::Session;
use crate::wire::to_wire_error;

/// `VIR_DOMAIN_EVENT_ID_LIFECYCLE`.
pub const EVENT_ID_LIFECYCLE: i32 = 0;
/// One past the last event id libvirt 9.0 knows (`VIR_DOMAIN_EVENT_ID_LAST`).
pub const EVENT_ID_LAST: i32 = 27;

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

impl Registrations {
    /// The MESSAGEs (procedure, payload) `event` produces for these registrations.
    fn messages_for(&self, event: &DomainEvent) -> Vec<(Procedure, Bytes)> {
        let msg = DomainEventLifecycleMsg {
            dom: to_wire_dom(&event.dom),
            event: event.event as i32,
            detail: event.detail,
        };
        let mut out = Vec::new();
        for cb in &self.callbacks {
            let wanted = cb.event_id == EVENT_ID_LIFECYCLE
                && cb.dom.map_or(true, |uuid| uuid == event.dom.uuid);
            if wanted {
                let payload = DomainEventCallbackLifecycleMsg {
                    callback_id: cb.id,
                    msg: msg.clone(),
                };
                if let Ok(bytes) = migrated_xdr::to_bytes(&payload) {
                    out.push((Procedure::DomainEventCallbackLifecycle, Bytes::from(bytes)));
                }
            }
        }
        if self.legacy.contains(&EVENT_ID_LIFECYCLE) {
            if let Ok(bytes) = migrated_xdr::to_bytes(&msg) {
                out.push((Procedure::DomainEventLifecycle, Bytes::from(bytes)));
            }
        }
        out
    }
}

fn invalid_arg(operation: &'static str, reason: String) -> WireError {
    to_wire_error(&migrated_core::Error::InvalidArg { operation, reason })
}

fn lock(regs: &Mutex<Registrations>) -> std::sync::MutexGuard<'_, Registrations> {
    // Plain data; a panicked holder leaves it consistent enough to keep serving.
    regs.lock().unwrap_or_else(|e| e.into_inner())
}

fn check_event_id(operation: &'static str, event_id: i32) -> Result<(), WireError> {
    if (0..EVENT_ID_LAST).contains(&event_id) {
        Ok(())
    } else {
        Err(invalid_arg(
            operation,
            format!("unsupported event ID {event_id}"),
        ))
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
    mut rx: tokio::sync::broadcast::Receiver<DomainEvent>,
    regs: Arc<Mutex<Registrations>>,
    handle: ConnHandle,
) {
    loop {
        let event = tokio::select! {
            _ = handle.closed() => return,
            event = rx.recv() => event,
        };
        match event {
            Ok(event) => {
                let messages = lock(&regs).messages_for(&event);
                for (proc_, payload) in messages {
                    if handle
                        .send_event(REMOTE_PROGRAM, proc_ as i32, payload)
                        .is_err()
                    {
                        return;
                    }
                }
            }
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(
                    conn_id = handle.info().id,
                    missed,
                    "client too slow, lifecycle events dropped"
                );
            }
            Err(RecvError::Closed) => return,
        }
    }
}

/// CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY (316).
///
/// # Errors
/// INVALID_ARG for an unknown event id.
pub fn callback_register_any(
    session: &Session,
    args: ConnectDomainEventCallbackRegisterAnyArgs,
) -> Result<ConnectDomainEventCallbackRegisterAnyRet, WireError> {
    check_event_id("virConnectDomainEventRegisterAny", args.event_id)?;
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
/// INVALID_ARG for an id that is not registered.
pub fn callback_deregister_any(
    session: &Session,
    args: ConnectDomainEventCallbackDeregisterAnyArgs,
) -> Result<(), WireError> {
    let mut regs = lock(session.events());
    let before = regs.callbacks.len();
    regs.callbacks.retain(|cb| cb.id != args.callback_id);
    if regs.callbacks.len() == before {
        return Err(invalid_arg(
            "virConnectDomainEventDeregisterAny",
            format!("callback ID {} not registered", args.callback_id),
        ));
    }
    Ok(())
}

fn legacy_register(
    session: &Session,
    operation: &'static str,
    event_id: i32,
) -> Result<(), WireError> {
    check_event_id(operation, event_id)?;
    {
        let mut regs = lock(session.events());
        if regs.legacy.contains(&event_id) {
            return Err(invalid_arg(
                operation,
                format!("domain event {event_id} already registered"),
            ));
        }
        regs.legacy.push(event_id);
    }
    ensure_forwarding(session)
}

fn legacy_deregister(
    session: &Session,
    operation: &'static str,
    event_id: i32,
) -> Result<(), WireError> {
    let mut regs = lock(session.events());
    let before = regs.legacy.len();
    regs.legacy.retain(|id| *id != event_id);
    if regs.legacy.len() == before {
        return Err(invalid_arg(
            operation,
            format!("domain event {event_id} not registered"),
        ));
    }
    Ok(())
}

/// CONNECT_DOMAIN_EVENT_REGISTER (105, legacy lifecycle).
///
/// # Errors
/// INVALID_ARG when already registered.
pub fn register(session: &Session) -> Result<ConnectDomainEventRegisterRet, WireError> {
    legacy_register(session, "virConnectDomainEventRegister", EVENT_ID_LIFECYCLE)?;
    Ok(ConnectDomainEventRegisterRet { cb_registered: 1 })
}

/// CONNECT_DOMAIN_EVENT_DEREGISTER (106, legacy lifecycle).
///
/// # Errors
/// INVALID_ARG when not registered.
pub fn deregister(session: &Session) -> Result<ConnectDomainEventDeregisterRet, WireError> {
    legacy_deregister(
        session,
        "virConnectDomainEventDeregister",
        EVENT_ID_LIFECYCLE,
    )?;
    Ok(ConnectDomainEventDeregisterRet { cb_registered: 0 })
}

/// CONNECT_DOMAIN_EVENT_REGISTER_ANY (167, legacy).
///
/// # Errors
/// INVALID_ARG for an unknown or already registered event id.
pub fn register_any(
    session: &Session,
    args: ConnectDomainEventRegisterAnyArgs,
) -> Result<(), WireError> {
    legacy_register(session, "virConnectDomainEventRegisterAny", args.event_id)
}

/// CONNECT_DOMAIN_EVENT_DEREGISTER_ANY (168, legacy).
///
/// # Errors
/// INVALID_ARG when not registered.
pub fn deregister_any(
    session: &Session,
    args: ConnectDomainEventDeregisterAnyArgs,
) -> Result<(), WireError> {
    legacy_deregister(session, "virConnectDomainEventDeregisterAny", args.event_id)
}

#[cfg(test)]
mod tests {
    use migrated_core::driver::{DomainRef, LifecycleEvent};

    use super::*;

    fn event(uuid: Uuid) -> DomainEvent {
        DomainEvent {
            dom: DomainRef {
                name: "g".into(),
                uuid,
                id: 3,
            },
            event: LifecycleEvent::Started,
            detail: 0,
        }
    }

    #[test]
    fn lifecycle_events_reach_matching_callbacks_and_legacy_registrations() {
        let a = Uuid::from_u128(1);
        let b = Uuid::from_u128(2);
        let regs = Registrations {
            callbacks: vec![
                Callback {
                    id: 0,
                    event_id: 0,
                    dom: None,
                },
                Callback {
                    id: 1,
                    event_id: 0,
                    dom: Some(b),
                },
                Callback {
                    id: 2,
                    event_id: 5,
                    dom: None,
                },
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
}
