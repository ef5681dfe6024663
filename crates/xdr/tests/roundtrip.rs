//! Property tests: every value survives encode → decode, encodings are
//! word-aligned, and damaged or random input yields errors, never panics.

use std::fmt;

use migrated_xdr::bounded::{BoundedBytes, BoundedString, BoundedVec};
use migrated_xdr::{from_bytes, to_bytes};
use proptest::collection::vec;
use proptest::prelude::*;
use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A union written as the generated ones are (cf. `remote_typed_param_value`).
#[derive(Debug, Clone, PartialEq)]
enum Param {
    Int(i32),
    ULLong(u64),
    Double(f64),
    Boolean(bool),
    String(String),
    Blob(Vec<u8>),
    Void,
}

impl Param {
    fn discriminant(&self) -> i32 {
        match self {
            Param::Int(_) => 1,
            Param::ULLong(_) => 4,
            Param::Double(_) => 5,
            Param::Boolean(_) => 6,
            Param::String(_) => 7,
            Param::Blob(_) => 8,
            Param::Void => 9,
        }
    }
}

impl Serialize for Param {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(2)?;
        t.serialize_element(&self.discriminant())?;
        match self {
            Param::Int(v) => t.serialize_element(v)?,
            Param::ULLong(v) => t.serialize_element(v)?,
            Param::Double(v) => t.serialize_element(v)?,
            Param::Boolean(v) => t.serialize_element(v)?,
            Param::String(v) => t.serialize_element(v)?,
            Param::Blob(v) => t.serialize_element(serde_bytes::Bytes::new(v))?,
            Param::Void => t.serialize_element(&())?,
        }
        t.end()
    }
}

impl<'de> Deserialize<'de> for Param {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ArmVisitor;

        fn arm<'de, T: Deserialize<'de>, A: SeqAccess<'de>>(
            seq: &mut A,
            exp: &ArmVisitor,
        ) -> Result<T, A::Error> {
            seq.next_element()?
                .ok_or_else(|| de::Error::invalid_length(1, exp))
        }

        impl<'de> Visitor<'de> for ArmVisitor {
            type Value = Param;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("union param")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Param, A::Error> {
                let disc: i32 = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                Ok(match disc {
                    1 => Param::Int(arm(&mut seq, &self)?),
                    4 => Param::ULLong(arm(&mut seq, &self)?),
                    5 => Param::Double(arm(&mut seq, &self)?),
                    6 => Param::Boolean(arm(&mut seq, &self)?),
                    7 => Param::String(arm::<BoundedString<64>, _>(&mut seq, &self)?.0),
                    8 => Param::Blob(arm::<BoundedBytes<64>, _>(&mut seq, &self)?.0),
                    9 => Param::Void,
                    other => return Err(migrated_xdr::unknown_discriminant(other)),
                })
            }
        }

        d.deserialize_tuple(2, ArmVisitor)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Named {
    #[serde(deserialize_with = "migrated_xdr::bounded::string::<64, _>")]
    field: String,
    value: Param,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Domain {
    #[serde(deserialize_with = "migrated_xdr::bounded::string::<64, _>")]
    name: String,
    #[serde(with = "migrated_xdr::fixed_opaque")]
    uuid: [u8; 16],
    id: i32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Call {
    dom: Option<Domain>,
    #[serde(deserialize_with = "migrated_xdr::bounded::vec::<8, _, _>")]
    params: Vec<Named>,
    #[serde(
        serialize_with = "migrated_xdr::bounded::ser_opt_bytes::<64, _>",
        deserialize_with = "migrated_xdr::bounded::opt_bytes::<64, _>"
    )]
    cookie: Option<Vec<u8>>,
    #[serde(deserialize_with = "migrated_xdr::bounded::opt_string::<64, _>")]
    dname: Option<String>,
    names: BoundedVec<BoundedString<64>, 4>,
    small: (i8, u8, i16, u16),
    ratio: f32,
    flags: u64,
}

fn string64() -> impl Strategy<Value = String> {
    // Up to 16 chars of up to 4 UTF-8 bytes each stays within 64 bytes.
    "\\PC{0,16}"
}

fn bytes64() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..=64)
}

fn param() -> impl Strategy<Value = Param> {
    prop_oneof![
        any::<i32>().prop_map(Param::Int),
        any::<u64>().prop_map(Param::ULLong),
        any::<f64>().prop_map(Param::Double),
        any::<bool>().prop_map(Param::Boolean),
        string64().prop_map(Param::String),
        bytes64().prop_map(Param::Blob),
        Just(Param::Void),
    ]
}

fn domain() -> impl Strategy<Value = Domain> {
    (string64(), any::<[u8; 16]>(), any::<i32>()).prop_map(|(name, uuid, id)| Domain {
        name,
        uuid,
        id,
    })
}

fn call() -> impl Strategy<Value = Call> {
    (
        proptest::option::of(domain()),
        vec(
            (string64(), param()).prop_map(|(field, value)| Named { field, value }),
            0..=8,
        ),
        proptest::option::of(bytes64()),
        proptest::option::of(string64()),
        vec(string64().prop_map(BoundedString), 0..=4),
        any::<(i8, u8, i16, u16)>(),
        any::<f32>(),
        any::<u64>(),
    )
        .prop_map(
            |(dom, params, cookie, dname, names, small, ratio, flags)| Call {
                dom,
                params,
                cookie,
                dname,
                names: BoundedVec(names),
                small,
                ratio,
                flags,
            },
        )
}

proptest! {
    #[test]
    fn strings_round_trip(s in "\\PC*") {
        let bytes = to_bytes(&s).expect("encodes");
        prop_assert_eq!(bytes.len() % 4, 0);
        prop_assert_eq!(bytes.len(), 4 + s.len().div_ceil(4) * 4);
        prop_assert_eq!(from_bytes::<String>(&bytes).expect("decodes"), s);
    }

    #[test]
    fn opaques_round_trip(b in vec(any::<u8>(), 0..200)) {
        let bytes = to_bytes(serde_bytes::Bytes::new(&b)).expect("encodes");
        prop_assert_eq!(bytes.len() % 4, 0);
        let back: serde_bytes::ByteBuf = from_bytes(&bytes).expect("decodes");
        prop_assert_eq!(back.into_vec(), b);
    }

    #[test]
    fn vecs_and_options_round_trip(v in vec(proptest::option::of(any::<i64>()), 0..50)) {
        let bytes = to_bytes(&v).expect("encodes");
        prop_assert_eq!(from_bytes::<Vec<Option<i64>>>(&bytes).expect("decodes"), v);
    }

    #[test]
    fn unions_round_trip(p in param()) {
        let bytes = to_bytes(&p).expect("encodes");
        let back: Param = from_bytes(&bytes).expect("decodes");
        // Compare encodings: NaN payloads survive bit for bit, NaN != NaN.
        prop_assert_eq!(to_bytes(&back).expect("re-encodes"), bytes);
    }

    #[test]
    fn nested_structs_round_trip(c in call()) {
        let bytes = to_bytes(&c).expect("encodes");
        prop_assert_eq!(bytes.len() % 4, 0);
        let back: Call = from_bytes(&bytes).expect("decodes");
        prop_assert_eq!(to_bytes(&back).expect("re-encodes"), bytes);
        if !c.ratio.is_nan() && c.params.iter().all(|p| !matches!(p.value, Param::Double(d) if d.is_nan())) {
            prop_assert_eq!(back, c);
        }
    }

    #[test]
    fn truncated_encodings_are_errors(c in call(), cut in any::<prop::sample::Index>()) {
        let bytes = to_bytes(&c).expect("encodes");
        let len = cut.index(bytes.len());
        prop_assert!(from_bytes::<Call>(&bytes[..len]).is_err());
    }

    #[test]
    fn damaged_encodings_never_panic(c in call(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut bytes = to_bytes(&c).expect("encodes");
        let i = at.index(bytes.len());
        bytes[i] = byte;
        let _ = from_bytes::<Call>(&bytes);
    }

    #[test]
    fn random_bytes_never_panic(bytes in vec(any::<u8>(), 0..512)) {
        let _ = from_bytes::<Call>(&bytes);
        let _ = from_bytes::<Vec<Param>>(&bytes);
    }
}
