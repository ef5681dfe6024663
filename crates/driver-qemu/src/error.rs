//! The driver's error type.
//!
//! One enum for the crate; variants name the operation that failed and keep
//! the cause in `#[source]`. Messages are lowercase with no final period.

use std::path::PathBuf;
use std::time::Duration;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while driving QEMU.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No emulator binary was named and none was found on `PATH`.
    #[error("emulator {name} not found on PATH")]
    EmulatorNotFound {
        /// The binary name searched for.
        name: String,
    },
    /// The emulator named by the domain XML does not exist or is not executable.
    #[error("emulator {} is not an executable file", path.display())]
    EmulatorNotExecutable {
        /// The path from `<emulator>`.
        path: PathBuf,
    },
    /// The domain asks for something this driver cannot express on a QEMU command line.
    #[error("invalid domain configuration: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: String,
    },
    /// A PCI address that cannot be used (out of range, taken), or no free
    /// slot left: libvirt's `VIR_ERR_XML_ERROR` in its words.
    #[error("{reason}")]
    PciAddress {
        /// libvirt's message ("Attempted double use of PCI Address …").
        reason: String,
    },
    /// A chipset device at another place than the machine has it: libvirt's
    /// `VIR_ERR_INTERNAL_ERROR` in its words.
    #[error("{reason}")]
    PciAddressInternal {
        /// libvirt's message ("Primary IDE controller must have …").
        reason: String,
    },
    /// The emulator does not know the machine type the XML names.
    #[error("Emulator '{}' does not support machine type '{machine}'", emulator.display())]
    UnknownMachine {
        /// The emulator asked.
        emulator: PathBuf,
        /// The machine type.
        machine: String,
    },
    /// Spawning the emulator failed before it ran.
    #[error("cannot spawn emulator {}", emulator.display())]
    Spawn {
        /// The binary.
        emulator: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// QEMU exited while it was starting; `stderr` is what it printed.
    #[error("qemu exited during start-up ({status}): {stderr}")]
    EmulatorExited {
        /// Exit status as text ("exit code 1", "signal 9", "unknown").
        status: String,
        /// The tail of QEMU's stderr (its log file) from this start.
        stderr: String,
    },
    /// A file or directory under the runtime or state dir could not be used.
    #[error("cannot {action} {}", path.display())]
    File {
        /// What was attempted ("create", "read", "write", "remove", "bind").
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A status or config file holds something that does not parse.
    #[error("cannot parse {}", path.display())]
    ParseFile {
        /// The path.
        path: PathBuf,
        /// The decoder error.
        #[source]
        source: serde_json::Error,
    },
    /// A process-level system call failed (pidfd, signals).
    #[error("cannot {action} process {pid}")]
    Process {
        /// What was attempted ("watch", "signal", "wait for").
        action: &'static str,
        /// The process id.
        pid: i32,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The pid in a status file belongs to some other program (pid reuse).
    #[error("process {pid} is not the qemu of {name}")]
    NotOurProcess {
        /// The process id.
        pid: i32,
        /// The guest it was expected to run.
        name: String,
    },
    /// Connecting to the QMP socket failed.
    #[error("cannot connect to qmp socket {}", path.display())]
    QmpConnect {
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Reading from or writing to the QMP socket failed.
    #[error("qmp i/o failed")]
    QmpIo(#[source] std::io::Error),
    /// QEMU sent a line longer than the configured bound; the connection was dropped.
    #[error("qmp line longer than {limit} bytes, connection dropped")]
    QmpLineTooLong {
        /// The bound in bytes.
        limit: usize,
    },
    /// QEMU sent something that is not QMP; the connection was dropped.
    #[error("qmp protocol violation: {reason}")]
    QmpProtocol {
        /// What was wrong.
        reason: String,
    },
    /// QEMU answered a command with an error.
    #[error("qmp command {command} failed: {class}: {desc}")]
    QmpCommand {
        /// The command name.
        command: String,
        /// QEMU's error class (`GenericError`, `CommandNotFound`, ...).
        class: String,
        /// QEMU's description.
        desc: String,
    },
    /// A command got no answer in time.
    #[error("qmp command {command} got no reply within {after:?}")]
    QmpTimeout {
        /// The command name.
        command: String,
        /// The timeout that expired.
        after: Duration,
    },
    /// The QMP connection is gone (QEMU exited, or a protocol error closed it).
    #[error("qmp connection closed: {reason}")]
    QmpClosed {
        /// Why it closed.
        reason: String,
    },
    /// The workload guest's status block could not be read.
    #[error("workload guest status unreadable: {reason}")]
    Workload {
        /// What was found instead.
        reason: String,
    },
    /// QEMU reported that a migration (or save/restore stream) failed.
    #[error("migration failed: {reason}")]
    MigrationFailed {
        /// QEMU's `error-desc`.
        reason: String,
    },
    /// A reply did not have the shape the command promises.
    #[error("unexpected reply to qmp command {command}")]
    QmpReply {
        /// The command name.
        command: String,
        /// The decoder error.
        #[source]
        source: serde_json::Error,
    },
}

impl Error {
    /// Shorthand for [`Error::File`].
    pub(crate) fn file(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Self::File {
            action,
            path: path.into(),
            source,
        }
    }
}

impl Error {
    /// The message with its causes, for the text of a libvirt error.
    pub fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    }

    /// Converts into the calls layer's error, naming the failed `operation`.
    ///
    /// Configuration problems become `VIR_ERR_CONFIG_UNSUPPORTED`, a QMP
    /// timeout `VIR_ERR_OPERATION_TIMEOUT`, file and process failures
    /// `VIR_ERR_SYSTEM_ERROR`, a command QEMU refused `VIR_ERR_INTERNAL_ERROR`
    /// in libvirt's words, everything else QEMU did or said
    /// `VIR_ERR_OPERATION_FAILED` (domain `VIR_FROM_QEMU`).
    pub fn into_core(self, operation: &'static str) -> migrated_core::Error {
        use migrated_core::Error as Core;
        match self {
            Error::InvalidConfig { reason } => Core::ConfigUnsupported { reason },
            Error::PciAddress { reason } => Core::XmlConfig { reason },
            Error::PciAddressInternal { reason } => Core::Internal { reason },
            e @ Error::UnknownMachine { .. } => Core::ConfigUnsupported {
                reason: e.to_string(),
            },
            Error::QmpTimeout { after, .. } => Core::OperationTimeout {
                operation,
                millis: u64::try_from(after.as_millis()).unwrap_or(u64::MAX),
            },
            Error::File {
                action,
                path,
                source,
            } => Core::system(format!("{action} {}", path.display()), source),
            Error::Spawn { emulator, source } => {
                Core::system(format!("spawn {}", emulator.display()), source)
            }
            Error::Process {
                action,
                pid,
                source,
            } => Core::system(format!("{action} process {pid}"), source),
            // QEMU's refusal in libvirt's words (qemuMonitorJSONCheckError):
            // the command and QEMU's description, without the class.
            Error::QmpCommand { command, desc, .. } => Core::Internal {
                reason: format!("unable to execute QEMU command '{command}': {desc}"),
            },
            other => Core::OperationFailed {
                operation,
                reason: other.chain(),
            },
        }
    }
}

impl From<Error> for migrated_core::Error {
    fn from(e: Error) -> Self {
        e.into_core("qemu")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use migrated_core::error::ErrorCode;

    #[test]
    fn maps_to_libvirt_codes() {
        let cases = [
            (
                Error::InvalidConfig { reason: "x".into() },
                ErrorCode::ConfigUnsupported,
            ),
            (
                Error::QmpTimeout {
                    command: "stop".into(),
                    after: Duration::from_secs(1),
                },
                ErrorCode::OperationTimeout,
            ),
            (
                Error::file("write", "/x", std::io::Error::other("disk full")),
                ErrorCode::SystemError,
            ),
            (
                Error::EmulatorExited {
                    status: "exit code 1".into(),
                    stderr: "qemu: bad".into(),
                },
                ErrorCode::OperationFailed,
            ),
            (
                Error::EmulatorNotFound {
                    name: "qemu-system-x86_64".into(),
                },
                ErrorCode::OperationFailed,
            ),
        ];
        for (err, code) in cases {
            assert_eq!(err.into_core("start").code(), code);
        }
    }

    #[test]
    fn qemu_refusals_are_libvirts_internal_error() {
        let core = Error::QmpCommand {
            command: "device_del".into(),
            class: "GenericError".into(),
            desc: "Device 'x' not found".into(),
        }
        .into_core("virDomainDetachDeviceFlags");
        assert_eq!(core.code(), ErrorCode::InternalError);
        assert_eq!(
            core.to_string(),
            "internal error: unable to execute QEMU command 'device_del': Device 'x' not found"
        );
    }

    #[test]
    fn stderr_survives_into_the_message() {
        let core = Error::EmulatorExited {
            status: "exit code 1".into(),
            stderr: "unsupported machine type".into(),
        }
        .into_core("virDomainCreate");
        assert!(core.to_string().contains("unsupported machine type"));
    }
}
