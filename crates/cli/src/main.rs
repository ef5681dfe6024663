//! `migratectl`: a virsh-like command line client for the migrated daemon.
//!
//! Parses the command line (`args`), opens one connection through
//! `migrated-client`, runs one command (`commands`) and prints its output
//! (`output`). Failures are printed as libvirt-style `error: ...` lines on
//! stderr, outermost context first, and the exit status is 1.

mod args;
mod commands;
mod docs;
mod names;
mod output;

use std::io::Write as _;
use std::process::ExitCode;

use clap::{CommandFactory as _, Parser as _};

use crate::args::{Cli, Command};

fn main() -> ExitCode {
    // Checked before clap so the generator stays out of the grammar, and
    // therefore out of the man pages and completions it writes.
    if let Some(dir) = docs::requested(std::env::args_os()) {
        return match docs::generate(&dir) {
            Ok(files) => {
                let list: String = files.iter().map(|f| format!("{}\n", f.display())).collect();
                print(list.as_bytes())
            }
            Err(e) => {
                eprintln!("error: cannot write the docs under {}: {e}", dir.display());
                ExitCode::FAILURE
            }
        };
    }
    let cli = Cli::parse();
    if let Command::Completions { shell } = cli.command {
        // clap_complete panics on a write error, so render into memory first
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "migratectl", &mut script);
        return print(&script);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(text) => print(text.as_bytes()),
        Err(error) => {
            for cause in error.chain() {
                eprintln!("error: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Writes command output; a closed pipe (`migratectl list | head`) is not
/// worth an error message.
fn print(bytes: &[u8]) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot write output: {e}");
            ExitCode::FAILURE
        }
    }
}
