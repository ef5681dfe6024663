//! `cargo xtask dist`: one tarball an operator can unpack on a host.
//!
//! Layout of `dist/migrated-<version>-<arch>-linux.tar.gz`:
//!
//! ```text
//! migrated-<version>-<arch>-linux/
//!   bin/            migrated, migratectl (release builds)
//!   share/man/      man8/migrated.8, man1/migratectl*.1
//!   share/completions/{bash,zsh,fish}/
//!   deploy/         systemd units, tmpfiles, sample config, pki.sh
//!   docs/           the operator and architecture docs, README, licences
//! ```
//!
//! The man pages and completions come from the release binaries themselves
//! (`migrated --generate-docs DIR`, `migratectl __generate-docs DIR`), so
//! xtask links no project crate and the pages always match the binaries.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Options of `cargo xtask dist`.
#[derive(Debug, clap::Args)]
pub struct DistArgs {
    /// Output directory for the tarball [default: <workspace>/dist].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Use the release binaries already in target/release instead of building.
    #[arg(long)]
    pub no_build: bool,
}

/// The binaries the tarball ships and the hidden argument each one takes to
/// write its man pages and completions.
const BINARIES: &[(&str, &str)] = &[
    ("migrated", "--generate-docs"),
    ("migratectl", "__generate-docs"),
];

/// Files copied from the workspace root into `docs/`.
const TOP_LEVEL_DOCS: &[&str] = &["README.md", "LICENSE-APACHE", "LICENSE-MIT"];

/// Builds the release binaries, generates the docs and packs the tarball;
/// prints its path.
pub fn run(root: &Path, args: &DistArgs) -> Result<()> {
    if !args.no_build {
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(root)
            .args([
                "build",
                "--release",
                "-p",
                "migrated-daemon",
                "-p",
                "migrated-cli",
            ])
            .status()
            .context("cannot run cargo build")?;
        if !status.success() {
            bail!("cargo build --release failed ({status})");
        }
    }
    let release = target_dir(root).join("release");
    let daemon = release.join("migrated");
    let version = binary_version(&daemon)?;
    let name = format!("migrated-{version}-{}-linux", std::env::consts::ARCH);
    let out = args.out.clone().unwrap_or_else(|| root.join("dist"));
    let stage = out.join(&name);
    if stage.exists() {
        std::fs::remove_dir_all(&stage)
            .with_context(|| format!("cannot clear {}", stage.display()))?;
    }

    let bin = stage.join("bin");
    std::fs::create_dir_all(&bin).with_context(|| format!("cannot create {}", bin.display()))?;
    let share = stage.join("share");
    for (binary, generate_flag) in BINARIES {
        let built = release.join(binary);
        let shipped = bin.join(binary);
        std::fs::copy(&built, &shipped)
            .with_context(|| format!("cannot copy {}", built.display()))?;
        strip_debug_info(&shipped);
        let output = Command::new(&shipped)
            .arg(generate_flag)
            .arg(&share)
            .output()
            .with_context(|| format!("cannot run {}", shipped.display()))?;
        if !output.status.success() {
            bail!(
                "{binary} {generate_flag} failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
    }

    copy_tree(&root.join("deploy"), &stage.join("deploy"))?;
    let docs = stage.join("docs");
    copy_tree(&root.join("docs"), &docs)?;
    for file in TOP_LEVEL_DOCS {
        let from = root.join(file);
        if from.is_file() {
            std::fs::copy(&from, docs.join(file))
                .with_context(|| format!("cannot copy {}", from.display()))?;
        }
    }

    let tarball = out.join(format!("{name}.tar.gz"));
    let status = Command::new("tar")
        .arg("-C")
        .arg(&out)
        .arg("--owner=0")
        .arg("--group=0")
        .arg("-czf")
        .arg(&tarball)
        .arg(&name)
        .status()
        .context("cannot run tar")?;
    if !status.success() {
        bail!("tar failed ({status})");
    }
    std::fs::remove_dir_all(&stage)
        .with_context(|| format!("cannot remove {}", stage.display()))?;
    println!("{}", tarball.display());
    Ok(())
}

/// The release profile keeps line tables for backtraces and profiling
/// (`debug = 1`), which more than doubles the binaries; the shipped copies
/// drop them. Without binutils' `strip` the binaries ship as built.
fn strip_debug_info(binary: &Path) {
    match Command::new("strip")
        .arg("--strip-debug")
        .arg(binary)
        .status()
    {
        Ok(status) if status.success() => {}
        Ok(status) => eprintln!(
            "note: strip {} failed ({status}); shipping it unstripped",
            binary.display()
        ),
        Err(err) => eprintln!(
            "note: cannot run strip ({err}); shipping {} unstripped",
            binary.display()
        ),
    }
}

/// `CARGO_TARGET_DIR` if set, else `<root>/target`.
fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| if p.is_absolute() { p } else { root.join(p) })
        .unwrap_or_else(|| root.join("target"))
}

/// The version a binary reports: `migrated 0.1.0` → `0.1.0`.
fn binary_version(binary: &Path) -> Result<String> {
    let output = Command::new(binary)
        .arg("--version")
        .output()
        .with_context(|| format!("cannot run {} --version", binary.display()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    parse_version(&text).with_context(|| format!("unexpected --version output {:?}", text.trim()))
}

fn parse_version(text: &str) -> Option<String> {
    let version = text.split_whitespace().nth(1)?;
    let plausible = version
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+'));
    plausible.then(|| version.to_owned())
}

/// Copies regular files and directories under `from` into `to`.
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
    let entries =
        std::fs::read_dir(from).with_context(|| format!("cannot list {}", from.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", from.display()))?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target)
                .with_context(|| format!("cannot copy {}", entry.path().display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_is_the_second_word_of_the_version_line() {
        assert_eq!(parse_version("migrated 0.1.0\n").as_deref(), Some("0.1.0"));
        assert_eq!(parse_version("migrated\n"), None);
        assert_eq!(parse_version("migrated ../../etc"), None);
    }
}
