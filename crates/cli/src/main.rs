//! `migratectl`: a virsh-like command line client for the migrated daemon.
//!
//! Parses the command line (`args`), opens one connection through
//! `migrated-client`, runs one command (`commands`) and prints its output
//! (`output`). Failures are printed as libvirt-style `error: ...` lines on
//! stderr, outermost context first, and the exit status is 1.

mod args;
mod commands;
mod names;
mod output;

use std::io::Write as _;
use std::process::ExitCode;

use clap::{CommandFactory as _, Parser as _};

use crate::args::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Completions { shell } = cli.command {
        clap_complete::generate(
            shell,
            &mut Cli::command(),
            "migratectl",
            &mut std::io::stdout(),
        );
        return ExitCode::SUCCESS;
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
        Ok(text) => {
            let mut stdout = std::io::stdout().lock();
            // a closed pipe (`migratectl list | head`) is not an error worth reporting
            let _ = stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush());
            ExitCode::SUCCESS
        }
        Err(error) => {
            for cause in error.chain() {
                eprintln!("error: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}
