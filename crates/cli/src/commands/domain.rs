//! Commands about domains. Messages follow virsh word for word.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;
use migrated_client::{Connection, Domain};
use migrated_core::flags::{create, define, list, xml};
use migrated_core::typed_params::TypedValue;
use serde::Serialize;

use crate::args::{DomstatsArgs, DumpxmlArgs, ListArgs};
use crate::names::{reason_name, state_name};
use crate::output;

/// Resolves a domain argument like virsh (id, then UUID, then name).
async fn lookup(conn: &Connection, name: &str) -> anyhow::Result<Domain> {
    conn.lookup_domain(name)
        .await
        .with_context(|| format!("failed to get domain '{name}'"))
}

/// The line virsh prints after a successful action, or its JSON equivalent.
fn done(json: bool, domain: &Domain, action: &str, message: String) -> anyhow::Result<String> {
    if json {
        return output::json(&serde_json::json!({
            "domain": domain.name(),
            "uuid": domain.uuid().to_string(),
            "action": action,
        }));
    }
    Ok(format!("{message}\n"))
}

#[derive(Serialize)]
struct ListEntry {
    id: Option<u32>,
    name: String,
    uuid: String,
    state: &'static str,
}

pub async fn list(conn: &Connection, args: &ListArgs, json: bool) -> anyhow::Result<String> {
    let flags = match (args.all, args.inactive) {
        (true, _) => 0,
        (false, true) => list::INACTIVE,
        (false, false) => list::ACTIVE,
    };
    let mut domains = conn
        .list_all_domains(flags)
        .await
        .context("failed to list domains")?;
    // virsh's order: running domains by id, then inactive ones by name
    domains.sort_by(|a, b| match (a.id(), b.id()) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.name().cmp(b.name()),
    });
    let mut entries = Vec::with_capacity(domains.len());
    for dom in &domains {
        let state = dom
            .state()
            .await
            .with_context(|| format!("failed to get state of domain '{}'", dom.name()))?
            .state;
        entries.push(ListEntry {
            id: dom.id(),
            name: dom.name().to_owned(),
            uuid: dom.uuid().to_string(),
            state: state_name(state as i32),
        });
    }
    if json {
        return output::json(&entries);
    }
    if args.name || args.uuid {
        let column = |e: &ListEntry| {
            if args.name {
                e.name.clone()
            } else {
                e.uuid.clone()
            }
        };
        return Ok(entries.iter().map(|e| column(e) + "\n").collect());
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            vec![
                e.id.map_or_else(|| "-".to_owned(), |id| id.to_string()),
                e.name.clone(),
                e.state.to_owned(),
            ]
        })
        .collect();
    Ok(output::table(&["Id", "Name", "State"], &rows))
}

pub async fn define(
    conn: &Connection,
    file: &Path,
    validate: bool,
    json: bool,
) -> anyhow::Result<String> {
    let xml = std::fs::read_to_string(file)
        .with_context(|| format!("failed to read file '{}'", file.display()))?;
    let dom = conn
        .define_xml(&xml, if validate { define::VALIDATE } else { 0 })
        .await
        .with_context(|| format!("Failed to define domain from {}", file.display()))?;
    let message = format!("Domain '{}' defined from {}", dom.name(), file.display());
    done(json, &dom, "defined", message)
}

pub async fn undefine(conn: &Connection, name: &str, json: bool) -> anyhow::Result<String> {
    let dom = lookup(conn, name).await?;
    dom.undefine(0)
        .await
        .with_context(|| format!("Failed to undefine domain '{}'", dom.name()))?;
    let message = format!("Domain '{}' has been undefined", dom.name());
    done(json, &dom, "undefined", message)
}

pub async fn start(
    conn: &Connection,
    name: &str,
    paused: bool,
    json: bool,
) -> anyhow::Result<String> {
    let mut dom = lookup(conn, name).await?;
    // virsh refuses before asking the server, with this exact message
    if dom.id().is_some() {
        anyhow::bail!("Domain is already active");
    }
    let started = if paused {
        dom.create_with_flags(create::START_PAUSED).await
    } else {
        dom.create().await
    };
    started.with_context(|| format!("Failed to start domain '{}'", dom.name()))?;
    let message = format!("Domain '{}' started", dom.name());
    done(json, &dom, "started", message)
}

pub async fn destroy(conn: &Connection, name: &str, json: bool) -> anyhow::Result<String> {
    let dom = lookup(conn, name).await?;
    dom.destroy()
        .await
        .with_context(|| format!("Failed to destroy domain '{}'", dom.name()))?;
    let message = format!("Domain '{}' destroyed", dom.name());
    done(json, &dom, "destroyed", message)
}

pub async fn suspend(conn: &Connection, name: &str, json: bool) -> anyhow::Result<String> {
    let dom = lookup(conn, name).await?;
    dom.suspend()
        .await
        .with_context(|| format!("Failed to suspend domain '{}'", dom.name()))?;
    let message = format!("Domain '{}' suspended", dom.name());
    done(json, &dom, "suspended", message)
}

pub async fn resume(conn: &Connection, name: &str, json: bool) -> anyhow::Result<String> {
    let dom = lookup(conn, name).await?;
    dom.resume()
        .await
        .with_context(|| format!("Failed to resume domain '{}'", dom.name()))?;
    let message = format!("Domain '{}' resumed", dom.name());
    done(json, &dom, "resumed", message)
}

pub async fn shutdown(conn: &Connection, name: &str, json: bool) -> anyhow::Result<String> {
    let dom = lookup(conn, name).await?;
    dom.shutdown()
        .await
        .with_context(|| format!("Failed to shutdown domain '{}'", dom.name()))?;
    let message = format!("Domain '{}' is being shutdown", dom.name());
    done(json, &dom, "shutdown", message)
}

pub async fn autostart(
    conn: &Connection,
    name: &str,
    disable: bool,
    json: bool,
) -> anyhow::Result<String> {
    let dom = lookup(conn, name).await?;
    dom.set_autostart(!disable).await.with_context(|| {
        let verb = if disable { "unmark" } else { "mark" };
        format!("Failed to {verb} domain '{}' as autostarted", dom.name())
    })?;
    let (action, message) = if disable {
        (
            "autostart-disabled",
            format!("Domain '{}' unmarked as autostarted", dom.name()),
        )
    } else {
        (
            "autostart-enabled",
            format!("Domain '{}' marked as autostarted", dom.name()),
        )
    };
    done(json, &dom, action, message)
}

#[derive(Serialize)]
struct DomainReport {
    id: Option<u32>,
    name: String,
    uuid: String,
    os_type: Option<String>,
    state: &'static str,
    cpus: u16,
    cpu_time_ns: Option<u64>,
    max_memory_kib: u64,
    used_memory_kib: u64,
    persistent: Option<bool>,
    autostart: Option<bool>,
    managed_save: Option<bool>,
    security_model: Option<String>,
    security_doi: Option<String>,
    security_label: Option<String>,
    security_enforcing: Option<bool>,
    messages: Vec<String>,
}

pub async fn dominfo(conn: &Connection, name: &str, json: bool) -> anyhow::Result<String> {
    let dom = lookup(conn, name).await?;
    let info = dom
        .info()
        .await
        .context("failed to get domain information")?;
    // virsh leaves out lines whose call fails rather than failing the command
    let os_type = dom.os_type().await.ok();
    let persistent = dom.is_persistent().await.ok();
    let autostart = dom.autostart().await.ok();
    let managed_save = dom.has_managed_save_image().await.ok();
    let security = conn
        .node_security_model()
        .await
        .ok()
        .filter(|s| !s.model.is_empty());
    // virsh asks for the label only when the host has a security model
    let label = if security.is_some() {
        dom.security_label()
            .await
            .ok()
            .filter(|(l, _)| !l.is_empty())
    } else {
        None
    };
    let messages = dom.messages(0).await.unwrap_or_default();
    let report = DomainReport {
        id: dom.id(),
        name: dom.name().to_owned(),
        uuid: dom.uuid().to_string(),
        os_type,
        state: state_name(info.state as i32),
        cpus: info.nr_virt_cpu,
        cpu_time_ns: (info.cpu_time_ns != 0).then_some(info.cpu_time_ns),
        max_memory_kib: info.max_mem_kib,
        used_memory_kib: info.memory_kib,
        persistent,
        autostart,
        managed_save,
        security_model: security.as_ref().map(|s| s.model.clone()),
        security_doi: security.as_ref().map(|s| s.doi.clone()),
        security_label: label.as_ref().map(|(l, _)| l.clone()),
        security_enforcing: label.as_ref().map(|(_, e)| *e),
        messages,
    };
    if json {
        return output::json(&report);
    }
    let mut pairs = vec![
        (
            "Id",
            report
                .id
                .map_or_else(|| "-".to_owned(), |id| id.to_string()),
        ),
        ("Name", report.name.clone()),
        ("UUID", report.uuid.clone()),
    ];
    if let Some(os_type) = &report.os_type {
        pairs.push(("OS Type", os_type.clone()));
    }
    pairs.push(("State", report.state.to_owned()));
    pairs.push(("CPU(s)", report.cpus.to_string()));
    if let Some(ns) = report.cpu_time_ns {
        // the cast only loses precision beyond 2^53 ns (104 days of CPU time)
        pairs.push(("CPU time", format!("{:.1}s", ns as f64 / 1e9)));
    }
    // virsh compares with UINT_MAX; u64::MAX is the same "unlimited" on the wire of a 64-bit server
    let max_memory = match report.max_memory_kib {
        kib if kib == u64::MAX || kib == u64::from(u32::MAX) => "no limit".to_owned(),
        kib => format!("{kib} KiB"),
    };
    pairs.push(("Max memory", max_memory));
    pairs.push(("Used memory", format!("{} KiB", report.used_memory_kib)));
    let yes_no = |b: Option<bool>| match b {
        Some(true) => "yes",
        Some(false) => "no",
        None => "unknown",
    };
    pairs.push(("Persistent", yes_no(report.persistent).to_owned()));
    if let Some(autostart) = report.autostart {
        pairs.push((
            "Autostart",
            if autostart { "enable" } else { "disable" }.to_owned(),
        ));
    }
    if let Some(managed_save) = report.managed_save {
        pairs.push(("Managed save", yes_no(Some(managed_save)).to_owned()));
    }
    if let (Some(model), Some(doi)) = (&report.security_model, &report.security_doi) {
        pairs.push(("Security model", model.clone()));
        pairs.push(("Security DOI", doi.clone()));
    }
    if let (Some(label), Some(enforcing)) = (&report.security_label, report.security_enforcing) {
        let mode = if enforcing { "enforcing" } else { "permissive" };
        pairs.push(("Security label", format!("{label} ({mode})")));
    }
    let mut text = output::key_values(&pairs, 15);
    for (i, message) in report.messages.iter().enumerate() {
        // virsh labels the first line only; the rest align under it
        let key = if i == 0 { "Messages:" } else { "" };
        text.push_str(&format!("{key:<15} {message}\n"));
    }
    Ok(text)
}

pub async fn domstate(
    conn: &Connection,
    name: &str,
    with_reason: bool,
    json: bool,
) -> anyhow::Result<String> {
    let dom = lookup(conn, name).await?;
    let current = dom.state().await.context("failed to get domain state")?;
    let state_text = state_name(current.state as i32);
    let reason_text = reason_name(current.state as i32, current.reason);
    if json {
        return output::json(&serde_json::json!({
            "domain": dom.name(),
            "state": state_text,
            "reason": reason_text,
        }));
    }
    if with_reason {
        Ok(format!("{state_text} ({reason_text})\n"))
    } else {
        Ok(format!("{state_text}\n"))
    }
}

/// A statistic as virsh prints it (`virTypedParameterToString`).
fn param_text(value: &TypedValue) -> String {
    match value {
        TypedValue::Int(v) => v.to_string(),
        TypedValue::UInt(v) => v.to_string(),
        TypedValue::LLong(v) => v.to_string(),
        TypedValue::ULLong(v) => v.to_string(),
        TypedValue::Double(v) => v.to_string(),
        TypedValue::Boolean(v) => if *v { "yes" } else { "no" }.to_owned(),
        TypedValue::String(v) => v.clone(),
    }
}

/// `virsh domstats`: one block per domain, `Domain: 'NAME'` then the
/// statistics as `  key=value`.
pub async fn domstats(
    conn: &Connection,
    args: &DomstatsArgs,
    json: bool,
) -> anyhow::Result<String> {
    /// `VIR_CONNECT_GET_ALL_DOMAINS_STATS_ENFORCE_STATS`.
    const ENFORCE_STATS: u32 = 1 << 31;
    let mut doms = Vec::with_capacity(args.domains.len());
    for name in &args.domains {
        doms.push(lookup(conn, name).await?);
    }
    let flags = if args.enforce { ENFORCE_STATS } else { 0 };
    let records = conn
        .all_domain_stats(&doms, args.groups(), flags)
        .await
        .context("failed to get domain statistics")?;
    if json {
        let records: Vec<_> = records
            .iter()
            .map(|(dom, params)| {
                let stats: serde_json::Map<String, serde_json::Value> = params
                    .iter()
                    .map(|p| (p.field.clone(), super::typed_json(&p.value)))
                    .collect();
                serde_json::json!({ "domain": dom.name(), "stats": stats })
            })
            .collect();
        return output::json(&records);
    }
    // Records apart by an empty line; the command's closing one ends the last.
    let mut out = String::new();
    for (n, (dom, params)) in records.iter().enumerate() {
        if n > 0 {
            out.push('\n');
        }
        let _ = writeln!(out, "Domain: '{}'", dom.name());
        for p in params.iter() {
            let _ = writeln!(out, "  {}={}", p.field, param_text(&p.value));
        }
    }
    Ok(out)
}

pub async fn dumpxml(conn: &Connection, args: &DumpxmlArgs, json: bool) -> anyhow::Result<String> {
    let dom = lookup(conn, &args.domain).await?;
    let mut flags = 0;
    if args.security_info {
        flags |= xml::SECURE;
    }
    if args.inactive {
        flags |= xml::INACTIVE;
    }
    if args.migratable {
        flags |= xml::MIGRATABLE;
    }
    let xml = dom
        .xml_desc(flags)
        .await
        .context("failed to get domain XML")?;
    if json {
        return output::json(&serde_json::json!({ "domain": dom.name(), "xml": xml }));
    }
    let mut xml = xml;
    if !xml.ends_with('\n') {
        xml.push('\n');
    }
    Ok(xml)
}
