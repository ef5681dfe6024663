//! Values of libvirt's QEMU-specific API (`libvirt-qemu`): monitor commands,
//! guest-agent commands and QMP events passed through as they are
//! (`virsh qemu-monitor-command`, `qemu-agent-command`, `qemu-monitor-event`).

use crate::domain::DomainRef;
use crate::{Error, Result};

/// `VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP`: the command is HMP text, run
/// through QMP's `human-monitor-command`.
pub const MONITOR_COMMAND_HMP: u32 = 1;

/// `VIR_CONNECT_DOMAIN_QEMU_MONITOR_EVENT_REGISTER_REGEX`: the event filter
/// is a regular expression.
pub const EVENT_REGISTER_REGEX: u32 = 1;

/// `VIR_CONNECT_DOMAIN_QEMU_MONITOR_EVENT_REGISTER_NOCASE`: the event
/// filter ignores case.
pub const EVENT_REGISTER_NOCASE: u32 = 2;

/// `VIR_DOMAIN_QEMU_AGENT_COMMAND_MIN`, the smallest timeout accepted.
pub const AGENT_TIMEOUT_MIN: i32 = -2;

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

/// How long a guest-agent command waits for its reply
/// (`virDomainQemuAgentCommand`'s `timeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentTimeout {
    /// -2 (`VIR_DOMAIN_QEMU_AGENT_COMMAND_BLOCK`): until the agent answers.
    Block,
    /// -1 (`VIR_DOMAIN_QEMU_AGENT_COMMAND_DEFAULT`): the driver's default.
    Default,
    /// 0 (`VIR_DOMAIN_QEMU_AGENT_COMMAND_NOWAIT`): send and do not wait.
    NoWait,
    /// That many seconds.
    Seconds(u32),
}

impl AgentTimeout {
    /// The timeout word of the wire.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] (`VIR_ERR_INVALID_ARG`) below -2, with libvirt's words
    /// (`qemuAgentArbitraryCommand`).
    pub fn from_wire(timeout: i32) -> Result<Self> {
        Ok(match timeout {
            -2 => AgentTimeout::Block,
            -1 => AgentTimeout::Default,
            0 => AgentTimeout::NoWait,
            n if n > 0 => AgentTimeout::Seconds(n.unsigned_abs()),
            n => {
                return Err(Error::InvalidValue {
                    reason: format!(
                        "guest agent timeout '{n}' is less than the minimum '{AGENT_TIMEOUT_MIN}'"
                    ),
                })
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn agent_timeouts_follow_libvirts_words() {
        assert_eq!(AgentTimeout::from_wire(-2).ok(), Some(AgentTimeout::Block));
        assert_eq!(
            AgentTimeout::from_wire(-1).ok(),
            Some(AgentTimeout::Default)
        );
        assert_eq!(AgentTimeout::from_wire(0).ok(), Some(AgentTimeout::NoWait));
        assert_eq!(
            AgentTimeout::from_wire(7).ok(),
            Some(AgentTimeout::Seconds(7))
        );
        let err = AgentTimeout::from_wire(-3).expect_err("below the minimum");
        assert_eq!(err.code(), ErrorCode::InvalidArg);
        assert_eq!(
            err.to_string(),
            "invalid argument: guest agent timeout '-3' is less than the minimum '-2'"
        );
    }
}
