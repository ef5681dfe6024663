//! `virsh blkdeviotune` and `virsh domifaddr` on a real QEMU guest through
//! `migrated`, as libvirt's QEMU driver: the live limits are QEMU's
//! (`block_set_io_throttle`, read back from `query-block`), the config's
//! are the disk's `<iotune>`, a guest starts with its `<iotune>` applied
//! and keeps its limits across a live migration; the agent source of
//! `domifaddr` answers libvirt's agent errors. (A file of its own:
//! `qemu_virsh.rs` is past its size limit.)

mod migrate_support;
mod qemu_support;

use migrated_tests::clients::{stderr_of, stdout_of};
use migrated_tests::virsh;
use qemu_support::{counter_above, domstate, QemuHosts};

/// Small guests: these tests prove tuning, not migration throughput.
const SMALL_MIB: u32 = 64;

/// `name : value` of virsh's parameter listings.
fn field(out: &str, name: &str) -> String {
    out.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == name).then(|| v.trim().to_owned())
        })
        .unwrap_or_else(|| panic!("no {name} in {out}"))
}

/// Runs virsh, insists on failure naming `words`.
#[track_caller]
fn fails_with(uri: &str, args: &[&str], words: &str) {
    let out = virsh(uri, args);
    assert!(
        !out.status.success() && stderr_of(&out).contains(words),
        "virsh {args:?}: expected \"{words}\", got: {}{}",
        stdout_of(&out),
        stderr_of(&out)
    );
}

#[test]
fn qemu_blkdeviotune_is_qemus_and_travels_with_a_live_migration() {
    let Some(hosts) = QemuHosts::start() else {
        return;
    };
    let (a, b) = (hosts.a_uri(), hosts.b_uri());
    let name = "q-iotune";
    let images = tempfile::tempdir().expect("image dir");
    let image = images.path().join("vda.img");
    std::fs::write(&image, vec![0u8; 1 << 20]).expect("write image");
    let (xml, _uuid) = hosts.guest_xml(name, SMALL_MIB, 8);
    let disk = format!(
        "<devices><disk type='file' device='disk'><driver name='qemu' type='raw'/>\
         <source file='{}'/><target dev='vda' bus='virtio'/>\
         <iotune><total_bytes_sec>1048576</total_bytes_sec></iotune></disk></devices>",
        image.display()
    );
    hosts.define_xml(
        &a,
        name,
        &xml.replace("</domain>", &format!("{disk}</domain>")),
    );
    hosts.virsh_ok(&a, &["start", name]);
    counter_above(&a, name, 0, &hosts);
    // The config's <iotune> is QEMU's from the start.
    let live = hosts.virsh_ok(&a, &["blkdeviotune", name, "vda"]);
    assert_eq!(field(&live, "total_bytes_sec"), "1048576", "{live}");
    hosts.virsh_ok(
        &a,
        &[
            "blkdeviotune",
            name,
            "vda",
            "--live",
            "--total-iops-sec",
            "100",
            "--total-iops-sec-max",
            "200",
        ],
    );
    let live = hosts.virsh_ok(&a, &["blkdeviotune", name, "vda"]);
    assert_eq!(field(&live, "total_iops_sec"), "100", "{live}");
    assert_eq!(field(&live, "total_iops_sec_max"), "200", "{live}");
    // QEMU's own default burst length: what query-block says, not our XML.
    assert_eq!(field(&live, "total_iops_sec_max_length"), "1", "{live}");
    assert_eq!(field(&live, "total_bytes_sec"), "1048576", "{live}");
    let config = hosts.virsh_ok(&a, &["blkdeviotune", name, "vda", "--config"]);
    assert_eq!(field(&config, "total_iops_sec"), "0", "{config}");
    // libvirt's QEMU checks, nothing changed by a refusal.
    for (args, words) in [
        (
            &["--read-bytes-sec", "5"][..],
            "total and read/write of bytes_sec cannot be set at the same time",
        ),
        (
            &["--total-bytes-sec-max", "10"],
            "value 'total_bytes_sec_max' cannot be smaller than 'total_bytes_sec'",
        ),
        (
            &["--write-bytes-sec-max", "10"],
            "value 'write_bytes_sec_max' cannot be set if 'write_bytes_sec' is not set",
        ),
        (
            &["--write-iops-sec", "1000000000000001"],
            "block I/O throttle limit value must be no more than 1000000000000000",
        ),
    ] {
        fails_with(
            &a,
            &[&["blkdeviotune", name, "vda"][..], args].concat(),
            words,
        );
    }
    fails_with(
        &a,
        &["blkdeviotune", name, "vdz", "--total-iops-sec", "1"],
        "disk 'vdz' not found in domain",
    );
    fails_with(
        &a,
        &["-r", "blkdeviotune", name, "vda", "--total-iops-sec", "1"],
        "read only access prevents virDomainSetBlockIoTune",
    );
    // Both definitions at once, as libvirt's QEMU driver allows.
    hosts.virsh_ok(
        &a,
        &[
            "blkdeviotune",
            name,
            "vda",
            "--live",
            "--config",
            "--size-iops-sec",
            "4096",
        ],
    );
    let config = hosts.virsh_ok(&a, &["dumpxml", "--inactive", name]);
    assert!(
        config.contains("<size_iops_sec>4096</size_iops_sec>"),
        "{config}"
    );
    // The agent is not configured: libvirt's error; no lease or ARP entry
    // names this user-networking guest.
    fails_with(
        &a,
        &["domifaddr", name, "--source", "agent"],
        "QEMU guest agent is not configured",
    );
    for source in ["lease", "arp"] {
        let out = hosts.virsh_ok(&a, &["domifaddr", name, "--source", source]);
        assert!(!out.contains("ipv4"), "{source}: {out}");
    }
    hosts.virsh_ok(
        &a,
        &["migrate", "--live", "--timeout", "20", name, b.as_str()],
    );
    assert_eq!(domstate(&b, name).as_deref(), Some("running"));
    let moved = hosts.virsh_ok(&b, &["blkdeviotune", name, "vda"]);
    assert_eq!(field(&moved, "total_iops_sec"), "100", "{moved}");
    assert_eq!(field(&moved, "total_bytes_sec"), "1048576", "{moved}");
    assert_eq!(field(&moved, "size_iops_sec"), "4096", "{moved}");
    assert_eq!(field(&moved, "total_iops_sec_max_length"), "1", "{moved}");
    hosts.virsh_ok(&b, &["destroy", name]);
}
