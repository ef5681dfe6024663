//! The bounded helpers and wrappers, used exactly as generated code uses them.

use migrated_xdr::bounded::{BoundedBytes, BoundedString, BoundedVec};
use migrated_xdr::{from_bytes, to_bytes, Error};
use serde::{Deserialize, Serialize};

fn words(ws: &[u32]) -> Vec<u8> {
    ws.iter().flat_map(|w| w.to_be_bytes()).collect()
}

/// A struct shaped like the generated `remote_*_args`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Args {
    #[serde(deserialize_with = "migrated_xdr::bounded::string::<4194304, _>")]
    xml: String,
    #[serde(deserialize_with = "migrated_xdr::bounded::opt_string::<8, _>")]
    dname: Option<String>,
    #[serde(
        serialize_with = "serde_bytes::serialize",
        deserialize_with = "migrated_xdr::bounded::bytes::<6, _>"
    )]
    cookie: Vec<u8>,
    #[serde(
        serialize_with = "migrated_xdr::bounded::ser_opt_bytes::<6, _>",
        deserialize_with = "migrated_xdr::bounded::opt_bytes::<6, _>"
    )]
    opt_cookie: Option<Vec<u8>>,
    #[serde(deserialize_with = "migrated_xdr::bounded::vec::<2, _, _>")]
    ids: Vec<i32>,
    #[serde(with = "migrated_xdr::fixed_opaque")]
    uuid: [u8; 16],
    flags: u32,
}

fn sample() -> Args {
    Args {
        xml: "<domain/>".into(),
        dname: Some("guest".into()),
        cookie: vec![1, 2, 3],
        opt_cookie: None,
        ids: vec![-1, 5],
        uuid: *b"0123456789abcdef",
        flags: 0x500,
    }
}

#[test]
fn generated_style_struct_round_trips_with_exact_bytes() {
    let bytes = to_bytes(&sample()).expect("encodes");
    let mut expected = Vec::new();
    expected.extend(words(&[9]));
    expected.extend(b"<domain/>\0\0\0");
    expected.extend(words(&[1, 5]));
    expected.extend(b"guest\0\0\0");
    expected.extend(words(&[3]));
    expected.extend([1, 2, 3, 0]);
    expected.extend(words(&[0, 2, 0xffff_ffff, 5]));
    expected.extend(b"0123456789abcdef");
    expected.extend(words(&[0x500]));
    assert_eq!(bytes, expected);
    assert_eq!(from_bytes::<Args>(&bytes), Ok(sample()));
}

#[test]
fn string_over_its_maximum_is_refused() {
    let mut value = sample();
    value.dname = Some("ninechars".into());
    let bytes = to_bytes(&value).expect("plain String field encodes");
    assert_eq!(
        from_bytes::<Args>(&bytes),
        Err(Error::LengthOverMax { len: 9, max: 8 })
    );
}

#[test]
fn string_length_is_checked_against_max_before_the_input_left() {
    // A 5-byte maximum, a length of 6 and no data at all: the maximum wins.
    assert_eq!(
        from_bytes::<BoundedString<5>>(&words(&[6])),
        Err(Error::LengthOverMax { len: 6, max: 5 })
    );
    assert_eq!(
        from_bytes::<BoundedString<5>>(&words(&[5])),
        Err(Error::LengthOverRemaining {
            len: 5,
            remaining: 0
        })
    );
}

#[test]
fn array_count_over_its_maximum_is_refused() {
    let mut value = sample();
    value.ids = vec![1, 2, 3];
    let bytes = to_bytes(&value).expect("plain Vec field encodes");
    assert_eq!(
        from_bytes::<Args>(&bytes),
        Err(Error::LengthOverMax { len: 3, max: 2 })
    );
}

#[test]
fn opaque_over_its_maximum_is_refused() {
    let mut value = sample();
    value.cookie = vec![0; 7];
    let bytes = to_bytes(&value).expect("serde_bytes field encodes");
    assert_eq!(
        from_bytes::<Args>(&bytes),
        Err(Error::LengthOverMax { len: 7, max: 6 })
    );
}

#[test]
fn bounded_serializers_refuse_values_over_their_maximum() {
    let mut value = sample();
    value.opt_cookie = Some(vec![0; 7]);
    let err = to_bytes(&value).expect_err("7 bytes over a 6-byte maximum");
    assert_eq!(err.to_string(), "length 7 over its maximum 6");

    assert!(to_bytes(&BoundedString::<2>("abc".into())).is_err());
    assert!(to_bytes(&BoundedBytes::<2>(vec![1, 2, 3])).is_err());
    assert!(to_bytes(&BoundedVec::<u32, 2>(vec![1, 2, 3])).is_err());
    assert_eq!(
        to_bytes(&BoundedVec::<u32, 3>(vec![1, 2, 3])),
        Ok(words(&[3, 1, 2, 3]))
    );
}

#[test]
fn wrappers_round_trip_at_their_maximum_and_refuse_beyond() {
    let s = BoundedString::<3>("abc".into());
    let bytes = to_bytes(&s).expect("encodes");
    assert_eq!(from_bytes::<BoundedString<3>>(&bytes), Ok(s));
    assert_eq!(
        from_bytes::<BoundedString<2>>(&bytes),
        Err(Error::LengthOverMax { len: 3, max: 2 })
    );

    let b = BoundedBytes::<4>(vec![9, 8, 7, 6]);
    let bytes = to_bytes(&b).expect("encodes");
    assert_eq!(bytes, vec![0, 0, 0, 4, 9, 8, 7, 6]);
    assert_eq!(from_bytes::<BoundedBytes<4>>(&bytes), Ok(b));
    assert_eq!(
        from_bytes::<BoundedBytes<3>>(&bytes),
        Err(Error::LengthOverMax { len: 4, max: 3 })
    );

    let v = BoundedVec::<BoundedString<1>, 2>(vec![BoundedString("a".into())]);
    let bytes = to_bytes(&v).expect("encodes");
    assert_eq!(from_bytes::<BoundedVec<BoundedString<1>, 2>>(&bytes), Ok(v));
    assert_eq!(
        from_bytes::<BoundedVec<BoundedString<1>, 0>>(&bytes),
        Err(Error::LengthOverMax { len: 1, max: 0 })
    );
}

#[test]
fn bounded_helpers_check_invalid_utf8_and_padding_too() {
    assert!(matches!(
        from_bytes::<BoundedString<8>>(&[0, 0, 0, 1, 0xff, 0, 0, 0]),
        Err(Error::InvalidUtf8(_))
    ));
    assert_eq!(
        from_bytes::<BoundedString<8>>(&[0, 0, 0, 1, b'a', 0, 1, 0]),
        Err(Error::NonZeroPadding)
    );
    assert_eq!(
        from_bytes::<BoundedBytes<8>>(&[0, 0, 0, 1, 7, 0, 0, 1]),
        Err(Error::NonZeroPadding)
    );
}

#[test]
fn huge_bounded_length_in_a_twelve_byte_input_is_refused() {
    let input = words(&[0xffff_fff0, 0, 0]);
    let over = Some(Error::LengthOverRemaining {
        len: 0xffff_fff0,
        remaining: 8,
    });
    // Maxima at u32::MAX so only the input-left check can stop it.
    assert_eq!(from_bytes::<BoundedString<0xffff_ffff>>(&input).err(), over);
    assert_eq!(from_bytes::<BoundedBytes<0xffff_ffff>>(&input).err(), over);
    assert_eq!(
        from_bytes::<BoundedVec<u64, 0xffff_ffff>>(&input).err(),
        over
    );
}

#[test]
fn fixed_opaque_pads_to_four_and_has_no_length_word() {
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Five(#[serde(with = "migrated_xdr::fixed_opaque")] [u8; 5]);
    let bytes = to_bytes(&Five([1, 2, 3, 4, 5])).expect("encodes");
    assert_eq!(bytes, vec![1, 2, 3, 4, 5, 0, 0, 0]);
    assert_eq!(from_bytes::<Five>(&bytes), Ok(Five([1, 2, 3, 4, 5])));
    assert_eq!(
        from_bytes::<Five>(&[1, 2, 3, 4, 5, 0, 9, 0]),
        Err(Error::NonZeroPadding)
    );
    assert_eq!(
        from_bytes::<Five>(&[1, 2, 3, 4, 5, 0, 0]),
        Err(Error::LengthOverRemaining {
            len: 5,
            remaining: 7
        })
    );
}

/// Other formats see plain values: the helpers decode normally and check
/// the bound afterwards (here with JSON, a human-readable format).
#[test]
fn helpers_fall_back_to_plain_values_with_other_formats() {
    let json = serde_json::to_string(&sample()).expect("json encodes");
    assert_eq!(
        serde_json::from_str::<Args>(&json).expect("json decodes"),
        sample()
    );

    let mut long = sample();
    long.dname = Some("ninechars".into());
    let json = serde_json::to_string(&long).expect("json encodes");
    let err = serde_json::from_str::<Args>(&json).expect_err("over max");
    assert!(err.to_string().contains("over its maximum 8"), "{err}");

    assert!(serde_json::from_str::<BoundedVec<u32, 1>>("[1,2]").is_err());
    assert!(serde_json::from_str::<BoundedBytes<1>>("[1,2]").is_err());
    assert_eq!(
        serde_json::from_str::<BoundedBytes<2>>("[1,2]").ok(),
        Some(BoundedBytes(vec![1, 2]))
    );
}
