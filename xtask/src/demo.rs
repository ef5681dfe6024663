//! `cargo xtask demo`: the newcomer's first live migration.
//!
//! Builds `migrated` and `migratectl`, starts two daemons on loopback with
//! distinct host UUIDs and host names, defines and starts a guest with a
//! memory-dirtying workload on the first, live-migrates it to the second with
//! a progress bar (`migratectl migrate --verbose`, which also prints the
//! timeline of the five steps), and shows `list` on both hosts. Everything runs
//! from a temporary directory that is removed afterwards; the daemons are
//! stopped even when a step fails.
//!
//! The daemons are real processes driven through their public interfaces
//! only (the RPC protocol via `migratectl`), exactly as an operator would.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Options of `cargo xtask demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Use the QEMU driver with a real guest (needs qemu-system-x86_64).
    #[arg(long)]
    pub qemu: bool,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 256)]
    pub memory_mib: u64,
    /// Pages per second the test guest's workload dirties (test driver only).
    #[arg(long, default_value_t = 20_000)]
    pub dirty_pages_per_sec: u64,
    /// Also run peer-to-peer and tunnelled migrations back and forth.
    #[arg(long)]
    pub all_modes: bool,
    /// Keep the temporary directory (daemon logs) instead of removing it.
    #[arg(long)]
    pub keep: bool,
}

const HOST_A_UUID: &str = "a0000000-0000-4000-8000-00000000000a";
const HOST_B_UUID: &str = "b0000000-0000-4000-8000-00000000000b";

/// A daemon started by the demo; killed on drop.
struct Daemon {
    name: &'static str,
    child: Child,
    uri: String,
    log: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SIGTERM first (graceful stop), then make sure it is gone.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Stops the demo's guest on both hosts when dropped, before the daemons
/// go: a QEMU guest outlives its daemon by design, and the demo must not
/// leave one running (the workload keeps a core busy) on any path out.
struct GuestCleanup<'a> {
    ctl: &'a Path,
    uris: [&'a str; 2],
}

impl Drop for GuestCleanup<'_> {
    fn drop(&mut self) {
        for uri in self.uris {
            // Only where it runs; the other host answers "not running".
            let _ = Command::new(self.ctl)
                .arg("-c")
                .arg(uri)
                .args(["destroy", "demo"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

/// Runs the demo.
pub fn run(root: &Path, args: &DemoArgs) -> Result<()> {
    if args.qemu && !crate::test::have("qemu-system-x86_64") {
        bail!(
            "--qemu needs qemu-system-x86_64 (apt-get install qemu-system-x86); \
             run `cargo xtask demo` without --qemu for the built-in test driver"
        );
    }
    println!("== building migrated and migratectl (release)");
    let status = Command::new("cargo")
        .current_dir(root)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "migrated-daemon",
            "-p",
            "migrated-cli",
        ])
        .status()
        .context("cannot run cargo build")?;
    if !status.success() {
        bail!("cargo build failed");
    }
    let bin = root.join("target/release");
    let work = tempfile_dir()?;
    let result = demo(&bin, &work, args);
    if args.keep || result.is_err() {
        println!("== daemon logs kept in {}", work.display());
    } else {
        let _ = std::fs::remove_dir_all(&work);
    }
    result
}

fn demo(bin: &Path, work: &Path, args: &DemoArgs) -> Result<()> {
    let driver = if args.qemu { "qemu" } else { "test" };
    let a = start_daemon(bin, work, "host-a", HOST_A_UUID, driver)?;
    let b = start_daemon(bin, work, "host-b", HOST_B_UUID, driver)?;
    println!("== {} is {}  ({})", a.name, a.uri, a.log.display());
    println!("== {} is {}  ({})", b.name, b.uri, b.log.display());

    let xml = work.join("demo-guest.xml");
    std::fs::write(&xml, guest_xml(args, bin)?)?;
    let ctl = bin.join("migratectl");
    run_ctl(&ctl, &a.uri, &["define", path_str(&xml)?])?;
    // Declared after the daemons, so dropped (guest stopped) before them.
    let cleanup = GuestCleanup {
        ctl: &ctl,
        uris: [&a.uri, &b.uri],
    };
    run_ctl(&ctl, &a.uri, &["start", "demo"])?;
    run_ctl(&ctl, &a.uri, &["list", "--all"])?;
    if args.qemu {
        wait_for_workload(&ctl, &a.uri)?;
    } else {
        println!("== letting the guest's workload dirty memory for 2 s");
        std::thread::sleep(Duration::from_secs(2));
    }

    println!(
        "\n== live migration {} -> {} (client-managed: Begin3, Prepare3, Perform3, Finish3, Confirm3)",
        a.name, b.name
    );
    run_ctl(
        &ctl,
        &a.uri,
        &["migrate", "--live", "--verbose", "demo", &b.uri],
    )?;
    if args.all_modes {
        println!("\n== back {} -> {} peer-to-peer", b.name, a.name);
        run_ctl(
            &ctl,
            &b.uri,
            &["migrate", "--live", "--p2p", "--verbose", "demo", &a.uri],
        )?;
        println!(
            "\n== again {} -> {} peer-to-peer, tunnelled",
            a.name, b.name
        );
        run_ctl(
            &ctl,
            &a.uri,
            &[
                "migrate",
                "--live",
                "--p2p",
                "--tunnelled",
                "--verbose",
                "demo",
                &b.uri,
            ],
        )?;
    }
    println!("\n== {}:", a.name);
    run_ctl(&ctl, &a.uri, &["list", "--all"])?;
    println!("== {}:", b.name);
    run_ctl(&ctl, &b.uri, &["list", "--all"])?;
    println!("== the guest runs on exactly one host; stopping it and both daemons");
    drop(cleanup);
    drop(a);
    drop(b);
    Ok(())
}

fn guest_xml(args: &DemoArgs, bin: &Path) -> Result<String> {
    if args.qemu {
        let kernel = workload_kernel(bin)?;
        let kernel_line = format!(
            "<kernel>{}</kernel><cmdline>dirty_mib={}</cmdline>",
            kernel.display(),
            (args.memory_mib / 4).max(1)
        );
        return Ok(format!(
            "<domain type='qemu'>\n  <name>demo</name>\n  <memory unit='MiB'>{}</memory>\n  \
             <vcpu>1</vcpu>\n  <os><type arch='x86_64' machine='pc'>hvm</type>{kernel_line}</os>\n  \
             <devices/>\n</domain>\n",
            args.memory_mib
        ));
    }
    Ok(format!(
        "<domain type='test'>\n  <name>demo</name>\n  <memory unit='MiB'>{}</memory>\n  \
         <vcpu>2</vcpu>\n  <os><type>hvm</type></os>\n  <metadata>\n    \
         <migrated:workload xmlns:migrated=\"https://migrated.dev/xmlns/test/1\" \
         dirty_pages_per_sec=\"{}\" working_set_mib=\"{}\"/>\n  </metadata>\n</domain>\n",
        args.memory_mib,
        args.dirty_pages_per_sec,
        (args.memory_mib / 4).max(1)
    ))
}

fn start_daemon(
    bin: &Path,
    work: &Path,
    name: &'static str,
    host_uuid: &str,
    driver: &str,
) -> Result<Daemon> {
    let dir = work.join(name);
    std::fs::create_dir_all(&dir)?;
    let port = free_port()?;
    let log = dir.join("migrated.log");
    let logfile = std::fs::File::create(&log)?;
    let child = Command::new(bin.join("migrated"))
        .arg("--listen")
        .arg(format!("tcp://127.0.0.1:{port}"))
        .arg("--listen")
        .arg(format!("unix:{}", dir.join("sock").display()))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--runtime-dir")
        .arg(dir.join("run"))
        .args([
            "--host-uuid",
            host_uuid,
            "--hostname",
            name,
            "--drivers",
            driver,
        ])
        .stdin(Stdio::null())
        .stdout(logfile.try_clone()?)
        .stderr(logfile)
        .spawn()
        .context("cannot start migrated")?;
    let uri = if driver == "qemu" {
        format!("qemu+tcp://127.0.0.1:{port}/system")
    } else {
        format!("test+tcp://127.0.0.1:{port}/default")
    };
    let mut daemon = Daemon {
        name,
        child,
        uri,
        log,
    };
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(daemon);
        }
        if let Ok(Some(status)) = daemon.child.try_wait() {
            let text = std::fs::read_to_string(&daemon.log).unwrap_or_default();
            bail!("migrated ({name}) exited at start with {status}:\n{text}");
        }
        if Instant::now() > deadline {
            bail!("migrated ({name}) did not listen on {addr} within 20 s");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// The workload kernel the release build assembled from `guest/` (the
/// QEMU driver's build script leaves it in its `OUT_DIR`); the newest one
/// when several builds are there.
fn workload_kernel(bin: &Path) -> Result<PathBuf> {
    let build = bin.join("build");
    let mut found: Option<(std::time::SystemTime, PathBuf)> = None;
    for entry in std::fs::read_dir(&build)
        .with_context(|| format!("cannot read {}", build.display()))?
        .flatten()
    {
        if !entry
            .file_name()
            .to_string_lossy()
            .starts_with("migrated-driver-qemu-")
        {
            continue;
        }
        let image = entry.path().join("out/guest.elf");
        let Ok(modified) = image.metadata().and_then(|m| m.modified()) else {
            continue;
        };
        if found.as_ref().map_or(true, |(t, _)| modified > *t) {
            found = Some((modified, image));
        }
    }
    found.map(|(_, p)| p).with_context(|| {
        format!(
            "no workload kernel (guest.elf) under {}: the release build of \
             migrated-driver-qemu assembles it with GNU as/ld (Debian package binutils)",
            build.display()
        )
    })
}

/// Waits (at most 60 s) until the QEMU guest's workload kernel has dirtied
/// its region once: before that its memory is zero pages, which QEMU sends
/// as headers only.
fn wait_for_workload(ctl: &Path, uri: &str) -> Result<()> {
    println!("== waiting for the guest's workload kernel to complete a pass over its memory");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = Command::new(ctl)
            .args(["-c", uri, "migration-status", "demo"])
            .output()
            .context("cannot run migratectl")?;
        let text = String::from_utf8_lossy(&out.stdout);
        let counter = text
            .split("workload counter ")
            .nth(1)
            .and_then(|rest| {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                digits.parse::<u64>().ok()
            })
            .unwrap_or(0);
        if counter >= 1 {
            println!("== workload running (pass {counter})");
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the guest's workload kernel did not complete a pass within 60 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn run_ctl(ctl: &Path, uri: &str, args: &[&str]) -> Result<()> {
    println!("$ migratectl -c {uri} {}", args.join(" "));
    let status = Command::new(ctl)
        .arg("-c")
        .arg(uri)
        .args(args)
        .status()
        .context("cannot run migratectl")?;
    if !status.success() {
        bail!("migratectl {} failed ({status})", args.join(" "));
    }
    Ok(())
}

fn free_port() -> Result<u16> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(l.local_addr()?.port())
}

fn tempfile_dir() -> Result<PathBuf> {
    let base = std::env::temp_dir().join(format!("migrated-demo-{}", std::process::id()));
    std::fs::create_dir_all(&base)?;
    Ok(base)
}

fn path_str(p: &Path) -> Result<&str> {
    p.to_str()
        .with_context(|| format!("path {} is not UTF-8", p.display()))
}
