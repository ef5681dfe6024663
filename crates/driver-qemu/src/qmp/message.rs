//! QMP wire shapes: the greeting, what QEMU sends, and events.
//!
//! QEMU sends three kinds of line once capabilities are negotiated: a
//! command's success (`{"return": .., "id": ..}`), its failure
//! (`{"error": {"class", "desc"}, "id": ..}`) and asynchronous events
//! (`{"event", "data", "timestamp"}`). Anything else is a protocol violation.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The banner QEMU sends as soon as a client connects.
#[derive(Debug, Clone, Deserialize)]
pub struct Greeting {
    /// The `QMP` object.
    #[serde(rename = "QMP")]
    pub qmp: GreetingBody,
}

/// Content of the greeting.
#[derive(Debug, Clone, Deserialize)]
pub struct GreetingBody {
    /// QEMU's version.
    pub version: VersionInfo,
    /// Optional protocol capabilities QEMU offers (`oob`).
    #[serde(default)]
    pub capabilities: Vec<String>,
}

/// QEMU's version as reported in the greeting.
#[derive(Debug, Clone, Deserialize)]
pub struct VersionInfo {
    /// Major, minor, micro.
    pub qemu: VersionTriple,
    /// Distribution suffix, e.g. `Debian 1:7.2+dfsg-7`.
    #[serde(default)]
    pub package: String,
}

/// `major.minor.micro`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub struct VersionTriple {
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// Micro version.
    pub micro: u32,
}

/// When QEMU emitted an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Timestamp {
    /// Seconds since the epoch.
    pub seconds: i64,
    /// Microseconds within the second.
    pub microseconds: i64,
}

/// An asynchronous QMP event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Event name, e.g. `STOP`; see [`names`].
    pub event: String,
    /// Event payload (`{}` when QEMU sends none).
    #[serde(default)]
    pub data: Value,
    /// When QEMU emitted it.
    #[serde(default)]
    pub timestamp: Timestamp,
}

/// Names of the events the driver reacts to (QEMU's `qapi/*.json`).
pub mod names {
    /// The guest stopped executing (`stop`, migration end, I/O error).
    pub const STOP: &str = "STOP";
    /// The guest resumed executing.
    pub const RESUME: &str = "RESUME";
    /// The guest shut down (QEMU exits afterwards unless `-no-shutdown`).
    pub const SHUTDOWN: &str = "SHUTDOWN";
    /// `system_powerdown` delivered the ACPI event.
    pub const POWERDOWN: &str = "POWERDOWN";
    /// The guest reset.
    pub const RESET: &str = "RESET";
    /// The migration status changed; `data.status` holds the new one.
    pub const MIGRATION: &str = "MIGRATION";
    /// One RAM pass of a migration finished; `data.pass` counts them.
    pub const MIGRATION_PASS: &str = "MIGRATION_PASS";
    /// The guest panicked (pvpanic).
    pub const GUEST_PANICKED: &str = "GUEST_PANICKED";
    /// The balloon reached a new size; `data.actual` in bytes.
    pub const BALLOON_CHANGE: &str = "BALLOON_CHANGE";
    /// A job (block jobs included) changed state; `data.id`, `data.status`.
    pub const JOB_STATUS_CHANGE: &str = "JOB_STATUS_CHANGE";
    /// A device left the guest after `device_del`; `data.device` is its id.
    pub const DEVICE_DELETED: &str = "DEVICE_DELETED";
    /// A detached `dump-guest-memory` ended; `data.result` is `query-dump`'s
    /// answer, `data.error` why it failed.
    pub const DUMP_COMPLETED: &str = "DUMP_COMPLETED";
}

/// QEMU's error object.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ErrorBody {
    pub class: String,
    #[serde(default)]
    pub desc: String,
}

/// One line from QEMU after the greeting.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum Incoming {
    Return {
        #[serde(rename = "return")]
        value: Value,
        #[serde(default)]
        id: Option<Value>,
    },
    Error {
        error: ErrorBody,
        #[serde(default)]
        id: Option<Value>,
    },
    Event(Event),
}

/// A command as sent on the wire.
#[derive(Debug, Serialize)]
pub(crate) struct Request<'a> {
    pub execute: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arguments: Option<Value>,
    pub id: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_qemu_7_2_greeting() {
        let line = r#"{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7+deb12u18"}, "capabilities": ["oob"]}}"#;
        let g: Greeting = serde_json::from_str(line).expect("greeting parses");
        assert_eq!(
            g.qmp.version.qemu,
            VersionTriple {
                major: 7,
                minor: 2,
                micro: 22
            }
        );
        assert_eq!(g.qmp.capabilities, vec!["oob".to_owned()]);
    }

    #[test]
    fn classifies_return_error_and_event() {
        let ret: Incoming = serde_json::from_str(r#"{"return": {}, "id": 7}"#).expect("return");
        assert!(
            matches!(ret, Incoming::Return { id: Some(Value::Number(n)), .. } if n.as_u64() == Some(7))
        );
        let err: Incoming = serde_json::from_str(
            r#"{"id": 3, "error": {"class": "CommandNotFound", "desc": "The command foo has not been found"}}"#,
        )
        .expect("error");
        assert!(
            matches!(err, Incoming::Error { ref error, .. } if error.class == "CommandNotFound")
        );
        let ev: Incoming = serde_json::from_str(
            r#"{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "STOP"}"#,
        )
        .expect("event");
        assert!(matches!(ev, Incoming::Event(Event { ref event, .. }) if event == "STOP"));
    }

    #[test]
    fn refuses_lines_that_are_not_qmp() {
        assert!(serde_json::from_str::<Incoming>(r#"{"hello": 1}"#).is_err());
        assert!(serde_json::from_str::<Incoming>(r#"[1, 2]"#).is_err());
    }

    #[test]
    fn request_omits_missing_arguments() {
        let r = Request {
            execute: "stop",
            arguments: None,
            id: 1,
        };
        assert_eq!(
            serde_json::to_string(&r).expect("serializes"),
            r#"{"execute":"stop","id":1}"#
        );
    }
}
