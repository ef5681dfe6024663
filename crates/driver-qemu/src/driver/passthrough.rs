//! libvirt's QEMU-specific API (`libvirt-qemu`): a user's own monitor
//! commands (`virsh qemu-monitor-command`), guest-agent commands
//! (`qemu-agent-command`) and every QMP event of the running guests
//! (`qemu-monitor-event`).
//!
//! A user's QMP command travels on the driver's own monitor connection with
//! the driver's next `id`, so its reply reaches only that caller and the
//! driver's commands are never confused by it. What the command does is
//! followed like anything else QEMU does: `stop` and `cont` produce STOP
//! and RESUME events and the recorded state follows them (paused with
//! reason "user", running again, with their lifecycle events), `quit` makes
//! QEMU exit and the guest is shut off (a SHUTDOWN event the driver did not
//! ask for, then the process exit), as libvirt. The run is marked tainted
//! ("custom-monitor") the first time, with a warning in the daemon's log.

use std::sync::atomic::Ordering;

use migrated_core::domain::DomainRef;
use migrated_core::flags::check_flags;
use migrated_core::qemu_monitor::{MonitorEvent, MONITOR_COMMAND_HMP};
use migrated_core::{Error, Result};
use serde_json::Value;
use tracing::warn;

use super::registry::Runtime;
use super::QemuDriver;
use crate::qmp::Event;

/// libvirt's name of the taint a user's monitor command leaves
/// (`VIR_DOMAIN_TAINT_CUSTOM_MONITOR`).
const TAINT_CUSTOM_MONITOR: &str = "custom-monitor";

/// The QMP command `human-monitor-command` (HMP text through QMP).
const HUMAN_MONITOR_COMMAND: &str = "human-monitor-command";

/// A user's QMP input, as libvirt's qemuMonitorJSONArbitraryCommand takes
/// it: any JSON; a command object (one with `execute`) must leave the `id`
/// to the driver.
///
/// # Errors
/// `VIR_ERR_INTERNAL_ERROR` with libvirt's words: "cannot parse json ..."
/// for text that is not JSON, "Unable to append command 'id' string" for
/// a command that brings its own `id`.
pub(crate) fn parse_qmp_input(cmd: &str) -> Result<Value> {
    let value: Value = serde_json::from_str(cmd)
        .map_err(|e| Error::internal(format!("cannot parse json {cmd}: {e}")))?;
    if value.get("execute").is_some() && value.get("id").is_some() {
        return Err(Error::internal("Unable to append command 'id' string"));
    }
    Ok(value)
}

/// The event a `qemu-monitor-event` client gets for QMP event `event` of
/// `dom`: its name, QEMU's timestamp and its `data` as JSON (none when
/// QEMU sent none), as libvirt's qemuProcessHandleEvent.
pub(crate) fn monitor_event(dom: DomainRef, event: &Event) -> MonitorEvent {
    let details = match &event.data {
        Value::Null => None,
        data => Some(data.to_string()),
    };
    MonitorEvent {
        dom,
        event: event.event.clone(),
        seconds: event.timestamp.seconds,
        micros: u32::try_from(event.timestamp.microseconds).unwrap_or(0),
        details,
    }
}

impl QemuDriver {
    /// `virDomainQemuMonitorCommand` (libvirt's qemuDomainQemuMonitorCommand).
    ///
    /// # Errors
    /// Unknown flags (`VIR_ERR_INVALID_ARG`), "domain is not running"
    /// (`VIR_ERR_OPERATION_INVALID`), input that is not JSON (see
    /// [`parse_qmp_input`]), a monitor that does not answer in time
    /// (`VIR_ERR_OPERATION_TIMEOUT`) or is gone; for HMP, QEMU's refusal of
    /// `human-monitor-command`. A QMP command QEMU refuses is no error: its
    /// error reply is the answer, as libvirt.
    pub(super) async fn qemu_monitor_command_impl(
        &self,
        dom: &DomainRef,
        cmd: &str,
        flags: u32,
    ) -> Result<String> {
        const OPERATION: &str = "virDomainQemuMonitorCommand";
        // libvirt 9.0 serves this through its WithFiles variant, whose
        // name its flag error carries.
        check_flags(
            "virDomainQemuMonitorCommandWithFiles",
            u64::from(flags),
            u64::from(MONITOR_COMMAND_HMP),
        )?;
        let runtime = self.runtime(dom)?;
        self.taint(dom, &runtime);
        if flags & MONITOR_COMMAND_HMP != 0 {
            let reply = runtime
                .qmp
                .execute_raw(
                    HUMAN_MONITOR_COMMAND,
                    Some(serde_json::json!({ "command-line": cmd })),
                )
                .await
                .map_err(|e| e.into_core(OPERATION))?;
            return Ok(reply.as_str().unwrap_or_default().to_owned());
        }
        let input = parse_qmp_input(cmd)?;
        runtime
            .qmp
            .passthrough(input)
            .await
            .map_err(|e| e.into_core(OPERATION))
    }

    /// `virDomainQemuAgentCommand` (libvirt's qemuDomainQemuAgentCommand):
    /// the checks libvirt makes before talking to the agent, in its order
    /// (flags, running, agent available; the timeout is checked only
    /// after, by the agent call). This driver never connects to a guest
    /// agent, so a running guest answers libvirt's error for an agent that
    /// is not configured or not connected.
    ///
    /// # Errors
    /// Unknown flags, "domain is not running", [`Error::GuestAgent`].
    pub(super) async fn qemu_agent_command_impl(
        &self,
        dom: &DomainRef,
        cmd: &str,
        timeout: i32,
        flags: u32,
    ) -> Result<Option<String>> {
        let _ = (cmd, timeout);
        check_flags("virDomainQemuAgentCommand", u64::from(flags), 0)?;
        Err(self.agent_unavailable(dom)?)
    }

    /// Marks the run tainted by a user's monitor command, once per run,
    /// with libvirt's warning (qemuDomainObjTaintMsg).
    fn taint(&self, dom: &DomainRef, runtime: &Runtime) {
        if !runtime.tainted.swap(true, Ordering::SeqCst) {
            warn!(
                "Domain id={} name='{}' uuid={} is tainted: {}",
                dom.id, dom.name, dom.uuid, TAINT_CUSTOM_MONITOR
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qmp::message::Timestamp;
    use migrated_core::error::ErrorCode;
    use uuid::Uuid;

    #[test]
    fn qmp_input_is_any_json_and_commands_leave_the_id_to_the_driver() {
        let input = parse_qmp_input(r#"{"execute":"query-status"}"#).expect("a command");
        assert_eq!(input["execute"], "query-status");
        for other in ["[1]", r#"{"arguments":{}}"#, r#"{"id":1}"#] {
            assert!(
                parse_qmp_input(other).is_ok(),
                "{other} goes to QEMU as it is"
            );
        }
        let err = parse_qmp_input("info pci").expect_err("not json");
        assert_eq!(err.code(), ErrorCode::InternalError);
        assert!(err
            .to_string()
            .starts_with("internal error: cannot parse json info pci: "));
        let err = parse_qmp_input(r#"{"execute":"stop","id":"mine"}"#).expect_err("own id");
        assert_eq!(
            err.to_string(),
            "internal error: Unable to append command 'id' string"
        );
    }

    #[test]
    fn monitor_events_carry_name_timestamp_and_data() {
        let dom = DomainRef {
            name: "g".into(),
            uuid: Uuid::nil(),
            id: 4,
        };
        let event = Event {
            event: "STOP".into(),
            data: Value::Null,
            timestamp: Timestamp {
                seconds: 17,
                microseconds: 250,
            },
        };
        let out = monitor_event(dom.clone(), &event);
        assert_eq!(
            (out.event.as_str(), out.seconds, out.micros, out.details),
            ("STOP", 17, 250, None)
        );
        let event = Event {
            data: serde_json::json!({"reason": "host-qmp-quit"}),
            ..event
        };
        assert_eq!(
            monitor_event(dom, &event).details.as_deref(),
            Some(r#"{"reason":"host-qmp-quit"}"#)
        );
    }
}
