//! Stock `virsh` snapshot commands against the test driver: create, list
//! (tree, filters), info, dumpxml, parent, current, revert (with its
//! lifecycle events), delete, read-only refusals and bad input, the
//! metadata surviving a daemon restart, and libvirt's refusals to migrate
//! or undefine a domain that has snapshots.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use migrated_tests::clients::{assert_ok as ok, stderr_of, stdout_of};
use migrated_tests::{require_binary, virsh, Daemon, VirshEvents};

const EVENT_WAIT: Duration = Duration::from_secs(10);

/// Runs a command that must fail and returns its error text.
fn fails(output: &Output, what: &str) -> String {
    assert!(
        !output.status.success(),
        "{what} succeeded: {}",
        stdout_of(output)
    );
    stderr_of(output)
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write file");
    path.display().to_string()
}

fn names(uri: &str, args: &[&str]) -> Vec<String> {
    let mut cmd = vec!["snapshot-list", "snap", "--name"];
    cmd.extend_from_slice(args);
    let out = ok(&virsh(uri, &cmd), &cmd.join(" "));
    let mut v: Vec<String> = out
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    v.sort();
    v
}

fn domstate(uri: &str) -> String {
    ok(&virsh(uri, &["domstate", "snap", "--reason"]), "domstate")
        .trim()
        .to_owned()
}

const DOMAIN: &str = "<domain type='test'>\n  <name>snap</name>\n  \
    <memory unit='MiB'>4</memory>\n  <vcpu>1</vcpu>\n  <os><type arch='x86_64'>hvm</type></os>\n  \
    <devices>\n    <disk type='file' device='disk'><source file='/var/lib/test/snap.img'/>\
    <target dev='vda' bus='virtio'/></disk>\n  </devices>\n</domain>\n";

#[test]
fn snapshots_through_virsh_on_the_test_driver() {
    if require_binary("virsh").is_none() {
        return;
    }
    let mut daemon = Daemon::builder().tcp().unix().spawn();
    let uri = daemon.uri();
    let dir = tempfile::tempdir().expect("temp dir");
    let file = write(dir.path(), "snap.xml", DOMAIN);
    ok(&virsh(&uri, &["define", &file]), "define");
    let events = VirshEvents::spawn(
        &uri,
        &["--loop", "--event", "lifecycle", "--domain", "snap"],
    );
    events.sync_on_redefine(&uri, "snap");
    ok(&virsh(&uri, &["start", "snap"]), "start");

    // Three states, three snapshots: s1 running, s2 paused, s3 shut off.
    let made = ok(
        &virsh(
            &uri,
            &["snapshot-create-as", "snap", "s1", "--description", "first"],
        ),
        "snapshot-create-as s1",
    );
    assert!(made.contains("Domain snapshot s1 created"), "{made}");
    let dup = fails(
        &virsh(&uri, &["snapshot-create-as", "snap", "s1"]),
        "duplicate name",
    );
    assert!(dup.contains("domain moment s1 already exists"), "{dup}");
    ok(&virsh(&uri, &["suspend", "snap"]), "suspend");
    ok(&virsh(&uri, &["snapshot-create-as", "snap", "s2"]), "s2");
    ok(&virsh(&uri, &["destroy", "snap"]), "destroy");
    // The definition changes after s3: a revert to s3 must undo it.
    ok(&virsh(&uri, &["snapshot-create-as", "snap", "s3"]), "s3");
    ok(
        &virsh(
            &uri,
            &["desc", "snap", "--config", "--title", "changed later"],
        ),
        "desc --title",
    );

    assert_eq!(names(&uri, &[]), ["s1", "s2", "s3"]);
    assert_eq!(names(&uri, &["--roots"]), ["s1"]);
    assert_eq!(names(&uri, &["--leaves"]), ["s3"]);
    assert_eq!(names(&uri, &["--inactive"]), ["s3"]);
    assert_eq!(names(&uri, &["--active"]), ["s1", "s2"]);
    // --current lists the current snapshot's children: s3 has none.
    assert!(names(&uri, &["--current"]).is_empty());
    assert_eq!(names(&uri, &["--from", "s2"]), ["s3"]);
    assert_eq!(
        names(&uri, &["--from", "s1", "--descendants"]),
        ["s2", "s3"]
    );
    let tree = ok(&virsh(&uri, &["snapshot-list", "snap", "--tree"]), "--tree");
    assert!(
        tree.contains("s1") && tree.contains("+- s2") && tree.contains("+- s3"),
        "{tree}"
    );
    let table = ok(
        &virsh(&uri, &["snapshot-list", "snap", "--parent"]),
        "--parent",
    );
    let s2_row = table.lines().find(|l| l.trim_start().starts_with("s2"));
    assert!(
        s2_row.is_some_and(|l| l.contains("paused") && l.contains("s1")),
        "{table}"
    );
    let info = ok(
        &virsh(&uri, &["snapshot-info", "snap", "s2"]),
        "snapshot-info",
    );
    for needle in [
        "State:          paused",
        "Parent:         s1",
        "Children:       1",
        "Current:        no",
    ] {
        assert!(info.contains(needle), "{needle:?} missing from {info}");
    }
    let parent = ok(&virsh(&uri, &["snapshot-parent", "snap", "s3"]), "parent");
    assert_eq!(parent.trim(), "s2");
    let current = ok(
        &virsh(&uri, &["snapshot-current", "snap", "--name"]),
        "current",
    );
    assert_eq!(current.trim(), "s3");
    let xml = ok(&virsh(&uri, &["snapshot-dumpxml", "snap", "s1"]), "dumpxml");
    for needle in [
        "<name>s1</name>",
        "<description>first</description>",
        "<state>running</state>",
        "<memory snapshot='internal'/>",
        "<disk name='vda' snapshot='internal'/>",
        "<domain type='test'>",
    ] {
        assert!(xml.contains(needle), "{needle:?} missing from {xml}");
    }

    // Revert to a running snapshot of a shut-off guest: it starts.
    ok(
        &virsh(&uri, &["snapshot-revert", "snap", "s1"]),
        "revert s1",
    );
    assert_eq!(domstate(&uri), "running (from snapshot)");
    events.wait_for("Started Snapshot", EVENT_WAIT);
    // ... to a shut-off one: it stops, and the later config change is gone.
    ok(
        &virsh(&uri, &["snapshot-revert", "snap", "s3"]),
        "revert s3",
    );
    assert_eq!(domstate(&uri), "shut off (from snapshot)");
    events.wait_for("Stopped Snapshot", EVENT_WAIT);
    let config = ok(&virsh(&uri, &["dumpxml", "snap", "--inactive"]), "dumpxml");
    assert!(!config.contains("changed later"), "{config}");
    // ... to the paused one, asking for it to run.
    ok(
        &virsh(&uri, &["snapshot-revert", "snap", "s2", "--running"]),
        "revert s2 --running",
    );
    assert_eq!(domstate(&uri), "running (from snapshot)");
    // A running guest cannot go to an inactive snapshot and run without --force.
    let risky = fails(
        &virsh(&uri, &["snapshot-revert", "snap", "s3", "--running"]),
        "risky revert",
    );
    assert!(
        risky.contains("revert requires force: must respawn guest to start inactive snapshot"),
        "{risky}"
    );
    ok(
        &virsh(
            &uri,
            &["snapshot-revert", "snap", "s3", "--running", "--force"],
        ),
        "forced revert",
    );
    assert_eq!(domstate(&uri), "running (from snapshot)");
    let current = ok(
        &virsh(&uri, &["snapshot-current", "snap", "--name"]),
        "current",
    );
    assert_eq!(current.trim(), "s3");

    // Bad input changes nothing.
    let unknown = fails(
        &virsh(&uri, &["snapshot-revert", "snap", "nope"]),
        "unknown",
    );
    assert!(
        unknown.contains("Domain snapshot not found: no domain snapshot with matching name 'nope'"),
        "{unknown}"
    );
    let bogus = write(
        dir.path(),
        "bogus.xml",
        "<domainsnapshot><bogus/></domainsnapshot>",
    );
    let bad = fails(
        &virsh(&uri, &["snapshot-create", "snap", &bogus]),
        "bad xml",
    );
    assert!(bad.contains("XML error"), "{bad}");
    let torn = write(dir.path(), "torn.xml", "<domainsnapshot><name>x</name>");
    fails(
        &virsh(&uri, &["snapshot-create", "snap", &torn]),
        "malformed xml",
    );
    assert_eq!(names(&uri, &[]), ["s1", "s2", "s3"]);

    // A read-only connection looks but does not touch.
    let ro = daemon.unix_ro_uri();
    assert_eq!(names(&ro, &[]), ["s1", "s2", "s3"]);
    for cmd in [
        vec!["snapshot-create-as", "snap", "ro"],
        vec!["snapshot-revert", "snap", "s1"],
        vec!["snapshot-delete", "snap", "s1"],
    ] {
        let denied = fails(&virsh(&ro, &cmd), &cmd.join(" "));
        assert!(denied.contains("operation forbidden"), "{denied}");
    }

    // As libvirt's QEMU driver: no migration with snapshots.
    let peer = Daemon::builder().tcp().spawn();
    let refused = fails(
        &virsh(&uri, &["migrate", "--live", "snap", &peer.uri()]),
        "migrate with snapshots",
    );
    assert!(
        refused.contains("cannot migrate domain with 3 snapshots"),
        "{refused}"
    );
    assert_eq!(domstate(&uri), "running (from snapshot)");

    // The metadata survives a restart (the running test guest does not).
    ok(&virsh(&uri, &["destroy", "snap"]), "destroy");
    daemon.restart();
    assert_eq!(names(&uri, &[]), ["s1", "s2", "s3"]);
    let current = ok(
        &virsh(&uri, &["snapshot-current", "snap", "--name"]),
        "current",
    );
    assert_eq!(current.trim(), "s3");
    let parent = ok(&virsh(&uri, &["snapshot-parent", "snap", "s2"]), "parent");
    assert_eq!(parent.trim(), "s1");

    // Deleting one links its children to its parent; --children-only
    // empties a subtree; libvirt's test driver has no --metadata.
    ok(
        &virsh(&uri, &["snapshot-delete", "snap", "s2"]),
        "delete s2",
    );
    let parent = ok(&virsh(&uri, &["snapshot-parent", "snap", "s3"]), "parent");
    assert_eq!(parent.trim(), "s1");
    let meta = fails(
        &virsh(&uri, &["snapshot-delete", "snap", "s3", "--metadata"]),
        "--metadata",
    );
    assert!(meta.contains("unsupported flags (0x2)"), "{meta}");
    ok(
        &virsh(&uri, &["snapshot-delete", "snap", "s1", "--children-only"]),
        "children-only",
    );
    assert_eq!(names(&uri, &[]), ["s1"]);

    // Undefine keeps a shut-off guest's snapshots unless asked to drop them.
    let kept = fails(&virsh(&uri, &["undefine", "snap"]), "undefine");
    assert!(
        kept.contains("cannot delete inactive domain with 1 snapshots"),
        "{kept}"
    );
    ok(
        &virsh(&uri, &["undefine", "snap", "--snapshots-metadata"]),
        "undefine --snapshots-metadata",
    );
    let stored = daemon.state_dir().join("test/snapshots");
    let left: Vec<_> = std::fs::read_dir(&stored)
        .expect("snapshot dir")
        .flatten()
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
