//! `migrated-bench soak`: a bounded load test. Two daemons on loopback,
//! `--clients` connections doing a mix of read calls, and continuous live
//! migrations of a few guests back and forth between the two hosts for
//! `--minutes`. Reports unexpected errors (must be 0), the migration count,
//! and each daemon's RSS over time (must stay flat); exits non-zero on any
//! unexpected error.
//!
//! Lookups of a guest that is moving can legitimately miss it (NO_DOMAIN,
//! or OPERATION_INVALID for a guest caught between hosts); those are counted
//! as "raced", not as errors. Anything else is an error.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use migrated_client::{Connection, OpenFlags};
use migrated_core::flags::MigrateFlags;
use migrated_core::typed_params::TypedParams;

use crate::daemon::{self, DaemonSpec, Migrated};
use crate::guests::test_guest_xml;

/// `VIR_ERR_OPERATION_INVALID`.
const OPERATION_INVALID: i32 = 55;
/// `VIR_ERR_NO_DOMAIN`.
const NO_DOMAIN: i32 = 42;
/// A single migration taking longer than this is an error.
const MIGRATION_TIMEOUT: Duration = Duration::from_secs(120);
/// A single client call taking longer than this is an error.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Options of `migrated-bench soak`.
#[derive(Debug, Args)]
pub struct SoakArgs {
    /// How long to run, in minutes (fractions allowed).
    #[arg(long, default_value_t = 10.0)]
    pub minutes: f64,
    /// Concurrent client connections doing mixed calls (split over both daemons).
    #[arg(long, default_value_t = 200)]
    pub clients: usize,
    /// Guests migrated back and forth, one migration loop each.
    #[arg(long, default_value_t = 2)]
    pub guests: usize,
    /// Memory of each migrated guest, MiB.
    #[arg(long, default_value_t = 32)]
    pub guest_mib: u64,
    /// Pause of each client between two calls, ms (bounds the call rate on small machines).
    #[arg(long, default_value_t = 100)]
    pub think_ms: u64,
    /// Seconds between two RSS samples.
    #[arg(long, default_value_t = 10)]
    pub sample_secs: u64,
}

/// Shared counters of the run.
#[derive(Debug, Default)]
struct Counters {
    calls: AtomicU64,
    raced: AtomicU64,
    errors: AtomicU64,
    migrations: AtomicU64,
}

impl Counters {
    fn error(&self, what: &str, err: &dyn std::fmt::Display) {
        let n = self.errors.fetch_add(1, Ordering::Relaxed);
        // The first few are enough to diagnose; the count says the rest.
        if n < 10 {
            eprintln!("soak error: {what}: {err}");
        }
    }
}

/// Runs the soak.
///
/// # Errors
/// When the daemons cannot be started, or the run saw unexpected errors.
pub async fn run(common: &crate::Common, args: &SoakArgs) -> Result<()> {
    if !(args.minutes > 0.0 && args.minutes <= 24.0 * 60.0) {
        bail!("--minutes must be in (0, 1440]");
    }
    let bin = daemon::binary(&common.bin_dir()?, "migrated")?;
    let spec = |name, uuid, ports: &str| DaemonSpec {
        hostname: name,
        host_uuid: uuid,
        driver: "test",
        tls: None,
        extra_args: vec![
            "--max-clients".into(),
            "1000".into(),
            "--migration-ports".into(),
            ports.to_owned(),
        ],
    };
    let a = Migrated::spawn(
        &bin,
        &spec(
            "soak-a",
            "6d0c4a8e-0c1b-4f3e-9a51-00000000a0a1",
            "51000-51099",
        ),
    )?;
    let b = Migrated::spawn(
        &bin,
        &spec(
            "soak-b",
            "6d0c4a8e-0c1b-4f3e-9a51-00000000b0b2",
            "51100-51199",
        ),
    )?;
    let uris = [a.uri(), b.uri()];
    let pids = [a.pid(), b.pid()];
    let duration = Duration::from_secs_f64(args.minutes * 60.0);
    let deadline = Instant::now() + duration;
    let counters = Arc::new(Counters::default());
    println!(
        "== soak: {} clients, {} guests migrating back and forth, {:.1} min",
        args.clients, args.guests, args.minutes
    );

    let mut tasks = Vec::new();
    for g in 0..args.guests {
        let name = format!("soak-{g}");
        let conn = open(&uris[0]).await?;
        let mut dom = conn
            .define_xml(&test_guest_xml(&name, args.guest_mib, None), 0)
            .await
            .context("cannot define a soak guest")?;
        dom.create().await.context("cannot start a soak guest")?;
        tasks.push(tokio::spawn(migrate_loop(
            name,
            uris.clone(),
            deadline,
            counters.clone(),
        )));
    }
    for c in 0..args.clients {
        let uri = uris[c % 2].clone();
        let think = Duration::from_millis(args.think_ms);
        tasks.push(tokio::spawn(client_loop(
            c,
            uri,
            deadline,
            think,
            counters.clone(),
        )));
    }

    let started = Instant::now();
    let mut samples: Vec<(u64, [u64; 2])> = Vec::new();
    let step = Duration::from_secs(args.sample_secs.max(1));
    loop {
        samples.push((started.elapsed().as_secs(), pids.map(rss_kib)));
        if Instant::now() >= deadline {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        tokio::time::sleep(step.min(left)).await;
    }
    for task in tasks {
        // Every loop ends at the deadline; a panicked task is an error.
        match tokio::time::timeout(MIGRATION_TIMEOUT, task).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => counters.error("a task failed", &e),
            Err(e) => counters.error("a task did not stop", &e),
        }
    }
    samples.push((started.elapsed().as_secs(), pids.map(rss_kib)));
    report(args, &counters, &samples, [&a, &b]);
    let errors = counters.errors.load(Ordering::Relaxed);
    if errors > 0 {
        bail!("soak saw {errors} unexpected errors");
    }
    Ok(())
}

async fn open(uri: &str) -> Result<Connection> {
    Connection::open(uri, OpenFlags::default())
        .await
        .with_context(|| format!("cannot connect to {uri}"))
}

/// Moves `name` A → B → A ... until the deadline; each migration carries the
/// persistent definition and leaves none behind.
async fn migrate_loop(name: String, uris: [String; 2], deadline: Instant, c: Arc<Counters>) {
    let conns = match (open(&uris[0]).await, open(&uris[1]).await) {
        (Ok(a), Ok(b)) => [a, b],
        (Err(e), _) | (_, Err(e)) => return c.error("migration connection", &e),
    };
    let flags = MigrateFlags::LIVE.bits()
        | MigrateFlags::PERSIST_DEST.bits()
        | MigrateFlags::UNDEFINE_SOURCE.bits();
    let mut from = 0;
    while Instant::now() < deadline {
        let dom = match conns[from].lookup_domain_by_name(&name).await {
            Ok(dom) => dom,
            Err(e) => return c.error(&format!("lookup of {name} on host {from}"), &e),
        };
        let moved = tokio::time::timeout(
            MIGRATION_TIMEOUT,
            dom.migrate(&conns[1 - from], &TypedParams::new(), flags),
        )
        .await;
        match moved {
            Ok(Ok(_)) => {
                c.migrations.fetch_add(1, Ordering::Relaxed);
                from = 1 - from;
            }
            Ok(Err(e)) => return c.error(&format!("migration of {name}"), &e),
            Err(e) => return c.error(&format!("migration of {name}"), &e),
        }
    }
}

/// One client: a fixed rotation of read calls until the deadline.
async fn client_loop(id: usize, uri: String, deadline: Instant, think: Duration, c: Arc<Counters>) {
    let conn = match open(&uri).await {
        Ok(conn) => conn,
        Err(e) => return c.error(&format!("client {id} connect"), &e),
    };
    let mut round = id;
    while Instant::now() < deadline {
        round += 1;
        let outcome = tokio::time::timeout(CALL_TIMEOUT, one_call(&conn, round)).await;
        match outcome {
            Ok(Ok(())) => {
                c.calls.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Err(e)) if is_race(&e) => {
                c.raced.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Err(e)) => c.error(&format!("client {id} call"), &e),
            Err(e) => c.error(&format!("client {id} call"), &e),
        }
        tokio::time::sleep(think).await;
    }
    let _ = conn.close().await;
}

fn is_race(e: &migrated_client::Error) -> bool {
    matches!(e.remote_code(), Some(NO_DOMAIN | OPERATION_INVALID))
}

async fn one_call(conn: &Connection, round: usize) -> migrated_client::Result<()> {
    match round % 5 {
        0 => conn.get_hostname().await.map(drop),
        1 => conn.get_capabilities().await.map(drop),
        2 => conn.node_info().await.map(drop),
        3 => {
            // A guest that is listed may be gone by the next call (migrated).
            for dom in conn.list_all_domains(0).await? {
                dom.info().await?;
            }
            Ok(())
        }
        _ => {
            for dom in conn.list_all_domains(0).await?.into_iter().take(1) {
                dom.xml_desc(0).await?;
            }
            Ok(())
        }
    }
}

/// VmRSS of a process in KiB (0 when it cannot be read).
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn report(args: &SoakArgs, c: &Counters, samples: &[(u64, [u64; 2])], daemons: [&Migrated; 2]) {
    println!();
    println!("| t (s) | RSS A (MiB) | RSS B (MiB) |");
    println!("|---:|---:|---:|");
    for (t, [a, b]) in samples {
        println!(
            "| {t} | {:.1} | {:.1} |",
            *a as f64 / 1024.0,
            *b as f64 / 1024.0
        );
    }
    let calls = c.calls.load(Ordering::Relaxed);
    let minutes = args.minutes;
    println!();
    println!("clients:            {}", args.clients);
    println!("duration:           {minutes:.1} min");
    println!(
        "client calls ok:    {calls} ({:.0}/s)",
        calls as f64 / (minutes * 60.0)
    );
    println!(
        "raced lookups:      {} (guest moved between list and call)",
        c.raced.load(Ordering::Relaxed)
    );
    println!(
        "migrations:         {}",
        c.migrations.load(Ordering::Relaxed)
    );
    println!("unexpected errors:  {}", c.errors.load(Ordering::Relaxed));
    // Growth after the first sample (start-up allocations are not a leak).
    if let (Some(first), Some(last)) = (samples.get(1).or(samples.first()), samples.last()) {
        for (i, name) in ["A", "B"].iter().enumerate() {
            println!(
                "RSS {name}: {:.1} MiB after warm-up → {:.1} MiB at the end",
                first.1[i] as f64 / 1024.0,
                last.1[i] as f64 / 1024.0
            );
        }
    }
    for (name, d) in ["A", "B"].iter().zip(daemons) {
        let panics = d.log_text().matches("panicked").count();
        if panics > 0 {
            println!("daemon {name} log: {panics} panics");
        }
    }
}
