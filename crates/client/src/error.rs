//! The client library's error type.
//!
//! Remote failures keep libvirt's numbers (`code`, `domain`) and the server's
//! message untouched, so a caller can print `error: <message>` exactly like
//! virsh and match on the code.

use migrated_core::error::ErrorCode;
use migrated_rpc::WireError;

/// Convenience alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the client library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The connection URI could not be parsed or names an unsupported transport.
    #[error("invalid URI '{uri}': {reason}")]
    InvalidUri {
        /// The URI as given.
        uri: String,
        /// What was wrong with it.
        reason: String,
    },
    /// Reaching the daemon failed (socket, TLS handshake, certificates).
    #[error("failed to connect to {address}")]
    Connect {
        /// The address or socket path tried.
        address: String,
        /// Cause (boxed: rpc errors are large and this path is cold).
        #[source]
        source: Box<migrated_rpc::Error>,
    },
    /// The server requires an authentication method we do not implement.
    #[error(
        "authentication method {method} (SASL = 1, polkit = 2) is not supported by this client"
    )]
    UnsupportedAuth {
        /// `remote_auth_type` chosen from the server's list.
        method: i32,
    },
    /// The URI's `auth=` names a method the server does not offer
    /// (libvirt: "requested authentication type ... rejected").
    #[error("requested authentication type {requested} rejected")]
    AuthRejected {
        /// The `auth=` value.
        requested: String,
    },
    /// The server answered a call with a libvirt error.
    #[error("{message}")]
    Remote {
        /// The procedure that failed.
        procedure: &'static str,
        /// `virErrorNumber`.
        code: i32,
        /// `virErrorDomain`.
        domain: i32,
        /// The server's message (what virsh prints after `error: `).
        message: String,
        /// The whole `remote_error` as received, extras (`str1`…`int2`)
        /// included, so that a daemon relaying a peer's error (peer-to-peer
        /// migration) passes it on unchanged as libvirt's remote driver does.
        wire: Box<WireError>,
    },
    /// The call could not be carried out at the RPC level (closed, timeout, ...).
    #[error("{procedure} failed")]
    Rpc {
        /// The procedure being called.
        procedure: &'static str,
        /// Cause (boxed, as for [`Error::Connect`]).
        #[source]
        source: Box<migrated_rpc::Error>,
    },
    /// The call's arguments could not be encoded.
    #[error("cannot encode arguments of {procedure}")]
    Encode {
        /// The procedure being called.
        procedure: &'static str,
        /// Cause.
        #[source]
        source: migrated_xdr::Error,
    },
    /// The server's reply could not be decoded.
    #[error("cannot decode reply of {procedure}")]
    Decode {
        /// The procedure being called.
        procedure: &'static str,
        /// Cause.
        #[source]
        source: migrated_xdr::Error,
    },
    /// A reply decoded but holds values the calls layer refuses (e.g. a
    /// typed parameter boolean other than 0/1).
    #[error("invalid value in reply to {procedure}")]
    ReplyValue {
        /// The procedure being called.
        procedure: &'static str,
        /// Cause (boxed: core errors are large and this path is cold).
        #[source]
        source: Box<migrated_core::Error>,
    },
    /// A migration step failed in this process: a request the calls layer
    /// refused before sending it, a sequencer rule, or (in the daemon's
    /// peer-to-peer source) the local endpoint's own failure.
    #[error(transparent)]
    Local(Box<migrated_core::Error>),
    /// A reply was well-formed but made no sense (e.g. a bad UUID length).
    #[error("invalid reply to {procedure}: {reason}")]
    InvalidReply {
        /// The procedure being called.
        procedure: &'static str,
        /// What was wrong.
        reason: String,
    },
}

impl Error {
    /// Maps an RPC failure of `procedure`: ERROR replies become [`Error::Remote`].
    pub(crate) fn from_rpc(procedure: &'static str, source: migrated_rpc::Error) -> Self {
        match source {
            migrated_rpc::Error::Remote(wire) => Self::from_wire(procedure, wire),
            source => Self::Rpc {
                procedure,
                source: Box::new(source),
            },
        }
    }

    /// Builds [`Error::Remote`] from a decoded `remote_error`.
    pub fn from_wire(procedure: &'static str, wire: WireError) -> Self {
        let message = wire.message.clone().unwrap_or_else(|| {
            format!("unknown error (code {}, domain {})", wire.code, wire.domain)
        });
        Self::Remote {
            procedure,
            code: wire.code,
            domain: wire.domain,
            message,
            wire: Box::new(wire),
        }
    }

    /// libvirt's `virErrorNumber` for remote errors, `None` for local failures.
    pub fn remote_code(&self) -> Option<i32> {
        match self {
            Self::Remote { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// libvirt's `(virErrorNumber, virErrorDomain)` when the error has them:
    /// remote errors and [`Error::Local`] calls-layer errors.
    pub fn libvirt_code(&self) -> Option<(i32, i32)> {
        match self {
            Self::Remote { code, domain, .. } => Some((*code, *domain)),
            Self::Local(e) => Some((e.code() as i32, e.domain() as i32)),
            _ => None,
        }
    }

    /// Whether this is a remote error with libvirt code `code`
    /// (`err.is_code(ErrorCode::NoDomain)`).
    pub fn is_code(&self, code: ErrorCode) -> bool {
        self.remote_code() == Some(code as i32)
    }

    /// libvirt's `virErrorDomain` for remote errors, `None` for local failures.
    pub fn remote_domain(&self) -> Option<i32> {
        match self {
            Self::Remote { domain, .. } => Some(*domain),
            _ => None,
        }
    }

    /// libvirt's words for a socket that could not be connected
    /// (`virNetSocketNewConnectTCP` / `virNetSocketNewConnectUNIX`, reported
    /// as `VIR_ERR_SYSTEM_ERROR` from `VIR_FROM_RPC`): "unable to connect to
    /// server at 'HOST:PORT': Connection refused". `None` for every other
    /// error, a TLS handshake failure included.
    pub fn socket_connect_message(&self) -> Option<String> {
        let Self::Connect { address, source } = self else {
            return None;
        };
        let migrated_rpc::Error::Io(io) = source.as_ref() else {
            return None;
        };
        io.raw_os_error()?;
        // std's text is strerror's followed by " (os error N)".
        let text = io.to_string();
        let strerror = text.split(" (os error ").next().unwrap_or(&text);
        if let Some(path) = address.strip_prefix("unix:") {
            return Some(format!("Failed to connect socket to '{path}': {strerror}"));
        }
        let host_port = address
            .strip_prefix("tcp://")
            .or_else(|| address.strip_prefix("tls://"))?;
        Some(format!(
            "unable to connect to server at '{host_port}': {strerror}"
        ))
    }
}

impl From<migrated_core::Error> for Error {
    fn from(e: migrated_core::Error) -> Self {
        Self::Local(Box::new(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect_error(address: &str, errno: i32) -> Error {
        Error::Connect {
            address: address.into(),
            source: Box::new(migrated_rpc::Error::Io(std::io::Error::from_raw_os_error(
                errno,
            ))),
        }
    }

    #[test]
    fn a_refused_socket_is_worded_as_libvirt() {
        assert_eq!(
            connect_error("tcp://127.0.0.1:1", 111)
                .socket_connect_message()
                .as_deref(),
            Some("unable to connect to server at '127.0.0.1:1': Connection refused")
        );
        assert_eq!(
            connect_error("unix:/run/x/sock", 2)
                .socket_connect_message()
                .as_deref(),
            Some("Failed to connect socket to '/run/x/sock': No such file or directory")
        );
    }

    #[test]
    fn other_failures_have_no_socket_wording() {
        let tls = Error::Connect {
            address: "tls://127.0.0.1:16514".into(),
            source: Box::new(migrated_rpc::Error::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "bad certificate",
            ))),
        };
        assert_eq!(tls.socket_connect_message(), None);
        let local = Error::Local(Box::new(migrated_core::Error::internal("x")));
        assert_eq!(local.socket_connect_message(), None);
    }
}
