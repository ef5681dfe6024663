//! A real QEMU guest (the workload kernel) managed through `migrated` by
//! stock `virsh` and by `migratectl`: define, start, dominfo, suspend,
//! resume, reboot, reset, inject-nmi, send-key, shutdown, the serial
//! console (python3-libvirt), setmem/setmaxmem, destroy; offline migration
//! of a shut-off guest; `virsh domcapabilities`; `virsh save` and `virsh
//! restore`; `virsh managedsave` and the start that restores it.

mod migrate_support;
mod qemu_support;

use std::time::Duration;

use migrated_tests::clients::{stderr_of, stdout_of, PYTHON_EVENT_LOOP};
use migrated_tests::{python, require_python_libvirt, virsh, wait_until, VirshEvents};
use qemu_support::{
    counter, counter_above, domstate, dump_into_fifo, dump_job_running, pid_gone, qemu_cmdline,
    qemu_pids, status_pid, virsh_err, QemuHosts,
};

/// Small guests: these tests prove management, not migration throughput.
const SMALL_MIB: u32 = 64;

/// Devices of the lifecycle guest: serial port 0 on a pty with the console
/// that mirrors it, and a balloon.
const CONSOLE_DEVICES: &str = "<devices><serial type='pty'><target port='0'/></serial>\
     <console type='pty'><target type='serial' port='0'/></console>\
     <memballoon model='virtio'/></devices>";

/// python3-libvirt on the guest's console (argv: URI, name): a first
/// session reads the workload's boot line after a reset; a second open is
/// refused (code 9) unless forced, which ends the first session's stream;
/// the forced session reads the next boot line, types more than the guest
/// reads, and finishes, after which the console opens again by alias; an
/// unknown device is code 1.
const CONSOLE: &str = r#"
import sys, threading, time
import libvirt

URI, NAME = sys.argv[1], sys.argv[2]
BANNER = b"migrated-guest: running"
libvirt.virEventRegisterDefaultImpl()
def loop():
    while True:
        libvirt.virEventRunDefaultImpl()
threading.Thread(target=loop, daemon=True).start()

def session(conn, dev, flags):
    st = conn.newStream(libvirt.VIR_STREAM_NONBLOCK)
    conn.lookupByName(NAME).openConsole(dev, st, flags)
    return st

def read_until(st, dom, needle, limit):
    # QEMU's pty notices a reader within a second: reset until the boot
    # line comes through.
    seen, deadline, next_reset = b"", time.time() + limit, 0
    while time.time() < deadline:
        if dom is not None and time.time() >= next_reset:
            dom.reset()
            next_reset = time.time() + 5
        try:
            data = st.recv(4096)
        except libvirt.libvirtError as e:
            return "error %d" % e.get_error_code()
        if data == -2:
            time.sleep(0.05)
            continue
        if not data:
            return "eof"
        seen += data
        if needle is not None and needle in seen:
            return "found"
    return "timeout"

c1 = libvirt.open(URI)
first = session(c1, None, 0)
print("first", read_until(first, c1.lookupByName(NAME), BANNER, 40))
c2 = libvirt.open(URI)
try:
    session(c2, None, 0)
    print("second opened")
except libvirt.libvirtError as e:
    print("second", e.get_error_code())
forced = session(c2, None, libvirt.VIR_DOMAIN_CONSOLE_FORCE)
print("first-after-force", read_until(first, None, None, 15))
print("forced", read_until(forced, c2.lookupByName(NAME), BANNER, 40))
# The workload never reads its serial port: typing more than the guest
# takes must not stall the session (finish still gets through).
typed, deadline = 0, time.time() + 20
while typed < 256 * 1024 and time.time() < deadline:
    n = forced.send(b"x" * 4096)
    if n == -2:
        time.sleep(0.01)
    else:
        typed += n
print("typed", typed >= 256 * 1024)
forced.finish()
print("finished")
again = session(c2, "serial0", libvirt.VIR_DOMAIN_CONSOLE_SAFE)
print("again opened")
again.abort()
try:
    session(c2, "parallel0", 0)
    print("nosuch opened")
except libvirt.libvirtError as e:
    print("nosuch", e.get_error_code())
"#;

/// python3-libvirt (argv: URI, name): a console session open while the
/// guest is destroyed sees the end of its data, and finishes.
/// Follows [`PYTHON_EVENT_LOOP`].
const CONSOLE_END: &str = r#"
URI, NAME = sys.argv[1], sys.argv[2]

conn = libvirt.open(URI)
dom = conn.lookupByName(NAME)
st = conn.newStream(libvirt.VIR_STREAM_NONBLOCK)
dom.openConsole(None, st, 0)
dom.destroy()
status, deadline = "timeout", time.time() + 15
while time.time() < deadline:
    try:
        data = st.recv(4096)
    except libvirt.libvirtError as e:
        status = "error %d" % e.get_error_code()
        break
    if data == -2:
        time.sleep(0.05)
    elif not data:
        status = "eof"
        break
print("after-destroy", status)
st.finish()
"#;

/// The counter of a paused guest stays put.
#[track_caller]
fn frozen(uri: &str, name: &str) {
    let first = counter(uri, name).expect("a paused guest still reports its counter");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        counter(uri, name),
        Some(first),
        "{name} counted while paused"
    );
}

/// Waits until the workload counts: two readings of its counter differ.
/// (After a reset its counter keeps its last value until the workload
/// boots again, so a value alone does not tell.)
#[track_caller]
fn counting(uri: &str, name: &str) {
    wait_until(Duration::from_secs(30), "the workload to count", || {
        let first = counter(uri, name)?;
        std::thread::sleep(Duration::from_millis(50));
        counter(uri, name).filter(|&now| now != first)
    });
}

/// The test guest's disk size.
const DISK_BYTES: u64 = 8 << 20;
/// The test guest's NIC.
const NIC_MAC: &str = "52:54:00:7e:57:02";

/// `virsh domblkstat` (the typed call: QEMU's counters, `errs` unknown),
/// `--human`, `domblkinfo` (QEMU's virtual size, the file's physical size)
/// and `domifstat` of a user-networking NIC, which has no host device: by
/// MAC it is found and refused as libvirt refuses it, by a name it is
/// unknown.
fn devices_of_a_running_guest(hosts: &QemuHosts, uri: &str, name: &str) {
    let blk = hosts.virsh_ok(uri, &["domblkstat", name, "vda"]);
    for field in [
        "rd_req",
        "rd_bytes",
        "wr_req",
        "wr_bytes",
        "flush_operations",
        "rd_total_times",
    ] {
        assert!(
            blk.contains(&format!("vda {field} ")),
            "{field} missing from {blk}"
        );
    }
    assert!(!blk.contains("errs"), "{blk}");
    let human = hosts.virsh_ok(uri, &["domblkstat", name, "vda", "--human"]);
    assert!(human.contains("number of read operations:"), "{human}");
    let unknown = virsh(uri, &["domblkstat", name, "vdz"]);
    assert!(
        !unknown.status.success() && stderr_of(&unknown).contains("invalid path: vdz"),
        "{}",
        stderr_of(&unknown)
    );
    let info = hosts.virsh_ok(uri, &["domblkinfo", name, "vda"]);
    for needle in [
        format!("Capacity:       {DISK_BYTES}"),
        format!("Physical:       {DISK_BYTES}"),
    ] {
        assert!(info.contains(&needle), "{needle:?} missing from {info}");
    }
    let by_mac = virsh(uri, &["domifstat", name, NIC_MAC]);
    assert!(
        !by_mac.status.success()
            && stderr_of(&by_mac).contains("internal error: Interface name not provided"),
        "{}",
        stderr_of(&by_mac)
    );
    let by_name = virsh(uri, &["domifstat", name, "vnet0"]);
    assert!(
        !by_name.status.success()
            && stderr_of(&by_name).contains("'vnet0' is not a known interface"),
        "{}",
        stderr_of(&by_name)
    );
    // The same figures in domstats' block and interface groups (served, so
    // --enforce passes): the disk with its path, counters and sizes; the
    // user-networking NIC counted but, having no host device, not named.
    let stats = hosts.virsh_ok(
        uri,
        &["domstats", "--block", "--interface", "--enforce", name],
    );
    for needle in [
        "block.count=1".to_owned(),
        "block.0.name=vda".to_owned(),
        "block.0.rd.reqs=".to_owned(),
        "block.0.wr.bytes=".to_owned(),
        "block.0.fl.times=".to_owned(),
        format!("block.0.capacity={DISK_BYTES}"),
        format!("block.0.physical={DISK_BYTES}"),
        "net.count=1".to_owned(),
    ] {
        assert!(stats.contains(&needle), "{needle:?} missing from {stats}");
    }
    assert!(
        stats
            .lines()
            .any(|l| l.trim().starts_with("block.0.path=") && l.ends_with("disk.img")),
        "{stats}"
    );
    for absent in ["net.0.", "block.0.errors", "state.state"] {
        assert!(!stats.contains(absent), "{absent:?} in {stats}");
    }
    // migratectl prints the same groups as virsh.
    let ctl = hosts.ctl_ok(
        uri,
        &["domstats", "--block", "--interface", "--enforce", name],
    );
    for needle in [
        format!("Domain: '{name}'"),
        "  block.0.name=vda".to_owned(),
        format!("  block.0.capacity={DISK_BYTES}"),
        "  net.count=1".to_owned(),
    ] {
        assert!(ctl.contains(&needle), "{needle:?} missing from {ctl}");
    }
    if require_python_libvirt().is_some() {
        let out = python(&format!(
            "import sys; sys.argv = ['stats', '{uri}', '{name}']\n{DEVICE_STATS}"
        ));
        let text = stdout_of(&out);
        assert!(out.status.success(), "{text}{}", stderr_of(&out));
        for line in [
            "block 1 vda",
            "rd.bytes int",
            "capacity 8388608",
            "net 1 False",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} missing: {text}");
        }
    }
}

/// python3-libvirt's `getAllDomainStats` with the block and interface
/// groups enforced (argv: URI, name): typed values under libvirt's keys.
const DEVICE_STATS: &str = r#"
import sys
import libvirt

URI, NAME = sys.argv[1], sys.argv[2]
conn = libvirt.open(URI)
groups = libvirt.VIR_DOMAIN_STATS_BLOCK | libvirt.VIR_DOMAIN_STATS_INTERFACE
flags = (libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE
         | libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_ENFORCE_STATS)
[st] = [st for dom, st in conn.getAllDomainStats(groups, flags) if dom.name() == NAME]
print("block", st["block.count"], st["block.0.name"])
print("rd.bytes", type(st["block.0.rd.bytes"]).__name__)
print("capacity", st["block.0.capacity"])
print("net", st["net.count"], "net.0.name" in st)
"#;

#[test]
fn qemu_virsh_lifecycle() {
    let Some(hosts) = QemuHosts::start() else {
        return;
    };
    let uri = hosts.a_uri();
    let name = "q-life-virsh";
    // A sparse 8 MiB raw disk and a user-networking NIC for the device
    // statistics, next to the serial console.
    let disk_dir = tempfile::tempdir().expect("temp dir");
    let image = disk_dir.path().join("disk.img");
    std::fs::File::create(&image)
        .and_then(|f| f.set_len(DISK_BYTES))
        .expect("create the disk image");
    let (xml, uuid) = hosts.guest_xml(name, SMALL_MIB, 8);
    let disk_and_nic = format!(
        "<disk type='file' device='disk'><driver name='qemu' type='raw'/>\
         <source file='{}'/><target dev='vda' bus='virtio'/></disk>\
         <interface type='user'><mac address='{NIC_MAC}'/><model type='virtio'/></interface>",
        image.display()
    );
    let devices = CONSOLE_DEVICES.replace("</devices>", &format!("{disk_and_nic}</devices>"));
    hosts.define_xml(
        &uri,
        name,
        &xml.replace("</domain>", &format!("{devices}</domain>")),
    );
    assert_eq!(domstate(&uri, name).as_deref(), Some("shut off"));
    assert!(qemu_pids(&uuid).is_empty());
    hosts.virsh_ok(&uri, &["start", name]);
    let info = hosts.virsh_ok(&uri, &["dominfo", name]);
    assert!(info.contains(&uuid), "{info}");
    assert!(
        info.lines()
            .any(|l| l.starts_with("State:") && l.ends_with("running")),
        "{info}"
    );
    assert!(
        info.lines()
            .any(|l| l.starts_with("Max memory:") && l.contains("65536 KiB")),
        "{info}"
    );
    let pid = status_pid(&hosts.a, name).expect("status file of a running guest");
    assert_eq!(qemu_pids(&uuid), vec![pid]);
    let c = counter_above(&uri, name, 0, &hosts);
    // domstats of a running QEMU guest: its CPU time has grown (the
    // workload has run) and the sizes are the XML's.
    let stats = hosts.virsh_ok(&uri, &["domstats", name]);
    let cpu_ns: u64 = stats
        .lines()
        .find_map(|l| l.trim().strip_prefix("cpu.time="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no cpu.time in {stats}"));
    assert!(cpu_ns > 0, "{stats}");
    for needle in ["state.state=1", "balloon.maximum=65536", "vcpu.0.state=1"] {
        assert!(stats.contains(needle), "{needle:?} missing from {stats}");
    }
    // As libvirt's QEMU driver: the user and system shares too, and
    // `cpu-stats --total` has all three; the split by host CPU needs a
    // cgroup per guest and is refused (as libvirt on a cgroup v2 host).
    let shares: Vec<u64> = ["cpu.user=", "cpu.system="]
        .iter()
        .map(|key| {
            stats
                .lines()
                .find_map(|l| l.trim().strip_prefix(key))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {key} in {stats}"))
        })
        .collect();
    assert!(shares.iter().sum::<u64>() > 0, "{stats}");
    let total = hosts.virsh_ok(&uri, &["cpu-stats", name, "--total"]);
    for needle in ["Total:", "cpu_time", "user_time", "system_time"] {
        assert!(total.contains(needle), "{needle:?} missing from {total}");
    }
    let per_cpu = virsh_err(&uri, &["cpu-stats", name]);
    assert!(
        per_cpu.contains("Operation not supported: CPU statistics per host CPU need a cgroup"),
        "{per_cpu}"
    );
    // The vCPU is a QEMU thread: its CPU time and host CPU come from /proc;
    // the resident size is QEMU's.
    let vcpus = hosts.virsh_ok(&uri, &["vcpuinfo", name]);
    assert!(vcpus.contains("State:          running"), "{vcpus}");
    assert!(!vcpus.contains("CPU time:       0.0s"), "{vcpus}");
    let mem = hosts.virsh_ok(&uri, &["dommemstat", name]);
    let rss_kib: u64 = mem
        .lines()
        .find_map(|l| l.strip_prefix("rss "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no rss in {mem}"));
    assert!(rss_kib > 1024, "{mem}");
    devices_of_a_running_guest(&hosts, &uri, name);
    // The real host's figures: /proc/stat and /proc/meminfo, one cell.
    let cpu = hosts.virsh_ok(&uri, &["nodecpustats"]);
    for needle in ["user:", "system:", "idle:", "iowait:"] {
        assert!(cpu.contains(needle), "{needle:?} missing from {cpu}");
    }
    let cells = hosts.virsh_ok(&uri, &["freecell", "--all"]);
    assert!(
        cells.contains("    0: ") && cells.contains("Total:"),
        "{cells}"
    );

    hosts.virsh_ok(&uri, &["suspend", name]);
    assert_eq!(domstate(&uri, name).as_deref(), Some("paused"));
    // As libvirt's QEMU driver: suspending a paused guest is a no-op that
    // succeeds, resuming a running one is refused.
    hosts.virsh_ok(&uri, &["suspend", name]);
    frozen(&uri, name);
    hosts.virsh_ok(&uri, &["resume", name]);
    assert_eq!(domstate(&uri, name).as_deref(), Some("running"));
    assert!(
        virsh_err(&uri, &["resume", name]).contains("domain is already running"),
        "resume of a running guest"
    );
    let c = counter_above(&uri, name, c.max(10), &hosts);
    // Shutdown and reboot modes as libvirt's QEMU driver answers them: the
    // agent alone needs an agent channel (this guest has none); initctl is
    // no mode of that driver.
    for command in ["shutdown", "reboot"] {
        let err = virsh_err(&uri, &[command, "--mode", "agent", name]);
        assert!(
            err.contains("argument unsupported: QEMU guest agent is not configured"),
            "{command}: {err}"
        );
        let err = virsh_err(&uri, &[command, "--mode", "initctl", name]);
        assert!(err.contains("unsupported flags (0x4)"), "{command}: {err}");
    }
    // domtime and domhostname ask the guest agent, as in libvirt's QEMU
    // driver; DHCP leases are no source of this daemon.
    for cmd in [
        &["domtime", name] as &[&str],
        &["domtime", name, "--now"],
        &["domhostname", name],
    ] {
        let err = virsh_err(&uri, cmd);
        assert!(
            err.contains("argument unsupported: QEMU guest agent is not configured"),
            "{cmd:?}: {err}"
        );
    }
    let err = virsh_err(&uri, &["domhostname", name, "--source", "lease"]);
    assert!(err.contains("unsupported flags (0x1)"), "{err}");
    assert_eq!(domstate(&uri, name).as_deref(), Some("running"));

    // virsh reboot, by default and by the power button named: the workload
    // powers off on the ACPI button and the same QEMU boots it again (its
    // pass counter starts over); `virsh event` sees reboots and no
    // lifecycle change, and the guest is running (booted). Then the reset
    // button, and an NMI (the workload has no handler: it resets too).
    let events = VirshEvents::spawn(&uri, &["--loop", "--all", "--domain", name]);
    events.sync_on_redefine(&uri, name);
    let reboots = || events.text().matches("event 'reboot' for domain").count();
    hosts.virsh_ok(&uri, &["reboot", name]);
    wait_until(
        Duration::from_secs(30),
        "the rebooted workload to count again",
        || counter(&uri, name).filter(|&n| n > 0 && n < c),
    );
    for args in [
        &["reboot", "--mode", "acpi", name][..],
        &["reset", name],
        &["inject-nmi", name],
    ] {
        // The workload runs again (its power button armed, no firmware
        // handling the NMI): each of these resets the guest once more.
        counting(&uri, name);
        let before = reboots();
        hosts.virsh_ok(&uri, args);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while reboots() <= before {
            assert!(
                std::time::Instant::now() < deadline,
                "no reboot event after {args:?}:\n{}",
                events.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    counting(&uri, name);
    let text = events.text();
    drop(events);
    for absent in ["Suspended", "Resumed", "Shutdown", "Stopped"] {
        assert!(!text.contains(absent), "{absent} in the events:\n{text}");
    }
    let state = hosts.virsh_ok(&uri, &["domstate", "--reason", name]);
    assert_eq!(state.trim(), "running (booted)");
    assert_eq!(qemu_pids(&uuid), vec![pid], "reboots keep the QEMU process");

    // send-key: key names of virsh's codesets become QEMU key numbers; a
    // code of no key is the daemon's error, a name of none virsh's own.
    hosts.virsh_ok(
        &uri,
        &[
            "send-key",
            name,
            "--holdtime",
            "50",
            "KEY_LEFTCTRL",
            "KEY_C",
        ],
    );
    hosts.virsh_ok(&uri, &["send-key", name, "--codeset", "win32", "VK_RETURN"]);
    let err = virsh_err(&uri, &["send-key", name, "--codeset", "usb", "0x4000"]);
    assert!(
        err.contains(
            "internal error: cannot translate keycode 16384 of usb codeset to qnum keycode"
        ),
        "{err}"
    );
    let err = virsh_err(&uri, &["send-key", name, "KEY_NO_SUCH_KEY"]);
    assert!(err.contains("invalid keycode: 'KEY_NO_SUCH_KEY'"), "{err}");

    // virsh shutdown (the agent allowed too, but there is none: the power
    // button): the workload powers off, QEMU exits, the guest is shut off
    // with libvirt's events; then it starts again for what follows.
    let events = VirshEvents::spawn(&uri, &["--loop", "--event", "lifecycle", "--domain", name]);
    events.sync_on_redefine(&uri, name);
    hosts.virsh_ok(&uri, &["shutdown", "--mode", "agent,acpi", name]);
    let text = events.wait_for("Stopped Shutdown", Duration::from_secs(30));
    drop(events);
    // The guest powered itself off (QEMU's SHUTDOWN says guest: true).
    assert!(
        text.contains("Shutdown Finished after guest request"),
        "{text}"
    );
    assert_eq!(domstate(&uri, name).as_deref(), Some("shut off"));
    assert!(pid_gone(pid), "QEMU {pid} outlived the guest's shutdown");
    for command in ["reboot", "inject-nmi"] {
        let err = virsh_err(&uri, &[command, name]);
        assert!(err.contains("domain is not running"), "{command}: {err}");
    }
    hosts.virsh_ok(&uri, &["start", name]);
    let pid = status_pid(&hosts.a, name).expect("status file of a running guest");
    counter_above(&uri, name, 0, &hosts);

    // The serial console: the workload prints its boot line on COM1.
    if require_python_libvirt().is_some() {
        let out = python(&format!(
            "import sys; sys.argv = ['console', '{uri}', '{name}']\n{CONSOLE}"
        ));
        let text = stdout_of(&out);
        assert!(out.status.success(), "{text}{}", stderr_of(&out));
        for line in [
            "first found",
            "second 9",
            "first-after-force error 39",
            "forced found",
            "typed True",
            "finished",
            "again opened",
            "nosuch 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} missing: {text}");
        }
    }

    // Memory: the maximum of a running guest is fixed; the balloon target
    // stays under it; the config keeps a smaller size for the next boot.
    let err = virsh_err(&uri, &["setmaxmem", name, "32M"]);
    assert!(
        err.contains("cannot resize the maximum memory on an active domain"),
        "{err}"
    );
    let err = virsh_err(&uri, &["setmem", name, "128M"]);
    assert!(
        err.contains("cannot set memory higher than max memory"),
        "{err}"
    );
    hosts.virsh_ok(&uri, &["setmem", name, "48M", "--live"]);
    hosts.virsh_ok(&uri, &["setmem", name, "40M", "--config"]);
    let inactive = hosts.virsh_ok(&uri, &["dumpxml", "--inactive", name]);
    assert!(
        inactive.contains("<currentMemory unit='KiB'>40960</currentMemory>"),
        "{inactive}"
    );
    assert_eq!(qemu_pids(&uuid), vec![pid], "setmem keeps the QEMU process");
    // The guest's own memory statistics: QEMU's balloon polls at the period
    // asked (read back from QEMU), the definitions keep it, and dommemstat
    // still answers while the guest (no balloon driver) never reports.
    hosts.virsh_ok(&uri, &["dommemstat", name, "--period", "3", "--live"]);
    hosts.virsh_ok(&uri, &["dommemstat", name, "--period", "4", "--config"]);
    let polled = hosts.virsh_ok(
        &uri,
        &[
            "qemu-monitor-command",
            name,
            r#"{"execute":"qom-get","arguments":{"path":"/machine/peripheral/balloon0","property":"guest-stats-polling-interval"}}"#,
        ],
    );
    assert!(polled.contains(r#""return":3"#), "{polled}");
    let live = hosts.virsh_ok(&uri, &["dumpxml", name]);
    assert!(live.contains("<stats period='3'/>"), "{live}");
    let inactive = hosts.virsh_ok(&uri, &["dumpxml", "--inactive", name]);
    assert!(inactive.contains("<stats period='4'/>"), "{inactive}");
    let mem = hosts.virsh_ok(&uri, &["dommemstat", name]);
    assert!(mem.contains("actual ") && mem.contains("rss "), "{mem}");

    // A title on the running guest, read back by a second client.
    hosts.virsh_ok(&uri, &["desc", name, "--title", "qemu guest"]);
    let titled = hosts.virsh_ok(&uri, &["list", "--title"]);
    assert!(
        titled
            .lines()
            .any(|l| l.contains(name) && l.trim_end().ends_with("qemu guest")),
        "{titled}"
    );

    // Destroyed under an open console: its stream ends (end of data).
    if require_python_libvirt().is_some() {
        let out = python(&format!(
            "{PYTHON_EVENT_LOOP}sys.argv = ['console', '{uri}', '{name}']\n{CONSOLE_END}"
        ));
        let text = stdout_of(&out);
        assert!(out.status.success(), "{text}{}", stderr_of(&out));
        assert!(text.lines().any(|l| l == "after-destroy eof"), "{text}");
    } else {
        hosts.virsh_ok(&uri, &["destroy", name]);
    }
    assert_eq!(domstate(&uri, name).as_deref(), Some("shut off"));
    assert!(pid_gone(pid), "QEMU {pid} outlived destroy");
    assert!(qemu_pids(&uuid).is_empty());
    // Shut off: the image file's own sizes, and no I/O statistics.
    let info = hosts.virsh_ok(&uri, &["domblkinfo", name, "vda"]);
    assert!(
        info.contains(&format!("Capacity:       {DISK_BYTES}")),
        "{info}"
    );
    let stats = virsh(&uri, &["domblkstat", name, "vda"]);
    assert!(
        !stats.status.success() && stderr_of(&stats).contains("domain is not running"),
        "{}",
        stderr_of(&stats)
    );
    // domstats of the shut-off guest, as libvirt's: the disk and the image
    // file's sizes, no counters, and no interface group at all.
    let stats = hosts.virsh_ok(&uri, &["domstats", "--block", "--interface", name]);
    for needle in [
        "block.count=1".to_owned(),
        "block.0.name=vda".to_owned(),
        format!("block.0.capacity={DISK_BYTES}"),
    ] {
        assert!(stats.contains(&needle), "{needle:?} missing from {stats}");
    }
    for absent in ["block.0.rd.", "net."] {
        assert!(!stats.contains(absent), "{absent:?} in {stats}");
    }
    let info = hosts.virsh_ok(&uri, &["dominfo", name]);
    assert!(
        info.lines()
            .any(|l| l.starts_with("Used memory:") && l.contains("40960 KiB")),
        "{info}"
    );
    hosts.virsh_ok(&uri, &["setmaxmem", name, "48M", "--config"]);
    let info = hosts.virsh_ok(&uri, &["dominfo", name]);
    assert!(
        info.lines()
            .any(|l| l.starts_with("Max memory:") && l.contains("49152 KiB")),
        "{info}"
    );
    hosts.virsh_ok(&uri, &["undefine", name]);
    assert_eq!(domstate(&uri, name), None);
}

#[test]
fn qemu_migratectl_lifecycle() {
    let Some(hosts) = QemuHosts::start() else {
        return;
    };
    let uri = hosts.b_uri();
    let name = "q-life-ctl";
    let (xml, uuid) = hosts.guest_xml(name, SMALL_MIB, 8);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("guest.xml");
    std::fs::write(&path, xml).expect("write XML");
    hosts.ctl_ok(&uri, &["define", path.to_str().expect("utf-8 path")]);
    hosts.ctl_ok(&uri, &["start", name]);
    let info = hosts.ctl_ok(&uri, &["dominfo", name]);
    assert!(info.contains(&uuid), "{info}");
    assert!(info.contains("running"), "{info}");
    let pid = status_pid(&hosts.b, name).expect("status file");
    let c = counter_above(&uri, name, 0, &hosts);
    hosts.ctl_ok(&uri, &["suspend", name]);
    assert_eq!(domstate(&uri, name).as_deref(), Some("paused"));
    frozen(&uri, name);
    hosts.ctl_ok(&uri, &["resume", name]);
    counter_above(&uri, name, c, &hosts);
    hosts.ctl_ok(&uri, &["destroy", name]);
    assert_eq!(domstate(&uri, name).as_deref(), Some("shut off"));
    assert!(pid_gone(pid));
    assert!(qemu_pids(&uuid).is_empty());
}

/// `virsh domcapabilities`: the default document (QEMU's default machine
/// resolved from its alias), another machine and domain type, and libvirt's
/// refusals of an unknown machine, architecture, domain type and binary.
fn check_domcapabilities(hosts: &QemuHosts, uri: &str) {
    let default = hosts.virsh_ok(uri, &["domcapabilities"]);
    assert!(default.starts_with("<domainCapabilities>"), "{default}");
    assert!(default.contains("<arch>x86_64</arch>"), "{default}");
    assert!(default.contains("<machine>pc-i440fx-"), "{default}");
    assert!(default.contains("<vcpu max='255'/>"), "{default}");
    // Usable or not depends on the host CPU under KVM; listed either way.
    assert!(default.contains(">qemu64</model>"), "{default}");
    let q35 = hosts.virsh_ok(
        uri,
        &["domcapabilities", "--virttype", "qemu", "--machine", "q35"],
    );
    assert!(q35.contains("<domain>qemu</domain>"), "{q35}");
    assert!(q35.contains("<machine>pc-q35-"), "{q35}");
    assert!(q35.contains("<vcpu max='288'/>"), "{q35}");
    assert!(
        q35.contains("<mode name='host-passthrough' supported='no'/>"),
        "{q35}"
    );
    for (args, wanted) in [
        (
            &["--machine", "nosuch"][..],
            "the machine 'nosuch' is not supported by emulator",
        ),
        (
            &["--arch", "aarch64"][..],
            "unable to find any emulator to serve 'aarch64' architecture",
        ),
        (
            &["--virttype", "xen"][..],
            "does not support virt type 'xen'",
        ),
        (&["--virttype", "bogus"][..], "unknown virttype: bogus"),
        (
            &["--emulatorbin", "/nonexistent/qemu"][..],
            "No such file or directory",
        ),
    ] {
        let err = virsh_err(uri, &[&["domcapabilities"][..], args].concat());
        assert!(err.contains(wanted), "{args:?}: {err}");
    }
}

/// `virsh sysinfo`: the host's SMBIOS description in libvirt's layout,
/// with a `<processor>` of the CPU vendor `/proc/cpuinfo` names; without
/// any description, libvirt's error.
fn check_sysinfo(hosts: &QemuHosts, uri: &str) {
    let vendor = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("vendor_id"))
                .and_then(|rest| rest.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        });
    let dmi = std::path::Path::new("/sys/class/dmi/id/sys_vendor").exists();
    if vendor.is_none() && !dmi {
        let err = virsh_err(uri, &["sysinfo"]);
        assert!(
            err.contains("unsupported configuration: Host SMBIOS information is not available"),
            "{err}"
        );
        return;
    }
    let out = hosts.virsh_ok(uri, &["sysinfo"]);
    assert!(out.starts_with("<sysinfo type='smbios'>\n"), "{out}");
    assert!(out.trim_end().ends_with("</sysinfo>"), "{out}");
    if let Some(vendor) = vendor {
        let entry = format!("  <processor>\n    <entry name='manufacturer'>{vendor}</entry>\n");
        assert!(out.contains(&entry), "{entry:?} missing from {out}");
    }
}

#[test]
fn qemu_virsh_offline_persistent() {
    let Some(hosts) = QemuHosts::start() else {
        return;
    };
    let (a, b) = (hosts.a_uri(), hosts.b_uri());
    check_domcapabilities(&hosts, &a);
    let name = "q-offline";
    let uuid = hosts.define(&a, name, SMALL_MIB, 8);
    check_sysinfo(&hosts, &a);
    // Shut off: no monitor to describe; the config has no IOThreads.
    let err = virsh_err(&a, &["domcontrol", name]);
    assert!(err.contains("domain is not running"), "{err}");
    let out = hosts.virsh_ok(&a, &["iothreadinfo", name]);
    assert_eq!(out.trim(), "No IOThreads found for the domain");
    // vCPU changes of the config, kept by the offline migration: two
    // slots more, one of them online.
    hosts.virsh_ok(&a, &["setvcpus", name, "3", "--maximum", "--config"]);
    hosts.virsh_ok(&a, &["setvcpus", name, "2", "--config"]);
    let err = virsh_err(&a, &["setvcpus", name, "4", "--config"]);
    assert!(
        err.contains(
            "requested vcpus is greater than max allowable vcpus for the persistent domain: 4 > 3"
        ),
        "{err}"
    );
    hosts.virsh_ok(
        &a,
        &["migrate", "--offline", "--persistent", name, b.as_str()],
    );
    let inactive = hosts.virsh_ok(&b, &["dumpxml", "--inactive", name]);
    assert!(
        inactive.contains("<vcpu current='2'>3</vcpu>"),
        "{inactive}"
    );
    assert_eq!(domstate(&b, name).as_deref(), Some("shut off"));
    assert_eq!(domstate(&a, name).as_deref(), Some("shut off"));
    let info = hosts.virsh_ok(&b, &["dominfo", name]);
    assert!(info.contains(&uuid), "{info}");
    assert!(info
        .lines()
        .any(|l| l.starts_with("Persistent:") && l.ends_with("yes")));
    assert!(
        qemu_pids(&uuid).is_empty(),
        "offline migration started QEMU"
    );
    // The moved definition boots the workload on the destination, with
    // the vCPUs it names online and a slot to plug the third into.
    hosts.virsh_ok(&b, &["start", name]);
    counter_above(&b, name, 0, &hosts);
    let line = qemu_cmdline(&uuid);
    assert!(line.contains("-smp 2,maxcpus=3,sockets=3"), "{line}");
    // A running guest: a ready monitor (a command may be in flight at
    // that moment, which libvirt calls occupied), no IOThreads.
    let control = hosts.virsh_ok(&b, &["domcontrol", name]);
    assert!(
        control.trim() == "ok" || control.starts_with("occupied ("),
        "{control}"
    );
    for flags in [&[][..], &["--live"]] {
        let out = hosts.virsh_ok(&b, &[&["iothreadinfo", name][..], flags].concat());
        assert_eq!(out.trim(), "No IOThreads found for the domain", "{flags:?}");
    }
    let err = virsh_err(
        &b,
        &["setvcpus", name, "3", "--maximum", "--live", "--config"],
    );
    assert!(
        err.contains("maximum vcpu count of a live domain can't be modified"),
        "{err}"
    );
    let err = virsh_err(&b, &["domrename", name, "q-renamed"]);
    assert!(err.contains("cannot rename active domain"), "{err}");
    hosts.virsh_ok(&b, &["destroy", name]);

    // Renamed while shut off: the config follows, under the same UUID.
    let out = hosts.virsh_ok(&b, &["domrename", name, "q-renamed"]);
    assert!(out.contains("Domain successfully renamed"), "{out}");
    let info = hosts.virsh_ok(&b, &["dominfo", "q-renamed"]);
    assert!(info.contains(&uuid), "{info}");
    assert_eq!(domstate(&b, name), None, "the old name is gone");
    let err = virsh_err(&b, &["domrename", "q-renamed", "q-renamed"]);
    assert!(err.contains("Can't rename domain to itself"), "{err}");
}

/// What [`check_save_image_xml`] puts in the saved guest's definition.
const EDITED: &str = "<description>edited in its save image</description>";

/// `virsh save-image-dumpxml` / `save-image-define` on the image of a
/// running guest: its XML, errors for a missing or foreign file and an XML
/// that changes the guest ABI, `--paused` then `--running` rewriting the
/// state to restore to; leaves the image restoring running with [`EDITED`].
fn check_save_image_xml(
    hosts: &QemuHosts,
    uri: &str,
    name: &str,
    uuid: &str,
    image: &str,
    dir: &std::path::Path,
) {
    let xml = hosts.virsh_ok(uri, &["save-image-dumpxml", image]);
    assert!(
        xml.contains(&format!("<name>{name}</name>")) && xml.contains(uuid),
        "{xml}"
    );
    let missing = dir.join("missing.img");
    let err = virsh_err(
        uri,
        &["save-image-dumpxml", missing.to_str().expect("utf-8")],
    );
    assert!(
        err.contains("Failed to open file") && err.contains("No such file or directory"),
        "{err}"
    );
    let foreign = dir.join("foreign.img");
    std::fs::write(&foreign, b"LibvirtQemudSave and then some").expect("write foreign file");
    let err = virsh_err(
        uri,
        &["save-image-dumpxml", foreign.to_str().expect("utf-8")],
    );
    assert!(err.contains("image magic is incorrect"), "{err}");

    let write = |file: &str, text: &str| {
        let path = dir.join(file);
        std::fs::write(&path, text).expect("write XML");
        path.to_str().expect("utf-8 path").to_owned()
    };
    let memory = xml
        .lines()
        .find(|l| l.trim_start().starts_with("<memory"))
        .expect("memory element");
    let other_abi = write(
        "abi.xml",
        &xml.replace(memory, "<memory unit='KiB'>123904</memory>"),
    );
    let err = virsh_err(uri, &["save-image-define", image, &other_abi]);
    assert!(err.contains("guest ABI would change"), "{err}");

    // A longer header (a new description) and the paused state...
    let uuid_line = xml
        .lines()
        .find(|l| l.trim_start().starts_with("<uuid>"))
        .expect("uuid element");
    let edited = write(
        "edited.xml",
        &xml.replace(uuid_line, &format!("{uuid_line}\n  {EDITED}")),
    );
    hosts.virsh_ok(uri, &["save-image-define", image, &edited, "--paused"]);
    let stored = hosts.virsh_ok(uri, &["save-image-dumpxml", image]);
    assert!(stored.contains(EDITED), "{stored}");
    // ...then only the state, back to running: what the restore must do.
    let stored = write("stored.xml", &stored);
    hosts.virsh_ok(uri, &["save-image-define", image, &stored, "--running"]);
}

#[test]
fn qemu_virsh_save_restore() {
    let Some(hosts) = QemuHosts::start() else {
        return;
    };
    let uri = hosts.a_uri();
    let name = "q-save";
    let started = std::time::Instant::now();
    let uuid = hosts.define(&uri, name, SMALL_MIB, 8);
    hosts.virsh_ok(&uri, &["start", name]);
    // Far enough that a guest booted afresh could not be there yet.
    let before = counter_above(&uri, name, 200, &hosts);
    eprintln!("q-save: counting at {before} after {:?}", started.elapsed());
    let pid = status_pid(&hosts.a, name).expect("status file");
    let dir = tempfile::tempdir().expect("temp dir");
    let image = dir.path().join("q-save.img");
    let image = image.to_str().expect("utf-8 path");
    hosts.virsh_ok(&uri, &["save", name, image]);
    eprintln!("q-save: saved after {:?}", started.elapsed());
    assert_eq!(domstate(&uri, name).as_deref(), Some("shut off"));
    assert!(pid_gone(pid), "QEMU {pid} outlived save");
    assert!(qemu_pids(&uuid).is_empty());
    assert!(
        std::fs::metadata(image).is_ok_and(|m| m.len() > 0),
        "no save image"
    );
    check_save_image_xml(&hosts, &uri, name, &uuid, image, dir.path());
    eprintln!("q-save: image XML edited after {:?}", started.elapsed());
    let events = VirshEvents::spawn(&uri, &["--loop", "--event", "lifecycle", "--domain", name]);
    events.sync_on_redefine(&uri, name);
    hosts.virsh_ok(&uri, &["restore", image]);
    eprintln!("q-save: restored after {:?}", started.elapsed());
    // libvirt's order: the guest is started, then its vCPUs resume.
    let text = events.wait_for("Resumed", Duration::from_secs(10));
    drop(events);
    let started_at = text.find("Started Restored");
    assert!(
        started_at.is_some_and(|at| text.find("Resumed").is_some_and(|r| at < r)),
        "events of the restore:\n{text}"
    );
    assert_eq!(domstate(&uri, name).as_deref(), Some("running"));
    let pids = qemu_pids(&uuid);
    assert_eq!(pids.len(), 1, "one QEMU after restore: {pids:?}");
    // The restored guest goes on from where it was saved, not from a reboot.
    let restored = counter(&uri, name).expect("counter right after restore");
    assert!(
        restored >= before,
        "restored at {restored}, saved at {before}"
    );
    let c = counter_above(&uri, name, restored, &hosts);
    // The restored guest runs with the definition save-image-define stored.
    let live = hosts.virsh_ok(&uri, &["dumpxml", name]);
    assert!(live.contains(EDITED), "{live}");

    // Managed save: the image the driver keeps, restored by the next start.
    hosts.virsh_ok(&uri, &["managedsave", name]);
    assert_eq!(domstate(&uri, name).as_deref(), Some("shut off"));
    assert!(qemu_pids(&uuid).is_empty(), "QEMU outlived managedsave");
    let listed = hosts.virsh_ok(&uri, &["list", "--all", "--managed-save"]);
    assert!(
        listed
            .lines()
            .any(|l| l.contains(name) && l.contains("saved")),
        "{listed}"
    );
    let info = hosts.virsh_ok(&uri, &["dominfo", name]);
    assert!(info.contains("Managed save:   yes"), "{info}");
    let err = virsh_err(&uri, &["undefine", name]);
    assert!(
        err.contains("Refusing to undefine while domain managed save image exists"),
        "{err}"
    );
    // managedsave-define --paused: the next start restores the guest paused.
    let stored = hosts.virsh_ok(&uri, &["managedsave-dumpxml", name]);
    assert!(stored.contains(&uuid), "{stored}");
    let stored_file = dir.path().join("managed.xml");
    std::fs::write(&stored_file, &stored).expect("write managed save XML");
    let stored_file = stored_file.to_str().expect("utf-8 path");
    hosts.virsh_ok(&uri, &["managedsave-define", name, stored_file, "--paused"]);
    hosts.virsh_ok(&uri, &["start", name]);
    assert_eq!(domstate(&uri, name).as_deref(), Some("paused"));
    hosts.virsh_ok(&uri, &["resume", name]);
    let from_image = counter(&uri, name).expect("counter right after start");
    assert!(from_image >= c, "started at {from_image}, saved at {c}");
    let info = hosts.virsh_ok(&uri, &["dominfo", name]);
    assert!(info.contains("Managed save:   no"), "{info}");
    let c = counter_above(&uri, name, from_image, &hosts);

    // --force-boot discards the image: the workload counts from zero again.
    hosts.virsh_ok(&uri, &["managedsave", name]);
    hosts.virsh_ok(&uri, &["start", "--force-boot", name]);
    let booted = counter(&uri, name).unwrap_or(0);
    assert!(booted < c, "force-boot went on from {booted}, saved at {c}");
    let info = hosts.virsh_ok(&uri, &["dominfo", name]);
    assert!(info.contains("Managed save:   no"), "{info}");

    // managedsave-remove, and undefine --managed-save.
    hosts.virsh_ok(&uri, &["managedsave", name]);
    hosts.virsh_ok(&uri, &["managedsave-remove", name]);
    let info = hosts.virsh_ok(&uri, &["dominfo", name]);
    assert!(info.contains("Managed save:   no"), "{info}");
    hosts.virsh_ok(&uri, &["start", name]);
    hosts.virsh_ok(&uri, &["managedsave", name]);
    hosts.virsh_ok(&uri, &["undefine", "--managed-save", name]);
    assert_eq!(domstate(&uri, name), None);
    assert!(qemu_pids(&uuid).is_empty());
}

/// Program headers of a 64-bit little-endian ELF core: (type, memsz).
fn elf_segments(core: &[u8]) -> Vec<(u32, u64)> {
    assert!(
        core.len() > 64 && core[..4] == *b"\x7fELF",
        "not an ELF file"
    );
    assert_eq!(core[4], 2, "ELFCLASS64");
    assert_eq!(u16::from_le_bytes([core[16], core[17]]), 4, "ET_CORE");
    let word = |at: usize| u64::from_le_bytes(core[at..at + 8].try_into().expect("8 bytes"));
    let half = |at: usize| usize::from(u16::from_le_bytes([core[at], core[at + 1]]));
    let (phoff, phentsize, phnum) = (word(0x20) as usize, half(0x36), half(0x38));
    (0..phnum)
        .map(|i| {
            let ph = phoff + i * phentsize;
            let kind = u32::from_le_bytes(core[ph..ph + 4].try_into().expect("4 bytes"));
            (kind, word(ph + 0x28))
        })
        .collect()
}

/// An ELF core of a guest of `mib` MiB: notes, and loads covering its RAM
/// (plus QEMU's firmware ROM, a few hundred KiB).
#[track_caller]
fn check_elf_core(core: &[u8], mib: u64) {
    const PT_LOAD: u32 = 1;
    const PT_NOTE: u32 = 4;
    let segments = elf_segments(core);
    assert!(segments.iter().any(|s| s.0 == PT_NOTE), "{segments:?}");
    let loaded: u64 = segments
        .iter()
        .filter(|s| s.0 == PT_LOAD)
        .map(|s| s.1)
        .sum();
    let ram = mib << 20;
    assert!(
        loaded >= ram && loaded <= ram + (4 << 20),
        "PT_LOAD covers {loaded} bytes of {ram}: {segments:?}"
    );
}

#[test]
fn qemu_virsh_dump_and_screenshot() {
    let Some(hosts) = QemuHosts::start() else {
        return;
    };
    let uri = hosts.a_uri();
    let name = "q-dump";
    let uuid = hosts.define(&uri, name, SMALL_MIB, 8);
    let dir = tempfile::tempdir().expect("temp dir");
    let file = |n: &str| dir.path().join(n).to_str().expect("utf-8 path").to_owned();
    let err = virsh_err(&uri, &["dump", name, &file("off.core"), "--memory-only"]);
    assert!(err.contains("domain is not running"), "{err}");
    hosts.virsh_ok(&uri, &["start", name]);
    let mut last = counter_above(&uri, name, 0, &hosts);

    // Memory-only, ELF, the guest paused meanwhile and running again after.
    let core = file("q-dump.elf");
    hosts.virsh_ok(&uri, &["dump", name, &core, "--memory-only"]);
    let bytes = std::fs::read(&core).expect("ELF core");
    check_elf_core(&bytes, u64::from(SMALL_MIB));
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&core).expect("core").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    assert_eq!(domstate(&uri, name).as_deref(), Some("running"));
    last = counter_above(&uri, name, last, &hosts);

    // Live, kdump-zlib: QEMU's kdump signature.
    let kdump = file("q-dump.kdump");
    hosts.virsh_ok(
        &uri,
        &[
            "dump",
            name,
            &kdump,
            "--memory-only",
            "--live",
            "--format",
            "kdump-zlib",
        ],
    );
    let bytes = std::fs::read(&kdump).expect("kdump core");
    // QEMU writes the flattened format: makedumpfile's header, then the
    // kdump header with its signature in the first data record.
    assert!(
        bytes.starts_with(b"makedumpfile"),
        "{:?}",
        &bytes[..12.min(bytes.len())]
    );
    assert!(
        bytes[..bytes.len().min(16 << 10)]
            .windows(8)
            .any(|w| w == b"KDUMP   "),
        "no kdump signature"
    );
    assert_eq!(domstate(&uri, name).as_deref(), Some("running"));
    last = counter_above(&uri, name, last, &hosts);

    // Not memory-only: the migration stream (QEMU's file magic), live.
    let stream = file("q-dump.stream");
    hosts.virsh_ok(&uri, &["dump", name, &stream, "--live"]);
    let bytes = std::fs::read(&stream).expect("stream dump");
    assert!(
        bytes.starts_with(b"QEVM"),
        "{:?}",
        &bytes[..4.min(bytes.len())]
    );
    assert_eq!(domstate(&uri, name).as_deref(), Some("running"));
    last = counter_above(&uri, name, last, &hosts);

    // Bad input: nothing changes.
    for (args, text) in [
        (
            vec!["--format", "kdump-zlib"],
            "--format only works with --memory-only",
        ),
        (
            vec!["--memory-only", "--format", "gzip"],
            "format 'gzip' is not supported",
        ),
        (vec!["--crash", "--reset"], "mutually exclusive"),
        (vec!["--live", "--reset"], "mutually exclusive"),
    ] {
        let mut all = vec!["dump", name, stream.as_str()];
        all.extend_from_slice(&args);
        let err = virsh_err(&uri, &all);
        assert!(
            err.contains(text) || err.contains("Failed to core dump"),
            "{args:?}: {err}"
        );
    }
    let err = virsh_err(
        &uri,
        &["dump", name, "/nonexistent-dir/q.core", "--memory-only"],
    );
    assert!(err.contains("No such file or directory"), "{err}");
    let err = virsh_err(&uri, &["-r", "dump", name, &file("ro.core")]);
    assert!(err.contains("operation forbidden"), "{err}");
    assert!(!dir.path().join("ro.core").exists());
    let err = virsh_err(&uri, &["screenshot", name, &file("none.png")]);
    assert!(err.contains("no screens to take screenshot from"), "{err}");
    assert_eq!(domstate(&uri, name).as_deref(), Some("running"));

    // A memory-only dump shows as a job with progress and cannot be aborted.
    let (out, bytes) = dump_into_fifo(
        &uri,
        &dir.path().join("mem.fifo"),
        &[
            "dump",
            name,
            &file("mem.fifo"),
            "--memory-only",
            "--verbose",
        ],
        || {
            dump_job_running(&uri, name);
            // Progress follows within one sampling period (200 ms).
            wait_until(Duration::from_secs(10), "the dump's progress", || {
                let info = hosts.virsh_ok(&uri, &["domjobinfo", name]);
                info.contains("Data total").then_some(())
            });
            // libvirt's domcontrol for an async job: "background job (Ns)".
            let control = hosts.virsh_ok(&uri, &["domcontrol", name]);
            assert!(control.starts_with("background job ("), "{control}");
            let err = virsh_err(&uri, &["domjobabort", name]);
            assert!(err.contains("cannot abort memory-only dump"), "{err}");
        },
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("Dump: ["), "{}", stderr_of(&out));
    check_elf_core(&bytes, u64::from(SMALL_MIB));
    last = counter_above(&uri, name, last, &hosts);
    let done = hosts.virsh_ok(&uri, &["domjobinfo", name, "--completed"]);
    assert!(
        done.contains("Completed") && done.contains("Dump"),
        "{done}"
    );

    // The migration-stream dump is aborted as libvirt aborts it; the guest
    // runs again.
    let (out, _) = dump_into_fifo(
        &uri,
        &dir.path().join("stream.fifo"),
        &["dump", name, &file("stream.fifo")],
        || {
            dump_job_running(&uri, name);
            assert_eq!(domstate(&uri, name).as_deref(), Some("paused"));
            // A state change waits libvirt's 30 s for the dump, then fails
            // naming it.
            let err = virsh_err(&uri, &["resume", name]);
            assert!(
                err.contains(
                    "Timed out during operation: cannot acquire state change lock \
                     (held by monitor=remoteDispatchDomainCoreDumpWithFormat)"
                ),
                "{err}"
            );
            hosts.virsh_ok(&uri, &["domjobabort", name]);
        },
    );
    assert!(!out.status.success(), "aborted dump succeeded");
    assert!(
        stderr_of(&out).contains("canceled by client"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(domstate(&uri, name).as_deref(), Some("running"));
    last = counter_above(&uri, name, last, &hosts);

    // --reset, then --crash: shut off, reason crashed.
    hosts.virsh_ok(&uri, &["dump", name, &core, "--memory-only", "--reset"]);
    assert_eq!(domstate(&uri, name).as_deref(), Some("running"));
    counting(&uri, name);
    let _ = last;
    hosts.virsh_ok(&uri, &["dump", name, &core, "--memory-only", "--crash"]);
    let state = hosts.virsh_ok(&uri, &["domstate", name, "--reason"]);
    assert!(state.contains("shut off (crashed)"), "{state}");
    assert!(qemu_pids(&uuid).is_empty(), "QEMU outlived dump --crash");

    // A guest with a VGA adapter: its screen.
    let screen = "q-screen";
    let (xml, _) = hosts.guest_xml(screen, SMALL_MIB, 8);
    let xml = xml.replace(
        "</os></domain>",
        "</os><devices><video><model type='vga'/></video></devices></domain>",
    );
    hosts.define_xml(&uri, screen, &xml);
    hosts.virsh_ok(&uri, &["start", screen]);
    counter_above(&uri, screen, 0, &hosts);
    let shot = file("screen.img");
    let saved = hosts.virsh_ok(&uri, &["screenshot", screen, &shot]);
    let image = std::fs::read(&shot).expect("screenshot");
    if saved.contains("image/png") {
        assert!(image.starts_with(b"\x89PNG\r\n\x1a\n"), "{saved}");
    } else {
        assert!(
            saved.contains("image/x-portable-pixmap") && image.starts_with(b"P6"),
            "{saved}"
        );
    }
    let err = virsh_err(&uri, &["screenshot", screen, &shot, "--screen", "1"]);
    assert!(err.contains("no such screen ID"), "{err}");
    hosts.virsh_ok(&uri, &["destroy", screen]);
}

/// What the comparison with libvirt 9.0 (docs/operations.md §"QEMU driver
/// compared with libvirt 9.0") made the same, on a guest with a serial
/// port, a disk, a NIC and a vCPU slot to spare: a vCPU plugged after boot
/// is recorded in `<vcpus>` and plugged again by the QEMU of a restore
/// (which could not load the saved state before); the console libvirt adds
/// for serial port 0 (`virsh ttyconsole`); `vcpupin` lists every slot;
/// `domstats --vcpu` has each vCPU's time; and libvirt's words for a QEMU
/// refusal, a duplicate disk target, an unknown interface, a count over
/// the maximum and `setvcpus --guest`; `start --autodestroy` (and its
/// refused migration).
#[test]
fn qemu_virsh_as_libvirt() {
    let Some(hosts) = QemuHosts::start() else {
        return;
    };
    let uri = hosts.a_uri();
    let name = "q-aslv";
    let dir = tempfile::tempdir().expect("temp dir");
    let disk = dir.path().join("q-aslv.raw");
    std::fs::File::create(&disk)
        .and_then(|f| f.set_len(16 << 20))
        .expect("raw disk");
    let disk = disk.to_str().expect("utf-8 path");
    let (xml, uuid) = hosts.guest_xml(name, SMALL_MIB, 8);
    let devices = format!(
        "<devices><disk type='file' device='disk'><driver name='qemu' type='raw'/>\
         <source file='{disk}'/><target dev='vda' bus='virtio'/></disk>\
         <interface type='user'><mac address='52:54:00:3a:51:01'/><model type='virtio'/>\
         </interface><serial type='pty'/></devices></domain>"
    );
    let xml = xml
        .replace("<vcpu>1</vcpu>", "<vcpu current='1'>2</vcpu>")
        .replace("</domain>", &devices);
    hosts.define_xml(&uri, name, &xml);
    hosts.virsh_ok(&uri, &["start", name]);

    // The console that mirrors serial port 0, with its pty.
    let tty = hosts.virsh_ok(&uri, &["ttyconsole", name]);
    assert!(tty.trim().starts_with("/dev/pts/"), "{tty}");
    let pins = hosts.virsh_ok(&uri, &["vcpupin", name]);
    let rows: Vec<&str> = pins
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()))
        .collect();
    assert_eq!(rows.len(), 2, "one row per vCPU slot: {pins}");

    // Refusals in libvirt's words.
    let err = virsh_err(&uri, &["domifstat", name, "vnet9"]);
    assert!(
        err.contains("error: invalid argument: 'vnet9' is not a known interface"),
        "{err}"
    );
    let err = virsh_err(&uri, &["setvcpus", name, "3", "--live"]);
    assert!(
        err.contains(
            "error: invalid argument: requested vcpus is greater than max allowable vcpus \
             for the live domain: 3 > 2"
        ),
        "{err}"
    );
    let err = virsh_err(&uri, &["setvcpus", name, "2", "--guest"]);
    assert!(
        err.contains("error: argument unsupported: QEMU guest agent is not configured"),
        "{err}"
    );
    let err = virsh_err(&uri, &["attach-disk", name, disk, "vda", "--live"]);
    assert!(
        err.contains(&format!(
            "error: XML error: target 'vda' duplicated for disk sources '{disk}' and '{disk}'"
        )),
        "{err}"
    );

    // A vCPU plugged now, then unplugged: QEMU refuses while the guest has
    // not switched its ACPI CPU hotplug on, in libvirt's words.
    hosts.virsh_ok(&uri, &["setvcpus", name, "2", "--live"]);
    let err = virsh_err(&uri, &["setvcpus", name, "1", "--live"]);
    assert!(
        err.contains("error: internal error: unable to execute QEMU command 'device_del': "),
        "{err}"
    );
    let live = hosts.virsh_ok(&uri, &["dumpxml", name]);
    for needle in [
        "<vcpu id='0' enabled='yes' hotpluggable='no' order='1'/>",
        "<vcpu id='1' enabled='yes' hotpluggable='yes' order='2'/>",
        "<console type='pty' tty='/dev/pts/",
    ] {
        assert!(live.contains(needle), "{needle:?} missing from {live}");
    }
    let stats = hosts.virsh_ok(&uri, &["domstats", "--vcpu", name]);
    for needle in ["vcpu.current=2", "vcpu.0.time=", "vcpu.1.time="] {
        assert!(stats.contains(needle), "{needle:?} missing from {stats}");
    }

    // Save and restore: the next QEMU boots one vCPU and plugs the other.
    let image = dir.path().join("q-aslv.img");
    let image = image.to_str().expect("utf-8 path");
    hosts.virsh_ok(&uri, &["save", name, image]);
    hosts.virsh_ok(&uri, &["restore", image]);
    assert_eq!(domstate(&uri, name).as_deref(), Some("running"));
    let line = qemu_cmdline(&uuid);
    assert!(line.contains("-smp 1,maxcpus=2"), "{line}");
    let count = hosts.virsh_ok(&uri, &["vcpucount", name, "--live", "--active"]);
    assert_eq!(count.trim(), "2", "{count}");
    counting(&uri, name);
    hosts.virsh_ok(&uri, &["destroy", name]);

    // start --autodestroy: the guest goes with virsh's connection, and
    // while that is open it cannot be migrated (libvirt's
    // qemuMigrationSrcIsAllowed); one virsh runs both commands.
    let b = hosts.b_uri();
    let both = format!("start --autodestroy {name}; migrate --live --p2p {name} {b}");
    let out = virsh(&uri, &[both.as_str()]);
    let err = stderr_of(&out);
    assert!(!out.status.success(), "migrated an auto-destroy guest");
    assert!(
        err.contains("Requested operation is not valid: domain is marked for auto destroy"),
        "{err}"
    );
    assert!(stdout_of(&out).contains("started"), "{}", stdout_of(&out));
    assert_eq!(domstate(&b, name), None, "the guest reached B");
    wait_until(Duration::from_secs(20), "the auto-destroy", || {
        (domstate(&uri, name).as_deref() == Some("shut off")).then_some(())
    });
    let reason = hosts.virsh_ok(&uri, &["domstate", "--reason", name]);
    assert_eq!(reason.trim(), "shut off (destroyed)");
    assert!(
        qemu_pids(&uuid).is_empty(),
        "QEMU outlived the auto-destroy"
    );
    hosts.virsh_ok(&uri, &["undefine", name]);
}
