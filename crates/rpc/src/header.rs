//! The fixed 24-byte message header and the [`Message`] it introduces.
//!
//! Mirrors `virNetMessageHeader` (libvirt `src/rpc/virnetprotocol.x`): six
//! big-endian words `prog, vers, proc, type, serial, status`. Encoded by hand
//! because the header is read on every packet before the XDR payload is
//! interpreted by anyone.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::{Error, Result};

/// Size of the encoded header in bytes (`VIR_NET_MESSAGE_HEADER_MAX`).
pub const HEADER_LEN: usize = 24;

/// Packet kind and outcome enums, shared with the generated protocol crate
/// so there is one definition of each.
pub use migrated_proto::{MessageStatus, MessageType};

/// The decoded header of one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Program number (`REMOTE_PROGRAM`, `KEEPALIVE_PROGRAM`, ...).
    pub prog: u32,
    /// Program version (1 for every program we speak).
    pub vers: u32,
    /// Procedure number within the program.
    pub proc_: i32,
    /// Packet kind.
    pub type_: MessageType,
    /// Call/reply matching number; streams reuse the opening call's serial.
    pub serial: u32,
    /// Outcome.
    pub status: MessageStatus,
}

impl Header {
    /// Appends the six header words to `dst`.
    pub fn encode(&self, dst: &mut BytesMut) {
        dst.reserve(HEADER_LEN);
        dst.put_u32(self.prog);
        dst.put_u32(self.vers);
        dst.put_i32(self.proc_);
        dst.put_i32(self.type_ as i32);
        dst.put_u32(self.serial);
        dst.put_i32(self.status as i32);
    }

    /// Decodes the header from the first [`HEADER_LEN`] bytes of `src`.
    ///
    /// # Errors
    /// [`Error::InvalidHeader`] when `src` is too short or the type/status
    /// word holds a value libvirt does not define. The frame boundary is
    /// still intact in that case, so callers may skip the packet.
    pub fn decode(mut src: &[u8]) -> Result<Self> {
        if src.len() < HEADER_LEN {
            return Err(Error::InvalidHeader {
                reason: format!("{} bytes, need {HEADER_LEN}", src.len()),
            });
        }
        let prog = src.get_u32();
        let vers = src.get_u32();
        let proc_ = src.get_i32();
        let raw_type = src.get_i32();
        let serial = src.get_u32();
        let raw_status = src.get_i32();
        let type_ = MessageType::from_i32(raw_type).ok_or_else(|| Error::InvalidHeader {
            reason: format!("unknown message type {raw_type}"),
        })?;
        let status = MessageStatus::from_i32(raw_status).ok_or_else(|| Error::InvalidHeader {
            reason: format!("unknown message status {raw_status}"),
        })?;
        Ok(Self {
            prog,
            vers,
            proc_,
            type_,
            serial,
            status,
        })
    }

    /// The header of the REPLY answering this CALL header.
    pub fn reply(&self, status: MessageStatus) -> Self {
        Self {
            type_: MessageType::Reply,
            status,
            ..*self
        }
    }
}

/// One complete packet: header plus raw payload bytes (XDR for calls,
/// replies and events; raw data for stream CONTINUE packets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The decoded header.
    pub header: Header,
    /// Everything after the header.
    pub payload: Bytes,
}

impl Message {
    /// Builds a message from its parts.
    pub fn new(header: Header, payload: impl Into<Bytes>) -> Self {
        Self {
            header,
            payload: payload.into(),
        }
    }

    /// Splits a frame body (what [`MessageCodec`](crate::codec::MessageCodec)
    /// yields) into header and payload without copying.
    ///
    /// # Errors
    /// [`Error::InvalidHeader`], see [`Header::decode`].
    pub fn from_frame(mut frame: Bytes) -> Result<Self> {
        let header = Header::decode(&frame)?;
        frame.advance(HEADER_LEN);
        Ok(Self {
            header,
            payload: frame,
        })
    }

    /// Bytes this message occupies on the wire, length word included.
    pub fn wire_len(&self) -> usize {
        crate::codec::LEN_WORD + HEADER_LEN + self.payload.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_through_six_big_endian_words() {
        let header = Header {
            prog: 0x2000_8086,
            vers: 1,
            proc_: 1,
            type_: MessageType::Call,
            serial: 7,
            status: MessageStatus::Ok,
        };
        let mut buf = BytesMut::new();
        header.encode(&mut buf);
        assert_eq!(
            &buf[..],
            &[0x20, 0x00, 0x80, 0x86, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0]
        );
        assert_eq!(Header::decode(&buf).ok(), Some(header));
    }

    #[test]
    fn unknown_type_or_status_is_an_invalid_header() {
        let mut words = [0u8; HEADER_LEN];
        words[15] = 9; // type 9
        assert!(matches!(
            Header::decode(&words),
            Err(Error::InvalidHeader { .. })
        ));
        let mut words = [0u8; HEADER_LEN];
        words[23] = 3; // status 3
        assert!(matches!(
            Header::decode(&words),
            Err(Error::InvalidHeader { .. })
        ));
        assert!(matches!(
            Header::decode(&words[..10]),
            Err(Error::InvalidHeader { .. })
        ));
    }
}
