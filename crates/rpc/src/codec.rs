//! Framing: the self-counting length word and libvirt's size limits.
//!
//! A frame on the wire is `length:u32` followed by `length - 4` bytes
//! (header + payload). The decoder yields the bytes after the length word;
//! [`Message::from_frame`](crate::Message::from_frame) splits them. Keeping
//! the header out of the codec lets a bad header be skipped while a bad
//! length (which loses the frame boundary) ends the connection.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::error::Error;
use crate::header::{Message, HEADER_LEN};

/// Size of the length word (`VIR_NET_MESSAGE_LEN_MAX`).
pub const LEN_WORD: usize = 4;
/// Largest `length - 4` libvirt 9.0 accepts (`VIR_NET_MESSAGE_MAX`, 32 MiB).
pub const MESSAGE_MAX: usize = migrated_proto::VIR_NET_MESSAGE_MAX;
/// Largest payload after the header (`VIR_NET_MESSAGE_PAYLOAD_MAX`).
pub const PAYLOAD_MAX: usize = MESSAGE_MAX - HEADER_LEN;
/// Smallest legal length word: a header-only message.
pub const FRAME_MIN: usize = LEN_WORD + HEADER_LEN;

/// tokio-util codec for libvirt frames.
///
/// Decoding yields the header+payload bytes of each frame; encoding takes a
/// whole [`Message`].
#[derive(Debug, Default, Clone, Copy)]
pub struct MessageCodec {
    _private: (),
}

impl MessageCodec {
    /// A codec with libvirt 9.0's limits.
    pub fn new() -> Self {
        Self::default()
    }
}

/// Most spare capacity the decoder asks for at once while a frame is incomplete.
const RESERVE_STEP: usize = 256 * 1024;

impl Decoder for MessageCodec {
    type Item = Bytes;
    type Error = Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, Error> {
        if src.len() < LEN_WORD {
            return Ok(None);
        }
        let len = u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize;
        if len < FRAME_MIN {
            return Err(Error::FrameTooShort { len });
        }
        if len - LEN_WORD > MESSAGE_MAX {
            return Err(Error::FrameTooLong { len });
        }
        if src.len() < len {
            // Grow with the bytes that actually arrive, never by the claimed
            // length: a peer announcing 32 MiB and sending nothing must not
            // cost 32 MiB. FramedRead reads into the spare capacity, so a
            // bounded step keeps large frames efficient.
            src.reserve((len - src.len()).min(RESERVE_STEP));
            return Ok(None);
        }
        src.advance(LEN_WORD);
        Ok(Some(src.split_to(len - LEN_WORD).freeze()))
    }
}

impl Encoder<Message> for MessageCodec {
    type Error = Error;

    fn encode(&mut self, msg: Message, dst: &mut BytesMut) -> Result<(), Error> {
        let len = msg.wire_len();
        if len - LEN_WORD > MESSAGE_MAX {
            return Err(Error::FrameTooLong { len });
        }
        dst.reserve(len);
        // Bounded by MESSAGE_MAX just above, so it fits in a u32.
        dst.put_u32(len as u32);
        msg.header.encode(dst);
        dst.extend_from_slice(&msg.payload);
        Ok(())
    }
}

/// Encodes one message into a fresh buffer (length word included).
///
/// # Errors
/// [`Error::FrameTooLong`] when the payload exceeds [`PAYLOAD_MAX`].
pub fn encode_message(msg: Message) -> Result<Bytes, Error> {
    let mut buf = BytesMut::new();
    MessageCodec::new().encode(msg, &mut buf)?;
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::{Header, MessageStatus, MessageType};

    fn ping() -> Message {
        Message::new(
            Header {
                prog: 0x6b65_6570,
                vers: 1,
                proc_: 1,
                type_: MessageType::Message,
                serial: 0,
                status: MessageStatus::Ok,
            },
            Bytes::new(),
        )
    }

    #[test]
    fn keepalive_ping_encodes_like_libvirt() {
        let bytes = encode_message(ping()).expect("small message");
        let expected: [u32; 7] = [0x1c, 0x6b65_6570, 1, 1, 2, 0, 0];
        let words: Vec<u32> = bytes
            .chunks(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(words, expected);
    }

    #[test]
    fn a_claimed_length_does_not_allocate_the_claim() {
        let mut codec = MessageCodec::new();
        let claim = u32::try_from(MESSAGE_MAX + LEN_WORD).expect("fits");
        let mut src = BytesMut::from(&claim.to_be_bytes()[..]);
        assert!(codec.decode(&mut src).expect("legal length").is_none());
        assert!(
            src.capacity() <= RESERVE_STEP + LEN_WORD,
            "{}",
            src.capacity()
        );
    }

    #[test]
    fn decoder_waits_for_whole_frame_then_yields_body() {
        let bytes = encode_message(Message::new(ping().header, Bytes::from_static(b"abcd")))
            .expect("small message");
        let mut codec = MessageCodec::new();
        let mut buf = BytesMut::from(&bytes[..10]);
        assert_eq!(codec.decode(&mut buf).ok(), Some(None));
        buf.extend_from_slice(&bytes[10..]);
        let body = codec.decode(&mut buf).ok().flatten().expect("one frame");
        assert_eq!(body.len(), HEADER_LEN + 4);
        let msg = Message::from_frame(body).expect("valid header");
        assert_eq!(&msg.payload[..], b"abcd");
        assert!(buf.is_empty());
    }

    #[test]
    fn length_below_header_size_is_rejected() {
        for len in [0u32, 4, 27] {
            let mut buf = BytesMut::from(&len.to_be_bytes()[..]);
            assert!(matches!(
                MessageCodec::new().decode(&mut buf),
                Err(Error::FrameTooShort { .. })
            ));
        }
    }

    #[test]
    fn length_above_message_max_is_rejected_before_buffering() {
        let ok = (MESSAGE_MAX + LEN_WORD) as u32;
        let mut buf = BytesMut::from(&ok.to_be_bytes()[..]);
        assert_eq!(MessageCodec::new().decode(&mut buf).ok(), Some(None));
        let too_long = ok + 1;
        let mut buf = BytesMut::from(&too_long.to_be_bytes()[..]);
        assert!(matches!(
            MessageCodec::new().decode(&mut buf),
            Err(Error::FrameTooLong { .. })
        ));
    }

    #[test]
    fn encoder_refuses_oversized_payload() {
        let msg = Message::new(ping().header, vec![0u8; PAYLOAD_MAX + 1]);
        assert!(matches!(
            encode_message(msg),
            Err(Error::FrameTooLong { .. })
        ));
        let msg = Message::new(ping().header, vec![0u8; PAYLOAD_MAX]);
        assert!(encode_message(msg).is_ok());
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn message() -> impl Strategy<Value = Message> {
            (
                any::<u32>(),
                any::<i32>(),
                0..7i32,
                any::<u32>(),
                0..3i32,
                proptest::collection::vec(any::<u8>(), 0..300),
            )
                .prop_map(|(prog, proc_, ty, serial, st, payload)| {
                    let header = Header {
                        prog,
                        vers: 1,
                        proc_,
                        type_: MessageType::from_i32(ty).expect("in range"),
                        serial,
                        status: MessageStatus::from_i32(st).expect("in range"),
                    };
                    Message::new(header, payload)
                })
        }

        proptest! {
            #[test]
            fn messages_survive_any_split_of_the_byte_stream(
                msgs in proptest::collection::vec(message(), 1..8),
                cut in any::<proptest::sample::Index>(),
            ) {
                let mut wire = BytesMut::new();
                for m in &msgs {
                    MessageCodec::new().encode(m.clone(), &mut wire).expect("encode");
                }
                let cut = cut.index(wire.len() + 1);
                let mut codec = MessageCodec::new();
                let mut buf = BytesMut::from(&wire[..cut]);
                let mut out = Vec::new();
                while let Some(frame) = codec.decode(&mut buf).expect("valid") {
                    out.push(Message::from_frame(frame).expect("valid header"));
                }
                buf.extend_from_slice(&wire[cut..]);
                while let Some(frame) = codec.decode(&mut buf).expect("valid") {
                    out.push(Message::from_frame(frame).expect("valid header"));
                }
                prop_assert_eq!(out, msgs);
                prop_assert!(buf.is_empty());
            }

            #[test]
            fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
                let mut buf = BytesMut::from(&bytes[..]);
                let mut codec = MessageCodec::new();
                while let Ok(Some(frame)) = codec.decode(&mut buf) {
                    let _ = Message::from_frame(frame);
                }
            }
        }
    }
}
