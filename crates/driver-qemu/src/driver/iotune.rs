//! `virsh blkdeviotune` on QEMU guests, as libvirt's QEMU driver
//! (`qemuDomainSetBlockIoTune`, `qemuDomainGetBlockIoTune`): the live limits
//! are QEMU's (`block_set_io_throttle`, read back with `query-block`), the
//! config's are the disk's `<iotune>`. A guest starts with its disks'
//! `<iotune>` applied before its vCPUs run, so the limits also hold on a
//! migration's destination (the XML travels).

use migrated_core::domain::{DomainEventKind, DomainRef};
use migrated_core::event::blkdeviotune_tunable;
use migrated_core::flags::{affect, check_flags};
use migrated_core::tune::{iotune, TYPED_PARAM_STRING_OKAY};
use migrated_core::typed_params::TypedParams;
use migrated_core::xml::{BlockIoTune, DomainDef};
use migrated_core::{Error, Result};
use tracing::warn;

use super::{status_of, QemuDriver};
use crate::command::disk_node;
use crate::qmp::throttle::{BlockSetIoThrottle, QueryBlockThrottle, ThrottledBlock};
use crate::qmp::Qmp;

const GET: &str = "virDomainGetBlockIoTune";
const SET: &str = "virDomainSetBlockIoTune";

/// The disk `name` of a running guest, libvirt's `qemuDomainDiskByName`.
fn live_disk(def: &DomainDef, name: &str) -> Result<(usize, String)> {
    let i = def
        .devices
        .disk_index(name)
        .ok_or_else(|| Error::InvalidValue {
            reason: format!("disk '{name}' not found in domain"),
        })?;
    Ok((i, def.devices.disks[i].target.dev.clone()))
}

/// Gives each disk of `def` with an `<iotune>` its limits in the QEMU just
/// launched (libvirt's `qemuProcessSetupDiskThrottling`).
///
/// # Errors
/// QEMU's refusal.
pub(super) async fn apply_disk_throttling(qmp: &Qmp, def: &DomainDef) -> crate::error::Result<()> {
    let throttled: Vec<_> = def
        .devices
        .disks
        .iter()
        .filter(|d| !d.iotune.is_empty())
        .collect();
    if throttled.is_empty() {
        return Ok(());
    }
    let blocks = qmp.execute(&QueryBlockThrottle).await?;
    for disk in throttled {
        let id = device_of(&blocks, &disk.target.dev).ok_or_else(|| {
            crate::error::Error::InvalidConfig {
                reason: format!("QEMU has no block device for disk '{}'", disk.target.dev),
            }
        })?;
        qmp.execute(&BlockSetIoThrottle::new(&id, &disk.iotune))
            .await?;
    }
    Ok(())
}

/// The entry of the disk with target `target` in a `query-block` answer.
fn block_of<'a>(blocks: &'a [ThrottledBlock], target: &str) -> Option<&'a ThrottledBlock> {
    let node = disk_node(target);
    blocks.iter().find(|b| b.node_name() == Some(node.as_str()))
}

/// The id `block_set_io_throttle` takes for the disk with target `target`.
fn device_of(blocks: &[ThrottledBlock], target: &str) -> Option<String> {
    block_of(blocks, target)?.qdev().map(str::to_owned)
}

impl QemuDriver {
    /// `DOMAIN_GET_BLOCK_IO_TUNE`.
    pub(super) async fn block_io_tune_impl(
        &self,
        dom: &DomainRef,
        disk: Option<&str>,
        flags: u32,
    ) -> Result<TypedParams> {
        check_flags(
            "qemuDomainGetBlockIoTune",
            u64::from(flags),
            u64::from(affect::LIVE | affect::CONFIG | TYPED_PARAM_STRING_OKAY),
        )?;
        let Some(disk) = disk else {
            return Ok(iotune::to_params(&BlockIoTune::default()));
        };
        // The config's limits, or the target of the running disk to ask QEMU about.
        let from = self.read(|r| {
            let d = r.get(dom)?;
            let live = affect::resolve_one(
                GET,
                flags & (affect::LIVE | affect::CONFIG),
                d.live.is_some(),
                d.persistent,
            )?;
            match (&d.live, live) {
                (Some(l), true) => Ok(Err(live_disk(&l.def, disk)?.1)),
                _ => {
                    let found = d
                        .config
                        .devices
                        .disk(disk)
                        .ok_or_else(|| Error::InvalidValue {
                            reason: format!("disk '{disk}' was not found in the domain config"),
                        })?;
                    Ok(Ok(found.iotune.clone()))
                }
            }
        })?;
        let t = match from {
            Ok(config) => config,
            Err(target) => self.query_throttle(dom, &target).await?,
        };
        Ok(iotune::to_params(&t))
    }

    /// QEMU's `query-block` of `dom`'s disks.
    async fn query_blocks(&self, dom: &DomainRef, op: &'static str) -> Result<Vec<ThrottledBlock>> {
        self.qmp(dom)?
            .execute(&QueryBlockThrottle)
            .await
            .map_err(|e| e.into_core(op))
    }

    /// The throttling QEMU applies to the disk with target `target`.
    async fn query_throttle(&self, dom: &DomainRef, target: &str) -> Result<BlockIoTune> {
        let blocks = self.query_blocks(dom, GET).await?;
        block_of(&blocks, target)
            .map(ThrottledBlock::iotune)
            .ok_or_else(|| {
                Error::internal(format!("cannot find throttling info for device '{target}'"))
            })
    }

    /// `DOMAIN_SET_BLOCK_IO_TUNE`: the live limits through QEMU (kept in
    /// the live XML and its status file), the config's stored.
    pub(super) async fn set_block_io_tune_impl(
        &self,
        dom: &DomainRef,
        disk: &str,
        params: &TypedParams,
        flags: u32,
    ) -> Result<()> {
        check_flags(
            "qemuDomainSetBlockIoTune",
            u64::from(flags),
            u64::from(affect::LIVE | affect::CONFIG),
        )?;
        params.validate(&iotune::SPECS)?;
        let job = self.job(dom)?;
        let _job = job.acquire("remoteDispatchDomainSetBlockIoTune").await?;
        let (live, config) = self.read(|r| {
            let d = r.get(dom)?;
            affect::resolve(flags, d.live.is_some(), d.persistent)
        })?;
        // Everything is checked before anything changes.
        let live_change = if live {
            self.read(|r| {
                let l = r
                    .get(dom)?
                    .live
                    .as_ref()
                    .ok_or_else(|| Error::invalid("domain is not running"))?;
                let (i, target) = live_disk(&l.def, disk)?;
                let t = iotune::apply(&l.def.devices.disks[i].iotune, params)?;
                iotune::check_max_as_qemu(&t)?;
                Ok(Some((i, target, t)))
            })?
        } else {
            None
        };
        let config_change = if config {
            self.read(|r| {
                let def = &r.get(dom)?.config;
                let i = def
                    .devices
                    .disk_index(disk)
                    .ok_or_else(|| Error::InvalidValue {
                        reason: format!("missing persistent configuration for disk '{disk}'"),
                    })?;
                let t = iotune::apply(&def.devices.disks[i].iotune, params)?;
                iotune::check_max_as_qemu(&t)?;
                Ok(Some((i, t)))
            })?
        } else {
            None
        };
        if let Some((i, target, t)) = live_change {
            let blocks = self.query_blocks(dom, SET).await?;
            let id = device_of(&blocks, &target).ok_or_else(|| {
                Error::internal(format!("cannot find throttling info for device '{target}'"))
            })?;
            self.qmp(dom)?
                .execute(&BlockSetIoThrottle::new(&id, &t))
                .await
                .map_err(|e| e.into_core(SET))?;
            let mut reg = self.shared.lock()?;
            let d = reg.get_mut(dom)?;
            let persistent = d.persistent;
            if let Some(l) = d.live.as_mut() {
                if let Some(slot) = l.def.devices.disks.get_mut(i) {
                    slot.iotune = t;
                }
                if let Err(e) = status_of(l, persistent).write(&self.shared.config.runtime_dir) {
                    warn!(error = %e.chain(), "cannot update status file");
                }
            }
            // As qemuDomainSetBlockIoTune: a live change sends TUNABLE.
            let dom = d.dom_ref();
            drop(reg);
            self.shared.emit_event(
                dom,
                DomainEventKind::Tunable {
                    params: blkdeviotune_tunable(disk, params),
                },
            );
        }
        if let Some((i, t)) = config_change {
            let mut reg = self.shared.lock()?;
            let d = reg.get_mut(dom)?;
            let mut def = d.config.clone();
            if let Some(slot) = def.devices.disks.get_mut(i) {
                slot.iotune = t;
            }
            self.shared.store.save(&def).map_err(|e| e.into_core(SET))?;
            d.config = def;
        }
        Ok(())
    }
}
