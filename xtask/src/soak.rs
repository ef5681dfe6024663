//! `cargo xtask soak --minutes N`: builds the release binaries and runs
//! `migrated-bench soak` (two daemons, many clients, continuous migrations).
//! Like `bench`, xtask only builds and runs: the load itself lives in the
//! bench crate, so xtask needs none of the project's crates for it.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Options of `cargo xtask soak`.
#[derive(Debug, clap::Args)]
pub struct SoakArgs {
    /// How long to run, in minutes (fractions allowed).
    #[arg(long, default_value_t = 10.0)]
    pub minutes: f64,
    /// Concurrent client connections.
    #[arg(long, default_value_t = 200)]
    pub clients: usize,
    /// Further options for `migrated-bench soak` (see `migrated-bench soak --help`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub rest: Vec<String>,
}

/// Builds and runs the soak; fails when it reports unexpected errors.
pub fn run(root: &Path, args: &SoakArgs) -> Result<()> {
    println!("== building migrated and migrated-bench (release)");
    let status = Command::new("cargo")
        .current_dir(root)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "migrated-daemon",
            "-p",
            "migrated-bench",
        ])
        .status()
        .context("cannot run cargo build")?;
    if !status.success() {
        bail!("cargo build failed");
    }
    let status = Command::new(root.join("target/release/migrated-bench"))
        .current_dir(root)
        .arg("--bin-dir")
        .arg(root.join("target/release"))
        .arg("--repo-root")
        .arg(root)
        .arg("soak")
        .arg("--minutes")
        .arg(args.minutes.to_string())
        .arg("--clients")
        .arg(args.clients.to_string())
        .args(&args.rest)
        .status()
        .context("cannot run migrated-bench soak")?;
    if !status.success() {
        bail!("soak failed ({status})");
    }
    Ok(())
}
