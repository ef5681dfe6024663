//! `migratectl migrate`: flags and parameters as virsh names them, managed
//! (this process drives both daemons) or `--p2p` (the source daemon drives
//! the destination), with an optional live progress bar and a timeline.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use migrated_client::sequencer::Timeline;
use migrated_client::{Connection, Domain, OpenFlags};
use migrated_core::flags::MigrateFlags;
use migrated_core::typed_params::{
    job_stats as stat, migrate_param as param, TypedParams, TypedValue,
};
use serde::Serialize;
use tokio::sync::oneshot;

use crate::output;

/// `VIR_DOMAIN_JOB_STATS_COMPLETED | KEEP_COMPLETED`: the summary must not
/// consume the statistics a later `domjobinfo --completed` shows.
const STATS_COMPLETED: u32 = 1 | 2;
/// How often `--verbose` asks for the job's progress.
const POLL: Duration = Duration::from_millis(200);

/// What `--timeout` does when it expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TimeoutAction {
    /// Abort the migration; the guest keeps running on the source.
    Abort,
    /// Pause the guest so the migration can finish without new dirty pages.
    Pause,
}

/// Options of `migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Live migration: the guest keeps running while its memory is copied.
    #[arg(long)]
    pub live: bool,
    /// Peer-to-peer: the source daemon connects to the destination itself.
    #[arg(long)]
    pub p2p: bool,
    /// Send the guest's data through the daemons' connection (needs --p2p).
    #[arg(long)]
    pub tunnelled: bool,
    /// Define the guest persistently on the destination.
    #[arg(long)]
    pub persistent: bool,
    /// Undefine the guest on the source after success.
    #[arg(long)]
    pub undefinesource: bool,
    /// Leave the guest paused on the destination.
    #[arg(long)]
    pub suspend: bool,
    /// Migrate only the persistent configuration (the guest may be shut off; needs --persistent).
    #[arg(long)]
    pub offline: bool,
    /// Compress the migration data.
    #[arg(long, conflicts_with = "no_compressed")]
    pub compressed: bool,
    /// Do not compress (the default; spelled out for scripts).
    #[arg(long)]
    pub no_compressed: bool,
    /// Throttle the guest's vCPUs if the migration does not converge.
    #[arg(long)]
    pub auto_converge: bool,
    /// Abort on soft errors during the migration.
    #[arg(long)]
    pub abort_on_error: bool,
    /// Encrypt the migration data with the hypervisor's own TLS (QEMU; not with --tunnelled).
    #[arg(long)]
    pub tls: bool,
    /// Host name the destination's TLS certificate must carry (default: the data URI's host).
    #[arg(long, value_name = "NAME", requires = "tls")]
    pub tls_destination: Option<String>,
    /// Send memory over several connections at once (QEMU's multifd).
    #[arg(long)]
    pub parallel: bool,
    /// Connections of a --parallel migration (the daemon's default: 2).
    /// As in virsh, the daemon refuses it without --parallel.
    #[arg(long, value_name = "N")]
    pub parallel_connections: Option<i32>,
    /// Send the memory of a --parallel migration without copying it
    /// (QEMU's zero-copy-send; not with --compressed or --tls).
    #[arg(long)]
    pub zerocopy: bool,
    /// Allow switching to post-copy (QEMU): the destination runs the guest
    /// and pulls the pages it still lacks (switch with `virsh migrate-postcopy`).
    #[arg(long)]
    pub postcopy: bool,
    /// Bandwidth limit of the post-copy phase in MiB/s (default: unlimited).
    #[arg(long, value_name = "MiB/s", requires = "postcopy")]
    pub postcopy_bandwidth: Option<u64>,
    /// Copy the guest's disks to the destination's (existing) images
    /// (QEMU, over NBD; not with --tunnelled).
    #[arg(long, conflicts_with = "copy_storage_inc")]
    pub copy_storage_all: bool,
    /// Copy only the top image of each disk; the destination has the
    /// backing images already.
    #[arg(long)]
    pub copy_storage_inc: bool,
    /// Make the guest's disk writes wait for the destination during the
    /// copy, so it converges whatever the guest writes. The daemon refuses
    /// it without --copy-storage-all or --copy-storage-inc.
    #[arg(long)]
    pub copy_storage_synchronous_writes: bool,
    /// Comma-separated disk targets to copy (default: every writable,
    /// non-shareable disk with a source).
    #[arg(long, value_name = "TARGETS", value_delimiter = ',')]
    pub migrate_disks: Vec<String>,
    /// Port of the destination's NBD server (default: one from its
    /// migration port range).
    #[arg(long, value_name = "PORT")]
    pub disks_port: Option<i32>,
    /// Where the destination's NBD server listens: tcp://HOST[:PORT] or
    /// unix:///PATH.
    #[arg(long, value_name = "URI")]
    pub disks_uri: Option<String>,
    /// Domain XML to run on the destination (host-side changes only).
    #[arg(long, value_name = "FILE")]
    pub xml: Option<PathBuf>,
    /// Persistent definition to store on the destination.
    #[arg(long, value_name = "FILE")]
    pub persistent_xml: Option<PathBuf>,
    /// New name of the guest on the destination.
    #[arg(long, value_name = "NAME")]
    pub dname: Option<String>,
    /// Data-plane URI (e.g. tcp://127.0.0.1:49152).
    #[arg(long, value_name = "URI")]
    pub migrateuri: Option<String>,
    /// Address the destination listens on for the guest's data.
    #[arg(long, value_name = "ADDRESS")]
    pub listen_address: Option<String>,
    /// Bandwidth limit in MiB/s.
    #[arg(long, value_name = "MiB/s")]
    pub bandwidth: Option<u64>,
    /// Seconds after which --timeout-action is taken.
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
    /// What to do when --timeout expires.
    #[arg(long, value_enum, default_value_t = TimeoutAction::Abort, requires = "timeout")]
    pub timeout_action: TimeoutAction,
    /// Show a progress bar and, at the end, the timeline of the migration.
    #[arg(long)]
    pub verbose: bool,
    /// Domain name, id or UUID.
    pub domain: String,
    /// Destination connection URI (e.g. test+tcp://10.0.0.2/default).
    pub desturi: String,
}

impl MigrateArgs {
    /// `VIR_MIGRATE_*` flags of the command line.
    pub fn flags(&self) -> MigrateFlags {
        let mut f = MigrateFlags::empty();
        for (on, flag) in [
            (self.live, MigrateFlags::LIVE),
            (self.p2p, MigrateFlags::PEER2PEER),
            (self.tunnelled, MigrateFlags::TUNNELLED),
            (self.persistent, MigrateFlags::PERSIST_DEST),
            (self.undefinesource, MigrateFlags::UNDEFINE_SOURCE),
            (self.suspend, MigrateFlags::PAUSED),
            (self.offline, MigrateFlags::OFFLINE),
            (self.compressed, MigrateFlags::COMPRESSED),
            (self.auto_converge, MigrateFlags::AUTO_CONVERGE),
            (self.abort_on_error, MigrateFlags::ABORT_ON_ERROR),
            (self.tls, MigrateFlags::TLS),
            (self.parallel, MigrateFlags::PARALLEL),
            (self.postcopy, MigrateFlags::POSTCOPY),
            (self.copy_storage_all, MigrateFlags::NON_SHARED_DISK),
            (self.copy_storage_inc, MigrateFlags::NON_SHARED_INC),
            (
                self.copy_storage_synchronous_writes,
                MigrateFlags::NON_SHARED_SYNCHRONOUS_WRITES,
            ),
            (self.zerocopy, MigrateFlags::ZEROCOPY),
        ] {
            if on {
                f |= flag;
            }
        }
        f
    }

    /// `VIR_MIGRATE_PARAM_*` of the command line (files are read here).
    ///
    /// # Errors
    /// An unreadable `--xml` / `--persistent-xml` file.
    pub fn params(&self) -> anyhow::Result<TypedParams> {
        let mut p = TypedParams::new();
        let read = |path: &PathBuf| {
            std::fs::read_to_string(path)
                .with_context(|| format!("failed to read file '{}'", path.display()))
        };
        if let Some(path) = &self.xml {
            p.push(param::DEST_XML, TypedValue::String(read(path)?));
        }
        if let Some(path) = &self.persistent_xml {
            p.push(param::PERSIST_XML, TypedValue::String(read(path)?));
        }
        for (key, value) in [
            (param::DEST_NAME, &self.dname),
            (param::URI, &self.migrateuri),
            (param::LISTEN_ADDRESS, &self.listen_address),
            (param::TLS_DESTINATION, &self.tls_destination),
            (param::DISKS_URI, &self.disks_uri),
        ] {
            if let Some(v) = value {
                p.push(key, TypedValue::String(v.clone()));
            }
        }
        if let Some(bw) = self.bandwidth {
            p.push(param::BANDWIDTH, TypedValue::ULLong(bw));
        }
        if let Some(bw) = self.postcopy_bandwidth {
            p.push(param::BANDWIDTH_POSTCOPY, TypedValue::ULLong(bw));
        }
        if let Some(n) = self.parallel_connections {
            p.push(param::PARALLEL_CONNECTIONS, TypedValue::Int(n));
        }
        for disk in &self.migrate_disks {
            p.push(param::MIGRATE_DISKS, TypedValue::String(disk.clone()));
        }
        if let Some(port) = self.disks_port {
            p.push(param::DISKS_PORT, TypedValue::Int(port));
        }
        Ok(p)
    }
}

/// Statistics of a finished migration as printed at the end.
#[derive(Debug, Default, Serialize)]
struct Summary {
    domain: String,
    destination: String,
    total_ms: u64,
    steps: Vec<Step>,
    data_processed: Option<u64>,
    downtime_ms: Option<u64>,
    iterations: Option<u64>,
    setup_time_ms: Option<u64>,
}

#[derive(Debug, Serialize)]
struct Step {
    step: &'static str,
    ms: u64,
}

pub async fn migrate(conn: &Connection, args: &MigrateArgs, json: bool) -> anyhow::Result<String> {
    let dom = conn
        .lookup_domain(&args.domain)
        .await
        .with_context(|| format!("failed to get domain '{}'", args.domain))?;
    let flags = args.flags();
    let params = args.params()?;
    let (stop, stopped) = oneshot::channel();
    let poller = tokio::spawn(watch(
        dom.clone(),
        args.verbose,
        args.timeout,
        args.timeout_action,
        stopped,
    ));
    let started = Instant::now();
    let mut timeline = Timeline::new();
    // Completed-job statistics: from the destination after a managed
    // migration (the source guest may be gone), from the source after p2p.
    let result = if args.p2p {
        match dom
            .migrate_to_uri(&args.desturi, &params, flags.bits())
            .await
        {
            Ok(()) => Ok(dom.job_stats(STATS_COMPLETED).await.ok()),
            Err(e) => Err(e),
        }
    } else {
        let dconn = Connection::open(&args.desturi, OpenFlags::default())
            .await
            .with_context(|| format!("failed to connect to the destination '{}'", args.desturi))?;
        let r = match dom
            .migrate_timed(&dconn, &params, flags.bits(), &mut timeline)
            .await
        {
            Ok(ddom) => Ok(ddom.job_stats(STATS_COMPLETED).await.ok()),
            Err(e) => Err(e),
        };
        if let Err(e) = dconn.close().await {
            // the migration's own outcome matters more than a polite close
            eprintln!("warning: closing the destination connection failed: {e}");
        }
        r
    };
    let total = started.elapsed();
    let _ = stop.send(());
    let _ = poller.await;
    let completed = result.context("migration failed")?;
    if !args.verbose && !json {
        return Ok(String::new());
    }
    let mut summary = Summary {
        domain: dom.name().to_owned(),
        destination: args.desturi.clone(),
        total_ms: millis(total),
        steps: timeline
            .iter()
            .map(|t| Step {
                step: t.step,
                ms: millis(t.duration),
            })
            .collect(),
        ..Summary::default()
    };
    if let Some((_, stats)) = completed {
        let u = |k: &str| stats.get_ullong(k).ok().flatten();
        summary.data_processed = u(stat::DATA_PROCESSED);
        summary.downtime_ms = u(stat::DOWNTIME);
        summary.iterations = u(stat::MEMORY_ITERATION);
        summary.setup_time_ms = u(stat::SETUP_TIME);
    }
    if json {
        return output::json(&summary);
    }
    Ok(render(&summary))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn render(s: &Summary) -> String {
    let mut rows = vec![("Total", format!("{} ms", s.total_ms))];
    for step in &s.steps {
        rows.push((step.step, format!("{} ms", step.ms)));
    }
    let mut pairs: Vec<(&str, String)> = rows;
    if let Some(t) = s.setup_time_ms {
        pairs.push(("Setup time", format!("{t} ms")));
    }
    if let Some(d) = s.data_processed {
        pairs.push(("Data sent", mib(d)));
    }
    if let Some(i) = s.iterations {
        pairs.push(("Iterations", i.to_string()));
    }
    if let Some(d) = s.downtime_ms {
        pairs.push(("Downtime", format!("{d} ms")));
    }
    format!(
        "Migration of '{}' to {} completed\n{}",
        s.domain,
        s.destination,
        output::key_values(&pairs, 15)
    )
}

fn mib(bytes: u64) -> String {
    format!("{:.3} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// The second task: polls GET_JOB_STATS for the progress bar and takes the
/// `--timeout` action once.
async fn watch(
    dom: Domain,
    verbose: bool,
    timeout: Option<u64>,
    action: TimeoutAction,
    mut stop: oneshot::Receiver<()>,
) {
    let bar = verbose.then(|| {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "Migration: [{bar:30}] {percent:>3}% {bytes}/{total_bytes} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar
    });
    let deadline = timeout.map(|s| Instant::now() + Duration::from_secs(s));
    let mut acted = false;
    let mut tick = tokio::time::interval(POLL);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tick.tick() => {}
        }
        if !acted && deadline.is_some_and(|d| Instant::now() >= d) {
            acted = true;
            let r = match action {
                TimeoutAction::Abort => dom.abort_job().await,
                TimeoutAction::Pause => dom.suspend().await,
            };
            if let Err(e) = r {
                eprintln!("warning: --timeout action failed: {e}");
            }
        }
        let Some(bar) = &bar else { continue };
        if let Ok((job_type, stats)) = dom.job_stats(0).await {
            if job_type == 0 {
                continue;
            }
            let u = |k: &str| stats.get_ullong(k).ok().flatten().unwrap_or(0);
            // As virsh: done = total - remaining (pages sent again would
            // push "processed" past the total).
            let total = u(stat::DATA_TOTAL);
            bar.set_length(total);
            bar.set_position(total.saturating_sub(u(stat::DATA_REMAINING)));
            bar.set_message(format!(
                "{}/s, {} remaining, iteration {}",
                mib(u(stat::MEMORY_BPS)),
                mib(u(stat::DATA_REMAINING)),
                u(stat::MEMORY_ITERATION)
            ));
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Wrap {
        #[command(flatten)]
        args: MigrateArgs,
    }

    fn parse(words: &[&str]) -> MigrateArgs {
        let mut all = vec!["migrate"];
        all.extend_from_slice(words);
        Wrap::try_parse_from(all).expect("valid").args
    }

    #[test]
    fn flags_map_to_libvirt_bits() {
        let a = parse(&["--live", "--p2p", "--tunnelled", "--persistent", "g", "uri"]);
        assert_eq!(a.flags().bits(), 1 | 2 | 4 | 8);
        let a = parse(&[
            "--offline",
            "--persistent",
            "--undefinesource",
            "--suspend",
            "g",
            "uri",
        ]);
        assert_eq!(a.flags().bits(), 1024 | 8 | 16 | 32);
        let a = parse(&[
            "--compressed",
            "--auto-converge",
            "--abort-on-error",
            "g",
            "uri",
        ]);
        assert_eq!(a.flags().bits(), 2048 | 8192 | 4096);
        let a = parse(&["--tls", "--tls-destination", "host-b", "g", "uri"]);
        assert_eq!(a.flags().bits(), 1 << 16);
        let p = a.params().expect("no files");
        assert_eq!(
            p.get_string(param::TLS_DESTINATION).ok().flatten(),
            Some("host-b")
        );
        assert!(Wrap::try_parse_from(["m", "--tls-destination", "h", "g", "u"]).is_err());
        let a = parse(&[
            "--copy-storage-all",
            "--migrate-disks",
            "vdb,vdc",
            "--disks-port",
            "49300",
            "g",
            "uri",
        ]);
        assert_eq!(a.flags().bits(), 1 << 6);
        let p = a.params().expect("no files");
        assert_eq!(
            p.get_strings(param::MIGRATE_DISKS).expect("strings"),
            ["vdb", "vdc"]
        );
        assert_eq!(p.get_int(param::DISKS_PORT).ok().flatten(), Some(49300));
        assert_eq!(
            parse(&["--copy-storage-inc", "g", "uri"]).flags().bits(),
            1 << 7
        );
        assert!(
            Wrap::try_parse_from(["m", "--copy-storage-all", "--copy-storage-inc", "g", "u"])
                .is_err()
        );
        assert_eq!(
            parse(&[
                "--copy-storage-all",
                "--copy-storage-synchronous-writes",
                "g",
                "uri"
            ])
            .flags()
            .bits(),
            1 << 6 | 1 << 18
        );
        assert_eq!(
            parse(&["--parallel", "--zerocopy", "g", "uri"])
                .flags()
                .bits(),
            1 << 17 | 1 << 20
        );
        let a = parse(&["--parallel", "--parallel-connections", "4", "g", "uri"]);
        assert_eq!(a.flags().bits(), 1 << 17);
        let p = a.params().expect("no files");
        assert_eq!(
            p.get_int(param::PARALLEL_CONNECTIONS).ok().flatten(),
            Some(4)
        );
        let a = parse(&["--postcopy", "--postcopy-bandwidth", "16", "g", "uri"]);
        assert_eq!(a.flags().bits(), 1 << 15);
        let p = a.params().expect("no files");
        assert_eq!(
            p.get_ullong(param::BANDWIDTH_POSTCOPY).ok().flatten(),
            Some(16)
        );
        assert!(Wrap::try_parse_from(["m", "--postcopy-bandwidth", "16", "g", "u"]).is_err());
    }

    #[test]
    fn params_carry_names_uris_and_bandwidth() {
        let a = parse(&[
            "--dname",
            "new",
            "--migrateuri",
            "tcp://127.0.0.1:49152",
            "--bandwidth",
            "50",
            "--listen-address",
            "127.0.0.1",
            "g",
            "uri",
        ]);
        let p = a.params().expect("no files");
        assert_eq!(p.get_string(param::DEST_NAME).ok().flatten(), Some("new"));
        assert_eq!(p.get_ullong(param::BANDWIDTH).ok().flatten(), Some(50));
        assert_eq!(
            p.get_string(param::URI).ok().flatten(),
            Some("tcp://127.0.0.1:49152")
        );
        assert_eq!(p.len(), 4);
    }

    #[test]
    fn compressed_and_no_compressed_conflict() {
        assert!(Wrap::try_parse_from(["m", "--compressed", "--no-compressed", "g", "u"]).is_err());
    }

    #[test]
    fn timeout_action_needs_a_timeout() {
        assert!(Wrap::try_parse_from(["m", "--timeout-action", "pause", "g", "u"]).is_err());
        let a = parse(&["--timeout", "5", "--timeout-action", "pause", "g", "u"]);
        assert_eq!(a.timeout_action, TimeoutAction::Pause);
    }
}
