//! Parses arbitrary text as domain XML (`migrated_core::xml::DomainDef`).
//!
//! Nothing may panic; a definition that parses must format (with every
//! format option combination that keeps all data) to XML that parses to the
//! same definition, and formatting that again gives the same text.

#![no_main]

use libfuzzer_sys::fuzz_target;
use migrated_core::xml::{DomainDef, FormatOptions};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(def) = DomainDef::parse(text) else {
        return;
    };
    let opts = FormatOptions {
        secure: true,
        ..FormatOptions::default()
    };
    let xml = def.format(&opts);
    let again = DomainDef::parse(&xml)
        .unwrap_or_else(|e| panic!("formatted XML does not parse: {e}\n{xml}"));
    let xml2 = again.format(&opts);
    assert_eq!(xml2, xml, "format → parse → format is not stable");
    // Secure-less output must never fail to parse either.
    let public = def.format(&FormatOptions::default());
    DomainDef::parse(&public)
        .unwrap_or_else(|e| panic!("formatted XML (not secure) does not parse: {e}\n{public}"));
});
