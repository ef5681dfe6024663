//! Bad input to a daemon serving `qemu:///system`, through stock virsh: a
//! missing emulator, an unknown machine type, an emulator that dies at
//! start, and a QMP monitor that sends garbage or one endless line (a fake
//! emulator: a python3 script that accepts on the monitor socket it is
//! handed). Each gives the client a clear error (QEMU's own stderr where
//! there is one); afterwards the daemon still serves, no status file or
//! process of the guest is left, and the guest starts once its definition
//! is fixed. A device the driver does not realise is refused by name, at
//! define and (for a definition stored by an older version) at start.

mod migrate_support;
mod qemu_support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use migrated_driver_qemu::status::StatusFile;
use migrated_tests::clients::{stderr_of, stdout_of};
use migrated_tests::{require_binary, virsh};
use qemu_support::{counter_above, domstate, QemuHosts};

/// Processes whose command line names `uuid` (the fake emulators are not
/// called qemu-system-*, so `qemu_pids` would not see them).
fn procs_naming(uuid: &str) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(uuid))
        })
        .collect()
}

/// Writes an executable fake emulator running `body` (python3) after it
/// found the monitor's listening descriptor (`fd`) in its arguments.
fn fake_emulator(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    let script = format!(
        "#!/usr/bin/python3\n\
         import re, socket, sys, time\n\
         fd = None\n\
         for a in sys.argv[1:]:\n\
         \x20   m = re.search(r'charmonitor,fd=(\\d+)', a)\n\
         \x20   if m:\n\
         \x20       fd = int(m.group(1))\n\
         {body}\n"
    );
    std::fs::write(&path, script).expect("write fake emulator");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

/// The guest's XML with `<emulator>` set (and `machine` replaced).
fn with_emulator(xml: &str, emulator: &Path) -> String {
    xml.replace(
        "</domain>",
        &format!(
            "<devices><emulator>{}</emulator></devices></domain>",
            emulator.display()
        ),
    )
}

/// `virsh start` fails; returns its stderr.
#[track_caller]
fn start_fails(hosts: &QemuHosts, name: &str) -> String {
    let out = virsh(&hosts.a_uri(), &["start", name]);
    assert!(
        !out.status.success(),
        "{name} started: {}\n{}",
        stdout_of(&out),
        hosts.logs()
    );
    stderr_of(&out)
}

/// After a failed start: shut off, no status file, no process, daemon serving.
#[track_caller]
fn nothing_left(hosts: &QemuHosts, name: &str, uuid: &str) {
    let a = hosts.a_uri();
    assert_eq!(domstate(&a, name).as_deref(), Some("shut off"));
    let status = StatusFile::path(hosts.a.runtime_dir(), name);
    assert!(!status.exists(), "stale status file {}", status.display());
    migrated_tests::wait_until(
        std::time::Duration::from_secs(20),
        "the failed emulator to be gone",
        || procs_naming(uuid).is_empty().then_some(()),
    );
    assert!(hosts.virsh_ok(&a, &["list", "--all"]).contains(name));
}

/// Fixes the definition (the good `xml`), starts the guest and sees it count.
#[track_caller]
fn starts_once_fixed(hosts: &QemuHosts, name: &str, xml: &str) {
    let a = hosts.a_uri();
    hosts.define_xml(&a, name, xml);
    hosts.virsh_ok(&a, &["start", name]);
    counter_above(&a, name, 0, hosts);
    hosts.virsh_ok(&a, &["destroy", name]);
}

#[test]
fn qemu_missing_emulator() {
    let Some(hosts) = QemuHosts::start() else {
        return;
    };
    let a = hosts.a_uri();
    let name = "q-noemu";
    let (good, _) = hosts.guest_xml(name, 64, 8);
    let bad = with_emulator(&good, Path::new("/nonexistent/qemu-system-x86_64"));
    let path = std::env::temp_dir().join(format!("{name}-{}.xml", std::process::id()));
    std::fs::write(&path, &bad).expect("write xml");
    let out = virsh(&a, &["define", path.to_str().expect("utf-8")]);
    let _ = std::fs::remove_file(&path);
    assert!(!out.status.success(), "defined with a missing emulator");
    let err = stderr_of(&out);
    assert!(err.contains("/nonexistent/qemu-system-x86_64"), "{err}");
    assert_eq!(domstate(&a, name), None, "nothing defined");
    // create (transient) is refused the same way.
    std::fs::write(&path, &bad).expect("write xml");
    let out = virsh(&a, &["create", path.to_str().expect("utf-8")]);
    let _ = std::fs::remove_file(&path);
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("/nonexistent/qemu-system-x86_64"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(domstate(&a, name), None, "nothing left");
    starts_once_fixed(&hosts, name, &good);
}

#[test]
fn qemu_unknown_machine_type_or_device() {
    let Some(mut hosts) = QemuHosts::start() else {
        return;
    };
    unsupported_device_is_refused_by_name(&mut hosts);
    let name = "q-badmachine";
    let (good, uuid) = hosts.guest_xml(name, 64, 8);
    let bad = good.replace("machine='pc'", "machine='no-such-machine'");
    assert_ne!(bad, good);
    // Refused at define, as libvirt does, in its words (the emulator's
    // machine list from its probe); nothing is defined.
    let path = std::env::temp_dir().join(format!("{name}-{}.xml", std::process::id()));
    std::fs::write(&path, &bad).expect("write xml");
    let out = virsh(&hosts.a_uri(), &["define", path.to_str().expect("utf-8")]);
    let _ = std::fs::remove_file(&path);
    assert!(!out.status.success(), "defined an unknown machine type");
    let err = stderr_of(&out);
    assert!(
        err.contains("unsupported configuration: Emulator '")
            && err.contains("does not support machine type 'no-such-machine'"),
        "{err}"
    );
    assert_eq!(domstate(&hosts.a_uri(), name), None, "nothing defined");
    assert!(procs_naming(&uuid).is_empty());
    starts_once_fixed(&hosts, name, &good);
}

#[test]
fn qemu_emulator_dying_at_start_reports_its_stderr() {
    let Some(hosts) = QemuHosts::start() else {
        return;
    };
    require_binary("python3").expect("python3");
    let dir = tempfile::tempdir().expect("tempdir");
    let name = "q-dies";
    let (good, uuid) = hosts.guest_xml(name, 64, 8);
    let fake = fake_emulator(
        dir.path(),
        "dying-emulator",
        "sys.stderr.write('fake-qemu: cannot initialise the frobnicator\\n')\nsys.exit(3)",
    );
    hosts.define_xml(&hosts.a_uri(), name, &with_emulator(&good, &fake));
    let err = start_fails(&hosts, name);
    assert!(
        err.contains("fake-qemu: cannot initialise the frobnicator"),
        "QEMU's stderr missing from the error: {err}"
    );
    nothing_left(&hosts, name, &uuid);
    starts_once_fixed(&hosts, name, &good);
}

#[test]
fn qemu_monitor_sending_garbage_or_an_endless_line() {
    let Some(hosts) = QemuHosts::start() else {
        return;
    };
    require_binary("python3").expect("python3");
    let dir = tempfile::tempdir().expect("tempdir");
    // Each fake accepts the daemon's connection, misbehaves, then waits
    // (bounded) to be killed: the daemon must not wait for it to exit.
    let garbage = fake_emulator(
        dir.path(),
        "garbage-emulator",
        "conn, _ = socket.socket(fileno=fd).accept()\n\
         conn.sendall(b'\\x00\\xffthis is not a QMP greeting\\n')\n\
         time.sleep(120)",
    );
    let endless = fake_emulator(
        dir.path(),
        "endless-emulator",
        "conn, _ = socket.socket(fileno=fd).accept()\n\
         chunk = b'{\"QMP\": \"' + b'a' * 65536\n\
         try:\n\
         \x20   for _ in range(1024):\n\
         \x20       conn.sendall(chunk)\n\
         except OSError:\n\
         \x20   pass\n\
         time.sleep(120)",
    );
    for (name, fake, want) in [
        ("q-garbage", &garbage, "qmp protocol violation"),
        ("q-endless", &endless, "qmp line longer than"),
    ] {
        let (good, uuid) = hosts.guest_xml(name, 64, 8);
        hosts.define_xml(&hosts.a_uri(), name, &with_emulator(&good, fake));
        let err = start_fails(&hosts, name);
        assert!(
            err.to_lowercase().contains(want),
            "{name}: expected '{want}' in: {err}\n{}",
            hosts.logs()
        );
        nothing_left(&hosts, name, &uuid);
        starts_once_fixed(&hosts, name, &good);
    }
}

/// A device the driver does not realise: refused by name at define, and at
/// start for a definition stored before; the domain stays defined.
fn unsupported_device_is_refused_by_name(hosts: &mut QemuHosts) {
    let a = hosts.a_uri();
    let name = "q-baddevice";
    let (good, uuid) = hosts.guest_xml(name, 64, 8);
    let bad = good.replace(
        "</domain>",
        "<devices><watchdog model='diag288' action='reset'/></devices></domain>",
    );
    let want = "unsupported configuration: watchdog model 'diag288'";
    // Refused at define (libvirt validates there too): nothing defined.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(format!("{name}.xml"));
    std::fs::write(&path, &bad).expect("write xml");
    let out = virsh(&a, &["define", path.to_str().expect("utf-8")]);
    assert!(!out.status.success(), "defined with a diag288 watchdog");
    assert!(stderr_of(&out).contains(want), "{}", stderr_of(&out));
    assert_eq!(domstate(&a, name), None, "nothing defined");

    // A definition stored before this driver realised its devices (an older
    // version kept them silently) is refused at start, by name, and the
    // domain stays defined and shut off.
    hosts.define_xml(&a, name, &good);
    let stored = hosts
        .a
        .stored_configs()
        .into_iter()
        .find(|p| p.to_string_lossy().contains(&uuid))
        .expect("stored config");
    std::fs::write(&stored, &bad).expect("rewrite the stored config");
    hosts.a.restart();
    let err = start_fails(hosts, name);
    assert!(err.contains(want), "{err}");
    nothing_left(hosts, name, &uuid);
    let config = hosts.virsh_ok(&a, &["dumpxml", "--inactive", name]);
    assert!(
        config.contains("diag288"),
        "the definition was lost:\n{config}"
    );
    starts_once_fixed(hosts, name, &good);
}
