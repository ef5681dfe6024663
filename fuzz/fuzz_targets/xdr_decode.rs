//! Decodes arbitrary bytes as a few representative libvirt message shapes.
//!
//! Nothing may panic, and anything that decodes must re-encode to exactly
//! the input: the decoder accepts only canonical XDR (zero padding, bools and
//! optional markers 0/1, exact lengths), so decoding is one-to-one.

#![no_main]

use std::fmt;

use libfuzzer_sys::fuzz_target;
use migrated_xdr::bounded::{BoundedBytes, BoundedString};
use serde::de::{self, DeserializeOwned, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

const STRING_MAX: usize = 4_194_304;
const FIELD_MAX: usize = 80;
const PARAM_LIST_MAX: usize = 64;

/// `virNetMessageHeader`.
#[derive(Serialize, Deserialize)]
struct Header {
    prog: u32,
    vers: u32,
    proc_: i32,
    type_: i32,
    serial: u32,
    status: i32,
}

/// `remote_connect_open_args`.
#[derive(Serialize, Deserialize)]
struct ConnectOpenArgs {
    #[serde(deserialize_with = "migrated_xdr::bounded::opt_string::<STRING_MAX, _>")]
    name: Option<String>,
    flags: u32,
}

/// `remote_nonnull_domain`.
#[derive(Serialize, Deserialize)]
struct NonnullDomain {
    #[serde(deserialize_with = "migrated_xdr::bounded::string::<STRING_MAX, _>")]
    name: String,
    #[serde(with = "migrated_xdr::fixed_opaque")]
    uuid: [u8; 16],
    id: i32,
}

/// `remote_nonnull_network`.
#[derive(Serialize, Deserialize)]
struct NonnullNetwork {
    name: BoundedString<STRING_MAX>,
    #[serde(with = "migrated_xdr::fixed_opaque")]
    uuid: [u8; 16],
}

/// `remote_typed_param_value`, written as the generated unions are.
enum ParamValue {
    Int(i32),
    UInt(u32),
    LLong(i64),
    ULLong(u64),
    Double(f64),
    Boolean(i32),
    String(String),
}

impl Serialize for ParamValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(2)?;
        match self {
            ParamValue::Int(v) => (t.serialize_element(&1i32)?, t.serialize_element(v)?),
            ParamValue::UInt(v) => (t.serialize_element(&2i32)?, t.serialize_element(v)?),
            ParamValue::LLong(v) => (t.serialize_element(&3i32)?, t.serialize_element(v)?),
            ParamValue::ULLong(v) => (t.serialize_element(&4i32)?, t.serialize_element(v)?),
            ParamValue::Double(v) => (t.serialize_element(&5i32)?, t.serialize_element(v)?),
            ParamValue::Boolean(v) => (t.serialize_element(&6i32)?, t.serialize_element(v)?),
            ParamValue::String(v) => (t.serialize_element(&7i32)?, t.serialize_element(v)?),
        };
        t.end()
    }
}

impl<'de> Deserialize<'de> for ParamValue {
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
            type Value = ParamValue;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("union remote_typed_param_value")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ParamValue, A::Error> {
                let disc: i32 = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                Ok(match disc {
                    1 => ParamValue::Int(arm(&mut seq, &self)?),
                    2 => ParamValue::UInt(arm(&mut seq, &self)?),
                    3 => ParamValue::LLong(arm(&mut seq, &self)?),
                    4 => ParamValue::ULLong(arm(&mut seq, &self)?),
                    5 => ParamValue::Double(arm(&mut seq, &self)?),
                    6 => ParamValue::Boolean(arm(&mut seq, &self)?),
                    7 => {
                        ParamValue::String(arm::<BoundedString<STRING_MAX>, _>(&mut seq, &self)?.0)
                    }
                    other => return Err(migrated_xdr::unknown_discriminant(other)),
                })
            }
        }

        d.deserialize_tuple(2, ArmVisitor)
    }
}

/// `remote_typed_param`.
#[derive(Serialize, Deserialize)]
struct TypedParam {
    #[serde(deserialize_with = "migrated_xdr::bounded::string::<FIELD_MAX, _>")]
    field: String,
    value: ParamValue,
}

/// `remote_domain_migrate_begin3_params_args`-like.
#[derive(Serialize, Deserialize)]
struct MigrateArgs {
    dom: NonnullDomain,
    #[serde(deserialize_with = "migrated_xdr::bounded::vec::<PARAM_LIST_MAX, _, _>")]
    params: Vec<TypedParam>,
    #[serde(
        serialize_with = "migrated_xdr::bounded::ser_opt_bytes::<STRING_MAX, _>",
        deserialize_with = "migrated_xdr::bounded::opt_bytes::<STRING_MAX, _>"
    )]
    cookie_in: Option<Vec<u8>>,
    cookie_out: BoundedBytes<STRING_MAX>,
    flags: u32,
}

/// `remote_error`.
#[derive(Serialize, Deserialize)]
struct RemoteError {
    code: i32,
    domain: i32,
    #[serde(deserialize_with = "migrated_xdr::bounded::opt_string::<STRING_MAX, _>")]
    message: Option<String>,
    level: i32,
    dom: Option<NonnullDomain>,
    #[serde(deserialize_with = "migrated_xdr::bounded::opt_string::<STRING_MAX, _>")]
    str1: Option<String>,
    #[serde(deserialize_with = "migrated_xdr::bounded::opt_string::<STRING_MAX, _>")]
    str2: Option<String>,
    #[serde(deserialize_with = "migrated_xdr::bounded::opt_string::<STRING_MAX, _>")]
    str3: Option<String>,
    int1: i32,
    int2: i32,
    net: Option<NonnullNetwork>,
}

/// Decodes `data` as `T`; if that works, the encoding must be `data` again.
fn check<T: DeserializeOwned + Serialize>(data: &[u8]) {
    if let Ok(value) = migrated_xdr::from_bytes::<T>(data) {
        let again = migrated_xdr::to_bytes(&value).expect("a decoded value re-encodes");
        assert_eq!(again, data, "decoding is not one-to-one");
    }
}

fuzz_target!(|data: &[u8]| {
    // A whole captured message: length word, header, payload.
    if let Ok(((_len, _header), payload)) = migrated_xdr::from_bytes_prefix::<(u32, Header)>(data) {
        check::<RemoteError>(payload);
        check::<MigrateArgs>(payload);
    }
    check::<ConnectOpenArgs>(data);
    check::<MigrateArgs>(data);
    check::<RemoteError>(data);
    check::<Vec<TypedParam>>(data);
});
