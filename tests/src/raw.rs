//! A raw-bytes client for protocol tests.
//!
//! It encodes and decodes the few wire shapes tests need by hand, following
//! libvirt-wire.md §1-§2, on purpose without our own `xdr`/`rpc` crates: a
//! test built on the implementation under test could not catch its bugs.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// The remote program number.
pub const REMOTE_PROGRAM: u32 = 0x2000_8086;
/// The keepalive program number ("keep").
pub const KEEPALIVE_PROGRAM: u32 = 0x6b65_6570;
/// Message type CALL.
pub const CALL: i32 = 0;
/// Message type REPLY.
pub const REPLY: i32 = 1;
/// Message type MESSAGE.
pub const MESSAGE: i32 = 2;
/// Status OK.
pub const OK: i32 = 0;
/// Status ERROR.
pub const ERROR: i32 = 1;

/// Procedure numbers used by the tests.
pub mod proc_ {
    /// CONNECT_OPEN.
    pub const CONNECT_OPEN: i32 = 1;
    /// CONNECT_CLOSE.
    pub const CONNECT_CLOSE: i32 = 2;
    /// CONNECT_GET_TYPE.
    pub const CONNECT_GET_TYPE: i32 = 3;
    /// DOMAIN_DEFINE_XML.
    pub const DOMAIN_DEFINE_XML: i32 = 11;
    /// DOMAIN_LOOKUP_BY_NAME.
    pub const DOMAIN_LOOKUP_BY_NAME: i32 = 23;
    /// CONNECT_GET_HOSTNAME.
    pub const CONNECT_GET_HOSTNAME: i32 = 59;
    /// CONNECT_SUPPORTS_FEATURE.
    pub const CONNECT_SUPPORTS_FEATURE: i32 = 60;
    /// AUTH_LIST.
    pub const AUTH_LIST: i32 = 66;
    /// DOMAIN_EVENT_LIFECYCLE (an event: never valid as a CALL).
    pub const DOMAIN_EVENT_LIFECYCLE: i32 = 107;
    /// CONNECT_LIST_ALL_DOMAINS.
    pub const CONNECT_LIST_ALL_DOMAINS: i32 = 273;
    /// CONNECT_DOMAIN_EVENT_REGISTER_ANY (legacy).
    pub const CONNECT_DOMAIN_EVENT_REGISTER_ANY: i32 = 167;
    /// CONNECT_DOMAIN_EVENT_DEREGISTER_ANY (legacy).
    pub const CONNECT_DOMAIN_EVENT_DEREGISTER_ANY: i32 = 168;
    /// CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY.
    pub const CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY: i32 = 316;
    /// CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY.
    pub const CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY: i32 = 317;
}

/// The six header words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Program.
    pub prog: u32,
    /// Version.
    pub vers: u32,
    /// Procedure.
    pub proc_: i32,
    /// Message type.
    pub type_: i32,
    /// Serial.
    pub serial: u32,
    /// Status.
    pub status: i32,
}

impl Header {
    /// A CALL header of the remote program.
    pub fn call(proc_: i32, serial: u32) -> Self {
        Header {
            prog: REMOTE_PROGRAM,
            vers: 1,
            proc_,
            type_: CALL,
            serial,
            status: OK,
        }
    }
}

/// A whole message: length word (counting itself), header, payload.
pub fn message(header: Header, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(28 + payload.len()).expect("test message under 4 GiB");
    let mut out = Vec::with_capacity(28 + payload.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&header.prog.to_be_bytes());
    out.extend_from_slice(&header.vers.to_be_bytes());
    out.extend_from_slice(&header.proc_.to_be_bytes());
    out.extend_from_slice(&header.type_.to_be_bytes());
    out.extend_from_slice(&header.serial.to_be_bytes());
    out.extend_from_slice(&header.status.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// XDR helpers for payloads.
pub mod xdr {
    /// A 4-byte big-endian word.
    pub fn u32(v: u32) -> Vec<u8> {
        v.to_be_bytes().to_vec()
    }

    /// A 4-byte signed word.
    pub fn i32(v: i32) -> Vec<u8> {
        v.to_be_bytes().to_vec()
    }

    /// An XDR string or variable opaque: length, bytes, zero padding.
    pub fn opaque(bytes: &[u8]) -> Vec<u8> {
        let mut out = u32(u32::try_from(bytes.len()).expect("short test string"));
        out.extend_from_slice(bytes);
        out.resize(out.len() + (4 - bytes.len() % 4) % 4, 0);
        out
    }

    /// An XDR string.
    pub fn string(s: &str) -> Vec<u8> {
        opaque(s.as_bytes())
    }

    /// A present optional string.
    pub fn some_string(s: &str) -> Vec<u8> {
        let mut out = u32(1);
        out.extend(string(s));
        out
    }

    /// Reads a string at `*pos`, advancing it.
    pub fn read_string(buf: &[u8], pos: &mut usize) -> Option<String> {
        let len = usize::try_from(read_u32(buf, pos)?).ok()?;
        let bytes = buf.get(*pos..pos.checked_add(len)?)?;
        *pos += len + (4 - len % 4) % 4;
        String::from_utf8(bytes.to_vec()).ok()
    }

    /// Reads a word at `*pos`, advancing it.
    pub fn read_u32(buf: &[u8], pos: &mut usize) -> Option<u32> {
        let word = buf.get(*pos..*pos + 4)?;
        *pos += 4;
        Some(u32::from_be_bytes(word.try_into().ok()?))
    }
}

/// A `remote_error` payload (`dom` and `net` skipped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    /// virErrorNumber.
    pub code: i32,
    /// virErrorDomain.
    pub domain: i32,
    /// The message, if sent.
    pub message: Option<String>,
    /// The level (2 = error).
    pub level: i32,
    /// Extra string (libvirtd: the message's format, or a function name).
    pub str1: Option<String>,
    /// Extra string (libvirtd: the format's argument, or "flags").
    pub str2: Option<String>,
    /// Extra string.
    pub str3: Option<String>,
    /// Extra number.
    pub int1: i32,
    /// Extra number.
    pub int2: i32,
}

impl WireError {
    /// Decodes a `remote_error`; `None` if it is malformed or has trailing bytes.
    pub fn decode(payload: &[u8]) -> Option<Self> {
        let mut pos = 0;
        let code = xdr::read_u32(payload, &mut pos)? as i32;
        let domain = xdr::read_u32(payload, &mut pos)? as i32;
        let message = read_optional_string(payload, &mut pos)?;
        let level = xdr::read_u32(payload, &mut pos)? as i32;
        // dom: optional remote_nonnull_domain (name, uuid, id).
        if xdr::read_u32(payload, &mut pos)? == 1 {
            xdr::read_string(payload, &mut pos)?;
            pos = pos.checked_add(16 + 4).filter(|p| *p <= payload.len())?;
        }
        let str1 = read_optional_string(payload, &mut pos)?;
        let str2 = read_optional_string(payload, &mut pos)?;
        let str3 = read_optional_string(payload, &mut pos)?;
        let int1 = xdr::read_u32(payload, &mut pos)? as i32;
        let int2 = xdr::read_u32(payload, &mut pos)? as i32;
        // net: optional remote_nonnull_network (name, uuid).
        if xdr::read_u32(payload, &mut pos)? == 1 {
            xdr::read_string(payload, &mut pos)?;
            pos = pos.checked_add(16).filter(|p| *p <= payload.len())?;
        }
        (pos == payload.len()).then_some(WireError {
            code,
            domain,
            message,
            level,
            str1,
            str2,
            str3,
            int1,
            int2,
        })
    }
}

/// An XDR `string *`: `Some(None)` when absent, `None` when malformed.
fn read_optional_string(buf: &[u8], pos: &mut usize) -> Option<Option<String>> {
    match xdr::read_u32(buf, pos)? {
        0 => Some(None),
        1 => Some(Some(xdr::read_string(buf, pos)?)),
        _ => None,
    }
}

/// A reply: header and payload bytes.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The header.
    pub header: Header,
    /// The payload after the header.
    pub payload: Vec<u8>,
}

impl Reply {
    /// The decoded error when status is ERROR.
    pub fn error(&self) -> Option<WireError> {
        (self.header.status == ERROR)
            .then(|| WireError::decode(&self.payload))
            .flatten()
    }
}

/// One raw TCP connection.
#[derive(Debug)]
pub struct RawConn {
    stream: TcpStream,
    next_serial: u32,
}

/// Replies larger than this are a test failure, not something to allocate.
const MAX_TEST_REPLY: usize = 8 << 20;

impl RawConn {
    /// Connects with a 10 s read timeout.
    ///
    /// # Errors
    /// The connect error.
    pub fn connect(addr: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.set_nodelay(true)?;
        Ok(RawConn {
            stream,
            next_serial: 0,
        })
    }

    /// Sends raw bytes.
    ///
    /// # Errors
    /// The write error.
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Reads one whole message.
    ///
    /// # Errors
    /// EOF, timeout, or a malformed/oversized frame from the daemon.
    pub fn read_reply(&mut self) -> io::Result<Reply> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len)?;
        let len = u32::from_be_bytes(len) as usize;
        if !(28..=MAX_TEST_REPLY).contains(&len) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad reply length {len}"),
            ));
        }
        let mut rest = vec![0u8; len - 4];
        self.stream.read_exact(&mut rest)?;
        let word = |i: usize| u32::from_be_bytes([rest[i], rest[i + 1], rest[i + 2], rest[i + 3]]);
        Ok(Reply {
            header: Header {
                prog: word(0),
                vers: word(4),
                proc_: word(8) as i32,
                type_: word(12) as i32,
                serial: word(16),
                status: word(20) as i32,
            },
            payload: rest[24..].to_vec(),
        })
    }

    /// Reads messages until the reply with `serial` (skipping keepalive and events).
    ///
    /// # Errors
    /// As [`RawConn::read_reply`].
    pub fn read_reply_to(&mut self, serial: u32) -> io::Result<Reply> {
        loop {
            let reply = self.read_reply()?;
            if reply.header.type_ == REPLY && reply.header.serial == serial {
                return Ok(reply);
            }
        }
    }

    /// Sends a remote-program CALL and waits for its reply.
    ///
    /// # Errors
    /// As [`RawConn::read_reply`].
    pub fn call(&mut self, proc_: i32, payload: &[u8]) -> io::Result<Reply> {
        let serial = self.next_serial;
        self.next_serial += 1;
        self.send(&message(Header::call(proc_, serial), payload))?;
        self.read_reply_to(serial)
    }

    /// Returns `true` when the daemon closed the connection (EOF) within the
    /// read timeout, ignoring any messages it sent first.
    pub fn is_closed_by_peer(&mut self) -> bool {
        let mut buf = [0u8; 4096];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) => {
                    return matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
                    )
                }
            }
        }
    }

    /// Gives access to the socket (e.g. to shut down one direction).
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// The serial the next [`RawConn::call`] will use.
    pub fn next_serial(&self) -> u32 {
        self.next_serial
    }
}

/// Opens a connection the way libvirt's client does (AUTH_LIST, CONNECT_OPEN
/// "test:///default") and asks the host name: the "well-behaved second
/// client" of the bad-input tests. Returns the host name.
///
/// # Panics
/// When any step fails.
pub fn assert_serves(addr: SocketAddr) -> String {
    let mut conn = RawConn::connect(addr).expect("well-behaved client connects");
    let auth = conn.call(proc_::AUTH_LIST, &[]).expect("AUTH_LIST reply");
    assert_eq!(
        auth.header.status,
        OK,
        "AUTH_LIST failed: {:?}",
        auth.error()
    );
    let open = conn
        .call(
            proc_::CONNECT_OPEN,
            &[xdr::some_string("test:///default"), xdr::u32(0)].concat(),
        )
        .expect("CONNECT_OPEN reply");
    assert_eq!(
        open.header.status,
        OK,
        "CONNECT_OPEN failed: {:?}",
        open.error()
    );
    let host = conn
        .call(proc_::CONNECT_GET_HOSTNAME, &[])
        .expect("GET_HOSTNAME reply");
    assert_eq!(
        host.header.status,
        OK,
        "GET_HOSTNAME failed: {:?}",
        host.error()
    );
    let name = xdr::read_string(&host.payload, &mut 0).expect("hostname string");
    let close = conn
        .call(proc_::CONNECT_CLOSE, &[])
        .expect("CONNECT_CLOSE reply");
    assert_eq!(close.header.status, OK);
    name
}
