//! `cargo xtask bench rpc|migrate|qemu|libvirt`: builds the release
//! binaries and runs the `migrated-bench` crate, which does the measuring.
//!
//! xtask itself stays independent of the project's crates: it only runs
//! `cargo build` and `cargo run --release -p migrated-bench -- WHAT ...`.
//! Starting a stock libvirtd for the side-by-side figures needs root.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Options of `cargo xtask bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Which benchmark: rpc, migrate, qemu or libvirt.
    #[arg(value_parser = ["rpc", "migrate", "qemu", "libvirt"])]
    pub what: String,
    /// Options passed on to `migrated-bench WHAT` (see `cargo xtask bench WHAT -- --help`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub rest: Vec<String>,
}

/// Builds and runs the chosen benchmark.
pub fn run(root: &Path, args: &BenchArgs) -> Result<()> {
    println!("== building migrated, migratectl and migrated-bench (release)");
    let status = Command::new("cargo")
        .current_dir(root)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "migrated-daemon",
            "-p",
            "migrated-cli",
            "-p",
            "migrated-bench",
        ])
        .status()
        .context("cannot run cargo build")?;
    if !status.success() {
        bail!("cargo build failed");
    }
    let bin_dir = root.join("target/release");
    let status = Command::new("cargo")
        .current_dir(root)
        .args(["run", "--release", "--quiet", "-p", "migrated-bench", "--"])
        .arg("--bin-dir")
        .arg(&bin_dir)
        .arg("--repo-root")
        .arg(root)
        .arg(&args.what)
        .args(&args.rest)
        .status()
        .context("cannot run migrated-bench")?;
    if !status.success() {
        bail!("bench {} failed ({status})", args.what);
    }
    Ok(())
}
