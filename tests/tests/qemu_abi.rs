//! A stable guest ABI on real QEMU through stock virsh: PCI addresses and
//! the machine type pinned at define as libvirt 9.0 pins them, every PCI
//! device placed by them on the command line, so that a guest whose slots
//! have a gap (what a completed hot-unplug leaves), and a device
//! hot-plugged into that gap, are rebuilt in the same slots by a migration
//! destination and by a restore; `migrate --xml` with a moved device and
//! bad addresses are refused in libvirt's words with nothing lost.

mod migrate_support;
mod qemu_support;

use std::collections::BTreeMap;

use migrated_tests::clients::stderr_of;
use migrated_tests::virsh;
use qemu_support::{counter_above, domstate, qemu_cmdline, virsh_err, QemuHosts};

/// Small guests: these tests prove the hardware layout, not throughput.
const SMALL_MIB: u32 = 64;

/// The `-device` placements of the QEMU running `uuid`: device id →
/// (bus, addr), read from its command line in /proc.
fn placements(uuid: &str) -> BTreeMap<String, (String, String)> {
    let line = std::fs::read(format!(
        "/proc/{}/cmdline",
        qemu_support::qemu_pids(uuid)
            .first()
            .unwrap_or_else(|| panic!("no QEMU runs {uuid}"))
    ))
    .expect("read cmdline");
    let args: Vec<String> = line
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    args.windows(2)
        .filter(|w| w[0] == "-device")
        .filter_map(|w| serde_json::from_str::<serde_json::Value>(&w[1]).ok())
        .filter_map(|d| {
            let field = |k: &str| d.get(k).and_then(|v| v.as_str()).map(str::to_owned);
            Some((field("id")?, (field("bus")?, field("addr")?)))
        })
        .collect()
}

/// A `<address type='pci'/>` on bus 0 at `slot`.
fn slot(slot: u8) -> String {
    format!("<address type='pci' domain='0x0000' bus='0x00' slot='{slot:#04x}' function='0x0'/>")
}

/// The first `<address …/>` after `needle` in the domain XML `xml`.
#[track_caller]
fn address_after<'a>(xml: &'a str, needle: &str) -> &'a str {
    let element = &xml[xml
        .find(needle)
        .unwrap_or_else(|| panic!("{needle} missing:\n{xml}"))..];
    let start = element
        .find("<address ")
        .unwrap_or_else(|| panic!("no address after {needle}:\n{xml}"));
    let end = element[start..]
        .find("/>")
        .map_or(element.len(), |e| start + e + 2);
    &element[start..end]
}

/// Writes `xml` into `dir` as `file`; returns its path.
fn file(dir: &std::path::Path, file: &str, xml: &str) -> String {
    let path = dir.join(file);
    std::fs::write(&path, xml).expect("write XML");
    path.display().to_string()
}

#[test]
fn qemu_define_assigns_libvirts_addresses_and_machine() {
    let Some(hosts) = QemuHosts::start() else {
        return;
    };
    let a = hosts.a_uri();
    let dir = tempfile::tempdir().expect("dir");
    let disk = dir.path().join("vda.img");
    std::fs::write(&disk, vec![0u8; 1 << 20]).expect("image");
    let name = "q-abi-define";
    let (xml, uuid) = hosts.guest_xml(name, SMALL_MIB, 4);
    let devices = format!(
        "<devices><disk type='file' device='disk'><driver name='qemu' type='raw'/>\
         <source file='{}'/><target dev='vda' bus='virtio'/></disk>\
         <interface type='user'><model type='virtio'/></interface>\
         <graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1'/>\
         <memballoon model='virtio'/>\
         <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng></devices>",
        disk.display()
    );
    let xml = xml.replace("</domain>", &format!("{devices}</domain>"));
    hosts.define_xml(&a, name, &xml);
    let config = hosts.virsh_ok(&a, &["dumpxml", "--inactive", name]);
    // As libvirt 9.0 on the same QEMU: the alias resolved, the emulator
    // named, the root bus listed, PIIX3's neighbours in libvirt's order.
    assert!(
        config.contains("machine='pc-i440fx-7.2'"),
        "machine type not canonical:\n{config}"
    );
    assert!(config.contains("<emulator>"), "{config}");
    assert!(
        config.contains("<controller type='pci' index='0' model='pci-root'/>"),
        "{config}"
    );
    for (device, want) in [
        ("<video>", 2),
        ("<interface type='user'>", 3),
        ("<disk type='file' device='disk'>", 4),
        ("<memballoon model='virtio'>", 5),
        ("<rng model='virtio'>", 6),
    ] {
        let address = address_after(&config, device);
        assert!(
            address.contains(&format!("slot='{want:#04x}'")),
            "{device} not in slot {want}: {address}\n{config}"
        );
    }
    hosts.virsh_ok(&a, &["start", name]);
    counter_above(&a, name, 0, &hosts);
    let live = hosts.virsh_ok(&a, &["dumpxml", name]);
    assert!(live.contains(&slot(4)), "live XML lost the slots:\n{live}");
    let placed = placements(&uuid);
    assert_eq!(
        placed.get("vda"),
        Some(&("pci.0".to_owned(), "0x4".to_owned()))
    );
    assert_eq!(
        placed.get("balloon0"),
        Some(&("pci.0".to_owned(), "0x5".to_owned()))
    );
    assert_eq!(
        placed.get("video0"),
        Some(&("pci.0".to_owned(), "0x2".to_owned()))
    );
    // Attach a NIC asking for a slot in use: libvirt's refusal, nothing plugged.
    let taken = file(
        dir.path(),
        "taken.xml",
        &format!(
            "<interface type='user'><model type='virtio'/>{}</interface>",
            slot(4)
        ),
    );
    let err = virsh_err(&a, &["attach-device", name, &taken, "--live"]);
    assert!(
        err.contains("XML error: Attempted double use of PCI Address 0000:00:04.0"),
        "{err}"
    );
    assert_eq!(placements(&uuid), placed, "nothing plugged");
    hosts.virsh_ok(&a, &["destroy", name]);
    // A redefinition with a doubly used or invalid address is refused in
    // libvirt's words; the stored definition stays as it was.
    for (bad, want) in [
        (
            xml.replace(
                "<memballoon model='virtio'/>",
                &format!("<memballoon model='virtio'>{}</memballoon>", slot(1)),
            ),
            "XML error: Attempted double use of PCI Address 0000:00:01.0",
        ),
        (
            xml.replace(
                "<memballoon model='virtio'/>",
                "<memballoon model='virtio'><address type='pci' domain='0x0000' \
                 bus='0x00' slot='0x20' function='0x0'/></memballoon>",
            ),
            "XML error: Invalid PCI address 0000:00:20.0. slot must be <= 31",
        ),
    ] {
        let path = file(dir.path(), "bad.xml", &bad);
        let out = virsh(&a, &["define", &path]);
        assert!(!out.status.success(), "defined: {bad}");
        assert!(stderr_of(&out).contains(want), "{}", stderr_of(&out));
    }
    assert_eq!(
        hosts.virsh_ok(&a, &["dumpxml", "--inactive", name]),
        config,
        "the stored definition changed"
    );
    // An unknown machine type: libvirt's refusal at define.
    let path = file(
        dir.path(),
        "nomachine.xml",
        &xml.replace("machine='pc'", "machine='no-such-machine'"),
    );
    let out = virsh(&a, &["define", &path]);
    assert!(
        stderr_of(&out).contains("does not support machine type 'no-such-machine'"),
        "{}",
        stderr_of(&out)
    );
    hosts.virsh_ok(&a, &["undefine", name]);
}

/// A guest whose XML has a gap between slots (a completed hot-unplug's
/// state) gets a disk hot-plugged into the gap; `migrate --xml` with a
/// moved device is refused and the source keeps running; the migration
/// builds every device in the source's slot; save and restore keep them.
#[test]
fn qemu_slots_survive_hotplug_migration_and_restore() {
    let Some(hosts) = QemuHosts::start() else {
        return;
    };
    let (a, b) = (hosts.a_uri(), hosts.b_uri());
    let dir = tempfile::tempdir().expect("dir");
    let image = |f: &str| {
        let path = dir.path().join(f);
        std::fs::write(&path, vec![0u8; 1 << 20]).expect("image");
        path.display().to_string()
    };
    let (vda, vdb) = (image("vda.img"), image("vdb.img"));
    let name = "q-abi-gap";
    let (xml, uuid) = hosts.guest_xml(name, SMALL_MIB, 4);
    // NIC in 2, disk in 6: the balloon and RNG take 3 and 4, 5 stays free.
    let devices = format!(
        "<devices><disk type='file' device='disk'><driver name='qemu' type='raw'/>\
         <source file='{vda}'/><target dev='vda' bus='virtio'/>{}</disk>\
         <interface type='user'><mac address='52:54:00:ab:00:01'/><model type='virtio'/>{}</interface>\
         <memballoon model='virtio'/>\
         <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng></devices>",
        slot(6),
        slot(2)
    );
    let xml = xml.replace("</domain>", &format!("{devices}</domain>"));
    hosts.define_xml(&a, name, &xml);
    hosts.virsh_ok(&a, &["start", name]);
    counter_above(&a, name, 0, &hosts);
    let disk = file(
        dir.path(),
        "vdb.xml",
        &format!(
            "<disk type='file' device='disk'><driver name='qemu' type='raw'/>\
             <source file='{vdb}'/><target dev='vdb' bus='virtio'/></disk>"
        ),
    );
    hosts.virsh_ok(&a, &["attach-device", name, &disk, "--live"]);
    let mut source = placements(&uuid);
    for (id, addr) in [
        ("nic0", "0x2"),
        ("balloon0", "0x3"),
        ("rng0", "0x4"),
        ("vda", "0x6"),
    ] {
        assert_eq!(
            source.get(id).map(|(_, a)| a.as_str()),
            Some(addr),
            "{id} on A: {source:?}"
        );
    }
    // The hot-plugged disk took the gap, and its live XML says so.
    let live = hosts.virsh_ok(&a, &["dumpxml", name]);
    assert_eq!(
        address_after(&live, "<target dev='vdb'"),
        slot(5),
        "the hot-plugged slot is not recorded:\n{live}"
    );
    source.insert("vdb".into(), ("pci.0".into(), "0x5".into()));
    // migrate --xml moving the hot-plugged disk: refused before anything
    // moves, in libvirt's words; A's guest keeps running.
    let migratable = hosts.virsh_ok(&a, &["dumpxml", "--migratable", name]);
    let moved = migratable.replacen(&slot(5), &slot(9), 1);
    assert_ne!(moved, migratable);
    let moved = file(dir.path(), "moved.xml", &moved);
    let out = virsh(
        &a,
        &["migrate", "--live", "--xml", &moved, name, b.as_str()],
    );
    assert!(!out.status.success(), "migrated with a moved device");
    let err = stderr_of(&out);
    assert!(
        err.contains("Target device PCI address 0000:00:09.0does not match source 0000:00:05.0"),
        "{err}"
    );
    assert_eq!(domstate(&a, name).as_deref(), Some("running"));
    assert_eq!(domstate(&b, name), None, "nothing left on B");
    let before = counter_above(&a, name, 0, &hosts);
    counter_above(&a, name, before, &hosts);
    // The real migration: B's QEMU has every device in A's slot (QEMU
    // would refuse the stream otherwise) and the guest goes on there.
    hosts.virsh_ok(
        &a,
        &["migrate", "--live", "--timeout", "20", name, b.as_str()],
    );
    assert_eq!(domstate(&b, name).as_deref(), Some("running"));
    let before = counter_above(&b, name, 0, &hosts);
    assert_eq!(placements(&uuid), source, "B placed devices elsewhere");
    let on_b = hosts.virsh_ok(&b, &["dumpxml", name]);
    assert!(on_b.contains("machine='pc-i440fx-7.2'"), "{on_b}");
    assert!(on_b.contains(&slot(5)), "{on_b}");
    // Save and restore on B: the restored QEMU has the same slots.
    let saved = dir.path().join("gap.sav").display().to_string();
    hosts.virsh_ok(&b, &["save", name, &saved]);
    assert_eq!(domstate(&b, name), None, "transient guest gone after save");
    hosts.virsh_ok(&b, &["restore", &saved]);
    assert_eq!(
        placements(&uuid),
        source,
        "the restore placed devices elsewhere"
    );
    counter_above(&b, name, before, &hosts);
    let line = qemu_cmdline(&uuid);
    assert!(line.contains("pc-i440fx-7.2"), "{line}");
    hosts.virsh_ok(&b, &["destroy", name]);
    hosts.virsh_ok(&a, &["undefine", name]);
}
