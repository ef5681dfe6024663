//! `cargo xtask fuzz`: run every cargo-fuzz target for a bounded time.
//!
//! The fuzz project (`fuzz/`) is not a workspace member. cargo-fuzz needs
//! nightly-only `-Z` flags; the machines only have the stable toolchain, so we
//! set `RUSTC_BOOTSTRAP=1`, which lets stable rustc accept them (the sanitizer
//! runtimes ship with the stable x86_64 toolchain).

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Options of `cargo xtask fuzz`.
#[derive(Debug, clap::Args)]
pub struct FuzzArgs {
    /// Seconds per target.
    #[arg(long, default_value_t = 60)]
    pub time: u64,
    /// Only this target (default: all of `cargo fuzz list`).
    pub target: Option<String>,
}

/// Runs one target or all of them.
pub fn run(root: &Path, args: &FuzzArgs) -> Result<()> {
    let ci = std::env::var_os("CI").is_some();
    match &args.target {
        Some(t) => run_target(root, t, args.time),
        None => run_all(root, args.time, ci),
    }
}

/// Runs every target for `seconds`; installs cargo-fuzz when `install` is set
/// and it is missing, otherwise skips with a loud message.
pub fn run_all(root: &Path, seconds: u64, install: bool) -> Result<()> {
    if !has_cargo_fuzz() {
        if !install {
            println!("== SKIPPED fuzzing: cargo-fuzz not installed (cargo install cargo-fuzz)");
            return Ok(());
        }
        println!("== installing cargo-fuzz (cargo install cargo-fuzz --locked)");
        let st = Command::new("cargo")
            .args(["install", "cargo-fuzz", "--locked"])
            .status()
            .context("cannot run cargo install")?;
        if !st.success() {
            bail!("cargo install cargo-fuzz failed");
        }
    }
    let out = Command::new("cargo")
        .args(["fuzz", "list"])
        .current_dir(root)
        .output()
        .context("cannot run cargo fuzz list")?;
    if !out.status.success() {
        bail!(
            "cargo fuzz list failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let targets: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if targets.is_empty() {
        bail!("no fuzz targets found in fuzz/");
    }
    // Every target runs even after one found a crash, so one run shows all.
    let mut crashed = Vec::new();
    for t in &targets {
        if let Err(e) = run_target(root, t, seconds) {
            println!("== FAILED: fuzz target {t}: {e:#}");
            crashed.push(t.as_str());
        }
    }
    if !crashed.is_empty() {
        bail!("fuzz target(s) failed: {}", crashed.join(", "));
    }
    Ok(())
}

fn has_cargo_fuzz() -> bool {
    Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn run_target(root: &Path, target: &str, seconds: u64) -> Result<()> {
    println!("== fuzz {target} for {seconds} s");
    let corpus = root.join("fuzz/corpus").join(target);
    let seeds = root.join("fuzz/seeds").join(target);
    std::fs::create_dir_all(&corpus)?;
    let mut cmd = Command::new("cargo");
    cmd.env("RUSTC_BOOTSTRAP", "1")
        .current_dir(root)
        .args(["fuzz", "run", target])
        .arg(&corpus);
    if seeds.is_dir() {
        cmd.arg(&seeds);
    }
    cmd.arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg("-rss_limit_mb=2048");
    let st = cmd.status().context("cannot run cargo fuzz run")?;
    if !st.success() {
        bail!("fuzz target {target} found a crash (see fuzz/artifacts/{target})");
    }
    Ok(())
}
