//! Parses arbitrary bytes as a migration cookie (`migrated_core::cookie`).
//!
//! Nothing may panic; a cookie that parses must encode within the size
//! limit, and that encoding must parse to an equal cookie.

#![no_main]

use libfuzzer_sys::fuzz_target;
use migrated_core::cookie::Cookie;

fuzz_target!(|data: &[u8]| {
    let Ok(Some(cookie)) = Cookie::decode(data) else {
        return;
    };
    // A received cookie may be re-encoded larger (escaping); that is a clean
    // error, never a panic.
    let Ok(encoded) = cookie.encode() else {
        return;
    };
    let again = Cookie::decode(&encoded)
        .expect("an encoded cookie parses")
        .expect("an encoded cookie is not empty");
    assert_eq!(again, cookie, "cookie encode/decode is not stable");
});
