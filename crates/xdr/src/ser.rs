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
