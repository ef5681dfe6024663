//! Command-line grammar of `migratectl` (clap derive).
//!
//! Command and option names follow virsh, so muscle memory carries over:
//! `migratectl -c URI list --all` behaves like `virsh -c URI list --all`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use clap_complete::Shell;

const AFTER_LONG_HELP: &str = "\
Connection URIs (as in libvirt):
  qemu:///system                          local daemon on /run/migrated/migrated-sock
  test+tcp://127.0.0.1:16509/default      plain TCP (port 16509 by default)
  qemu+tls://host.example/system          TLS (port 16514; the default with a host)
  test+unix:///default?socket=/path/sock  a specific Unix socket
  qemu+tls://h/system?pkipath=/etc/pki/x  TLS files from one directory

Examples:
  migratectl -c test+tcp://127.0.0.1:16509/default list --all
  migratectl define guest.xml && migratectl start guest
  migratectl --json dominfo guest | jq .state
  migratectl -r dumpxml --inactive guest
  migratectl completions bash > /etc/bash_completion.d/migratectl

Errors are printed as `error: <message>` on stderr and the exit status is 1.";

/// A virsh-like client for the migrated daemon.
#[derive(Debug, Parser)]
#[command(name = "migratectl", version, about, after_long_help = AFTER_LONG_HELP)]
pub struct Cli {
    /// Connection URI [default: $MIGRATED_DEFAULT_URI, then qemu:///system].
    #[arg(short = 'c', long = "connect", global = true, value_name = "URI")]
    pub connect: Option<String>,

    /// Open a read-only connection (uses the read-only socket for local URIs).
    #[arg(short = 'r', long, global = true)]
    pub readonly: bool,

    /// Print machine-readable JSON instead of virsh-style text.
    #[arg(long, global = true)]
    pub json: bool,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List domains (running ones unless --all or --inactive).
    #[command(after_long_help = "Example:\n  migratectl list --all")]
    List(ListArgs),
    /// Define (but do not start) a persistent domain from an XML file.
    #[command(after_long_help = "Example:\n  migratectl define guest.xml")]
    Define {
        /// Domain XML file.
        file: PathBuf,
        /// Ask the server to validate the XML (DOMAIN_DEFINE_XML_FLAGS with VALIDATE).
        #[arg(long)]
        validate: bool,
    },
    /// Undefine a domain (a running one becomes transient).
    Undefine {
        /// Domain name, id or UUID.
        domain: String,
    },
    /// Start a previously defined inactive domain.
    #[command(after_long_help = "Example:\n  migratectl start guest --paused")]
    Start {
        /// Domain name, id or UUID.
        domain: String,
        /// Leave the guest paused after starting it.
        #[arg(long)]
        paused: bool,
    },
    /// Destroy (immediately stop) a running domain.
    Destroy {
        /// Domain name, id or UUID.
        domain: String,
    },
    /// Suspend (pause) a running domain.
    Suspend {
        /// Domain name, id or UUID.
        domain: String,
    },
    /// Resume a suspended domain.
    Resume {
        /// Domain name, id or UUID.
        domain: String,
    },
    /// Ask a running domain to shut down gracefully.
    Shutdown {
        /// Domain name, id or UUID.
        domain: String,
    },
    /// Show basic information about a domain.
    #[command(
        after_long_help = "Example:\n  migratectl dominfo guest\n  migratectl --json dominfo 3"
    )]
    Dominfo {
        /// Domain name, id or UUID.
        domain: String,
    },
    /// Show the state of a domain.
    Domstate {
        /// Domain name, id or UUID.
        domain: String,
        /// Also show why the domain is in that state.
        #[arg(long)]
        reason: bool,
    },
    /// Print the domain's XML description.
    #[command(after_long_help = "Example:\n  migratectl dumpxml --inactive guest > guest.xml")]
    Dumpxml(DumpxmlArgs),
    /// Print the host's capabilities XML.
    Capabilities,
    /// Show library, API and hypervisor versions.
    Version {
        /// Also show the daemon's version.
        #[arg(long)]
        daemon: bool,
    },
    /// Print the host name of the daemon's host.
    Hostname,
    /// Print the URI of the connection (as given, like virsh; --json adds the server's).
    Uri,
    /// Enable or disable starting a domain when the daemon starts.
    #[command(
        after_long_help = "Example:\n  migratectl autostart guest\n  migratectl autostart guest --disable"
    )]
    Autostart {
        /// Domain name, id or UUID.
        domain: String,
        /// Disable instead of enable.
        #[arg(long)]
        disable: bool,
    },
    /// Show the host's CPU and memory.
    Nodeinfo,
    /// Migrate a domain to another host.
    #[command(
        after_long_help = "Examples:\n  migratectl migrate --live guest test+tcp://10.0.0.2/default\n  \
                           migratectl migrate --live --p2p --tunnelled --verbose guest qemu+tls://b/system\n  \
                           migratectl migrate --offline --persistent guest test+tcp://10.0.0.2/default"
    )]
    // Boxed: by far the largest variant (clippy::large_enum_variant).
    Migrate(Box<crate::commands::migrate::MigrateArgs>),
    /// Show domains' statistics, as `virsh domstats` (every group the
    /// driver serves unless groups are named).
    #[command(
        after_long_help = "Examples:\n  migratectl domstats guest\n  migratectl domstats --block --interface --enforce guest"
    )]
    Domstats(DomstatsArgs),
    /// Show the progress of a domain's job (or the last one with --completed).
    Domjobinfo {
        /// Domain name, id or UUID.
        domain: String,
        /// Statistics of the last completed job.
        #[arg(long)]
        completed: bool,
    },
    /// Abort a domain's running job (a migration: the guest stays on the source).
    Domjobabort {
        /// Domain name, id or UUID.
        domain: String,
    },
    /// Set the migration bandwidth limit in MiB/s.
    MigrateSetspeed {
        /// Domain name, id or UUID.
        domain: String,
        /// MiB/s (0 = unlimited).
        bandwidth: u64,
    },
    /// Show the migration bandwidth limit in MiB/s.
    MigrateGetspeed {
        /// Domain name, id or UUID.
        domain: String,
    },
    /// Set the longest tolerated pause at the end of a live migration, in ms.
    MigrateSetmaxdowntime {
        /// Domain name, id or UUID.
        domain: String,
        /// Milliseconds.
        downtime: u64,
    },
    /// Show the longest tolerated pause at the end of a live migration, in ms.
    MigrateGetmaxdowntime {
        /// Domain name, id or UUID.
        domain: String,
    },
    /// Show a domain's migration job as the daemon's journal knows it
    /// (e.g. a guest kept paused after a restart).
    MigrationStatus {
        /// Domain name.
        domain: String,
    },
    /// Print a shell completion script.
    #[command(after_long_help = "Example:\n  migratectl completions zsh > ~/.zfunc/_migratectl")]
    Completions {
        /// Target shell.
        shell: Shell,
    },
}

/// Options of `list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// List active and inactive domains.
    #[arg(long)]
    pub all: bool,
    /// List inactive domains only.
    #[arg(long)]
    pub inactive: bool,
    /// Print only the names, one per line (for scripts).
    #[arg(long, conflicts_with = "uuid")]
    pub name: bool,
    /// Print only the UUIDs, one per line.
    #[arg(long)]
    pub uuid: bool,
}

/// Options of `dumpxml`.
#[derive(Debug, Args)]
pub struct DumpxmlArgs {
    /// Domain name, id or UUID.
    pub domain: String,
    /// Show the persistent configuration instead of the live one.
    #[arg(long)]
    pub inactive: bool,
    /// Include security-sensitive data (e.g. graphics passwords).
    #[arg(long)]
    pub security_info: bool,
    /// Give XML suitable for migration.
    #[arg(long)]
    pub migratable: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn grammar_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_options_are_accepted_after_the_subcommand() {
        let cli = Cli::try_parse_from([
            "migratectl",
            "list",
            "--all",
            "-c",
            "test:///default",
            "--json",
            "-r",
        ])
        .expect("valid command line");
        assert_eq!(cli.connect.as_deref(), Some("test:///default"));
        assert!(cli.json && cli.readonly);
        assert!(matches!(
            cli.command,
            Command::List(ListArgs {
                all: true,
                inactive: false,
                name: false,
                uuid: false
            })
        ));
    }

    #[test]
    fn dumpxml_flags_parse() {
        let cli = Cli::try_parse_from([
            "migratectl",
            "dumpxml",
            "--inactive",
            "--security-info",
            "g",
        ])
        .expect("valid command line");
        match cli.command {
            Command::Dumpxml(args) => {
                assert_eq!(args.domain, "g");
                assert!(args.inactive && args.security_info && !args.migratable);
            }
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn list_name_and_uuid_are_exclusive() {
        assert!(Cli::try_parse_from(["migratectl", "list", "--name", "--uuid"]).is_err());
        assert!(Cli::try_parse_from(["migratectl", "list", "--all", "--name"]).is_ok());
    }

    #[test]
    fn missing_domain_is_a_usage_error() {
        assert!(Cli::try_parse_from(["migratectl", "start"]).is_err());
    }
}

/// Arguments of `migratectl domstats`: the `VIR_DOMAIN_STATS_*` groups.
#[derive(Debug, clap::Args)]
pub struct DomstatsArgs {
    /// Domain names, ids or UUIDs (none = every domain).
    pub domains: Vec<String>,
    /// `state.state`, `state.reason`.
    #[arg(long)]
    pub state: bool,
    /// `cpu.time`.
    #[arg(long)]
    pub cpu_total: bool,
    /// `balloon.current`, `balloon.maximum`.
    #[arg(long)]
    pub balloon: bool,
    /// `vcpu.current`, `vcpu.maximum`, `vcpu.N.state`.
    #[arg(long)]
    pub vcpu: bool,
    /// `net.count`, `net.N.name`, `net.N.rx.bytes`, ….
    #[arg(long)]
    pub interface: bool,
    /// `block.count`, `block.N.name`, `block.N.rd.reqs`, ….
    #[arg(long)]
    pub block: bool,
    /// Fail when the driver does not serve a named group.
    #[arg(long)]
    pub enforce: bool,
}

impl DomstatsArgs {
    /// The `VIR_DOMAIN_STATS_*` bits of the named groups (0 = all).
    pub fn groups(&self) -> u32 {
        [
            (self.state, 1 << 0),
            (self.cpu_total, 1 << 1),
            (self.balloon, 1 << 2),
            (self.vcpu, 1 << 3),
            (self.interface, 1 << 4),
            (self.block, 1 << 5),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .fold(0, |bits, (_, bit)| bits | bit)
    }
}
