//! Job and migration-tuning commands: `domjobinfo`, `domjobabort`,
//! `migrate-setspeed`, `migrate-getspeed`, `migrate-setmaxdowntime`,
//! `migrate-getmaxdowntime`, and `migration-status` (migrated's own program).

use anyhow::Context as _;
use migrated_client::{Connection, Domain};
use migrated_core::typed_params::job_stats as stat;
use serde::Serialize;

use crate::output;

/// `VIR_DOMAIN_JOB_STATS_COMPLETED`.
const STATS_COMPLETED: u32 = 1;

async fn lookup(conn: &Connection, name: &str) -> anyhow::Result<Domain> {
    conn.lookup_domain(name)
        .await
        .with_context(|| format!("failed to get domain '{name}'"))
}

/// virsh's names of `virDomainJobType`.
fn job_type_name(t: i32) -> &'static str {
    match t {
        0 => "None",
        1 => "Bounded",
        2 => "Unbounded",
        3 => "Completed",
        4 => "Failed",
        5 => "Cancelled",
        _ => "Unknown",
    }
}

/// virsh's names of `virDomainJobOperation`.
fn operation_name(op: i32) -> &'static str {
    match op {
        1 => "Start",
        2 => "Save",
        3 => "Restore",
        4 => "Incoming migration",
        5 => "Outgoing migration",
        6 => "Snapshot",
        7 => "Snapshot revert",
        8 => "Dump",
        9 => "Backup",
        10 => "Snapshot delete",
        _ => "Unknown",
    }
}

#[derive(Serialize)]
struct JobStats {
    job_type: &'static str,
    stats: serde_json::Map<String, serde_json::Value>,
}

pub async fn domjobinfo(
    conn: &Connection,
    domain: &str,
    completed: bool,
    json: bool,
) -> anyhow::Result<String> {
    let dom = lookup(conn, domain).await?;
    let flags = if completed { STATS_COMPLETED } else { 0 };
    let (job_type, params) = dom
        .job_stats(flags)
        .await
        .with_context(|| format!("failed to get job information for domain '{domain}'"))?;
    if json {
        let mut stats = serde_json::Map::new();
        for p in params.iter() {
            let v = super::typed_json(&p.value);
            stats.insert(p.field.clone(), v);
        }
        return output::json(&JobStats {
            job_type: job_type_name(job_type),
            stats,
        });
    }
    let mut pairs = vec![("Job type", job_type_name(job_type).to_owned())];
    if job_type == 0 {
        return Ok(output::key_values(&pairs, 17) + "\n");
    }
    if let Ok(Some(op)) = params.get_int(stat::OPERATION) {
        pairs.push(("Operation", operation_name(op).to_owned()));
    }
    let u = |k: &str| params.get_ullong(k).ok().flatten();
    let ms = |v: u64| format!("{v:<12} ms");
    let mib = |v: u64| format!("{:.3} MiB", v as f64 / 1_048_576.0);
    for (label, key, fmt) in [
        ("Time elapsed", stat::TIME_ELAPSED, 0),
        ("Data processed", stat::DATA_PROCESSED, 1),
        ("Data remaining", stat::DATA_REMAINING, 1),
        ("Data total", stat::DATA_TOTAL, 1),
        ("Memory bandwidth", stat::MEMORY_BPS, 2),
        ("Dirty rate", stat::MEMORY_DIRTY_RATE, 3),
        ("Iteration", stat::MEMORY_ITERATION, 4),
        ("Constant pages", stat::MEMORY_CONSTANT, 4),
        ("Normal pages", stat::MEMORY_NORMAL, 4),
        ("Page size", stat::MEMORY_PAGE_SIZE, 5),
        ("Total downtime", stat::DOWNTIME, 0),
        ("Setup time", stat::SETUP_TIME, 0),
    ] {
        if let Some(v) = u(key) {
            let text = match fmt {
                0 => ms(v),
                1 => mib(v),
                2 => format!("{}/s", mib(v)),
                3 => format!("{v:<12} pages/s"),
                5 => format!("{v:<12} bytes"),
                _ => v.to_string(),
            };
            pairs.push((label, text));
        }
    }
    if let Ok(Some(e)) = params.get_string(stat::ERRMSG) {
        pairs.push(("Error message", e.to_owned()));
    }
    Ok(output::key_values(&pairs, 17) + "\n")
}

pub async fn domjobabort(conn: &Connection, domain: &str, json: bool) -> anyhow::Result<String> {
    let dom = lookup(conn, domain).await?;
    dom.abort_job()
        .await
        .with_context(|| format!("failed to abort the job of domain '{domain}'"))?;
    if json {
        return output::json(&serde_json::json!({ "domain": dom.name(), "action": "abort-job" }));
    }
    Ok(String::new())
}

pub async fn set_speed(
    conn: &Connection,
    domain: &str,
    bandwidth: u64,
    json: bool,
) -> anyhow::Result<String> {
    let dom = lookup(conn, domain).await?;
    dom.migrate_set_max_speed(bandwidth, 0)
        .await
        .with_context(|| format!("failed to set the migration speed of domain '{domain}'"))?;
    if json {
        return output::json(
            &serde_json::json!({ "domain": dom.name(), "bandwidth_mib_s": bandwidth }),
        );
    }
    Ok(String::new())
}

pub async fn get_speed(conn: &Connection, domain: &str, json: bool) -> anyhow::Result<String> {
    let dom = lookup(conn, domain).await?;
    let bw = dom
        .migrate_get_max_speed(0)
        .await
        .with_context(|| format!("failed to get the migration speed of domain '{domain}'"))?;
    if json {
        return output::json(&serde_json::json!({ "domain": dom.name(), "bandwidth_mib_s": bw }));
    }
    Ok(format!("{bw}\n"))
}

pub async fn set_max_downtime(
    conn: &Connection,
    domain: &str,
    downtime: u64,
    json: bool,
) -> anyhow::Result<String> {
    let dom = lookup(conn, domain).await?;
    dom.migrate_set_max_downtime(downtime, 0)
        .await
        .with_context(|| format!("failed to set the maximum downtime of domain '{domain}'"))?;
    if json {
        return output::json(&serde_json::json!({ "domain": dom.name(), "downtime_ms": downtime }));
    }
    Ok(String::new())
}

pub async fn get_max_downtime(
    conn: &Connection,
    domain: &str,
    json: bool,
) -> anyhow::Result<String> {
    let dom = lookup(conn, domain).await?;
    let ms = dom
        .migrate_get_max_downtime(0)
        .await
        .with_context(|| format!("failed to get the maximum downtime of domain '{domain}'"))?;
    if json {
        return output::json(&serde_json::json!({ "domain": dom.name(), "downtime_ms": ms }));
    }
    Ok(format!("{ms}\n"))
}

#[derive(Serialize)]
struct Status {
    domain: String,
    role: &'static str,
    phase: i32,
    job_id: Option<String>,
    peer: Option<String>,
    detail: Option<String>,
}

pub async fn migration_status(
    conn: &Connection,
    domain: &str,
    json: bool,
) -> anyhow::Result<String> {
    let ret = conn
        .migration_status(domain)
        .await
        .with_context(|| format!("failed to get the migration status of domain '{domain}'"))?;
    let status = Status {
        domain: domain.to_owned(),
        role: match ret.role {
            1 => "source",
            2 => "destination",
            _ => "none",
        },
        phase: ret.phase,
        job_id: ret.job_id,
        peer: ret.peer,
        detail: ret.detail,
    };
    if json {
        return output::json(&status);
    }
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
    let pairs = vec![
        ("Domain", status.domain.clone()),
        ("Role", status.role.to_owned()),
        ("Phase", status.phase.to_string()),
        ("Job id", dash(&status.job_id)),
        ("Peer host", dash(&status.peer)),
        ("Detail", dash(&status.detail)),
    ];
    Ok(output::key_values(&pairs, 15))
}
