//! What operators see: the capabilities XML (through virsh, python3-libvirt
//! and migratectl), the Prometheus endpoint and the end-of-migration log
//! line against real daemons, and the man pages and completions the
//! binaries generate for `cargo xtask dist`.

mod migrate_support;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use migrate_support::{ctl, ctl_ok, define, migratectl_binary, state};
use migrated_tests::clients::{stderr_of, stdout_of};
use migrated_tests::daemon::{free_port, migrated_binary};
use migrated_tests::{python, require_binary, require_python_libvirt, virsh, Daemon};

/// A test-driver daemon on TCP with the metrics endpoint on its own port.
fn daemon_with_metrics(hostname: &str) -> (Daemon, SocketAddr) {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port())
        .parse()
        .expect("loopback address");
    let daemon = Daemon::builder()
        .hostname(hostname)
        .tcp()
        .args(["--metrics-listen", &addr.to_string()])
        .spawn();
    (daemon, addr)
}

/// One HTTP/1.1 GET; returns the status line and the body.
fn http_get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect to metrics");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").expect("send request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    let status = head.lines().next().unwrap_or_default().to_owned();
    (status, body.to_owned())
}

/// The value of the sample whose name and labels are exactly `series`.
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn capabilities_carry_the_host_uuid_and_migration_features() {
    let daemon = Daemon::builder().tcp().spawn();
    let uri = daemon.uri();
    let ctl_xml = ctl_ok(&uri, &["capabilities"]);
    assert!(
        ctl_xml.contains(&format!("<uuid>{}</uuid>", daemon.host_uuid())),
        "{ctl_xml}"
    );
    assert!(ctl_xml.contains("<live/>"));
    assert!(ctl_xml.contains("<uri_transport>tcp</uri_transport>"));
    assert!(ctl_xml.contains("<domain type='test'/>"));

    if require_binary("virsh").is_some() {
        let out = virsh(&uri, &["capabilities"]);
        assert!(out.status.success(), "{}", stderr_of(&out));
        assert_eq!(stdout_of(&out).trim(), ctl_xml.trim());
    }
    if require_python_libvirt().is_none() {
        return;
    }
    // A namespace-aware parser must accept the document and see libvirt's
    // elements where libvirt puts them, our extras under our namespace.
    let script = format!(
        r#"
import libvirt, xml.etree.ElementTree as ET
conn = libvirt.open("{uri}")
root = ET.fromstring(conn.getCapabilities())
ns = {{"m": "urn:migrated:capabilities:1"}}
mf = root.find("host/migration_features")
print("uuid", root.find("host/uuid").text)
print("live", mf.find("live") is not None)
print("transports", ",".join(t.text for t in mf.findall("uri_transports/uri_transport")))
print("extras", ",".join(sorted(e.tag.split("}}")[1] for e in mf.find("m:extras", ns) if e.tag != "{{urn:migrated:capabilities:1}}params")))
print("guest", root.find("guest/os_type").text, root.find("guest/arch").get("name"))
"#
    );
    let out = python(&script);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let text = stdout_of(&out);
    assert!(
        text.contains(&format!("uuid {}", daemon.host_uuid())),
        "{text}"
    );
    assert!(text.contains("live True"), "{text}");
    assert!(text.contains("transports tcp\n"), "{text}");
    let extras = text
        .lines()
        .find_map(|l| l.strip_prefix("extras "))
        .expect("extras line");
    for flag in ["offline", "peer2peer", "tunnelled"] {
        assert!(extras.split(',').any(|e| e == flag), "{flag} in {extras}");
    }
    assert!(text.contains("guest hvm x86_64"), "{text}");
}

#[test]
fn metrics_count_calls_errors_and_migrations_and_the_source_logs_a_timeline() {
    let (a, a_metrics) = daemon_with_metrics("ops-a");
    let (b, b_metrics) = daemon_with_metrics("ops-b");
    let (a_uri, b_uri) = (a.uri(), b.uri());
    let logs = || format!("{}\n---\n{}", a.logs(), b.logs());

    let (status, before) = http_get(a_metrics, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    let opens_before = sample(
        &before,
        "migrated_rpc_calls_total{procedure=\"REMOTE_PROC_CONNECT_OPEN\"}",
    )
    .unwrap_or(0.0);

    ctl_ok(&a_uri, &["list", "--all"]);
    ctl_ok(&a_uri, &["hostname"]);
    let missing = ctl(&a_uri, &["dominfo", "no-such-guest"]);
    assert!(!missing.status.success());
    let dir = tempfile::tempdir().expect("temp dir");
    define(&a_uri, dir.path(), "ops-mig", "", true);
    ctl_ok(&a_uri, &["migrate", "--live", "ops-mig", &b_uri]);
    assert_eq!(
        state(&b_uri, "ops-mig").as_deref(),
        Some("running"),
        "{}",
        logs()
    );

    let (_, after) = http_get(a_metrics, "/metrics");
    let opens_after = sample(
        &after,
        "migrated_rpc_calls_total{procedure=\"REMOTE_PROC_CONNECT_OPEN\"}",
    )
    .unwrap_or(0.0);
    assert!(
        opens_after >= opens_before + 4.0,
        "4 migratectl runs opened connections: {opens_before} → {opens_after}\n{after}"
    );
    // VIR_ERR_NO_DOMAIN (42) for the missing guest.
    assert!(
        sample(&after, "migrated_rpc_errors_total{code=\"42\"}").unwrap_or(0.0) >= 1.0,
        "{after}"
    );
    let calls = sample(&after, "migrated_rpc_call_duration_seconds_count").expect("count");
    assert!(calls >= opens_after, "{after}");
    assert_eq!(
        sample(
            &after,
            "migrated_migrations_total{role=\"source\",outcome=\"completed\"}"
        ),
        Some(1.0),
        "{after}"
    );
    assert_eq!(
        sample(
            &after,
            "migrated_migration_duration_seconds_count{role=\"source\"}"
        ),
        Some(1.0),
        "{after}"
    );
    let (_, dest) = http_get(b_metrics, "/metrics");
    assert_eq!(
        sample(
            &dest,
            "migrated_migrations_total{role=\"destination\",outcome=\"completed\"}"
        ),
        Some(1.0),
        "{dest}"
    );

    let (status, _) = http_get(a_metrics, "/elsewhere");
    assert!(status.starts_with("HTTP/1.1 404"), "{status}");

    let line = a
        .logs()
        .lines()
        .find(|l| l.contains("migration job ended") && l.contains("role=\"source\""))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no end-of-job line on the source\n{}", logs()));
    for field in [
        "outcome=\"completed\"",
        "total_ms=",
        "begin_ms=",
        "perform_ms=",
        "finish_ms=",
        "confirm_ms=",
        "bytes=",
        "iterations=",
        "downtime_ms=",
        "dom=ops-mig",
    ] {
        assert!(line.contains(field), "{field} missing in {line}");
    }
    assert!(line.contains(" INFO "), "the line is at info level: {line}");
}

#[test]
fn the_binaries_write_man_pages_and_completions() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (binary, flag) in [
        (migrated_binary().to_path_buf(), "--generate-docs"),
        (migratectl_binary().to_path_buf(), "__generate-docs"),
    ] {
        let out = Command::new(&binary)
            .arg(flag)
            .arg(dir.path())
            .output()
            .expect("run the generator");
        assert!(
            out.status.success(),
            "{} {flag}: {}",
            binary.display(),
            stderr_of(&out)
        );
    }
    let daemon_page =
        std::fs::read_to_string(dir.path().join("man/man8/migrated.8")).expect("migrated.8");
    assert!(daemon_page.contains(".TH migrated 8 "));
    assert!(
        daemon_page.contains("metrics\\-listen"),
        "every flag documented"
    );
    let ctl_page =
        std::fs::read_to_string(dir.path().join("man/man1/migratectl.1")).expect("migratectl.1");
    assert!(ctl_page.contains(".TH migratectl 1 "));
    for file in [
        "completions/bash/migrated",
        "completions/bash/migratectl",
        "completions/zsh/_migrated",
        "completions/zsh/_migratectl",
        "completions/fish/migrated.fish",
        "completions/fish/migratectl.fish",
    ] {
        let script = std::fs::read_to_string(dir.path().join(file)).expect(file);
        assert!(
            !script.contains("generate-docs"),
            "{file} hides the generator"
        );
    }
}
