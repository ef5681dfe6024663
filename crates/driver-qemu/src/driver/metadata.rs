//! `virsh desc` / `virsh metadata`: the title, description and metadata
//! elements of the live definition and/or the config, as libvirt's
//! `virDomainObjSetMetadata` / `virDomainObjGetMetadata`. The live change is
//! written to the status file, so it survives a daemon restart, and goes
//! with the guest's XML when it migrates.

use migrated_core::domain::DomainRef;
use migrated_core::flags::{affect, check_flags};
use migrated_core::xml::MetadataTarget;
use migrated_core::{Error, Result};
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
        const OP: &str = "virDomainSetMetadata";
        check_flags(
            OP,
            u64::from(flags),
            u64::from(affect::LIVE | affect::CONFIG),
        )?;
        let mut reg = self.shared.lock()?;
        let d = reg.get_mut(dom)?;
        let (live, config) = affect::resolve(flags, d.live.is_some(), d.persistent)?;
        // Both changes are computed before either is kept: a refused value
        // changes nothing.
        let new_live = match (&d.live, live) {
            (Some(l), true) => {
                let mut def = l.def.clone();
                def.set_metadata(target, value)?;
                Some(def)
            }
            _ => None,
        };
        if config {
            let mut def = d.config.clone();
            def.set_metadata(target, value)?;
            self.shared.store.save(&def).map_err(|e| e.into_core(OP))?;
            d.config = def;
        }
        let persistent = d.persistent;
        if let (Some(def), Some(l)) = (new_live, d.live.as_mut()) {
            l.def = def;
            if let Err(e) = status_of(l, persistent).write(&self.shared.config.runtime_dir) {
                warn!(error = %e.chain(), "cannot update status file");
            }
        }
        Ok(())
    }

    pub(super) fn get_metadata_impl(
        &self,
        dom: &DomainRef,
        target: &MetadataTarget,
        flags: u32,
    ) -> Result<String> {
        const OP: &str = "virDomainGetMetadata";
        check_flags(
            OP,
            u64::from(flags),
            u64::from(affect::LIVE | affect::CONFIG),
        )?;
        self.read(|r| {
            let d = r.get(dom)?;
            let live = affect::resolve_one(OP, flags, d.live.is_some(), d.persistent)?;
            let def = match (&d.live, live) {
                (Some(l), true) => &l.def,
                _ => &d.config,
            };
            def.metadata_of(target).ok_or(Error::NoDomainMetadata)
        })
    }
}
