//! The lifecycle transitions a migration drives on each side, with libvirt's
//! states, reasons and events. The migration engine decides *when*; these say
//! *what* each step does to the guest, so that state stays owned in one place.
//!
//! | side | step | guest afterwards | event |
//! |---|---|---|---|
//! | destination | Prepare | paused (migration), zeroed memory | started / migrated |
//! | destination | Finish ok | running (migrated), or paused (user) with `PAUSED` | resumed / migrated |
//! | destination | Finish cancelled | gone (or its shut-off config) | stopped / failed |
//! | source | final copy | paused (migration) | suspended / migrated |
//! | source | Confirm cancelled, failed Perform | running (migration canceled), also after an operator's pause if it ran at Begin | resumed / migrated |
//! | source | Confirm ok | shut off (migrated), undefined with `UNDEFINE_SOURCE` | stopped / migrated |

use std::sync::Arc;

use migrated_core::domain::{
    event_detail, paused_reason, running_reason, shutoff_reason, DomainRef, DomainState,
    LifecycleEvent, StateReason,
};
use migrated_core::migration::resumes_after_migration;
use migrated_core::xml::DomainDef;
use migrated_core::{Error, Result};

use super::{check_def, Registry};
use crate::guest::Live;
use crate::memory::GuestMemory;

impl Registry {
    /// Destination, Prepare: a paused incoming instance of `def` whose zeroed
    /// memory the engine fills. A shut-off persistent guest of the same name and
    /// UUID may receive it; a running one, or a clash, is refused.
    pub fn incoming_prepare(
        &mut self,
        mut def: DomainDef,
    ) -> Result<(DomainRef, Arc<GuestMemory>)> {
        check_def(&def)?;
        def.id = None;
        let uuid = def.uuid;
        let exists = self.check_startable(&def)?;
        if exists && self.guest(&uuid)?.managed_save.is_some() {
            return Err(migrated_core::migration::managed_save_on_destination(
                &def.name,
            ));
        }
        let mut live = Live::boot(self.next_id, def.clone(), true)?;
        live.reason = paused_reason::MIGRATION;
        let memory = Arc::clone(&live.memory);
        let dom = self.add_live(def, live, exists)?;
        self.emit(
            dom.clone(),
            LifecycleEvent::Started,
            event_detail::STARTED_MIGRATED,
        );
        Ok((dom, memory))
    }

    /// Destination, Finish after a complete transfer: optionally define
    /// `persist` (`PERSIST_DEST`), then run the guest, or leave it paused
    /// (`PAUSED`).
    pub fn incoming_finish(
        &mut self,
        dom: &DomainRef,
        persist: Option<DomainDef>,
        paused: bool,
    ) -> Result<DomainRef> {
        let live = self.live_mut(&dom.uuid)?;
        if live.state != DomainState::Paused || live.reason != paused_reason::MIGRATION {
            return Err(Error::invalid("domain is not an incoming migration"));
        }
        if let Some(mut def) = persist {
            check_def(&def)?;
            def.id = None;
            if def.uuid != dom.uuid {
                return Err(Error::internal(format!(
                    "persistent definition has uuid {}, the migrated domain {}",
                    def.uuid, dom.uuid
                )));
            }
            self.store.save(&def)?;
            let guest = self.guest_mut(&dom.uuid)?;
            let detail = if guest.persistent {
                event_detail::DEFINED_UPDATED
            } else {
                event_detail::DEFINED_ADDED
            };
            guest.config = def;
            guest.persistent = true;
            let event_ref = guest.dom_ref();
            self.emit(event_ref, LifecycleEvent::Defined, detail);
        }
        let live = self.live_mut(&dom.uuid)?;
        let (event, detail) = if paused {
            live.reason = paused_reason::USER;
            (LifecycleEvent::Suspended, event_detail::SUSPENDED_PAUSED)
        } else {
            live.run(running_reason::MIGRATED)?;
            (LifecycleEvent::Resumed, event_detail::RESUMED_MIGRATED)
        };
        let dom = self.by_uuid(&dom.uuid)?;
        self.emit(dom.clone(), event, detail);
        Ok(dom)
    }

    /// Destination, Finish with `cancelled` (or a failed transfer): kill the
    /// incoming instance; a guest that was created for it disappears.
    pub fn incoming_abort(&mut self, dom: &DomainRef) -> Result<()> {
        self.stop(dom, shutoff_reason::FAILED, event_detail::STOPPED_FAILED)
    }

    /// Source, before the final copy: pause a running guest so its memory stops
    /// changing. A guest the user had paused stays paused as it is.
    pub fn outgoing_pause(&mut self, dom: &DomainRef) -> Result<()> {
        let live = self.live_mut(&dom.uuid)?;
        if live.state != DomainState::Running {
            return Ok(());
        }
        live.pause(paused_reason::MIGRATION);
        let event_ref = self.by_uuid(&dom.uuid)?;
        self.emit(
            event_ref,
            LifecycleEvent::Suspended,
            event_detail::SUSPENDED_MIGRATED,
        );
        Ok(())
    }

    /// Source, Confirm with `cancelled`: run again a guest that
    /// [`Registry::outgoing_pause`] paused. Idempotent.
    pub fn outgoing_resume(&mut self, dom: &DomainRef) -> Result<()> {
        self.resume_source(dom, false)
    }

    /// Source, a cancelled or failed migration of a guest that ran when its
    /// job began: run it again whoever paused it since (an operator's
    /// SUSPEND included), as libvirt restores the pre-migration state. A
    /// guest no longer active (or gone) is left alone. Idempotent.
    pub fn outgoing_restore(&mut self, dom: &DomainRef) -> Result<()> {
        if self.live_mut(&dom.uuid).is_err() {
            return Ok(());
        }
        self.resume_source(dom, true)
    }

    /// Lifts the throttle and runs the guest again ("migration canceled",
    /// event resumed / migrated) if [`resumes_after_migration`] says so.
    fn resume_source(&mut self, dom: &DomainRef, ran_at_begin: bool) -> Result<()> {
        let live = self.live_mut(&dom.uuid)?;
        live.memory.set_throttle_percent(0);
        let state = StateReason {
            state: live.state,
            reason: live.reason,
        };
        if !resumes_after_migration(state, ran_at_begin) {
            return Ok(());
        }
        live.run(running_reason::MIGRATION_CANCELED)?;
        let event_ref = self.by_uuid(&dom.uuid)?;
        self.emit(
            event_ref,
            LifecycleEvent::Resumed,
            event_detail::RESUMED_MIGRATED,
        );
        Ok(())
    }

    /// Source, Confirm after success: the guest now runs elsewhere. It stops
    /// here; with `undefine` (`UNDEFINE_SOURCE`) its config goes too.
    pub fn outgoing_complete(&mut self, dom: &DomainRef, undefine: bool) -> Result<()> {
        self.stop(
            dom,
            shutoff_reason::MIGRATED,
            event_detail::STOPPED_MIGRATED,
        )?;
        if undefine {
            if let Ok(guest) = self.guest(&dom.uuid) {
                let event_ref = guest.dom_ref();
                self.store.remove(&dom.uuid)?;
                self.guests.remove(&dom.uuid);
                self.emit(
                    event_ref,
                    LifecycleEvent::Undefined,
                    event_detail::UNDEFINED_REMOVED,
                );
            }
        }
        Ok(())
    }
}
