//! `bench migrate`: migration wall times between two `migrated` daemons
//! (test driver) — offline, and live regular / peer-to-peer / tunnelled for
//! idle 64 MiB and 1 GiB guests — the control overhead, tunnelled vs direct
//! throughput on a dirtying guest, and many concurrent migrations.
//!
//! Migrations are driven in-process through `migrated-client`, so the
//! figures hold no client start-up; each series alternates A→B and B→A and
//! the modes are interleaved round by round.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use migrated_client::sequencer::Timeline;
use migrated_client::{Connection, Domain, OpenFlags};
use migrated_core::flags::MigrateFlags;
use migrated_core::typed_params::{job_stats, migrate_param, TypedParams, TypedValue};

use crate::daemon::{self, DaemonSpec, Migrated};
use crate::guests::{test_guest_xml, Workload};
use crate::report::{fmt_opt, fmt_ratio, Table};
use crate::stats;

/// `VIR_DOMAIN_JOB_STATS_COMPLETED`.
const JOB_STATS_COMPLETED: u32 = 1;
/// How long one migration may take before the bench gives up on it.
const MIGRATION_TIMEOUT: Duration = Duration::from_secs(120);

/// Options of `bench migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Counted migrations per series.
    #[arg(long, default_value_t = 8)]
    pub reps: usize,
    /// Uncounted migrations before each series' counted ones.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Concurrent migrations of small guests.
    #[arg(long, default_value_t = 100)]
    pub concurrent: usize,
    /// Memory of each of the concurrent guests, MiB.
    #[arg(long, default_value_t = 8)]
    pub small_mib: u64,
    /// Leave out the 1 GiB guests (idle and dirtying).
    #[arg(long)]
    pub no_1g: bool,
    /// Run only these series (comma-separated): offline, idle64, idle1g,
    /// dirty, concurrent [default: all].
    #[arg(long, value_delimiter = ',', value_parser = ["offline", "idle64", "idle1g", "dirty", "concurrent"])]
    pub only: Vec<String>,
    /// Also write the Markdown result to this file.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// How a guest is migrated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Inactive guest, definition only (OFFLINE | PERSIST_DEST | UNDEFINE_SOURCE).
    Offline,
    /// Live, driven by the client (Begin/Prepare/Perform/Finish/Confirm).
    Regular,
    /// Live, driven by the source daemon (PEER2PEER).
    P2p,
    /// Live, peer-to-peer with the data inside the RPC connection.
    Tunnelled,
    /// Live, peer-to-peer over this many parallel connections (PARALLEL
    /// with `parallel.connections`; QEMU only).
    Parallel(u8),
}

impl Mode {
    fn flags(self) -> u64 {
        let f = match self {
            Mode::Offline => {
                MigrateFlags::OFFLINE | MigrateFlags::PERSIST_DEST | MigrateFlags::UNDEFINE_SOURCE
            }
            Mode::Regular => MigrateFlags::LIVE,
            Mode::P2p => MigrateFlags::LIVE | MigrateFlags::PEER2PEER,
            Mode::Tunnelled => {
                MigrateFlags::LIVE | MigrateFlags::PEER2PEER | MigrateFlags::TUNNELLED
            }
            Mode::Parallel(_) => {
                MigrateFlags::LIVE | MigrateFlags::PEER2PEER | MigrateFlags::PARALLEL
            }
        };
        f.bits()
    }

    /// The migration parameters the mode adds.
    fn params(self) -> TypedParams {
        let mut p = TypedParams::new();
        if let Mode::Parallel(n) = self {
            p.push(
                migrate_param::PARALLEL_CONNECTIONS,
                TypedValue::Int(n.into()),
            );
        }
        p
    }

    /// Name for tables.
    pub fn label(self) -> &'static str {
        match self {
            Mode::Offline => "offline",
            Mode::Regular => "live, regular",
            Mode::P2p => "live, p2p",
            Mode::Tunnelled => "live, p2p tunnelled",
            Mode::Parallel(_) => "live, p2p parallel",
        }
    }

    /// [`Mode::label`] with the connection count of a parallel mode.
    pub fn describe(self) -> String {
        match self {
            Mode::Parallel(n) => format!("{}, {n} connections", self.label()),
            _ => self.label().to_owned(),
        }
    }
}

/// What the destination's completed-job statistics say about one migration.
#[derive(Debug, Clone, Copy, Default)]
pub struct JobFigures {
    /// `time_elapsed`, ms (job start on the source to the end of the transfer).
    pub elapsed_ms: u64,
    /// `setup_time`, ms (job start to the first byte of guest state).
    pub setup_ms: u64,
    /// `downtime`, ms.
    pub downtime_ms: u64,
    /// `data_processed`, bytes actually sent (`data_total` is the guest's
    /// RAM size for QEMU guests).
    pub data_bytes: u64,
}

impl JobFigures {
    fn from_params(p: &TypedParams) -> Self {
        let get = |k: &str| p.get_ullong(k).ok().flatten().unwrap_or(0);
        Self {
            elapsed_ms: get(job_stats::TIME_ELAPSED),
            setup_ms: get(job_stats::SETUP_TIME),
            downtime_ms: get(job_stats::DOWNTIME),
            data_bytes: get(job_stats::DATA_PROCESSED),
        }
    }

    /// Time spent moving guest state, ms.
    pub fn transfer_ms(&self) -> u64 {
        self.elapsed_ms.saturating_sub(self.setup_ms)
    }

    /// Guest-state throughput, MiB/s (`None` when the transfer took < 1 ms).
    pub fn mib_per_sec(&self) -> Option<f64> {
        let ms = self.transfer_ms();
        (ms > 0).then(|| self.data_bytes as f64 / (1024.0 * 1024.0) / (ms as f64 / 1e3))
    }
}

/// One timed migration.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Wall time of the migration call.
    pub wall: Duration,
    /// Completed-job figures (live migrations).
    pub job: Option<JobFigures>,
    /// Client-side step durations (regular migrations).
    pub timeline: Timeline,
    /// CPU time both daemons used during the migration (Linux only).
    pub daemon_cpu: Option<Duration>,
}

impl Sample {
    /// Wall time outside the data transfer, ms.
    pub fn overhead_ms(&self) -> Option<f64> {
        self.job
            .map(|j| stats::ms(self.wall) - j.transfer_ms() as f64)
    }

    fn step_ms(&self, step: &str) -> Option<f64> {
        self.timeline
            .iter()
            .find(|s| s.step == step)
            .map(|s| stats::ms(s.duration))
    }
}

/// Two daemons and a connection to each.
pub struct Pair {
    daemons: [Migrated; 2],
    conns: [Connection; 2],
    uris: [String; 2],
}

impl Pair {
    /// Starts daemons A and B with `driver` (`test` or `qemu`) and connects
    /// to both.
    ///
    /// # Errors
    /// When a daemon does not start or a connection fails.
    pub async fn start(bin: &std::path::Path, driver: &str) -> Result<Self> {
        let spec = |name, uuid, ports: &str| DaemonSpec {
            hostname: name,
            host_uuid: uuid,
            driver,
            tls: None,
            // Room for the concurrent series: 16 jobs and 64 ports are the defaults.
            extra_args: vec![
                "--max-jobs".into(),
                "256".into(),
                "--migration-ports".into(),
                ports.to_owned(),
            ],
        };
        let a = Migrated::spawn(
            bin,
            &spec(
                "bench-a",
                "6d0c4a8e-0c1b-4f3e-9a51-0000000000a1",
                "50000-50299",
            ),
        )?;
        let b = Migrated::spawn(
            bin,
            &spec(
                "bench-b",
                "6d0c4a8e-0c1b-4f3e-9a51-0000000000b2",
                "50300-50599",
            ),
        )?;
        let uris = [a.uri(), b.uri()];
        let conns = [open(&uris[0]).await?, open(&uris[1]).await?];
        Ok(Self {
            daemons: [a, b],
            conns,
            uris,
        })
    }

    /// The URI of host `side` (0 = A).
    pub fn uri(&self, side: usize) -> &str {
        &self.uris[side]
    }

    /// Defines `xml` on host `side` (0 = A) and starts it when `start`.
    pub async fn define(&self, side: usize, xml: &str, start: bool) -> Result<Domain> {
        let mut dom = self.conns[side].define_xml(xml, 0).await?;
        if start {
            dom.create().await?;
        }
        Ok(dom)
    }

    /// The pass counter of the workload kernel running in guest `name` on
    /// host `side`, as the daemon reads it (MIGRATION_STATUS detail);
    /// `None` when it cannot be read (yet).
    pub async fn workload_counter(&self, side: usize, name: &str) -> Option<u64> {
        let status = self.conns[side].migration_status(name).await.ok()?;
        let detail = status.detail?;
        let rest = detail.split("workload counter ").nth(1)?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    }

    /// Migrates guest `name` from `from` to the other host in `mode`.
    pub async fn migrate(&self, name: &str, from: usize, mode: Mode) -> Result<Sample> {
        let to = 1 - from;
        let dom = self.conns[from].lookup_domain_by_name(name).await?;
        let params = mode.params();
        let mut timeline = Timeline::new();
        let cpu_before = self.daemons_cpu();
        let start = Instant::now();
        let call = async {
            match mode {
                Mode::Offline | Mode::Regular => dom
                    .migrate_timed(&self.conns[to], &params, mode.flags(), &mut timeline)
                    .await
                    .map(|_| ()),
                Mode::P2p | Mode::Tunnelled | Mode::Parallel(_) => {
                    dom.migrate_to_uri(&self.uris[to], &params, mode.flags())
                        .await
                }
            }
        };
        tokio::time::timeout(MIGRATION_TIMEOUT, call)
            .await
            .context("migration timed out")?
            .with_context(|| format!("{} migration of {name} failed", mode.label()))?;
        let wall = start.elapsed();
        let daemon_cpu = self
            .daemons_cpu()
            .zip(cpu_before)
            .map(|(a, b)| a.saturating_sub(b));
        let job = if mode == Mode::Offline {
            None
        } else {
            let ddom = self.conns[to].lookup_domain_by_name(name).await?;
            let (_, params) = ddom.job_stats(JOB_STATS_COMPLETED).await?;
            Some(JobFigures::from_params(&params))
        };
        Ok(Sample {
            wall,
            job,
            timeline,
            daemon_cpu,
        })
    }

    /// CPU time both daemons have used so far.
    fn daemons_cpu(&self) -> Option<Duration> {
        let [a, b] = &self.daemons;
        Some(cpu_time(a.pid())? + cpu_time(b.pid())?)
    }
}

/// CPU time process `pid` has used so far: the sum over its live threads
/// of `/proc/PID/task/TID/schedstat`'s first field (ns on CPU). Threads that
/// exited in between are missing, which only ever lowers the figure.
fn cpu_time(pid: u32) -> Option<Duration> {
    let mut ns = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let Ok(task) = task else { continue };
        let Ok(text) = std::fs::read_to_string(task.path().join("schedstat")) else {
            continue;
        };
        ns += text
            .split_whitespace()
            .next()
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Some(Duration::from_nanos(ns))
}

async fn open(uri: &str) -> Result<Connection> {
    Connection::open(uri, OpenFlags::default())
        .await
        .with_context(|| format!("cannot open {uri}"))
}

/// A series: a guest, the modes it is migrated in, and the samples so far.
struct Series {
    title: String,
    guest: String,
    modes: Vec<Mode>,
    samples: Vec<Vec<Sample>>,
    /// Which host the guest is on now (0 = A).
    at: usize,
}

/// Runs `bench migrate`.
pub async fn run(common: &crate::Common, args: &MigrateArgs) -> Result<()> {
    if args.reps == 0 {
        bail!("--reps must be positive");
    }
    let bin = daemon::binary(&common.bin_dir()?, "migrated")?;
    let pair = Pair::start(&bin, "test").await?;
    let wanted = |name: &str| args.only.is_empty() || args.only.iter().any(|o| o == name);

    let mut all = Vec::new();
    if wanted("offline") {
        all.push(
            idle_series(
                &pair,
                "offline, 64 MiB guest",
                "off64",
                64,
                &[Mode::Offline],
                false,
            )
            .await?,
        );
    }
    if wanted("idle64") {
        all.push(
            idle_series(
                &pair,
                "idle 64 MiB guest",
                "idle64",
                64,
                &[Mode::Regular, Mode::P2p, Mode::Tunnelled],
                true,
            )
            .await?,
        );
    }
    if !args.no_1g && wanted("idle1g") {
        all.push(
            idle_series(
                &pair,
                "idle 1 GiB guest",
                "idle1g",
                1024,
                &[Mode::Regular, Mode::P2p, Mode::Tunnelled],
                true,
            )
            .await?,
        );
    }
    if wanted("dirty") {
        all.push(dirty_series(&pair, args).await?);
    }

    let rounds = args.warmup + args.reps;
    for series in &mut all {
        eprintln!("== {}", series.title);
        for round in 0..rounds {
            let n = series.modes.len();
            for k in 0..n {
                // Rotate the order so no mode always runs first.
                let mi = (k + round) % n;
                let mode = series.modes[mi];
                let s = pair.migrate(&series.guest, series.at, mode).await?;
                series.at = 1 - series.at;
                eprintln!(
                    "  {:<20} {} {:>8.2} ms  transfer {:>5} ms  data {:>10} B",
                    mode.label(),
                    if series.at == 1 { "A>B" } else { "B>A" },
                    stats::ms(s.wall),
                    s.job.map_or(0, |j| j.transfer_ms()),
                    s.job.map_or(0, |j| j.data_bytes),
                );
                if round >= args.warmup {
                    series.samples[mi].push(s);
                }
            }
        }
    }

    let concurrent = if wanted("concurrent") {
        Some(concurrent_series(&pair, args).await?)
    } else {
        None
    };
    let md = render(&all, concurrent.as_ref(), args);
    println!("{md}");
    if let Some(path) = &args.out {
        std::fs::write(path, &md)?;
    }
    Ok(())
}

/// Defines and starts the dirtying guest and lets it write its working set.
async fn dirty_series(pair: &Pair, args: &MigrateArgs) -> Result<Series> {
    let dirty_mib = if args.no_1g { 256 } else { 1024 };
    let dirty = Workload {
        dirty_pages_per_sec: 25_000,
        working_set_mib: 256.min(dirty_mib),
    };
    let xml = test_guest_xml("dirty", dirty_mib, Some(dirty));
    pair.define(0, &xml, true).await?;
    // Let the workload write its whole working set once, so that real data moves.
    let fill = Duration::from_secs_f64(
        (dirty.working_set_mib * 256) as f64 / dirty.dirty_pages_per_sec as f64 + 0.5,
    );
    tokio::time::sleep(fill.min(Duration::from_secs(15))).await;
    Ok(Series {
        title: format!(
            "dirtying {dirty_mib} MiB guest ({} pages/s over {} MiB)",
            dirty.dirty_pages_per_sec, dirty.working_set_mib
        ),
        guest: "dirty".into(),
        modes: vec![Mode::P2p, Mode::Tunnelled],
        samples: vec![Vec::new(), Vec::new()],
        at: 0,
    })
}

async fn idle_series(
    pair: &Pair,
    title: &str,
    guest: &str,
    mib: u64,
    modes: &[Mode],
    running: bool,
) -> Result<Series> {
    pair.define(0, &test_guest_xml(guest, mib, None), running)
        .await?;
    Ok(Series {
        title: title.to_owned(),
        guest: guest.to_owned(),
        modes: modes.to_vec(),
        samples: modes.iter().map(|_| Vec::new()).collect(),
        at: 0,
    })
}

/// What the concurrent series measured.
struct Concurrent {
    n: usize,
    ok: usize,
    total: Duration,
    walls_ms: Vec<f64>,
    first_error: Option<String>,
}

/// Starts `args.concurrent` small guests on A, then migrates them all to B
/// at once, each over its own pair of connections (as that many `virsh
/// migrate` processes would).
async fn concurrent_series(pair: &Pair, args: &MigrateArgs) -> Result<Concurrent> {
    let n = args.concurrent;
    eprintln!(
        "== {n} concurrent live migrations of {} MiB guests",
        args.small_mib
    );
    let mut prepared = Vec::with_capacity(n);
    for i in 0..n {
        let name = format!("c{i:03}");
        pair.define(0, &test_guest_xml(&name, args.small_mib, None), true)
            .await?;
        let src = open(&pair.uris[0]).await?;
        let dst = open(&pair.uris[1]).await?;
        let dom = src.lookup_domain_by_name(&name).await?;
        prepared.push((src, dst, dom));
    }
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for (src, dst, dom) in prepared {
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let params = TypedParams::new();
            let r = tokio::time::timeout(
                MIGRATION_TIMEOUT,
                dom.migrate(&dst, &params, MigrateFlags::LIVE.bits()),
            )
            .await;
            let wall = t.elapsed();
            let _ = src.close().await;
            let _ = dst.close().await;
            match r {
                Ok(Ok(_)) => Ok(wall),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("timed out".to_owned()),
            }
        }));
    }
    let mut out = Concurrent {
        n,
        ok: 0,
        total: Duration::ZERO,
        walls_ms: Vec::new(),
        first_error: None,
    };
    for t in tasks {
        match t.await {
            Ok(Ok(wall)) => {
                out.ok += 1;
                out.walls_ms.push(stats::ms(wall));
            }
            Ok(Err(e)) => {
                out.first_error.get_or_insert(e);
            }
            Err(e) => {
                out.first_error.get_or_insert(e.to_string());
            }
        }
    }
    out.total = start.elapsed();
    // Every guest must now run on B and not on A.
    let on_b = pair.conns[1].list_all_domains(0).await?;
    let running_b = count_running(&on_b, "c").await?;
    eprintln!(
        "  {}/{} succeeded in {:.1} ms; {running_b} running on B",
        out.ok,
        n,
        stats::ms(out.total)
    );
    if running_b != out.ok {
        out.first_error.get_or_insert(format!(
            "{} migrations reported success but {running_b} guests run on B",
            out.ok
        ));
    }
    Ok(out)
}

async fn count_running(doms: &[Domain], prefix: &str) -> Result<usize> {
    let mut n = 0;
    for d in doms.iter().filter(|d| d.name().starts_with(prefix)) {
        if d.is_active().await? {
            n += 1;
        }
    }
    Ok(n)
}

fn med(samples: &[Sample], f: impl Fn(&Sample) -> Option<f64>) -> Option<f64> {
    let v: Vec<f64> = samples.iter().filter_map(f).collect();
    stats::median(&v)
}

fn render(all: &[Series], conc: Option<&Concurrent>, args: &MigrateArgs) -> String {
    let mut out = crate::machine::describe();
    out.push_str(&format!(
        "- {} counted (+{} warm-up) migrations per mode, alternating A→B / B→A, modes \
         interleaved; in-process client (no process start-up); medians\n\n",
        args.reps, args.warmup
    ));
    let mut t = Table::new(&[
        "guest",
        "mode",
        "n",
        "wall ms",
        "min ms",
        "transfer ms (job stats)",
        "control overhead ms",
        "downtime ms",
        "data MiB",
        "MiB/s",
    ]);
    for s in all {
        for (mi, mode) in s.modes.iter().enumerate() {
            let v = &s.samples[mi];
            let walls: Vec<f64> = v.iter().map(|x| stats::ms(x.wall)).collect();
            t.row(vec![
                s.title.clone(),
                mode.label().to_owned(),
                v.len().to_string(),
                fmt_opt(stats::median(&walls), 2),
                fmt_opt(stats::min(&walls), 2),
                fmt_opt(med(v, |x| x.job.map(|j| j.transfer_ms() as f64)), 0),
                fmt_opt(med(v, Sample::overhead_ms), 2),
                fmt_opt(med(v, |x| x.job.map(|j| j.downtime_ms as f64)), 0),
                fmt_opt(
                    med(v, |x| x.job.map(|j| j.data_bytes as f64 / 1048576.0)),
                    1,
                ),
                fmt_opt(med(v, |x| x.job.and_then(|j| j.mib_per_sec())), 0),
            ]);
        }
    }
    out.push_str(&t.render());
    out.push_str(
        "\n\"transfer\" is `time_elapsed - setup_time` from the destination's completed-job \
         statistics (whole milliseconds); \"control overhead\" is the wall time minus that.\n\n",
    );

    // Client-side steps of the regular migrations.
    let mut t = Table::new(&[
        "guest (regular)",
        "begin ms",
        "prepare ms",
        "perform ms",
        "finish ms",
        "confirm ms",
        "wall - perform ms",
    ]);
    for s in all {
        let Some(mi) = s.modes.iter().position(|m| *m == Mode::Regular) else {
            continue;
        };
        let v = &s.samples[mi];
        let step = |name: &'static str| fmt_opt(med(v, |x| x.step_ms(name)), 3);
        t.row(vec![
            s.title.clone(),
            step("begin"),
            step("prepare"),
            step("perform"),
            step("finish"),
            step("confirm"),
            fmt_opt(
                med(v, |x| x.step_ms("perform").map(|p| stats::ms(x.wall) - p)),
                3,
            ),
        ]);
    }
    out.push_str(&t.render());

    // Tunnelled vs direct on the dirtying guest.
    if let Some(s) = all.iter().find(|s| s.guest == "dirty") {
        let rate = |m: Mode| {
            s.modes
                .iter()
                .position(|x| *x == m)
                .and_then(|i| med(&s.samples[i], |x| x.job.and_then(|j| j.mib_per_sec())))
        };
        let (direct, tunnel) = (rate(Mode::P2p), rate(Mode::Tunnelled));
        out.push_str(&format!(
            "\nTunnelled vs direct throughput ({}): direct {} MiB/s, tunnelled {} MiB/s, \
             tunnelled/direct {}.\n",
            s.title,
            fmt_opt(direct, 0),
            fmt_opt(tunnel, 0),
            fmt_ratio(stats::ratio(tunnel, direct)),
        ));
    }

    let Some(conc) = conc else {
        return out;
    };
    let mut sorted = conc.walls_ms.clone();
    sorted.sort_by(f64::total_cmp);
    out.push_str(&format!(
        "\n{} concurrent live migrations of {} MiB idle guests A→B (each over its own \
         connections): {}/{} succeeded, total {:.1} ms; per migration median {} ms, max {} ms.{}\n",
        conc.n,
        args.small_mib,
        conc.ok,
        conc.n,
        stats::ms(conc.total),
        fmt_opt(stats::median(&sorted), 1),
        fmt_opt(sorted.last().copied(), 1),
        conc.first_error
            .as_ref()
            .map_or(String::new(), |e| format!(" First error: {e}")),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_carry_libvirts_flag_bits() {
        assert_eq!(Mode::Regular.flags(), 1);
        assert_eq!(Mode::P2p.flags(), 1 | 2);
        assert_eq!(Mode::Tunnelled.flags(), 1 | 2 | 4);
        assert_eq!(Mode::Offline.flags(), 1024 | 8 | 16);
        assert_eq!(Mode::Parallel(4).flags(), 1 | 2 | 1 << 17);
        let p = Mode::Parallel(4).params();
        assert_eq!(
            p.get_int(migrate_param::PARALLEL_CONNECTIONS)
                .ok()
                .flatten(),
            Some(4)
        );
        assert!(Mode::P2p.params().is_empty());
    }

    #[test]
    fn job_figures_give_transfer_time_and_throughput() {
        let mut p = TypedParams::new();
        p.push(job_stats::TIME_ELAPSED, TypedValue::ULLong(1500));
        p.push(job_stats::SETUP_TIME, TypedValue::ULLong(500));
        p.push(job_stats::DATA_TOTAL, TypedValue::ULLong(1 << 40));
        p.push(
            job_stats::DATA_PROCESSED,
            TypedValue::ULLong(200 * 1024 * 1024),
        );
        p.push(job_stats::DOWNTIME, TypedValue::ULLong(12));
        let j = JobFigures::from_params(&p);
        assert_eq!(j.transfer_ms(), 1000);
        assert_eq!(j.downtime_ms, 12);
        assert_eq!(j.mib_per_sec(), Some(200.0));
        let s = Sample {
            wall: Duration::from_millis(1004),
            job: Some(j),
            timeline: Timeline::new(),
            daemon_cpu: None,
        };
        let over = s.overhead_ms().unwrap_or(f64::NAN);
        assert!((over - 4.0).abs() < 1e-9, "{over}");
    }

    #[test]
    fn zero_transfer_time_has_no_throughput() {
        let j = JobFigures {
            elapsed_ms: 3,
            setup_ms: 5,
            downtime_ms: 0,
            data_bytes: 10,
        };
        assert_eq!(j.transfer_ms(), 0);
        assert_eq!(j.mib_per_sec(), None);
    }
}
