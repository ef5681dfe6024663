//! python3-libvirt against `migrated`: the host name, and a guest's
//! lifecycle with events delivered to a registered callback, its memory and
//! metadata, error codes as libvirt clients see them.

use migrated_tests::clients::{stderr_of, stdout_of};
use migrated_tests::{python, require_python_libvirt, Daemon};

const HOSTNAME: &str = "migrated-python-host";

/// The host name; and on the QEMU driver (no guest needed) a failed lookup
/// as python3-libvirt reports it: from VIR_FROM_QEMU, with libvirt's
/// extras, and printed by libvirt's default handler as "QEMU Driver error".
const HOSTNAME_AND_QEMU_LOOKUP: &str = r#"
import sys
import libvirt
print(libvirt.open(sys.argv[1]).getHostname())
conn = libvirt.open(sys.argv[2])
try:
    conn.lookupByName("nosuchguest")
except libvirt.libvirtError as e:
    print("lookup", e.get_error_code(), e.get_error_domain(), e.get_str1(), "|", e.get_str2(),
          e.get_int1())
conn.close()
"#;

#[test]
fn python_get_hostname_over_tcp() {
    if require_python_libvirt().is_none() {
        return;
    }
    let daemon = Daemon::builder()
        .tcp()
        .drivers("test,qemu")
        .hostname(HOSTNAME)
        .spawn();
    let qemu_uri = format!("qemu+tcp://127.0.0.1:{}/system", daemon.tcp_port());
    let script = format!(
        "import sys; sys.argv[1:] = [{:?}, {:?}]\n{HOSTNAME_AND_QEMU_LOOKUP}",
        daemon.uri(),
        qemu_uri
    );
    let out = python(&script);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let stdout = stdout_of(&out);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.first(), Some(&HOSTNAME), "{stdout}");
    // 42 = VIR_ERR_NO_DOMAIN, 10 = VIR_FROM_QEMU, as libvirtd's QEMU driver
    // (captures/errors).
    assert!(
        lines.contains(
            &"lookup 42 10 Domain not found: %s | no domain with matching name 'nosuchguest' -1"
        ),
        "{stdout}"
    );
    assert!(
        stderr_of(&out).contains(
            "libvirt: QEMU Driver error : Domain not found: no domain with matching name \
             'nosuchguest'"
        ),
        "{}",
        stderr_of(&out)
    );
}

const LIFECYCLE: &str = r#"
import sys, threading, time
import libvirt

URI = sys.argv[1] if len(sys.argv) > 1 else "@URI@"
XML = """<domain type='test'><name>py-guest</name><memory unit='MiB'>4</memory>
<vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os></domain>"""

libvirt.virEventRegisterDefaultImpl()
def loop():
    while True:
        libvirt.virEventRunDefaultImpl()
threading.Thread(target=loop, daemon=True).start()

conn = libvirt.open(URI)
events = []
def on_lifecycle(conn, dom, event, detail, opaque):
    events.append((dom.name(), event, detail))
cid = conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, on_lifecycle, None)

dom = conn.defineXML(XML)
dom.create()
print("state", dom.state()[0], "active", dom.isActive(), "persistent", dom.isPersistent())
try:
    dom.create()
    print("create-again ok")
except libvirt.libvirtError as e:
    print("create-again", e.get_error_code(), e.get_error_domain())
    print("create-again-msg", e.get_error_message())
try:
    dom.XMLDesc(1 << 30)
    print("xml-flags ok")
except libvirt.libvirtError as e:
    print("xml-flags", e.get_error_code(), e.get_error_domain(), e.get_str1(), e.get_str2(),
          e.get_int1())
info, maps = dom.vcpus()
print("vcpus", [(v[0], v[1]) for v in info], "maps", maps)
print("max-vcpus", dom.maxVcpus())
mem = dom.memoryStats()
print("mem-keys", sorted(mem))
stats = conn.getAllDomainStats(libvirt.VIR_DOMAIN_STATS_STATE)
print("stats", [(d.name(), s["state.state"]) for d, s in stats])
try:
    dom.openConsole(None, conn.newStream(0), 0)
    print("console ok")
except libvirt.libvirtError as e:
    print("console", e.get_error_code(), e.get_error_domain())
dom.setMemoryFlags(2048, libvirt.VIR_DOMAIN_AFFECT_LIVE)
print("memory", dom.info()[2])
dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_DESCRIPTION, "from python", None, None,
                libvirt.VIR_DOMAIN_AFFECT_LIVE)
print("desc", dom.metadata(libvirt.VIR_DOMAIN_METADATA_DESCRIPTION, None, 0))
try:
    dom.metadata(libvirt.VIR_DOMAIN_METADATA_TITLE, None, 0)
    print("title ok")
except libvirt.libvirtError as e:
    print("title", e.get_error_code(), e.get_error_domain())
dom.suspend()
try:
    dom.suspend()
except libvirt.libvirtError as e:
    print("suspend-again", e.get_error_code(), e.get_error_domain(), e.get_error_message())
dom.resume()
try:
    dom.resume()
except libvirt.libvirtError as e:
    print("resume-again", e.get_error_code(), e.get_error_domain(), e.get_error_message())
dom.destroy()
dom.undefine()

deadline = time.time() + 10
while len(events) < 6 and time.time() < deadline:
    time.sleep(0.05)
print("events", [e[1] for e in events])
print("names", sorted(set(e[0] for e in events)))
conn.domainEventDeregisterAny(cid)

try:
    conn.lookupByName("py-guest")
    print("lookup ok")
except libvirt.libvirtError as e:
    print("lookup", e.get_error_code(), e.get_error_domain())
    print("lookup-msg", e.get_error_message())
    print("lookup-extras", e.get_str1(), "|", e.get_str2(), e.get_int1(), e.get_int2())

ro = libvirt.openReadOnly(URI)
print("ro-list", len(ro.listAllDomains()))
conn.defineXML(XML.replace("py-guest", "py-ro"))
seen = ro.lookupByName("py-ro")
print("ro-xml", "<name>py-ro</name>" in seen.XMLDesc(0))
try:
    seen.XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE)
    print("ro-secure ok")
except libvirt.libvirtError as e:
    print("ro-secure", e.get_error_code())
try:
    ro.defineXML(XML)
    print("ro-define ok")
except libvirt.libvirtError as e:
    print("ro-define", e.get_error_code(), e.get_error_domain())
ro.close()
conn.close()
"#;

#[test]
fn python_lifecycle_delivers_events_and_libvirt_error_codes() {
    if require_python_libvirt().is_none() {
        return;
    }
    let daemon = Daemon::builder().tcp().spawn();
    let out = python(&LIFECYCLE.replace("@URI@", &daemon.uri()));
    assert!(out.status.success(), "{}", stderr_of(&out));
    let stdout = stdout_of(&out);
    let lines: Vec<&str> = stdout.lines().collect();
    // state 1 = RUNNING
    assert!(lines.contains(&"state 1 active 1 persistent 1"), "{stdout}");
    // 1 = VIR_ERR_INTERNAL_ERROR ("Domain '…' is already running"), raised
    // by the driver: 12 = VIR_FROM_TEST, as libvirt's test driver
    // (testDomainCreateWithFlags checks the state itself).
    assert!(lines.contains(&"create-again 1 12"), "{stdout}");
    // virCheckFlags: 8 = VIR_ERR_INVALID_ARG, str1 the driver's function
    // (as libvirt's test driver names it), str2 "flags", int1 0.
    assert!(
        lines.contains(&"xml-flags 8 12 testDomainGetXMLDesc flags 0"),
        "{stdout}"
    );
    // virDomainGetVcpus through python3-libvirt needs virNodeGetCPUMap too.
    assert!(
        lines.contains(&"vcpus [(0, 1)] maps [(True, True, True, True, True, True, True, True, True, True, True, True, True, True, True, True)]"),
        "{stdout}"
    );
    assert!(lines.contains(&"max-vcpus 1"), "{stdout}");
    assert!(lines.contains(&"mem-keys ['actual', 'rss']"), "{stdout}");
    assert!(lines.contains(&"stats [('py-guest', 1)]"), "{stdout}");
    // libvirt's test driver has no console: 3 = VIR_ERR_NO_SUPPORT, from
    // the API layer (20 = VIR_FROM_DOMAIN)
    assert!(lines.contains(&"console 3 20"), "{stdout}");
    assert!(lines.contains(&"memory 2048"), "{stdout}");
    assert!(lines.contains(&"desc from python"), "{stdout}");
    // 80 = VIR_ERR_NO_DOMAIN_METADATA, from src/conf (20 = VIR_FROM_DOMAIN)
    assert!(lines.contains(&"title 80 20"), "{stdout}");
    // A second suspend or resume: libvirt's test driver's internal errors
    // (testDomainSuspend / testDomainResume), with no event.
    assert!(
        lines.contains(&"suspend-again 1 12 internal error: domain 'py-guest' not running"),
        "{stdout}"
    );
    assert!(
        lines.contains(&"resume-again 1 12 internal error: domain 'py-guest' not paused"),
        "{stdout}"
    );
    // DEFINED, STARTED, SUSPENDED, RESUMED, STOPPED, UNDEFINED
    assert!(lines.contains(&"events [0, 2, 3, 4, 5, 1]"), "{stdout}");
    assert!(lines.contains(&"names ['py-guest']"), "{stdout}");
    // 42 = VIR_ERR_NO_DOMAIN
    assert!(lines.contains(&"lookup 42 12"), "{stdout}");
    assert!(
        lines.contains(
            &"lookup-extras Domain not found: %s | no domain with matching name 'py-guest' -1 -1"
        ),
        "{stdout}"
    );
    // libvirt's own wording (virErrorMsgStrings), capital letter included
    assert!(
        lines.contains(&"lookup-msg Domain not found: no domain with matching name 'py-guest'"),
        "{stdout}"
    );
    assert!(
        lines.contains(&"create-again-msg internal error: Domain 'py-guest' is already running"),
        "{stdout}"
    );
    assert!(lines.contains(&"ro-list 0"), "{stdout}");
    // 29 = VIR_ERR_OPERATION_DENIED, from the API layer's read-only check
    assert!(lines.contains(&"ro-define 29 20"), "{stdout}");
    assert!(lines.contains(&"ro-xml True"), "{stdout}");
    // passwords (SECURE) are not for read-only connections
    assert!(lines.contains(&"ro-secure 29"), "{stdout}");
}
