//! Managed save and memory sizes of test guests, as libvirt's test driver
//! (`testDomainManagedSave`, `testDomainSetMemoryFlags`).
//!
//! A managed save keeps the stopped guest's memory pages and definition in
//! the registry (never on disk: like running guests, they do not survive a
//! daemon restart); the next start runs the guest from them.

use migrated_core::domain::{event_detail, shutoff_reason, DomainRef, DomainState, LifecycleEvent};
use migrated_core::flags::{self, affect, check_flags, memory, save};
use migrated_core::tune::{memory_stats_period, SET_MEMORY_STATS_PERIOD};
use migrated_core::{Error, Result};

use super::Registry;
use crate::guest::{Live, SavedState};

impl Registry {
    /// `DOMAIN_MANAGED_SAVE`: stops a running persistent guest (stopped/saved),
    /// keeping its state for the next start.
    pub fn managed_save(&mut self, dom: &DomainRef, flags: u32) -> Result<()> {
        check_flags(
            "virDomainManagedSave",
            u64::from(flags),
            // BYPASS_CACHE is a caching hint, accepted and ignored.
            u64::from(save::BYPASS_CACHE | save::RUNNING | save::PAUSED),
        )?;
        let guest = self.guest_mut(&dom.uuid)?;
        if !guest.is_active() {
            return Err(Error::invalid("domain is not running"));
        }
        if !guest.persistent {
            return Err(Error::invalid(
                "cannot do managed save for transient domain",
            ));
        }
        let Some(mut live) = guest.live.take() else {
            return Err(Error::invalid("domain is not running"));
        };
        let running = save::restore_running(flags, live.state == DomainState::Running);
        live.pause(live.reason);
        guest.managed_save = Some(SavedState {
            def: live.def.clone(),
            memory: live.memory.clone(),
            running,
        });
        guest.shutoff_reason = shutoff_reason::SAVED;
        let event_ref = guest.dom_ref();
        self.emit(
            event_ref,
            LifecycleEvent::Stopped,
            event_detail::STOPPED_SAVED,
        );
        Ok(())
    }

    /// `DOMAIN_MANAGED_SAVE_REMOVE`: forgets the saved state (none is fine).
    pub fn managed_save_remove(&mut self, dom: &DomainRef, flags: u32) -> Result<()> {
        check_flags("virDomainManagedSaveRemove", u64::from(flags), 0)?;
        self.guest_mut(&dom.uuid)?.managed_save = None;
        Ok(())
    }

    /// Start's part: runs the guest from its saved state unless
    /// `START_FORCE_BOOT` discards it; `None` when there is none to use.
    pub(super) fn start_saved(&mut self, dom: &DomainRef, flags: u32) -> Result<Option<DomainRef>> {
        use flags::create::{START_FORCE_BOOT, START_PAUSED};
        let id = self.next_id;
        let guest = self.guest_mut(&dom.uuid)?;
        if guest.is_active() {
            return Err(super::state_error::already_running(&guest.config.name));
        }
        let Some(saved) = guest.managed_save.take() else {
            return Ok(None);
        };
        if flags & START_FORCE_BOOT != 0 {
            return Ok(None);
        }
        let live = Live::restore(id, saved, flags & START_PAUSED != 0)?;
        let paused = live.state == DomainState::Paused;
        guest.live = Some(live);
        let dom = guest.dom_ref();
        self.next_id = self.next_id.checked_add(1).unwrap_or(1);
        self.emit_started(&dom, event_detail::STARTED_RESTORED, paused);
        Ok(Some(dom))
    }

    /// `DOMAIN_SET_MEMORY(_FLAGS)`, `DOMAIN_SET_MAX_MEMORY`: one definition's
    /// current or maximum size, KiB.
    pub fn set_memory(&mut self, dom: &DomainRef, kib: u64, flags: u32) -> Result<()> {
        const OP: &str = "virDomainSetMemoryFlags";
        check_flags(
            OP,
            u64::from(flags),
            u64::from(affect::LIVE | affect::CONFIG | memory::MAXIMUM),
        )?;
        let guest = self.guest(&dom.uuid)?;
        let live = affect::resolve_one(OP, flags, guest.is_active(), guest.persistent)?;
        if flags & memory::MAXIMUM != 0 && live {
            return Err(Error::invalid(
                "cannot resize the maximum memory on an active domain",
            ));
        }
        let mut def = match (&guest.live, live) {
            (Some(l), true) => l.def.clone(),
            _ => guest.config.clone(),
        };
        if flags & memory::MAXIMUM != 0 {
            def.memory_kib = kib;
            def.current_memory_kib = def.current_memory_kib.min(kib);
        } else if kib > def.memory_kib {
            return Err(Error::memory_over_maximum());
        } else {
            def.current_memory_kib = kib;
        }
        if live {
            if let Some(l) = self.guest_mut(&dom.uuid)?.live.as_mut() {
                l.def = def;
            }
        } else {
            super::check_def(&def)?;
            self.store.save(&def)?;
            self.guest_mut(&dom.uuid)?.config = def;
        }
        Ok(())
    }

    /// `DOMAIN_SET_MEMORY_STATS_PERIOD`: the balloon's `<stats period>` of
    /// one definition (libvirt's test driver; a negative period is refused
    /// as libvirt's QEMU driver refuses it).
    pub fn set_memory_stats_period(
        &mut self,
        dom: &DomainRef,
        period: i32,
        flags: u32,
    ) -> Result<()> {
        let period = memory_stats_period(period, flags)?;
        self.change_one_def(dom, SET_MEMORY_STATS_PERIOD, flags, |def, _| {
            let balloon = def.devices.balloon_mut().ok_or_else(|| {
                Error::internal(
                    "No memory balloon device configured, can not set the collection period",
                )
            })?;
            balloon.stats_period = period;
            Ok(())
        })
    }
}
