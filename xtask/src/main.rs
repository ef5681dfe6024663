//! `cargo xtask`: project automation. Each subcommand lives in its own
//! module; this file only parses the command line and dispatches.

mod bench;
mod codegen;
mod demo;
mod dist;
mod fuzz;
mod hvsupport;
mod soak;
mod test;

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Project automation for migrated.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Generate crates/proto/src/generated from proto/*.x (--check: fail when stale).
    Codegen(codegen::CodegenArgs),
    /// Render docs/hvsupport.md from the drivers' support tables (--check: fail when stale).
    Hvsupport(hvsupport::HvsupportArgs),
    /// Two daemons on loopback, a live migration with progress and timeline.
    Demo(demo::DemoArgs),
    /// Run everything CI runs (installs missing Debian test packages when root).
    Test(test::TestArgs),
    /// Run each cargo-fuzz target for a bounded time.
    Fuzz(fuzz::FuzzArgs),
    /// Benchmarks against a stock libvirtd: rpc, migrate, qemu, libvirt.
    Bench(bench::BenchArgs),
    /// Bounded soak: 200 clients and continuous migrations between two daemons.
    Soak(soak::SoakArgs),
    /// Release tarball: binaries, man pages, completions, deploy/ and docs/ (prints its path).
    Dist(dist::DistArgs),
}

fn main() -> std::process::ExitCode {
    // Print the error chain without anyhow's backtrace: CI logs keep only
    // their tail, which should name what failed, not xtask's stack.
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let cli = Cli::parse();
    let root = workspace_root();
    match cli.command {
        Cmd::Codegen(args) => codegen::run(&root, &args),
        Cmd::Hvsupport(args) => hvsupport::run(&root, &args),
        Cmd::Demo(args) => demo::run(&root, &args),
        Cmd::Test(args) => test::run(&root, &args),
        Cmd::Fuzz(args) => fuzz::run(&root, &args),
        Cmd::Bench(args) => bench::run(&root, &args),
        Cmd::Soak(args) => soak::run(&root, &args),
        Cmd::Dist(args) => dist::run(&root, &args),
    }
}

/// The workspace root: the parent of this crate's directory.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}
