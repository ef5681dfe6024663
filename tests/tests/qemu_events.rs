//! Domain events of the QEMU driver as stock clients see them: `virsh event
//! --all --loop --timestamp` and python3-libvirt's `domainEventRegisterAny`
//! against a real QEMU guest, for the events a test can cause from outside
//! the workload guest: AGENT_LIFECYCLE at start (the agent channel's state
//! from `query-chardev`), METADATA_CHANGE (`virsh desc`), TUNABLE (`virsh
//! blkdeviotune --live`, libvirt's `blkdeviotune.*` names) and GRAPHICS
//! (QEMU's VNC_CONNECTED / VNC_INITIALIZED / VNC_DISCONNECTED for an RFB
//! client). The events only a guest can cause (RTC, watchdog, I/O error,
//! tray, PM, balloon, unplug refusal, memory failure) are unit-tested on
//! their QMP events (`driver::qmp_events`).

mod migrate_support;
mod qemu_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use migrated_tests::clients::{stderr_of, stdout_of, VirshEvents, PYTHON_EVENT_LOOP};
use migrated_tests::{python, require_python_libvirt};
use qemu_support::{counter_above, QemuHosts};

/// Small guests: these tests prove events, not migration.
const SMALL_MIB: u32 = 64;
/// How long an event may take to reach virsh.
const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

/// The VNC port of `name`'s live XML.
fn vnc_port(hosts: &QemuHosts, uri: &str, name: &str) -> u16 {
    let xml = hosts.virsh_ok(uri, &["dumpxml", name]);
    let graphics = xml
        .lines()
        .find(|l| l.contains("<graphics type='vnc'"))
        .unwrap_or_else(|| panic!("no VNC graphics in {xml}"));
    let port = graphics
        .split("port='")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .unwrap_or_else(|| panic!("no port in {graphics}"));
    port.parse().unwrap_or_else(|e| panic!("port {port}: {e}"))
}

fn read_exact(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    stream
        .read_exact(&mut buf)
        .expect("read from the VNC server");
    buf
}

/// An RFB 3.8 client without authentication: version, security type
/// None, ClientInit (shared), ServerInit; then it hangs up.
fn vnc_session(port: u16) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to VNC");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    assert_eq!(read_exact(&mut s, 12), b"RFB 003.008\n");
    s.write_all(b"RFB 003.008\n").expect("send version");
    let count = read_exact(&mut s, 1)[0] as usize;
    assert!(
        read_exact(&mut s, count).contains(&1),
        "security type None offered"
    );
    s.write_all(&[1]).expect("choose None");
    assert_eq!(read_exact(&mut s, 4), [0, 0, 0, 0], "security result OK");
    s.write_all(&[1]).expect("ClientInit");
    // ServerInit: size, pixel format, then the desktop name.
    let header = read_exact(&mut s, 24);
    let name_len = u32::from_be_bytes([header[20], header[21], header[22], header[23]]);
    read_exact(&mut s, name_len as usize);
}

fn guest_xml(hosts: &QemuHosts, name: &str, image: &std::path::Path) -> String {
    let (xml, _uuid) = hosts.guest_xml(name, SMALL_MIB, 8);
    let devices = format!(
        "<devices><disk type='file' device='disk'><driver name='qemu' type='raw'/>\
         <source file='{}'/><target dev='vda' bus='virtio'/></disk>\
         <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>\
         <graphics type='vnc' autoport='yes' listen='127.0.0.1'/></devices>",
        image.display()
    );
    xml.replace("</domain>", &format!("{devices}</domain>"))
}

#[test]
fn qemu_events_reach_virsh_event_all() {
    let Some(hosts) = QemuHosts::start() else {
        return;
    };
    let a = hosts.a_uri();
    let name = "q-events";
    let images = tempfile::tempdir().expect("image dir");
    let image = images.path().join("vda.img");
    std::fs::write(&image, vec![0u8; 1 << 20]).expect("write image");
    hosts.define_xml(&a, name, &guest_xml(&hosts, name, &image));
    let events = VirshEvents::spawn(&a, &["--all", "--loop", "--timestamp"]);
    events.sync_on_redefine(&a, name);

    hosts.virsh_ok(&a, &["start", name]);
    let text = events.wait_for("Started Booted", EVENT_TIMEOUT);
    let agent = format!(
        "event 'agent-lifecycle' for domain '{name}': state: 'disconnected' reason: 'domain started'"
    );
    let agent_at = text
        .find(&agent)
        .unwrap_or_else(|| panic!("{agent}:\n{text}"));
    assert!(
        agent_at < text.find("Started Booted").unwrap_or(0),
        "as libvirt, the agent's state before the started event:\n{text}"
    );
    counter_above(&a, name, 0, &hosts);
    let xml = hosts.virsh_ok(&a, &["dumpxml", name]);
    assert!(
        xml.contains("name='org.qemu.guest_agent.0' state='disconnected'"),
        "{xml}"
    );

    hosts.virsh_ok(&a, &["desc", name, "--live", "a described guest"]);
    events.wait_for(
        &format!("event 'metadata-change' for domain '{name}': type description, uri <null>"),
        EVENT_TIMEOUT,
    );

    hosts.virsh_ok(
        &a,
        &[
            "blkdeviotune",
            name,
            "vda",
            "--live",
            "--total-iops-sec",
            "100",
        ],
    );
    let text = events.wait_for("blkdeviotune.total_iops_sec: 100", EVENT_TIMEOUT);
    assert!(
        text.contains(&format!(
            "event 'tunable' for domain '{name}':\n\tblkdeviotune.disk: vda\n\tblkdeviotune.total_iops_sec: 100\n"
        )),
        "{text}"
    );

    let port = vnc_port(&hosts, &a, name);
    vnc_session(port);
    let text = events.wait_for("disconnect local", EVENT_TIMEOUT);
    let graphics: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("event 'graphics'"))
        .map(|l| l.split_once(": event").map_or(l, |(_, rest)| rest))
        .collect();
    assert_eq!(
        graphics.len(),
        3,
        "connect, initialize, disconnect:\n{text}"
    );
    for (line, phase) in graphics.iter().zip(["connect", "initialize", "disconnect"]) {
        assert!(
            line.contains(&format!(
                "for domain '{name}': {phase} local[IPv4 127.0.0.1 {port}] remote[IPv4 127.0.0.1 "
            )) && line.ends_with("] none"),
            "{line}\n{text}"
        );
    }
    // Every line virsh printed carries its timestamp.
    let untimed: Vec<&str> = text.lines().filter(|l| l.starts_with("event")).collect();
    assert!(
        untimed.is_empty(),
        "untimed event lines {untimed:?}:\n{text}"
    );
    hosts.virsh_ok(&a, &["destroy", name]);
    events.wait_for("Stopped Destroyed", EVENT_TIMEOUT);
}

/// Follows [`PYTHON_EVENT_LOOP`].
const PYTHON_EVENTS: &str = r#"
import socket

conn = libvirt.open(sys.argv[1])
dom = conn.lookupByName(sys.argv[2])
got = []
def metadata(conn, dom, mtype, nsuri, opaque):
    got.append("metadata %s %d %s" % (dom.name(), mtype, nsuri))
def tunable(conn, dom, params, opaque):
    got.append("tunable %s %s" % (dom.name(), sorted(params.items())))
def graphics(conn, dom, phase, local, remote, scheme, subject, opaque):
    got.append("graphics %d %s %s %s %s" % (phase, local["family"], local["node"], remote["node"],
                                          scheme))
conn.domainEventRegisterAny(dom, libvirt.VIR_DOMAIN_EVENT_ID_METADATA_CHANGE, metadata, None)
conn.domainEventRegisterAny(dom, libvirt.VIR_DOMAIN_EVENT_ID_TUNABLE, tunable, None)
conn.domainEventRegisterAny(dom, libvirt.VIR_DOMAIN_EVENT_ID_GRAPHICS, graphics, None)

dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, "<v>1</v>", "app", "http://example.org/app",
                libvirt.VIR_DOMAIN_AFFECT_LIVE)
dom.setBlockIoTune("vda", {"read_bytes_sec": 1048576}, libvirt.VIR_DOMAIN_AFFECT_LIVE)
s = socket.create_connection(("127.0.0.1", int(sys.argv[3])), timeout=10)
def recv(n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise SystemExit("VNC server hung up")
        data += chunk
    return data
recv(12); s.sendall(b"RFB 003.008\n")
recv(recv(1)[0]); s.sendall(b"\x01"); recv(4); s.sendall(b"\x01")
header = recv(24)
recv(int.from_bytes(header[20:24], "big"))
s.close()
deadline = time.time() + 20
while time.time() < deadline and len(got) < 5:
    time.sleep(0.1)
for line in got:
    print(line)
"#;

#[test]
fn qemu_events_reach_python_callbacks() {
    if require_python_libvirt().is_none() {
        return;
    }
    let Some(hosts) = QemuHosts::start() else {
        return;
    };
    let a = hosts.a_uri();
    let name = "q-pyevents";
    let images = tempfile::tempdir().expect("image dir");
    let image = images.path().join("vda.img");
    std::fs::write(&image, vec![0u8; 1 << 20]).expect("write image");
    hosts.define_xml(&a, name, &guest_xml(&hosts, name, &image));
    hosts.virsh_ok(&a, &["start", name]);
    counter_above(&a, name, 0, &hosts);
    let port = vnc_port(&hosts, &a, name);
    let out = python(&format!(
        "{PYTHON_EVENT_LOOP}sys.argv[1:] = [{a:?}, {name:?}, \"{port}\"]\n{PYTHON_EVENTS}"
    ));
    assert!(out.status.success(), "{}", stderr_of(&out));
    let stdout = stdout_of(&out);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            format!("metadata {name} 2 http://example.org/app"),
            format!(
                "tunable {name} [('blkdeviotune.disk', 'vda'), ('blkdeviotune.read_bytes_sec', 1048576)]"
            ),
            "graphics 0 0 127.0.0.1 127.0.0.1 none".to_owned(),
            "graphics 1 0 127.0.0.1 127.0.0.1 none".to_owned(),
            "graphics 2 0 127.0.0.1 127.0.0.1 none".to_owned(),
        ],
        "{stdout}"
    );
    hosts.virsh_ok(&a, &["destroy", name]);
}
