//! Titles, descriptions and metadata elements of test guests, as libvirt's
//! test driver (`testDomainSetMetadata`, `testDomainGetMetadata`): the live
//! definition and/or the stored config.

use migrated_core::domain::{DomainEvent, DomainRef};
use migrated_core::xml::{metadata_change, metadata_read, MetadataTarget};
use migrated_core::Result;

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
        let guest = self.guest(&dom.uuid)?;
        let (live, config) = metadata_change(
            guest.live.as_ref().map(|l| &l.def),
            &guest.config,
            guest.persistent,
            target,
            value,
            flags,
        )?;
        if let Some(def) = config {
            self.store.save(&def)?;
            self.guest_mut(&dom.uuid)?.config = def;
        }
        if let (Some(def), Some(l)) = (live, self.guest_mut(&dom.uuid)?.live.as_mut()) {
            l.def = def;
        }
        // As testDomainSetMetadata: every successful change sends METADATA_CHANGE.
        let dom = self.guest(&dom.uuid)?.dom_ref();
        // No subscriber is not an error.
        let _ = self.events.send(DomainEvent {
            dom,
            kind: target.change_event(),
        });
        Ok(())
    }

    /// `DOMAIN_GET_METADATA`.
    pub fn get_metadata(
        &self,
        dom: &DomainRef,
        target: &MetadataTarget,
        flags: u32,
    ) -> Result<String> {
        let guest = self.guest(&dom.uuid)?;
        let live = guest.live.as_ref().map(|l| &l.def);
        metadata_read(live, &guest.config, guest.persistent, target, flags)
    }
}
