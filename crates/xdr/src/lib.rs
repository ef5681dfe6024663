//! `migrated-xdr`: a serde data format for XDR (RFC 4506), the encoding of
//! libvirt's remote protocol, with bounded decoding.
//!
//! This is the bottom layer ("bytes"): it knows nothing of procedures or
//! messages. The encoding of serde's data model:
//!
//! | serde | XDR |
//! |---|---|
//! | bool | u32 0/1 (anything else: error) |
//! | i8 / i16 / i32, u8 / u16 / u32 | one 4-byte word (sign-extended for signed); decode range-checked |
//! | i64 / u64, f32 / f64 | hyper / double, f32 as float |
//! | str / String | string: u32 length, bytes, zero pad (decode: valid UTF-8, pad must be zero) |
//! | bytes (serde_bytes) | variable opaque: u32 length, bytes, zero pad |
//! | Option | u32 0 / u32 1 + value |
//! | seq (Vec) | u32 count + elements |
//! | tuple, struct, tuple struct | fields in order, nothing else |
//! | unit, unit struct | nothing |
//! | newtype struct | the inner value |
//!
//! char, maps, serde-derived enums and `deserialize_any` (untagged,
//! flatten) are refused with [`Error::UnsupportedType`]. XDR enums are
//! encoded as `i32`; unions as a 2-tuple `(discriminant: i32, arm)` by
//! hand-written or generated impls, which report unknown values with
//! [`unknown_discriminant`]. Bounds: [`bounded`]; `opaque[N]`: [`fixed_opaque`].
//!
//! Decoding never allocates more than the input could hold: lengths and
//! counts are checked against their maximum and the bytes left first.

mod de;
mod error;
mod handshake;
mod magic;
mod ser;

pub mod bounded;
pub mod fixed_opaque;

use serde::{Deserialize, Serialize};

pub use de::Deserializer;
pub use error::{unknown_discriminant, Error, Result};
pub use ser::{SeqSerializer, Serializer};

/// Encodes `value` into a new byte vector.
///
/// # Errors
///
/// [`Error::UnsupportedType`] for types XDR cannot represent,
/// [`Error::LengthOverMax`] for a string, opaque or array over 2³² − 1,
/// [`Error::Custom`] from `Serialize` impls (e.g. a bounded value over its maximum).
pub fn to_bytes<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    to_writer(&mut out, value)?;
    Ok(out)
}

/// Appends the encoding of `value` to `out`.
///
/// On error `out` is left as it was.
///
/// # Errors
///
/// As [`to_bytes`].
pub fn to_writer<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> Result<()> {
    let start = out.len();
    let result = value.serialize(&mut Serializer::new(out));
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// Decodes a `T` that must take up all of `input`.
///
/// # Errors
///
/// [`Error::TrailingBytes`] when input remains after the value, and any
/// decoding error (see [`Error`]).
pub fn from_bytes<'de, T: Deserialize<'de>>(input: &'de [u8]) -> Result<T> {
    let mut de = Deserializer::from_bytes(input);
    let value = T::deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// Decodes a `T` from the start of `input` and returns it with the rest.
///
/// For layered messages, e.g. an RPC header followed by its payload.
///
/// # Errors
///
/// Any decoding error (see [`Error`]); trailing bytes are not one.
pub fn from_bytes_prefix<'de, T: Deserialize<'de>>(input: &'de [u8]) -> Result<(T, &'de [u8])> {
    let mut de = Deserializer::from_bytes(input);
    let value = T::deserialize(&mut de)?;
    Ok((value, de.remaining()))
}
