//! Decodes arbitrary bytes as the arguments of a remote-program CALL.
//!
//! Two input shapes, so both the captures and blind mutation are useful:
//! * a whole message whose length word equals the input length (what the
//!   captures hold): the header is read, its procedure number picks the
//!   argument type, the rest is the payload;
//! * anything else: the first two bytes pick a procedure from
//!   `migrated_proto::PROCEDURES`, the rest is the payload.
//!
//! Nothing may panic; whatever decodes must re-encode, and that encoding must
//! decode and re-encode to the same bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use migrated_proto::{Call, Procedure, PROCEDURES};

/// Length word plus the six header words.
const FRAME_HEAD: usize = 28;

fn word(data: &[u8], at: usize) -> Option<u32> {
    let bytes: [u8; 4] = data.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_be_bytes(bytes))
}

/// The procedure and payload the input stands for.
fn split(data: &[u8]) -> Option<(Procedure, &[u8])> {
    let framed = data.len() >= FRAME_HEAD
        && word(data, 0).and_then(|w| usize::try_from(w).ok()) == Some(data.len());
    if framed {
        let proc_ = word(data, 12)? as i32;
        return Some((Procedure::from_i32(proc_)?, &data[FRAME_HEAD..]));
    }
    let selector = usize::from(u16::from_be_bytes([*data.first()?, *data.get(1)?]));
    let info = &PROCEDURES[selector % PROCEDURES.len()];
    Some((Procedure::from_i32(info.number)?, &data[2..]))
}

fuzz_target!(|data: &[u8]| {
    let Some((proc_, payload)) = split(data) else {
        return;
    };
    if proc_.info().event {
        return;
    }
    let Ok(call) = Call::decode(proc_, payload) else {
        return;
    };
    let encoded = call.encode().expect("a decoded call re-encodes");
    let again = Call::decode(proc_, &encoded).expect("an encoded call decodes");
    assert_eq!(
        again.encode().expect("re-encodes"),
        encoded,
        "encode/decode of {} is not stable",
        proc_.name()
    );
});
