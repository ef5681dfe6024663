//! libvirt's QEMU program through stock clients against a real QEMU guest:
//! `virsh qemu-monitor-command` (QMP passed through, `--hmp`, `--pretty`,
//! QEMU's own error reply, a shut-off guest, a read-only connection),
//! `virsh qemu-monitor-event` while `virsh suspend` runs, `virsh
//! qemu-agent-command` without an agent, and python3's `libvirt_qemu`
//! (`qemuMonitorCommand`, `qemuMonitorEventRegister`).

mod migrate_support;
mod qemu_support;

use std::time::Duration;

use migrated_tests::clients::{stderr_of, stdout_of, PYTHON_EVENT_LOOP};
use migrated_tests::{python, require_python_libvirt, VirshEvents};
use qemu_support::{domstate, virsh_err, QemuHosts};

/// Small guests: these tests prove the monitor pass-through only.
const SMALL_MIB: u32 = 64;

/// python3 `libvirt_qemu` (argv: URI, name): a QMP and an HMP command, then
/// a RESUME registration that sees the resume of the paused guest; a
/// second deregistration is refused by the client library (code 8).
/// Follows [`PYTHON_EVENT_LOOP`].
const LIBVIRT_QEMU: &str = r#"
import json, libvirt_qemu
URI, NAME = sys.argv[1], sys.argv[2]

conn = libvirt.open(URI)
dom = conn.lookupByName(NAME)
reply = json.loads(libvirt_qemu.qemuMonitorCommand(dom, '{"execute":"query-status"}', 0))
print("status", reply["return"]["status"], "id" in reply)
hmp = libvirt_qemu.qemuMonitorCommand(dom, "info status", libvirt_qemu.VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP)
print("hmp", hmp.strip())
seen = []
def on_event(conn, dom, event, seconds, micros, details, opaque):
    seen.append((dom.name(), event, seconds > 0))
cb = libvirt_qemu.qemuMonitorEventRegister(conn, dom, "resume", on_event, None,
    libvirt_qemu.VIR_CONNECT_DOMAIN_QEMU_MONITOR_EVENT_REGISTER_NOCASE)
dom.resume()
deadline = time.time() + 20
while not seen and time.time() < deadline:
    time.sleep(0.05)
print("event", seen[0] if seen else None)
libvirt_qemu.qemuMonitorEventDeregister(conn, cb)
try:
    libvirt_qemu.qemuMonitorEventDeregister(conn, cb)
    print("deregistered twice")
except libvirt.libvirtError as e:
    print("second deregister", e.get_error_code())
"#;

#[test]
fn qemu_monitor_and_agent_commands_as_libvirt() {
    let Some(hosts) = QemuHosts::start() else {
        return;
    };
    let uri = hosts.a_uri();
    let name = "q-mon";
    let (xml, _uuid) = hosts.guest_xml(name, SMALL_MIB, 8);
    hosts.define_xml(&uri, name, &xml);

    // Shut off: libvirt's "domain is not running".
    let err = virsh_err(
        &uri,
        &[
            "qemu-monitor-command",
            name,
            r#"{"execute":"query-status"}"#,
        ],
    );
    assert!(
        err.contains("error: Requested operation is not valid: domain is not running"),
        "{err}"
    );
    hosts.virsh_ok(&uri, &["start", name]);

    // QMP passed through: the whole reply object, as libvirt prints it.
    let out = hosts.virsh_ok(
        &uri,
        &[
            "qemu-monitor-command",
            name,
            r#"{"execute":"query-status"}"#,
        ],
    );
    assert!(
        out.trim().starts_with(r#"{"return":{"#) && out.contains(r#""status":"running""#),
        "{out}"
    );
    assert!(out.contains(r#""id":"#), "{out}");
    let pretty = hosts.virsh_ok(
        &uri,
        &[
            "qemu-monitor-command",
            name,
            "--pretty",
            r#"{"execute":"query-status"}"#,
        ],
    );
    assert!(
        pretty.contains("\n  \"return\": {\n    \"status\""),
        "{pretty}"
    );
    // HMP through human-monitor-command.
    let pci = hosts.virsh_ok(&uri, &["qemu-monitor-command", name, "--hmp", "info pci"]);
    assert!(pci.contains("Bus  0"), "{pci}");
    // QEMU's refusal is the answer, as libvirt passes it on.
    let bad = hosts.virsh_ok(
        &uri,
        &[
            "qemu-monitor-command",
            name,
            r#"{"execute":"no-such-command"}"#,
        ],
    );
    assert!(
        bad.contains(r#""error":{"class":"CommandNotFound","desc":"The command no-such-command has not been found"}"#),
        "{bad}"
    );
    // JSON that is no command goes to QEMU as it is, as libvirt: QEMU's
    // id-less refusal is the answer.
    let raw = hosts.virsh_ok(&uri, &["qemu-monitor-command", name, r#"{"arguments":{}}"#]);
    assert_eq!(
        raw.trim(),
        r#"{"error":{"class":"GenericError","desc":"QMP input lacks member 'execute'"}}"#
    );
    let err = virsh_err(
        &uri,
        &[
            "qemu-monitor-command",
            name,
            r#"{"execute":"query-status","id":"mine"}"#,
        ],
    );
    assert!(
        err.contains("error: internal error: Unable to append command 'id' string"),
        "{err}"
    );
    // Read-only connections are refused.
    let err = virsh_err(
        &uri,
        &[
            "-r",
            "qemu-monitor-command",
            name,
            r#"{"execute":"query-status"}"#,
        ],
    );
    assert!(
        err.contains("operation forbidden: read only access prevents virDomainQemuMonitorCommand"),
        "{err}"
    );

    // No agent channel: libvirt's agent error.
    let err = virsh_err(
        &uri,
        &["qemu-agent-command", name, r#"{"execute":"guest-ping"}"#],
    );
    assert!(
        err.contains("error: argument unsupported: QEMU guest agent is not configured"),
        "{err}"
    );

    // qemu-monitor-event sees the STOP of a suspend made by another client;
    // it may register after the first suspend, so suspend again (bounded).
    let events = VirshEvents::spawn_command(
        &uri,
        "qemu-monitor-event",
        &[name, "--event", "STOP", "--loop", "--timeout", "60"],
    );
    let needle = format!("for domain '{name}'");
    let mut seen = false;
    for _ in 0..20 {
        hosts.virsh_ok(&uri, &["suspend", name]);
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        while std::time::Instant::now() < deadline && !seen {
            seen = events.text().contains(&needle);
            std::thread::sleep(Duration::from_millis(20));
        }
        if seen {
            break;
        }
        hosts.virsh_ok(&uri, &["resume", name]);
    }
    let text = events.text();
    assert!(seen, "no STOP event printed: {text}");
    assert!(text.contains("event STOP at "), "{text}");
    assert!(!text.contains("event RESUME"), "filtered by name: {text}");
    drop(events);
    assert_eq!(domstate(&uri, name).as_deref(), Some("paused"));

    // A user's own stop/cont: the recorded state follows QEMU's events.
    hosts.virsh_ok(
        &uri,
        &["qemu-monitor-command", name, r#"{"execute":"cont"}"#],
    );
    migrated_tests::wait_until(Duration::from_secs(20), "running after cont", || {
        (domstate(&uri, name).as_deref() == Some("running")).then_some(())
    });
    hosts.virsh_ok(
        &uri,
        &["qemu-monitor-command", name, r#"{"execute":"stop"}"#],
    );
    migrated_tests::wait_until(Duration::from_secs(20), "paused after stop", || {
        (domstate(&uri, name).as_deref() == Some("paused")).then_some(())
    });

    if require_python_libvirt().is_some() {
        let out = python(&format!(
            "{PYTHON_EVENT_LOOP}sys.argv = ['qemu', '{uri}', '{name}']\n{LIBVIRT_QEMU}"
        ));
        let text = stdout_of(&out);
        assert!(out.status.success(), "{text}{}", stderr_of(&out));
        for line in [
            "status paused True",
            "hmp VM status: paused",
            &format!("event ('{name}', 'RESUME', True)"),
            "second deregister 8",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} missing: {text}");
        }
    }

    // `quit` ends QEMU: the guest is shut off, as libvirt.
    hosts.virsh_ok(
        &uri,
        &["qemu-monitor-command", name, r#"{"execute":"quit"}"#],
    );
    migrated_tests::wait_until(Duration::from_secs(20), "shut off after quit", || {
        (domstate(&uri, name).as_deref() == Some("shut off")).then_some(())
    });
    hosts.virsh_ok(&uri, &["undefine", name]);
}
