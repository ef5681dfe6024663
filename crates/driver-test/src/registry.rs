//! The set of test guests and every lifecycle transition, as plain synchronous
//! code under one lock.
//!
//! Each transition checks the current state first (an invalid one is
//! `VIR_ERR_OPERATION_INVALID` with libvirt's wording), writes the disk before
//! changing memory (a failed write leaves everything as it was), then emits
//! the lifecycle event.

use std::collections::HashMap;
use std::sync::Arc;

use migrated_core::domain::{
    event_detail, paused_reason, running_reason, shutoff_reason, DomainEvent, DomainInfo,
    DomainRef, DomainState, LifecycleEvent, StateReason,
};
use migrated_core::error::DomainKey;
use migrated_core::flags::{self, check_flags};
use migrated_core::xml::{DomainDef, FormatOptions};
use migrated_core::{Error, Result};
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::guest::{Guest, Live};
use crate::memory::{GuestMemory, MAX_MEMORY_BYTES};
use crate::store::Store;
use crate::workload::WorkloadConfig;

mod devtune;
mod dump;
mod handover;
mod hotplug;
mod managed;
mod metadata;
mod save;
mod snapshots;
mod state_error;
mod tune;
mod vcpus;

pub(crate) use save::IMAGE as SAVE_IMAGE;

/// All guests of one test driver instance.
#[derive(Debug)]
pub(crate) struct Registry {
    guests: HashMap<Uuid, Guest>,
    next_id: i32,
    store: Store,
    events: broadcast::Sender<DomainEvent>,
}

impl Registry {
    /// Loads the stored configs (all shut off) and starts the autostart ones.
    pub fn load(store: Store, events: broadcast::Sender<DomainEvent>) -> Result<Self> {
        let mut registry = Self {
            guests: HashMap::new(),
            next_id: 1,
            store,
            events,
        };
        let mut autostart = Vec::new();
        for stored in registry.store.load()? {
            if stored.autostart {
                autostart.push(stored.def.uuid);
            }
            registry.guests.insert(
                stored.def.uuid,
                Guest {
                    config: stored.def,
                    persistent: true,
                    autostart: stored.autostart,
                    shutoff_reason: shutoff_reason::UNKNOWN,
                    live: None,
                    managed_save: None,
                    snapshots: stored.snapshots,
                },
            );
        }
        for uuid in autostart {
            if let Err(err) = registry.boot(&uuid, false) {
                tracing::warn!(%uuid, error = %err, "autostart of test domain failed");
            }
        }
        Ok(registry)
    }

    fn emit(&self, dom: DomainRef, event: LifecycleEvent, detail: i32) {
        // No subscriber is not an error: events are best effort by design.
        let _ = self.events.send(DomainEvent::lifecycle(dom, event, detail));
    }

    fn guest(&self, uuid: &Uuid) -> Result<&Guest> {
        self.guests.get(uuid).ok_or(Error::NoDomain {
            key: DomainKey::Uuid(*uuid),
        })
    }

    fn guest_mut(&mut self, uuid: &Uuid) -> Result<&mut Guest> {
        self.guests.get_mut(uuid).ok_or(Error::NoDomain {
            key: DomainKey::Uuid(*uuid),
        })
    }

    fn live_mut(&mut self, uuid: &Uuid) -> Result<&mut Live> {
        self.guest_mut(uuid)?
            .live
            .as_mut()
            .ok_or_else(|| Error::invalid("domain is not running"))
    }

    /// The guest with `dom`'s UUID.
    pub fn get(&self, dom: &DomainRef) -> Result<&Guest> {
        self.guest(&dom.uuid)
    }

    /// Lookup by UUID.
    pub fn by_uuid(&self, uuid: &Uuid) -> Result<DomainRef> {
        Ok(self.guest(uuid)?.dom_ref())
    }

    /// Lookup by name.
    pub fn by_name(&self, name: &str) -> Result<DomainRef> {
        self.guests
            .values()
            .find(|g| g.config.name == name)
            .map(Guest::dom_ref)
            .ok_or_else(|| Error::NoDomain {
                key: DomainKey::Name(name.to_owned()),
            })
    }

    /// Lookup of a running guest by id.
    pub fn by_id(&self, id: i32) -> Result<DomainRef> {
        self.guests
            .values()
            .find(|g| g.live.as_ref().is_some_and(|l| l.id == id))
            .map(Guest::dom_ref)
            .ok_or(Error::NoDomain {
                key: DomainKey::Id(id),
            })
    }

    /// Memory of a running guest.
    pub fn memory(&self, uuid: &Uuid) -> Option<Arc<GuestMemory>> {
        self.guests
            .get(uuid)?
            .live
            .as_ref()
            .map(|l| Arc::clone(&l.memory))
    }

    /// Guests matching the `CONNECT_LIST_ALL_DOMAINS` filter, sorted by name.
    pub fn list(&self, filter: u32) -> Result<Vec<DomainRef>> {
        check_flags(
            "virConnectListAllDomains",
            u64::from(filter),
            u64::from(flags::list::ALL),
        )?;
        let mut out: Vec<DomainRef> = self
            .guests
            .values()
            .filter(|g| matches_filter(g, filter))
            .map(Guest::dom_ref)
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// `DOMAIN_GET_INFO`.
    pub fn info(&self, dom: &DomainRef) -> Result<DomainInfo> {
        let guest = self.get(dom)?;
        let def = guest.live.as_ref().map_or(&guest.config, |l| &l.def);
        Ok(DomainInfo {
            state: guest.state().state,
            max_mem_kib: def.memory_kib,
            memory_kib: def.current_memory_kib,
            nr_virt_cpu: u16::try_from(def.current_vcpus()).unwrap_or(u16::MAX),
            cpu_time_ns: guest.live.as_ref().map_or(0, Live::cpu_time_ns),
        })
    }

    /// Memory of the running guests, KiB.
    pub fn running_memory_kib(&self) -> u64 {
        self.guests
            .values()
            .filter_map(|g| g.live.as_ref())
            .map(|l| l.def.current_memory_kib)
            .sum()
    }

    /// The running instance of `dom`.
    ///
    /// # Errors
    /// `VIR_ERR_NO_DOMAIN`; `VIR_ERR_OPERATION_INVALID` when it is not running.
    pub fn live(&self, dom: &DomainRef) -> Result<&Live> {
        self.get(dom)?
            .live
            .as_ref()
            .ok_or_else(|| Error::invalid("domain is not running"))
    }

    /// `DOMAIN_GET_STATE`.
    pub fn state(&self, dom: &DomainRef, flags: u32) -> Result<StateReason> {
        check_flags("virDomainGetState", u64::from(flags), 0)?;
        Ok(self.get(dom)?.state())
    }

    /// `DOMAIN_GET_XML_DESC`.
    pub fn xml_desc(&self, dom: &DomainRef, flags: u32) -> Result<String> {
        use flags::xml::{INACTIVE, MIGRATABLE, SECURE, UPDATE_CPU};
        check_flags(
            "virDomainGetXMLDesc",
            u64::from(flags),
            u64::from(SECURE | INACTIVE | UPDATE_CPU | MIGRATABLE),
        )?;
        let guest = self.get(dom)?;
        let inactive = flags & INACTIVE != 0;
        let def = match &guest.live {
            Some(live) if !inactive => &live.def,
            _ => &guest.config,
        };
        Ok(def.format(&FormatOptions {
            secure: flags & SECURE != 0,
            inactive,
            migratable: flags & MIGRATABLE != 0,
        }))
    }

    /// Refuses a second guest with the same name or UUID; `Ok(true)` when `def`
    /// names an existing guest (same UUID and name).
    fn check_duplicates(&self, def: &DomainDef) -> Result<bool> {
        if let Some(existing) = self.guests.get(&def.uuid) {
            if existing.config.name != def.name {
                return Err(Error::DomainExists {
                    name: existing.config.name.clone(),
                    reason: format!("is already defined with uuid {}", def.uuid),
                });
            }
            return Ok(true);
        }
        if let Some(other) = self.guests.values().find(|g| g.config.name == def.name) {
            return Err(Error::DomainExists {
                name: def.name.clone(),
                reason: format!("already exists with uuid {}", other.config.uuid),
            });
        }
        Ok(false)
    }

    /// `DOMAIN_DEFINE_XML(_FLAGS)`: adds a persistent guest or updates the config
    /// of the guest with the same UUID and name (a running guest keeps running
    /// with its old definition until it stops).
    pub fn define(&mut self, xml: &str, flags: u32) -> Result<DomainRef> {
        check_flags(
            "virDomainDefineXMLFlags",
            u64::from(flags),
            u64::from(flags::define::VALIDATE),
        )?;
        let def = parse_def(xml)?;
        let exists = self.check_duplicates(&def)?;
        self.store.save(&def)?;
        let uuid = def.uuid;
        let detail = if exists {
            let guest = self.guest(&uuid)?;
            let detail = if guest.persistent {
                event_detail::DEFINED_UPDATED
            } else {
                event_detail::DEFINED_ADDED
            };
            if !guest.persistent && !guest.snapshots.is_empty() {
                // A transient guest's snapshots become stored with its config.
                self.store.save_snapshots(&uuid, &guest.snapshots)?;
            }
            let guest = self.guest_mut(&uuid)?;
            guest.config = def;
            guest.persistent = true;
            detail
        } else {
            self.guests.insert(
                uuid,
                Guest {
                    config: def,
                    persistent: true,
                    autostart: false,
                    shutoff_reason: shutoff_reason::UNKNOWN,
                    live: None,
                    managed_save: None,
                    snapshots: Default::default(),
                },
            );
            event_detail::DEFINED_ADDED
        };
        let dom = self.by_uuid(&uuid)?;
        self.emit(dom.clone(), LifecycleEvent::Defined, detail);
        Ok(dom)
    }

    /// `DOMAIN_UNDEFINE(_FLAGS)`: a shut-off guest disappears, a running one
    /// becomes transient.
    pub fn undefine(&mut self, dom: &DomainRef, flags: u32) -> Result<()> {
        use flags::undefine::*;
        // Of these only managed save images and snapshots exist in the test driver.
        let allowed = MANAGED_SAVE
            | SNAPSHOTS_METADATA
            | NVRAM
            | KEEP_NVRAM
            | CHECKPOINTS_METADATA
            | TPM
            | KEEP_TPM;
        check_flags(
            "virDomainUndefineFlags",
            u64::from(flags),
            u64::from(allowed),
        )?;
        let guest = self.get(dom)?;
        if !guest.persistent {
            return Err(Error::invalid("cannot undefine transient domain"));
        }
        if guest.managed_save.is_some() && flags & MANAGED_SAVE == 0 {
            return Err(Error::invalid(
                "Refusing to undefine while domain managed save image exists",
            ));
        }
        migrated_core::snapshot::check_undefine(guest.is_active(), guest.snapshots.len(), flags)?;
        let uuid = guest.config.uuid;
        let event_ref = guest.dom_ref();
        self.store.remove(&uuid)?;
        let guest = self.guest_mut(&uuid)?;
        guest.managed_save = None;
        if guest.is_active() {
            guest.persistent = false;
            guest.autostart = false;
        } else {
            self.guests.remove(&uuid);
        }
        self.emit(
            event_ref,
            LifecycleEvent::Undefined,
            event_detail::UNDEFINED_REMOVED,
        );
        Ok(())
    }

    /// Starts the stored config of `uuid` with a fresh id.
    fn boot(&mut self, uuid: &Uuid, paused: bool) -> Result<DomainRef> {
        let id = self.next_id;
        let guest = self.guest_mut(uuid)?;
        if guest.is_active() {
            return Err(state_error::already_running(&guest.config.name));
        }
        guest.live = Some(Live::boot(id, guest.config.clone(), paused)?);
        let dom = guest.dom_ref();
        self.next_id = self.next_id.checked_add(1).unwrap_or(1);
        self.emit_started(&dom, event_detail::STARTED_BOOTED, paused);
        Ok(dom)
    }

    /// The events of a start: started (`detail`), then suspended when it
    /// starts paused.
    fn emit_started(&self, dom: &DomainRef, detail: i32, paused: bool) {
        self.emit(dom.clone(), LifecycleEvent::Started, detail);
        if paused {
            self.emit(
                dom.clone(),
                LifecycleEvent::Suspended,
                event_detail::SUSPENDED_PAUSED,
            );
        }
    }

    /// `DOMAIN_CREATE(_WITH_FLAGS)`.
    pub fn start(&mut self, dom: &DomainRef, flags: u32) -> Result<DomainRef> {
        use flags::create::{START_FORCE_BOOT, START_PAUSED};
        check_flags(
            "virDomainCreateWithFlags",
            u64::from(flags),
            u64::from(START_PAUSED | START_FORCE_BOOT),
        )?;
        if let Some(dom) = self.start_saved(dom, flags)? {
            return Ok(dom);
        }
        let uuid = self.get(dom)?.config.uuid;
        self.boot(&uuid, flags & START_PAUSED != 0)
    }

    /// `DOMAIN_CREATE_XML`: starts a transient guest, or boots a shut-off
    /// persistent guest of the same UUID and name with this definition.
    pub fn create_xml(&mut self, xml: &str, flags: u32) -> Result<DomainRef> {
        use flags::create::{START_PAUSED, START_VALIDATE};
        check_flags(
            "virDomainCreateXML",
            u64::from(flags),
            u64::from(START_PAUSED | START_VALIDATE),
        )?;
        let def = parse_def(xml)?;
        let paused = flags & START_PAUSED != 0;
        let exists = self.check_startable(&def)?;
        let live = Live::boot(self.next_id, def.clone(), paused)?;
        let dom = self.add_live(def, live, exists)?;
        self.emit_started(&dom, event_detail::STARTED_BOOTED, paused);
        Ok(dom)
    }

    /// Refuses to run `def` when it clashes with another guest
    /// ([`Registry::check_duplicates`]) or runs already; `Ok(true)` when it
    /// names a defined shut-off guest.
    fn check_startable(&self, def: &DomainDef) -> Result<bool> {
        let exists = self.check_duplicates(def)?;
        if exists && self.guest(&def.uuid)?.is_active() {
            return Err(Error::invalid(format!(
                "domain '{}' is already active",
                def.name
            )));
        }
        Ok(exists)
    }

    /// Installs `live` (made with the next id) as the running instance of
    /// the guest `def` names: the defined one when `exists`, else a new
    /// transient guest.
    fn add_live(&mut self, def: DomainDef, live: Live, exists: bool) -> Result<DomainRef> {
        let uuid = def.uuid;
        if exists {
            self.guest_mut(&uuid)?.live = Some(live);
        } else {
            self.guests.insert(
                uuid,
                Guest {
                    config: def,
                    persistent: false,
                    autostart: false,
                    shutoff_reason: shutoff_reason::UNKNOWN,
                    live: Some(live),
                    managed_save: None,
                    snapshots: Default::default(),
                },
            );
        }
        self.next_id = self.next_id.checked_add(1).unwrap_or(1);
        self.by_uuid(&uuid)
    }

    /// Stops a running guest; a transient one disappears.
    fn stop(&mut self, dom: &DomainRef, reason: i32, detail: i32) -> Result<()> {
        let guest = self.guest_mut(&dom.uuid)?;
        let Some(mut live) = guest.live.take() else {
            return Err(Error::invalid("domain is not running"));
        };
        live.pause(paused_reason::USER);
        drop(live);
        guest.shutoff_reason = reason;
        let event_ref = guest.dom_ref();
        if !guest.persistent {
            self.guests.remove(&dom.uuid);
        }
        self.emit(event_ref, LifecycleEvent::Stopped, detail);
        Ok(())
    }

    /// `DOMAIN_DESTROY(_FLAGS)`.
    pub fn destroy(&mut self, dom: &DomainRef, flags: u32) -> Result<()> {
        use flags::destroy::{GRACEFUL, REMOVE_LOGS};
        check_flags(
            "virDomainDestroyFlags",
            u64::from(flags),
            u64::from(GRACEFUL | REMOVE_LOGS),
        )?;
        self.stop(
            dom,
            shutoff_reason::DESTROYED,
            event_detail::STOPPED_DESTROYED,
        )
    }

    /// `DOMAIN_SHUTDOWN(_FLAGS)`: the test guest complies at once.
    pub fn shutdown(&mut self, dom: &DomainRef, flags: u32) -> Result<()> {
        use flags::shutdown::*;
        let allowed = ACPI_POWER_BTN | GUEST_AGENT | INITCTL | SIGNAL | PARAVIRT;
        check_flags(
            "virDomainShutdownFlags",
            u64::from(flags),
            u64::from(allowed),
        )?;
        let guest = self.get(dom)?;
        if !guest.is_active() {
            return Err(state_error::not_running(&guest.config.name));
        }
        self.stop(
            dom,
            shutoff_reason::SHUTDOWN,
            event_detail::STOPPED_SHUTDOWN,
        )
    }

    /// `DOMAIN_REBOOT`, as libvirt's `testDomainReboot`: every mode is
    /// accepted and the guest complies at once; its `<on_reboot>` action
    /// decides what follows. `restart` (the default) and `rename-restart`
    /// leave it running (booted), a paused one too, without an event;
    /// `destroy`, `preserve` and the `coredump-*` actions shut it off, with
    /// libvirt's `Stopped Shutdown` event.
    pub fn reboot(&mut self, dom: &DomainRef, flags: u32) -> Result<()> {
        use flags::reboot::*;
        let allowed = ACPI_POWER_BTN | GUEST_AGENT | INITCTL | SIGNAL | PARAVIRT;
        check_flags("virDomainReboot", u64::from(flags), u64::from(allowed))?;
        let live = self.live_mut(&dom.uuid)?;
        match live.def.on_reboot.as_deref() {
            None | Some("restart" | "rename-restart") => {
                if live.state == DomainState::Running {
                    live.reason = running_reason::BOOTED;
                    Ok(())
                } else {
                    live.run(running_reason::BOOTED)
                }
            }
            Some(_) => self.stop(
                dom,
                shutoff_reason::SHUTDOWN,
                event_detail::STOPPED_SHUTDOWN,
            ),
        }
    }

    /// `DOMAIN_SUSPEND`.
    pub fn suspend(&mut self, dom: &DomainRef) -> Result<()> {
        let guest = self.guest_mut(&dom.uuid)?;
        let name = &guest.config.name;
        let live = match guest.live.as_mut() {
            Some(live) if live.state != DomainState::Paused => live,
            _ => return Err(state_error::not_running(name)),
        };
        live.pause(paused_reason::USER);
        let event_ref = self.by_uuid(&dom.uuid)?;
        self.emit(
            event_ref,
            LifecycleEvent::Suspended,
            event_detail::SUSPENDED_PAUSED,
        );
        Ok(())
    }

    /// `DOMAIN_RESUME`.
    pub fn resume(&mut self, dom: &DomainRef) -> Result<()> {
        let guest = self.guest_mut(&dom.uuid)?;
        let name = &guest.config.name;
        let live = match guest.live.as_mut() {
            Some(live) if live.state == DomainState::Paused => live,
            _ => return Err(state_error::not_paused(name)),
        };
        live.run(running_reason::UNPAUSED)?;
        let event_ref = self.by_uuid(&dom.uuid)?;
        self.emit(
            event_ref,
            LifecycleEvent::Resumed,
            event_detail::RESUMED_UNPAUSED,
        );
        Ok(())
    }

    /// `DOMAIN_SET_AUTOSTART`.
    pub fn set_autostart(&mut self, dom: &DomainRef, autostart: bool) -> Result<()> {
        let guest = self.get(dom)?;
        if !guest.persistent {
            return Err(Error::invalid("cannot set autostart for transient domain"));
        }
        if guest.autostart != autostart {
            self.store.set_autostart(&dom.uuid, autostart)?;
            self.guest_mut(&dom.uuid)?.autostart = autostart;
        }
        Ok(())
    }
}

/// Parses `xml`, applies [`check_def`] and drops any runtime id.
fn parse_def(xml: &str) -> Result<DomainDef> {
    let mut def = DomainDef::parse(xml)?;
    check_def(&def)?;
    // An id in the input (e.g. XML dumped from a running guest) belongs to
    // that instance, not to the config.
    def.id = None;
    Ok(def)
}

/// Checks what the test driver needs beyond the XML model: a memory size it
/// can model and valid workload metadata.
fn check_def(def: &DomainDef) -> Result<()> {
    if def.memory_kib.saturating_mul(1024) > MAX_MEMORY_BYTES {
        return Err(Error::ConfigUnsupported {
            reason: format!(
                "test driver guests are limited to {} MiB of memory, {} MiB requested",
                MAX_MEMORY_BYTES >> 20,
                def.memory_kib >> 10
            ),
        });
    }
    WorkloadConfig::from_def(def)?;
    Ok(())
}

/// libvirt's filter semantics: within each pair (or the state group) no bit
/// means "no filter", otherwise the guest must match one of the set bits.
fn matches_filter(guest: &Guest, filter: u32) -> bool {
    use flags::list::*;
    let pair = |yes: u32, no: u32, value: bool| {
        let (y, n) = (filter & yes != 0, filter & no != 0);
        !(y || n) || (y && value) || (n && !value)
    };
    let state = guest.state().state;
    let state_bits = RUNNING | PAUSED | SHUTOFF | OTHER;
    let state_ok = filter & state_bits == 0
        || match state {
            DomainState::Running => filter & RUNNING != 0,
            DomainState::Paused => filter & PAUSED != 0,
            DomainState::Shutoff => filter & SHUTOFF != 0,
            _ => filter & OTHER != 0,
        };
    state_ok
        && pair(ACTIVE, INACTIVE, guest.is_active())
        && pair(PERSISTENT, TRANSIENT, guest.persistent)
        && pair(AUTOSTART, NO_AUTOSTART, guest.autostart)
        // The test driver has no checkpoints.
        && pair(MANAGEDSAVE, NO_MANAGEDSAVE, guest.managed_save.is_some())
        && pair(HAS_SNAPSHOT, NO_SNAPSHOT, !guest.snapshots.is_empty())
        && pair(HAS_CHECKPOINT, NO_CHECKPOINT, false)
}
