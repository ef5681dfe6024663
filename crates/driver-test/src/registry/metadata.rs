//! Titles, descriptions and metadata elements of test guests, as libvirt's
//! test driver (`testDomainSetMetadata`, `testDomainGetMetadata`): the live
//! definition and/or the stored config.

use migrated_core::domain::DomainRef;
use migrated_core::flags::{affect, check_flags};
use migrated_core::xml::MetadataTarget;
use migrated_core::{Error, Result};

use super::Registry;

impl Registry {
    /// `DOMAIN_SET_METADATA`.
    pub fn set_metadata(
        &mut self,
        dom: &DomainRef,
        target: &MetadataTarget,
        value: Option<&str>,
        flags: u32,
    ) -> Result<()> {
        check_flags(
            "virDomainSetMetadata",
            u64::from(flags),
            u64::from(affect::LIVE | affect::CONFIG),
        )?;
        let guest = self.guest(&dom.uuid)?;
        let (live, config) = affect::resolve(flags, guest.is_active(), guest.persistent)?;
        // Both changes are computed before either is kept.
        let new_live = match (&guest.live, live) {
            (Some(l), true) => {
                let mut def = l.def.clone();
                def.set_metadata(target, value)?;
                Some(def)
            }
            _ => None,
        };
        if config {
            let mut def = guest.config.clone();
            def.set_metadata(target, value)?;
            self.store.save(&def)?;
            self.guest_mut(&dom.uuid)?.config = def;
        }
        if let (Some(def), Some(l)) = (new_live, self.guest_mut(&dom.uuid)?.live.as_mut()) {
            l.def = def;
        }
        Ok(())
    }

    /// `DOMAIN_GET_METADATA`.
    pub fn get_metadata(
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
        let guest = self.guest(&dom.uuid)?;
        let live = affect::resolve_one(OP, flags, guest.is_active(), guest.persistent)?;
        let def = match (&guest.live, live) {
            (Some(l), true) => &l.def,
            _ => &guest.config,
        };
        def.metadata_of(target).ok_or(Error::NoDomainMetadata)
    }
}
