//! External disk-only snapshots of a real QEMU guest (the workload kernel,
//! disks made by qemu-img) through stock `virsh`, the first half of the
//! nightly backup recipe: `snapshot-create-as --disk-only --atomic
//! --no-metadata` puts a qcow2 overlay on top of each selected disk while
//! the guest keeps running, `domblklist`/`dumpxml` and `qemu-img info
//! --backing-chain` show the chain, the chain survives a daemon restart,
//! `domblkstat`/`domblkinfo` find the disk under its new top node, a
//! shut-off guest gets its overlays from qemu-img; libvirt's refusals
//! (quiesce without an agent, existing or missing files, revert to an
//! external snapshot) leave the guest on its images.

mod migrate_support;
mod qemu_support;

use std::path::Path;
use std::process::Command;

use migrated_tests::clients::{stderr_of, stdout_of};
use qemu_support::{counter_above, domstate, hosts_with_images, image, virsh_err, QemuHosts};

/// `virsh domblklist`: (target, source) pairs.
fn blklist(hosts: &QemuHosts, uri: &str, name: &str, extra: &[&str]) -> Vec<(String, String)> {
    let mut args = vec!["domblklist", name];
    args.extend_from_slice(extra);
    hosts
        .virsh_ok(uri, &args)
        .lines()
        .skip(2)
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            Some((words.next()?.to_owned(), words.next()?.to_owned()))
        })
        .collect()
}

/// The images of `top`'s backing chain, top first (`-U`: QEMU holds them).
fn chain(top: &Path) -> Vec<String> {
    let out = Command::new("qemu-img")
        .args(["info", "-U", "--backing-chain", "--output=json"])
        .arg(top)
        .output()
        .expect("run qemu-img");
    assert!(out.status.success(), "qemu-img info: {}", stderr_of(&out));
    let infos: serde_json::Value =
        serde_json::from_str(&stdout_of(&out)).expect("qemu-img info json");
    infos
        .as_array()
        .expect("a chain")
        .iter()
        .filter_map(|i| i["filename"].as_str().map(str::to_owned))
        .collect()
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn qemu_external_snapshots() {
    let Some((mut hosts, dir)) = hosts_with_images("migrated-qext-") else {
        return;
    };
    let uri = hosts.a_uri();
    let vda = image(dir.path(), "vda.qcow2", "qcow2");
    let vdb = image(dir.path(), "vdb.img", "raw");
    let name = "qext";
    let (xml, _) = hosts.guest_xml(name, 64, 8);
    let devices = format!(
        "<devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/>\
         <source file='{}'/><target dev='vda' bus='virtio'/></disk>\
         <disk type='file' device='disk'><driver name='qemu' type='raw'/>\
         <source file='{}'/><target dev='vdb' bus='virtio'/></disk></devices></domain>",
        vda.display(),
        vdb.display()
    );
    hosts.define_xml(&uri, name, &xml.replace("</domain>", &devices));
    hosts.virsh_ok(&uri, &["start", name]);
    let before = counter_above(&uri, name, 0, &hosts);

    // The backup recipe's snapshot: vda gets its overlay (libvirt's default
    // name), vdb is left out, the guest keeps counting, no metadata.
    hosts.virsh_ok(
        &uri,
        &[
            "snapshot-create-as",
            name,
            "s1",
            "--disk-only",
            "--atomic",
            "--no-metadata",
            "--diskspec",
            "vdb,snapshot=no",
        ],
    );
    let overlay = dir.path().join("vda.s1");
    assert_eq!(
        blklist(&hosts, &uri, name, &[]),
        [
            ("vda".to_owned(), path(&overlay)),
            ("vdb".to_owned(), path(&vdb))
        ]
    );
    assert_eq!(chain(&overlay), [path(&overlay), path(&vda)]);
    let running = counter_above(&uri, name, before, &hosts);
    assert_eq!(domstate(&uri, name).as_deref(), Some("running"));
    let live = hosts.virsh_ok(&uri, &["dumpxml", name]);
    let below = live
        .split("<backingStore type='file'")
        .nth(1)
        .expect("a backing store in the live XML");
    assert!(
        below
            .trim_start_matches(|c| c != '<')
            .starts_with("<format type='qcow2'/>")
            && below.contains(&format!("<source file='{}'/>", vda.display())),
        "{live}"
    );
    // Statistics and sizes still find the disk under its new top node.
    let stats = hosts.virsh_ok(&uri, &["domblkstat", name, "vda"]);
    assert!(stats.contains("vda rd_req"), "{stats}");
    let info = hosts.virsh_ok(&uri, &["domblkinfo", name, "vda"]);
    assert!(info.contains("Capacity:       16777216"), "{info}");
    // The persistent definition follows (libvirt 9.0 updates both).
    assert_eq!(
        blklist(&hosts, &uri, name, &["--inactive"])[0].1,
        path(&overlay)
    );
    assert!(hosts
        .virsh_ok(&uri, &["snapshot-list", name, "--name"])
        .trim()
        .is_empty());

    // Refusals leave the guest on its images and make no file.
    let quiesce = virsh_err(
        &uri,
        &["snapshot-create-as", name, "q", "--disk-only", "--quiesce"],
    );
    assert!(
        quiesce.contains("QEMU guest agent is not configured"),
        "{quiesce}"
    );
    assert!(!dir.path().join("vda.q").exists());
    let taken = dir.path().join("taken.qcow2");
    std::fs::write(&taken, b"someone's data").expect("write");
    let spec = format!("vda,file={}", taken.display());
    let exists = virsh_err(
        &uri,
        &[
            "snapshot-create-as",
            name,
            "e",
            "--disk-only",
            "--diskspec",
            &spec,
        ],
    );
    assert!(
        exists.contains(&format!(
            "external snapshot file for disk vda already exists and is not a block device: {}",
            taken.display()
        )),
        "{exists}"
    );
    assert_eq!(std::fs::read(&taken).expect("read"), b"someone's data");
    let missing = format!("vda,file={}", dir.path().join("none.qcow2").display());
    let reuse = virsh_err(
        &uri,
        &[
            "snapshot-create-as",
            name,
            "m",
            "--disk-only",
            "--reuse-external",
            "--diskspec",
            &missing,
        ],
    );
    assert!(
        reuse.contains("missing existing file for disk vda"),
        "{reuse}"
    );
    // QEMU refuses to open a reused file that is no qcow2 image: nothing
    // switches, the file stays as it was.
    let reused = virsh_err(
        &uri,
        &[
            "snapshot-create-as",
            name,
            "r",
            "--disk-only",
            "--reuse-external",
            "--diskspec",
            &spec,
            "--diskspec",
            "vdb,snapshot=no",
        ],
    );
    assert!(reused.contains("qcow2"), "{reused}");
    assert_eq!(std::fs::read(&taken).expect("read"), b"someone's data");
    assert_eq!(blklist(&hosts, &uri, name, &[])[0].1, path(&overlay));
    let running = counter_above(&uri, name, running, &hosts);

    // With metadata: the snapshot XML records the overlay; reverting to an
    // external snapshot is refused as by libvirt 9.0.
    hosts.virsh_ok(&uri, &["snapshot-create-as", name, "s2", "--disk-only"]);
    let second = dir.path().join("vda.s2");
    let snap = hosts.virsh_ok(&uri, &["snapshot-dumpxml", name, "s2"]);
    for part in [
        "<state>disk-snapshot</state>",
        "<disk name='vda' snapshot='external' type='file'>",
        &format!("<source file='{}'/>", second.display()),
        "<disk name='vdb' snapshot='external' type='file'>",
    ] {
        assert!(snap.contains(part), "{part} in {snap}");
    }
    assert_eq!(chain(&second), [path(&second), path(&overlay), path(&vda)]);
    let revert = virsh_err(&uri, &["snapshot-revert", name, "s2"]);
    assert!(
        revert.contains("revert to external snapshot not supported yet"),
        "{revert}"
    );

    let delete = virsh_err(&uri, &["snapshot-delete", name, "s2"]);
    assert!(
        delete.contains("deletion of 1 external disk snapshots not supported yet"),
        "{delete}"
    );
    hosts.virsh_ok(&uri, &["snapshot-delete", name, "s2", "--metadata"]);
    assert!(second.exists(), "--metadata leaves the overlay alone");

    // A daemon restart keeps the chain; the reattached guest counts on.
    hosts.a.restart();
    assert_eq!(blklist(&hosts, &uri, name, &[])[0].1, path(&second));
    let running = counter_above(&uri, name, running, &hosts);

    // Shut off: the overlay comes from qemu-img and the definition's
    // source switches; the guest boots from the chain.
    hosts.virsh_ok(&uri, &["destroy", name]);
    hosts.virsh_ok(
        &uri,
        &[
            "snapshot-create-as",
            name,
            "s3",
            "--disk-only",
            "--no-metadata",
            "--diskspec",
            "vdb,snapshot=no",
        ],
    );
    let third = dir.path().join("vda.s3");
    assert_eq!(blklist(&hosts, &uri, name, &[])[0].1, path(&third));
    assert_eq!(
        chain(&third),
        [path(&third), path(&second), path(&overlay), path(&vda)]
    );
    assert!(running > before);
    hosts.virsh_ok(&uri, &["start", name]);
    counter_above(&uri, name, 0, &hosts);
}
