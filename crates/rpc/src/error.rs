//! The crate's error type and [`WireError`], the `remote_error` payload.
//!
//! `remote_error` (libvirt `virnetprotocol.x`, `virNetMessageError`) travels
//! in every ERROR reply and server-side stream ERROR packet. Its wire form is
//! `migrated_proto::NetMessageError` (generated from `proto/virnet.x`);
//! [`WireError`] is the owned, easy-to-build view the RPC layer and the
//! daemon use, converted at the edge.

use std::path::PathBuf;

use bytes::Bytes;
use migrated_proto::NetMessageError;

/// `VIR_ERR_INTERNAL_ERROR`.
pub const VIR_ERR_INTERNAL_ERROR: i32 = 1;
/// `VIR_ERR_OPERATION_FAILED`.
pub const VIR_ERR_OPERATION_FAILED: i32 = 9;
/// `VIR_ERR_RPC`: protocol-level errors.
pub const VIR_ERR_RPC: i32 = 39;
/// `VIR_ERR_AUTH_FAILED`.
pub const VIR_ERR_AUTH_FAILED: i32 = 45;
/// `VIR_ERR_OPERATION_ABORTED`.
pub const VIR_ERR_OPERATION_ABORTED: i32 = 78;
/// `VIR_FROM_NONE`.
pub const VIR_FROM_NONE: i32 = 0;
/// `VIR_FROM_RPC`.
pub const VIR_FROM_RPC: i32 = 7;
/// `VIR_FROM_REMOTE`.
pub const VIR_FROM_REMOTE: i32 = 13;
/// `VIR_FROM_STREAMS`.
pub const VIR_FROM_STREAMS: i32 = 38;
/// `VIR_ERR_ERROR`: the level every error we send carries.
pub const VIR_ERR_LEVEL_ERROR: i32 = 2;
/// `VIR_NET_MESSAGE_STRING_MAX`: bound on each string inside `remote_error`.
pub const ERROR_STRING_MAX: usize = migrated_proto::VIR_NET_MESSAGE_STRING_MAX;

/// Convenience alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the RPC layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading from or writing to the socket failed.
    #[error("connection i/o failed")]
    Io(#[from] std::io::Error),
    /// A length word below the 28-byte minimum: the frame boundary is lost.
    #[error("frame length {len} is below the 28-byte minimum")]
    FrameTooShort {
        /// The announced length.
        len: usize,
    },
    /// A length word above `VIR_NET_MESSAGE_MAX` + 4.
    #[error("frame length {len} exceeds the 32 MiB message limit")]
    FrameTooLong {
        /// The announced length.
        len: usize,
    },
    /// The header holds an undefined type or status (the frame itself is intact).
    #[error("invalid message header: {reason}")]
    InvalidHeader {
        /// What was wrong.
        reason: String,
    },
    /// A peer's packet made no sense at this point of the protocol.
    #[error("protocol violation: {reason}")]
    Protocol {
        /// What was wrong.
        reason: String,
    },
    /// An ERROR payload that is not a valid `remote_error`.
    #[error("malformed remote_error payload")]
    BadErrorPayload(#[source] migrated_xdr::Error),
    /// The peer answered with an ERROR reply or ERROR stream packet.
    #[error("{0}")]
    Remote(WireError),
    /// The connection is closed (by either side, or by keepalive).
    #[error("connection closed")]
    Closed,
    /// No reply within the configured call timeout.
    #[error("call timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// The peer stopped answering keepalive pings.
    #[error("connection closed: peer did not answer {count} keepalive pings")]
    KeepaliveTimeout {
        /// Pings sent without answer.
        count: u32,
    },
    /// A stream was used after it finished or was aborted.
    #[error("stream already finished")]
    StreamFinished,
    /// Binding or preparing a listening socket failed.
    #[error("cannot listen on {addr}")]
    Listen {
        /// The address or path.
        addr: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A UNIX socket path is served by another live process.
    #[error("socket {0} is in use by another process")]
    SocketInUse(PathBuf),
    /// A PEM file could not be read or holds nothing usable.
    #[error("cannot load {what} from {path}: {reason}")]
    Pem {
        /// Which item (CA certificate, client certificate, ...).
        what: &'static str,
        /// File that was read.
        path: PathBuf,
        /// Why it failed.
        reason: String,
    },
    /// A certificate failed a sanity or policy check.
    #[error("certificate {path}: {reason}")]
    CertificateCheck {
        /// File holding the certificate.
        path: PathBuf,
        /// The problem, in words.
        reason: String,
    },
    /// Building a rustls configuration failed.
    #[error("invalid TLS configuration")]
    TlsConfig(#[source] rustls::Error),
    /// The TLS handshake failed; `reason` names the certificate problem.
    #[error("TLS handshake failed: {reason}")]
    TlsHandshake {
        /// Readable cause (unknown CA, expired, name mismatch, ...).
        reason: String,
    },
    /// The server did not send libvirt's 0x01 "you are accepted" byte.
    #[error("server verification (of our certificate or IP address) failed")]
    ServerVerificationFailed,
    /// The client certificate's subject is not in the allowed DN list.
    #[error("client certificate subject {dn:?} is not in the allowed DN list")]
    DnNotAllowed {
        /// The rendered subject DN.
        dn: String,
    },
    /// A server name for TLS could not be parsed (neither DNS name nor IP).
    #[error("invalid TLS server name {0:?}")]
    ServerName(String),
}

/// A libvirt error as carried by `remote_error`.
///
/// `dom` and `net` are always sent absent, as libvirtd does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    /// `virErrorNumber`.
    pub code: i32,
    /// `virErrorDomain`.
    pub domain: i32,
    /// Human text clients print.
    pub message: Option<String>,
    /// 0 none, 1 warning, 2 error.
    pub level: i32,
    /// Extra info (libvirtd: the message format string).
    pub str1: Option<String>,
    /// Extra info (libvirtd: the format's argument).
    pub str2: Option<String>,
    /// Extra info, usually absent.
    pub str3: Option<String>,
    /// Extra number, clients ignore it.
    pub int1: i32,
    /// Extra number, clients ignore it.
    pub int2: i32,
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.message {
            Some(m) => write!(f, "{m} (code {}, domain {})", self.code, self.domain),
            None => write!(f, "remote error code {}, domain {}", self.code, self.domain),
        }
    }
}

impl std::error::Error for WireError {}

impl WireError {
    /// An error-level `WireError` with a message and no extras.
    pub fn new(code: i32, domain: i32, message: impl Into<String>) -> Self {
        Self {
            code,
            domain,
            message: Some(message.into()),
            level: VIR_ERR_LEVEL_ERROR,
            str1: None,
            str2: None,
            str3: None,
            int1: -1,
            int2: -1,
        }
    }

    /// `VIR_ERR_RPC` / `VIR_FROM_RPC`, the answer to protocol violations,
    /// with the extras libvirt's `virReportError` gives that code: `str1` its
    /// format "%s", `str2` the message.
    pub fn rpc(message: impl Into<String>) -> Self {
        let message = message.into();
        Self {
            str1: Some("%s".to_owned()),
            str2: Some(message.clone()),
            ..Self::new(VIR_ERR_RPC, VIR_FROM_RPC, message)
        }
    }

    /// `VIR_ERR_INTERNAL_ERROR` / `VIR_FROM_RPC`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(VIR_ERR_INTERNAL_ERROR, VIR_FROM_RPC, message)
    }

    /// The generated wire structure (`dom` and `net` absent, strings cut to
    /// `VIR_NET_MESSAGE_STRING_MAX` so encoding cannot fail on length).
    pub fn to_net_message_error(&self) -> NetMessageError {
        let cut = |s: &Option<String>| {
            s.as_deref()
                .map(|s| truncate_utf8(s, ERROR_STRING_MAX).to_owned())
        };
        NetMessageError {
            code: self.code,
            domain: self.domain,
            message: cut(&self.message),
            level: self.level,
            dom: None,
            str1: cut(&self.str1),
            str2: cut(&self.str2),
            str3: cut(&self.str3),
            int1: self.int1,
            int2: self.int2,
            net: None,
        }
    }

    /// Encodes the `remote_error` XDR structure.
    pub fn encode(&self) -> Bytes {
        match migrated_xdr::to_bytes(&self.to_net_message_error()) {
            Ok(bytes) => Bytes::from(bytes),
            Err(err) => {
                // Unreachable with the strings cut above; never send garbage.
                tracing::error!(error = %err, "cannot encode remote_error");
                let fallback = Self::internal("error message could not be encoded");
                Bytes::from(
                    migrated_xdr::to_bytes(&fallback.to_net_message_error()).unwrap_or_default(),
                )
            }
        }
    }

    /// Decodes a `remote_error` (present `dom`/`net` members are accepted and dropped).
    ///
    /// # Errors
    /// [`Error::BadErrorPayload`] on truncation, an oversized string or trailing bytes.
    pub fn decode(src: &[u8]) -> Result<Self> {
        migrated_xdr::from_bytes::<NetMessageError>(src)
            .map(Self::from)
            .map_err(Error::BadErrorPayload)
    }
}

impl From<NetMessageError> for WireError {
    fn from(e: NetMessageError) -> Self {
        Self {
            code: e.code,
            domain: e.domain,
            message: e.message,
            level: e.level,
            str1: e.str1,
            str2: e.str2,
            str3: e.str3,
            int1: e.int1,
            int2: e.int2,
        }
    }
}

impl From<WireError> for NetMessageError {
    fn from(e: WireError) -> Self {
        e.to_net_message_error()
    }
}

fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};

    #[test]
    fn wire_error_round_trips() {
        let e = WireError::rpc("cannot find program 0x12345678 version 1");
        assert_eq!(e.str1.as_deref(), Some("%s"));
        assert_eq!(e.str2, e.message);
        let bytes = e.encode();
        assert_eq!(bytes.len() % 4, 0);
        assert_eq!(WireError::decode(&bytes).ok(), Some(e));
    }

    #[test]
    fn wire_error_layout_matches_remote_error() {
        let e = WireError::new(42, 10, "ab");
        let b = e.encode();
        let words: Vec<i32> = b
            .chunks(4)
            .map(|c| i32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        // code, domain, msg present, len 2, "ab\0\0", level, dom absent,
        // str1..3 absent, int1, int2, net absent
        assert_eq!(
            words,
            vec![42, 10, 1, 2, 0x6162_0000, 2, 0, 0, 0, 0, -1, -1, 0]
        );
    }

    #[test]
    fn wire_error_decode_accepts_present_dom_and_refuses_garbage() {
        let mut b = BytesMut::new();
        b.put_i32(42);
        b.put_i32(10);
        b.put_u32(0);
        b.put_i32(2);
        b.put_u32(1); // dom present
        b.put_u32(1);
        b.extend_from_slice(b"d\0\0\0");
        b.put_bytes(7, 16);
        b.put_i32(-1);
        b.put_u32(0);
        b.put_u32(0);
        b.put_u32(0);
        b.put_i32(0);
        b.put_i32(0);
        b.put_u32(0);
        let e = WireError::decode(&b).expect("valid remote_error");
        assert_eq!((e.code, e.domain, e.message), (42, 10, None));
        assert!(WireError::decode(&b[..b.len() - 1]).is_err());
        let mut huge = BytesMut::new();
        huge.put_i32(1);
        huge.put_i32(1);
        huge.put_u32(1);
        huge.put_u32(u32::MAX);
        assert!(WireError::decode(&huge).is_err());
    }
}
