//! Device hot-plug on test guests (`virsh attach-device`, `detach-device`,
//! `update-device`): the persistent config and/or the live definition are
//! edited with libvirt's config rules (`migrated_core::hotplug`); a live
//! change has no hypervisor to ask, so it takes effect at once and emits
//! the device-added / device-removed events a real guest would.

use migrated_core::domain::{DomainEvent, DomainEventKind, DomainRef};
use migrated_core::flags::{affect, check_flags};
use migrated_core::hotplug::{self, Change, Target};
use migrated_core::xml::DeviceDef;
use migrated_core::Result;

use super::Registry;

impl Registry {
    /// DOMAIN_ATTACH_DEVICE_FLAGS, DOMAIN_DETACH_DEVICE_FLAGS and
    /// DOMAIN_UPDATE_DEVICE_FLAGS.
    pub fn change_device(
        &mut self,
        dom: &DomainRef,
        change: Change,
        xml: &str,
        flags: u32,
    ) -> Result<()> {
        check_flags(
            change.api(),
            u64::from(flags),
            u64::from(change.allowed_flags()),
        )?;
        let guest = self.guest(&dom.uuid)?;
        let (live, config) = affect::resolve(flags, guest.live.is_some(), guest.persistent)?;
        let mut dev = change.parse(xml)?;
        let mut new_config = None;
        if config {
            let mut def = guest.config.clone();
            change.apply(Target::Config, &mut def, &dev)?;
            new_config = Some(def);
        }
        let mut event = None;
        if let (true, Some(l)) = (live, guest.live.as_ref()) {
            let mut def = l.def.clone();
            if change == Change::Attach {
                hotplug::assign_alias(&def, &mut dev);
            }
            let removed = change.apply(Target::Live, &mut def, &dev)?;
            event = match (change, &removed) {
                (Change::Attach, _) => Some(DomainEventKind::DeviceAdded {
                    alias: event_alias(&dev),
                }),
                (Change::Detach, Some(gone)) => Some(DomainEventKind::DeviceRemoved {
                    alias: event_alias(gone),
                }),
                _ => None,
            };
            if let Some(l) = self.guest_mut(&dom.uuid)?.live.as_mut() {
                l.def = def;
            }
        }
        if let Some(def) = new_config {
            self.store.save(&def)?;
            self.guest_mut(&dom.uuid)?.config = def;
        }
        if let Some(kind) = event {
            let dom = self.guest(&dom.uuid)?.dom_ref();
            // No subscriber is not an error.
            let _ = self.events.send(DomainEvent { dom, kind });
        }
        Ok(())
    }
}

/// The alias an event names `dev` by: its own, else (a device the guest
/// was defined with carries none here) its target or MAC.
fn event_alias(dev: &DeviceDef) -> String {
    let fallback = match dev {
        DeviceDef::Disk(d) => Some(d.target.dev.as_str()),
        DeviceDef::Interface(i) => i.mac.as_deref(),
        DeviceDef::Other(name) => Some(name.as_str()),
    };
    dev.alias().or(fallback).unwrap_or_default().to_owned()
}
