//! The optional Prometheus endpoint (`metrics_listen = "127.0.0.1:9464"`,
//! off by default): counters of RPC calls by procedure, errors by libvirt
//! code and migrations by role and outcome, and histograms of call latency
//! and migration duration, in the Prometheus text format (0.0.4).
//!
//! Calls are counted in one place, the rpc `Dispatcher` impl
//! ([`crate::handler`]); migrations through a
//! [`JobObserver`] on each driver's job registry, which every path that
//! ends a job goes through. The HTTP side is a deliberately tiny HTTP/1.1
//! responder: one request per connection, `GET /metrics` only, no
//! keep-alive, bounded request size and time, because a scraper is all it
//! serves.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use migrated_core::job::{JobEnd, JobObserver};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// Upper bounds (seconds) of the call-latency buckets: 100 µs to 10 s.
const CALL_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
/// Upper bounds (seconds) of the migration-duration buckets: 50 ms to 10 min.
const MIGRATION_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];
/// A request head larger than this is refused (scrapers send ~200 bytes).
const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// A client that has not sent its request head by then is dropped.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The content type Prometheus expects for the text format.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A cumulative-on-render histogram.
#[derive(Debug, Clone)]
struct Histogram {
    bounds: &'static [f64],
    /// Observations per bucket (not cumulative); the last slot is +Inf.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, seconds: f64) {
        let slot = self
            .bounds
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(self.bounds.len());
        if let Some(c) = self.counts.get_mut(slot) {
            *c += 1;
        }
        self.sum += seconds;
        self.count += 1;
    }

    /// The `_bucket`, `_sum` and `_count` lines; `labels` is either empty
    /// or `key="value",` pairs ending in a comma.
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            cumulative += count;
            let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{bound}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {}", self.count);
        let plain = labels.trim_end_matches(',');
        let braces = if plain.is_empty() {
            String::new()
        } else {
            format!("{{{plain}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

#[derive(Debug)]
struct Inner {
    calls: BTreeMap<&'static str, u64>,
    errors: BTreeMap<i32, u64>,
    call_seconds: Histogram,
    migrations: BTreeMap<(&'static str, &'static str), u64>,
    migration_seconds: BTreeMap<&'static str, Histogram>,
}

/// The daemon's counters and histograms.
#[derive(Debug)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Everything at zero.
    pub fn new() -> Self {
        Metrics {
            inner: Mutex::new(Inner {
                calls: BTreeMap::new(),
                errors: BTreeMap::new(),
                call_seconds: Histogram::new(CALL_BUCKETS),
                migrations: BTreeMap::new(),
                migration_seconds: BTreeMap::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Plain counters: a panic elsewhere cannot leave them half-updated.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one finished call of `procedure` (e.g. `REMOTE_PROC_CONNECT_OPEN`)
    /// that took `elapsed`; `error` is the libvirt code of a failed call.
    pub fn record_call(&self, procedure: &'static str, elapsed: Duration, error: Option<i32>) {
        let mut inner = self.lock();
        *inner.calls.entry(procedure).or_default() += 1;
        if let Some(code) = error {
            *inner.errors.entry(code).or_default() += 1;
        }
        inner.call_seconds.observe(elapsed.as_secs_f64());
    }

    /// Counts one ended migration job.
    pub fn record_migration(&self, role: &'static str, outcome: &'static str, elapsed: Duration) {
        let mut inner = self.lock();
        *inner.migrations.entry((role, outcome)).or_default() += 1;
        inner
            .migration_seconds
            .entry(role)
            .or_insert_with(|| Histogram::new(MIGRATION_BUCKETS))
            .observe(elapsed.as_secs_f64());
    }

    /// The Prometheus text exposition of everything recorded so far.
    pub fn render(&self) -> String {
        let inner = self.lock();
        let mut out = String::with_capacity(4096);
        out.push_str(
            "# HELP migrated_rpc_calls_total Remote-program calls answered, by procedure.\n",
        );
        out.push_str("# TYPE migrated_rpc_calls_total counter\n");
        for (procedure, n) in &inner.calls {
            let _ = writeln!(
                out,
                "migrated_rpc_calls_total{{procedure=\"{procedure}\"}} {n}"
            );
        }
        out.push_str(
            "# HELP migrated_rpc_errors_total Calls answered with an error, by libvirt error code.\n",
        );
        out.push_str("# TYPE migrated_rpc_errors_total counter\n");
        for (code, n) in &inner.errors {
            let _ = writeln!(out, "migrated_rpc_errors_total{{code=\"{code}\"}} {n}");
        }
        out.push_str(
            "# HELP migrated_rpc_call_duration_seconds Time from a call's start to its reply.\n",
        );
        out.push_str("# TYPE migrated_rpc_call_duration_seconds histogram\n");
        inner
            .call_seconds
            .render(&mut out, "migrated_rpc_call_duration_seconds", "");
        out.push_str(
            "# HELP migrated_migrations_total Migration jobs ended, by role and outcome.\n",
        );
        out.push_str("# TYPE migrated_migrations_total counter\n");
        for ((role, outcome), n) in &inner.migrations {
            let _ = writeln!(
                out,
                "migrated_migrations_total{{role=\"{role}\",outcome=\"{outcome}\"}} {n}"
            );
        }
        out.push_str(
            "# HELP migrated_migration_duration_seconds Wall time of ended migration jobs, by role.\n",
        );
        out.push_str("# TYPE migrated_migration_duration_seconds histogram\n");
        for (role, histogram) in &inner.migration_seconds {
            histogram.render(
                &mut out,
                "migrated_migration_duration_seconds",
                &format!("role=\"{role}\","),
            );
        }
        out
    }
}

impl JobObserver for Metrics {
    fn job_ended(&self, end: &JobEnd) {
        let role = match end.role {
            migrated_core::migration::Role::Source => "source",
            migrated_core::migration::Role::Destination => "destination",
        };
        self.record_migration(role, end.outcome(), Duration::from_millis(end.total_ms()));
    }
}

/// Binds the endpoint's listener (IP literal and port from `metrics_listen`).
///
/// # Errors
/// The bind error (address in use, not local, ...).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves `GET /metrics` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let metrics = metrics.clone();
                tokio::spawn(async move {
                    if let Err(err) = answer(stream, &metrics).await {
                        tracing::debug!(%peer, error = %err, "metrics request failed");
                    }
                });
            }
            Err(err) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %err, "metrics endpoint cannot accept");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Reads one request head and writes one response.
async fn answer(mut stream: TcpStream, metrics: &Metrics) -> std::io::Result<()> {
    let head = match tokio::time::timeout(REQUEST_TIMEOUT, read_head(&mut stream)).await {
        Ok(head) => head?,
        Err(_) => return Ok(()),
    };
    let (status, body) = match head.as_deref().map(request_target) {
        Some(Some(("GET" | "HEAD", "/metrics"))) => ("200 OK", metrics.render()),
        Some(Some(("GET" | "HEAD", _))) => ("404 Not Found", "not found; try /metrics\n".into()),
        Some(Some(_)) => ("405 Method Not Allowed", "only GET\n".into()),
        Some(None) | None => ("400 Bad Request", "bad request\n".into()),
    };
    let head_only = head
        .as_deref()
        .and_then(request_target)
        .is_some_and(|(method, _)| method == "HEAD");
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if !head_only {
        response.push_str(&body);
    }
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// The request head up to the blank line; `None` when it is too large or
/// the peer closed first.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<String>> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            buf.truncate(end);
            return Ok(String::from_utf8(buf).ok());
        }
        if buf.len() > MAX_REQUEST_BYTES {
            return Ok(None);
        }
    }
}

/// `GET /metrics HTTP/1.1` → `("GET", "/metrics")` (query string dropped).
fn request_target(head: &str) -> Option<(&str, &str)> {
    let line = head.lines().next()?;
    let mut words = line.split(' ');
    let method = words.next()?;
    let target = words.next()?;
    let version = words.next()?;
    if !version.starts_with("HTTP/1.") || words.next().is_some() {
        return None;
    }
    let path = target.split('?').next().unwrap_or(target);
    Some((method, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_histograms_render_in_the_text_format() {
        let m = Metrics::new();
        m.record_call("REMOTE_PROC_CONNECT_OPEN", Duration::from_micros(300), None);
        m.record_call(
            "REMOTE_PROC_DOMAIN_LOOKUP_BY_NAME",
            Duration::from_millis(2),
            Some(42),
        );
        m.record_call(
            "REMOTE_PROC_DOMAIN_LOOKUP_BY_NAME",
            Duration::from_secs(20),
            None,
        );
        m.record_migration("source", "completed", Duration::from_millis(400));
        let text = m.render();
        assert!(text.contains(
            "migrated_rpc_calls_total{procedure=\"REMOTE_PROC_DOMAIN_LOOKUP_BY_NAME\"} 2\n"
        ));
        assert!(text.contains("migrated_rpc_errors_total{code=\"42\"} 1\n"));
        // 300 µs falls in the 0.0005 bucket, 2 ms in 0.0025, 20 s only in +Inf.
        assert!(text.contains("migrated_rpc_call_duration_seconds_bucket{le=\"0.00025\"} 0\n"));
        assert!(text.contains("migrated_rpc_call_duration_seconds_bucket{le=\"0.0005\"} 1\n"));
        assert!(text.contains("migrated_rpc_call_duration_seconds_bucket{le=\"0.0025\"} 2\n"));
        assert!(text.contains("migrated_rpc_call_duration_seconds_bucket{le=\"10\"} 2\n"));
        assert!(text.contains("migrated_rpc_call_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("migrated_rpc_call_duration_seconds_count 3\n"));
        assert!(
            text.contains("migrated_migrations_total{role=\"source\",outcome=\"completed\"} 1\n")
        );
        assert!(text.contains(
            "migrated_migration_duration_seconds_bucket{role=\"source\",le=\"0.5\"} 1\n"
        ));
        assert!(text.contains("migrated_migration_duration_seconds_count{role=\"source\"} 1\n"));
    }

    #[test]
    fn request_lines_are_parsed_strictly() {
        assert_eq!(
            request_target("GET /metrics HTTP/1.1\r\nHost: x"),
            Some(("GET", "/metrics"))
        );
        assert_eq!(
            request_target("GET /metrics?x=1 HTTP/1.0"),
            Some(("GET", "/metrics"))
        );
        assert_eq!(request_target("GET /metrics"), None);
        assert_eq!(request_target("GET /metrics SPDY/3"), None);
        assert_eq!(request_target(""), None);
    }

    #[tokio::test]
    async fn the_endpoint_answers_metrics_and_refuses_the_rest() {
        let listener = bind("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let metrics = Arc::new(Metrics::new());
        metrics.record_call("REMOTE_PROC_CONNECT_OPEN", Duration::from_millis(1), None);
        let server = tokio::spawn(serve(listener, metrics));
        let get = |request: &'static str| async move {
            let mut stream = TcpStream::connect(addr).await.expect("connect");
            stream.write_all(request.as_bytes()).await.expect("write");
            let mut response = String::new();
            stream.read_to_string(&mut response).await.expect("read");
            response
        };
        let ok = get("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await;
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains("migrated_rpc_calls_total{procedure=\"REMOTE_PROC_CONNECT_OPEN\"} 1"));
        let missing = get("GET /other HTTP/1.1\r\n\r\n").await;
        assert!(missing.starts_with("HTTP/1.1 404 "), "{missing}");
        let post = get("POST /metrics HTTP/1.1\r\n\r\n").await;
        assert!(post.starts_with("HTTP/1.1 405 "), "{post}");
        server.abort();
    }
}
