//! The deserializing half of the bounded helpers: one generic visitor that
//! hands a bound to this crate's deserializer (see [`crate::magic`]) or,
//! with any other format, decodes normally and checks the bound afterwards.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, SeqAccess, Visitor};

use crate::magic;

/// One kind of bounded value (string, bytes, array, fixed opaque).
pub(crate) trait Kind<'de> {
    /// The decoded value.
    type Value;
    /// Visitor enforcing `bound` whatever the format feeds it.
    type Visitor: Visitor<'de, Value = Self::Value>;
    /// Tuple-struct name our deserializer recognises for this kind.
    const MAGIC: &'static str;

    fn visitor(bound: usize) -> Self::Visitor;

    /// Decodes from a format other than XDR.
    fn foreign<D: Deserializer<'de>>(d: D, visitor: Self::Visitor)
        -> Result<Self::Value, D::Error>;
}

/// Decodes a `K` of at most (or, for fixed opaque, exactly) `bound`.
pub(crate) fn deserialize<'de, K: Kind<'de>, D: Deserializer<'de>>(
    d: D,
    bound: usize,
) -> Result<K::Value, D::Error> {
    d.deserialize_newtype_struct(
        magic::HANDSHAKE,
        HandshakeVisitor::<K> {
            bound,
            kind: PhantomData,
        },
    )
}

fn over_max<E: de::Error>(len: usize, max: usize) -> E {
    E::custom(format_args!("length {len} over its maximum {max}"))
}

struct HandshakeVisitor<K> {
    bound: usize,
    kind: PhantomData<K>,
}

impl<'de, K: Kind<'de>> Visitor<'de> for HandshakeVisitor<K> {
    type Value = K::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a value bounded to {} items", self.bound)
    }

    // Only this crate's deserializer answers the handshake with a seq.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<K::Value, A::Error> {
        let seed = XdrSeed::<K> {
            bound: self.bound,
            kind: PhantomData,
        };
        seq.next_element_seed(seed)?
            .ok_or_else(|| de::Error::invalid_length(0, &self))
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<K::Value, D::Error> {
        K::foreign(d, K::visitor(self.bound))
    }
}

struct XdrSeed<K> {
    bound: usize,
    kind: PhantomData<K>,
}

impl<'de, K: Kind<'de>> DeserializeSeed<'de> for XdrSeed<K> {
    type Value = K::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<K::Value, D::Error> {
        d.deserialize_tuple_struct(K::MAGIC, self.bound, K::visitor(self.bound))
    }
}

/// A string of at most `max` bytes.
pub(crate) struct StringKind;

pub(crate) struct StringVisitor {
    max: usize,
}

impl StringVisitor {
    fn check<E: de::Error>(&self, v: &str) -> Result<(), E> {
        if v.len() > self.max {
            return Err(over_max(v.len(), self.max));
        }
        Ok(())
    }
}

impl Visitor<'_> for StringVisitor {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a string of at most {} bytes", self.max)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        self.check(v)?;
        Ok(v.to_owned())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        self.check(&v)?;
        Ok(v)
    }
}

impl<'de> Kind<'de> for StringKind {
    type Value = String;
    type Visitor = StringVisitor;
    const MAGIC: &'static str = magic::STRING;

    fn visitor(bound: usize) -> StringVisitor {
        StringVisitor { max: bound }
    }

    fn foreign<D: Deserializer<'de>>(d: D, visitor: StringVisitor) -> Result<String, D::Error> {
        d.deserialize_string(visitor)
    }
}

/// A variable opaque of at most `max` bytes.
pub(crate) struct BytesKind;

pub(crate) struct BytesVisitor {
    max: usize,
}

impl BytesVisitor {
    fn check<E: de::Error>(&self, len: usize) -> Result<(), E> {
        if len > self.max {
            return Err(over_max(len, self.max));
        }
        Ok(())
    }
}

impl<'de> Visitor<'de> for BytesVisitor {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at most {} bytes", self.max)
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        self.check(v.len())?;
        Ok(v.to_vec())
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
        self.check(v.len())?;
        Ok(v)
    }

    // Human-readable formats (JSON) write bytes as an array of numbers.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(self.max).min(4096));
        while let Some(b) = seq.next_element::<u8>()? {
            self.check(out.len() + 1)?;
            out.push(b);
        }
        Ok(out)
    }
}

impl<'de> Kind<'de> for BytesKind {
    type Value = Vec<u8>;
    type Visitor = BytesVisitor;
    const MAGIC: &'static str = magic::BYTES;

    fn visitor(bound: usize) -> BytesVisitor {
        BytesVisitor { max: bound }
    }

    fn foreign<D: Deserializer<'de>>(d: D, visitor: BytesVisitor) -> Result<Vec<u8>, D::Error> {
        d.deserialize_byte_buf(visitor)
    }
}

/// An array of at most `max` elements.
pub(crate) struct SeqKind<T>(PhantomData<T>);

pub(crate) struct SeqVisitor<T> {
    max: usize,
    element: PhantomData<T>,
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for SeqVisitor<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an array of at most {} elements", self.max)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        // The XDR deserializer's hint never exceeds a quarter of the input
        // left; the extra cap only matters for other formats.
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(self.max).min(4096));
        while let Some(item) = seq.next_element()? {
            if out.len() == self.max {
                return Err(over_max(out.len() + 1, self.max));
            }
            out.push(item);
        }
        Ok(out)
    }
}

impl<'de, T: Deserialize<'de>> Kind<'de> for SeqKind<T> {
    type Value = Vec<T>;
    type Visitor = SeqVisitor<T>;
    const MAGIC: &'static str = magic::SEQ;

    fn visitor(bound: usize) -> SeqVisitor<T> {
        SeqVisitor {
            max: bound,
            element: PhantomData,
        }
    }

    fn foreign<D: Deserializer<'de>>(d: D, visitor: SeqVisitor<T>) -> Result<Vec<T>, D::Error> {
        d.deserialize_seq(visitor)
    }
}

/// A fixed opaque of exactly `N` bytes.
pub(crate) struct FixedKind<const N: usize>;

pub(crate) struct FixedVisitor<const N: usize>;

impl<'de, const N: usize> Visitor<'de> for FixedVisitor<N> {
    type Value = [u8; N];

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "exactly {N} bytes")
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<[u8; N], E> {
        <[u8; N]>::try_from(v).map_err(|_| E::invalid_length(v.len(), &self))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<[u8; N], A::Error> {
        let mut out = [0u8; N];
        for (i, slot) in out.iter_mut().enumerate() {
            *slot = seq
                .next_element()?
                .ok_or_else(|| de::Error::invalid_length(i, &self))?;
        }
        if seq.next_element::<u8>()?.is_some() {
            return Err(de::Error::invalid_length(N + 1, &self));
        }
        Ok(out)
    }
}

impl<'de, const N: usize> Kind<'de> for FixedKind<N> {
    type Value = [u8; N];
    type Visitor = FixedVisitor<N>;
    const MAGIC: &'static str = magic::FIXED_OPAQUE;

    fn visitor(_bound: usize) -> FixedVisitor<N> {
        FixedVisitor
    }

    fn foreign<D: Deserializer<'de>>(d: D, visitor: FixedVisitor<N>) -> Result<[u8; N], D::Error> {
        d.deserialize_bytes(visitor)
    }
}
