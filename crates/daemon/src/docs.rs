//! `migrated --generate-docs DIR` (hidden): the man page and shell
//! completions rendered from the same clap definition that parses the
//! command line, so they cannot drift from it. `cargo xtask dist` runs this
//! on the release binary rather than linking the daemon into xtask.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::CommandFactory as _;
use clap_complete::Shell;

use crate::config::Args;

/// The binary's name as the man page and completions know it.
const NAME: &str = "migrated";
/// Man section: system administration commands (daemons).
const MAN_SECTION: &str = "8";
/// The hidden flag that asks for the docs instead of starting the daemon.
pub const GENERATE_DOCS: &str = "--generate-docs";

/// `DIR` when the command line is exactly `migrated --generate-docs DIR`.
pub fn requested(mut argv: impl Iterator<Item = OsString>) -> Option<PathBuf> {
    let _bin = argv.next()?;
    if argv.next()? != GENERATE_DOCS {
        return None;
    }
    let dir = argv.next()?;
    argv.next().is_none().then(|| PathBuf::from(dir))
}

/// Writes `DIR/man/man8/migrated.8` and bash, zsh and fish completions under
/// `DIR/completions/{bash,zsh,fish}/`; returns the files written.
///
/// # Errors
/// The I/O error of a directory or file that cannot be written.
pub fn generate(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let mut page = Vec::new();
    clap_mangen::Man::new(Args::command())
        .section(MAN_SECTION)
        .render(&mut page)?;
    written.push(write(
        &dir.join("man").join(format!("man{MAN_SECTION}")),
        &format!("{NAME}.{MAN_SECTION}"),
        &page,
    )?);
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        // clap_complete panics on a write error, so render into memory first.
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut Args::command(), NAME, &mut script);
        written.push(write(
            &dir.join("completions").join(shell.to_string()),
            &completion_file_name(shell, NAME),
            &script,
        )?);
    }
    Ok(written)
}

/// The file name each shell's completion loader looks for.
pub fn completion_file_name(shell: Shell, bin: &str) -> String {
    match shell {
        Shell::Zsh => format!("_{bin}"),
        Shell::Fish => format!("{bin}.fish"),
        Shell::PowerShell => format!("_{bin}.ps1"),
        Shell::Elvish => format!("{bin}.elv"),
        _ => bin.to_owned(),
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(name);
    std::fs::write(&path, bytes)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_hidden_form_asks_for_docs() {
        let argv = |words: &[&str]| words.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            requested(argv(&["migrated", "--generate-docs", "/tmp/x"]).into_iter()),
            Some(PathBuf::from("/tmp/x"))
        );
        assert_eq!(
            requested(argv(&["migrated", "--generate-docs"]).into_iter()),
            None
        );
        assert_eq!(
            requested(argv(&["migrated", "--listen", "x"]).into_iter()),
            None
        );
    }

    #[test]
    fn man_page_and_completions_name_the_real_flags() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = generate(dir.path()).expect("generate");
        assert_eq!(files.len(), 4);
        let page =
            std::fs::read_to_string(dir.path().join("man/man8/migrated.8")).expect("man page");
        assert!(page.contains(".TH migrated 8 "), "a section-8 page");
        assert!(page.contains("listen"), "the --listen flag is documented");
        assert!(
            !page.contains("generate\\-docs"),
            "the generator stays hidden"
        );
        for file in ["bash/migrated", "zsh/_migrated", "fish/migrated.fish"] {
            let script = std::fs::read_to_string(dir.path().join("completions").join(file))
                .expect("completion script");
            assert!(script.contains("state-dir"), "{file}");
            assert!(!script.contains("generate-docs"), "{file}");
        }
    }
}
