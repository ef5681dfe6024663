//! The per-run event task: follows QMP events and the QEMU pidfd so the
//! recorded state matches what QEMU does, whoever caused it.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use migrated_core::domain::{
    event_detail, paused_reason, DomainEventKind, DomainState, LifecycleEvent, StateReason,
};
use tokio::sync::broadcast;
use tracing::{info, warn};
use uuid::Uuid;

use migrated_core::xml::DomainDef;
use serde_json::Value;

use super::hotplug;
use super::qmp_events::{self, LiveUpdate};
use super::registry::{Domain, Runtime};
use super::{power, status_of, Shared};
use crate::qmp::commands::QueryStatus;
use crate::qmp::message::names;

/// `VIR_DOMAIN_CRASHED_PANICKED` and `VIR_DOMAIN_EVENT_CRASHED_PANICKED`.
const CRASHED_PANICKED: i32 = 1;
const EVENT_CRASHED_PANICKED: i32 = 0;

/// Follows one run's QMP events and its QEMU's exit.
pub(super) fn spawn_monitor(
    shared: &Arc<Shared>,
    runtime: &Arc<Runtime>,
    uuid: Uuid,
    id: i32,
    mut events: broadcast::Receiver<crate::qmp::Event>,
) {
    let weak: Weak<Shared> = Arc::downgrade(shared);
    let process = Arc::clone(&runtime.process);
    let weak_runtime = Arc::downgrade(runtime);
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                event = events.recv() => {
                    let Some(shared) = weak.upgrade() else { return };
                    match event {
                        Ok(event) => {
                            forward_monitor_event(&shared, &uuid, id, &event);
                            if let Some(alias) = hotplug::deleted_device(&event.event, &event.data) {
                                // The guest released a device a detach asked for.
                                if let Some(rt) = weak_runtime.upgrade() {
                                    hotplug::finish_removal(&shared, &rt, uuid, id, &alias).await;
                                }
                            }
                            on_event(&shared, &weak_runtime, &uuid, id, &event.event, &event.data)
                        }
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            // Missed STOP/RESUME events: ask QEMU where it is.
                            warn!(missed = n, "qmp events lagged; re-reading the run state");
                            let qmp = weak_runtime.upgrade().map(|rt| rt.qmp.clone());
                            drop(shared);
                            if let Some(qmp) = qmp {
                                if let Ok(status) = qmp.execute(&QueryStatus).await {
                                    if let Some(shared) = weak.upgrade() {
                                        let name = if status.running { names::RESUME } else { names::STOP };
                                        on_event(&shared, &weak_runtime, &uuid, id, name, &serde_json::Value::Null);
                                    }
                                }
                            }
                        }
                        // The connection closed: QEMU is exiting; wait for the pidfd.
                        Err(broadcast::error::RecvError::Closed) => {
                            drop(shared);
                            let status = process.wait().await;
                            info!(%uuid, %status, "qemu exited");
                            if let Some(shared) = weak.upgrade() {
                                shared.finish_stop(&uuid, id);
                            }
                            return;
                        }
                    }
                }
                status = process.wait() => {
                    info!(%uuid, %status, "qemu exited");
                    if let Some(shared) = weak.upgrade() {
                        shared.finish_stop(&uuid, id);
                    }
                    return;
                }
            }
        }
    });
    if let Ok(mut slot) = runtime.monitor.lock() {
        *slot = Some(task);
    }
}

/// Hands a QMP event of the run `id` of `uuid` to `qemu-monitor-event`
/// clients, every event as libvirt (none subscribed is fine).
fn forward_monitor_event(shared: &Shared, uuid: &Uuid, id: i32, event: &crate::qmp::Event) {
    if shared.monitor_events.receiver_count() == 0 {
        return;
    }
    let dom = shared.lock().ok().and_then(|reg| {
        reg.domains
            .get(uuid)
            .filter(|d| d.live.as_ref().is_some_and(|l| l.id == id))
            .map(Domain::dom_ref)
    });
    if let Some(dom) = dom {
        let _ = shared
            .monitor_events
            .send(super::passthrough::monitor_event(dom, event));
    }
}

/// The detail of the shutdown event for QEMU's SHUTDOWN `data`, as
/// libvirt's qemuProcessHandleShutdown: who asked, when QEMU says (its
/// `guest` field), else just "finished".
fn shutdown_detail(data: &serde_json::Value) -> i32 {
    match data.get("guest").and_then(serde_json::Value::as_bool) {
        Some(true) => event_detail::SHUTDOWN_GUEST,
        Some(false) => event_detail::SHUTDOWN_HOST,
        None => event_detail::SHUTDOWN_FINISHED,
    }
}

fn on_event(
    shared: &Arc<Shared>,
    runtime: &Weak<Runtime>,
    uuid: &Uuid,
    id: i32,
    name: &str,
    data: &serde_json::Value,
) {
    match name {
        names::STOP => {
            let runtime = runtime.upgrade();
            if runtime.as_deref().is_some_and(power::ignores_stop) {
                return;
            }
            let migrating = runtime.is_some_and(|rt| rt.migrating.load(Ordering::SeqCst));
            let (reason, detail) = if migrating {
                (paused_reason::MIGRATION, event_detail::SUSPENDED_MIGRATED)
            } else {
                (paused_reason::USER, event_detail::SUSPENDED_PAUSED)
            };
            shared.set_state(
                uuid,
                id,
                StateReason {
                    state: DomainState::Paused,
                    reason,
                },
                Some((LifecycleEvent::Suspended, detail)),
            );
        }
        names::RESUME => {
            if runtime
                .upgrade()
                .is_some_and(|rt| power::on_resume(shared, &rt, uuid, id))
            {
                return;
            }
            shared.set_unpaused(uuid, id);
        }
        names::SHUTDOWN => {
            // A shutdown while a reboot is asked for is that reboot.
            if runtime
                .upgrade()
                .is_some_and(|rt| power::on_shutdown(shared, &rt, *uuid, id))
            {
                return;
            }
            // A stop the driver asked for (save, destroy) is reported as
            // that; any other shutdown, by the guest or a `quit`, as one.
            let ours = match runtime.upgrade() {
                Some(rt) => {
                    rt.guest_shutdown.store(true, Ordering::SeqCst);
                    rt.intent().is_some()
                }
                None => true,
            };
            let dom = shared
                .lock()
                .ok()
                .and_then(|reg| reg.domains.get(uuid).map(Domain::dom_ref));
            if let Some(dom) = dom.filter(|_| !ours) {
                shared.emit(dom, LifecycleEvent::Shutdown, shutdown_detail(data));
            }
        }
        // libvirt's qemuProcessHandleReset: every reset is a reboot event,
        // whoever asked for it (the guest, `virsh reset`).
        names::RESET => {
            if let Some(rt) = runtime.upgrade() {
                power::on_reset(&rt);
            }
            shared.emit_kind(uuid, id, DomainEventKind::Reboot);
        }
        names::GUEST_PANICKED => shared.set_state(
            uuid,
            id,
            StateReason {
                state: DomainState::Crashed,
                reason: CRASHED_PANICKED,
            },
            Some((LifecycleEvent::Crashed, EVENT_CRASHED_PANICKED)),
        ),
        _ => apply_translated(shared, uuid, id, name, data),
    }
}

/// The events libvirt derives from other QMP events ([`qmp_events`]):
/// records what they change in the live definition and the run state and
/// sends them, all only while run `id` is current.
fn apply_translated(shared: &Arc<Shared>, uuid: &Uuid, id: i32, name: &str, data: &Value) {
    let outcome = {
        let Ok(mut reg) = shared.lock() else { return };
        let Some(domain) = reg.domains.get_mut(uuid) else {
            return;
        };
        let persistent = domain.persistent;
        let Some(live) = domain.live.as_mut().filter(|l| l.id == id) else {
            return;
        };
        let Some(outcome) = qmp_events::translate(name, data, &live.def) else {
            return;
        };
        if let Some(update) = &outcome.live {
            if update_live(&mut live.def, update) {
                if let Err(e) = status_of(live, persistent).write(&shared.config.runtime_dir) {
                    warn!(error = %e.chain(), "cannot update status file");
                }
            }
        }
        outcome
    };
    for kind in outcome.events {
        shared.emit_kind(uuid, id, kind);
    }
    if let Some(t) = outcome.transition {
        shared.record_state(uuid, id, t.to, Some(t.event), |old| old.state == t.from);
    }
}

/// Applies `update` to the live definition; whether anything changed.
fn update_live(def: &mut DomainDef, update: &LiveUpdate) -> bool {
    match update {
        LiveUpdate::CurrentMemory(kib) => {
            let changed = def.current_memory_kib != *kib;
            def.current_memory_kib = *kib;
            changed
        }
        LiveUpdate::ChannelState { alias, connected } => {
            let state = if *connected {
                "connected"
            } else {
                "disconnected"
            };
            let target = def
                .devices
                .channels
                .iter_mut()
                .filter(|c| c.info.alias.as_deref() == Some(alias.as_str()))
                .find_map(|c| c.target.as_mut());
            match target {
                Some(t) if t.state.as_deref() != Some(state) => {
                    t.state = Some(state.to_owned());
                    true
                }
                _ => false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shutdown_detail_says_who_asked_as_libvirt() {
        let detail = |data: serde_json::Value| shutdown_detail(&data);
        assert_eq!(
            detail(serde_json::json!({"guest": true, "reason": "guest-shutdown"})),
            event_detail::SHUTDOWN_GUEST
        );
        assert_eq!(
            detail(serde_json::json!({"guest": false, "reason": "host-qmp-quit"})),
            event_detail::SHUTDOWN_HOST
        );
        assert_eq!(
            detail(serde_json::Value::Null),
            event_detail::SHUTDOWN_FINISHED
        );
    }
}
