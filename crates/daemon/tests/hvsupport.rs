//! `docs/hvsupport.md` must match the drivers' support tables.
//!
//! With `MIGRATED_WRITE_HVSUPPORT=1` (what `cargo xtask hvsupport` sets) the
//! file is rewritten instead of compared.

use std::path::Path;

use migrated_core::support::SupportTable;

/// Every driver the daemon serves, in column order.
fn tables() -> [&'static SupportTable; 2] {
    [
        &migrated_driver_test::SUPPORT,
        &migrated_driver_qemu::SUPPORT,
    ]
}

#[test]
fn committed_support_matrix_matches_the_driver_tables() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/hvsupport.md");
    let rendered = migrated_core::hvsupport::render(&tables());
    if std::env::var_os("MIGRATED_WRITE_HVSUPPORT").is_some() {
        std::fs::write(&path, rendered).expect("write docs/hvsupport.md");
        return;
    }
    let committed = std::fs::read_to_string(&path).expect("docs/hvsupport.md exists");
    assert!(
        committed == rendered,
        "docs/hvsupport.md is stale: run `cargo xtask hvsupport` and commit it"
    );
}

#[test]
fn one_column_per_driver() {
    let doc = migrated_core::hvsupport::render(&tables());
    let header = doc
        .lines()
        .find(|l| l.starts_with("| # | procedure"))
        .expect("procedure table header");
    assert!(header.ends_with("| Test | QEMU |"), "{header}");
}
