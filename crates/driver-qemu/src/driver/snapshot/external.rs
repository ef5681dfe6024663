//! External disk-only snapshots, as libvirt 9.0's QEMU driver takes them
//! (`qemuSnapshotCreateActiveExternal` without memory,
//! `qemuSnapshotCreateInactiveExternal`): each selected disk gets a new
//! qcow2 overlay whose backing file is the disk's current image, which from
//! then on is only read.
//!
//! ```text
//! running   qemu-img create -b ─ blockdev-add (backing: null) ─┐
//!           (each disk; not with REUSE_EXT)                    │
//!           transaction [blockdev-snapshot …] ◀────────────────┘  one step for all disks
//!           failure: blockdev-del, the created files removed
//! shut off  qemu-img create -b (each disk)
//! both      <source> = overlay, <backingStore> = the old chain
//! ```

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use migrated_core::domain::DomainRef;
use migrated_core::flags::snapshot::create;
use migrated_core::xml::{
    BackingStore, DiskType, DomainDef, SnapshotDef, SnapshotDisk, SnapshotLocation,
};
use migrated_core::{Error, Result};
use serde_json::json;
use tracing::{info, warn};

use super::super::registry::Runtime;
use super::super::QemuDriver;
use crate::qmp::commands::qdev_target;
use crate::qmp::devices::{BlockdevAdd, BlockdevDel, Transaction, TransactionAction};
use crate::qmp::throttle::QueryBlockThrottle;
use crate::qmp::Qmp;

use super::qemu_img;

const OP: &str = "virDomainSnapshotCreateXML";

/// One disk's external snapshot: its new overlay on top of its image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Overlay {
    /// The disk's target (`vda`).
    pub target: String,
    /// The new top image.
    pub file: PathBuf,
    /// The new top image's format (`qcow2`).
    pub format: String,
    /// The image it goes on, the disk's current `<source>`.
    pub base: PathBuf,
    /// The format of `base`.
    pub base_format: String,
}

/// The overlays snapshot `snap` (its disks aligned with `dom`'s and named)
/// asks for, checked as libvirt's `qemuSnapshotPrepareDiskExternal`.
///
/// # Errors
/// `VIR_ERR_CONFIG_UNSUPPORTED` for an overlay format other than qcow2, and
/// a disk without a file source.
pub(super) fn overlays(snap: &SnapshotDef, dom: &DomainDef) -> Result<Vec<Overlay>> {
    let mut out = Vec::new();
    for (disk, domdisk) in snap.disks.iter().zip(&dom.devices.disks) {
        if disk.snapshot != Some(SnapshotLocation::External) {
            continue;
        }
        let format = disk.driver_type.clone().unwrap_or_else(|| "qcow2".into());
        if format != "qcow2" {
            return Err(Error::ConfigUnsupported {
                reason: format!(
                    "external snapshot format for disk {} is unsupported: {format}",
                    disk.name
                ),
            });
        }
        let (Some(file), Some(source)) = (&disk.source_file, &domdisk.source) else {
            return Err(Error::ConfigUnsupported {
                reason: format!("disk '{}' has no source to snapshot", disk.name),
            });
        };
        if disk.source_type.as_deref().is_some_and(|t| t != "file") {
            return Err(Error::ConfigUnsupported {
                reason: format!(
                    "external snapshots of disk {} are supported into files only",
                    disk.name
                ),
            });
        }
        let base_format = domdisk
            .driver
            .as_ref()
            .and_then(|d| d.format.clone())
            .unwrap_or_else(|| "raw".into());
        out.push(Overlay {
            target: domdisk.target.dev.clone(),
            file: PathBuf::from(file),
            format,
            base: PathBuf::from(&source.path),
            base_format,
        });
    }
    Ok(out)
}

/// Checks the overlay files before anything is made, as libvirt: without
/// `reuse` a file may exist only empty; with it, it must exist.
///
/// # Errors
/// `VIR_ERR_CONFIG_UNSUPPORTED` for an existing non-empty file (without
/// `reuse`) or one that is not a regular file, a system error for a
/// missing one (with `reuse`) or one that cannot be examined.
pub(super) fn check_files(overlays: &[Overlay], reuse: bool) -> Result<()> {
    for o in overlays {
        let shown = o.file.display();
        match std::fs::metadata(&o.file) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if reuse {
                    return Err(Error::system_call(
                        format!("missing existing file for disk {}: {shown}", o.target),
                        e,
                    ));
                }
            }
            Err(e) => {
                return Err(Error::system_call(
                    format!("unable to stat for disk {}: {shown}", o.target),
                    e,
                ))
            }
            Ok(meta) if !meta.is_file() => {
                return Err(Error::ConfigUnsupported {
                    reason: format!(
                        "mismatch between configured type for snapshot disk '{}' and the type \
                         of existing file '{shown}'",
                        o.target
                    ),
                })
            }
            Ok(meta) if !reuse && meta.len() > 0 => {
                return Err(Error::ConfigUnsupported {
                    reason: format!(
                        "external snapshot file for disk {} already exists and is not a block \
                         device: {shown}",
                        o.target
                    ),
                })
            }
            Ok(_) => {}
        }
    }
    Ok(())
}

/// The overlay files made for a snapshot, removed again unless
/// [`Created::keep`] is called (libvirt's rollback of a failed snapshot).
#[derive(Debug, Default)]
pub(super) struct Created {
    files: Vec<PathBuf>,
}

impl Created {
    /// Keeps the files: the snapshot succeeded.
    pub(super) fn keep(mut self) {
        self.files.clear();
    }
}

impl Drop for Created {
    fn drop(&mut self) {
        for file in &self.files {
            if let Err(e) = std::fs::remove_file(file) {
                warn!(file = %file.display(), error = %e, "cannot remove a just-created overlay");
            }
        }
    }
}

/// Makes each overlay file with `qemu-img create -b` unless `reuse`; on a
/// failure the ones made so far are removed.
///
/// # Errors
/// As `qemu-img create`.
pub(super) async fn create_files(overlays: &[Overlay], reuse: bool) -> Result<Created> {
    let mut created = Created::default();
    if reuse {
        return Ok(created);
    }
    for o in overlays {
        let existed = o.file.exists();
        qemu_img::create_overlay(&o.file, &o.base, &o.base_format).await?;
        if !existed {
            created.files.push(o.file.clone());
        }
    }
    Ok(created)
}

/// A block node name for the overlay of disk `target` that no earlier
/// snapshot of this QEMU process used (QEMU caps names at 31 bytes).
fn overlay_node(target: &str, n: usize) -> String {
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    let mut name = format!("snap{n}-{:x}-{target}", micros & 0xff_ffff_ffff);
    name.truncate(31);
    name
}

/// The top block node of each disk of the running guest, by target;
/// `operation` names the API in errors.
pub(super) async fn top_nodes(qmp: &Qmp, operation: &'static str) -> Result<Vec<(String, String)>> {
    let blocks = qmp
        .execute(&QueryBlockThrottle)
        .await
        .map_err(|e| e.into_core(operation))?;
    Ok(blocks
        .iter()
        .filter_map(|b| Some((qdev_target(b.qdev()?).to_owned(), b.node_name()?.to_owned())))
        .collect())
}

/// Switches the disks of a running guest onto their overlays in one QMP
/// `transaction`: each overlay is opened (`blockdev-add`, its backing left
/// for the snapshot to attach) and then all of them are put on top at once.
/// On a failure the opened nodes are closed again; the caller removes the
/// files.
///
/// # Errors
/// QEMU's refusal (`VIR_ERR_INTERNAL_ERROR` with its message), or
/// `VIR_ERR_INTERNAL_ERROR` when a disk has no block node.
pub(super) async fn switch_running(qmp: &Qmp, overlays: &[Overlay]) -> Result<()> {
    let tops = top_nodes(qmp, OP).await?;
    let mut actions = Vec::new();
    let mut added: Vec<String> = Vec::new();
    let mut outcome = Ok(());
    for (n, o) in overlays.iter().enumerate() {
        let Some((_, top)) = tops.iter().find(|(t, _)| *t == o.target) else {
            outcome = Err(Error::internal(format!(
                "cannot find the block node of disk '{}'",
                o.target
            )));
            break;
        };
        let node = overlay_node(&o.target, n);
        let add = BlockdevAdd(json!({
            "node-name": node,
            "driver": o.format,
            "file": {"driver": "file", "filename": o.file.to_string_lossy()},
            "backing": null,
        }));
        if let Err(e) = qmp.execute(&add).await {
            outcome = Err(e.into_core(OP));
            break;
        }
        added.push(node.clone());
        actions.push(TransactionAction::BlockdevSnapshot {
            node: top.clone(),
            overlay: node,
        });
    }
    if outcome.is_ok() {
        outcome = qmp
            .execute(&Transaction { actions })
            .await
            .map(|_| ())
            .map_err(|e| e.into_core(OP));
    }
    if outcome.is_err() {
        for node_name in added {
            if let Err(e) = qmp.execute(&BlockdevDel { node_name }).await {
                warn!(error = %e.chain(), "cannot close the overlay of a failed snapshot");
            }
        }
    }
    outcome
}

/// Puts overlay `o` on top of disk `o.target` of `def`: its `<source>`
/// becomes the overlay and the old image heads the `<backingStore>` chain.
/// A disk whose source is no longer `o.base` is left alone (libvirt updates
/// the persistent definition only where it still names the same image).
pub(super) fn apply(def: &mut DomainDef, o: &Overlay) {
    let Some(disk) = def
        .devices
        .disks
        .iter_mut()
        .find(|d| d.target.dev == o.target)
    else {
        return;
    };
    let Some(source) = disk.source.as_mut() else {
        return;
    };
    if Path::new(&source.path) != o.base {
        return;
    }
    let old = BackingStore {
        kind: disk.kind,
        format: Some(o.base_format.clone()),
        path: std::mem::replace(&mut source.path, o.file.to_string_lossy().into_owned()),
        index: source.index,
    };
    disk.kind = DiskType::File;
    disk.backing.insert(0, old);
    disk.driver.get_or_insert_with(Default::default).format = Some(o.format.clone());
}

/// The snapshot's record of disk `o`: the overlay it made.
fn record(disk: &mut SnapshotDisk, o: &Overlay) {
    disk.source_type = Some("file".into());
    disk.source_file = Some(o.file.to_string_lossy().into_owned());
    disk.driver_type = Some(o.format.clone());
}

impl QemuDriver {
    /// Takes external snapshot `snap` of the disks of `dom` (definition
    /// `current`), running as `live` (its runtime and run id) or shut off:
    /// the overlays made and switched to, the live definition (status file)
    /// and the persistent one updated, the files recorded in `snap`.
    /// `QUIESCE` needs the guest agent, which this driver does not drive, so
    /// it fails as libvirt fails without an agent.
    ///
    /// # Errors
    /// libvirt's refusals of the files, qemu-img's and QEMU's failures; on
    /// any of them the guest stays on its images and the files made are
    /// removed.
    pub(super) async fn take_external(
        &self,
        dom: &DomainRef,
        live: Option<(&Runtime, i32)>,
        current: &DomainDef,
        snap: &mut SnapshotDef,
        flags: u32,
    ) -> Result<()> {
        if flags & create::QUIESCE != 0 {
            return Err(self.agent_unavailable(dom)?);
        }
        let reuse = flags & create::REUSE_EXT != 0;
        let overlays = overlays(snap, current)?;
        check_files(&overlays, reuse)?;
        let created = create_files(&overlays, reuse).await?;
        if let Some((runtime, _)) = live {
            switch_running(&runtime.qmp, &overlays).await?;
        }
        // From here the guest writes to the overlays: keep them whatever the
        // bookkeeping below meets.
        created.keep();
        if let Some((_, id)) = live {
            self.shared.edit_live(&dom.uuid, id, |def| {
                overlays.iter().for_each(|o| apply(def, o));
                Ok(())
            })?;
        }
        self.external_config(dom, &overlays)?;
        for disk in &mut snap.disks {
            if let Some(o) = overlays.iter().find(|o| o.target == disk.name) {
                record(disk, o);
            }
        }
        info!(name = %dom.name, overlays = overlays.len(), "external snapshot taken");
        Ok(())
    }

    /// The persistent definition of `dom` follows its disks onto `overlays`.
    fn external_config(&self, dom: &DomainRef, overlays: &[Overlay]) -> Result<()> {
        let mut reg = self.shared.lock()?;
        let domain = reg.get_mut(dom)?;
        if !domain.persistent {
            return Ok(());
        }
        let mut config = domain.config.clone();
        overlays.iter().for_each(|o| apply(&mut config, o));
        self.shared
            .store
            .save(&config)
            .map_err(|e| e.into_core(OP))?;
        domain.config = config;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use migrated_core::snapshot::{align_disks, assign_external_names};
    use migrated_core::xml::{FormatOptions, SnapshotParse};

    use super::super::test_domain;

    fn dom() -> DomainDef {
        test_domain(&["raw", "qcow2"])
    }

    fn snap(xml: &str, d: &DomainDef) -> SnapshotDef {
        let mut s = SnapshotDef::parse(xml, SnapshotParse::default(), 1).expect("snapshot");
        s.disks = align_disks(&s.disks, d, SnapshotLocation::External).expect("aligned");
        assign_external_names(&mut s.disks, d, &s.name).expect("named");
        s
    }

    #[test]
    fn overlays_follow_the_diskspecs() {
        let d = dom();
        let s = snap(
            "<domainsnapshot><name>s1</name><disks><disk name='vdb' snapshot='no'/>\
             </disks></domainsnapshot>",
            &d,
        );
        let o = overlays(&s, &d).expect("overlays");
        assert_eq!(
            o,
            [Overlay {
                target: "vda".into(),
                file: "/img/0.s1".into(),
                format: "qcow2".into(),
                base: "/img/0.raw".into(),
                base_format: "raw".into(),
            }]
        );
        let s = snap(
            "<domainsnapshot><name>s1</name><disks><disk name='vda'>\
             <driver type='raw'/></disk></disks></domainsnapshot>",
            &d,
        );
        let e = overlays(&s, &d).expect_err("raw overlay");
        assert!(
            e.to_string()
                .contains("external snapshot format for disk vda is unsupported: raw"),
            "{e}"
        );
    }

    #[test]
    fn the_overlay_goes_on_top_of_the_chain() {
        let mut d = dom();
        let s = snap("<domainsnapshot><name>s1</name></domainsnapshot>", &d);
        for o in overlays(&s, &d).expect("overlays") {
            apply(&mut d, &o);
        }
        let s = snap("<domainsnapshot><name>s2</name></domainsnapshot>", &d);
        for o in overlays(&s, &d).expect("overlays") {
            apply(&mut d, &o);
        }
        let vda = &d.devices.disks[0];
        assert_eq!(
            vda.source.as_ref().map(|s| s.path.as_str()),
            Some("/img/0.s2")
        );
        let chain: Vec<_> = vda.backing.iter().map(|b| b.path.as_str()).collect();
        assert_eq!(chain, ["/img/0.s1", "/img/0.raw"]);
        assert_eq!(vda.backing[1].format.as_deref(), Some("raw"));
        assert_eq!(vda.backing[0].format.as_deref(), Some("qcow2"));
        let xml = d.format(&FormatOptions::default());
        assert!(xml.contains("<source file='/img/0.s1'/>"), "{xml}");

        // A definition naming another image keeps it.
        let mut other = dom();
        other.devices.disks[0].source.as_mut().expect("source").path = "/elsewhere.img".into();
        let o = overlays(&s, &d).expect("overlays");
        apply(&mut other, &o[0]);
        assert!(other.devices.disks[0].backing.is_empty());
    }

    #[test]
    fn files_are_checked_as_libvirt() {
        let dir = tempfile::tempdir().expect("temp dir");
        let o = Overlay {
            target: "vda".into(),
            file: dir.path().join("a.s1"),
            format: "qcow2".into(),
            base: dir.path().join("a.img"),
            base_format: "raw".into(),
        };
        check_files(std::slice::from_ref(&o), false).expect("missing is fine");
        let e = check_files(std::slice::from_ref(&o), true).expect_err("reuse of nothing");
        assert!(
            e.to_string().contains("missing existing file for disk vda"),
            "{e}"
        );
        std::fs::write(&o.file, b"").expect("empty file");
        check_files(std::slice::from_ref(&o), false).expect("an empty file is taken");
        std::fs::write(&o.file, b"data").expect("file");
        let e = check_files(std::slice::from_ref(&o), false).expect_err("exists");
        assert!(
            e.to_string()
                .contains("already exists and is not a block device"),
            "{e}"
        );
        check_files(std::slice::from_ref(&o), true).expect("reused");
    }

    #[test]
    fn node_names_fit_qemu() {
        let n = overlay_node("a-rather-long-target-name-indeed", 3);
        assert!(n.len() <= 31 && n.starts_with("snap3-"), "{n}");
    }
}
