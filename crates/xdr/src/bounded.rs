//! Bounded strings, opaques and arrays: `string<N>`, `opaque<N>`, `T<N>`.
//!
//! Every variable-length item in `proto/*.x` has a named maximum. The
//! `deserialize_with` helpers here pass that maximum to this crate's
//! deserializer, which checks the length word against it (and against the
//! input left) before allocating anything:
//!
//! ```
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct ConnectOpenArgs {
//!     #[serde(deserialize_with = "migrated_xdr::bounded::opt_string::<4194304, _>")]
//!     name: Option<String>,
//!     flags: u32,
//! }
//! ```
//!
//! With other serde formats the helpers decode normally and check the
//! maximum afterwards. The `ser_*` functions are the matching
//! `serialize_with` helpers that refuse to encode an over-long value; the
//! `Bounded*` wrappers do both, for places `deserialize_with` cannot reach
//! (union arms, nested containers).

use std::ops::{Deref, DerefMut};

use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::fixed_opaque::RawBytes;
use crate::handshake::{self, BytesKind, SeqKind, StringKind};

/// Decodes a string of at most `N` bytes.
///
/// # Errors
///
/// With this crate's deserializer: [`crate::Error::LengthOverMax`],
/// [`crate::Error::LengthOverRemaining`], [`crate::Error::NonZeroPadding`],
/// [`crate::Error::InvalidUtf8`].
pub fn string<'de, const N: usize, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    handshake::deserialize::<StringKind, D>(d, N)
}

/// Decodes an optional string (`string *name` / `remote_string`) of at most `N` bytes.
///
/// # Errors
///
/// Those of [`string`], and [`crate::Error::InvalidOptionMarker`].
pub fn opt_string<'de, const N: usize, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<String>, D::Error> {
    Option::<BoundedString<N>>::deserialize(d).map(|v| v.map(|s| s.0))
}

/// Decodes a variable opaque of at most `N` bytes (encode it with `serde_bytes`).
///
/// # Errors
///
/// With this crate's deserializer: [`crate::Error::LengthOverMax`],
/// [`crate::Error::LengthOverRemaining`], [`crate::Error::NonZeroPadding`].
pub fn bytes<'de, const N: usize, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    handshake::deserialize::<BytesKind, D>(d, N)
}

/// Decodes an optional variable opaque of at most `N` bytes.
///
/// # Errors
///
/// Those of [`bytes`], and [`crate::Error::InvalidOptionMarker`].
pub fn opt_bytes<'de, const N: usize, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<u8>>, D::Error> {
    Option::<BoundedBytes<N>>::deserialize(d).map(|v| v.map(|b| b.0))
}

/// Decodes an array of at most `N` elements.
///
/// # Errors
///
/// With this crate's deserializer: [`crate::Error::LengthOverMax`],
/// [`crate::Error::LengthOverRemaining`] (a count larger than a quarter of
/// the input left), and any error of `T`.
pub fn vec<'de, const N: usize, T: Deserialize<'de>, D: Deserializer<'de>>(
    d: D,
) -> Result<Vec<T>, D::Error> {
    handshake::deserialize::<SeqKind<T>, D>(d, N)
}

fn check_len<E: serde::ser::Error>(len: usize, max: usize) -> Result<(), E> {
    if len > max {
        return Err(E::custom(format_args!(
            "length {len} over its maximum {max}"
        )));
    }
    Ok(())
}

/// Encodes a string, refusing one longer than `N` bytes.
///
/// # Errors
///
/// A custom error when `value` is longer than `N` bytes.
pub fn ser_string<const N: usize, S: Serializer>(value: &str, s: S) -> Result<S::Ok, S::Error> {
    check_len(value.len(), N)?;
    s.serialize_str(value)
}

/// Encodes an optional string, refusing one longer than `N` bytes.
///
/// # Errors
///
/// A custom error when the string is longer than `N` bytes.
pub fn ser_opt_string<const N: usize, S: Serializer>(
    value: &Option<String>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => {
            check_len(v.len(), N)?;
            s.serialize_some(v)
        }
        None => s.serialize_none(),
    }
}

/// Encodes a variable opaque, refusing one longer than `N` bytes.
///
/// # Errors
///
/// A custom error when `value` is longer than `N` bytes.
pub fn ser_bytes<const N: usize, S: Serializer>(value: &[u8], s: S) -> Result<S::Ok, S::Error> {
    check_len(value.len(), N)?;
    s.serialize_bytes(value)
}

/// Encodes an optional variable opaque, refusing one longer than `N` bytes.
///
/// # Errors
///
/// A custom error when the opaque is longer than `N` bytes.
pub fn ser_opt_bytes<const N: usize, S: Serializer>(
    value: &Option<Vec<u8>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => {
            check_len(v.len(), N)?;
            s.serialize_some(&RawBytes(v))
        }
        None => s.serialize_none(),
    }
}

/// Encodes an array, refusing one with more than `N` elements.
///
/// # Errors
///
/// A custom error when `value` has more than `N` elements, and any error of `T`.
pub fn ser_vec<const N: usize, T: Serialize, S: Serializer>(
    value: &[T],
    s: S,
) -> Result<S::Ok, S::Error> {
    check_len(value.len(), N)?;
    let mut seq = s.serialize_seq(Some(value.len()))?;
    for item in value {
        seq.serialize_element(item)?;
    }
    seq.end()
}

macro_rules! wrapper_common {
    ($name:ident [$($gen:ident),*], $inner:ty) => {
        impl<$($gen,)* const N: usize> Deref for $name<$($gen,)* N> {
            type Target = $inner;

            fn deref(&self) -> &$inner {
                &self.0
            }
        }

        impl<$($gen,)* const N: usize> DerefMut for $name<$($gen,)* N> {
            fn deref_mut(&mut self) -> &mut $inner {
                &mut self.0
            }
        }

        impl<$($gen,)* const N: usize> From<$inner> for $name<$($gen,)* N> {
            fn from(v: $inner) -> Self {
                $name(v)
            }
        }
    };
}

/// A `string<N>`: a `String` whose encoding and decoding enforce at most `N` bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BoundedString<const N: usize>(pub String);

wrapper_common!(BoundedString[], String);

impl<const N: usize> Serialize for BoundedString<N> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ser_string::<N, S>(&self.0, s)
    }
}

impl<'de, const N: usize> Deserialize<'de> for BoundedString<N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        string::<N, D>(d).map(BoundedString)
    }
}

/// An `opaque<N>`: bytes whose encoding and decoding enforce at most `N` of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BoundedBytes<const N: usize>(pub Vec<u8>);

wrapper_common!(BoundedBytes[], Vec<u8>);

impl<const N: usize> Serialize for BoundedBytes<N> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ser_bytes::<N, S>(&self.0, s)
    }
}

impl<'de, const N: usize> Deserialize<'de> for BoundedBytes<N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        bytes::<N, D>(d).map(BoundedBytes)
    }
}

/// A `T<N>` array: a `Vec<T>` whose encoding and decoding enforce at most `N` elements.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BoundedVec<T, const N: usize>(pub Vec<T>);

wrapper_common!(BoundedVec[T], Vec<T>);

impl<T, const N: usize> Default for BoundedVec<T, N> {
    fn default() -> Self {
        BoundedVec(Vec::new())
    }
}

impl<T: Serialize, const N: usize> Serialize for BoundedVec<T, N> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ser_vec::<N, T, S>(&self.0, s)
    }
}

impl<'de, T: Deserialize<'de>, const N: usize> Deserialize<'de> for BoundedVec<T, N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        vec::<N, T, D>(d).map(BoundedVec)
    }
}
