//! Serde adapters for the generated code: bounded values inside union arms
//! (where `#[serde(with)]` cannot go) and arrays of bounded strings.

use migrated_xdr::bounded::{self, BoundedString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Serializes a `&str` of at most `N` bytes.
pub struct Str<'a, const N: usize>(pub &'a str);

impl<const N: usize> Serialize for Str<'_, N> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        bounded::ser_string::<N, S>(self.0, s)
    }
}

/// Serializes an optional string of at most `N` bytes.
pub struct OptStr<'a, const N: usize>(pub &'a Option<String>);

impl<const N: usize> Serialize for OptStr<'_, N> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        bounded::ser_opt_string::<N, S>(self.0, s)
    }
}

/// Serializes variable opaque data of at most `N` bytes.
pub struct Bytes<'a, const N: usize>(pub &'a [u8]);

impl<const N: usize> Serialize for Bytes<'_, N> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        bounded::ser_bytes::<N, S>(self.0, s)
    }
}

/// Serializes optional variable opaque data of at most `N` bytes.
pub struct OptBytes<'a, const N: usize>(pub &'a Option<Vec<u8>>);

impl<const N: usize> Serialize for OptBytes<'_, N> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        bounded::ser_opt_bytes::<N, S>(self.0, s)
    }
}

/// Serializes fixed opaque data (no length word).
pub struct Fixed<'a, const N: usize>(pub &'a [u8; N]);

impl<const N: usize> Serialize for Fixed<'_, N> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        migrated_xdr::fixed_opaque::serialize(self.0, s)
    }
}

/// Deserializes fixed opaque data (no length word).
pub struct FixedOwned<const N: usize>(pub [u8; N]);

impl<'de, const N: usize> Deserialize<'de> for FixedOwned<N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        migrated_xdr::fixed_opaque::deserialize(d).map(FixedOwned)
    }
}

/// Serializes a variable array of at most `N` elements.
pub struct Slice<'a, T, const N: usize>(pub &'a [T]);

impl<T: Serialize, const N: usize> Serialize for Slice<'_, T, N> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        bounded::ser_vec::<N, T, S>(self.0, s)
    }
}

/// Serializes at most `N` strings of at most `M` bytes each.
pub struct StrSlice<'a, const N: usize, const M: usize>(pub &'a [String]);

impl<const N: usize, const M: usize> Serialize for StrSlice<'_, N, M> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ser_string_vec::<N, M, S>(self.0, s)
    }
}

/// Deserializes at most `N` strings of at most `M` bytes each.
pub struct StrVec<const N: usize, const M: usize>(pub Vec<String>);

impl<'de, const N: usize, const M: usize> Deserialize<'de> for StrVec<N, M> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        de_string_vec::<N, M, D>(d).map(StrVec)
    }
}

/// `serialize_with` helper: at most `N` strings of at most `M` bytes each.
///
/// # Errors
///
/// Too many strings, a string too long, or the serializer's own errors.
pub fn ser_string_vec<const N: usize, const M: usize, S: Serializer>(
    value: &[String],
    s: S,
) -> Result<S::Ok, S::Error> {
    if value.len() > N {
        return Err(serde::ser::Error::custom(format_args!(
            "length {} over its maximum {N}",
            value.len()
        )));
    }
    s.collect_seq(value.iter().map(|v| Str::<M>(v)))
}

/// `deserialize_with` helper: at most `N` strings of at most `M` bytes each.
///
/// # Errors
///
/// Too many strings, a string too long, or malformed input.
pub fn de_string_vec<'de, const N: usize, const M: usize, D: Deserializer<'de>>(
    d: D,
) -> Result<Vec<String>, D::Error> {
    let v = bounded::vec::<N, BoundedString<M>, D>(d)?;
    Ok(v.into_iter().map(|s| s.0).collect())
}
