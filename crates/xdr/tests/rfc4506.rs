//! Known-answer vectors from RFC 4506, with a union written by hand exactly
//! as the generated ones are: a 2-tuple `(discriminant: i32, arm)`.

use std::fmt;

use migrated_xdr::bounded::BoundedString;
use migrated_xdr::{from_bytes, to_bytes, Error};
use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

const MAXUSERNAME: usize = 32;
const MAXFILELEN: usize = 65535;
const MAXNAMELEN: usize = 255;

/// `union filetype switch (filekind kind)` from RFC 4506 section 7.
#[derive(Debug, Clone, PartialEq)]
enum FileType {
    Text,
    Data(String),
    Exec(String),
}

impl Serialize for FileType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            FileType::Text => {
                let mut t = s.serialize_tuple(1)?;
                t.serialize_element(&0i32)?;
                t.end()
            }
            FileType::Data(creator) => {
                let mut t = s.serialize_tuple(2)?;
                t.serialize_element(&1i32)?;
                t.serialize_element(creator)?;
                t.end()
            }
            FileType::Exec(interpretor) => {
                let mut t = s.serialize_tuple(2)?;
                t.serialize_element(&2i32)?;
                t.serialize_element(interpretor)?;
                t.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for FileType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ArmVisitor;

        impl<'de> Visitor<'de> for ArmVisitor {
            type Value = FileType;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("union filetype")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<FileType, A::Error> {
                let kind: i32 = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let mut arm = || -> Result<String, A::Error> {
                    seq.next_element::<BoundedString<MAXNAMELEN>>()?
                        .map(|s| s.0)
                        .ok_or_else(|| de::Error::invalid_length(1, &self))
                };
                match kind {
                    0 => Ok(FileType::Text),
                    1 => Ok(FileType::Data(arm()?)),
                    2 => Ok(FileType::Exec(arm()?)),
                    other => Err(migrated_xdr::unknown_discriminant(other)),
                }
            }
        }

        d.deserialize_tuple(2, ArmVisitor)
    }
}

/// `struct file` from RFC 4506 section 7.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct File {
    #[serde(deserialize_with = "migrated_xdr::bounded::string::<MAXNAMELEN, _>")]
    filename: String,
    #[serde(rename = "type")]
    type_: FileType,
    #[serde(deserialize_with = "migrated_xdr::bounded::string::<MAXUSERNAME, _>")]
    owner: String,
    #[serde(
        serialize_with = "migrated_xdr::bounded::ser_bytes::<MAXFILELEN, _>",
        deserialize_with = "migrated_xdr::bounded::bytes::<MAXFILELEN, _>"
    )]
    data: Vec<u8>,
}

/// The byte listing of RFC 4506 section 7: the file "sillyprog", a lisp
/// program owned by john whose data is "(quit)".
const SILLYPROG: [u8; 48] = [
    0x00, 0x00, 0x00, 0x09, // length of filename = 9
    0x73, 0x69, 0x6c, 0x6c, // "sill"
    0x79, 0x70, 0x72, 0x6f, // "ypro"
    0x67, 0x00, 0x00, 0x00, // "g" and 3 zero bytes of fill
    0x00, 0x00, 0x00, 0x02, // filekind is EXEC = 2
    0x00, 0x00, 0x00, 0x04, // length of interpretor = 4
    0x6c, 0x69, 0x73, 0x70, // "lisp"
    0x00, 0x00, 0x00, 0x04, // length of owner = 4
    0x6a, 0x6f, 0x68, 0x6e, // "john"
    0x00, 0x00, 0x00, 0x06, // length of file data = 6
    0x28, 0x71, 0x75, 0x69, // "(qui"
    0x74, 0x29, 0x00, 0x00, // "t)" and 2 zero bytes of fill
];

fn sillyprog() -> File {
    File {
        filename: "sillyprog".into(),
        type_: FileType::Exec("lisp".into()),
        owner: "john".into(),
        data: b"(quit)".to_vec(),
    }
}

#[test]
fn rfc4506_file_example_encodes_to_the_published_bytes() {
    assert_eq!(to_bytes(&sillyprog()).expect("encodes"), SILLYPROG);
}

#[test]
fn rfc4506_file_example_decodes_from_the_published_bytes() {
    assert_eq!(from_bytes::<File>(&SILLYPROG), Ok(sillyprog()));
}

#[test]
fn void_union_arm_is_only_the_discriminant() {
    let text = File {
        type_: FileType::Text,
        ..sillyprog()
    };
    let bytes = to_bytes(&text).expect("encodes");
    // Same as the listing without the 8-byte interpretor arm.
    let mut expected = SILLYPROG[..16].to_vec();
    expected.extend([0, 0, 0, 0]);
    expected.extend(&SILLYPROG[28..]);
    assert_eq!(bytes, expected);
    assert_eq!(from_bytes::<File>(&bytes), Ok(text));
}

#[test]
fn unknown_union_discriminant_is_refused() {
    let mut bytes = SILLYPROG;
    bytes[19] = 3;
    assert_eq!(
        from_bytes::<File>(&bytes),
        Err(Error::UnknownDiscriminant(3))
    );
}

#[test]
fn union_arm_string_over_its_maximum_is_refused() {
    let long = File {
        type_: FileType::Data("c".repeat(MAXNAMELEN + 1)),
        ..sillyprog()
    };
    let bytes = to_bytes(&long).expect("a plain String arm encodes");
    assert_eq!(
        from_bytes::<File>(&bytes),
        Err(Error::LengthOverMax {
            len: MAXNAMELEN as u64 + 1,
            max: MAXNAMELEN as u64
        })
    );
}

#[test]
fn owner_over_maxusername_is_refused() {
    let long = File {
        owner: "j".repeat(MAXUSERNAME + 1),
        ..sillyprog()
    };
    let bytes = to_bytes(&long).expect("a plain String field encodes");
    assert_eq!(
        from_bytes::<File>(&bytes),
        Err(Error::LengthOverMax {
            len: MAXUSERNAME as u64 + 1,
            max: MAXUSERNAME as u64
        })
    );
}

#[test]
fn every_truncation_of_the_listing_is_an_error() {
    for len in 0..SILLYPROG.len() {
        assert!(
            from_bytes::<File>(&SILLYPROG[..len]).is_err(),
            "prefix of {len} bytes decoded"
        );
    }
}

#[test]
fn rfc4506_basic_type_examples() {
    // Section 4.1/4.5: integers and hypers are big-endian two's complement.
    assert_eq!(to_bytes(&-1i32).expect("encodes"), [0xff; 4]);
    assert_eq!(
        to_bytes(&0x0102_0304_0506_0708u64).expect("encodes"),
        [1, 2, 3, 4, 5, 6, 7, 8]
    );
    // Section 4.6: single-precision 1.0 is 0x3f800000.
    assert_eq!(to_bytes(&1.0f32).expect("encodes"), [0x3f, 0x80, 0, 0]);
}
