//! `migratectl __generate-docs DIR` (hidden): man pages and shell
//! completions rendered from the clap definition in [`crate::args`], so they
//! always match the real grammar. `cargo xtask dist` runs it on the release
//! binary.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::CommandFactory as _;
use clap_complete::Shell;

use crate::args::Cli;

const NAME: &str = "migratectl";
/// The hidden first argument that asks for the docs instead of a command.
pub const GENERATE_DOCS: &str = "__generate-docs";
/// Man section: user commands.
const MAN_SECTION: &str = "1";

/// Writes `DIR/man/man1/migratectl.1`, one `migratectl-SUBCOMMAND.1` per
/// visible subcommand, and bash, zsh and fish completions under
/// `DIR/completions/{bash,zsh,fish}/`; returns the files written.
///
/// # Errors
/// The I/O error of a directory or file that cannot be written.
pub fn generate(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let man_dir = dir.join("man").join(format!("man{MAN_SECTION}"));
    let mut written = Vec::new();
    let mut cli = Cli::command();
    cli.build();
    written.push(render_page(&man_dir, NAME, cli.clone())?);
    // clap's generated `help` subcommand needs no page of its own.
    for sub in cli
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        let page_name = format!("{NAME}-{}", sub.get_name());
        // The page's title and synopsis should read `migratectl-list`, as git's do.
        let sub = sub
            .clone()
            .display_name(page_name.clone())
            .bin_name(format!("{NAME} {}", sub.get_name()));
        written.push(render_page(&man_dir, &page_name, sub)?);
    }
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        // clap_complete panics on a write error, so render into memory first.
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), NAME, &mut script);
        let name = match shell {
            Shell::Zsh => format!("_{NAME}"),
            Shell::Fish => format!("{NAME}.fish"),
            _ => NAME.to_owned(),
        };
        written.push(write(
            &dir.join("completions").join(shell.to_string()),
            &name,
            &script,
        )?);
    }
    Ok(written)
}

/// `DIR` when the command line is exactly `migratectl __generate-docs DIR`.
pub fn requested(mut argv: impl Iterator<Item = OsString>) -> Option<PathBuf> {
    let _bin = argv.next()?;
    if argv.next()? != GENERATE_DOCS {
        return None;
    }
    let dir = argv.next()?;
    argv.next().is_none().then(|| PathBuf::from(dir))
}

fn render_page(dir: &Path, name: &str, cmd: clap::Command) -> std::io::Result<PathBuf> {
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd)
        .section(MAN_SECTION)
        .render(&mut page)?;
    write(dir, &format!("{name}.{MAN_SECTION}"), &page)
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

    fn argv(words: &[&str]) -> impl Iterator<Item = OsString> {
        words
            .iter()
            .map(OsString::from)
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn only_the_exact_hidden_form_asks_for_docs() {
        assert_eq!(
            requested(argv(&["migratectl", "__generate-docs", "/tmp/x"])),
            Some(PathBuf::from("/tmp/x"))
        );
        assert_eq!(requested(argv(&["migratectl", "__generate-docs"])), None);
        assert_eq!(requested(argv(&["migratectl", "list", "/tmp/x"])), None);
        assert_eq!(
            requested(argv(&["migratectl", "__generate-docs", "a", "b"])),
            None
        );
    }

    #[test]
    fn pages_and_completions_cover_the_grammar_but_not_the_generator() {
        let dir = tempfile::tempdir().expect("tempdir");
        generate(dir.path()).expect("generate");
        let page = std::fs::read_to_string(dir.path().join("man/man1/migratectl.1")).expect("page");
        assert!(page.contains(".TH migratectl 1 "));
        assert!(dir.path().join("man/man1/migratectl-migrate.1").is_file());
        assert!(!dir.path().join("man/man1/migratectl-help.1").exists());
        for file in ["bash/migratectl", "zsh/_migratectl", "fish/migratectl.fish"] {
            let script = std::fs::read_to_string(dir.path().join("completions").join(file))
                .expect("completion script");
            assert!(script.contains("dumpxml"), "{file}");
            assert!(!script.contains(GENERATE_DOCS), "{file}");
        }
    }
}
