//! Decoding: XDR bytes (RFC 4506) to serde's data model, from a byte slice.
//!
//! Every length and count is checked against its maximum and against the
//! bytes that remain before anything is allocated; nothing here panics on
//! malformed input.

use serde::de::{self, DeserializeSeed, SeqAccess, Visitor};

use crate::error::{Error, Result};
use crate::magic;
use crate::ser::pad_len;

/// An XDR deserializer reading from a borrowed byte slice.
///
/// Most callers want [`crate::from_bytes`] or [`crate::from_bytes_prefix`].
pub struct Deserializer<'de> {
    input: &'de [u8],
}

impl<'de> Deserializer<'de> {
    /// Creates a deserializer over `input`.
    pub fn from_bytes(input: &'de [u8]) -> Self {
        Deserializer { input }
    }

    /// The bytes not decoded yet.
    pub fn remaining(&self) -> &'de [u8] {
        self.input
    }

    /// Checks that the whole input was consumed.
    ///
    /// # Errors
    ///
    /// [`Error::TrailingBytes`] when input remains.
    pub fn end(&self) -> Result<()> {
        if self.input.is_empty() {
            Ok(())
        } else {
            Err(Error::TrailingBytes(self.input.len()))
        }
    }

    fn take(&mut self, n: usize) -> Result<&'de [u8]> {
        if n > self.input.len() {
            return Err(Error::UnexpectedEnd {
                needed: n,
                remaining: self.input.len(),
            });
        }
        let (head, tail) = self.input.split_at(n);
        self.input = tail;
        Ok(head)
    }

    fn take_array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn read_u32(&mut self) -> Result<u32> {
        self.take_array().map(u32::from_be_bytes)
    }

    fn read_i32(&mut self) -> Result<i32> {
        self.take_array().map(i32::from_be_bytes)
    }

    /// Reads a length word and checks it against `max`.
    fn read_len(&mut self, max: usize) -> Result<usize> {
        let len = self.read_u32()?;
        // A u32 always fits the usize of the 32/64-bit targets we support.
        let len_usize = usize::try_from(len).unwrap_or(usize::MAX);
        if len_usize > max {
            return Err(Error::LengthOverMax {
                len: u64::from(len),
                max: max as u64,
            });
        }
        Ok(len_usize)
    }

    /// Reads `len` bytes of opaque data and their zero padding.
    fn read_opaque(&mut self, len: usize) -> Result<&'de [u8]> {
        let padded = len.saturating_add(pad_len(len));
        if padded > self.input.len() {
            return Err(Error::LengthOverRemaining {
                len: len as u64,
                remaining: self.input.len(),
            });
        }
        let data = self.take(len)?;
        let pad = self.take(pad_len(len))?;
        if pad.iter().any(|&b| b != 0) {
            return Err(Error::NonZeroPadding);
        }
        Ok(data)
    }

    fn read_str(&mut self, max: usize) -> Result<&'de str> {
        let len = self.read_len(max)?;
        let data = self.read_opaque(len)?;
        std::str::from_utf8(data).map_err(Error::InvalidUtf8)
    }

    /// Reads an array count, checked against `max` and the input left.
    fn read_count(&mut self, max: usize) -> Result<usize> {
        let count = self.read_len(max)?;
        // Every XDR item takes at least 4 bytes, so a count larger than a
        // quarter of the input is a lie; refusing it bounds allocations.
        if count > self.input.len() / 4 {
            return Err(Error::LengthOverRemaining {
                len: count as u64,
                remaining: self.input.len(),
            });
        }
        Ok(count)
    }

    fn visit_counted_seq<V: Visitor<'de>>(&mut self, max: usize, visitor: V) -> Result<V::Value> {
        let count = self.read_count(max)?;
        let mut access = Elements {
            de: self,
            left: count,
        };
        let value = visitor.visit_seq(&mut access)?;
        if access.left != 0 {
            return Err(Error::Custom(format!(
                "array of {count} elements read only partly ({} left)",
                access.left
            )));
        }
        Ok(value)
    }
}

fn out_of_range(ty: &'static str, value: impl Into<i64>) -> Error {
    Error::OutOfRange {
        ty,
        value: value.into(),
    }
}

impl<'de> de::Deserializer<'de> for &mut Deserializer<'de> {
    type Error = Error;

    fn is_human_readable(&self) -> bool {
        false
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value> {
        Err(Error::UnsupportedType(
            "self-describing data (deserialize_any: untagged, flatten, ...)",
        ))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.read_u32()? {
            0 => visitor.visit_bool(false),
            1 => visitor.visit_bool(true),
            other => Err(Error::InvalidBool(other)),
        }
    }

    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let v = self.read_i32()?;
        visitor.visit_i8(i8::try_from(v).map_err(|_| out_of_range("i8", v))?)
    }

    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let v = self.read_i32()?;
        visitor.visit_i16(i16::try_from(v).map_err(|_| out_of_range("i16", v))?)
    }

    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_i32(self.read_i32()?)
    }

    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_i64(i64::from_be_bytes(self.take_array()?))
    }

    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let v = self.read_u32()?;
        visitor.visit_u8(u8::try_from(v).map_err(|_| out_of_range("u8", v))?)
    }

    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let v = self.read_u32()?;
        visitor.visit_u16(u16::try_from(v).map_err(|_| out_of_range("u16", v))?)
    }

    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_u32(self.read_u32()?)
    }

    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_u64(u64::from_be_bytes(self.take_array()?))
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_f32(f32::from_be_bytes(self.take_array()?))
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_f64(f64::from_be_bytes(self.take_array()?))
    }

    fn deserialize_char<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value> {
        Err(Error::UnsupportedType("char"))
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_borrowed_str(self.read_str(usize::MAX)?)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let len = self.read_len(usize::MAX)?;
        visitor.visit_borrowed_bytes(self.read_opaque(len)?)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.read_u32()? {
            0 => visitor.visit_none(),
            1 => visitor.visit_some(self),
            other => Err(Error::InvalidOptionMarker(other)),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        if name == magic::HANDSHAKE {
            // The bounded helpers ask this way; answering with a one-element
            // seq tells them they talk to XDR, so they can pass their bound
            // (see `crate::bounded`). Other formats see a plain newtype.
            return visitor.visit_seq(Handshake { de: Some(self) });
        }
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.visit_counted_seq(usize::MAX, visitor)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value> {
        // Elements are decoded as the visitor asks for them; a union visitor
        // reads its discriminant first and then only the arm it selects, so
        // reading fewer than `len` elements is fine.
        visitor.visit_seq(Elements {
            de: self,
            left: len,
        })
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value> {
        match name {
            magic::STRING => visitor.visit_borrowed_str(self.read_str(len)?),
            magic::BYTES => {
                let n = self.read_len(len)?;
                visitor.visit_borrowed_bytes(self.read_opaque(n)?)
            }
            magic::SEQ => self.visit_counted_seq(len, visitor),
            magic::FIXED_OPAQUE => visitor.visit_borrowed_bytes(self.read_opaque(len)?),
            _ => self.deserialize_tuple(len, visitor),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value> {
        Err(Error::UnsupportedType("map"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        self.deserialize_tuple(fields.len(), visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value> {
        Err(Error::UnsupportedType(
            "enum (XDR enums decode from i32, unions from a (discriminant, arm) tuple)",
        ))
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value> {
        Err(Error::UnsupportedType("identifier"))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value> {
        Err(Error::UnsupportedType(
            "ignored_any (XDR cannot skip unknown data)",
        ))
    }
}

/// Hands out up to `left` elements, each decoded when asked for.
struct Elements<'a, 'de> {
    de: &'a mut Deserializer<'de>,
    left: usize,
}

impl<'de> SeqAccess<'de> for Elements<'_, 'de> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.de).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        // Never more than the input could hold, whatever `left` claims.
        Some(self.left.min(self.de.input.len() / 4))
    }
}

/// The answer to a bounded helper's handshake: exactly one element, decoded
/// by the helper's own seed directly from this deserializer.
struct Handshake<'a, 'de> {
    de: Option<&'a mut Deserializer<'de>>,
}

impl<'de> SeqAccess<'de> for Handshake<'_, 'de> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>> {
        match self.de.take() {
            Some(de) => seed.deserialize(de).map(Some),
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(usize::from(self.de.is_some()))
    }
}

#[cfg(test)]
mod tests {
    use serde::de::{Deserialize, IgnoredAny, SeqAccess, Visitor};

    use crate::{from_bytes, from_bytes_prefix, Error};

    fn words(ws: &[u32]) -> Vec<u8> {
        ws.iter().flat_map(|w| w.to_be_bytes()).collect()
    }

    #[test]
    fn signed_words_are_sign_extended() {
        assert_eq!(from_bytes::<i32>(&words(&[0xffff_fffe])), Ok(-2));
        assert_eq!(from_bytes::<i8>(&words(&[0xffff_ff80])), Ok(-128));
        assert_eq!(from_bytes::<i16>(&words(&[0x0000_7fff])), Ok(i16::MAX));
        assert_eq!(
            from_bytes::<i64>(&words(&[0xffff_ffff, 0xffff_fffd])),
            Ok(-3)
        );
        assert_eq!(from_bytes::<u64>(&words(&[1, 2])), Ok((1u64 << 32) + 2));
    }

    #[test]
    fn narrow_integers_out_of_range_are_refused() {
        assert_eq!(
            from_bytes::<u8>(&words(&[256])),
            Err(Error::OutOfRange {
                ty: "u8",
                value: 256
            })
        );
        assert_eq!(
            from_bytes::<u16>(&words(&[0x1_0000])),
            Err(Error::OutOfRange {
                ty: "u16",
                value: 0x1_0000
            })
        );
        assert_eq!(
            from_bytes::<i8>(&words(&[128])),
            Err(Error::OutOfRange {
                ty: "i8",
                value: 128
            })
        );
        assert_eq!(
            from_bytes::<i16>(&words(&[0xffff_0000])),
            Err(Error::OutOfRange {
                ty: "i16",
                value: -65536
            })
        );
    }

    #[test]
    fn bool_other_than_zero_or_one_is_refused() {
        assert_eq!(from_bytes::<bool>(&words(&[1])), Ok(true));
        assert_eq!(from_bytes::<bool>(&words(&[0])), Ok(false));
        assert_eq!(from_bytes::<bool>(&words(&[2])), Err(Error::InvalidBool(2)));
    }

    #[test]
    fn option_marker_other_than_zero_or_one_is_refused() {
        assert_eq!(from_bytes::<Option<u32>>(&words(&[0])), Ok(None));
        assert_eq!(from_bytes::<Option<u32>>(&words(&[1, 7])), Ok(Some(7)));
        assert_eq!(
            from_bytes::<Option<u32>>(&words(&[2, 7])),
            Err(Error::InvalidOptionMarker(2))
        );
    }

    #[test]
    fn floats_are_ieee_big_endian() {
        assert_eq!(from_bytes::<f32>(&1.5f32.to_be_bytes()), Ok(1.5));
        assert_eq!(from_bytes::<f64>(&(-0.25f64).to_be_bytes()), Ok(-0.25));
    }

    #[test]
    fn string_borrows_from_input_and_checks_padding() {
        let input = [0, 0, 0, 3, b'a', b'b', b'c', 0];
        assert_eq!(from_bytes::<&str>(&input), Ok("abc"));
        let bad_pad = [0, 0, 0, 3, b'a', b'b', b'c', 1];
        assert_eq!(from_bytes::<&str>(&bad_pad), Err(Error::NonZeroPadding));
        let bad_pad_bytes = [0, 0, 0, 1, 9, 0, 0x80, 0];
        assert_eq!(
            from_bytes::<&[u8]>(&bad_pad_bytes),
            Err(Error::NonZeroPadding)
        );
    }

    #[test]
    fn invalid_utf8_is_refused() {
        let input = [0, 0, 0, 2, 0xc3, 0x28, 0, 0];
        assert!(matches!(
            from_bytes::<String>(&input),
            Err(Error::InvalidUtf8(_))
        ));
    }

    #[test]
    fn huge_length_in_short_input_fails_before_allocating() {
        let input = words(&[0xffff_fff0, 0x6161_6161, 0x6161_6161]);
        let over = Some(Error::LengthOverRemaining {
            len: 0xffff_fff0,
            remaining: 8,
        });
        assert_eq!(from_bytes::<String>(&input).err(), over);
        assert_eq!(from_bytes::<&[u8]>(&input).err(), over);
        assert_eq!(from_bytes::<Vec<u64>>(&input).err(), over);
        assert_eq!(from_bytes::<Vec<String>>(&input).err(), over);
    }

    #[test]
    fn array_count_over_a_quarter_of_the_input_is_refused() {
        // Three u32 elements need 12 bytes; only 8 follow.
        let input = words(&[3, 1, 2]);
        assert_eq!(
            from_bytes::<Vec<u32>>(&input),
            Err(Error::LengthOverRemaining {
                len: 3,
                remaining: 8
            })
        );
        assert_eq!(from_bytes::<Vec<u32>>(&words(&[2, 1, 2])), Ok(vec![1, 2]));
    }

    #[test]
    fn opaque_length_must_fit_with_its_padding() {
        // 5 bytes need 3 bytes of padding: 8 in all, only 6 follow.
        let input = [0, 0, 0, 5, 1, 2, 3, 4, 5, 0];
        assert_eq!(
            from_bytes::<&[u8]>(&input),
            Err(Error::LengthOverRemaining {
                len: 5,
                remaining: 6
            })
        );
    }

    #[test]
    fn trailing_bytes_are_refused_by_from_bytes_only() {
        let input = words(&[7, 8]);
        assert_eq!(from_bytes::<u32>(&input), Err(Error::TrailingBytes(4)));
        let (value, rest) = from_bytes_prefix::<u32>(&input).expect("prefix decodes");
        assert_eq!(value, 7);
        assert_eq!(rest, &input[4..]);
    }

    #[test]
    fn truncated_input_is_unexpected_end() {
        assert_eq!(
            from_bytes::<u32>(&[0, 0, 1]),
            Err(Error::UnexpectedEnd {
                needed: 4,
                remaining: 3
            })
        );
        assert_eq!(
            from_bytes::<u64>(&words(&[1])),
            Err(Error::UnexpectedEnd {
                needed: 8,
                remaining: 4
            })
        );
        assert_eq!(
            from_bytes::<(u32, u32)>(&words(&[1])),
            Err(Error::UnexpectedEnd {
                needed: 4,
                remaining: 0
            })
        );
    }

    #[test]
    fn types_xdr_cannot_describe_are_refused() {
        assert!(matches!(
            from_bytes::<char>(&words(&[0x41])),
            Err(Error::UnsupportedType(_))
        ));
        assert!(matches!(
            from_bytes::<std::collections::BTreeMap<u32, u32>>(&words(&[0])),
            Err(Error::UnsupportedType(_))
        ));
        assert!(matches!(
            from_bytes::<IgnoredAny>(&words(&[0])),
            Err(Error::UnsupportedType(_))
        ));
        #[derive(Debug, serde::Deserialize)]
        enum Derived {
            _A,
        }
        assert!(matches!(
            from_bytes::<Derived>(&words(&[0])),
            Err(Error::UnsupportedType(_))
        ));
    }

    /// Reads only the first element of an array, as a buggy impl might.
    #[derive(Debug)]
    struct FirstOnly;

    impl<'de> Deserialize<'de> for FirstOnly {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = FirstOnly;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("an array")
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<FirstOnly, A::Error> {
                    seq.next_element::<u32>()?;
                    Ok(FirstOnly)
                }
            }
            d.deserialize_seq(V)
        }
    }

    #[test]
    fn array_read_only_partly_is_an_error_not_a_misaligned_decode() {
        let err = from_bytes::<(FirstOnly, u32)>(&words(&[2, 10, 11, 12]))
            .expect_err("partly read array must fail");
        assert!(
            matches!(err, Error::Custom(ref m) if m.contains("partly")),
            "{err}"
        );
    }

    #[test]
    fn unknown_discriminant_keeps_the_value() {
        let err: Error = crate::unknown_discriminant(-7);
        assert_eq!(err, Error::UnknownDiscriminant(-7));
    }
}
