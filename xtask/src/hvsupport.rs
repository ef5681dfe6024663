//! `cargo xtask hvsupport`: renders `docs/hvsupport.md` from the drivers'
//! support tables, `--check` fails when the committed file is stale.
//!
//! The rendering lives in `migrated_core::hvsupport` and the list of drivers in
//! the daemon's `hvsupport` test, so xtask itself links none of the project's
//! crates: `cargo xtask codegen` must keep working even while generated code
//! that the other crates depend on is broken.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Arguments of `cargo xtask hvsupport`.
#[derive(Debug, clap::Args)]
pub struct HvsupportArgs {
    /// Do not write; fail if docs/hvsupport.md is not up to date.
    #[arg(long)]
    check: bool,
}

/// Renders or checks `docs/hvsupport.md`.
pub fn run(root: &Path, args: &HvsupportArgs) -> Result<()> {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(root).args([
        "test",
        "--quiet",
        "-p",
        "migrated-daemon",
        "--test",
        "hvsupport",
    ]);
    if !args.check {
        cmd.env("MIGRATED_WRITE_HVSUPPORT", "1");
    }
    let status = cmd.status().context("cannot run cargo test")?;
    if !status.success() {
        if args.check {
            bail!("docs/hvsupport.md is stale: run `cargo xtask hvsupport` and commit the result");
        }
        bail!("rendering docs/hvsupport.md failed");
    }
    println!(
        "docs/hvsupport.md {}",
        if args.check {
            "is up to date"
        } else {
            "written"
        }
    );
    Ok(())
}
