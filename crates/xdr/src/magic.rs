//! Private type names through which the bounded and fixed-opaque helpers
//! talk to this crate's serializer and deserializer.
//!
//! serde gives a `Deserialize` impl no way to pass a maximum length to the
//! format, but it does pass type names and tuple lengths. The helpers ask for
//! a newtype named [`HANDSHAKE`]: our deserializer answers with a one-element
//! seq, the helper's seed then asks for a tuple struct named after the kind
//! with the bound as its length, and other formats just see a newtype. The
//! leading NUL keeps the names from colliding with real Rust types.

/// Newtype name a bounded helper asks for first.
pub(crate) const HANDSHAKE: &str = "\0migrated_xdr::bounded";
/// Tuple-struct name: a string of at most `len` bytes.
pub(crate) const STRING: &str = "\0migrated_xdr::string";
/// Tuple-struct name: a variable opaque of at most `len` bytes.
pub(crate) const BYTES: &str = "\0migrated_xdr::bytes";
/// Tuple-struct name: an array of at most `len` elements.
pub(crate) const SEQ: &str = "\0migrated_xdr::seq";
/// Tuple-struct name when decoding (exactly `len` bytes), newtype name when
/// encoding: a fixed opaque, with no length word.
pub(crate) const FIXED_OPAQUE: &str = "\0migrated_xdr::fixed_opaque";
