//! Domain events of the test driver through python3-libvirt's
//! `domainEventRegisterAny`, compared with libvirt 9.0's own test driver
//! (`test:///default`, in the python process): one callback per event id
//! libvirt knows, the same calls on both, the same events in the same order
//! with the same payloads. libvirt's test driver sends METADATA_CHANGE for
//! every metadata change and lifecycle events, and nothing for tuning,
//! vCPU, reset or NMI calls; so must `migrated`'s.

use migrated_tests::clients::{stderr_of, stdout_of, PYTHON_EVENT_LOOP};
use migrated_tests::{python, require_python_libvirt, Daemon};

/// Follows [`PYTHON_EVENT_LOOP`].
const EVENTS: &str = r#"

conn = libvirt.open(sys.argv[1])
got = []
names = {getattr(libvirt, k): k[len("VIR_DOMAIN_EVENT_ID_"):] for k in dir(libvirt)
         if k.startswith("VIR_DOMAIN_EVENT_ID_") and k != "VIR_DOMAIN_EVENT_ID_LAST"}
def make(eid):
    def cb(conn, dom, *args):
        got.append((names[eid], dom.name()) + tuple(args[:-1]))
    return cb
for eid in sorted(names):
    conn.domainEventRegisterAny(None, eid, make(eid), None)

dom = conn.defineXML("""<domain type='test'><name>ev</name><memory unit='MiB'>8</memory>
<vcpu placement='static' current='1'>2</vcpu><os><type arch='x86_64'>hvm</type></os><devices>
<disk type='file' device='disk'><source file='/tmp/ev.img'/><target dev='vda' bus='virtio'/></disk>
</devices></domain>""")
dom.create()

def wait_quiet():
    # Events arrive asynchronously: wait until none came for 300 ms (at most 5 s).
    deadline = time.time() + 5
    n = -1
    while time.time() < deadline and n != len(got):
        n = len(got)
        time.sleep(0.3)

wait_quiet()
print("start", got)
LIVE = libvirt.VIR_DOMAIN_AFFECT_LIVE
steps = [
    ("desc", lambda: dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_DESCRIPTION, "d", None, None, 0)),
    ("title", lambda: dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_TITLE, "t", None, None,
                                      libvirt.VIR_DOMAIN_AFFECT_CONFIG)),
    ("element", lambda: dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, "<x/>", "k",
                                        "http://example.org/k", 0)),
    ("remove", lambda: dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, None, None,
                                       "http://example.org/k", 0)),
    ("setvcpus", lambda: dom.setVcpusFlags(1, LIVE)),
    ("blkio", lambda: dom.setBlkioParameters({"weight": 500}, LIVE)),
    ("memtune", lambda: dom.setMemoryParameters({"hard_limit": 2000000}, LIVE)),
    ("iotune", lambda: dom.setBlockIoTune("vda", {"total_iops_sec": 100,
                                                  "total_iops_sec_max": 200}, LIVE)),
    ("suspend", lambda: dom.suspend()),
    ("resume", lambda: dom.resume()),
    ("reset", lambda: dom.reset()),
    ("nmi", lambda: dom.injectNMI()),
    ("destroy", lambda: dom.destroy()),
]
for name, call in steps:
    got.clear()
    try:
        call()
        result = "ok"
    except libvirt.libvirtError as e:
        result = "error %d" % e.get_error_code()
    wait_quiet()
    print(name, result, got)
dom.undefine()
conn.close()
"#;

fn run(uri: &str) -> String {
    let out = python(&format!(
        "{PYTHON_EVENT_LOOP}sys.argv[1:] = [{uri:?}]\n{EVENTS}"
    ));
    assert!(out.status.success(), "{uri}: {}", stderr_of(&out));
    stdout_of(&out)
}

#[test]
fn python_test_driver_events_are_libvirts() {
    if require_python_libvirt().is_none() {
        return;
    }
    let ours = Daemon::builder().tcp().spawn();
    let theirs = run("test:///default");
    let mine = run(&ours.uri());
    // The case itself holds what the comparison is about.
    assert!(
        theirs.contains("desc ok [('METADATA_CHANGE', 'ev', 0, None)]")
            && theirs.contains("element ok [('METADATA_CHANGE', 'ev', 2, 'http://example.org/k')]"),
        "libvirt's test driver:\n{theirs}"
    );
    assert_eq!(
        mine.lines().collect::<Vec<_>>(),
        theirs.lines().collect::<Vec<_>>(),
        "migrated (left) against libvirt's test driver (right)"
    );
}
