//! Domain snapshots of QEMU guests, as libvirt 9.0's QEMU driver takes
//! internal ones (src/qemu/qemu_snapshot.c): every disk a qcow2 image that
//! keeps the snapshot inside it, and for a running guest the memory too.
//!
//! ```text
//!               running / paused guest          shut-off guest
//! create   pause ─ snapshot-save ─ resume    qemu-img snapshot -c (each disk)
//!          (or stop with HALT)
//! revert   pause ─ snapshot-load ─ cont      start -S ─ snapshot-load ─ cont
//!          to a shut-off snapshot: stop ─ qemu-img snapshot -a (─ boot)
//! delete   snapshot-delete                   qemu-img snapshot -d
//! ```
//!
//! The metadata (the tree, the current mark, each snapshot's domain
//! definition) is core's [`Snapshots`], stored beside the persistent
//! config. Create and revert are jobs GET_JOB_INFO reports; every call that
//! touches QEMU or the images holds the domain's job lock.

mod create;
mod external;
mod qemu_img;
mod qmp_job;
mod revert;

use std::path::PathBuf;

use migrated_core::domain::DomainRef;
use migrated_core::flags::check_flags;
use migrated_core::flags::snapshot::delete;
use migrated_core::snapshot::Snapshots;
use migrated_core::xml::{DomainDef, SnapshotDef, SnapshotLocation};
use migrated_core::{Error, Result};
use tracing::warn;
use uuid::Uuid;

use super::QemuDriver;
use crate::command::disk_node;
use crate::qmp::commands::SnapshotDelete;
use crate::qmp::Qmp;

/// The disks of `dom` that snapshot `snap` keeps internally, as
/// (target, image), in the domain's order.
fn internal_disks(snap: &SnapshotDef, dom: &DomainDef) -> Vec<(String, PathBuf)> {
    dom.devices
        .disks
        .iter()
        .filter(|d| {
            snap.disks
                .iter()
                .any(|s| s.name == d.target.dev && s.snapshot == Some(SnapshotLocation::Internal))
        })
        .filter_map(|d| {
            let source = d.source.as_ref().filter(|s| !s.path.is_empty())?;
            Some((d.target.dev.clone(), PathBuf::from(&source.path)))
        })
        .collect()
}

/// The `-blockdev` node names of `disks` as the command line names them.
fn nodes(disks: &[(String, PathBuf)]) -> Vec<String> {
    disks.iter().map(|(t, _)| disk_node(t)).collect()
}

/// The block nodes the running guest has `disks` on now: each one's top
/// node, which after an external snapshot is its overlay, not the
/// command line's `drive-<target>` (kept for a disk QEMU does not list).
async fn live_nodes(
    qmp: &Qmp,
    disks: &[(String, PathBuf)],
    operation: &'static str,
) -> Result<Vec<String>> {
    let tops = external::top_nodes(qmp, operation).await?;
    Ok(disks
        .iter()
        .zip(nodes(disks))
        .map(|((target, _), node)| {
            tops.iter()
                .find(|(t, _)| t == target)
                .map_or(node, |(_, top)| top.clone())
        })
        .collect())
}

/// The images of `disks`.
fn images(disks: &[(String, PathBuf)]) -> Vec<PathBuf> {
    disks.iter().map(|(_, p)| p.clone()).collect()
}

impl QemuDriver {
    /// Installs `snapshots` as the metadata of `uuid`, written first to the
    /// store when the domain is persistent.
    fn commit_snapshots(&self, uuid: &Uuid, snapshots: Snapshots) -> Result<()> {
        let mut reg = self.shared.lock()?;
        let Some(domain) = reg.domains.get_mut(uuid) else {
            return Err(Error::internal(
                "the domain disappeared during the snapshot",
            ));
        };
        if domain.persistent {
            self.shared.store.save_snapshots(uuid, &snapshots)?;
        }
        domain.snapshots = snapshots;
        Ok(())
    }

    /// A copy of the snapshot metadata of `dom`.
    fn snapshots_of(&self, dom: &DomainRef) -> Result<Snapshots> {
        self.read(|r| Ok(r.get(dom)?.snapshots.clone()))
    }

    /// Runs `f` over the snapshot metadata of `dom` (the listing calls).
    pub(super) fn with_snapshots<T>(
        &self,
        dom: &DomainRef,
        f: impl FnOnce(&Snapshots) -> Result<T>,
    ) -> Result<T> {
        self.read(|r| f(&r.get(dom)?.snapshots))
    }

    /// `DOMAIN_SNAPSHOT_DELETE`, as `qemuSnapshotDelete`: the snapshot (and
    /// with `CHILDREN` its descendants, with `CHILDREN_ONLY` only those) is
    /// removed from the images — by QEMU's `snapshot-delete` while the
    /// guest runs, `qemu-img snapshot -d` while it is off — then from the
    /// metadata; `METADATA_ONLY` leaves the images alone.
    pub(super) async fn snapshot_delete_impl(
        &self,
        dom: &DomainRef,
        name: &str,
        flags: u32,
    ) -> Result<()> {
        const OP: &str = "virDomainSnapshotDelete";
        check_flags(
            OP,
            u64::from(flags),
            u64::from(delete::CHILDREN | delete::CHILDREN_ONLY | delete::METADATA_ONLY),
        )?;
        let lock = self.job(dom)?;
        let _lock = lock.acquire("remoteDispatchDomainSnapshotDelete").await?;
        let before = self.snapshots_of(dom)?;
        let mut after = before.clone();
        let removed = after.remove(name, flags)?;
        if flags & delete::METADATA_ONLY == 0 {
            // Merging an overlay back (libvirt 9.0 commits it) needs block
            // jobs this driver does not run yet: refused in the words of
            // libvirt before 9.0, which tools recognise; `--metadata` works.
            let external = removed.iter().filter(|s| s.is_external()).count();
            if external > 0 {
                return Err(Error::ConfigUnsupported {
                    reason: format!(
                        "deletion of {external} external disk snapshots not supported yet"
                    ),
                });
            }
            let mut done: Vec<String> = Vec::new();
            for snap in &removed {
                if let Err(e) = self.delete_snapshot_data(dom, snap).await {
                    // Only the metadata of what is gone from the images goes.
                    let mut partial = before;
                    for gone in &done {
                        let _ = partial.remove(gone, 0);
                    }
                    if let Err(store) = self.commit_snapshots(&dom.uuid, partial) {
                        warn!(error = %store, "cannot record a partial snapshot deletion");
                    }
                    return Err(e);
                }
                done.push(snap.name.clone());
            }
        }
        self.commit_snapshots(&dom.uuid, after)
    }

    /// Removes snapshot `snap` from the images of `dom`.
    async fn delete_snapshot_data(&self, dom: &DomainRef, snap: &SnapshotDef) -> Result<()> {
        let (qmp, def) = self.read(|r| {
            let d = r.get(dom)?;
            Ok(match &d.live {
                Some(live) => (Some(live.runtime.qmp.clone()), live.def.clone()),
                None => (None, d.config.clone()),
            })
        })?;
        let disks = internal_disks(snap, &def);
        if disks.is_empty() {
            return Ok(());
        }
        match qmp {
            Some(qmp) => {
                let id = qmp_job::job_id("snapshot-delete");
                let cmd = SnapshotDelete {
                    job_id: id.clone(),
                    tag: snap.name.clone(),
                    devices: live_nodes(&qmp, &disks, "virDomainSnapshotDelete").await?,
                };
                qmp_job::run(&qmp, &id, &cmd, "virDomainSnapshotDelete").await
            }
            None => qemu_img::each(qemu_img::Op::Delete, &snap.name, &images(&disks)).await,
        }
    }
}

/// A domain with one virtio disk per entry of `formats` (`vda` on
/// `/img/0.<format>`, `vdb` on `/img/1.<format>`, …), for the tests.
#[cfg(test)]
fn test_domain(formats: &[&str]) -> DomainDef {
    let disks: String = formats
        .iter()
        .enumerate()
        .map(|(i, f)| {
            format!(
                "<disk type='file' device='disk'><driver name='qemu' type='{f}'/>\
                 <source file='/img/{i}.{f}'/><target dev='vd{}'/></disk>",
                char::from(b'a' + u8::try_from(i).expect("few disks"))
            )
        })
        .collect();
    DomainDef::parse(&format!(
        "<domain type='qemu'><name>vm</name><memory unit='MiB'>4</memory>\
         <os><type>hvm</type></os><devices>{disks}</devices></domain>"
    ))
    .expect("domain")
}

#[cfg(test)]
mod tests {
    use super::*;
    use migrated_core::xml::{SnapshotDisk, SnapshotParse};

    #[test]
    fn internal_disks_follow_the_snapshot_and_the_domain() {
        let dom = test_domain(&["qcow2", "qcow2"]);
        let mut snap = SnapshotDef::parse(
            "<domainsnapshot><name>s</name></domainsnapshot>",
            SnapshotParse::default(),
            1,
        )
        .expect("snapshot");
        snap.disks = vec![
            SnapshotDisk {
                name: "vda".into(),
                snapshot: Some(SnapshotLocation::Internal),
                ..SnapshotDisk::default()
            },
            SnapshotDisk {
                name: "vdb".into(),
                snapshot: Some(SnapshotLocation::No),
                ..SnapshotDisk::default()
            },
        ];
        let disks = internal_disks(&snap, &dom);
        assert_eq!(disks, [("vda".to_owned(), PathBuf::from("/img/0.qcow2"))]);
        assert_eq!(nodes(&disks), ["drive-vda"]);
        assert_eq!(images(&disks), [PathBuf::from("/img/0.qcow2")]);
    }
}
