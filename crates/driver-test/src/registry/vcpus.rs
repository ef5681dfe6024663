//! vCPU counts and names of test guests, as libvirt's test driver
//! (`testDomainSetVcpusFlags`, `testDomainRename`).

use migrated_core::domain::{event_detail, DomainRef, LifecycleEvent, RenameCheck};
use migrated_core::flags::{affect, check_flags, vcpu};
use migrated_core::{Error, Result};

use super::Registry;

/// What libvirt's test driver answers to `virConnectGetMaxVcpus`.
const MAX_VCPUS: u32 = 32;

/// libvirt's test driver refusal of a count over `max`.
fn over_maximum(count: u32, max: u32, what: &str) -> Error {
    Error::InvalidValue {
        reason: format!("requested cpu amount exceeds {what} ({count} > {max})"),
    }
}

impl Registry {
    /// `DOMAIN_SET_VCPUS(_FLAGS)`: the vCPUs online of the live definition
    /// and/or the config, or (`VCPU_MAXIMUM`) the config's maximum.
    pub fn set_vcpus(&mut self, dom: &DomainRef, count: u32, flags: u32) -> Result<()> {
        check_flags(
            "virDomainSetVcpusFlags",
            u64::from(flags),
            u64::from(affect::LIVE | affect::CONFIG | vcpu::MAXIMUM),
        )?;
        if count > MAX_VCPUS {
            return Err(over_maximum(count, MAX_VCPUS, "maximum supported amount"));
        }
        let maximum = flags & vcpu::MAXIMUM != 0;
        let guest = self.guest(&dom.uuid)?;
        let (live, config) = affect::resolve(flags, guest.is_active(), guest.persistent)?;
        if maximum && live {
            // A running guest's vCPU slots are fixed at start (the QEMU
            // driver's refusal: the test driver would change the live
            // count instead, which is not what was asked).
            return Err(Error::OperationUnsupported {
                reason: "maximum vcpu count of a live domain can't be modified".into(),
            });
        }
        let live_def = match (&guest.live, live) {
            (Some(l), true) => {
                if count > l.def.vcpus {
                    return Err(over_maximum(count, l.def.vcpus, "maximum"));
                }
                let mut def = l.def.clone();
                def.set_current_vcpus(count);
                Some(def)
            }
            _ => None,
        };
        let config_def = if config {
            let mut def = guest.config.clone();
            if maximum {
                def.set_max_vcpus(count);
            } else if count > def.vcpus {
                return Err(over_maximum(count, def.vcpus, "maximum"));
            } else {
                def.set_current_vcpus(count);
            }
            super::check_def(&def)?;
            self.store.save(&def)?;
            Some(def)
        } else {
            None
        };
        let guest = self.guest_mut(&dom.uuid)?;
        if let Some(def) = config_def {
            guest.config = def;
        }
        if let (Some(def), Some(l)) = (live_def, guest.live.as_mut()) {
            l.def = def;
        }
        Ok(())
    }

    /// `DOMAIN_RENAME`: a shut-off persistent guest takes `new_name`. Its
    /// config file (named by UUID) is rewritten atomically, so a crash
    /// leaves the old name or the new one.
    pub fn rename(&mut self, dom: &DomainRef, new_name: &str, flags: u32) -> Result<DomainRef> {
        check_flags("virDomainRename", u64::from(flags), 0)?;
        let guest = self.get(dom)?;
        RenameCheck {
            name: &guest.config.name,
            active: guest.is_active(),
            persistent: guest.persistent,
            managed_save: guest.managed_save.is_some(),
            name_taken: self.guests.values().any(|g| g.config.name == new_name),
        }
        .check(new_name)?;
        let old_ref = guest.dom_ref();
        let mut def = guest.config.clone();
        def.name = new_name.to_owned();
        self.store.save(&def)?;
        self.guest_mut(&dom.uuid)?.config = def;
        let new_ref = self.by_uuid(&dom.uuid)?;
        self.emit(
            old_ref,
            LifecycleEvent::Undefined,
            event_detail::UNDEFINED_RENAMED,
        );
        self.emit(
            new_ref.clone(),
            LifecycleEvent::Defined,
            event_detail::DEFINED_RENAMED,
        );
        Ok(new_ref)
    }
}
