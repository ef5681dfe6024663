//! Device hot-plug on QEMU guests (`virsh attach-device`, `detach-device`,
//! `update-device`, `attach-disk`, `attach-interface`, …), as libvirt's
//! `qemuDomainAttachDeviceFlags` / `DetachDeviceFlags` /
//! `UpdateDeviceFlags` (src/qemu/qemu_driver.c, qemu_hotplug.c).
//!
//! The persistent config is edited with core's rules
//! (`migrated_core::hotplug`) and saved durably once the live part, if
//! any, succeeded. Live: a disk is `blockdev-add` + `device_add`
//! (virtio only: IDE/SATA cannot be hot-plugged), a NIC `netdev_add` +
//! `device_add`; the PCI slot QEMU chose is recorded as the device's
//! `<address>`, so a migration destination (whose command line honours
//! it) builds the same device set. A detach is `device_del`, then a wait
//! of at most [`UNPLUG_TIMEOUT`] for QEMU's `DEVICE_DELETED`: the back-end
//! and the XML entry go only once the guest released the device. When the
//! guest does not answer in time the call succeeds anyway, as libvirt's
//! does, and the removal completes whenever `DEVICE_DELETED` comes (the
//! run's event task sees it): until then the device stays in the live XML,
//! and travels with a migration.

use std::sync::Arc;
use std::time::Duration;

use migrated_core::domain::{DomainEventKind, DomainRef};
use migrated_core::flags::{affect, check_flags};
use migrated_core::hotplug::{self, Change, Target};
use migrated_core::xml::{DeviceDef, DomainDef};
use migrated_core::{Error, Result};
use serde_json::Value;
use tracing::{info, warn};
use uuid::Uuid;

use super::registry::Runtime;
use super::{status_of, QemuDriver, Shared};
use crate::command::disk_node;
use crate::qmp::devices::{
    BlockdevAdd, BlockdevDel, DeviceAdd, DeviceDel, NetdevAdd, NetdevDel, SetLink,
};
use crate::qmp::message::names;
use crate::spec::{disk, nic, pci, Chipset};

/// How long a live detach waits for the guest to release the device
/// (libvirt's `QEMU_UNPLUG_TIMEOUT`).
pub(crate) const UNPLUG_TIMEOUT: Duration = Duration::from_secs(5);

/// The running guest a live change applies to.
struct LiveTarget {
    runtime: Arc<Runtime>,
    def: DomainDef,
    id: i32,
}

impl QemuDriver {
    /// DOMAIN_ATTACH_DEVICE(_FLAGS), DOMAIN_DETACH_DEVICE(_FLAGS),
    /// DOMAIN_UPDATE_DEVICE_FLAGS.
    pub(super) async fn change_device_impl(
        &self,
        dom: &DomainRef,
        change: Change,
        xml: &str,
        flags: u32,
    ) -> Result<()> {
        let op = change.api();
        check_flags(op, u64::from(flags), u64::from(change.allowed_flags()))?;
        let mut dev = change.parse(xml)?;
        let job = self.job(dom)?;
        let _job = job.acquire(change.dispatcher()).await?;
        let (config, live) = self.read(|r| {
            let d = r.get(dom)?;
            let (live, config) = affect::resolve(flags, d.live.is_some(), d.persistent)?;
            let config = if config {
                let mut def = d.config.clone();
                change.apply(Target::Config, &mut def, &dev)?;
                if change != Change::Detach {
                    realisable(&dev).map_err(|e| e.into_core(op))?;
                }
                if change == Change::Attach {
                    // The config's copy gets its slot too (libvirt assigns
                    // addresses on every config change); a live attach
                    // replaces it with the running guest's below.
                    pci::assign(&mut def).map_err(|e| e.into_core(op))?;
                }
                Some(def)
            } else {
                None
            };
            let live = d.live.as_ref().filter(|_| live).map(|l| LiveTarget {
                runtime: Arc::clone(&l.runtime),
                def: l.def.clone(),
                id: l.id,
            });
            Ok((config, live))
        })?;
        if let Some(target) = live {
            match change {
                Change::Attach => self.attach_live(dom, &target, &mut dev).await?,
                Change::Detach => self.detach_live(dom, &target, &dev).await?,
                Change::Update => {
                    update_live(&target, &dev).await?;
                    self.shared.edit_live(&dom.uuid, target.id, |def| {
                        Change::Update.apply(Target::Live, def, &dev).map(|_| ())
                    })?;
                }
            }
        }
        if let Some(mut def) = config {
            if change == Change::Attach {
                // The slot the running guest gave the device, as libvirt
                // keeps the live address in the config of a live+config attach.
                copy_address(&mut def, &dev);
            }
            let mut reg = self.shared.lock()?;
            self.shared.store.save(&def).map_err(|e| e.into_core(op))?;
            reg.get_mut(dom)?.config = def;
        }
        Ok(())
    }

    async fn attach_live(
        &self,
        dom: &DomainRef,
        target: &LiveTarget,
        dev: &mut DeviceDef,
    ) -> Result<()> {
        const OP: &str = "virDomainAttachDeviceFlags";
        let qmp = &target.runtime.qmp;
        if let DeviceDef::Interface(i) = dev {
            // A NIC's alias is its QEMU id: a user's (`ua-…`) is not used
            // as one (see `spec::set_aliases`), so it gets ours.
            i.info.alias = None;
        }
        hotplug::assign_alias(&target.def, dev);
        let alias = dev
            .alias()
            .map(str::to_owned)
            .ok_or_else(|| Error::internal("hot-plugged device without an alias"))?;
        let id = qemu_id(dev).unwrap_or_else(|| alias.clone());
        let chipset = Chipset::of(target.def.os.machine.as_deref().unwrap_or_default());
        match &mut *dev {
            DeviceDef::Disk(d) => {
                hotplug::check_new_disk_target(&target.def, d)?;
                let bus = disk(d, chipset).map_err(|e| e.into_core(OP))?.bus;
                if bus != "virtio" {
                    return Err(Error::OperationUnsupported {
                        reason: format!("disk bus '{bus}' cannot be hotplugged."),
                    });
                }
                // The slot asked for, or the first free one: recorded in the
                // live XML, so a destination puts it where the guest saw it.
                pci::assign_hotplug(&target.def, &mut d.info, true).map_err(|e| e.into_core(OP))?;
                let spec = disk(d, chipset).map_err(|e| e.into_core(OP))?;
                let device = spec.device(0).map_err(|e| e.into_core(OP))?;
                qmp.execute(&BlockdevAdd(spec.blockdev()))
                    .await
                    .map_err(|e| e.into_core(OP))?;
                if let Err(e) = qmp.execute(&DeviceAdd(device)).await {
                    let node_name = disk_node(&spec.target);
                    if let Err(undo) = qmp.execute(&BlockdevDel { node_name }).await {
                        warn!(error = %undo.chain(), "cannot remove the block node of a failed attach");
                    }
                    return Err(e.into_core(OP));
                }
            }
            DeviceDef::Interface(i) => {
                let model = nic(i, chipset).map_err(|e| e.into_core(OP))?.model;
                let express = matches!(model.as_str(), "virtio-net-pci" | "e1000e");
                pci::assign_hotplug(&target.def, &mut i.info, express)
                    .map_err(|e| e.into_core(OP))?;
                let spec = nic(i, chipset).map_err(|e| e.into_core(OP))?;
                let netdev = netdev_id(&id);
                qmp.execute(&NetdevAdd(spec.netdev(&netdev)))
                    .await
                    .map_err(|e| e.into_core(OP))?;
                if let Err(e) = qmp.execute(&DeviceAdd(spec.device(&id, &netdev))).await {
                    if let Err(undo) = qmp.execute(&NetdevDel { id: netdev }).await {
                        warn!(error = %undo.chain(), "cannot remove the netdev of a failed attach");
                    }
                    return Err(e.into_core(OP));
                }
            }
            DeviceDef::Other(_) => return Err(hotplug::unsupported(Target::Live, "attach", dev)),
        }
        let added = dev.clone();
        self.shared.edit_live(&dom.uuid, target.id, |def| {
            Change::Attach.apply(Target::Live, def, &added).map(|_| ())
        })?;
        info!(name = %dom.name, %alias, "device attached");
        self.shared
            .emit_kind(&dom.uuid, target.id, DomainEventKind::DeviceAdded { alias });
        Ok(())
    }

    async fn detach_live(
        &self,
        dom: &DomainRef,
        target: &LiveTarget,
        dev: &DeviceDef,
    ) -> Result<()> {
        const OP: &str = "virDomainDetachDeviceFlags";
        let found = match dev {
            DeviceDef::Disk(d) => {
                let found = running_disk(&target.def, &d.target.dev)?;
                if disk(found, Chipset::I440fx).map_or(true, |s| s.bus != "virtio") {
                    return Err(Error::OperationUnsupported {
                        reason: "This type of disk cannot be hot unplugged".into(),
                    });
                }
                DeviceDef::Disk(found.clone())
            }
            DeviceDef::Interface(i) => {
                let idx = hotplug::interface_index(&target.def, i)?;
                DeviceDef::Interface(target.def.devices.interfaces[idx].clone())
            }
            DeviceDef::Other(_) => return Err(hotplug::unsupported(Target::Live, "detach", dev)),
        };
        let id = qemu_id(&found).ok_or_else(|| Error::internal("live device without an id"))?;
        // Subscribed before asking, so the answer cannot slip past.
        let mut events = target.runtime.qmp.events();
        target
            .runtime
            .qmp
            .execute(&DeviceDel { id: id.clone() })
            .await
            .map_err(|e| e.into_core(OP))?;
        let deleted = tokio::time::timeout(UNPLUG_TIMEOUT, async {
            loop {
                match events.recv().await {
                    Ok(event) if is_deleted(&event.event, &event.data, &id) => return true,
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return false,
                }
            }
        })
        .await
        .unwrap_or(false);
        if deleted {
            finish_removal(&self.shared, &target.runtime, dom.uuid, target.id, &id).await;
        } else {
            // libvirt's qemuDomainWaitForDeviceRemoval: success all the same.
            warn!(name = %dom.name, %id, "the guest did not release the device in time; it goes when the guest does");
        }
        Ok(())
    }
}

impl Shared {
    /// Applies `f` to the live definition of run `id` of `uuid` and
    /// rewrites its status file (the live XML a daemon restart reads).
    pub(super) fn edit_live(
        &self,
        uuid: &Uuid,
        id: i32,
        f: impl FnOnce(&mut DomainDef) -> Result<()>,
    ) -> Result<()> {
        let mut reg = self.lock()?;
        let domain = reg
            .domains
            .get_mut(uuid)
            .ok_or_else(|| Error::invalid("domain is not running"))?;
        let persistent = domain.persistent;
        let live = domain
            .live
            .as_mut()
            .filter(|l| l.id == id)
            .ok_or_else(|| Error::invalid("domain is not running"))?;
        f(&mut live.def)?;
        if let Err(e) = status_of(live, persistent).write(&self.config.runtime_dir) {
            warn!(error = %e.chain(), "cannot update status file");
        }
        Ok(())
    }
}

/// The QEMU id of a disk or NIC of a live definition: a disk's target dev,
/// a NIC's alias (`nicN`), as the command line and hot-plug name them.
fn qemu_id(dev: &DeviceDef) -> Option<String> {
    match dev {
        DeviceDef::Disk(d) => Some(d.target.dev.clone()),
        DeviceDef::Interface(i) => i.info.alias.clone(),
        DeviceDef::Other(_) => None,
    }
}

/// Whether a QMP event is `DEVICE_DELETED` of the device `id`.
fn is_deleted(event: &str, data: &Value, id: &str) -> bool {
    event == names::DEVICE_DELETED && data.get("device").and_then(Value::as_str) == Some(id)
}

/// The device id in a `DEVICE_DELETED` event, if it names one.
pub(super) fn deleted_device(event: &str, data: &Value) -> Option<String> {
    (event == names::DEVICE_DELETED)
        .then(|| {
            data.get("device")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .flatten()
}

/// Completes the removal of the device with QEMU id `device` the guest
/// released: drops its back-end, its live XML entry, and emits
/// device-removed (naming the device's alias). Does nothing when the live
/// XML no longer has it (the detach call and the event task may both get
/// here; the first one does the work).
pub(super) async fn finish_removal(
    shared: &Shared,
    runtime: &Runtime,
    uuid: Uuid,
    id: i32,
    device: &str,
) {
    let mut removed = None;
    let edited = shared.edit_live(&uuid, id, |def| {
        let d = &mut def.devices;
        if let Some(i) = d.disks.iter().position(|x| x.target.dev == device) {
            removed = Some(DeviceDef::Disk(d.disks.remove(i)));
        } else if let Some(i) = d
            .interfaces
            .iter()
            .position(|x| x.info.alias.as_deref() == Some(device))
        {
            removed = Some(DeviceDef::Interface(d.interfaces.remove(i)));
        }
        Ok(())
    });
    let Some(removed) = removed.filter(|_| edited.is_ok()) else {
        return;
    };
    let backend = match &removed {
        DeviceDef::Disk(d) => {
            let node_name = disk_node(&d.target.dev);
            runtime.qmp.execute(&BlockdevDel { node_name }).await
        }
        DeviceDef::Interface(_) => {
            let id = netdev_id(device);
            runtime.qmp.execute(&NetdevDel { id }).await
        }
        DeviceDef::Other(_) => Ok(Default::default()),
    };
    if let Err(e) = backend {
        warn!(error = %e.chain(), %device, "cannot remove the back-end of a detached device");
    }
    let alias = removed.alias().unwrap_or(device).to_owned();
    info!(%uuid, %alias, "device detached");
    shared.emit_kind(&uuid, id, DomainEventKind::DeviceRemoved { alias });
}

/// A live update: a NIC's link state is all QEMU can change in place
/// (`set_link`), as libvirt's `qemuDomainChangeNet` for a running guest;
/// a disk may be "updated" only to itself (a new source needs removable
/// media, which this driver does not run).
async fn update_live(target: &LiveTarget, dev: &DeviceDef) -> Result<()> {
    const OP: &str = "virDomainUpdateDeviceFlags";
    match dev {
        DeviceDef::Disk(d) => {
            let old = running_disk(&target.def, &d.target.dev)?;
            if old.source.as_ref().map(|s| &s.path) != d.source.as_ref().map(|s| &s.path) {
                return Err(Error::OperationUnsupported {
                    reason: "disk source can be changed only in removable media".into(),
                });
            }
            Ok(())
        }
        DeviceDef::Interface(new) => {
            let i = hotplug::interface_index(&target.def, new)?;
            let old = &target.def.devices.interfaces[i];
            let mut same = new.clone();
            same.link_state.clone_from(&old.link_state);
            same.info = old.info.clone();
            if same != *old {
                return Err(Error::OperationUnsupported {
                    reason: "cannot modify network device configuration".into(),
                });
            }
            if new.link_state != old.link_state {
                let alias = old.info.alias.clone().unwrap_or_default();
                target
                    .runtime
                    .qmp
                    .execute(&SetLink {
                        name: alias,
                        up: new.link_state.as_deref() != Some("down"),
                    })
                    .await
                    .map_err(|e| e.into_core(OP))?;
            }
            Ok(())
        }
        DeviceDef::Other(_) => Err(hotplug::unsupported(Target::Live, "update", dev)),
    }
}

/// The disk `name` (target or source) of the running guest's `def`.
///
/// # Errors
/// libvirt's `VIR_ERR_DEVICE_MISSING` "disk … not found".
fn running_disk<'a>(def: &'a DomainDef, name: &str) -> Result<&'a migrated_core::xml::Disk> {
    hotplug::disk_index(def, name)
        .map(|i| &def.devices.disks[i])
        .ok_or_else(|| Error::DeviceMissing {
            reason: format!("disk {name} not found"),
        })
}

/// Refuses, before anything changes, a device this driver could not run.
fn realisable(dev: &DeviceDef) -> crate::error::Result<()> {
    match dev {
        DeviceDef::Disk(d) => disk(d, Chipset::I440fx).map(|_| ()),
        DeviceDef::Interface(i) => nic(i, Chipset::I440fx).map(|_| ()),
        DeviceDef::Other(_) => Ok(()),
    }
}

/// The netdev id of the NIC `alias` (`nic3` → `net3`, as the command line
/// names them).
fn netdev_id(alias: &str) -> String {
    match alias.strip_prefix("nic") {
        Some(n) => format!("net{n}"),
        None => format!("host{alias}"),
    }
}

/// Gives the config's copy of the attached device `dev` its live address.
fn copy_address(def: &mut DomainDef, dev: &DeviceDef) {
    match dev {
        DeviceDef::Disk(live) => {
            if let Some(d) = def
                .devices
                .disks
                .iter_mut()
                .find(|d| d.target.dev == live.target.dev)
            {
                d.info.address.clone_from(&live.info.address);
            }
        }
        DeviceDef::Interface(live) => {
            if let Some(i) = def
                .devices
                .interfaces
                .iter_mut()
                .find(|i| i.mac.is_some() && i.mac == live.mac)
            {
                i.info.address.clone_from(&live.info.address);
            }
        }
        DeviceDef::Other(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hot_plugged_disk_takes_the_first_free_slot_and_the_command_line_uses_it() {
        let live = DomainDef::parse(
            "<domain type='qemu'><name>g</name><memory>65536</memory>\
             <os><type machine='pc-i440fx-7.2'>hvm</type></os><devices>\
             <disk type='file'><source file='/a.img'/><target dev='vda' bus='virtio'/>\
             <address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x0'/></disk>\
             <interface type='user'>\
             <address type='pci' domain='0x0000' bus='0x00' slot='0x04' function='0x0'/></interface>\
             </devices></domain>",
        )
        .expect("domain");
        let mut dev = DeviceDef::parse(
            "<disk type='file'><source file='/b.img'/><target dev='vdb' bus='virtio'/></disk>",
        )
        .expect("disk");
        let DeviceDef::Disk(d) = &mut dev else {
            panic!("not a disk")
        };
        pci::assign_hotplug(&live, &mut d.info, true).expect("a free slot");
        let spec = disk(d, Chipset::I440fx).expect("runs");
        let device = spec.device(0).expect("device");
        assert_eq!(device["addr"], "0x3", "the gap left by an unplug");
        assert_eq!(device["bus"], "pci.0");
        assert_eq!(qemu_id(&dev).as_deref(), Some("vdb"));
        let mut config = DomainDef::parse(
            "<domain type='qemu'><name>g</name><memory>65536</memory><os><type>hvm</type></os>\
             <devices><disk type='file'><source file='/b.img'/><target dev='vdb'/></disk>\
             </devices></domain>",
        )
        .expect("domain");
        copy_address(&mut config, &dev);
        let DeviceDef::Disk(d) = &dev else {
            panic!("not a disk")
        };
        assert_eq!(config.devices.disks[0].info.address, d.info.address);
        // A slot the guest uses is refused in libvirt's words.
        let mut taken = d.info.clone();
        taken.address = live.devices.interfaces[0].info.address.clone();
        let err = pci::assign_hotplug(&live, &mut taken, true).expect_err("double use");
        assert_eq!(
            err.to_string(),
            "Attempted double use of PCI Address 0000:00:04.0"
        );
    }

    #[test]
    fn netdev_ids_follow_the_nic_alias() {
        assert_eq!(netdev_id("nic2"), "net2");
        assert_eq!(netdev_id("ua-x"), "hostua-x");
    }

    #[test]
    fn only_the_named_device_deleted_event_counts() {
        let data = serde_json::json!({"device": "vdb", "path": "/machine/peripheral/vdb"});
        assert!(is_deleted("DEVICE_DELETED", &data, "vdb"));
        assert!(!is_deleted("DEVICE_DELETED", &data, "vdc"));
        let child = serde_json::json!({"path": "/machine/peripheral/vdb/virtio-backend"});
        assert_eq!(deleted_device("DEVICE_DELETED", &child), None);
        assert_eq!(deleted_device("STOP", &data), None);
        assert_eq!(
            deleted_device("DEVICE_DELETED", &data).as_deref(),
            Some("vdb")
        );
    }
}
