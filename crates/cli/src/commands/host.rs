//! Commands about the host and the connection.

use anyhow::Context as _;
use migrated_client::Connection;
use serde::Serialize;

use crate::output;

/// Formats libvirt's packed version number (major * 1,000,000 + minor * 1,000 + micro).
fn version_string(v: u64) -> String {
    format!("{}.{}.{}", v / 1_000_000, (v / 1_000) % 1_000, v % 1_000)
}

pub async fn capabilities(conn: &Connection, json: bool) -> anyhow::Result<String> {
    let caps = conn
        .get_capabilities()
        .await
        .context("failed to get capabilities")?;
    if json {
        return output::json(&serde_json::json!({ "capabilities": caps }));
    }
    // virsh prints the XML followed by a newline, whatever it ends with
    Ok(format!("{caps}\n"))
}

pub async fn hostname(conn: &Connection, json: bool) -> anyhow::Result<String> {
    let name = conn
        .get_hostname()
        .await
        .context("failed to get hostname")?;
    if json {
        return output::json(&serde_json::json!({ "hostname": name }));
    }
    Ok(format!("{name}\n"))
}

/// Like `virsh uri`: the URI this connection was opened with (libvirt's
/// `virConnectGetURI` answers locally); JSON adds the server's own name.
pub async fn uri(conn: &Connection, json: bool) -> anyhow::Result<String> {
    let uri = conn.uri().original.clone();
    if json {
        let server = conn.get_uri().await.context("failed to get URI")?;
        return output::json(&serde_json::json!({ "uri": uri, "server_uri": server }));
    }
    Ok(format!("{uri}\n"))
}

#[derive(Serialize)]
struct VersionReport {
    library: String,
    hypervisor_type: String,
    hypervisor: String,
    daemon: Option<String>,
}

/// Like `virsh version [--daemon]` (JSON always includes the daemon).
pub async fn version(conn: &Connection, with_daemon: bool, json: bool) -> anyhow::Result<String> {
    let hv_type = conn
        .get_type()
        .await
        .context("failed to get hypervisor type")?;
    let hv_version = conn
        .get_version()
        .await
        .context("failed to get hypervisor version")?;
    let daemon = if with_daemon || json {
        let version = conn
            .get_lib_version()
            .await
            .context("failed to get the daemon version")?;
        Some(version_string(version))
    } else {
        None
    };
    let report = VersionReport {
        library: env!("CARGO_PKG_VERSION").to_owned(),
        hypervisor_type: hv_type,
        hypervisor: version_string(hv_version),
        daemon,
    };
    if json {
        return output::json(&report);
    }
    let mut text = format!(
        "Compiled against library: migrated {lib}\n\
         Using library: migrated {lib}\n\
         Using API: {ty} {lib}\n\
         Running hypervisor: {ty} {hv}\n",
        lib = report.library,
        ty = report.hypervisor_type,
        hv = report.hypervisor,
    );
    if let Some(daemon) = &report.daemon {
        text.push_str(&format!("Running against daemon: {daemon}\n"));
    }
    Ok(text)
}

pub async fn nodeinfo(conn: &Connection, json: bool) -> anyhow::Result<String> {
    let info = conn
        .node_info()
        .await
        .context("failed to get node information")?;
    if json {
        return output::json(&serde_json::json!({
            "model": info.model,
            "cpus": info.cpus,
            "mhz": info.mhz,
            "sockets": info.sockets,
            "cores": info.cores,
            "threads": info.threads,
            "nodes": info.nodes,
            "memory_kib": info.memory_kib,
        }));
    }
    Ok(output::key_values(
        &[
            ("CPU model", info.model.clone()),
            ("CPU(s)", info.cpus.to_string()),
            ("CPU frequency", format!("{} MHz", info.mhz)),
            ("CPU socket(s)", info.sockets.to_string()),
            ("Core(s) per socket", info.cores.to_string()),
            ("Thread(s) per core", info.threads.to_string()),
            ("NUMA cell(s)", info.nodes.to_string()),
            ("Memory size", format!("{} KiB", info.memory_kib)),
        ],
        20,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_versions_are_split_like_virsh() {
        assert_eq!(version_string(9_000_000), "9.0.0");
        assert_eq!(version_string(7_002_013), "7.2.13");
        assert_eq!(version_string(0), "0.0.0");
    }
}
