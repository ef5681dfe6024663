//! Fixed-length opaque data (`opaque name[N]` in XDR) for `[u8; N]` fields:
//! the N bytes and zero padding to a multiple of 4, no length word.
//!
//! ```
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Domain {
//!     #[serde(with = "migrated_xdr::fixed_opaque")]
//!     uuid: [u8; 16],
//! }
//! ```

use serde::{Deserializer, Serialize, Serializer};

use crate::handshake::{self, FixedKind};
use crate::magic;

/// Encodes `value` as a fixed opaque (for `serialize_with`).
///
/// # Errors
///
/// Only those of the serializer itself.
pub fn serialize<S: Serializer, const N: usize>(
    value: &[u8; N],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_newtype_struct(magic::FIXED_OPAQUE, &RawBytes(value))
}

/// Decodes a fixed opaque of exactly `N` bytes (for `deserialize_with`).
///
/// # Errors
///
/// With this crate's deserializer: [`crate::Error::LengthOverRemaining`] when
/// the input is short, [`crate::Error::NonZeroPadding`].
pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
    deserializer: D,
) -> Result<[u8; N], D::Error> {
    handshake::deserialize::<FixedKind<N>, D>(deserializer, N)
}

/// Bytes that serialize with `serialize_bytes`, as `serde_bytes` would.
pub(crate) struct RawBytes<'a>(pub(crate) &'a [u8]);

impl Serialize for RawBytes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}
