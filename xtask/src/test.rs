//! `cargo xtask test`: everything CI runs, in the order CI runs it.
//!
//! 1. installs the Debian packages the integration tests need when they are
//!    missing and we are root (it says so before doing it);
//! 2. formatting, generated-code and support-matrix freshness checks;
//! 3. clippy with warnings denied;
//! 4. the whole workspace test suite (unit, integration, virsh, python3-libvirt, QEMU);
//! 5. each fuzz target for a bounded time when `cargo fuzz` is available (always in CI).
//!
//! With `CI` set, a test that would otherwise skip because a binary is missing
//! fails instead, so a green CI run means the stock-client and QEMU tests ran.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

/// Options of `cargo xtask test`.
#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// Do not install missing Debian packages even when running as root.
    #[arg(long)]
    pub no_install: bool,
    /// Skip the fuzzing step.
    #[arg(long)]
    pub no_fuzz: bool,
    /// Seconds each fuzz target runs (CI uses 60).
    #[arg(long, default_value_t = 60)]
    pub fuzz_time: u64,
    /// Extra arguments passed to `cargo test` (after `--`), e.g. a test name filter.
    #[arg(last = true)]
    pub cargo_test_args: Vec<String>,
}

/// Binaries the integration tests drive, with the Debian package providing each.
const NEEDED: &[(&str, &str)] = &[
    ("qemu-system-x86_64", "qemu-system-x86"),
    ("qemu-img", "qemu-utils"),
    ("virsh", "libvirt-clients"),
    ("openssl", "openssl"),
    ("as", "binutils"),
];

/// Runs the full suite.
pub fn run(root: &Path, args: &TestArgs) -> Result<()> {
    // Every step runs even when an earlier one failed, so one run shows all
    // problems; the command fails at the end if any step did.
    let mut failed: Vec<String> = Vec::new();
    let ci = std::env::var_os("CI").is_some();
    ensure_packages(args.no_install)?;

    note(
        &mut failed,
        step(
            root,
            "format check",
            "cargo",
            &["fmt", "--all", "--", "--check"],
        ),
    );
    note(
        &mut failed,
        step(
            root,
            "generated protocol code is fresh",
            "cargo",
            &["xtask", "codegen", "--check"],
        ),
    );
    note(
        &mut failed,
        step(
            root,
            "support matrix is fresh",
            "cargo",
            &["xtask", "hvsupport", "--check"],
        ),
    );
    note(
        &mut failed,
        step(
            root,
            "clippy",
            "cargo",
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
        ),
    );
    let mut test_args: Vec<&str> = vec!["test", "--workspace", "--no-fail-fast"];
    if !args.cargo_test_args.is_empty() {
        test_args.push("--");
        test_args.extend(args.cargo_test_args.iter().map(String::as_str));
    }
    let mut digest = FailureDigest::default();
    note(&mut failed, test_step(root, &test_args, &mut digest));

    if args.no_fuzz {
        println!("== fuzzing skipped (--no-fuzz)");
    } else if root.join("fuzz/Cargo.toml").exists() {
        if let Err(e) = crate::fuzz::run_all(root, args.fuzz_time, ci) {
            println!("== FAILED: fuzzing: {e:#}");
            failed.push("fuzzing".to_owned());
        }
    }
    // Last, so the tail of a CI log names every failing test.
    digest.print();
    if !failed.is_empty() {
        bail!("{} step(s) failed: {}", failed.len(), failed.join(", "));
    }
    println!("== all checks passed");
    Ok(())
}

/// Records a failed step and goes on.
fn note(failed: &mut Vec<String>, result: Result<()>) {
    if let Err(e) = result {
        println!("== FAILED: {e:#}");
        failed.push(e.to_string());
    }
}

fn step(root: &Path, what: &str, program: &str, args: &[&str]) -> Result<()> {
    println!("== {what}: {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .current_dir(root)
        .status()
        .with_context(|| format!("cannot run {program}"))?;
    if !status.success() {
        bail!(
            "step failed: {what} ({program} {} exited with {status})",
            args.join(" ")
        );
    }
    Ok(())
}

/// Runs `cargo test`, echoing its output while keeping what failed.
fn test_step(root: &Path, args: &[&str], digest: &mut FailureDigest) -> Result<()> {
    println!("== workspace tests: cargo {}", args.join(" "));
    let mut child = Command::new("cargo")
        .args(args)
        .current_dir(root)
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot run cargo test")?;
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines() {
            let line = line.context("reading cargo test output")?;
            println!("{line}");
            digest.feed(&line);
        }
    }
    let status = child.wait().context("waiting for cargo test")?;
    if !status.success() {
        bail!(
            "step failed: workspace tests (cargo {} exited with {status})",
            args.join(" ")
        );
    }
    Ok(())
}

/// The failing test names and the tail of each one's captured output, kept
/// from `cargo test`'s stdout so the end of a long log can repeat them.
#[derive(Default)]
struct FailureDigest {
    /// `test <name> ... FAILED` lines.
    failed: Vec<String>,
    /// Lines of each `---- <name> stdout ----` section.
    sections: Vec<Vec<String>>,
    /// Inside a section (until the next `failures:` list or section).
    in_section: bool,
}

impl FailureDigest {
    /// Lines kept from the end of each failing test's output.
    const TAIL: usize = 40;

    fn feed(&mut self, line: &str) {
        if line.starts_with("test ") && line.ends_with("... FAILED") {
            self.failed
                .push(line.trim_end_matches(" ... FAILED").to_owned());
        } else if line.starts_with("---- ") && line.ends_with(" ----") {
            self.in_section = true;
            self.sections.push(vec![line.to_owned()]);
        } else if line == "failures:" || line.starts_with("test result:") {
            self.in_section = false;
        } else if self.in_section {
            if let Some(section) = self.sections.last_mut() {
                section.push(line.to_owned());
            }
        }
    }

    fn print(&self) {
        if self.failed.is_empty() {
            return;
        }
        println!("== failing tests ({}):", self.failed.len());
        for section in &self.sections {
            let skip = section.len().saturating_sub(Self::TAIL + 1);
            println!("{}", section[0]);
            if skip > 0 {
                println!("   [{skip} earlier lines omitted]");
            }
            for line in section.iter().skip(1 + skip) {
                println!("{line}");
            }
        }
        for name in &self.failed {
            println!("==   {name}");
        }
    }
}

/// `true` when a program is found on PATH.
pub fn have(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

fn python_has_libvirt() -> bool {
    Command::new("/usr/bin/python3")
        .args(["-c", "import libvirt"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The package list for `apt-get install`, with QEMU's packages pinned to one
/// version: some machine images carry a newer `qemu-utils` (a backport) than
/// the archive's `qemu-system-x86`, whose `qemu-system-common` it Breaks, and
/// apt then refuses the whole install. Asking for both at the archive's
/// `qemu-system-x86` version (a downgrade of `qemu-utils` where needed) keeps
/// them matched.
fn pin_qemu_packages(missing: &[&str]) -> Vec<String> {
    let mut packages: Vec<String> = missing.iter().map(|p| p.to_string()).collect();
    if !missing.contains(&"qemu-system-x86") {
        return packages;
    }
    let candidate = Command::new("apt-cache")
        .args(["policy", "qemu-system-x86"])
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout).lines().find_map(|l| {
                l.trim()
                    .strip_prefix("Candidate:")
                    .map(|v| v.trim().to_string())
            })
        })
        .filter(|v| !v.is_empty() && v != "(none)");
    if let Some(version) = candidate {
        packages.retain(|p| p != "qemu-system-x86" && p != "qemu-utils");
        packages.push(format!("qemu-system-x86={version}"));
        packages.push(format!("qemu-utils={version}"));
    }
    packages
}

fn ensure_packages(no_install: bool) -> Result<()> {
    let mut missing: Vec<&str> = NEEDED
        .iter()
        .filter(|(bin, _)| !have(bin))
        .map(|(_, pkg)| *pkg)
        .collect();
    if !python_has_libvirt() {
        missing.push("python3-libvirt");
    }
    if missing.is_empty() {
        return Ok(());
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if no_install || !root {
        println!(
            "== note: missing Debian packages {}; the tests that need them will print SKIPPED \
             (and fail under CI). Install them with: apt-get install -y {}",
            missing.join(" "),
            missing.join(" ")
        );
        return Ok(());
    }
    println!(
        "== installing missing Debian packages as root: {}",
        missing.join(" ")
    );
    let update = Command::new("apt-get").args(["update", "-qq"]).status()?;
    if !update.success() {
        bail!("apt-get update failed");
    }
    let packages = pin_qemu_packages(&missing);
    let status = Command::new("apt-get")
        .args([
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            "--allow-downgrades",
        ])
        .args(&packages)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()?;
    if !status.success() {
        bail!("apt-get install {} failed", missing.join(" "));
    }
    Ok(())
}
