//! Values of libvirt's QEMU-specific API (`libvirt-qemu`): monitor commands,
//! guest-agent commands and QMP events passed through as they are
//! (`virsh qemu-monitor-command`, `qemu-agent-command`, `qemu-monitor-event`).

use crate::domain::DomainRef;

/// `VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP`: the command is HMP text, run
/// through QMP's `human-monitor-command`.
pub const MONITOR_COMMAND_HMP: u32 = 1;

/// `VIR_CONNECT_DOMAIN_QEMU_MONITOR_EVENT_REGISTER_REGEX`: the event filter
/// is a regular expression.
pub const EVENT_REGISTER_REGEX: u32 = 1;

/// `VIR_CONNECT_DOMAIN_QEMU_MONITOR_EVENT_REGISTER_NOCASE`: the event
/// filter ignores case.
pub const EVENT_REGISTER_NOCASE: u32 = 2;

/// One QMP event of a running guest, for `qemu-monitor-event` clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorEvent {
    /// The guest, with its id at the time of the event.
    pub dom: DomainRef,
    /// QMP event name (`STOP`, `RESUME`, ...).
    pub event: String,
    /// QEMU's timestamp: seconds since the epoch.
    pub seconds: i64,
    /// QEMU's timestamp: microseconds within the second.
    pub micros: u32,
    /// The event's `data` as JSON text, `None` when QEMU sent none.
    pub details: Option<String>,
}
