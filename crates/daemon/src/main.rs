//! `migrated`: the daemon binary. Parses the configuration, sets up logging,
//! takes systemd's sockets, serves the remote program until SIGTERM/SIGINT,
//! and reloads what can be reloaded on SIGHUP.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use migrated_daemon::config::{Args, Config};
use migrated_daemon::handler::Handler;
use migrated_daemon::listen::Listeners;
use migrated_daemon::metrics::{self, Metrics};
use migrated_daemon::{drivers, reaper, systemd};
use migrated_rpc::{Server, ServerConfig};
use tokio::signal::unix::{signal, SignalKind};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::reload;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry};

/// Environment variable that overrides `--log-filter`.
const LOG_ENV: &str = "MIGRATED_LOG";
/// How long a graceful stop waits for in-flight calls before giving up.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

type FilterHandle = reload::Handle<EnvFilter, Registry>;

/// Freed heap memory glibc keeps for reuse instead of returning it (and
/// page-faulting it back in on the next allocation).
#[cfg(target_env = "gnu")]
const MALLOC_TRIM_THRESHOLD: libc::c_int = 64 << 20;
/// Allocations glibc serves from the heap rather than a fresh mmap.
#[cfg(target_env = "gnu")]
const MALLOC_MMAP_THRESHOLD: libc::c_int = 4 << 20;

/// Keeps glibc from handing freed memory back to the kernel after every
/// burst. A tunnelled migration frees ~2,400 256 KiB packet buffers per
/// second; with glibc's defaults most of them came back as freshly mapped
/// pages (100,000+ page faults/s in the daemons, about a third of their CPU
/// per GiB tunnelled: docs/benchmarks.md §3). The cost is that up to
/// [`MALLOC_TRIM_THRESHOLD`] of freed memory per arena stays resident.
fn keep_freed_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only changes allocator parameters; it is called before
    // any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, MALLOC_TRIM_THRESHOLD);
    }
}

fn main() -> Result<()> {
    keep_freed_memory();
    // Checked before clap so the generator stays out of the grammar, and
    // therefore out of the man page and completions it writes.
    if let Some(dir) = migrated_daemon::docs::requested(std::env::args_os()) {
        for path in migrated_daemon::docs::generate(&dir)
            .with_context(|| format!("cannot write the docs under {}", dir.display()))?
        {
            println!("{}", path.display());
        }
        return Ok(());
    }
    let args = Args::parse();
    let config = Config::load(&args).context("cannot load the configuration")?;
    let filter = init_tracing(&config.log_filter)?;
    // Before any thread exists: this edits the environment (LISTEN_*).
    let activated = systemd::take_activated_sockets()?;
    if let Err(err) = reaper::become_subreaper() {
        tracing::warn!(error = %err, "cannot become a child subreaper; daemonized QEMU processes will be reparented to init");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("migrated")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run(args, config, activated, filter))
}

/// The log filter in force: MIGRATED_LOG if set, else the configured one.
fn effective_filter(configured: &str) -> Result<EnvFilter> {
    let text = std::env::var(LOG_ENV).unwrap_or_else(|_| configured.to_owned());
    EnvFilter::try_new(&text).with_context(|| format!("invalid log filter {text:?}"))
}

/// Plain-text logs on stderr. Under journald (JOURNAL_STREAM set) the
/// timestamp and colours are left out: the journal adds its own.
fn init_tracing(configured: &str) -> Result<FilterHandle> {
    let (filter, handle) = reload::Layer::new(effective_filter(configured)?);
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(true);
    let registry = tracing_subscriber::registry().with(filter);
    if journald {
        registry.with(fmt.without_time()).try_init()
    } else {
        registry.with(fmt).try_init()
    }
    .context("cannot install the log subscriber")?;
    Ok(handle)
}

fn server_config(config: &Config) -> ServerConfig {
    ServerConfig {
        max_clients: config.max_clients,
        max_anonymous_clients: config.max_anonymous_clients,
        max_calls_per_client: config.max_client_requests,
        max_queued_calls_per_client: config.max_client_queued_requests,
        // 0 would refuse every TLS client; the shortest useful bound is 1 s.
        handshake_timeout: Duration::from_secs(u64::from(config.handshake_timeout.max(1))),
        max_outbound_bytes: config.max_client_outbound_bytes,
        keepalive_interval: Duration::from_secs(u64::from(config.keepalive_interval)),
        keepalive_count: config.keepalive_count,
    }
}

async fn run(
    args: Args,
    mut config: Config,
    activated: Vec<systemd::ActivatedSocket>,
    filter: FilterHandle,
) -> Result<()> {
    for dir in [&config.state_dir, &config.runtime_dir] {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create directory {}", dir.display()))?;
    }
    // Before READY=1: a signal that arrives earlier must not kill the daemon
    // (SIGHUP's default action is to terminate).
    let mut sigterm = signal(SignalKind::terminate()).context("cannot catch SIGTERM")?;
    let mut sigint = signal(SignalKind::interrupt()).context("cannot catch SIGINT")?;
    let mut sighup = signal(SignalKind::hangup()).context("cannot catch SIGHUP")?;
    let registry = drivers::DriverRegistry::from_config(&config)
        .await
        .context("cannot start the hypervisor drivers")?;
    let mut handler = Handler::new(&config, registry);
    let metrics_endpoint = match config.metrics_listen {
        Some(addr) => {
            let metrics = Arc::new(Metrics::new());
            let listener = metrics::bind(addr)
                .await
                .with_context(|| format!("cannot listen for metrics on {addr}"))?;
            for manager in handler.drivers().managers() {
                manager.registry().add_observer(metrics.clone());
            }
            tracing::info!(address = %addr, "metrics endpoint at http://{addr}/metrics");
            handler = handler.with_metrics(metrics.clone());
            Some(tokio::spawn(metrics::serve(listener, metrics)))
        }
        None => None,
    };
    let handler = Arc::new(handler);
    let server = Server::new(server_config(&config), handler);
    let mut listeners = Listeners::start(&config, activated, &server)?;
    let names = listeners.names().join(", ");
    tracing::info!(
        host_uuid = %config.host_uuid,
        hostname = %config.hostname,
        listeners = %names,
        "migrated ready"
    );
    systemd::notify_ready(&format!("serving on {names}"));
    let reaper = tokio::spawn(reaper::run());

    loop {
        tokio::select! {
            _ = sigterm.recv() => { tracing::info!("SIGTERM: stopping"); break; }
            _ = sigint.recv() => { tracing::info!("SIGINT: stopping"); break; }
            _ = sighup.recv() => {
                systemd::notify_reloading();
                reload(&args, &mut config, &filter, &mut listeners, &server);
                systemd::notify_status(&format!("serving on {}", listeners.names().join(", ")));
                systemd::notify_ready(&format!("serving on {}", listeners.names().join(", ")));
            }
        }
    }

    systemd::notify_stopping();
    server.shutdown();
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        listeners.drained().await;
        while server.connection_count() > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = server.connection_count(),
            "connections still open after {DRAIN_TIMEOUT:?}; exiting anyway"
        );
    }
    reaper.abort();
    if let Some(endpoint) = metrics_endpoint {
        endpoint.abort();
    }
    tracing::info!("stopped");
    Ok(())
}

/// SIGHUP: re-reads the config file and applies the log filter and the TLS
/// files/allowed-DN list. Everything else needs a restart; a broken file
/// keeps the running settings.
fn reload<D: migrated_rpc::Dispatcher>(
    args: &Args,
    config: &mut Config,
    filter: &FilterHandle,
    listeners: &mut Listeners,
    server: &Server<D>,
) {
    let fresh = match config.reload(args) {
        Ok(fresh) => fresh,
        Err(err) => {
            tracing::error!(
                error = format!("{:#}", anyhow::Error::from(err)),
                "SIGHUP: config not reloaded"
            );
            return;
        }
    };
    match effective_filter(&fresh.log_filter) {
        Ok(new_filter) => match filter.reload(new_filter) {
            Ok(()) => tracing::info!(log_filter = %fresh.log_filter, "SIGHUP: log filter reloaded"),
            Err(err) => tracing::error!(error = %err, "SIGHUP: log filter not reloaded"),
        },
        Err(err) => tracing::error!(error = %err, "SIGHUP: log filter not reloaded"),
    }
    match listeners.reload_tls(&fresh.tls, server) {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            listeners = n,
            allowed_dn = ?fresh.tls.allowed_dn,
            "SIGHUP: TLS certificates and allowed DN list reloaded"
        ),
        Err(err) => {
            tracing::error!(
                error = format!("{:#}", anyhow::Error::from(err)),
                "SIGHUP: TLS settings not reloaded"
            )
        }
    }
    let unchanged = Config {
        log_filter: config.log_filter.clone(),
        tls: config.tls.clone(),
        ..fresh.clone()
    };
    if unchanged != *config {
        tracing::warn!(
            "SIGHUP: other settings changed in the config file; they take effect after a restart"
        );
    }
    config.log_filter = fresh.log_filter;
    config.tls = fresh.tls;
}
