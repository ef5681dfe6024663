//! The one error type of this crate: every way encoding or decoding can fail.

use std::fmt::Display;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An XDR encoding or decoding failure.
///
/// Decoding never panics on malformed input: each malformation has a variant
/// here, so callers (the RPC layer) can map them all to `VIR_ERR_RPC`.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// The input ended before the value did.
    #[error("unexpected end of input: needed {needed} bytes, {remaining} remain")]
    UnexpectedEnd {
        /// Bytes the next item needs.
        needed: usize,
        /// Bytes that were left.
        remaining: usize,
    },

    /// A string, opaque or array length is larger than its declared maximum.
    #[error("length {len} over its maximum {max}")]
    LengthOverMax {
        /// The length read from (or about to be written to) the wire.
        len: u64,
        /// The maximum allowed by the protocol definition.
        max: u64,
    },

    /// A length or element count announces more data than the input holds.
    ///
    /// Checked before allocating, so a hostile length word costs nothing.
    #[error("length {len} over the {remaining} bytes remaining")]
    LengthOverRemaining {
        /// The length or count read from the wire.
        len: u64,
        /// Bytes left in the input after the length word.
        remaining: usize,
    },

    /// The padding after a string or opaque is not all zero bytes.
    #[error("non-zero padding")]
    NonZeroPadding,

    /// A string is not valid UTF-8.
    #[error("invalid utf-8 in string")]
    InvalidUtf8(#[source] std::str::Utf8Error),

    /// A bool is neither 0 nor 1.
    #[error("invalid bool {0}")]
    InvalidBool(u32),

    /// An optional-data marker is neither 0 nor 1.
    #[error("invalid optional-data marker {0}")]
    InvalidOptionMarker(u32),

    /// An enum value or union discriminant that the type does not define.
    #[error("unknown enum or union discriminant {0}")]
    UnknownDiscriminant(i64),

    /// A decoded integer does not fit the Rust type it is decoded into.
    #[error("value {value} out of range for {ty}")]
    OutOfRange {
        /// The Rust type that was asked for.
        ty: &'static str,
        /// The value on the wire.
        value: i64,
    },

    /// `from_bytes` decoded a whole value but input remained.
    #[error("{0} trailing bytes after the value")]
    TrailingBytes(usize),

    /// A serde data-model type XDR cannot represent (char, map, enum, any, ...).
    #[error("unsupported serde type: {0}")]
    UnsupportedType(&'static str),

    /// A message raised by a `Serialize`/`Deserialize` impl.
    #[error("{0}")]
    Custom(String),
}

impl serde::ser::Error for Error {
    fn custom<T: Display>(msg: T) -> Self {
        Error::Custom(msg.to_string())
    }
}

impl serde::de::Error for Error {
    fn custom<T: Display>(msg: T) -> Self {
        Error::Custom(msg.to_string())
    }

    // Generated union/enum impls report an unknown discriminant through
    // `unknown_variant` (see `crate::unknown_discriminant`), with the value
    // in decimal; keep it as a number so callers can match on it.
    fn unknown_variant(variant: &str, _expected: &'static [&'static str]) -> Self {
        match variant.parse::<i64>() {
            Ok(value) => Error::UnknownDiscriminant(value),
            Err(_) => Error::Custom(format!("unknown variant `{variant}`")),
        }
    }
}

/// Builds the "unknown discriminant" error of any deserializer.
///
/// For use in hand-written or generated `Deserialize` impls of XDR enums and
/// unions: with this crate's deserializer it yields
/// [`Error::UnknownDiscriminant`], with others serde's "unknown variant".
pub fn unknown_discriminant<E: serde::de::Error>(value: i32) -> E {
    E::unknown_variant(&value.to_string(), &[])
}
