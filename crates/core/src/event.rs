//! The payloads and values of libvirt's domain events beyond the lifecycle
//! ones (`virConnectDomainEvent*Callback`), as `src/conf/domain_event.c`
//! and `include/libvirt/libvirt-domain.h` of libvirt 9.0 define them.

use crate::typed_params::{TypedParams, TypedValue};

/// `VIR_DOMAIN_EVENT_WATCHDOG_*`: what the watchdog did when it fired.
pub mod watchdog_action {
    /// `VIR_DOMAIN_EVENT_WATCHDOG_NONE`.
    pub const NONE: i32 = 0;
    /// `VIR_DOMAIN_EVENT_WATCHDOG_PAUSE`: the guest was paused.
    pub const PAUSE: i32 = 1;
    /// `VIR_DOMAIN_EVENT_WATCHDOG_RESET`.
    pub const RESET: i32 = 2;
    /// `VIR_DOMAIN_EVENT_WATCHDOG_POWEROFF`.
    pub const POWEROFF: i32 = 3;
    /// `VIR_DOMAIN_EVENT_WATCHDOG_SHUTDOWN`.
    pub const SHUTDOWN: i32 = 4;
    /// `VIR_DOMAIN_EVENT_WATCHDOG_DEBUG`.
    pub const DEBUG: i32 = 5;
    /// `VIR_DOMAIN_EVENT_WATCHDOG_INJECTNMI`.
    pub const INJECTNMI: i32 = 6;

    /// The value for QEMU's `WATCHDOG` `action` (libvirt's
    /// `qemuMonitorWatchdogAction` names), `None` for a name QEMU may add later.
    pub fn from_qemu(action: &str) -> Option<i32> {
        Some(match action {
            "none" => NONE,
            "pause" => PAUSE,
            "reset" => RESET,
            "poweroff" => POWEROFF,
            "shutdown" => SHUTDOWN,
            "debug" => DEBUG,
            "inject-nmi" => INJECTNMI,
            _ => return None,
        })
    }
}

/// `VIR_DOMAIN_EVENT_IO_ERROR_*`: what the hypervisor did about an I/O error.
pub mod io_error_action {
    /// `VIR_DOMAIN_EVENT_IO_ERROR_NONE`: ignored.
    pub const NONE: i32 = 0;
    /// `VIR_DOMAIN_EVENT_IO_ERROR_PAUSE`: the guest was paused.
    pub const PAUSE: i32 = 1;
    /// `VIR_DOMAIN_EVENT_IO_ERROR_REPORT`: reported to the guest.
    pub const REPORT: i32 = 2;

    /// The value for QEMU's `BLOCK_IO_ERROR` `action`; an unknown one is
    /// NONE, as libvirt's monitor code.
    pub fn from_qemu(action: &str) -> i32 {
        match action {
            "stop" => PAUSE,
            "report" => REPORT,
            _ => NONE,
        }
    }
}

/// `VIR_DOMAIN_EVENT_GRAPHICS_*`: the phase of a graphics connection.
pub mod graphics_phase {
    /// `VIR_DOMAIN_EVENT_GRAPHICS_CONNECT`: a client connected.
    pub const CONNECT: i32 = 0;
    /// `VIR_DOMAIN_EVENT_GRAPHICS_INITIALIZE`: it passed authentication.
    pub const INITIALIZE: i32 = 1;
    /// `VIR_DOMAIN_EVENT_GRAPHICS_DISCONNECT`: it left.
    pub const DISCONNECT: i32 = 2;
}

/// `VIR_DOMAIN_EVENT_GRAPHICS_ADDRESS_*`.
pub mod graphics_family {
    /// `VIR_DOMAIN_EVENT_GRAPHICS_ADDRESS_IPV4`.
    pub const IPV4: i32 = 0;
    /// `VIR_DOMAIN_EVENT_GRAPHICS_ADDRESS_IPV6`.
    pub const IPV6: i32 = 1;
    /// `VIR_DOMAIN_EVENT_GRAPHICS_ADDRESS_UNIX`.
    pub const UNIX: i32 = 2;

    /// The value for QEMU's `family` name, `None` for an unknown one.
    pub fn from_qemu(family: &str) -> Option<i32> {
        Some(match family {
            "ipv4" => IPV4,
            "ipv6" => IPV6,
            "unix" => UNIX,
            _ => return None,
        })
    }
}

/// `VIR_DOMAIN_EVENT_TRAY_CHANGE_*`.
pub mod tray_reason {
    /// `VIR_DOMAIN_EVENT_TRAY_CHANGE_OPEN`.
    pub const OPEN: i32 = 0;
    /// `VIR_DOMAIN_EVENT_TRAY_CHANGE_CLOSE`.
    pub const CLOSE: i32 = 1;
}

/// `VIR_CONNECT_DOMAIN_EVENT_AGENT_LIFECYCLE_*`.
pub mod agent_lifecycle {
    /// `..._STATE_CONNECTED`.
    pub const CONNECTED: i32 = 1;
    /// `..._STATE_DISCONNECTED`.
    pub const DISCONNECTED: i32 = 2;
    /// `..._REASON_UNKNOWN`.
    pub const REASON_UNKNOWN: i32 = 0;
    /// `..._REASON_DOMAIN_STARTED`: the state at the guest's start.
    pub const REASON_DOMAIN_STARTED: i32 = 1;
    /// `..._REASON_CHANNEL`: the agent opened or closed its channel.
    pub const REASON_CHANNEL: i32 = 2;
}

/// `VIR_DOMAIN_EVENT_MEMORY_FAILURE_*` and `VIR_DOMAIN_MEMORY_FAILURE_*`.
pub mod memory_failure {
    /// `VIR_DOMAIN_EVENT_MEMORY_FAILURE_RECIPIENT_HYPERVISOR`.
    pub const RECIPIENT_HYPERVISOR: i32 = 0;
    /// `VIR_DOMAIN_EVENT_MEMORY_FAILURE_RECIPIENT_GUEST`.
    pub const RECIPIENT_GUEST: i32 = 1;
    /// `VIR_DOMAIN_EVENT_MEMORY_FAILURE_ACTION_IGNORE`.
    pub const ACTION_IGNORE: i32 = 0;
    /// `VIR_DOMAIN_EVENT_MEMORY_FAILURE_ACTION_INJECT`.
    pub const ACTION_INJECT: i32 = 1;
    /// `VIR_DOMAIN_EVENT_MEMORY_FAILURE_ACTION_FATAL`.
    pub const ACTION_FATAL: i32 = 2;
    /// `VIR_DOMAIN_EVENT_MEMORY_FAILURE_ACTION_RESET`.
    pub const ACTION_RESET: i32 = 3;
    /// `VIR_DOMAIN_MEMORY_FAILURE_ACTION_REQUIRED`.
    pub const FLAG_ACTION_REQUIRED: u32 = 1;
    /// `VIR_DOMAIN_MEMORY_FAILURE_RECURSIVE`.
    pub const FLAG_RECURSIVE: u32 = 2;

    /// The recipient value for QEMU's `MEMORY_FAILURE` `recipient`.
    pub fn recipient_from_qemu(name: &str) -> Option<i32> {
        match name {
            "hypervisor" => Some(RECIPIENT_HYPERVISOR),
            "guest" => Some(RECIPIENT_GUEST),
            _ => None,
        }
    }

    /// The action value for QEMU's `MEMORY_FAILURE` `action`.
    pub fn action_from_qemu(name: &str) -> Option<i32> {
        match name {
            "ignore" => Some(ACTION_IGNORE),
            "inject" => Some(ACTION_INJECT),
            "fatal" => Some(ACTION_FATAL),
            "reset" => Some(ACTION_RESET),
            _ => None,
        }
    }
}

/// An I/O error on a disk (`VIR_DOMAIN_EVENT_ID_IO_ERROR` and
/// `VIR_DOMAIN_EVENT_ID_IO_ERROR_REASON`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoError {
    /// The disk's source path, `""` when the disk is not known.
    pub src_path: String,
    /// The disk's alias (`virtio-disk0`), `""` when not known.
    pub dev_alias: String,
    /// One of [`io_error_action`].
    pub action: i32,
    /// `"enospc"` when the host ran out of space, else `""`.
    pub reason: String,
}

/// One end of a graphics connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphicsAddress {
    /// One of [`graphics_family`].
    pub family: i32,
    /// The host address.
    pub node: String,
    /// The port (or socket path).
    pub service: String,
}

/// A graphics client's connection changed (`VIR_DOMAIN_EVENT_ID_GRAPHICS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Graphics {
    /// One of [`graphics_phase`].
    pub phase: i32,
    /// The server's end.
    pub local: GraphicsAddress,
    /// The client's end.
    pub remote: GraphicsAddress,
    /// The authentication scheme (`none`, `vnc`, `sasl`...).
    pub auth_scheme: String,
    /// The client's identities: (`x509dname` | `saslUsername`, value).
    pub subject: Vec<(String, String)>,
}

/// The typed parameters of a TUNABLE event after a block I/O throttling
/// change, as libvirt's `qemuDomainSetBlockIoTune`: `blkdeviotune.disk`
/// (the disk as the caller named it), then each parameter it set, in its
/// order, under `blkdeviotune.`.
pub fn blkdeviotune_tunable(disk: &str, params: &TypedParams) -> TypedParams {
    let mut out = TypedParams::new().with("blkdeviotune.disk", TypedValue::String(disk.into()));
    for param in params.iter() {
        out.push(format!("blkdeviotune.{}", param.field), param.value.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_names_map_to_libvirts_values() {
        assert_eq!(watchdog_action::from_qemu("pause"), Some(1));
        assert_eq!(watchdog_action::from_qemu("inject-nmi"), Some(6));
        assert_eq!(watchdog_action::from_qemu("dump"), None);
        assert_eq!(io_error_action::from_qemu("stop"), io_error_action::PAUSE);
        assert_eq!(io_error_action::from_qemu("report"), 2);
        assert_eq!(io_error_action::from_qemu("ignore"), 0);
        assert_eq!(io_error_action::from_qemu("new"), 0);
        assert_eq!(graphics_family::from_qemu("ipv6"), Some(1));
        assert_eq!(graphics_family::from_qemu("vsock"), None);
        assert_eq!(memory_failure::recipient_from_qemu("guest"), Some(1));
        assert_eq!(memory_failure::action_from_qemu("reset"), Some(3));
        assert_eq!(memory_failure::action_from_qemu("x"), None);
    }

    #[test]
    fn blkdeviotune_tunable_names_the_disk_first_then_the_callers_order() {
        let params = TypedParams::new()
            .with("write_bytes_sec", TypedValue::ULLong(2048))
            .with("total_iops_sec", TypedValue::ULLong(100));
        let out = blkdeviotune_tunable("vda", &params);
        let names: Vec<_> = out.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            names,
            [
                "blkdeviotune.disk",
                "blkdeviotune.write_bytes_sec",
                "blkdeviotune.total_iops_sec"
            ]
        );
        assert_eq!(
            out.get_ullong("blkdeviotune.write_bytes_sec")
                .ok()
                .flatten(),
            Some(2048)
        );
    }
}
