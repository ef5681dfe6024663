//! `virsh desc` / `virsh metadata`: the title, description and metadata
//! elements of the live definition and/or the config, as libvirt's
//! `virDomainObjSetMetadata` / `virDomainObjGetMetadata`. The live change is
//! written to the status file, so it survives a daemon restart, and goes
//! with the guest's XML when it migrates.

use migrated_core::domain::DomainRef;
use migrated_core::xml::{metadata_change, metadata_read, MetadataTarget};
use migrated_core::Result;
use tracing::warn;

use super::{status_of, QemuDriver};

impl QemuDriver {
    pub(super) fn set_metadata_impl(
        &self,
        dom: &DomainRef,
        target: &MetadataTarget,
        value: Option<&str>,
        flags: u32,
    ) -> Result<()> {
        let mut reg = self.shared.lock()?;
        let d = reg.get_mut(dom)?;
        let (live, config) = metadata_change(
            d.live.as_ref().map(|l| &l.def),
            &d.config,
            d.persistent,
            target,
            value,
            flags,
        )?;
        if let Some(def) = config {
            self.shared
                .store
                .save(&def)
                .map_err(|e| e.into_core("virDomainSetMetadata"))?;
            d.config = def;
        }
        let persistent = d.persistent;
        if let (Some(def), Some(l)) = (live, d.live.as_mut()) {
            l.def = def;
            if let Err(e) = status_of(l, persistent).write(&self.shared.config.runtime_dir) {
                warn!(error = %e.chain(), "cannot update status file");
            }
        }
        let dom = d.dom_ref();
        drop(reg);
        self.shared.emit_event(dom, target.change_event());
        Ok(())
    }

    pub(super) fn get_metadata_impl(
        &self,
        dom: &DomainRef,
        target: &MetadataTarget,
        flags: u32,
    ) -> Result<String> {
        self.read(|r| {
            let d = r.get(dom)?;
            let live = d.live.as_ref().map(|l| &l.def);
            metadata_read(live, &d.config, d.persistent, target, flags)
        })
    }
}
