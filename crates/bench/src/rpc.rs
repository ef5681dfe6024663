//! `bench rpc`: RPC throughput and latency for `migrated` and a stock
//! libvirtd in the same interleaved run. `--scenario hostname` (the default)
//! calls CONNECT_GET_HOSTNAME and also times connection set-up over TCP and
//! TLS; `--scenario lookup-xml` runs DOMAIN_LOOKUP_BY_NAME +
//! DOMAIN_GET_XML_DESC pairs on the same running QEMU guest on both.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use migrated_client::{Connection, OpenFlags};
use migrated_core::error::ErrorCode;

use crate::daemon::{self, DaemonSpec, Migrated};
use crate::libvirtd::{self, Host, LibvirtHosts};
use crate::load::{self, Limits, RunResult, Shape, Workload};
use crate::pki::Pki;
use crate::report::{fmt_opt, fmt_ratio, Table};
use crate::stats;

/// What `bench rpc` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// CONNECT_GET_HOSTNAME: 1 connection serial and 32 in flight, 16
    /// connections; plus connection set-up over TCP and TLS.
    Hostname,
    /// DOMAIN_LOOKUP_BY_NAME + DOMAIN_GET_XML_DESC of the same running
    /// QEMU guest (`bench libvirt`'s 256 MiB guest) on both servers: 1 and 8
    /// connections, one pair at a time on each.
    LookupXml,
}

/// Options of `bench rpc`.
#[derive(Debug, Args)]
pub struct RpcArgs {
    /// What to measure.
    #[arg(long, value_enum, default_value_t = Scenario::Hostname)]
    pub scenario: Scenario,
    /// `lookup-xml`: the guest's name (defined and started on each server
    /// where it does not exist or is not running, `--baseline-uri` included).
    #[arg(long, default_value = crate::sidebyside::GUEST)]
    pub guest: String,
    /// `lookup-xml`: QEMU accelerator of the guest: kvm or tcg.
    #[arg(long, default_value = "kvm", value_parser = ["kvm", "tcg"])]
    pub accel: String,
    /// Seconds per measured run.
    #[arg(long, default_value_t = 2.0)]
    pub secs: f64,
    /// Rounds; each round runs every scenario once per server, alternating
    /// which server goes first.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Upper bound on calls per run (in case a server is very fast).
    #[arg(long, default_value_t = 5_000_000)]
    pub max_calls: u64,
    /// Connection opens timed per server and round for the set-up figure.
    #[arg(long, default_value_t = 30)]
    pub opens: usize,
    /// Use this already-running server as the baseline (TCP URI) instead of
    /// starting a stock libvirtd.
    #[arg(long, value_name = "URI")]
    pub baseline_uri: Option<String>,
    /// Measure only `migrated` (no baseline).
    #[arg(long)]
    pub no_libvirtd: bool,
    /// Also write the Markdown result to this file.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// One server under test.
struct Target {
    name: &'static str,
    uri: String,
    tls_uri: Option<String>,
}

/// Per server and scenario: one `RunResult` per round.
type Series = Vec<Vec<Vec<RunResult>>>;

/// Runs `bench rpc`.
pub async fn run(common: &crate::Common, args: &RpcArgs) -> Result<()> {
    if args.rounds == 0 || args.secs <= 0.0 {
        bail!("--rounds and --secs must be positive");
    }
    let lookup = args.scenario == Scenario::LookupXml;
    if lookup && !std::path::Path::new(crate::sidebyside::QEMU_BIN).exists() {
        bail!("--scenario lookup-xml needs qemu-system-x86_64 (apt-get install qemu-system-x86)");
    }
    let bin = daemon::binary(&common.bin_dir()?, "migrated")?;
    let pki = Pki::generate(&common.repo_root)?;
    let ours = Migrated::spawn(
        &bin,
        &DaemonSpec {
            hostname: "bench-a",
            host_uuid: "6d0c4a8e-0c1b-4f3e-9a51-00000000000a",
            // The lookup-xml guest is a QEMU guest on both servers.
            driver: if lookup { "qemu" } else { "test" },
            tls: Some(&pki),
            extra_args: Vec::new(),
        },
    )?;
    let mut targets = vec![Target {
        name: "migrated",
        uri: ours.uri(),
        tls_uri: ours.tls_uri(&pki),
    }];
    let _libvirt = if let Some(uri) = &args.baseline_uri {
        targets.push(Target {
            name: "baseline",
            uri: uri.clone(),
            tls_uri: None,
        });
        None
    } else if args.no_libvirtd {
        None
    } else {
        if !libvirtd::installed("/usr/sbin/libvirtd") && !libvirtd::is_root() {
            bail!("no /usr/sbin/libvirtd and not root to install it; use --no-libvirtd");
        }
        let hosts = LibvirtHosts::start(&[Host::A], Some(&pki))?;
        targets.push(Target {
            name: "libvirtd",
            uri: Host::A.uri(),
            tls_uri: Some(Host::A.tls_uri(&pki)),
        });
        Some(hosts)
    };

    let (workload, shapes) = if lookup {
        let xml = crate::sidebyside::guest_xml(
            &args.guest,
            crate::sidebyside::GUEST_UUID,
            crate::sidebyside::GUEST_MIB,
            &args.accel,
        );
        for t in &targets {
            ensure_running(&t.uri, &args.guest, &xml)
                .await
                .with_context(|| format!("cannot run the guest on {}", t.name))?;
        }
        (
            Workload::LookupXml(args.guest.clone()),
            vec![Shape::Serial, Shape::Connections(8)],
        )
    } else {
        (
            Workload::Hostname,
            vec![Shape::Serial, Shape::InFlight(32), Shape::Connections(16)],
        )
    };
    let unit = workload.unit();
    let limits = Limits {
        duration: Duration::from_secs_f64(args.secs),
        max_calls: args.max_calls,
    };
    let mut series: Series = targets
        .iter()
        .map(|_| shapes.iter().map(|_| Vec::new()).collect())
        .collect();
    let mut opens: Vec<Vec<f64>> = targets.iter().map(|_| Vec::new()).collect();
    let mut tcp_opens: Vec<Vec<f64>> = targets.iter().map(|_| Vec::new()).collect();
    for round in 0..args.rounds {
        for (si, &shape) in shapes.iter().enumerate() {
            for ti in order(targets.len(), round + si) {
                let t = &targets[ti];
                let r = load::run(&t.uri, shape, &workload, limits).await?;
                eprintln!(
                    "round {} {:<9} {:<40} {:>9.0} {unit}/s  p50 {:>7.1} us  p99 {:>7.1} us",
                    round + 1,
                    t.name,
                    shape.label(unit),
                    r.calls_per_sec(),
                    r.latency_us(50.0).unwrap_or(f64::NAN),
                    r.latency_us(99.0).unwrap_or(f64::NAN),
                );
                series[ti][si].push(r);
            }
        }
        // Connection set-up belongs to the hostname scenario only.
        let open_order = if lookup {
            Vec::new()
        } else {
            order(targets.len(), round)
        };
        for ti in open_order {
            let t = &targets[ti];
            let limit = Duration::from_secs(20);
            let tcp = load::time_opens(&t.uri, args.opens, limit).await?;
            tcp_opens[ti].extend(tcp.iter().map(|d| stats::ms(*d)));
            if let Some(uri) = &t.tls_uri {
                let tls = load::time_opens(uri, args.opens, limit).await?;
                opens[ti].extend(tls.iter().map(|d| stats::ms(*d)));
            }
        }
    }

    let md = render(&targets, &shapes, unit, &series, &opens, &tcp_opens, args);
    println!("{md}");
    if let Some(path) = &args.out {
        std::fs::write(path, &md)?;
    }
    Ok(())
}

/// Makes sure `name` is defined (from `xml`) and running on `uri`.
async fn ensure_running(uri: &str, name: &str, xml: &str) -> Result<()> {
    let conn = Connection::open(uri, OpenFlags::default())
        .await
        .with_context(|| format!("cannot open {uri}"))?;
    let mut dom = match conn.lookup_domain_by_name(name).await {
        Ok(d) => d,
        Err(e) if e.is_code(ErrorCode::NoDomain) => conn.define_xml(xml, 0).await?,
        Err(e) => return Err(e.into()),
    };
    if !dom.is_active().await? {
        dom.create().await?;
    }
    let _ = conn.close().await;
    Ok(())
}

/// Server indices for one round: rotated so each goes first equally often.
fn order(n: usize, round: usize) -> Vec<usize> {
    (0..n).map(|i| (i + round) % n.max(1)).collect()
}

fn medians(runs: &[RunResult], f: impl Fn(&RunResult) -> Option<f64>) -> Option<f64> {
    let v: Vec<f64> = runs.iter().filter_map(f).collect();
    stats::median(&v)
}

fn render(
    targets: &[Target],
    shapes: &[Shape],
    unit: &str,
    series: &Series,
    opens: &[Vec<f64>],
    tcp_opens: &[Vec<f64>],
    args: &RpcArgs,
) -> String {
    let mut out = String::new();
    out.push_str(&crate::machine::describe());
    out.push_str(&format!(
        "- {} rounds x {} s per scenario and server, interleaved; medians over rounds\n",
        args.rounds, args.secs
    ));
    match args.scenario {
        Scenario::Hostname => out.push_str("- CONNECT_GET_HOSTNAME per call\n\n"),
        Scenario::LookupXml => out.push_str(&format!(
            "- per pair: DOMAIN_LOOKUP_BY_NAME `{}` + DOMAIN_GET_XML_DESC (flags 0) of the \
             running 256 MiB QEMU guest (accel {}); latency per pair\n\n",
            args.guest, args.accel
        )),
    }
    let base = targets.get(1);
    let rate = format!("{unit}/s");
    let rate_ratio = format!("{unit}/s ratio");
    let mut t = Table::new(&[
        "scenario",
        "server",
        &rate,
        "p50 µs",
        "p99 µs",
        &rate_ratio,
        "p99 ratio",
    ]);
    for (si, shape) in shapes.iter().enumerate() {
        for (ti, target) in targets.iter().enumerate() {
            let runs = &series[ti][si];
            let cps = medians(runs, |r| Some(r.calls_per_sec()));
            let p50 = medians(runs, |r| r.latency_us(50.0));
            let p99 = medians(runs, |r| r.latency_us(99.0));
            let (cps_ratio, p99_ratio) = if ti == 0 && base.is_some() {
                let b = &series[1][si];
                (
                    stats::ratio(cps, medians(b, |r| Some(r.calls_per_sec()))),
                    stats::ratio(p99, medians(b, |r| r.latency_us(99.0))),
                )
            } else {
                (None, None)
            };
            t.row(vec![
                shape.label(unit),
                target.name.to_owned(),
                fmt_opt(cps, 0),
                fmt_opt(p50, 1),
                fmt_opt(p99, 1),
                fmt_ratio(cps_ratio),
                fmt_ratio(p99_ratio),
            ]);
        }
    }
    out.push_str(&t.render());
    out.push_str(&format!(
        "\nRatios are migrated / {} ({unit}/s: higher is better; p99: lower is better).\n\n",
        base.map_or("-", |b| b.name)
    ));
    if opens.iter().chain(tcp_opens).all(Vec::is_empty) {
        return out;
    }
    let mut t = Table::new(&[
        "connection set-up",
        "server",
        "n",
        "median ms",
        "p99 ms",
        "min ms",
    ]);
    for (ti, target) in targets.iter().enumerate() {
        for (what, v) in [("TLS", &opens[ti]), ("TCP", &tcp_opens[ti])] {
            if v.is_empty() {
                continue;
            }
            let mut sorted = v.clone();
            sorted.sort_by(f64::total_cmp);
            t.row(vec![
                format!("{what}: connect + handshake + open sequence"),
                target.name.to_owned(),
                sorted.len().to_string(),
                fmt_opt(stats::median(&sorted), 3),
                fmt_opt(stats::percentile(&sorted, 99.0), 3),
                fmt_opt(stats::min(&sorted), 3),
            ]);
        }
    }
    out.push_str(&t.render());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_server_goes_first_in_turn() {
        assert_eq!(order(2, 0), vec![0, 1]);
        assert_eq!(order(2, 1), vec![1, 0]);
        assert_eq!(order(3, 2), vec![2, 0, 1]);
        assert_eq!(order(1, 5), vec![0]);
    }
}
