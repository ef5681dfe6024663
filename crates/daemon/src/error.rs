//! The daemon library's error type: everything that can fail while setting
//! the daemon up (configuration, listeners, systemd hand-over).
//!
//! Errors of *calls* are `migrated_core::Error` and travel to clients through
//! [`crate::wire::to_wire_error`]; they never become this type.

use std::path::PathBuf;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A failure to configure or start the daemon.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The config file could not be read.
    #[error("cannot read config file {}", path.display())]
    ReadConfig {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// The config file is not valid TOML or has unknown keys.
    #[error("invalid config file {}", path.display())]
    ParseConfig {
        /// The file.
        path: PathBuf,
        /// What the TOML parser said.
        #[source]
        source: Box<toml::de::Error>,
    },

    /// A `--listen` value could not be understood.
    #[error("invalid listen address {spec:?}: {reason}")]
    ListenSpec {
        /// What was given.
        spec: String,
        /// What is expected instead.
        reason: &'static str,
    },

    /// A `--migration-ports` value is not `FIRST-LAST` with FIRST ≤ LAST.
    #[error("invalid migration port range {0:?}: expected FIRST-LAST, e.g. 49152-49215")]
    PortRange(String),

    /// Neither /etc/machine-id nor SMBIOS gave a host UUID.
    #[error(
        "cannot determine the host UUID (no usable /etc/machine-id or \
         /sys/class/dmi/id/product_uuid); pass --host-uuid or set host_uuid in the config file"
    )]
    NoHostUuid,

    /// A listening socket could not be created.
    #[error("cannot listen on {what}")]
    Listen {
        /// The listener, as written in the configuration.
        what: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// The rpc layer could not set a listener up.
    #[error("cannot listen on {what}")]
    RpcListen {
        /// The listener.
        what: String,
        /// Why.
        #[source]
        source: Box<migrated_rpc::Error>,
    },

    /// The TLS certificate, key, CA or allowed-DN list is unusable.
    #[error("cannot set up TLS")]
    Tls(#[source] Box<migrated_rpc::Error>),

    /// LISTEN_FDS / LISTEN_FDNAMES from systemd could not be used.
    #[error("cannot take the sockets passed by systemd")]
    SocketActivation(#[source] std::io::Error),

    /// systemd passed a socket whose name we do not know.
    #[error("systemd passed a socket named {0:?}; expected rw, ro, tcp, tls or migrated.socket")]
    UnknownSocketName(String),

    /// A hypervisor driver failed to start.
    #[error("cannot start the {driver} driver")]
    Driver {
        /// Which driver.
        driver: &'static str,
        /// Why.
        #[source]
        source: Box<migrated_core::Error>,
    },

    /// A directory the daemon needs could not be created.
    #[error("cannot create directory {}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}
