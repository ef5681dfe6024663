//! Internal snapshots of a real QEMU guest (the workload kernel with a
//! qcow2 disk made by qemu-img) through stock `virsh`: a snapshot of the
//! running and of the paused guest, a revert that takes the workload's
//! counter back (its memory), a shut-off snapshot and reverts across
//! running and shut off, list/tree/current/parent, domjobinfo of the
//! snapshot job, deletion from the images (`snapshot-delete` while it
//! runs, `qemu-img snapshot -d` while off, `--children`, `--metadata`),
//! the metadata across a daemon restart, undefine refused and allowed, and
//! libvirt's refusals (duplicate name, unknown snapshot, raw disk,
//! --quiesce without an agent, --live, read-only connection, migration).

mod migrate_support;
mod qemu_support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use migrated_tests::clients::{stderr_of, stdout_of};
use migrated_tests::{virsh, wait_until, VirshEvents};
use qemu_support::{
    counter, counter_above, domstate, dump_into_fifo, dump_job_running, hosts_with_images, image,
    qemu_pids, virsh_err, QemuHosts,
};

/// Small guests: these tests prove snapshots, not throughput.
const SMALL_MIB: u32 = 64;

/// The snapshot tags inside `image` (`-U`: QEMU may hold it).
fn tags(image: &Path) -> Vec<String> {
    let out = Command::new("qemu-img")
        .args(["snapshot", "-U", "-l"])
        .arg(image)
        .output()
        .expect("run qemu-img");
    assert!(
        out.status.success(),
        "qemu-img snapshot -l: {}",
        stderr_of(&out)
    );
    // "ID  TAG  VM SIZE  DATE  VM CLOCK  ICOUNT" after two header lines.
    stdout_of(&out)
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_owned))
        .collect()
}

/// The workload guest of `hosts` with one virtio disk `disk` of `format`.
fn guest_with_disk(hosts: &QemuHosts, name: &str, disk: &Path, format: &str) -> (String, String) {
    let (xml, uuid) = hosts.guest_xml(name, SMALL_MIB, 8);
    let devices = format!(
        "<devices><disk type='file' device='disk'><driver name='qemu' type='{format}'/>\
         <source file='{}'/><target dev='vda' bus='virtio'/></disk></devices></domain>",
        disk.display()
    );
    (xml.replace("</domain>", &devices), uuid)
}

/// Snapshot names of `virsh snapshot-list --name` with `extra` options.
fn names(hosts: &QemuHosts, uri: &str, name: &str, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["snapshot-list", name, "--name"];
    args.extend_from_slice(extra);
    hosts
        .virsh_ok(uri, &args)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

fn reason(uri: &str, name: &str) -> String {
    let out = virsh(uri, &["domstate", name, "--reason"]);
    stdout_of(&out).trim().to_owned()
}

/// Waits until the workload counts past `above`; returns the counter.
#[track_caller]
fn counts_past(hosts: &QemuHosts, uri: &str, name: &str, above: u64) -> u64 {
    counter_above(uri, name, above, hosts)
}

/// Prints how long the test took to reach `what` (for the log).
fn step(start: std::time::Instant, what: &str) {
    eprintln!("[{:>6.1}s] {what}", start.elapsed().as_secs_f64());
}

#[test]
fn qemu_snapshot_internal() {
    let t0 = std::time::Instant::now();
    let Some((mut hosts, dir)) = hosts_with_images("migrated-qsnap-") else {
        return;
    };
    let uri = hosts.a_uri();
    let disk = image(dir.path(), "vda.qcow2", "qcow2");
    let name = "qsnap";
    let (xml, uuid) = guest_with_disk(&hosts, name, &disk, "qcow2");
    hosts.define_xml(&uri, name, &xml);
    let events = VirshEvents::spawn(&uri, &["--loop", "--event", "lifecycle", "--domain", name]);
    events.sync_on_redefine(&uri, name);
    hosts.virsh_ok(&uri, &["start", name]);
    let before = counts_past(&hosts, &uri, name, 0);

    step(t0, "A snapshot of the running guest: memory and disk, ");
    // A snapshot of the running guest: memory and disk, resumed after.
    hosts.virsh_ok(
        &uri,
        &["snapshot-create-as", name, "s1", "--description", "first"],
    );
    let after = counter(&uri, name).expect("counter after the snapshot");
    assert_eq!(reason(&uri, name), "running (unpaused)");
    let seen = events.wait_for("Resumed Unpaused", Duration::from_secs(10));
    assert!(seen.contains("Suspended Paused"), "{seen}");
    assert_eq!(tags(&disk), ["s1"]);
    let xml = hosts.virsh_ok(&uri, &["snapshot-dumpxml", name, "s1"]);
    for part in [
        "<state>running</state>",
        "<memory snapshot='internal'/>",
        "<disk name='vda' snapshot='internal'/>",
        "<description>first</description>",
    ] {
        assert!(xml.contains(part), "{part} missing in {xml}");
    }
    let job = hosts.virsh_ok(&uri, &["domjobinfo", name, "--completed"]);
    assert!(job.contains("Snapshot"), "{job}");

    step(t0, "Reverting takes the guest's memory back: paused, i");
    // Reverting takes the guest's memory back: paused, its counter is the
    // one it had when the snapshot was taken.
    let later = counts_past(&hosts, &uri, name, after + 5);
    hosts.virsh_ok(&uri, &["snapshot-revert", name, "s1", "--paused"]);
    assert_eq!(reason(&uri, name), "paused (from snapshot)");
    events.wait_for("Suspended Snapshot", Duration::from_secs(10));
    let back = counter(&uri, name).expect("counter after the revert");
    assert!(
        (before..=after).contains(&back),
        "counter {back} after the revert, taken between {before} and {after}, was {later}"
    );
    step(t0, "A snapshot of the paused guest stays paused.");
    // A snapshot of the paused guest stays paused.
    hosts.virsh_ok(&uri, &["snapshot-create-as", name, "s2"]);
    assert_eq!(reason(&uri, name), "paused (from snapshot)");
    let xml = hosts.virsh_ok(&uri, &["snapshot-dumpxml", name, "s2"]);
    assert!(xml.contains("<state>paused</state>"), "{xml}");
    hosts.virsh_ok(&uri, &["resume", name]);
    counts_past(&hosts, &uri, name, back);

    step(t0, "The tree.");
    // The tree.
    assert_eq!(names(&hosts, &uri, name, &[]), ["s1", "s2"]);
    let current = hosts.virsh_ok(&uri, &["snapshot-current", name, "--name"]);
    assert_eq!(current.trim(), "s2");
    let parent = hosts.virsh_ok(&uri, &["snapshot-parent", name, "s2"]);
    assert_eq!(parent.trim(), "s1");
    let tree = hosts.virsh_ok(&uri, &["snapshot-list", name, "--tree"]);
    assert!(tree.contains("s1") && tree.contains("+- s2"), "{tree}");

    step(t0, "libvirt's refusals; nothing is taken.");
    // libvirt's refusals; nothing is taken.
    let dup = virsh_err(&uri, &["snapshot-create-as", name, "s1"]);
    assert!(dup.contains("s1 already exists"), "{dup}");
    let unknown = virsh_err(&uri, &["snapshot-revert", name, "nope"]);
    assert!(
        unknown.contains("no domain snapshot with matching name 'nope'"),
        "{unknown}"
    );
    let disk_only = virsh_err(
        &uri,
        &["snapshot-create-as", name, "d", "--disk-only", "--quiesce"],
    );
    assert!(
        disk_only.contains("QEMU guest agent is not configured"),
        "{disk_only}"
    );
    let live = virsh_err(&uri, &["snapshot-create-as", name, "l", "--live"]);
    assert!(
        live.contains("live snapshot creation is supported only during full system snapshots"),
        "{live}"
    );
    let quiesce = virsh_err(&uri, &["snapshot-create-as", name, "q", "--quiesce"]);
    assert!(
        quiesce.contains("'VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY' is required by flag"),
        "{quiesce}"
    );
    let bad = virsh_err(&uri, &["snapshot-create-as", name, "a/b"]);
    assert!(bad.contains("name can't contain '/'"), "{bad}");
    let ro = virsh_err(&uri, &["-r", "snapshot-create-as", name, "ro"]);
    assert!(ro.contains("read only") || ro.contains("forbidden"), "{ro}");
    let listed_ro = virsh(&uri, &["-r", "snapshot-list", name, "--name"]);
    assert!(listed_ro.status.success(), "{}", stderr_of(&listed_ro));
    let migrate = virsh_err(&uri, &["migrate", "--live", "--p2p", name, &hosts.b_uri()]);
    assert!(
        migrate.contains("cannot migrate domain with 2 snapshots"),
        "{migrate}"
    );
    // A second job while one runs: a dump stalled on a FIFO holds the job.
    let fifo = dir.path().join("mem.fifo");
    let fifo_arg = fifo.to_str().expect("utf-8 path");
    let (out, _) = dump_into_fifo(
        &uri,
        &fifo,
        &["dump", name, fifo_arg, "--memory-only"],
        || {
            dump_job_running(&uri, name);
            // libvirt's job condition: 30 s of waiting, then the holder.
            let busy = virsh_err(&uri, &["snapshot-create-as", name, "busy"]);
            assert!(
                busy.contains("cannot acquire state change lock")
                    && busy.contains("remoteDispatchDomainCoreDumpWithFormat"),
                "{busy}"
            );
        },
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(names(&hosts, &uri, name, &[]), ["s1", "s2"]);
    assert_eq!(tags(&disk), ["s1", "s2"]);

    step(t0, "The metadata survives a daemon restart; the guest ");
    // The metadata survives a daemon restart; the guest runs on.
    drop(events);
    hosts.a.restart();
    let events = VirshEvents::spawn(&uri, &["--loop", "--event", "lifecycle", "--domain", name]);
    events.sync_on_redefine(&uri, name);
    assert_eq!(names(&hosts, &uri, name, &[]), ["s1", "s2"]);
    assert_eq!(domstate(&uri, name).as_deref(), Some("running"));

    step(t0, "Shut off: a disk-only snapshot by qemu-img; revert");
    // Shut off: a disk-only snapshot by qemu-img; reverting to the running
    // snapshot starts QEMU and loads its memory.
    hosts.virsh_ok(&uri, &["destroy", name]);
    hosts.virsh_ok(&uri, &["snapshot-create-as", name, "s3"]);
    let xml = hosts.virsh_ok(&uri, &["snapshot-dumpxml", name, "s3"]);
    assert!(xml.contains("<state>shutoff</state>"), "{xml}");
    assert_eq!(tags(&disk), ["s1", "s2", "s3"]);
    hosts.virsh_ok(&uri, &["snapshot-revert", name, "s1", "--paused"]);
    assert_eq!(reason(&uri, name), "paused (from snapshot)");
    let loaded = counter(&uri, name).expect("counter of the loaded snapshot");
    assert!((before..=after).contains(&loaded), "{loaded}");
    hosts.virsh_ok(&uri, &["resume", name]);
    counts_past(&hosts, &uri, name, loaded);

    step(t0, "To the shut-off snapshot: the guest stops; with --");
    // To the shut-off snapshot: the guest stops; with --running it boots.
    hosts.virsh_ok(&uri, &["snapshot-revert", name, "s3"]);
    assert_eq!(reason(&uri, name), "shut off (from snapshot)");
    assert!(qemu_pids(&uuid).is_empty());
    events.wait_for("Stopped Snapshot", Duration::from_secs(10));
    hosts.virsh_ok(&uri, &["snapshot-revert", name, "s3", "--running"]);
    assert_eq!(reason(&uri, name), "running (from snapshot)");
    let seen = events.wait_for("Started Snapshot", Duration::from_secs(10));
    assert!(
        seen.contains("Suspended Snapshot"),
        "the earlier paused start: {seen}"
    );
    wait_until(Duration::from_secs(60), "the booted guest to count", || {
        counter(&uri, name).filter(|&c| c > 0)
    });
    let risky = virsh_err(&uri, &["snapshot-revert", name, "s3", "--running"]);
    assert!(risky.contains("must respawn guest"), "{risky}");

    step(t0, "Deleting while it runs (snapshot-delete): s3's chi");
    // Deleting while it runs (snapshot-delete): s3's child s4 moves up.
    hosts.virsh_ok(&uri, &["snapshot-create-as", name, "s4"]);
    let parent = hosts.virsh_ok(&uri, &["snapshot-parent", name, "s4"]);
    assert_eq!(parent.trim(), "s3");
    hosts.virsh_ok(&uri, &["snapshot-delete", name, "s3"]);
    let parent = hosts.virsh_ok(&uri, &["snapshot-parent", name, "s4"]);
    assert_eq!(parent.trim(), "s2");
    assert_eq!(tags(&disk), ["s1", "s2", "s4"]);
    step(t0, "--metadata leaves the image alone.");
    // --metadata leaves the image alone.
    hosts.virsh_ok(&uri, &["snapshot-delete", name, "s2", "--metadata"]);
    assert_eq!(names(&hosts, &uri, name, &[]), ["s1", "s4"]);
    assert_eq!(tags(&disk), ["s1", "s2", "s4"]);

    step(t0, "Shut off: undefine refused while snapshots exist; ");
    // Shut off: undefine refused while snapshots exist; deletion with
    // children by qemu-img.
    hosts.virsh_ok(&uri, &["destroy", name]);
    let kept = virsh_err(&uri, &["undefine", name]);
    assert!(
        kept.contains("cannot delete inactive domain with 2 snapshots"),
        "{kept}"
    );
    hosts.virsh_ok(&uri, &["snapshot-delete", name, "s1", "--children"]);
    assert!(names(&hosts, &uri, name, &[]).is_empty());
    assert_eq!(tags(&disk), ["s2"]);
    hosts.virsh_ok(&uri, &["snapshot-create-as", name, "s5"]);
    virsh_err(&uri, &["undefine", name]);
    hosts.virsh_ok(&uri, &["undefine", name, "--snapshots-metadata"]);
    let stored = hosts.a.state_dir().join("qemu/snapshots");
    let left: Vec<_> = std::fs::read_dir(&stored)
        .expect("snapshot dir")
        .flatten()
        .collect();
    assert!(left.is_empty(), "{left:?}");

    step(t0, "A raw disk cannot hold an internal snapshot.");
    // A raw disk cannot hold an internal snapshot.
    let raw = image(dir.path(), "raw.img", "raw");
    let (xml, _) = guest_with_disk(&hosts, "qsnap-raw", &raw, "raw");
    hosts.define_xml(&uri, "qsnap-raw", &xml);
    let refused = virsh_err(&uri, &["snapshot-create-as", "qsnap-raw", "r1"]);
    assert!(
        refused.contains("internal snapshot for disk vda unsupported for storage type raw"),
        "{refused}"
    );
    assert!(names(&hosts, &uri, "qsnap-raw", &[]).is_empty());
    step(t0, "done");
}
