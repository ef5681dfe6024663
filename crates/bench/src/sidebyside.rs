//! `bench libvirt` and `bench qemu`: the same 256 MiB QEMU guest migrated
//! by `migrated` and by a stock libvirtd on this machine, interleaved, with
//! the floors (bare QMP migrate, minimal spawn+migrate+stop cycle) measured
//! in the same run, and python3-libvirt RPC throughput against both.
//!
//! `bench libvirt` drives everything with stock clients (virsh wall clock
//! from process start to exit, python3-libvirt); `bench qemu` drives
//! `migrated` in-process (no client start-up) and reports QEMU's downtime.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::daemon;
use crate::libvirtd::{Host, LibvirtHosts};
use crate::migrate::{Mode, Pair, Sample};
use crate::qmp::{Floor, FloorSample};
use crate::report::{fmt_opt, fmt_ratio, Table};
use crate::stats;

/// The python3-libvirt RPC script, shipped inside the binary.
const PY_RPC: &str = include_str!("../scripts/py_rpc.py");
const PY_MIGRATE: &str = include_str!("../scripts/py_migrate.py");
/// What [`PY_MIGRATE`] measures: (label, its mode argument).
const PY_MODES: [(&str, &str); 2] = [("offline", "offline"), ("live, regular", "live")];
/// Debian's python, where python3-libvirt lives.
const PYTHON: &str = "/usr/bin/python3";
/// Longest a single client command may run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
/// The running guest's name, UUID and memory (MiB; `--memory-mib`'s default),
/// shared with `bench rpc --scenario lookup-xml`.
pub const GUEST: &str = "benchguest";
/// See [`GUEST`].
pub const GUEST_UUID: &str = "5b0e1d2c-3f4a-4b5c-8d6e-7f8091a2b3d1";
/// See [`GUEST`].
pub const GUEST_MIB: u64 = 256;
/// The QEMU both implementations run.
pub const QEMU_BIN: &str = "/usr/bin/qemu-system-x86_64";
/// Loopback port the QMP floors migrate through.
const FLOOR_PORT: u16 = 49400;

/// Options of `bench libvirt` and `bench qemu`.
#[derive(Debug, Args)]
pub struct SideArgs {
    /// Counted migrations per mode and implementation.
    #[arg(long, default_value_t = 6)]
    pub reps: usize,
    /// Uncounted migrations before the counted ones.
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Guest memory, MiB.
    #[arg(long, default_value_t = GUEST_MIB)]
    pub memory_mib: u64,
    /// QEMU accelerator: kvm or tcg.
    #[arg(long, default_value = "kvm", value_parser = ["kvm", "tcg"])]
    pub accel: String,
    /// Seconds per python3-libvirt RPC run.
    #[arg(long, default_value_t = 4.0)]
    pub rpc_secs: f64,
    /// `bench qemu`: memory of the dirtying guest, MiB.
    #[arg(long, default_value_t = 1024)]
    pub dirty_memory_mib: u64,
    /// `bench qemu`: MiB the dirtying guest keeps rewriting.
    #[arg(long, default_value_t = 128)]
    pub dirty_mib: u64,
    /// Pause before each live migration of `migrated` and libvirtd, ms
    /// (the floor always pauses 300 ms before its cycle: a guest that has
    /// only just resumed migrates several times slower). 0 reproduces the
    /// runs before this pause existed.
    #[arg(long, default_value_t = 300)]
    pub settle_ms: u64,
    /// Leave out the stock libvirtd side.
    #[arg(long)]
    pub no_libvirtd: bool,
    /// `bench qemu`: run only the dirtying guest's series, direct (p2p)
    /// against parallel (multifd) migrations with each of these connection
    /// counts (comma-separated, e.g. `2,4`).
    #[arg(long, value_delimiter = ',', value_name = "N,...", value_parser = clap::value_parser!(u8).range(1..))]
    pub parallel: Vec<u8>,
    /// Also write the Markdown result to this file.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// Which implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Migrated,
    Libvirt,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Migrated => "migrated",
            Side::Libvirt => "libvirtd",
        }
    }
}

/// Wall times of one kind of command, and the first failure.
#[derive(Debug, Default, Clone)]
struct Timings {
    ms: Vec<f64>,
    tries: usize,
    error: Option<String>,
}

impl Timings {
    fn record(&mut self, r: Result<f64>, counted: bool) {
        if counted {
            self.tries += 1;
        }
        match r {
            Ok(ms) if counted => self.ms.push(ms),
            Ok(_) => {}
            Err(e) => {
                self.error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }

    fn median(&self) -> Option<f64> {
        stats::median(&self.ms)
    }
}

/// The guest, as the baseline script defines it (no disk, NIC or display).
pub fn guest_xml(name: &str, uuid: &str, mib: u64, accel: &str) -> String {
    let dtype = if accel == "kvm" { "kvm" } else { "qemu" };
    format!(
        "<domain type='{dtype}'>\n  <name>{name}</name>\n  <uuid>{uuid}</uuid>\n  \
         <memory unit='MiB'>{mib}</memory>\n  <vcpu>1</vcpu>\n  \
         <os><type arch='x86_64' machine='pc'>hvm</type></os>\n  <features><acpi/></features>\n  \
         <clock offset='utc'/>\n  <on_poweroff>destroy</on_poweroff>\n  \
         <on_reboot>restart</on_reboot>\n  <on_crash>destroy</on_crash>\n  <devices>\n    \
         <emulator>/usr/bin/qemu-system-x86_64</emulator>\n    \
         <controller type='usb' model='none'/>\n    <memballoon model='none'/>\n  \
         </devices>\n</domain>\n"
    )
}

/// A guest booting the project's workload kernel, which rewrites every
/// page of its first `dirty_mib` MiB over and over.
fn dirty_guest_xml(name: &str, mib: u64, accel: &str, kernel: &Path, dirty_mib: u64) -> String {
    let dtype = if accel == "kvm" { "kvm" } else { "qemu" };
    format!(
        "<domain type='{dtype}'>\n  <name>{name}</name>\n  <memory unit='MiB'>{mib}</memory>\n  \
         <vcpu>1</vcpu>\n  <os><type arch='x86_64' machine='pc'>hvm</type>\
         <kernel>{}</kernel><cmdline>dirty_mib={dirty_mib}</cmdline></os>\n  \
         <devices>\n    <emulator>/usr/bin/qemu-system-x86_64</emulator>\n  </devices>\n</domain>\n",
        kernel.display()
    )
}

/// Runs `cmd`, bounded by [`COMMAND_TIMEOUT`]; its wall time in ms.
fn timed(cmd: &mut Command) -> Result<f64> {
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {:?}", cmd.get_program()))?;
    let deadline = start + COMMAND_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait()? {
            let ms = stats::ms(start.elapsed());
            if status.success() {
                return Ok(ms);
            }
            let out = child.wait_with_output()?;
            bail!(
                "{} failed: {}",
                cmd.get_program().to_string_lossy(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("timed out after {COMMAND_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn virsh(uri: &str, args: &[&str]) -> Command {
    let mut c = Command::new("virsh");
    c.arg("-q").arg("-c").arg(uri).args(args);
    c
}

/// Both sides' hosts: URIs, and how `virsh migrate` must be told where data goes.
struct Hosts {
    side: Side,
    uris: [String; 2],
    /// libvirt refuses 127.0.0.1 as its migration address; `migrated`
    /// picks one itself.
    migrate_uris: [Option<String>; 2],
    /// Where the guest runs now.
    at: usize,
}

impl Hosts {
    fn migrate_args(&self, mode: Mode, guest: &str) -> Vec<String> {
        let to = 1 - self.at;
        let mut a = vec!["migrate".to_owned()];
        match mode {
            Mode::Offline => {
                a.extend(["--offline", "--persistent", "--undefinesource"].map(String::from))
            }
            Mode::Regular => a.push("--live".into()),
            Mode::P2p => a.extend(["--live", "--p2p"].map(String::from)),
            Mode::Tunnelled => a.extend(["--live", "--p2p", "--tunnelled"].map(String::from)),
            Mode::Parallel(n) => a.extend([
                "--live".to_owned(),
                "--p2p".to_owned(),
                "--parallel".to_owned(),
                "--parallel-connections".to_owned(),
                n.to_string(),
            ]),
        }
        a.push(guest.to_owned());
        a.push(self.uris[to].clone());
        if matches!(mode, Mode::Regular | Mode::P2p | Mode::Parallel(_)) {
            if let Some(u) = &self.migrate_uris[to] {
                a.extend(["--migrateuri".to_owned(), u.clone()]);
            }
        }
        a
    }

    /// One `virsh migrate` in `mode`, timed from process start to exit.
    fn migrate(&mut self, mode: Mode, guest: &str) -> Result<f64> {
        let args = self.migrate_args(mode, guest);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = timed(&mut virsh(&self.uris[self.at], &refs));
        if r.is_ok() {
            self.at = 1 - self.at;
        }
        r
    }

    fn virsh_ok(&self, side: usize, args: &[&str]) -> Result<()> {
        timed(&mut virsh(&self.uris[side], args)).map(|_| ())
    }
}

/// Runs `bench libvirt` (`inprocess` false) or `bench qemu` (`inprocess` true).
pub async fn run(common: &crate::Common, args: &SideArgs, inprocess: bool) -> Result<()> {
    if args.reps == 0 {
        bail!("--reps must be positive");
    }
    if !Path::new(QEMU_BIN).exists() {
        bail!("qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)");
    }
    let bin = daemon::binary(&common.bin_dir()?, "migrated")?;
    let work = tempfile::Builder::new()
        .prefix("migrated-bench-side-")
        .tempdir()?;
    let want_libvirt = !args.no_libvirtd && !inprocess;
    let libvirt = if want_libvirt {
        Some(LibvirtHosts::start(&[Host::A, Host::B], None)?)
    } else {
        None
    };
    let pair = Pair::start(&bin, "qemu").await?;
    let mut report = String::new();
    report.push_str(&crate::machine::describe());
    // The `--parallel` series has no floor or small guest to compare with.
    let dirty_only = inprocess && !args.parallel.is_empty();
    if dirty_only {
        report.push_str(&format!(
            "- accel {}; {} counted (+{} warm-up) per mode, alternating directions, modes \
             interleaved\n",
            args.accel, args.reps, args.warmup
        ));
    } else {
        report.push_str(&format!(
            "- guest: {} MiB, 1 vCPU, no disk/NIC/display, accel {}; {} counted (+{} warm-up) per \
         mode and implementation, alternating directions, implementations interleaved\n\n",
            args.memory_mib, args.accel, args.reps, args.warmup
        ));
    }

    let guest = GUEST;
    let xml = guest_xml(guest, GUEST_UUID, args.memory_mib, &args.accel);
    let xml_path = work.path().join("guest.xml");
    std::fs::write(&xml_path, &xml)?;
    let off_xml_path = work.path().join("offguest.xml");
    std::fs::write(
        &off_xml_path,
        guest_xml(
            "benchoff",
            "5b0e1d2c-3f4a-4b5c-8d6e-7f8091a2b3d2",
            args.memory_mib,
            &args.accel,
        ),
    )?;

    let modes = [Mode::Regular, Mode::P2p, Mode::Tunnelled, Mode::Offline];
    let settle = Duration::from_millis(args.settle_ms);
    let mut floors: Vec<FloorSample> = Vec::new();
    let mut floor_error: Option<String> = None;
    let mut floor = if dirty_only {
        None
    } else {
        match tokio::task::block_in_place(|| Floor::start(&args.accel, args.memory_mib, FLOOR_PORT))
        {
            Ok(f) => Some(f),
            Err(e) => {
                floor_error = Some(format!("{e:#}"));
                None
            }
        }
    };

    if dirty_only {
        // `--parallel`: the dirtying guest's direct and parallel series only.
        let dirty = dirty_series(&pair, work.path(), args).await;
        render_dirty(&mut report, &dirty, args);
    } else if inprocess {
        // migrated only, through the client library: no virsh start-up in the figures.
        let mut start_err = None;
        if let Err(e) = pair.define(0, &xml, true).await {
            start_err = Some(format!("{e:#}"));
        }
        if let Err(e) = pair
            .define(0, &std::fs::read_to_string(&off_xml_path)?, false)
            .await
        {
            start_err.get_or_insert(format!("{e:#}"));
        }
        let mut samples: Vec<Vec<Sample>> = modes.iter().map(|_| Vec::new()).collect();
        let mut errors: Vec<Option<String>> = modes.iter().map(|_| None).collect();
        let mut at = [0usize; 2];
        for round in 0..args.warmup + args.reps {
            for (mi, &mode) in modes.iter().enumerate() {
                if start_err.is_some() {
                    break;
                }
                let (g, slot) = if mode == Mode::Offline {
                    ("benchoff", 1)
                } else {
                    (guest, 0)
                };
                if mode != Mode::Offline {
                    // The floor lets its guest settle before each cycle (a
                    // guest that has only just resumed migrates several
                    // times slower); every live migration gets the same.
                    tokio::time::sleep(settle).await;
                }
                match pair.migrate(g, at[slot], mode).await {
                    Ok(s) => {
                        at[slot] = 1 - at[slot];
                        if round >= args.warmup {
                            samples[mi].push(s);
                        }
                    }
                    Err(e) => {
                        errors[mi].get_or_insert(format!("{e:#}"));
                    }
                }
            }
            if let Some(f) = floor.as_mut() {
                match tokio::task::block_in_place(|| f.cycle()) {
                    Ok(s) if round >= args.warmup => floors.push(s),
                    Ok(_) => {}
                    Err(e) => {
                        floor_error.get_or_insert(format!("{e:#}"));
                    }
                }
            }
        }
        let dirty = dirty_series(&pair, work.path(), args).await;
        render_inprocess(
            &mut report,
            &modes,
            &samples,
            &errors,
            start_err.as_deref(),
            args,
            &floors,
        );
        render_dirty(&mut report, &dirty, args);
    } else {
        let mut hosts = vec![Hosts {
            side: Side::Migrated,
            uris: [pair.uri(0).to_owned(), pair.uri(1).to_owned()],
            migrate_uris: [None, None],
            at: 0,
        }];
        if libvirt.is_some() {
            hosts.push(Hosts {
                side: Side::Libvirt,
                uris: [Host::A.uri(), Host::B.uri()],
                migrate_uris: [
                    Some(format!("tcp://{}:49162", Host::A.migration_address())),
                    Some(format!("tcp://{}:49226", Host::B.migration_address())),
                ],
                at: 0,
            });
        }
        let xml_s = xml_path.display().to_string();
        let off_s = off_xml_path.display().to_string();
        let mut setup_err: Vec<Option<String>> = hosts.iter().map(|_| None).collect();
        for (hi, h) in hosts.iter().enumerate() {
            let r = h
                .virsh_ok(0, &["define", &xml_s])
                .and_then(|()| h.virsh_ok(0, &["start", guest]))
                .and_then(|()| h.virsh_ok(0, &["define", &off_s]));
            if let Err(e) = r {
                setup_err[hi] = Some(format!("{e:#}"));
            }
        }
        // Offline runs on its own guest, so it keeps its own position.
        let mut off_at: Vec<usize> = hosts.iter().map(|_| 0).collect();
        let py_migrate = work.path().join("py_migrate.py");
        std::fs::write(&py_migrate, PY_MIGRATE)?;
        // [host][PY_MODES]: virDomainMigrate3 on open connections.
        let mut py_timings: Vec<Vec<Timings>> = hosts
            .iter()
            .map(|_| PY_MODES.iter().map(|_| Timings::default()).collect())
            .collect();
        // [virsh --version, `virsh -c URI version` per host]
        let mut startup: Vec<Timings> = vec![Timings::default(); hosts.len() + 1];
        let mut timings: Vec<Vec<Timings>> = hosts
            .iter()
            .map(|_| modes.iter().map(|_| Timings::default()).collect())
            .collect();
        for round in 0..args.warmup + args.reps {
            let counted = round >= args.warmup;
            for (mi, &mode) in modes.iter().enumerate() {
                for k in 0..hosts.len() {
                    let hi = (k + round + mi) % hosts.len();
                    if setup_err[hi].is_some() {
                        continue;
                    }
                    let h = &mut hosts[hi];
                    let r = tokio::task::block_in_place(|| {
                        if mode != Mode::Offline {
                            // As in the floor and the in-process series.
                            std::thread::sleep(settle);
                        }
                        if mode == Mode::Offline {
                            let keep = h.at;
                            h.at = off_at[hi];
                            let r = h.migrate(mode, "benchoff");
                            off_at[hi] = h.at;
                            h.at = keep;
                            r
                        } else {
                            h.migrate(mode, guest)
                        }
                    });
                    timings[hi][mi].record(r, counted);
                }
            }
            // The same migrations through python3-libvirt on open
            // connections: the daemons' cost without virsh's start-up.
            for (pi, (_, mode)) in PY_MODES.iter().enumerate() {
                for k in 0..hosts.len() {
                    let hi = (k + round + pi) % hosts.len();
                    if setup_err[hi].is_some() {
                        continue;
                    }
                    let h = &hosts[hi];
                    let (guest_name, from) = if *mode == "offline" {
                        ("benchoff", off_at[hi])
                    } else {
                        (guest, h.at)
                    };
                    let r = tokio::task::block_in_place(|| {
                        py_migrate_run(&py_migrate, h, guest_name, from, mode, settle)
                    });
                    match r {
                        Ok(v) => {
                            for ms in v {
                                py_timings[hi][pi].record(Ok(ms), counted);
                            }
                        }
                        Err(e) => {
                            // Both calls of the invocation count as failed.
                            let msg = format!("{e:#}");
                            for _ in 0..2 {
                                py_timings[hi][pi].record(Err(anyhow::anyhow!("{msg}")), counted);
                            }
                        }
                    }
                }
            }
            // virsh's own cost in the same run: start-up alone, and a
            // connection with one call, so the offline figures can be read
            // net of it.
            tokio::task::block_in_place(|| {
                startup[0].record(timed(Command::new("virsh").arg("--version")), counted);
                for (hi, h) in hosts.iter().enumerate() {
                    if setup_err[hi].is_none() {
                        startup[hi + 1]
                            .record(timed(&mut virsh(&h.uris[0], &["version"])), counted);
                    }
                }
            });
            if let Some(f) = floor.as_mut() {
                match tokio::task::block_in_place(|| f.cycle()) {
                    Ok(s) if counted => floors.push(s),
                    Ok(_) => {}
                    Err(e) => {
                        floor_error.get_or_insert(format!("{e:#}"));
                    }
                }
            }
        }
        render_virsh(&mut report, &hosts, &modes, &timings, &setup_err);
        render_startup(&mut report, &hosts, &startup);
        render_py_migrate(&mut report, &hosts, &py_timings);

        // python3-libvirt: lookup + XML on the running guest, 1 and 8 connections.
        let py = work.path().join("py_rpc.py");
        std::fs::write(&py, PY_RPC)?;
        let mut targets: Vec<(Side, String, String)> = Vec::new();
        for (hi, h) in hosts.iter().enumerate() {
            if setup_err[hi].is_none() {
                targets.push((h.side, h.uris[h.at].clone(), guest.to_owned()));
            }
        }
        if setup_err[0].is_some() {
            // migrated could not run the QEMU guest: measure its RPC path on a
            // test-driver guest instead, and say so.
            let rpc = crate::daemon::Migrated::spawn(
                &bin,
                &crate::daemon::DaemonSpec {
                    hostname: "bench-rpc",
                    host_uuid: "6d0c4a8e-0c1b-4f3e-9a51-0000000000c3",
                    driver: "test",
                    tls: None,
                    extra_args: Vec::new(),
                },
            )?;
            let c = migrated_client::Connection::open(&rpc.uri(), Default::default()).await?;
            let mut d = c
                .define_xml(
                    &crate::guests::test_guest_xml(guest, args.memory_mib, None),
                    0,
                )
                .await?;
            d.create().await?;
            targets.insert(0, (Side::Migrated, rpc.uri(), guest.to_owned()));
            report.push_str("\nNote: migrated's RPC figures below use a test-driver guest (the QEMU guest did not start).\n");
            render_python(&mut report, &py, &targets, args).await;
            drop(rpc);
        } else {
            render_python(&mut report, &py, &targets, args).await;
        }
    }

    if !dirty_only {
        render_floors(&mut report, &floors, floor_error.as_deref());
    }
    println!("{report}");
    if let Some(path) = &args.out {
        std::fs::write(path, &report)?;
    }
    drop(pair);
    drop(libvirt);
    Ok(())
}

/// One row per mode and implementation: ok/n, median, min and migrated's
/// median as a ratio to libvirtd's; `timings[host][mode]`.
fn timing_table(hosts: &[Hosts], labels: &[&str], timings: &[Vec<Timings>]) -> String {
    let mut t = Table::new(&[
        "mode",
        "implementation",
        "ok/n",
        "median",
        "min",
        "ratio to libvirtd",
    ]);
    for (mi, label) in labels.iter().enumerate() {
        let base = hosts
            .iter()
            .position(|h| h.side == Side::Libvirt)
            .and_then(|i| timings[i][mi].median());
        for (hi, h) in hosts.iter().enumerate() {
            let tm = &timings[hi][mi];
            let ratio = if h.side == Side::Migrated {
                fmt_ratio(stats::ratio(tm.median(), base))
            } else {
                String::new()
            };
            t.row(vec![
                (*label).to_owned(),
                h.side.name().to_owned(),
                format!("{}/{}", tm.ms.len(), tm.tries),
                fmt_opt(tm.median(), 1),
                fmt_opt(stats::min(&tm.ms), 1),
                ratio,
            ]);
        }
    }
    t.render()
}

fn render_virsh(
    out: &mut String,
    hosts: &[Hosts],
    modes: &[Mode],
    timings: &[Vec<Timings>],
    setup_err: &[Option<String>],
) {
    out.push_str("### `virsh migrate`, wall clock from process start to exit (ms)\n\n");
    let labels: Vec<&str> = modes.iter().map(|m| m.label()).collect();
    out.push_str(&timing_table(hosts, &labels, timings));
    for (hi, h) in hosts.iter().enumerate() {
        if let Some(e) = &setup_err[hi] {
            out.push_str(&format!("\n{}: guest set-up failed: {e}\n", h.side.name()));
        }
        for (mi, mode) in modes.iter().enumerate() {
            if let Some(e) = &timings[hi][mi].error {
                out.push_str(&format!(
                    "\n{} {}: first failure: {}\n",
                    h.side.name(),
                    mode.label(),
                    e.lines().next().unwrap_or_default()
                ));
            }
        }
    }
}

/// Runs [`PY_MIGRATE`]: `guest` from host `from` to the other and back;
/// the guest ends where it started. Returns the two calls' wall times.
fn py_migrate_run(
    script: &Path,
    h: &Hosts,
    guest: &str,
    from: usize,
    mode: &str,
    settle: Duration,
) -> Result<Vec<f64>> {
    let mut cmd = Command::new(PYTHON);
    cmd.arg(script)
        .args([&h.uris[0], &h.uris[1]])
        .arg(guest)
        .arg(from.to_string())
        .arg(mode)
        .arg(format!("{:.3}", settle.as_secs_f64()));
    if mode != "offline" {
        if let [Some(a), Some(b)] = &h.migrate_uris {
            cmd.args([a, b]);
        }
    }
    let out = run_bounded(&mut cmd)?;
    let v: serde_json::Value =
        serde_json::from_str(out.trim()).with_context(|| format!("py_migrate output: {out}"))?;
    let ms = v
        .get("ms")
        .and_then(serde_json::Value::as_array)
        .context("py_migrate printed no timings")?;
    Ok(ms.iter().filter_map(serde_json::Value::as_f64).collect())
}

/// Runs `cmd` to the end (bounded by [`COMMAND_TIMEOUT`]); its stdout.
fn run_bounded(cmd: &mut Command) -> Result<String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {:?}", cmd.get_program()))?;
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    loop {
        if child.try_wait()?.is_some() {
            let out = child.wait_with_output()?;
            if !out.status.success() {
                bail!(
                    "{:?} failed: {}",
                    cmd.get_program(),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("timed out after {COMMAND_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn render_py_migrate(out: &mut String, hosts: &[Hosts], timings: &[Vec<Timings>]) {
    out.push_str(
        "\n### virDomainMigrate3 through python3-libvirt on open connections (ms)\n\n\
         The same guests and flags as above, timed around the one call inside one python \
         process that already holds both connections: no client start-up or connection \
         set-up, the same way for both implementations.\n\n",
    );
    let labels: Vec<&str> = PY_MODES.iter().map(|(label, _)| *label).collect();
    out.push_str(&timing_table(hosts, &labels, timings));
    for (hi, h) in hosts.iter().enumerate() {
        for (pi, (label, _)) in PY_MODES.iter().enumerate() {
            if let Some(e) = &timings[hi][pi].error {
                out.push_str(&format!(
                    "\n{} {label} (python): first failure: {}\n",
                    h.side.name(),
                    e.lines().next().unwrap_or_default()
                ));
            }
        }
    }
}

fn render_startup(out: &mut String, hosts: &[Hosts], startup: &[Timings]) {
    out.push_str("\n### virsh's own cost in this run (ms; included in every figure above)\n\n");
    let mut t = Table::new(&["command", "ok/n", "median", "min"]);
    let mut rows = vec![("`virsh --version` (no connection)".to_owned(), &startup[0])];
    for (hi, h) in hosts.iter().enumerate() {
        rows.push((
            format!("`virsh -c URI version` ({})", h.side.name()),
            &startup[hi + 1],
        ));
    }
    for (name, tm) in rows {
        t.row(vec![
            name,
            format!("{}/{}", tm.ms.len(), tm.tries),
            fmt_opt(tm.median(), 1),
            fmt_opt(stats::min(&tm.ms), 1),
        ]);
    }
    out.push_str(&t.render());
    out.push_str(
        "\nOffline migration is measured the same way on both: `virsh migrate --offline \
         --persistent --undefinesource` from process start to exit, so both figures include \
         virsh's start-up and its two connections.\n",
    );
}

/// Migrations of a dirtying guest: direct against tunnelled, or (with
/// `--parallel`) against parallel ones.
struct Dirty {
    /// The modes compared, direct first.
    modes: Vec<Mode>,
    /// Samples of each of `modes`, in that order.
    samples: Vec<Vec<Sample>>,
    error: Option<String>,
}

/// The dirtying series' modes: direct (p2p) first, then tunnelled or the
/// parallel connection counts asked for.
fn dirty_modes(args: &SideArgs) -> Vec<Mode> {
    let mut modes = vec![Mode::P2p];
    if args.parallel.is_empty() {
        modes.push(Mode::Tunnelled);
    } else {
        modes.extend(args.parallel.iter().map(|&n| Mode::Parallel(n)));
    }
    modes
}

/// Boots the workload kernel on A and migrates it back and forth in each
/// of [`dirty_modes`], interleaved; stops at the first failure (a migration
/// that cannot converge would otherwise cost its whole timeout every round).
async fn dirty_series(pair: &Pair, dir: &Path, args: &SideArgs) -> Dirty {
    let modes = dirty_modes(args);
    let mut out = Dirty {
        samples: modes.iter().map(|_| Vec::new()).collect(),
        modes,
        error: None,
    };
    let kernel = match migrated_driver_qemu::workload::install(dir) {
        Ok(p) => p,
        Err(e) => {
            out.error = Some(e.to_string());
            return out;
        }
    };
    let xml = dirty_guest_xml(
        "benchdirty",
        args.dirty_memory_mib,
        &args.accel,
        &kernel,
        args.dirty_mib,
    );
    if let Err(e) = pair.define(0, &xml, true).await {
        out.error = Some(format!("{e:#}"));
        return out;
    }
    // Let the kernel boot and write its region once: until then the guest's
    // memory is zero pages, which QEMU sends as headers only (nested KVM
    // takes ~4 s to get there; a fixed 1 s wait measured 2.7 MiB "moved").
    let booted = Instant::now();
    while pair.workload_counter(0, "benchdirty").await.unwrap_or(0) < 1 {
        if booted.elapsed() > Duration::from_secs(60) {
            out.error = Some("the workload kernel did not complete a pass within 60 s".into());
            return out;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut at = 0;
    for round in 0..args.warmup + args.reps {
        for k in 0..out.modes.len() {
            let mi = (k + round) % out.modes.len();
            match pair.migrate("benchdirty", at, out.modes[mi]).await {
                Ok(s) => {
                    at = 1 - at;
                    if round >= args.warmup {
                        out.samples[mi].push(s);
                    }
                }
                Err(e) => {
                    out.error = Some(format!("{e:#}"));
                    return out;
                }
            }
        }
    }
    out
}

fn render_dirty(out: &mut String, d: &Dirty, args: &SideArgs) {
    out.push_str(&format!(
        "\n### migrated, dirtying guest ({} MiB, workload kernel rewriting {} MiB), in-process\n\n",
        args.dirty_memory_mib, args.dirty_mib
    ));
    let mut t = Table::new(&[
        "mode",
        "ok/n",
        "wall ms",
        "transfer ms (job stats)",
        "data MiB",
        "MiB/s",
        "downtime ms",
        "daemons' CPU ms per GiB",
    ]);
    let rate = |v: &[Sample]| {
        let r: Vec<f64> = v
            .iter()
            .filter_map(|s| s.job.and_then(|j| j.mib_per_sec()))
            .collect();
        stats::median(&r)
    };
    for (mode, v) in d.modes.iter().zip(&d.samples) {
        let pick = |f: &dyn Fn(&Sample) -> Option<f64>| {
            let x: Vec<f64> = v.iter().filter_map(f).collect();
            stats::median(&x)
        };
        t.row(vec![
            mode.describe(),
            format!("{}/{}", v.len(), args.reps),
            fmt_opt(pick(&|s| Some(stats::ms(s.wall))), 1),
            fmt_opt(pick(&|s| s.job.map(|j| j.transfer_ms() as f64)), 0),
            fmt_opt(pick(&|s| s.job.map(|j| j.data_bytes as f64 / 1048576.0)), 1),
            fmt_opt(rate(v), 0),
            fmt_opt(pick(&|s| s.job.map(|j| j.downtime_ms as f64)), 0),
            fmt_opt(
                pick(&|s| {
                    let (cpu, job) = (s.daemon_cpu?, s.job?);
                    (job.data_bytes > 0)
                        .then(|| stats::ms(cpu) * (1u64 << 30) as f64 / job.data_bytes as f64)
                }),
                0,
            ),
        ]);
    }
    out.push_str(&t.render());
    let direct = rate(&d.samples[0]);
    out.push('\n');
    for (mode, v) in d.modes.iter().zip(&d.samples).skip(1) {
        out.push_str(&format!(
            "{}/direct throughput: {}. ",
            mode.describe(),
            fmt_ratio(stats::ratio(rate(v), direct))
        ));
    }
    out.push_str(
        "The daemons' CPU is what both `migrated` processes used during the migration \
         (threads' schedstat), per GiB QEMU reported sent (a tunnel's relays show there).\n",
    );
    if let Some(e) = &d.error {
        out.push_str(&format!("\nStopped at a failure: {e}\n"));
    }
}

fn render_inprocess(
    out: &mut String,
    modes: &[Mode],
    samples: &[Vec<Sample>],
    errors: &[Option<String>],
    start_err: Option<&str>,
    args: &SideArgs,
    floors: &[FloorSample],
) {
    out.push_str("### migrated, in-process client (ms)\n\n");
    if let Some(e) = start_err {
        out.push_str(&format!("Guest set-up on migrated failed: {e}\n\n"));
    }
    let mut t = Table::new(&[
        "mode",
        "ok/n",
        "median",
        "min",
        "QEMU/job downtime ms",
        "control overhead ms",
    ]);
    for (mi, mode) in modes.iter().enumerate() {
        let v = &samples[mi];
        let walls: Vec<f64> = v.iter().map(|s| stats::ms(s.wall)).collect();
        let down: Vec<f64> = v
            .iter()
            .filter_map(|s| s.job.map(|j| j.downtime_ms as f64))
            .collect();
        let over: Vec<f64> = v.iter().filter_map(Sample::overhead_ms).collect();
        t.row(vec![
            mode.label().to_owned(),
            format!("{}/{}", v.len(), args.reps),
            fmt_opt(stats::median(&walls), 1),
            fmt_opt(stats::min(&walls), 1),
            fmt_opt(stats::median(&down), 0),
            fmt_opt(stats::median(&over), 1),
        ]);
    }
    out.push_str(&t.render());
    for (mi, mode) in modes.iter().enumerate() {
        if let Some(e) = &errors[mi] {
            out.push_str(&format!("\n{}: first failure: {e}\n", mode.label()));
        }
    }
    render_steps(out, modes, samples, floors);
}

/// Client-side step timeline (medians) of the client-driven modes, next to
/// the floor cycle's own steps.
fn render_steps(out: &mut String, modes: &[Mode], samples: &[Vec<Sample>], floors: &[FloorSample]) {
    const STEPS: [&str; 5] = ["begin", "prepare", "perform", "finish", "confirm"];
    out.push_str(
        "\nWhere the time goes: medians of each step's call as the client saw it (ms); the \
         rest of the wall time is the client's lookups around the steps.\n\n",
    );
    let mut header = vec!["mode"];
    header.extend(STEPS);
    header.extend(["sum of steps", "wall"]);
    let mut t = Table::new(&header);
    for (mi, mode) in modes.iter().enumerate() {
        let v = &samples[mi];
        if !matches!(mode, Mode::Regular | Mode::Offline) || v.is_empty() {
            continue;
        }
        let step = |name: &str| -> Vec<f64> {
            v.iter()
                .filter_map(|s| {
                    s.timeline
                        .iter()
                        .find(|st| st.step == name)
                        .map(|st| stats::ms(st.duration))
                })
                .collect()
        };
        let sums: Vec<f64> = v
            .iter()
            .map(|s| s.timeline.iter().map(|st| stats::ms(st.duration)).sum())
            .collect();
        let walls: Vec<f64> = v.iter().map(|s| stats::ms(s.wall)).collect();
        let mut row = vec![mode.label().to_owned()];
        row.extend(STEPS.iter().map(|st| fmt_opt(stats::median(&step(st)), 1)));
        row.push(fmt_opt(stats::median(&sums), 1));
        row.push(fmt_opt(stats::median(&walls), 1));
        t.row(row);
    }
    out.push_str(&t.render());
    if !floors.is_empty() {
        let med = |f: &dyn Fn(&FloorSample) -> Duration| {
            let v: Vec<f64> = floors.iter().map(|s| stats::ms(f(s))).collect();
            fmt_opt(stats::median(&v), 1)
        };
        out.push_str(&format!(
            "\nFloor cycle, same run (medians, ms): destination start + QMP handshake + \
             migrate-incoming {}, migrate {}, destination running {}, source quit → exited {}, \
             whole cycle {}.\n",
            med(&|s| s.start),
            med(&|s| s.migrate),
            med(&|s| s.resume),
            med(&|s| s.stop),
            med(&|s| s.cycle),
        ));
    }
    let regular = modes.iter().position(|m| *m == Mode::Regular);
    let reg_med = regular.and_then(|i| {
        let w: Vec<f64> = samples[i].iter().map(|s| stats::ms(s.wall)).collect();
        stats::median(&w)
    });
    let cyc: Vec<f64> = floors.iter().map(|f| stats::ms(f.cycle)).collect();
    if let (Some(r), Some(c)) = (reg_med, stats::median(&cyc)) {
        out.push_str(&format!(
            "\nRegular live migration minus the minimal cycle (medians): {:+.1} ms (target ≤ +40).\n",
            r - c
        ));
    }
}

async fn render_python(
    out: &mut String,
    py: &Path,
    targets: &[(Side, String, String)],
    args: &SideArgs,
) {
    out.push_str("\n### python3-libvirt: lookupByName + XMLDesc pairs/s\n\n");
    if !Path::new(PYTHON).exists() {
        out.push_str("not measured: /usr/bin/python3 missing\n");
        return;
    }
    let mut res: Vec<[Vec<f64>; 2]> = targets.iter().map(|_| [Vec::new(), Vec::new()]).collect();
    let mut p99: Vec<[Vec<f64>; 2]> = targets.iter().map(|_| [Vec::new(), Vec::new()]).collect();
    let mut first_err = None;
    for round in 0..2 {
        for (ci, threads) in [1usize, 8].into_iter().enumerate() {
            for k in 0..targets.len() {
                let ti = (k + round) % targets.len();
                let (_, uri, guest) = &targets[ti];
                let r = tokio::task::block_in_place(|| {
                    Command::new(PYTHON)
                        .arg(py)
                        .arg(uri)
                        .arg(guest)
                        .arg(args.rpc_secs.to_string())
                        .arg(threads.to_string())
                        .output()
                });
                match r {
                    Ok(o) if o.status.success() => {
                        let v: serde_json::Value =
                            serde_json::from_slice(&o.stdout).unwrap_or_default();
                        if let Some(x) = v.get("pairs_per_s").and_then(serde_json::Value::as_f64) {
                            res[ti][ci].push(x);
                        }
                        if let Some(x) = v.get("pair_ms_p99").and_then(serde_json::Value::as_f64) {
                            p99[ti][ci].push(x);
                        }
                    }
                    Ok(o) => {
                        first_err.get_or_insert(String::from_utf8_lossy(&o.stderr).into_owned());
                    }
                    Err(e) => {
                        first_err.get_or_insert(e.to_string());
                    }
                }
            }
        }
    }
    let mut t = Table::new(&[
        "connections",
        "implementation",
        "pairs/s",
        "p99 ms per pair",
        "ratio to libvirtd",
    ]);
    let base = targets.iter().position(|t| t.0 == Side::Libvirt);
    for (ci, threads) in [1usize, 8].into_iter().enumerate() {
        for (ti, (side, _, _)) in targets.iter().enumerate() {
            let m = stats::median(&res[ti][ci]);
            let ratio = match (side, base) {
                (Side::Migrated, Some(b)) => fmt_ratio(stats::ratio(m, stats::median(&res[b][ci]))),
                _ => String::new(),
            };
            t.row(vec![
                threads.to_string(),
                side.name().to_owned(),
                fmt_opt(m, 0),
                fmt_opt(stats::median(&p99[ti][ci]), 3),
                ratio,
            ]);
        }
    }
    out.push_str(&t.render());
    out.push_str(&format!(
        "\n{} s per run, 2 rounds interleaved, medians; client and daemon share the 2 cores.\n",
        args.rpc_secs
    ));
    if let Some(e) = first_err {
        out.push_str(&format!("\nFirst failure: {}\n", e.trim()));
    }
}

fn render_floors(out: &mut String, floors: &[FloorSample], error: Option<&str>) {
    out.push_str("\n### Floors: two plain QEMU processes over QMP (ms)\n\n");
    let mig: Vec<f64> = floors.iter().map(|f| stats::ms(f.migrate)).collect();
    let cyc: Vec<f64> = floors.iter().map(|f| stats::ms(f.cycle)).collect();
    let tot: Vec<f64> = floors.iter().map(|f| f.qemu_total_ms as f64).collect();
    let down: Vec<f64> = floors.iter().map(|f| f.qemu_downtime_ms as f64).collect();
    let mut t = Table::new(&[
        "floor",
        "n",
        "median",
        "min",
        "QEMU total-time median",
        "QEMU downtime median",
    ]);
    let part = |f: fn(&FloorSample) -> Duration| -> Vec<f64> {
        floors.iter().map(|s| stats::ms(f(s))).collect()
    };
    let (start, resume, stop) = (part(|s| s.start), part(|s| s.resume), part(|s| s.stop));
    for (name, v) in [
        ("QMP migrate (migrate → completed)", &mig),
        (
            "minimal cycle (spawn dst, migrate, dst running, src exited)",
            &cyc,
        ),
        (
            "… cycle step: spawn dst, QMP handshake, migrate-incoming, src parameters",
            &start,
        ),
        ("… cycle step: completed → dst running", &resume),
        ("… cycle step: src quit → exited", &stop),
    ] {
        t.row(vec![
            name.to_owned(),
            v.len().to_string(),
            fmt_opt(stats::median(v), 1),
            fmt_opt(stats::min(v), 1),
            fmt_opt(stats::median(&tot), 0),
            fmt_opt(stats::median(&down), 0),
        ]);
    }
    out.push_str(&t.render());
    if let Some(e) = error {
        out.push_str(&format!("\nFloor failure: {e}\n"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(side: Side, migrate_uris: [Option<String>; 2]) -> Hosts {
        Hosts {
            side,
            uris: [
                "qemu+tcp://127.0.0.1:1/system".into(),
                "qemu+tcp://127.0.0.1:2/system".into(),
            ],
            migrate_uris,
            at: 0,
        }
    }

    #[test]
    fn libvirt_gets_a_migration_uri_for_direct_modes_only() {
        let h = hosts(
            Side::Libvirt,
            [
                Some("tcp://127.0.0.2:9".into()),
                Some("tcp://127.0.0.3:9".into()),
            ],
        );
        assert_eq!(
            h.migrate_args(Mode::P2p, "g"),
            [
                "migrate",
                "--live",
                "--p2p",
                "g",
                "qemu+tcp://127.0.0.1:2/system",
                "--migrateuri",
                "tcp://127.0.0.3:9"
            ]
        );
        assert_eq!(
            h.migrate_args(Mode::Tunnelled, "g"),
            [
                "migrate",
                "--live",
                "--p2p",
                "--tunnelled",
                "g",
                "qemu+tcp://127.0.0.1:2/system"
            ]
        );
    }

    #[test]
    fn migrated_picks_its_own_data_address_and_direction_follows_the_guest() {
        let mut h = hosts(Side::Migrated, [None, None]);
        h.at = 1;
        assert_eq!(
            h.migrate_args(Mode::Regular, "g"),
            ["migrate", "--live", "g", "qemu+tcp://127.0.0.1:1/system"]
        );
        assert_eq!(
            h.migrate_args(Mode::Offline, "g"),
            [
                "migrate",
                "--offline",
                "--persistent",
                "--undefinesource",
                "g",
                "qemu+tcp://127.0.0.1:1/system"
            ]
        );
    }

    #[test]
    fn guest_type_follows_the_accelerator() {
        assert!(guest_xml("g", "u", 256, "kvm").contains("<domain type='kvm'>"));
        assert!(guest_xml("g", "u", 256, "tcg").contains("<domain type='qemu'>"));
        assert!(guest_xml("g", "u", 256, "kvm").contains("<memory unit='MiB'>256</memory>"));
    }

    #[test]
    fn timings_count_only_counted_runs_and_keep_the_first_error() {
        let mut t = Timings::default();
        t.record(Ok(5.0), false);
        t.record(Ok(7.0), true);
        t.record(Err(anyhow::anyhow!("first")), true);
        t.record(Err(anyhow::anyhow!("second")), true);
        assert_eq!(t.ms, vec![7.0]);
        assert_eq!(t.tries, 3);
        assert_eq!(t.error.as_deref(), Some("first"));
    }
}
