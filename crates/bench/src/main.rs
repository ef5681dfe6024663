//! `migrated-bench`: benchmarks of `migrated`, side by side with a stock
//! libvirtd on the same machine (`cargo xtask bench rpc|migrate|qemu|libvirt`).
//!
//! Every loop here is bounded in count and in time, and every address is a
//! loopback IP literal. Timings are reported, never asserted: nothing here
//! is a pass/fail test.

mod daemon;
mod guests;
mod libvirtd;
mod load;
mod machine;
mod migrate;
mod pki;
mod qmp;
mod report;
mod rpc;
mod sidebyside;
mod soak;
mod stats;

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Benchmarks of migrated against a stock libvirtd.
#[derive(Debug, Parser)]
#[command(name = "migrated-bench")]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: Cmd,
}

/// Options every benchmark shares.
#[derive(Debug, clap::Args)]
pub struct Common {
    /// Directory holding `migrated` and `migratectl` (default: next to this binary).
    #[arg(long, global = true, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
    /// The repository (for deploy/pki.sh).
    #[arg(long, global = true, value_name = "DIR", default_value_os_t = default_repo_root())]
    repo_root: PathBuf,
    /// Worker threads of the bench's own runtime (1 = a single-threaded
    /// runtime: the load generator then takes at most one of the cores).
    #[arg(long, global = true, default_value_t = 1)]
    client_threads: usize,
}

impl Common {
    /// Where the project's binaries are.
    pub fn bin_dir(&self) -> Result<PathBuf> {
        daemon::bin_dir(self.bin_dir.as_deref())
    }
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// CONNECT_GET_HOSTNAME calls/s and latency, TLS set-up time, vs libvirtd.
    Rpc(rpc::RpcArgs),
    /// Migration wall times, control overhead, tunnelled throughput, concurrency.
    Migrate(migrate::MigrateArgs),
    /// QEMU guest migrated by migrated (in-process client) against the QMP floors.
    Qemu(sidebyside::SideArgs),
    /// Same QEMU guest, migrated vs a stock libvirtd via virsh and python3-libvirt, and floors.
    Libvirt(sidebyside::SideArgs),
    /// Bounded soak: many clients and continuous migrations between two daemons.
    Soak(soak::SoakArgs),
}

fn default_repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    // The side-by-side benches block on virsh and QMP inside
    // `block_in_place`, which needs a multi-threaded runtime.
    let blocking = matches!(cli.command, Cmd::Qemu(_) | Cmd::Libvirt(_));
    let runtime = if cli.common.client_threads <= 1 && !blocking {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cli.common.client_threads.max(2))
            .enable_all()
            .build()?
    };
    runtime.block_on(dispatch(&cli))
}

async fn dispatch(cli: &Cli) -> Result<()> {
    match &cli.command {
        Cmd::Rpc(args) => rpc::run(&cli.common, args).await,
        Cmd::Migrate(args) => migrate::run(&cli.common, args).await,
        Cmd::Qemu(args) => sidebyside::run(&cli.common, args, true).await,
        Cmd::Libvirt(args) => sidebyside::run(&cli.common, args, false).await,
        Cmd::Soak(args) => soak::run(&cli.common, args).await,
    }
}
