//! The RPC load generator: a [`Workload`] (CONNECT_GET_HOSTNAME, or
//! DOMAIN_LOOKUP_BY_NAME + DOMAIN_GET_XML_DESC) in a bounded loop over
//! libvirt's wire protocol (through `migrated-client`, so it can point at
//! any server that speaks it: `migrated` or a stock libvirtd).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use migrated_client::{Connection, OpenFlags};
use migrated_proto::procs;

use crate::stats;

/// Uncounted calls per connection before the clock starts.
const WARMUP_CALLS: usize = 50;

/// What one counted iteration does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Workload {
    /// One CONNECT_GET_HOSTNAME.
    Hostname,
    /// DOMAIN_LOOKUP_BY_NAME of this guest, then DOMAIN_GET_XML_DESC of the
    /// domain it returned: one pair, as `virsh dumpxml NAME` does.
    LookupXml(String),
}

impl Workload {
    /// What one iteration is called in tables ("calls" or "pairs").
    pub fn unit(&self) -> &'static str {
        match self {
            Workload::Hostname => "calls",
            Workload::LookupXml(_) => "pairs",
        }
    }

    /// Runs one iteration on `conn`.
    async fn once(&self, conn: &Connection) -> migrated_client::Result<()> {
        match self {
            Workload::Hostname => {
                conn.call::<procs::ConnectGetHostname>(&()).await?;
            }
            Workload::LookupXml(name) => {
                conn.lookup_domain_by_name(name).await?.xml_desc(0).await?;
            }
        }
        Ok(())
    }
}

/// How the calls are issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One connection, one call at a time.
    Serial,
    /// One connection, this many calls in flight.
    InFlight(usize),
    /// This many connections, one call at a time on each.
    Connections(usize),
}

impl Shape {
    /// Label for tables; `unit` names one iteration (see [`Workload::unit`]).
    pub fn label(self, unit: &str) -> String {
        // "calls" -> "call", "pairs" -> "pair".
        let one = unit.strip_suffix('s').unwrap_or(unit);
        match self {
            Shape::Serial => format!("(a) 1 connection, 1 {one} at a time"),
            Shape::InFlight(n) => format!("(b) 1 connection, {n} {unit} in flight"),
            Shape::Connections(n) => format!("(c) {n} connections, 1 {one} each"),
        }
    }
}

/// Limits of one run: whichever comes first ends it.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Wall-clock length.
    pub duration: Duration,
    /// Total calls across all workers.
    pub max_calls: u64,
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// Iterations completed (calls, or pairs of calls).
    pub calls: u64,
    /// From the common start to the last worker's end.
    pub elapsed: Duration,
    /// Every call's latency, ascending.
    pub latencies: Vec<Duration>,
}

impl RunResult {
    /// Completed calls per second.
    pub fn calls_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.calls as f64 / secs
        } else {
            0.0
        }
    }

    /// Latency percentile in microseconds.
    pub fn latency_us(&self, p: f64) -> Option<f64> {
        stats::percentile(&self.latencies, p).map(stats::us)
    }
}

/// Opens `n` connections to `uri`.
async fn open_all(uri: &str, n: usize) -> Result<Vec<Connection>> {
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        let conn = Connection::open(uri, OpenFlags::default())
            .await
            .with_context(|| format!("cannot open {uri}"))?;
        conns.push(conn);
    }
    Ok(conns)
}

/// Runs `workload` in `shape` against `uri` within `limits`; one latency
/// per iteration.
///
/// # Errors
/// When a connection cannot be opened or any call fails.
pub async fn run(
    uri: &str,
    shape: Shape,
    workload: &Workload,
    limits: Limits,
) -> Result<RunResult> {
    let (conns, workers) = match shape {
        Shape::Serial => (open_all(uri, 1).await?, 1),
        Shape::InFlight(n) => (open_all(uri, 1).await?, n),
        Shape::Connections(n) => (open_all(uri, n).await?, n),
    };
    for conn in &conns {
        for _ in 0..WARMUP_CALLS {
            workload.once(conn).await?;
        }
    }
    let issued = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + limits.duration;
    let mut tasks = Vec::with_capacity(workers);
    for i in 0..workers {
        let Some(conn) = conns.get(i % conns.len()).cloned() else {
            continue;
        };
        let issued = issued.clone();
        let workload = workload.clone();
        let max = limits.max_calls;
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < deadline && issued.fetch_add(1, Ordering::Relaxed) < max {
                let t = Instant::now();
                workload.once(&conn).await?;
                lat.push(t.elapsed());
            }
            Ok::<_, migrated_client::Error>((lat, Instant::now()))
        }));
    }
    let mut latencies = Vec::new();
    let mut end = start;
    for task in tasks {
        let (lat, finished) = task.await.context("a load task panicked")??;
        latencies.extend(lat);
        end = end.max(finished);
    }
    for conn in &conns {
        // A failed polite close does not spoil the measurement.
        let _ = conn.close().await;
    }
    latencies.sort_unstable();
    Ok(RunResult {
        calls: latencies.len() as u64,
        elapsed: end - start,
        latencies,
    })
}

/// Times `n` complete opens (socket, TLS if the URI says so, libvirt's open
/// sequence) and closes of `uri`, bounded by `limit`; returns each open's
/// duration, ascending.
///
/// # Errors
/// When an open fails.
pub async fn time_opens(uri: &str, n: usize, limit: Duration) -> Result<Vec<Duration>> {
    let deadline = Instant::now() + limit;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        if Instant::now() > deadline {
            break;
        }
        let t = Instant::now();
        let conn = Connection::open(uri, OpenFlags::default())
            .await
            .with_context(|| format!("cannot open {uri}"))?;
        out.push(t.elapsed());
        let _ = conn.close().await;
    }
    out.sort_unstable();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_name_what_one_iteration_is() {
        let pairs = Workload::LookupXml("g".into()).unit();
        assert_eq!(pairs, "pairs");
        assert_eq!(
            Shape::Serial.label(pairs),
            "(a) 1 connection, 1 pair at a time"
        );
        assert_eq!(
            Shape::Connections(8).label(pairs),
            "(c) 8 connections, 1 pair each"
        );
        let calls = Workload::Hostname.unit();
        assert_eq!(
            Shape::InFlight(32).label(calls),
            "(b) 1 connection, 32 calls in flight"
        );
        assert_eq!(
            Shape::Serial.label(calls),
            "(a) 1 connection, 1 call at a time"
        );
    }
}
