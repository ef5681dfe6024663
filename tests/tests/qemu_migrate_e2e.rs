//! Live migration of a real QEMU guest (256 MiB, the workload kernel
//! dirtying 64 MiB per pass) between two `migrated` daemons, driven by stock
//! `virsh` and by `migratectl`: regular, `--p2p`, `--p2p --tunnelled`,
//! `--compressed`, `--auto-converge`, `--parallel` (multifd, once with
//! `--zerocopy`), `--copy-storage-*` (once with synchronous writes). After
//! each the source's QEMU is gone, the destination's is the only one running
//! the guest, and the workload counted past its value before the migration.
//! `--tls` adds QEMU-native TLS on the migration stream, with its refusals
//! and faults. The `--p2p` guest carries the devices virt-install gives a
//! Linux guest, which the destination's QEMU must have too (built from the
//! migratable XML the source sent).
//! `virsh event` watches one of them for QEMU's passes and the completed
//! job, then brings it back with `--timeout 1 --timeout-suspend`.

mod migrate_support;
mod qemu_support;

use std::time::Duration;

use migrated_tests::clients::{stderr_of, stdout_of};
use migrated_tests::{virsh, wait_until, VirshEvents};
use qemu_support::{
    counter_above, domstate, job_free, moved_and_counting, pid_gone, qemu_cmdline, qemu_pids,
    status_pid, QemuHosts, DIRTY_MIB, GUEST_MIB,
};

/// Devices of a virt-install Linux guest, and what the destination's QEMU
/// command line must name for them (JSON keys come sorted).
const DEVICES: &str = "<devices>
    <serial type='pty'><target type='isa-serial' port='0'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>
    <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
    <input type='tablet' bus='usb'/>
    <video><model type='virtio' heads='1'/></video>
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
  </devices>";
const DEVICE_IDS: [&str; 6] = [
    r#""driver":"usb-tablet","id":"input0""#,
    r#""id":"channel0","name":"org.qemu.guest_agent.0""#,
    r#""driver":"virtio-serial-pci","id":"virtio-serial0""#,
    r#""driver":"virtio-vga","id":"video0""#,
    r#""driver":"virtio-rng-pci","id":"rng0","rng":"objrng0""#,
    "isa-serial,chardev=charserial0,id=serial0",
];

#[derive(Clone, Copy)]
enum Tool {
    Virsh,
    Migratectl,
}

/// Migrates a running guest (with `devices` in its XML, and then one vCPU
/// online of three) from A to B.
fn live(tool: Tool, name: &str, flags: &[&str], devices: Option<&str>) {
    live_with(tool, name, flags, devices, |_| {});
}

/// [`live`], with `before` run on the daemons once the guest counts on A
/// and `after` once it moved.
fn live_with(
    tool: Tool,
    name: &str,
    flags: &[&str],
    devices: Option<&str>,
    hooks: impl Fn(Stage<'_>),
) {
    let Some(hosts) = QemuHosts::start() else {
        return;
    };
    let started = std::time::Instant::now();
    let (a, b) = (hosts.a_uri(), hosts.b_uri());
    let (uuid, before) = match devices {
        None => hosts.running_guest(name),
        Some(devices) => {
            let (xml, uuid) = hosts.guest_xml(name, GUEST_MIB, DIRTY_MIB);
            let xml = xml
                .replace("</domain>", &format!("{devices}</domain>"))
                .replace("<vcpu>1</vcpu>", "<vcpu current='1'>3</vcpu>");
            hosts.define_xml(&a, name, &xml);
            hosts.virsh_ok(&a, &["start", name]);
            (uuid.clone(), counter_above(&a, name, 0, &hosts))
        }
    };
    eprintln!("{name}: counting at {before} after {:?}", started.elapsed());
    let src_pid = status_pid(&hosts.a, name).expect("source status file");
    hooks(Stage::Before(&hosts));
    let mut args = vec!["migrate", "--live"];
    args.extend_from_slice(flags);
    if matches!(tool, Tool::Virsh) {
        // On a loaded 2-core machine TCG may not converge before virsh's
        // deadline: pause the guest after 20 s, as operators do.
        args.extend(["--timeout", "20"]);
    }
    args.extend([name, b.as_str()]);
    match tool {
        Tool::Virsh => hosts.virsh_ok(&a, &args),
        Tool::Migratectl => hosts.ctl_ok(&a, &args),
    };
    eprintln!("{name}: migrated after {:?}", started.elapsed());
    assert_eq!(domstate(&b, name).as_deref(), Some("running"));
    // Defined on A, so A keeps its (inactive) config.
    assert_eq!(domstate(&a, name).as_deref(), Some("shut off"));
    moved_and_counting(&hosts, name, &uuid, src_pid, before);
    eprintln!("{name}: counting on B after {:?}", started.elapsed());
    hooks(Stage::After(&hosts));
    if devices.is_some() {
        let line = qemu_cmdline(&uuid);
        for id in DEVICE_IDS {
            assert!(line.contains(id), "destination QEMU lacks {id}: {line}");
        }
        let live = hosts.virsh_ok(&b, &["dumpxml", name]);
        assert!(
            live.contains("<console type='pty' tty='/dev/pts/"),
            "no pty of the destination in its live XML:\n{live}"
        );
    }
    assert!(job_free(&a, name) && job_free(&b, name), "a job is left");
    hosts.virsh_ok(&b, &["destroy", name]);
    assert_eq!(
        domstate(&b, name),
        None,
        "transient guest gone after destroy"
    );
}

/// A regular migration of a guest that got devices while it ran: a NIC
/// (`attach-device --live`), then a disk (`attach-disk --live --config`),
/// each in the first free PCI slot, so the disk's slot is not the one the
/// destination's command line would give it unasked; and a second disk
/// detached before the migration, which the guest (no ACPI) never
/// releases, so it stays, as with libvirt. The destination's QEMU is built
/// with all three in their slots, or the migration would fail.
#[test]
fn qemu_virsh_live_regular() {
    let name = "q-regular";
    let images = tempfile::tempdir().expect("image dir");
    let image = |file: &str| {
        let path = images.path().join(file);
        std::fs::write(&path, vec![0u8; 1 << 20]).expect("write image");
        path.display().to_string()
    };
    let (vdb, vdc) = (image("vdb.img"), image("vdc.img"));
    live_with(Tool::Virsh, name, &[], None, |stage| match stage {
        Stage::Before(hosts) => hot_plug_before_migration(hosts, name, &vdb, &vdc),
        Stage::After(hosts) => {
            let (a, b) = (hosts.a_uri(), hosts.b_uri());
            let live = hosts.virsh_ok(&b, &["dumpxml", name]);
            for needle in [
                "<alias name='vdb'/>",
                "<alias name='vdc'/>",
                "<alias name='nic0'/>",
            ] {
                assert!(live.contains(needle), "{needle} missing on B:\n{live}");
            }
            // QEMU on B has the disk's node (query-blockstats).
            hosts.virsh_ok(&b, &["domblkstat", name, "vdb"]);
            let uuid = hosts.virsh_ok(&b, &["domuuid", name]);
            let line = qemu_cmdline(uuid.trim());
            let device = line
                .split(' ')
                .find(|arg| arg.contains(r#""id":"vdb""#))
                .unwrap_or_else(|| panic!("no vdb device on B: {line}"));
            assert!(
                device.contains(r#""addr":"0x"#),
                "vdb without its slot: {device}"
            );
            // A keeps its config, with the disk attached --config.
            let config = hosts.virsh_ok(&a, &["dumpxml", "--inactive", name]);
            assert!(config.contains(&vdb) && !config.contains(&vdc), "{config}");
        }
    });
}

/// The hot-plug steps of [`qemu_virsh_live_regular`] on A, with libvirt's
/// errors for what cannot be plugged.
fn hot_plug_before_migration(hosts: &QemuHosts, name: &str, vdb: &str, vdc: &str) {
    let a = hosts.a_uri();
    let events = VirshEvents::spawn(&a, &["--loop", "--all", "--domain", name]);
    events.sync_on_redefine(&a, name);
    let dir = tempfile::tempdir().expect("xml dir");
    let file = |file: &str, xml: &str| {
        let path = dir.path().join(file);
        std::fs::write(&path, xml).expect("write device XML");
        path.display().to_string()
    };
    let nic = file(
        "nic.xml",
        "<interface type='user'><mac address='52:54:00:4a:00:01'/><model type='virtio'/></interface>",
    );
    hosts.virsh_ok(&a, &["attach-device", name, &nic, "--live"]);
    // A running NIC's link can change (QEMU's set_link), nothing else.
    let down = file(
        "down.xml",
        "<interface type='user'><mac address='52:54:00:4a:00:01'/><model type='virtio'/>\
         <link state='down'/></interface>",
    );
    hosts.virsh_ok(&a, &["update-device", name, &down, "--live"]);
    let live = hosts.virsh_ok(&a, &["dumpxml", name]);
    assert!(live.contains("<link state='down'/>"), "{live}");
    let e1000 = file(
        "e1000.xml",
        "<interface type='user'><mac address='52:54:00:4a:00:01'/><model type='e1000'/></interface>",
    );
    let out = virsh(&a, &["update-device", name, &e1000, "--live"]);
    assert!(
        stderr_of(&out).contains("cannot modify network device configuration"),
        "{}",
        stderr_of(&out)
    );
    let attach = [
        "attach-disk",
        name,
        vdb,
        "vdb",
        "--live",
        "--config",
        "--subdriver",
        "raw",
    ];
    let out = hosts.virsh_ok(&a, &attach);
    assert!(out.contains("Disk attached successfully"), "{out}");
    events.wait_for(
        &format!("event 'device-added' for domain '{name}': vdb"),
        Duration::from_secs(10),
    );
    let live = hosts.virsh_ok(&a, &["dumpxml", name]);
    assert!(
        live.contains("<alias name='vdb'/>") && live.contains("<address type='pci'"),
        "{live}"
    );
    hosts.virsh_ok(&a, &["domblkstat", name, "vdb"]);
    let refusals: [(&[&str], &str); 3] = [
        (
            &["attach-disk", name, vdc, "vdb", "--live"],
            "XML error: target 'vdb' duplicated for disk sources",
        ),
        (
            &[
                "attach-disk",
                name,
                vdc,
                "hdc",
                "--targetbus",
                "ide",
                "--live",
            ],
            "disk bus 'ide' cannot be hotplugged.",
        ),
        (
            &[
                "detach-device",
                name,
                &file(
                    "vdz.xml",
                    "<disk type='file'><source file='/x'/><target dev='vdz'/></disk>",
                ),
                "--live",
            ],
            "device not found: disk vdz not found",
        ),
    ];
    for (args, expected) in refusals {
        let out = virsh(&a, args);
        assert!(
            !out.status.success() && stderr_of(&out).contains(expected),
            "{args:?}: {}",
            stderr_of(&out)
        );
    }
    // --config only: the persistent XML has the NIC, the running guest not.
    let mac = "52:54:00:4a:00:02";
    hosts.virsh_ok(
        &a,
        &[
            "attach-interface",
            name,
            "bridge",
            "br0",
            "--mac",
            mac,
            "--config",
        ],
    );
    let config = hosts.virsh_ok(&a, &["domiflist", name, "--inactive"]);
    assert!(config.contains(mac), "{config}");
    assert!(!hosts.virsh_ok(&a, &["domiflist", name]).contains(mac));
    hosts.virsh_ok(
        &a,
        &["detach-interface", name, "bridge", "--mac", mac, "--config"],
    );
    // Detached while running: the guest never releases it, the call
    // succeeds after libvirt's 5 s and the disk stays until it does.
    hosts.virsh_ok(&a, &["attach-disk", name, vdc, "vdc", "--live"]);
    let out = hosts.virsh_ok(&a, &["detach-disk", name, "vdc", "--live"]);
    assert!(out.contains("Disk detached successfully"), "{out}");
    let live = hosts.virsh_ok(&a, &["domblklist", name]);
    assert!(live.contains("vdc"), "{live}");
}

/// With the devices, a vCPU hot-plugged on A before the migration: the
/// destination QEMU boots the one vCPU the guest booted with
/// (`-smp 1,maxcpus=3`) and plugs the second again, as libvirt does from
/// `<vcpus>`, then can plug the third; the workload guest has no ACPI to
/// release one.
#[test]
fn qemu_virsh_live_p2p() {
    let name = "q-p2p";
    let vcpus = |hosts: &QemuHosts, uri: &str| {
        let info = hosts.virsh_ok(uri, &["dominfo", name]);
        info.lines()
            .find_map(|l| l.strip_prefix("CPU(s):"))
            .and_then(|n| n.trim().parse::<u32>().ok())
            .unwrap_or_else(|| panic!("no CPU(s) in {info}"))
    };
    live_with(
        Tool::Virsh,
        name,
        &["--p2p"],
        Some(DEVICES),
        |stage| match stage {
            Stage::Before(hosts) => {
                let a = hosts.a_uri();
                hosts.virsh_ok(&a, &["setvcpus", name, "2", "--live"]);
                assert_eq!(vcpus(hosts, &a), 2);
                let count = hosts.virsh_ok(&a, &["vcpucount", name]);
                for needle in [
                    "maximum      live           3",
                    "current      live           2",
                    "current      config         1",
                ] {
                    assert!(count.contains(needle), "{needle:?} missing from {count}");
                }
                let err = virsh(&a, &["setvcpus", name, "4", "--live"]);
                assert!(
                    stderr_of(&err).contains(
                        "requested vcpus is greater than max allowable vcpus for the live domain: 4 > 3"
                    ),
                    "{}",
                    stderr_of(&err)
                );
            }
            Stage::After(hosts) => {
                let b = hosts.b_uri();
                let uuid = hosts.virsh_ok(&b, &["domuuid", name]);
                let line = qemu_cmdline(uuid.trim());
                assert!(
                    line.contains("-smp 1,maxcpus=3,sockets=3,cores=1,threads=1"),
                    "{line}"
                );
                assert_eq!(vcpus(hosts, &b), 2);
                hosts.virsh_ok(&b, &["setvcpus", name, "3"]);
                assert_eq!(vcpus(hosts, &b), 3);
                let dumped = hosts.virsh_ok(&b, &["dumpxml", name]);
                assert!(dumped.contains(">3</vcpu>"), "{dumped}");
                // QEMU refuses the unplug while the guest has not switched
                // its ACPI CPU hotplug on; nothing changes.
                let err = virsh(&b, &["setvcpus", name, "2", "--live"]);
                assert!(!err.status.success(), "unplug without ACPI succeeded");
                assert_eq!(vcpus(hosts, &b), 3);
            }
        },
    );
}

#[test]
fn qemu_migratectl_live_p2p_tunnelled() {
    live(
        Tool::Migratectl,
        "q-tunnel",
        &["--p2p", "--tunnelled"],
        None,
    );
}

/// Where [`live_with`] runs its hooks.
enum Stage<'a> {
    /// The guest counts on A, nothing migrated yet.
    Before(&'a QemuHosts),
    /// The guest moved to B and counts there.
    After(&'a QemuHosts),
}

/// `virsh migrate --compressed` after `virsh migrate-compcache --size`: the
/// running source QEMU takes the XBZRLE cache size, and the compressed
/// migration (naming no `compression.xbzrle.cache`) keeps it. Once the
/// guest left, A's inactive copy has no cache to report (libvirt's "domain
/// is not running").
#[test]
fn qemu_virsh_live_compressed() {
    let name = "q-compressed";
    live_with(
        Tool::Virsh,
        name,
        &["--compressed"],
        None,
        |stage| match stage {
            Stage::Before(hosts) => {
                let a = hosts.a_uri();
                // QEMU's default
                let cache = hosts.virsh_ok(&a, &["migrate-compcache", name]);
                assert_eq!(cache.trim(), "Compression cache: 64.000 MiB");
                let cache = hosts.virsh_ok(&a, &["migrate-compcache", name, "--size", "33554432"]);
                assert_eq!(cache.trim(), "Compression cache: 32.000 MiB");
            }
            Stage::After(hosts) => {
                let set_up = ["compression set up", &format!("dom={name}")];
                let used = logged_field(&hosts.a.logs(), &set_up, "xbzrle_cache_size");
                assert_eq!(used.as_deref(), Some("Some(33554432)"), "{}", hosts.logs());
                let out = virsh(&hosts.a_uri(), &["migrate-compcache", name]);
                assert!(!out.status.success());
                assert!(
                    stderr_of(&out).contains("domain is not running"),
                    "{}",
                    stderr_of(&out)
                );
                multithreaded_back_and_forth(hosts, name);
            }
        },
    );
}

/// Back to A with `--comp-methods mt,xbzrle`, the `mt` tuning and an XBZRLE
/// cache of its own: B's QEMU compresses with the level, threads and cache
/// asked for, A's decompresses with its threads, and QEMU really sent pages
/// compressed. `mt` with `--parallel` is then refused in Begin (QEMU 7.2:
/// "Multifd is not compatible with compress"), leaving the guest running on
/// A, which goes to B again without compression.
fn multithreaded_back_and_forth(hosts: &QemuHosts, name: &str) {
    let (a, b) = (hosts.a_uri(), hosts.b_uri());
    let dom = format!("dom={name}");
    hosts.virsh_ok(
        &b,
        &[
            "migrate",
            "--live",
            "--compressed",
            "--comp-methods",
            "mt,xbzrle",
            "--comp-mt-level",
            "2",
            "--comp-mt-threads",
            "2",
            "--comp-mt-dthreads",
            "3",
            "--comp-xbzrle-cache",
            "16777216",
            "--timeout",
            "20",
            name,
            &a,
        ],
    );
    assert_eq!(domstate(&a, name).as_deref(), Some("running"));
    let b_log = hosts.b.logs();
    let set_up = ["compression set up", &dom];
    for (key, want) in [
        ("mt", "true"),
        ("xbzrle", "true"),
        ("compress_level", "Some(2)"),
        ("compress_threads", "Some(2)"),
        ("xbzrle_cache_size", "Some(16777216)"),
    ] {
        assert_eq!(
            logged_field(&b_log, &set_up, key).as_deref(),
            Some(want),
            "{key}\n{}",
            hosts.logs()
        );
    }
    assert_eq!(
        logged_field(
            &hosts.a.logs(),
            &["multithreaded decompression set up", &dom],
            "decompress_threads"
        )
        .as_deref(),
        Some("Some(3)"),
        "{}",
        hosts.logs()
    );
    let mt_pages = logged_field(&b_log, &["outgoing migration completed", &dom], "mt_pages")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no final statistics\n{}", hosts.logs()));
    eprintln!("{name}: {mt_pages} pages sent compressed by the mt method");
    assert!(mt_pages > 0, "{}", hosts.logs());
    let refused = virsh(
        &a,
        &[
            "migrate",
            "--live",
            "--compressed",
            "--comp-methods",
            "mt",
            "--parallel",
            name,
            &b,
        ],
    );
    assert!(!refused.status.success());
    let err = stderr_of(&refused);
    assert!(err.contains("'mt'") && err.contains("PARALLEL"), "{err}");
    assert_eq!(domstate(&a, name).as_deref(), Some("running"));
    hosts.virsh_ok(&a, &["migrate", "--live", name, &b]);
}

#[test]
fn qemu_migratectl_live_auto_converge() {
    live(Tool::Migratectl, "q-autoconv", &["--auto-converge"], None);
}

/// `virsh migrate` from A that must fail; returns virsh's stderr after
/// checking the guest still runs on A in the same QEMU (`src_pid`), which is
/// then the only QEMU running it, and that its workload still counts.
#[track_caller]
fn refused_on_source(
    hosts: &QemuHosts,
    name: &str,
    uuid: &str,
    src_pid: i32,
    args: &[&str],
) -> String {
    let a = hosts.a_uri();
    let out = virsh(&a, args);
    assert!(
        !out.status.success(),
        "virsh {args:?} succeeded: {}\n{}",
        stdout_of(&out),
        hosts.logs()
    );
    let before = qemu_support::counter(&a, name).unwrap_or(0);
    assert_eq!(domstate(&a, name).as_deref(), Some("running"), "{args:?}");
    assert_eq!(status_pid(&hosts.a, name), Some(src_pid), "{args:?}");
    // Finish(cancelled) has killed any incoming QEMU by the time virsh returns.
    assert_eq!(
        qemu_pids(uuid),
        vec![src_pid],
        "{args:?}: exactly the source's QEMU runs {name}\n{}",
        hosts.logs()
    );
    assert_eq!(
        status_pid(&hosts.b, name),
        None,
        "{args:?}: B kept a status file"
    );
    qemu_support::counter_above(&a, name, before, hosts);
    assert_eq!(
        domstate(&hosts.b_uri(), name),
        None,
        "{args:?}: B kept the guest"
    );
    assert!(job_free(&a, name), "{args:?}: a job is left");
    stderr_of(&out)
}

/// `virsh migrate --live --tls EXTRA… NAME DEST`.
fn tls_migrate_args<'a>(extra: &[&'a str], name: &'a str, dest: &'a str) -> Vec<&'a str> {
    let mut args = vec!["migrate", "--live", "--tls"];
    args.extend_from_slice(extra);
    args.extend([name, dest]);
    args
}

/// `virsh migrate --tls`: QEMU-native TLS on the migration stream, with each
/// daemon's own copy of the test PKI's QEMU files. Refused before anything
/// starts when the source's directory or the destination's key is missing,
/// or with `--tunnelled`; a source whose client certificate comes from
/// another CA is refused by the destination's QEMU (which proves the stream
/// is TLS and peers are verified), as is a `--tls-destination` the
/// destination's certificate does not name; each time the guest runs on in
/// its source QEMU, the only one. Then the guest moves A→B (regular, the
/// destination's certificate checked against the IP literal of the data URI)
/// and back B→A (`--p2p`, checked against `--tls-destination localhost`).
#[test]
fn qemu_virsh_live_tls() {
    let Some(hosts) = QemuHosts::start_tls() else {
        return;
    };
    let tls = hosts.tls.as_ref().expect("TLS directories");
    let (a, b) = (hosts.a_uri(), hosts.b_uri());
    let name = "q-tls";
    let (uuid, _) = hosts.running_guest(name);
    let src_pid = status_pid(&hosts.a, name).expect("source status file");
    let run = |extra: &[&str]| {
        refused_on_source(
            &hosts,
            name,
            &uuid,
            src_pid,
            &tls_migrate_args(extra, name, &b),
        )
    };

    // No credentials directory on the source: refused at Begin.
    let moved = tls.a.with_extension("moved");
    std::fs::rename(&tls.a, &moved).expect("move A's TLS directory away");
    let err = run(&[]);
    assert!(
        err.contains("Requested operation is not valid: migrate_tls_x509_cert_dir directory")
            && err.contains("does not exist"),
        "{err}"
    );
    std::fs::rename(&moved, &tls.a).expect("restore A's TLS directory");

    // No server key on the destination: refused at Prepare, before B starts a QEMU.
    let key = tls.b.join("server-key.pem");
    let moved = key.with_extension("moved");
    std::fs::rename(&key, &moved).expect("move B's server key away");
    let err = run(&["--p2p"]);
    assert!(
        err.contains(&format!(
            "Requested operation is not valid: Unable to access credentials {}",
            key.display()
        )),
        "{err}"
    );
    std::fs::rename(&moved, &key).expect("restore B's server key");

    // QEMU's TLS needs its own connection to the peer.
    let err = run(&["--p2p", "--tunnelled"]);
    assert!(
        err.contains("migration flag TLS cannot be used with migration flag TUNNELLED"),
        "{err}"
    );

    // A client certificate from another CA (A trusts both CAs, so its own
    // QEMU accepts it): B's QEMU refuses the handshake.
    let foreign = tls.pki.foreign_qemu_dir();
    for file in ["ca-cert.pem", "client-cert.pem", "client-key.pem"] {
        std::fs::copy(foreign.join(file), tls.a.join(file)).expect("install foreign client file");
    }
    let err = run(&[]);
    assert!(
        err.contains("operation failed: migration") && err.contains("TLS"),
        "{err}"
    );
    for file in ["ca-cert.pem", "client-cert.pem", "client-key.pem"] {
        std::fs::copy(tls.pki.qemu_dir().join(file), tls.a.join(file))
            .expect("restore client file");
    }

    // A destination name B's certificate does not carry.
    let err = run(&["--tls-destination", "wrong.example.org"]);
    assert!(
        err.contains("Certificate does not match the hostname wrong.example.org"),
        "{err}"
    );

    // A→B, regular: B's certificate checked against 127.0.0.1 (IP SAN).
    let before = qemu_support::counter(&a, name).expect("counter on A");
    hosts.virsh_ok(&a, &tls_migrate_args(&["--timeout", "20"], name, &b));
    assert_eq!(domstate(&b, name).as_deref(), Some("running"));
    moved_and_counting(&hosts, name, &uuid, src_pid, before);
    assert!(job_free(&a, name) && job_free(&b, name), "a job is left");

    // B→A, peer to peer: A's certificate checked against localhost (DNS SAN).
    let b_pid = status_pid(&hosts.b, name).expect("status file on B");
    let before = qemu_support::counter(&b, name).expect("counter on B");
    let extra = ["--p2p", "--timeout", "20", "--tls-destination", "localhost"];
    hosts.virsh_ok(&b, &tls_migrate_args(&extra, name, &a));
    wait_until(Duration::from_secs(20), "B's QEMU to exit", || {
        pid_gone(b_pid).then_some(())
    });
    let a_pid = status_pid(&hosts.a, name).expect("status file on A");
    assert_eq!(
        qemu_pids(&uuid),
        vec![a_pid],
        "exactly A's QEMU runs {name}"
    );
    assert_eq!(domstate(&a, name).as_deref(), Some("running"));
    qemu_support::counter_above(&a, name, before, &hosts);
    // The guest came to B transient, so B keeps nothing of it.
    assert_eq!(domstate(&b, name), None);
    assert!(job_free(&a, name), "a job is left");

    // A storage copy under TLS: the disk's NBD connection uses the same
    // credentials (B's NBD server accepts TLS clients only).
    if migrated_tests::require_binary("qemu-img").is_none() {
        return;
    }
    let dirs = tempfile::Builder::new()
        .prefix("migrated-storage-tls-")
        .tempdir()
        .expect("image dir");
    let name = "q-tls-storage";
    let (disk_a, disk_b) = (dirs.path().join("a.raw"), dirs.path().join("b.raw"));
    let data = patterned_raw(&disk_a, 2, 13);
    std::fs::write(&disk_b, vec![0u8; data.len()]).expect("dest image");
    storage_guest(
        &hosts,
        dirs.path(),
        name,
        &[("raw", &disk_a, &disk_b, "vdb")],
    )
    .migrate(&hosts, &["--tls", "--copy-storage-all"]);
    assert!(
        std::fs::read(&disk_b).expect("dest image") == data,
        "B's image holds A's bytes"
    );
}

/// libvirt's `VIR_ERR_INVALID_ARG`.
const INVALID_ARG: i32 = 8;
/// libvirt's `VIR_ERR_OPERATION_INVALID`.
const OPERATION_INVALID: i32 = 55;
/// libvirt's `VIR_ERR_ARGUMENT_UNSUPPORTED`.
const ARGUMENT_UNSUPPORTED: i32 = 74;

/// libvirt's words (its client library's) for NON_SHARED_SYNCHRONOUS_WRITES
/// without a storage copy.
const SYNC_WRITES_NEED_STORAGE: &str = "Flag 'VIR_MIGRATE_NON_SHARED_DISK | VIR_MIGRATE_NON_SHARED_INC' is required by flag 'VIR_MIGRATE_NON_SHARED_SYNCHRONOUS_WRITES'";

/// Parallel and zero-copy migration calls that are refused, and the flags
/// a plain migration cannot take (RDMA_PIN_ALL, NON_SHARED_SYNCHRONOUS_WRITES
/// without a storage copy), through python3-libvirt (for the error codes;
/// libvirt's client library refuses TUNNELLED with PARALLEL and synchronous
/// writes without a storage copy itself, so migratectl shows the daemon's
/// answer to those): each answers its code and words, and the guest keeps
/// running on the source with no job left. The python part is skipped
/// (loudly) without python3-libvirt, failing under CI.
fn parallel_refusals(hosts: &QemuHosts, name: &str) {
    let (a, b) = (hosts.a_uri(), hosts.b_uri());
    let err = migrate_support::ctl_fails(
        &a,
        &[
            "migrate",
            "--live",
            "--p2p",
            "--copy-storage-synchronous-writes",
            name,
            &b,
        ],
    );
    assert!(
        err.contains("invalid argument") && err.contains(SYNC_WRITES_NEED_STORAGE),
        "{err}"
    );
    let err = migrate_support::ctl_fails(
        &a,
        &[
            "migrate",
            "--live",
            "--p2p",
            "--tunnelled",
            "--parallel",
            name,
            &b,
        ],
    );
    assert!(
        err.contains("invalid argument")
            && err.contains(
                "Flags 'VIR_MIGRATE_TUNNELLED' and 'VIR_MIGRATE_PARALLEL' are mutually exclusive"
            ),
        "{err}"
    );
    if migrated_tests::require_python_libvirt().is_none() {
        return;
    }
    let script = format!(
        r#"
import libvirt
s = libvirt.open('{a}')
d = libvirt.open('{b}')
dom = s.lookupByName('{name}')
L, P2P, T, PAR = (libvirt.VIR_MIGRATE_LIVE, libvirt.VIR_MIGRATE_PEER2PEER,
                  libvirt.VIR_MIGRATE_TUNNELLED, libvirt.VIR_MIGRATE_PARALLEL)
N = libvirt.VIR_MIGRATE_PARAM_PARALLEL_CONNECTIONS
ZC = libvirt.VIR_MIGRATE_ZEROCOPY
p2p = lambda flags: dom.migrateToURI3('{b}', {{}}, L | P2P | flags)
cases = [
    ('tunnelled', lambda: p2p(T | PAR)),
    ('no-flag', lambda: dom.migrate3(d, {{N: 4}}, L)),
    ('zero', lambda: dom.migrate3(d, {{N: 0}}, L | PAR)),
    ('too-many', lambda: dom.migrateToURI3('{b}', {{N: 256}}, L | P2P | PAR)),
    ('zc-serial', lambda: p2p(ZC)),
    ('zc-compressed', lambda: p2p(PAR | ZC | libvirt.VIR_MIGRATE_COMPRESSED)),
    ('zc-tls', lambda: dom.migrate3(d, {{}}, L | PAR | ZC | libvirt.VIR_MIGRATE_TLS)),
    ('rdma-pin-all', lambda: p2p(libvirt.VIR_MIGRATE_RDMA_PIN_ALL)),
    ('sync-writes', lambda: p2p(libvirt.VIR_MIGRATE_NON_SHARED_SYNCHRONOUS_WRITES)),
]
for label, call in cases:
    try:
        call()
        print(label, 'unexpected success')
    except libvirt.libvirtError as e:
        print(label, 'code', e.get_error_code(), e.get_error_message())
print('state', dom.state()[0])
"#
    );
    let out = migrated_tests::python(&script);
    let text = migrated_tests::clients::stdout_of(&out);
    assert!(
        out.status.success(),
        "{text}{}
{}",
        migrated_tests::clients::stderr_of(&out),
        hosts.logs()
    );
    for (label, code, words) in [
        ("tunnelled", INVALID_ARG, &["mutually exclusive"][..]),
        (
            "no-flag",
            INVALID_ARG,
            &["Turn parallel migration on to tune it"][..],
        ),
        ("zero", INVALID_ARG, &["parallel.connections"][..]),
        (
            "too-many",
            INVALID_ARG,
            &["parallel.connections", "256"][..],
        ),
        (
            "zc-serial",
            OPERATION_INVALID,
            &["zero-copy is only available for parallel migration"][..],
        ),
        (
            "zc-compressed",
            ARGUMENT_UNSUPPORTED,
            &["ZEROCOPY", "COMPRESSED"][..],
        ),
        ("zc-tls", ARGUMENT_UNSUPPORTED, &["ZEROCOPY", "TLS"][..]),
        (
            "rdma-pin-all",
            ARGUMENT_UNSUPPORTED,
            &["RDMA_PIN_ALL", "QEMU driver"][..],
        ),
        // libvirt's client library refuses this one itself; migratectl
        // above showed the daemon's answer in the same words.
        ("sync-writes", INVALID_ARG, &[SYNC_WRITES_NEED_STORAGE][..]),
    ] {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{label} ")))
            .unwrap_or_else(|| panic!("no answer for {label}:\n{text}"));
        assert!(
            line.starts_with(&format!("{label} code {code} ")),
            "{label}: {line}"
        );
        for w in words {
            assert!(line.contains(w), "{label} should mention {w:?}: {line}");
        }
    }
    assert!(text.contains("state 1"), "the guest runs on: {text}");
    assert!(job_free(&a, name), "a job is left");
    assert_eq!(domstate(&b, name), None, "nothing arrived on B");
}

/// The `key=value` field of the daemon log line holding every word of `what`.
fn logged_field(log: &str, what: &[&str], key: &str) -> Option<String> {
    let line = log.lines().find(|l| what.iter().all(|w| l.contains(w)))?;
    let value = line.split(&format!("{key}=")).nth(1)?;
    Some(value.split_whitespace().next()?.to_owned())
}

/// Asserts that QEMU itself ran `name`'s migration over multifd with
/// `channels` connections: the destination QEMU reported the capability on
/// and that channel count after Prepare set them, and the source QEMU
/// counted bytes sent over multifd channels (`ram.multifd-bytes`, zero
/// for a single-stream migration).
fn used_multifd(hosts: &QemuHosts, name: &str, channels: u32) {
    let dom = format!("dom={name}");
    let incoming = ["incoming migration: parallel connections set up", &dom];
    let b_log = hosts.b.logs();
    assert_eq!(
        logged_field(&b_log, &incoming, "multifd").as_deref(),
        Some("true"),
        "destination QEMU without multifd\n{}",
        hosts.logs()
    );
    assert_eq!(
        logged_field(&b_log, &incoming, "multifd_channels"),
        Some(format!("Some({channels})")),
        "{}",
        hosts.logs()
    );
    let multifd_bytes = logged_field(
        &hosts.a.logs(),
        &["outgoing migration completed", &dom],
        "multifd_bytes",
    )
    .and_then(|v| v.parse::<u64>().ok())
    .unwrap_or_else(|| panic!("no final statistics of {name}\n{}", hosts.logs()));
    eprintln!("{name}: {multifd_bytes} bytes over {channels} multifd channels");
    // At least the guest's working set went over the parallel channels.
    let working_set = u64::from(qemu_support::DIRTY_MIB) << 20;
    assert!(
        multifd_bytes >= working_set,
        "{name}: {multifd_bytes} bytes over multifd\n{}",
        hosts.logs()
    );
}

/// Asserts that the source QEMU of `name`'s migration had `zero-copy-send`
/// on (as it reported it once Perform set it up) and that the completed
/// migration's statistics were logged with QEMU's zero-copy figure.
fn used_zero_copy(hosts: &QemuHosts, name: &str) {
    let dom = format!("dom={name}");
    let a_log = hosts.a.logs();
    assert_eq!(
        logged_field(
            &a_log,
            &["outgoing migration: zero-copy send set up", &dom],
            "zero_copy_send"
        )
        .as_deref(),
        Some("true"),
        "source QEMU without zero-copy-send\n{}",
        hosts.logs()
    );
    // Over loopback the kernel copies what MSG_ZEROCOPY queued, and QEMU
    // counts the syncs at which it did: informative, not asserted.
    let missed = logged_field(
        &a_log,
        &["outgoing migration completed", &dom],
        "zero_copy_missed",
    )
    .unwrap_or_else(|| panic!("no final statistics of {name}\n{}", hosts.logs()));
    eprintln!("{name}: zero-copy sends the kernel copied at {missed} syncs");
}

/// `virsh migrate --live --parallel --parallel-connections 4 --zerocopy`,
/// after the refused parallel and zero-copy combinations on the same guest;
/// then, on the same daemons, a second guest with migratectl `--p2p
/// --parallel` (libvirt's default of 2 connections, copying as usual). Both
/// QEMUs really ran multifd each time, the first with zero-copy sends, and
/// the completed job statistics still count the RAM sent.
#[test]
fn qemu_live_parallel_virsh_and_migratectl_p2p() {
    let Some(hosts) = QemuHosts::start() else {
        return;
    };
    let (a, b) = (hosts.a_uri(), hosts.b_uri());
    let working_set = u64::from(qemu_support::DIRTY_MIB) << 20;
    for (name, channels) in [("q-parallel", 4), ("q-parallel-p2p", 2)] {
        let (uuid, before) = hosts.running_guest(name);
        let src_pid = status_pid(&hosts.a, name).expect("source status file");
        if channels == 4 {
            parallel_refusals(&hosts, name);
            // virsh's deadline, as in `live`.
            hosts.virsh_ok(
                &a,
                &[
                    "migrate",
                    "--live",
                    "--parallel",
                    "--parallel-connections",
                    "4",
                    "--zerocopy",
                    "--timeout",
                    "20",
                    name,
                    &b,
                ],
            );
            used_zero_copy(&hosts, name);
        } else {
            hosts.ctl_ok(&a, &["migrate", "--live", "--p2p", "--parallel", name, &b]);
        }
        assert_eq!(domstate(&b, name).as_deref(), Some("running"));
        moved_and_counting(&hosts, name, &uuid, src_pid, before);
        used_multifd(&hosts, name, channels);
        // Managed: B's figures come from A's in the cookie; p2p: A's own.
        let stats_side = if channels == 4 { &b } else { &a };
        let processed = completed_data_processed(&hosts, stats_side, name);
        assert!(
            processed >= working_set,
            "{name}: {processed} bytes processed\n{}",
            hosts.logs()
        );
        assert!(job_free(&a, name) && job_free(&b, name), "a job is left");
        hosts.virsh_ok(&b, &["destroy", name]);
    }
}

/// `Data processed:` of a `domjobinfo` output, in bytes; `None` without
/// the line.
fn data_processed(info: &str) -> Option<u64> {
    let line = info.lines().find(|l| l.starts_with("Data processed:"))?;
    let mut words = line["Data processed:".len()..].split_whitespace();
    let value: f64 = words
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("unreadable line {line:?}"));
    let unit = match words.next() {
        Some("B") => 1.0,
        Some("KiB") => 1024.0,
        Some("MiB") => 1024.0 * 1024.0,
        Some("GiB") => 1024.0 * 1024.0 * 1024.0,
        other => panic!("unknown unit {other:?} in {line:?}"),
    };
    Some((value * unit) as u64)
}

/// `Data processed:` of `domjobinfo --completed` on `uri`, in bytes.
fn completed_data_processed(hosts: &QemuHosts, uri: &str, name: &str) -> u64 {
    let info = hosts.virsh_ok(uri, &["domjobinfo", "--completed", name]);
    data_processed(&info).unwrap_or_else(|| panic!("no 'Data processed' in domjobinfo:\n{info}"))
}

/// A dirtying guest's migration moves at least its working set: the
/// completed job statistics on both sides say so (the destination's come
/// from the source's final figures, carried in the cookie). `virsh event`
/// on the source prints each of QEMU's passes (`MIGRATION_PASS`) as a
/// migration-iteration and the completed job's statistics. Then the
/// guest goes back with `--timeout-suspend`, and once more throttled and
/// retuned mid-migration.
#[test]
fn qemu_dirtying_guest_job_stats_count_the_working_set() {
    let Some(hosts) = QemuHosts::start() else {
        return;
    };
    let (a, b) = (hosts.a_uri(), hosts.b_uri());
    let name = "q-stats";
    let (uuid, before) = hosts.running_guest(name);
    let src_pid = status_pid(&hosts.a, name).expect("source status file");
    let events = VirshEvents::spawn(&a, &["--loop", "--all", "--domain", name]);
    events.sync_on_redefine(&a, name);
    hosts.ctl_ok(&a, &["migrate", "--live", "--p2p", name, &b]);
    events.wait_for("event 'job-completed'", Duration::from_secs(30));
    let text = events.wait_for("\tsuccess: ", Duration::from_secs(30));
    drop(events);
    let (iterations, stats) = migrate_support::job_events(&text, name);
    eprintln!(
        "{name}: {} passes, each a migration-iteration event",
        iterations.len()
    );
    for key in ["data_total", "time_elapsed"] {
        assert!(stats.contains_key(key), "no {key} in:\n{text}");
    }
    moved_and_counting(&hosts, name, &uuid, src_pid, before);
    let working_set = u64::from(qemu_support::DIRTY_MIB) << 20;
    for (side, uri) in [("source", &a), ("destination", &b)] {
        let processed = completed_data_processed(&hosts, uri, name);
        eprintln!("{side}: data processed {processed} bytes");
        assert!(
            processed >= working_set,
            "{side} reports {processed} bytes processed, less than the {working_set} bytes \
             the guest rewrites every pass\n{}",
            hosts.logs()
        );
    }
    timeout_suspend_back(&hosts, name);
    retuned_mid_migration(&hosts, name);
}

/// The dirtying guest crawls back to B at 1 MiB/s, which could never
/// converge (64 MiB rewritten per pass). `domjobinfo` follows QEMU's
/// progress within the first pass, which takes a minute at that speed
/// (libvirt asks QEMU at every call). Then `virsh migrate-setmaxdowntime`
/// and `migrate-setspeed`: as with libvirt, the running migration takes the
/// new limits at once and completes.
fn retuned_mid_migration(hosts: &QemuHosts, name: &str) {
    let (a, b) = (hosts.a_uri(), hosts.b_uri());
    let migrate = std::thread::spawn({
        let (a, b, name) = (a.clone(), b.clone(), name.to_owned());
        move || virsh(&a, &["migrate", "--live", "--bandwidth", "1", &name, &b])
    });
    let processed = wait_until(
        Duration::from_secs(30),
        "domjobinfo to show the first pass under way",
        || data_processed(&stdout_of(&virsh(&a, &["domjobinfo", name]))).filter(|&p| p >= 2 << 20),
    );
    eprintln!("{name}: {processed} bytes processed within the first pass");
    hosts.virsh_ok(&a, &["migrate-setmaxdowntime", name, "2000"]);
    hosts.virsh_ok(&a, &["migrate-setspeed", name, "100000"]);
    assert_eq!(
        hosts.virsh_ok(&a, &["migrate-getspeed", name]).trim(),
        "100000"
    );
    let out = migrate.join().expect("virsh migrate thread");
    assert!(
        out.status.success(),
        "virsh migrate after migrate-setspeed: {}\n{}",
        stderr_of(&out),
        hosts.logs()
    );
    assert_eq!(domstate(&b, name).as_deref(), Some("running"));
    assert_ne!(
        domstate(&a, name).as_deref(),
        Some("running"),
        "the guest still runs on A"
    );
}

/// `virsh migrate --timeout 1 --timeout-suspend` of the dirtying guest
/// throttled to 16 MiB/s: 64 MiB rewritten per pass cannot fit QEMU's
/// 300 ms downtime at that speed, so the migration only completes because
/// virsh suspended the guest mid-migration (QEMU `stop` while migrating).
/// The guest then runs on the destination with libvirt's state
/// (`running (migrated)`: it was running when the migration began), and a
/// RESUME from a second client meanwhile waits for the job and then finds
/// the guest gone from the source.
fn timeout_suspend_back(hosts: &QemuHosts, name: &str) {
    let (a, b) = (hosts.a_uri(), hosts.b_uri());
    let before = counter_above(&b, name, 0, hosts);
    let args = [
        "migrate",
        "--live",
        "--bandwidth",
        "16",
        "--timeout",
        "1",
        "--timeout-suspend",
        name,
        &a,
    ];
    let (out, resume) = migrate_support::migrate_with_resume(&b, &args, name, || {
        wait_until(Duration::from_secs(30), "the migration job on B", || {
            (!job_free(&b, name)).then_some(())
        });
    });
    assert!(
        out.status.success(),
        "virsh migrate --timeout-suspend: {}\n{}",
        stderr_of(&out),
        hosts.logs()
    );
    assert!(!resume.status.success(), "resume after the migration");
    assert_eq!(
        hosts.virsh_ok(&a, &["domstate", "--reason", name]).trim(),
        "running (migrated)"
    );
    assert_eq!(domstate(&b, name), None, "the transient guest left B");
    let after = counter_above(&a, name, before, hosts);
    eprintln!("{name}: suspended by virsh after 1 s, moved back; counter {before} -> {after}");
}

/// The SPICE port of `name`'s live definition on `uri`.
fn spice_port(hosts: &QemuHosts, uri: &str, name: &str) -> u16 {
    let xml = hosts.virsh_ok(uri, &["dumpxml", name]);
    let graphics = xml
        .split("<graphics")
        .nth(1)
        .unwrap_or_else(|| panic!("no graphics in\n{xml}"));
    let port = graphics
        .split("port='")
        .nth(1)
        .or_else(|| graphics.split("port=\"").nth(1))
        .and_then(|rest| rest.split(['\'', '"']).next())
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or_else(|| panic!("no spice port in\n{xml}"));
    assert!(port > 0, "spice port {port}");
    port
}

/// Graphics relocation: the destination puts its QEMU's actual SPICE port
/// in Prepare's cookie and the source's QEMU is told with
/// `client_migrate_info` before `migrate` (libvirt's
/// qemuMigrationSrcGraphicsRelocate). The source daemon logs QEMU's
/// acceptance of that command with the host and port it sent.
#[test]
fn qemu_spice_clients_are_relocated_to_the_destination() {
    let Some(hosts) = QemuHosts::start() else {
        return;
    };
    let (a, b) = (hosts.a_uri(), hosts.b_uri());
    for (name, flags) in [("q-spice", &[][..]), ("q-spice-p2p", &["--p2p"][..])] {
        let (xml, uuid) = hosts.guest_xml(name, 64, 8);
        let xml = xml.replace(
            "</domain>",
            "<devices><graphics type='spice' autoport='yes' listen='127.0.0.1'/></devices></domain>",
        );
        hosts.define_xml(&a, name, &xml);
        hosts.virsh_ok(&a, &["start", name]);
        let src_port = spice_port(&hosts, &a, name);
        let before = qemu_support::counter_above(&a, name, 0, &hosts);
        let src_pid = status_pid(&hosts.a, name).expect("source status file");
        let mut args = vec!["migrate", "--live"];
        args.extend_from_slice(flags);
        args.extend([name, b.as_str()]);
        hosts.virsh_ok(&a, &args);
        moved_and_counting(&hosts, name, &uuid, src_pid, before);
        let dst_port = spice_port(&hosts, &b, name);
        // Both QEMUs listened on 127.0.0.1 at the same time.
        assert_ne!(src_port, dst_port);
        let log = hosts.a.logs();
        let relocated = log
            .lines()
            .filter(|l| l.contains("client_migrate_info accepted") && l.contains(name))
            .collect::<Vec<_>>();
        assert_eq!(
            relocated.len(),
            1,
            "{name}: not exactly one accepted client_migrate_info\n{}",
            hosts.logs()
        );
        let line = relocated[0];
        assert!(
            line.contains("hostname=127.0.0.1") && line.contains(&format!("port=Some({dst_port})")),
            "{name}: relocated elsewhere than B's spice port {dst_port}: {line}"
        );
        assert!(
            !log.contains("unable to provide data for graphics client relocation"),
            "{}",
            hosts.logs()
        );
        hosts.virsh_ok(&b, &["destroy", name]);
    }
}

/// Runs `tool` (qemu-img, qemu-io) and insists on success; returns stdout.
#[track_caller]
fn image_tool(tool: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {tool}: {e}"));
    assert!(
        out.status.success(),
        "{tool} {args:?} failed: {}",
        stderr_of(&out)
    );
    stdout_of(&out)
}

/// A raw image of `mib` MiB holding a pattern no fresh image holds.
fn patterned_raw(path: &std::path::Path, mib: usize, seed: u8) -> Vec<u8> {
    let data: Vec<u8> = (0..mib << 20)
        .map(|i| ((i / 4096) as u8 ^ (i as u8).wrapping_mul(seed)) | 1)
        .collect();
    std::fs::write(path, &data).expect("write raw image");
    data
}

/// A `<disk>` of `format` at `path` as guest device `dev`.
fn disk_xml(format: &str, path: &std::path::Path, dev: &str) -> String {
    format!(
        "<disk type='file' device='disk'><driver name='qemu' type='{format}'/>\
         <source file='{}'/><target dev='{dev}' bus='virtio'/></disk>",
        path.display()
    )
}

/// A guest with data disks running on A, for a storage migration to B.
struct StorageGuest {
    name: &'static str,
    uuid: String,
    /// Its workload counter once running.
    before: u64,
    /// Its QEMU on A.
    src_pid: i32,
    /// The destination XML file, naming B's images.
    dest_xml: String,
}

impl StorageGuest {
    /// `virsh migrate --live FLAGS… --xml DEST_XML NAME B`, then the checks
    /// of a moved guest, then destroys it on B so its images can be read.
    fn migrate(&self, hosts: &QemuHosts, flags: &[&str]) {
        let b = hosts.b_uri();
        let mut args = vec!["migrate", "--live"];
        args.extend_from_slice(flags);
        args.extend(["--xml", &self.dest_xml, self.name, &b]);
        hosts.virsh_ok(&hosts.a_uri(), &args);
        moved_and_counting(hosts, self.name, &self.uuid, self.src_pid, self.before);
        hosts.virsh_ok(&b, &["destroy", self.name]);
    }
}

/// Starts a 64 MiB workload guest on A with `disks` (each a (format,
/// path on A, path on B, dev)); its destination XML goes to `dir`.
fn storage_guest(
    hosts: &QemuHosts,
    dir: &std::path::Path,
    name: &'static str,
    disks: &[(&str, &std::path::Path, &std::path::Path, &str)],
) -> StorageGuest {
    let a = hosts.a_uri();
    let (xml, uuid) = hosts.guest_xml(name, 64, 8);
    let devices: String = disks
        .iter()
        .map(|(format, src, _, dev)| disk_xml(format, src, dev))
        .collect();
    let xml = xml.replace(
        "</domain>",
        &format!("<devices>{devices}</devices></domain>"),
    );
    hosts.define_xml(&a, name, &xml);
    hosts.virsh_ok(&a, &["start", name]);
    let before = counter_above(&a, name, 0, hosts);
    let src_pid = status_pid(&hosts.a, name).expect("source status file");
    let mut dest = hosts.virsh_ok(&a, &["dumpxml", "--migratable", name]);
    for (_, src, dst, _) in disks {
        dest = dest.replace(
            src.to_str().expect("utf-8 path"),
            dst.to_str().expect("utf-8 path"),
        );
    }
    let dest_file = dir.join(format!("{name}-dest.xml"));
    std::fs::write(&dest_file, dest).expect("write destination XML");
    StorageGuest {
        name,
        uuid,
        before,
        src_pid,
        dest_xml: dest_file.to_str().expect("utf-8 path").to_owned(),
    }
}

/// `virsh migrate --live --copy-storage-all` / `--copy-storage-inc` between
/// two daemons whose images live in separate directories (the destination
/// XML names B's copies): the destination's images end up with the
/// source's content, the source QEMU is gone and the destination runs.
/// `--migrate-disks vdb --copy-storage-synchronous-writes` copies only that
/// disk (peer to peer) with write-blocking mirrors. Refused, with the source
/// running on: a missing destination image (libvirt's error when no
/// storage pool can create it) and a tunnelled storage migration.
#[test]
fn qemu_virsh_copy_storage() {
    let Some(hosts) = QemuHosts::start() else {
        return;
    };
    if migrated_tests::require_binary("qemu-img").is_none() {
        return;
    }
    let (a, b) = (hosts.a_uri(), hosts.b_uri());
    let started = std::time::Instant::now();
    let dirs = tempfile::Builder::new()
        .prefix("migrated-storage-")
        .tempdir()
        .expect("image dir");
    let (a_dir, b_dir) = (dirs.path().join("a"), dirs.path().join("b"));
    for d in [&a_dir, &b_dir] {
        std::fs::create_dir_all(d).expect("image dir");
    }
    let img = |side: &std::path::Path, file: &str| side.join(file);

    // 1. Full copy of a raw and a qcow2 disk; domjobinfo shows the disks.
    let name = "q-storage-all";
    let raw = patterned_raw(&img(&a_dir, "all-vdb.raw"), 4, 31);
    std::fs::write(img(&b_dir, "all-vdb.raw"), vec![0u8; raw.len()]).expect("dest raw");
    for side in [&a_dir, &b_dir] {
        let path = img(side, "all-vdc.qcow2");
        image_tool(
            "qemu-img",
            &[
                "create",
                "-q",
                "-f",
                "qcow2",
                path.to_str().expect("utf-8"),
                "4M",
            ],
        );
    }
    image_tool(
        "qemu-io",
        &[
            "-f",
            "qcow2",
            "-c",
            "write -P 0x5a 512k 1M",
            img(&a_dir, "all-vdc.qcow2").to_str().expect("utf-8"),
        ],
    );
    let (vdb_a, vdb_b) = (img(&a_dir, "all-vdb.raw"), img(&b_dir, "all-vdb.raw"));
    let (vdc_a, vdc_b) = (img(&a_dir, "all-vdc.qcow2"), img(&b_dir, "all-vdc.qcow2"));
    storage_guest(
        &hosts,
        dirs.path(),
        name,
        &[
            ("raw", &vdb_a, &vdb_b, "vdb"),
            ("qcow2", &vdc_a, &vdc_b, "vdc"),
        ],
    )
    .migrate(&hosts, &["--copy-storage-all"]);
    let info = hosts.virsh_ok(&a, &["domjobinfo", "--completed", name]);
    assert!(info.contains("File total:"), "no disk figures in:\n{info}");
    assert!(
        std::fs::read(&vdb_b).expect("dest raw") == raw,
        "B's raw image holds A's bytes"
    );
    image_tool(
        "qemu-img",
        &[
            "compare",
            vdc_a.to_str().expect("utf-8"),
            vdc_b.to_str().expect("utf-8"),
        ],
    );

    eprintln!("copy-storage-all done after {:?}", started.elapsed());

    // 2. Incremental: only the qcow2 overlay's own data moves; both hosts
    // already have the (raw) base image.
    let name = "q-storage-inc";
    let base = patterned_raw(&img(&a_dir, "base.raw"), 8, 17);
    std::fs::write(img(&b_dir, "base.raw"), &base).expect("dest base");
    for side in [&a_dir, &b_dir] {
        let base = img(side, "base.raw");
        let top = img(side, "inc-vdb.qcow2");
        image_tool(
            "qemu-img",
            &[
                "create",
                "-q",
                "-f",
                "qcow2",
                "-b",
                base.to_str().expect("utf-8"),
                "-F",
                "raw",
                top.to_str().expect("utf-8"),
            ],
        );
    }
    let (top_a, top_b) = (img(&a_dir, "inc-vdb.qcow2"), img(&b_dir, "inc-vdb.qcow2"));
    image_tool(
        "qemu-io",
        &[
            "-f",
            "qcow2",
            "-c",
            "write -P 0xc3 1M 1M",
            top_a.to_str().expect("utf-8"),
        ],
    );
    storage_guest(
        &hosts,
        dirs.path(),
        name,
        &[("qcow2", &top_a, &top_b, "vdb")],
    )
    .migrate(&hosts, &["--copy-storage-inc"]);
    image_tool(
        "qemu-img",
        &[
            "compare",
            top_a.to_str().expect("utf-8"),
            top_b.to_str().expect("utf-8"),
        ],
    );
    let top_size = std::fs::metadata(&top_b).expect("dest overlay").len();
    assert!(
        top_size < base.len() as u64 / 2,
        "B's overlay ({top_size} bytes) got more than the overlay's data"
    );

    eprintln!("copy-storage-inc done after {:?}", started.elapsed());

    // 3. One disk of two, peer to peer, after two refusals that leave the
    // source running.
    let name = "q-storage-one";
    let chosen = patterned_raw(&img(&a_dir, "one-vdb.raw"), 4, 7);
    patterned_raw(&img(&a_dir, "one-vdc.raw"), 4, 11);
    let (one_a, one_b) = (img(&a_dir, "one-vdb.raw"), img(&b_dir, "one-vdb.raw"));
    let (other_a, other_b) = (img(&a_dir, "one-vdc.raw"), img(&b_dir, "one-vdc.raw"));
    std::fs::write(&other_b, vec![0u8; 4 << 20]).expect("dest vdc");
    let guest = storage_guest(
        &hosts,
        dirs.path(),
        name,
        &[
            ("raw", &one_a, &one_b, "vdb"),
            ("raw", &other_a, &other_b, "vdc"),
        ],
    );
    eprintln!("third guest up after {:?}", started.elapsed());
    let missing = refused_on_source(
        &hosts,
        name,
        &guest.uuid,
        guest.src_pid,
        &[
            "migrate",
            "--live",
            "--copy-storage-all",
            "--migrate-disks",
            "vdb",
            "--xml",
            &guest.dest_xml,
            name,
            &b,
        ],
    );
    let b_dir_text = b_dir.display().to_string();
    assert!(
        missing.contains(&format!(
            "no storage pool with matching target path '{b_dir_text}'"
        )),
        "{missing}"
    );
    let tunnelled = refused_on_source(
        &hosts,
        name,
        &guest.uuid,
        guest.src_pid,
        &[
            "migrate",
            "--live",
            "--p2p",
            "--tunnelled",
            "--copy-storage-all",
            name,
            &b,
        ],
    );
    assert!(
        tunnelled.contains(
            "migration of non-shared storage is not supported with tunnelled migration and this QEMU"
        ),
        "{tunnelled}"
    );
    eprintln!("refusals checked after {:?}", started.elapsed());
    std::fs::write(&one_b, vec![0u8; chosen.len()]).expect("dest vdb");
    // The counter moved during the refusals.
    let guest = StorageGuest {
        before: qemu_support::counter(&a, name).expect("counter on A"),
        ..guest
    };
    guest.migrate(
        &hosts,
        &[
            "--p2p",
            "--copy-storage-all",
            "--copy-storage-synchronous-writes",
            "--migrate-disks",
            "vdb",
        ],
    );
    assert!(
        std::fs::read(&one_b).expect("dest vdb") == chosen,
        "vdb copied"
    );
    let started_mirrors = hosts
        .a
        .logs()
        .lines()
        .rfind(|l| l.contains("storage migration mirrors started"))
        .map(str::to_owned)
        .unwrap_or_default();
    assert!(
        started_mirrors.contains("write_blocking=true") && started_mirrors.contains("vdb"),
        "the synchronous-writes copy's mirror was not write-blocking: {started_mirrors:?}"
    );
    assert!(
        std::fs::read(&other_b)
            .expect("dest vdc")
            .iter()
            .all(|&b| b == 0),
        "vdc not copied"
    );
}

/// What stock virsh users get from libvirt 9.0 with the same commands
/// (compared side by side with two libvirtd hosts): an unknown compression
/// method and a non-live post-copy refused in libvirt's words, a
/// `--persistent-xml` that changes the next boot's virtual hardware
/// accepted (it is not held to the running guest's ABI), and a shut-off
/// guest refused with just "domain is not running".
#[test]
fn qemu_virsh_refusals_and_persistent_xml_as_libvirt() {
    let Some(hosts) = QemuHosts::start() else {
        return;
    };
    let name = "q-as-libvirt";
    let (a, b) = (hosts.a_uri(), hosts.b_uri());
    let (uuid, before) = hosts.running_guest(name);
    let src_pid = status_pid(&hosts.a, name).expect("source status file");
    let err = refused_on_source(
        &hosts,
        name,
        &uuid,
        src_pid,
        &[
            "migrate",
            "--live",
            "--compressed",
            "--comp-methods",
            "foo",
            name,
            &b,
        ],
    );
    assert!(
        err.contains("error: invalid argument: Unsupported compression method 'foo'"),
        "{err}"
    );

    let inactive = hosts.virsh_ok(&a, &["dumpxml", "--inactive", name]);
    assert!(inactive.contains("<vcpu>1</vcpu>"), "{inactive}");
    let dir = tempfile::tempdir().expect("temp dir");
    let next_boot = dir.path().join("next-boot.xml");
    std::fs::write(
        &next_boot,
        inactive.replace("<vcpu>1</vcpu>", "<vcpu>2</vcpu>"),
    )
    .expect("write the persistent XML");
    let next_boot = next_boot.display().to_string();
    hosts.virsh_ok(
        &a,
        &[
            "migrate",
            "--live",
            "--persistent",
            "--persistent-xml",
            &next_boot,
            "--timeout",
            "20",
            name,
            &b,
        ],
    );
    moved_and_counting(&hosts, name, &uuid, src_pid, before);
    // libvirt's figures on both ends: the source reports post-copy requests
    // (none) after a pre-copy migration, the destination the page counts
    // the source sent it.
    let line = |info: &str, field: &str| {
        info.lines()
            .find(|l| l.starts_with(field))
            .map(|l| l[field.len()..].trim().to_owned())
    };
    let src_info = hosts.virsh_ok(&a, &["domjobinfo", "--completed", name]);
    assert_eq!(
        line(&src_info, "Postcopy requests:").as_deref(),
        Some("0"),
        "{src_info}"
    );
    let dst_info = hosts.virsh_ok(&b, &["domjobinfo", "--completed", name]);
    assert_eq!(
        line(&dst_info, "Page size:").as_deref(),
        Some("4096         bytes"),
        "{dst_info}"
    );
    let normal: u64 = line(&dst_info, "Normal pages:")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(normal > 0, "{dst_info}");
    let live = hosts.virsh_ok(&b, &["dumpxml", name]);
    assert!(live.contains("<vcpu>1</vcpu>"), "{live}");
    let config = hosts.virsh_ok(&b, &["dumpxml", "--inactive", name]);
    assert!(config.contains("<vcpu>2</vcpu>"), "{config}");

    hosts.virsh_ok(&b, &["destroy", name]);
    assert_eq!(domstate(&b, name).as_deref(), Some("shut off"));
    for (args, expected) in [
        (
            vec!["migrate", "--live", name, a.as_str()],
            "error: Requested operation is not valid: domain is not running\n",
        ),
        (
            vec!["migrate", "--offline", "--persistent", "--postcopy", name, a.as_str()],
            "error: argument unsupported: post-copy migration is not supported with non-live or paused migration\n",
        ),
    ] {
        let out = virsh(&b, &args);
        assert!(!out.status.success(), "{args:?}: {}", stdout_of(&out));
        assert!(
            stderr_of(&out).contains(expected),
            "{args:?}: {expected:?} missing from {}",
            stderr_of(&out)
        );
        assert_eq!(domstate(&b, name).as_deref(), Some("shut off"), "{args:?}");
        assert!(job_free(&b, name), "{args:?}: a job is left");
    }
}
