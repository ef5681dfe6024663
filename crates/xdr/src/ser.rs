//! Encoding: serde's data model to XDR bytes (RFC 4506).

use serde::ser::{self, Serialize};

use crate::error::{Error, Result};
use crate::magic;

/// Bytes of zero padding that follow `len` bytes of string or opaque data.
pub(crate) fn pad_len(len: usize) -> usize {
    (4 - len % 4) % 4
}

/// An XDR serializer appending to a byte vector.
///
/// Most callers want [`crate::to_bytes`] or [`crate::to_writer`].
pub struct Serializer<'a> {
    out: &'a mut Vec<u8>,
    // Set by `fixed_opaque::serialize` (through a magic newtype name) so the
    // next `serialize_bytes` writes no length word.
    fixed_opaque_next: bool,
}

impl<'a> Serializer<'a> {
    /// Creates a serializer that appends to `out`.
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        Serializer {
            out,
            fixed_opaque_next: false,
        }
    }

    fn put_u32(&mut self, v: u32) {
        self.out.extend_from_slice(&v.to_be_bytes());
    }

    fn put_len(&mut self, len: usize) -> Result<()> {
        let word = u32::try_from(len).map_err(|_| Error::LengthOverMax {
            len: len as u64,
            max: u64::from(u32::MAX),
        })?;
        self.put_u32(word);
        Ok(())
    }

    fn put_padded(&mut self, data: &[u8]) {
        self.out.extend_from_slice(data);
        self.out
            .extend(std::iter::repeat(0u8).take(pad_len(data.len())));
    }
}

impl<'a, 'b> ser::Serializer for &'b mut Serializer<'a> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = SeqSerializer<'a, 'b>;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = ser::Impossible<(), Error>;
    type SerializeMap = ser::Impossible<(), Error>;
    type SerializeStruct = Self;
    type SerializeStructVariant = ser::Impossible<(), Error>;

    fn is_human_readable(&self) -> bool {
        false
    }

    fn serialize_bool(self, v: bool) -> Result<()> {
        self.put_u32(u32::from(v));
        Ok(())
    }

    fn serialize_i8(self, v: i8) -> Result<()> {
        self.serialize_i32(i32::from(v))
    }

    fn serialize_i16(self, v: i16) -> Result<()> {
        self.serialize_i32(i32::from(v))
    }

    fn serialize_i32(self, v: i32) -> Result<()> {
        self.out.extend_from_slice(&v.to_be_bytes());
        Ok(())
    }

    fn serialize_i64(self, v: i64) -> Result<()> {
        self.out.extend_from_slice(&v.to_be_bytes());
        Ok(())
    }

    fn serialize_u8(self, v: u8) -> Result<()> {
        self.serialize_u32(u32::from(v))
    }

    fn serialize_u16(self, v: u16) -> Result<()> {
        self.serialize_u32(u32::from(v))
    }

    fn serialize_u32(self, v: u32) -> Result<()> {
        self.put_u32(v);
        Ok(())
    }

    fn serialize_u64(self, v: u64) -> Result<()> {
        self.out.extend_from_slice(&v.to_be_bytes());
        Ok(())
    }

    fn serialize_f32(self, v: f32) -> Result<()> {
        self.out.extend_from_slice(&v.to_be_bytes());
        Ok(())
    }

    fn serialize_f64(self, v: f64) -> Result<()> {
        self.out.extend_from_slice(&v.to_be_bytes());
        Ok(())
    }

    fn serialize_char(self, _v: char) -> Result<()> {
        Err(Error::UnsupportedType("char"))
    }

    fn serialize_str(self, v: &str) -> Result<()> {
        self.put_len(v.len())?;
        self.put_padded(v.as_bytes());
        Ok(())
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<()> {
        if !std::mem::take(&mut self.fixed_opaque_next) {
            self.put_len(v.len())?;
        }
        self.put_padded(v);
        Ok(())
    }

    fn serialize_none(self) -> Result<()> {
        self.put_u32(0);
        Ok(())
    }

    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<()> {
        self.put_u32(1);
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<()> {
        Ok(())
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<()> {
        Ok(())
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
    ) -> Result<()> {
        // Variant indexes are not XDR discriminants: refusing is safer than
        // silently putting the wrong number on the wire.
        Err(Error::UnsupportedType("enum (serialize XDR enums as i32)"))
    }

    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<()> {
        if name == magic::FIXED_OPAQUE {
            self.fixed_opaque_next = true;
            let result = value.serialize(&mut *self);
            let consumed = !std::mem::take(&mut self.fixed_opaque_next);
            return match (result, consumed) {
                (Ok(()), false) => Err(Error::Custom(
                    "fixed opaque value did not serialize as bytes".into(),
                )),
                (result, _) => result,
            };
        }
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<()> {
        Err(Error::UnsupportedType(
            "enum (unions need a hand-written (discriminant, arm) tuple impl)",
        ))
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq> {
        // Reserve the count word and patch it at the end, so iterators of
        // unknown length work and the count always matches what was written.
        let start = self.out.len();
        self.put_u32(0);
        Ok(SeqSerializer {
            ser: self,
            start,
            count: 0,
        })
    }

    fn serialize_tuple(self, _len: usize) -> Result<Self> {
        Ok(self)
    }

    fn serialize_tuple_struct(self, _name: &'static str, _len: usize) -> Result<Self> {
        Ok(self)
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant> {
        Err(Error::UnsupportedType("enum tuple variant"))
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap> {
        Err(Error::UnsupportedType("map"))
    }

    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Self> {
        Ok(self)
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant> {
        Err(Error::UnsupportedType("enum struct variant"))
    }
}

/// Writes the elements of a variable-length array and patches its count.
pub struct SeqSerializer<'a, 'b> {
    ser: &'b mut Serializer<'a>,
    start: usize,
    count: usize,
}

impl ser::SerializeSeq for SeqSerializer<'_, '_> {
    type Ok = ();
    type Error = Error;

    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<()> {
        value.serialize(&mut *self.ser)?;
        self.count += 1;
        Ok(())
    }

    fn end(self) -> Result<()> {
        let written = self.ser.out.len() - self.start - 4;
        // The decoder refuses counts larger than remaining/4 (that is what
        // bounds its allocations), so elements that encode to nothing could
        // never be read back: refuse them here rather than write garbage.
        if written < self.count.saturating_mul(4) {
            return Err(Error::UnsupportedType(
                "array of elements that encode to fewer than 4 bytes",
            ));
        }
        let count = u32::try_from(self.count).map_err(|_| Error::LengthOverMax {
            len: self.count as u64,
            max: u64::from(u32::MAX),
        })?;
        self.ser.out[self.start..self.start + 4].copy_from_slice(&count.to_be_bytes());
        Ok(())
    }
}

impl ser::SerializeTuple for &mut Serializer<'_> {
    type Ok = ();
    type Error = Error;

    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<()> {
        value.serialize(&mut **self)
    }

    fn end(self) -> Result<()> {
        Ok(())
    }
}

impl ser::SerializeTupleStruct for &mut Serializer<'_> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<()> {
        value.serialize(&mut **self)
    }

    fn end(self) -> Result<()> {
        Ok(())
    }
}

impl ser::SerializeStruct for &mut Serializer<'_> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        _key: &'static str,
        value: &T,
    ) -> Result<()> {
        value.serialize(&mut **self)
    }

    // XDR structs have no field names or presence bits: a skipped field would
    // shift every later one, so `skip_serializing_if` is an error here.
    fn skip_field(&mut self, key: &'static str) -> Result<()> {
        Err(Error::Custom(format!(
            "field `{key}` skipped: XDR structs cannot omit fields"
        )))
    }

    fn end(self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde::Serialize;

    use crate::{to_bytes, to_writer, Error};

    fn words(ws: &[u32]) -> Vec<u8> {
        ws.iter().flat_map(|w| w.to_be_bytes()).collect()
    }

    #[test]
    fn integers_take_one_word_or_a_hyper() {
        assert_eq!(to_bytes(&-1i8), Ok(words(&[0xffff_ffff])));
        assert_eq!(to_bytes(&-2i16), Ok(words(&[0xffff_fffe])));
        assert_eq!(to_bytes(&200u8), Ok(words(&[200])));
        assert_eq!(to_bytes(&0xbeefu16), Ok(words(&[0xbeef])));
        assert_eq!(to_bytes(&i32::MIN), Ok(words(&[0x8000_0000])));
        assert_eq!(to_bytes(&-1i64), Ok(words(&[0xffff_ffff, 0xffff_ffff])));
        assert_eq!(to_bytes(&(5u64 << 32 | 6)), Ok(words(&[5, 6])));
        assert_eq!(to_bytes(&true), Ok(words(&[1])));
        assert_eq!(to_bytes(&false), Ok(words(&[0])));
    }

    #[test]
    fn floats_are_ieee_single_and_double() {
        assert_eq!(to_bytes(&1.0f32), Ok(words(&[0x3f80_0000])));
        assert_eq!(to_bytes(&-2.0f64), Ok(words(&[0xc000_0000, 0])));
    }

    #[test]
    fn strings_and_opaques_are_length_prefixed_and_zero_padded() {
        assert_eq!(to_bytes("abcde"), Ok(b"\0\0\0\x05abcde\0\0\0".to_vec()));
        assert_eq!(to_bytes("abcd"), Ok(b"\0\0\0\x04abcd".to_vec()));
        assert_eq!(to_bytes(""), Ok(words(&[0])));
        assert_eq!(
            to_bytes(serde_bytes::Bytes::new(&[1, 2])),
            Ok(vec![0, 0, 0, 2, 1, 2, 0, 0])
        );
    }

    #[test]
    fn options_sequences_and_tuples() {
        assert_eq!(to_bytes(&None::<u32>), Ok(words(&[0])));
        assert_eq!(to_bytes(&Some(9u32)), Ok(words(&[1, 9])));
        assert_eq!(to_bytes(&vec![3u32, 4]), Ok(words(&[2, 3, 4])));
        assert_eq!(to_bytes(&Vec::<u32>::new()), Ok(words(&[0])));
        assert_eq!(to_bytes(&(1u32, 2i32)), Ok(words(&[1, 2])));
        assert_eq!(to_bytes(&[7u32; 2]), Ok(words(&[7, 7])));
        assert_eq!(to_bytes(&()), Ok(vec![]));
    }

    #[test]
    fn structs_are_their_fields_in_order() {
        #[derive(Serialize)]
        struct Unit;
        #[derive(Serialize)]
        struct Newtype(u32);
        #[derive(Serialize)]
        struct Fields {
            b: u32,
            a: Newtype,
            u: Unit,
            s: String,
        }
        let value = Fields {
            b: 1,
            a: Newtype(2),
            u: Unit,
            s: "x".into(),
        };
        assert_eq!(
            to_bytes(&value),
            Ok(vec![0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 1, b'x', 0, 0, 0])
        );
    }

    #[test]
    fn unsupported_types_are_refused() {
        assert!(matches!(to_bytes(&'a'), Err(Error::UnsupportedType(_))));
        let map: std::collections::BTreeMap<u32, u32> = [(1, 2)].into();
        assert!(matches!(to_bytes(&map), Err(Error::UnsupportedType(_))));
        #[derive(Serialize)]
        enum Derived {
            A,
            B(u32),
        }
        assert!(matches!(
            to_bytes(&Derived::A),
            Err(Error::UnsupportedType(_))
        ));
        assert!(matches!(
            to_bytes(&Derived::B(1)),
            Err(Error::UnsupportedType(_))
        ));
    }

    #[test]
    fn skipped_struct_fields_are_refused() {
        #[derive(Serialize)]
        struct Skips {
            #[serde(skip_serializing_if = "Option::is_none")]
            a: Option<u32>,
        }
        assert!(matches!(
            to_bytes(&Skips { a: None }),
            Err(Error::Custom(_))
        ));
        assert_eq!(to_bytes(&Skips { a: Some(1) }), Ok(words(&[1, 1])));
    }

    #[test]
    fn arrays_of_zero_size_elements_are_refused() {
        assert!(matches!(
            to_bytes(&vec![(), ()]),
            Err(Error::UnsupportedType(_))
        ));
        assert_eq!(to_bytes(&Vec::<()>::new()), Ok(words(&[0])));
    }

    #[test]
    fn to_writer_appends_and_leaves_output_alone_on_error() {
        let mut out = vec![0xaa];
        to_writer(&mut out, &1u32).expect("u32 encodes");
        assert_eq!(out, vec![0xaa, 0, 0, 0, 1]);
        assert!(to_writer(&mut out, &(1u32, 'c')).is_err());
        assert_eq!(out, vec![0xaa, 0, 0, 0, 1]);
    }
}
