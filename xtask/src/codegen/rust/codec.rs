//! How bounded values are (de)serialized: serde attributes for struct
//! fields, wrapper types for union arms.

use super::super::resolve::Wire;
use super::super::ParseError;
use super::Gen;

/// How a value is bounded when (de)serialized.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Codec {
    /// No bound inside: the type's own impls do everything.
    Plain,
    /// `String` of at most N bytes.
    Str(String),
    /// `Option<String>` of at most N bytes.
    OptStr(String),
    /// `Vec<u8>` (variable opaque) of at most N bytes.
    Bytes(String),
    /// `Option<Vec<u8>>` of at most N bytes.
    OptBytes(String),
    /// `[u8; N]` fixed opaque.
    Fixed(String),
    /// `Vec<T>` of at most N plain elements.
    Vec(String),
    /// `Vec<String>`: at most N strings of at most M bytes.
    StrVec(String, String),
}

impl Gen<'_> {
    /// The codec of a wire type; bounded types nested in ways the helpers
    /// cannot express are refused.
    pub(super) fn codec(&mut self, w: &Wire, line: usize, what: &str) -> Result<Codec, ParseError> {
        let unsupported = |g: &Self| {
            g.err(
                line,
                format!("{what}: unsupported nesting of bounded types"),
            )
        };
        Ok(match w {
            Wire::String(n) => Codec::Str(self.use_size(n)),
            Wire::Bytes(n) => Codec::Bytes(self.use_size(n)),
            Wire::FixedBytes(n) => Codec::Fixed(self.use_size(n)),
            Wire::Optional(inner) => match &**inner {
                Wire::String(n) => Codec::OptStr(self.use_size(n)),
                Wire::Bytes(n) => Codec::OptBytes(self.use_size(n)),
                i if is_plain(i) => Codec::Plain,
                _ => return Err(unsupported(self)),
            },
            Wire::Vec(inner, n) => match &**inner {
                Wire::String(m) => {
                    let m = self.use_size(m);
                    Codec::StrVec(self.use_size(n), m)
                }
                i if is_plain(i) => Codec::Vec(self.use_size(n)),
                _ => return Err(unsupported(self)),
            },
            Wire::Array(inner, n) => {
                if !is_plain(inner) {
                    return Err(unsupported(self));
                }
                // serde implements arrays only up to 32 elements.
                if n.value > 32 {
                    return Err(self.err(
                        line,
                        format!("{what}: fixed arrays longer than 32 are not supported"),
                    ));
                }
                Codec::Plain
            }
            _ => Codec::Plain,
        })
    }
}

/// `true` when a value of this wire type needs no bound checks of its own.
fn is_plain(w: &Wire) -> bool {
    match w {
        Wire::String(_)
        | Wire::Bytes(_)
        | Wire::FixedBytes(_)
        | Wire::Vec(..)
        | Wire::Optional(_) => false,
        Wire::Array(inner, n) => n.value <= 32 && is_plain(inner),
        _ => true,
    }
}

/// `serialize_with` / `deserialize_with` paths for a struct field.
pub(super) fn field_attrs(c: &Codec) -> Option<(String, String)> {
    let b = "migrated_xdr::bounded";
    Some(match c {
        Codec::Plain => return None,
        Codec::Str(n) => (
            format!("{b}::ser_string::<{n}, _>"),
            format!("{b}::string::<{n}, _>"),
        ),
        Codec::OptStr(n) => (
            format!("{b}::ser_opt_string::<{n}, _>"),
            format!("{b}::opt_string::<{n}, _>"),
        ),
        Codec::Bytes(n) => (
            format!("{b}::ser_bytes::<{n}, _>"),
            format!("{b}::bytes::<{n}, _>"),
        ),
        Codec::OptBytes(n) => (
            format!("{b}::ser_opt_bytes::<{n}, _>"),
            format!("{b}::opt_bytes::<{n}, _>"),
        ),
        Codec::Fixed(_) => (
            "migrated_xdr::fixed_opaque::serialize".into(),
            "migrated_xdr::fixed_opaque::deserialize".into(),
        ),
        Codec::Vec(n) => (
            format!("{b}::ser_vec::<{n}, _, _>"),
            format!("{b}::vec::<{n}, _, _>"),
        ),
        Codec::StrVec(n, m) => (
            format!("crate::codec::ser_string_vec::<{n}, {m}, _>"),
            format!("crate::codec::de_string_vec::<{n}, {m}, _>"),
        ),
    })
}

/// Expression serializing `v` (a reference) with its bounds, for union arms.
pub(super) fn ser_expr(c: &Codec, v: &str) -> String {
    match c {
        Codec::Plain => v.to_string(),
        Codec::Str(n) => format!("&crate::codec::Str::<{n}>({v})"),
        Codec::OptStr(n) => format!("&crate::codec::OptStr::<{n}>({v})"),
        Codec::Bytes(n) => format!("&crate::codec::Bytes::<{n}>({v})"),
        Codec::OptBytes(n) => format!("&crate::codec::OptBytes::<{n}>({v})"),
        Codec::Fixed(_) => format!("&crate::codec::Fixed({v})"),
        Codec::Vec(n) => format!("&crate::codec::Slice::<_, {n}>({v})"),
        Codec::StrVec(n, m) => format!("&crate::codec::StrSlice::<{n}, {m}>({v})"),
    }
}

/// Type to decode a union arm as, and the conversion to the Rust type.
pub(super) fn de_parts(c: &Codec, rust: &str) -> (String, String) {
    let b = "migrated_xdr::bounded";
    match c {
        Codec::Plain => (rust.to_string(), String::new()),
        Codec::Str(n) => (format!("{b}::BoundedString<{n}>"), ".0".into()),
        Codec::OptStr(n) => (
            format!("Option<{b}::BoundedString<{n}>>"),
            ".map(|s| s.0)".into(),
        ),
        Codec::Bytes(n) => (format!("{b}::BoundedBytes<{n}>"), ".0".into()),
        Codec::OptBytes(n) => (
            format!("Option<{b}::BoundedBytes<{n}>>"),
            ".map(|s| s.0)".into(),
        ),
        Codec::Fixed(n) => (format!("crate::codec::FixedOwned<{n}>"), ".0".into()),
        Codec::Vec(n) => {
            let elem = rust
                .strip_prefix("Vec<")
                .and_then(|r| r.strip_suffix('>'))
                .unwrap_or(rust);
            (format!("{b}::BoundedVec<{elem}, {n}>"), ".0".into())
        }
        Codec::StrVec(n, m) => (format!("crate::codec::StrVec<{n}, {m}>"), ".0".into()),
    }
}
