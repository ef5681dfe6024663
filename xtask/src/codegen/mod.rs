//! `cargo xtask codegen`: generates `crates/proto/src/generated/*.rs` from
//! `proto/*.x`.
//!
//! The pipeline is lexer → parser (ast) → resolve (names across files,
//! typedef expansion) → rust (text) → `rustfmt`. `--check` renders the same
//! output and fails when the committed files differ.

pub mod ast;
pub mod lexer;
pub mod naming;
pub mod parser;
pub mod resolve;
pub mod rust;

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

/// Options of `cargo xtask codegen`.
#[derive(Debug, clap::Args)]
pub struct CodegenArgs {
    /// Do not write anything; fail when the committed output is stale.
    #[arg(long)]
    pub check: bool,
}

/// The `.x` files, in processing order (later files see earlier names).
pub const FILES: &[&str] = &["virnet", "keepalive", "remote", "migrated", "qemu"];

/// Where the generated modules go, relative to the workspace root.
const OUT_DIR: &str = "crates/proto/src/generated";

/// A problem in a `.x` file, with its location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// File name as given to the parser.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl ParseError {
    /// A new error at `file:line`.
    pub fn new(file: &str, line: usize, message: String) -> Self {
        ParseError {
            file: file.to_string(),
            line,
            message,
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

/// Runs the subcommand from the workspace root `root`.
pub fn run(root: &Path, args: &CodegenArgs) -> Result<()> {
    let outputs = render(root)?;
    if args.check {
        let stale: Vec<String> = outputs
            .iter()
            .filter(|(path, text)| {
                std::fs::read_to_string(path).ok().as_deref() != Some(text.as_str())
            })
            .map(|(path, _)| {
                path.strip_prefix(root)
                    .unwrap_or(path)
                    .display()
                    .to_string()
            })
            .collect();
        if !stale.is_empty() {
            bail!(
                "generated protocol code is stale: {}\nrun `cargo xtask codegen` and commit the result",
                stale.join(", ")
            );
        }
        println!(
            "generated protocol code is up to date ({} files)",
            outputs.len()
        );
        return Ok(());
    }
    let dir = root.join(OUT_DIR);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (path, text) in &outputs {
        if std::fs::read_to_string(path).ok().as_deref() == Some(text.as_str()) {
            continue;
        }
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
        println!(
            "wrote {}",
            path.strip_prefix(root).unwrap_or(path).display()
        );
    }
    Ok(())
}

/// Parses every `.x` file and renders every output file (formatted).
pub fn render(root: &Path) -> Result<Vec<(PathBuf, String)>> {
    let mut specs = Vec::new();
    for stem in FILES {
        let rel = format!("proto/{stem}.x");
        let src = std::fs::read_to_string(root.join(&rel))
            .with_context(|| format!("cannot read {rel}"))?;
        let spec = parser::parse(&rel, &src)?;
        specs.push((stem.to_string(), spec));
    }
    let modules = rust::generate(&specs)?;
    let dir = root.join(OUT_DIR);
    let mut out = Vec::new();
    let mut mod_rs = format!(
        "{}\n//! Modules generated from `proto/*.x` by `cargo xtask codegen`.\n\n",
        rust::HEADER
    );
    for (module, text) in modules {
        mod_rs.push_str(&format!("pub mod {module};\n"));
        out.push((dir.join(format!("{module}.rs")), rustfmt(root, &text)?));
    }
    out.push((dir.join("mod.rs"), rustfmt(root, &mod_rs)?));
    Ok(out)
}

/// Formats Rust source with `rustfmt --edition 2021` (stdin to stdout).
fn rustfmt(root: &Path, src: &str) -> Result<String> {
    let mut child = Command::new("rustfmt")
        .args(["--edition", "2021"])
        .current_dir(root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run rustfmt (rustup component add rustfmt)")?;
    let mut stdin = child.stdin.take().context("rustfmt stdin")?;
    // Feed stdin from another thread: the output can exceed the pipe buffer.
    let input = src.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().context("rustfmt did not finish")?;
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("rustfmt writer thread panicked"))?
        .context("cannot write to rustfmt")?;
    if !output.status.success() {
        bail!(
            "rustfmt rejected the generated code (a generator bug):\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    String::from_utf8(output.stdout).context("rustfmt printed invalid UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace_root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(".."))
    }

    #[test]
    fn committed_output_is_fresh() {
        let root = workspace_root();
        let outputs = render(&root).unwrap_or_else(|e| panic!("{e:#}"));
        for (path, text) in outputs {
            let committed = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                committed == text,
                "{} is stale: run `cargo xtask codegen`",
                path.display()
            );
            assert!(text.starts_with(rust::HEADER));
        }
    }

    #[test]
    fn check_fails_on_stale_output_and_write_fixes_it() {
        let src = workspace_root();
        let tmp = std::env::temp_dir().join(format!("xtask-codegen-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(tmp.join("proto")).unwrap_or_else(|e| panic!("{e}"));
        for stem in FILES {
            let rel = format!("proto/{stem}.x");
            std::fs::copy(src.join(&rel), tmp.join(&rel)).unwrap_or_else(|e| panic!("{e}"));
        }
        let check = CodegenArgs { check: true };
        let write = CodegenArgs { check: false };

        let err = run(&tmp, &check)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("stale") && err.contains("remote.rs"), "{err}");
        run(&tmp, &write).unwrap_or_else(|e| panic!("{e:#}"));
        run(&tmp, &check).unwrap_or_else(|e| panic!("{e:#}"));

        let remote = tmp.join(OUT_DIR).join("remote.rs");
        let mut text = std::fs::read_to_string(&remote).unwrap_or_default();
        text.push_str("// edited by hand\n");
        std::fs::write(&remote, text).unwrap_or_else(|e| panic!("{e}"));
        assert!(run(&tmp, &check).is_err());

        // A broken .x file is reported with its location.
        std::fs::write(tmp.join("proto/migrated.x"), "struct s {\n bogus x;\n};\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let err = run(&tmp, &write)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(err, "proto/migrated.x:2: unknown type bogus");
        let _ = std::fs::remove_dir_all(&tmp);
    }
}
