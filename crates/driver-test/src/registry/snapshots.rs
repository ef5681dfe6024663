//! Snapshots of test guests, as libvirt's test driver keeps them
//! (src/test/test_driver.c): metadata only — the domain's definition and
//! state when it was taken — so a revert restores the definition and the
//! run state, not memory contents. Unlike libvirt's, the metadata of a
//! persistent guest is stored with its config and survives a restart.
//!
//! Every change is written to the store before it is made in memory.

use migrated_core::abi::check_abi_stability;
use migrated_core::domain::{
    event_detail, paused_reason, running_reason, shutoff_reason, DomainRef, DomainState,
    LifecycleEvent,
};
use migrated_core::flags::check_flags;
use migrated_core::flags::snapshot::{create, delete, revert};
use migrated_core::snapshot::{
    align_disks, check_create_flags, check_revert_flags, check_transient_revert, now, state_of,
    Snapshots,
};
use migrated_core::xml::{DomainDef, SnapshotDef, SnapshotLocation, SnapshotParse, SnapshotState};
use migrated_core::{Error, Result};
use uuid::Uuid;

use super::Registry;
use crate::guest::{Guest, Live};

impl Registry {
    /// Writes `snapshots` as the metadata of `uuid` (stored only for a
    /// persistent guest) and installs them.
    fn commit_snapshots(&mut self, uuid: &Uuid, snapshots: Snapshots) -> Result<()> {
        if self.guest(uuid)?.persistent {
            self.store.save_snapshots(uuid, &snapshots)?;
        }
        self.guest_mut(uuid)?.snapshots = snapshots;
        Ok(())
    }

    fn snapshots_of(&self, dom: &DomainRef) -> Result<&Snapshots> {
        Ok(&self.get(dom)?.snapshots)
    }

    /// `DOMAIN_SNAPSHOT_CREATE_XML`, as `testDomainSnapshotCreateXML`.
    pub fn snapshot_create(&mut self, dom: &DomainRef, doc: &str, flags: u32) -> Result<String> {
        use create::*;
        check_create_flags(
            flags,
            REDEFINE | CURRENT | HALT | QUIESCE | ATOMIC | LIVE | VALIDATE,
        )?;
        let guest = self.get(dom)?;
        if !guest.persistent && flags & HALT != 0 {
            return Err(Error::invalid(
                "cannot halt after transient domain snapshot",
            ));
        }
        let redefine = flags & REDEFINE != 0;
        let how = SnapshotParse {
            redefine,
            internal: false,
        };
        let mut def = SnapshotDef::parse(doc, how, now()).map_err(Error::SnapshotXml)?;
        let mut snapshots = guest.snapshots.clone();
        let name = def.name.clone();
        if redefine {
            snapshots.redefine(def, flags & CURRENT != 0)?;
            self.commit_snapshots(&dom.uuid, snapshots)?;
            return Ok(name);
        }
        snapshots.check_new(&name)?;
        let state = state_of(guest.state().state);
        let domain = guest
            .live
            .as_ref()
            .map_or_else(|| guest.config.clone(), |l| l.def.clone());
        let default = match def.memory.snapshot {
            Some(SnapshotLocation::External) => SnapshotLocation::External,
            _ => SnapshotLocation::Internal,
        };
        if state == SnapshotState::Shutoff
            && matches!(
                def.memory.snapshot,
                Some(SnapshotLocation::Internal | SnapshotLocation::External)
            )
        {
            return Err(Error::ConfigUnsupported {
                reason: "memory state cannot be saved with offline or disk-only snapshot".into(),
            });
        }
        def.memory.snapshot = Some(def.memory.snapshot.unwrap_or(
            if state == SnapshotState::Shutoff {
                SnapshotLocation::No
            } else {
                SnapshotLocation::Internal
            },
        ));
        def.disks = align_disks(&def.disks, &domain, default)?;
        def.state = state;
        let mut domain = domain;
        domain.id = None;
        def.domain = Some(domain);
        snapshots.add(def)?;
        self.commit_snapshots(&dom.uuid, snapshots)?;
        if flags & HALT != 0 && self.get(dom)?.is_active() {
            self.stop(
                dom,
                shutoff_reason::FROM_SNAPSHOT,
                event_detail::STOPPED_FROM_SNAPSHOT,
            )?;
        }
        Ok(name)
    }

    /// Listing and counting calls ([`Snapshots::list`]).
    pub fn snapshot_list(
        &self,
        dom: &DomainRef,
        of: Option<&str>,
        flags: u32,
    ) -> Result<Vec<String>> {
        self.snapshots_of(dom)?.list(of, flags)
    }

    /// `DOMAIN_SNAPSHOT_LOOKUP_BY_NAME`, `DOMAIN_SNAPSHOT_HAS_METADATA`.
    pub fn snapshot_lookup(&self, dom: &DomainRef, name: &str, flags: u32) -> Result<()> {
        self.snapshots_of(dom)?.lookup(name, flags)
    }

    /// `DOMAIN_SNAPSHOT_GET_XML_DESC`.
    pub fn snapshot_xml(&self, dom: &DomainRef, name: &str, flags: u32) -> Result<String> {
        self.snapshots_of(dom)?.xml_desc(name, flags)
    }

    /// `DOMAIN_SNAPSHOT_CURRENT` and friends.
    pub fn snapshot_current(&self, dom: &DomainRef, flags: u32) -> Result<Option<String>> {
        self.snapshots_of(dom)?.current_of(flags)
    }

    /// `DOMAIN_SNAPSHOT_GET_PARENT`.
    pub fn snapshot_parent(&self, dom: &DomainRef, name: &str, flags: u32) -> Result<String> {
        self.snapshots_of(dom)?.parent_of(name, flags)
    }

    /// `DOMAIN_SNAPSHOT_DELETE`, as `testDomainSnapshotDelete` (which has
    /// only metadata to delete, and refuses `METADATA_ONLY` as libvirt's).
    pub fn snapshot_delete(&mut self, dom: &DomainRef, name: &str, flags: u32) -> Result<()> {
        check_flags(
            "virDomainSnapshotDelete",
            u64::from(flags),
            u64::from(delete::CHILDREN | delete::CHILDREN_ONLY),
        )?;
        let mut snapshots = self.snapshots_of(dom)?.clone();
        snapshots.remove(name, flags)?;
        self.commit_snapshots(&dom.uuid, snapshots)
    }

    /// `DOMAIN_REVERT_TO_SNAPSHOT`, as `testDomainRevertToSnapshot`: the
    /// snapshot's definition becomes the guest's, and its state the guest's
    /// (with `RUNNING`/`PAUSED` overriding), with libvirt's events.
    pub fn snapshot_revert(&mut self, dom: &DomainRef, name: &str, flags: u32) -> Result<()> {
        use revert::{FORCE, PAUSED, RUNNING};
        check_revert_flags(flags, RUNNING | PAUSED | FORCE)?;
        let guest = self.get(dom)?;
        let snap = guest.snapshots.get(name)?;
        let start = flags & (RUNNING | PAUSED) != 0;
        check_transient_revert(guest.persistent, snap.state, flags)?;
        let Some(mut config) = snap.domain.clone() else {
            return Err(Error::SnapshotRevertRisky {
                reason: format!(
                    "snapshot '{name}' lacks domain '{}' rollback info",
                    guest.config.name
                ),
            });
        };
        if flags & FORCE == 0 && guest.is_active() && !snap.state.is_active() && start {
            return Err(Error::SnapshotRevertRisky {
                reason: "must respawn guest to start inactive snapshot".into(),
            });
        }
        // The snapshot's domain keeps the guest's identity.
        config.name.clone_from(&guest.config.name);
        config.uuid = guest.config.uuid;
        super::check_def(&config)?;
        let respawn = match &guest.live {
            Some(live) if snap.state.is_active() => match check_abi_stability(&live.def, &config) {
                Ok(()) => false,
                Err(_) if flags & FORCE != 0 => true,
                Err(mismatch) => {
                    return Err(Error::SnapshotRevertRisky {
                        reason: mismatch.to_string(),
                    })
                }
            },
            _ => false,
        };
        let snap_state = snap.state;
        let uuid = dom.uuid;
        if guest.persistent {
            self.store.save(&config)?;
        }
        let mut snapshots = guest.snapshots.clone();
        snapshots.set_current(Some(name));
        self.commit_snapshots(&uuid, snapshots)?;

        let paused =
            flags & RUNNING == 0 && (snap_state == SnapshotState::Paused || flags & PAUSED != 0);
        if snap_state.is_active() || start {
            if respawn || !snap_state.is_active() {
                self.halt_from_snapshot(&uuid);
            }
            self.guest_mut(&uuid)?.config = config.clone();
            if self.guest(&uuid)?.is_active() {
                self.revert_live(&uuid, config, paused)
            } else {
                self.boot_from_snapshot(&uuid, paused)
            }
        } else {
            self.halt_from_snapshot(&uuid);
            self.guest_mut(&uuid)?.config = config;
            Ok(())
        }
    }

    /// Stops a running guest for a revert (stopped/from-snapshot); a
    /// transient one stays, as it is started again at once.
    fn halt_from_snapshot(&mut self, uuid: &Uuid) {
        let Ok(guest) = self.guest_mut(uuid) else {
            return;
        };
        let Some(mut live) = guest.live.take() else {
            return;
        };
        live.pause(paused_reason::FROM_SNAPSHOT);
        guest.shutoff_reason = shutoff_reason::FROM_SNAPSHOT;
        let event_ref = guest.dom_ref();
        self.emit(
            event_ref,
            LifecycleEvent::Stopped,
            event_detail::STOPPED_FROM_SNAPSHOT,
        );
    }

    /// Starts the (reverted) config (started/from-snapshot, then
    /// suspended/from-snapshot when it stays paused).
    fn boot_from_snapshot(&mut self, uuid: &Uuid, paused: bool) -> Result<()> {
        let id = self.next_id;
        let guest = self.guest_mut(uuid)?;
        let mut live = Live::boot(id, guest.config.clone(), true)?;
        if paused {
            live.reason = paused_reason::FROM_SNAPSHOT;
        } else {
            live.run(running_reason::FROM_SNAPSHOT)?;
        }
        guest.live = Some(live);
        let event_ref = guest.dom_ref();
        self.next_id = self.next_id.checked_add(1).unwrap_or(1);
        self.emit(
            event_ref.clone(),
            LifecycleEvent::Started,
            event_detail::STARTED_FROM_SNAPSHOT,
        );
        if paused {
            self.emit(
                event_ref,
                LifecycleEvent::Suspended,
                event_detail::SUSPENDED_FROM_SNAPSHOT,
            );
        }
        Ok(())
    }

    /// A running guest takes the snapshot's (ABI-compatible) definition and
    /// run state: paused (suspended/from-snapshot) or running (resumed/from-
    /// snapshot when it was paused for the revert or before).
    fn revert_live(&mut self, uuid: &Uuid, mut config: DomainDef, paused: bool) -> Result<()> {
        let guest: &mut Guest = self.guest_mut(uuid)?;
        let Some(live) = guest.live.as_mut() else {
            return Err(Error::invalid("domain is not running"));
        };
        config.id = Some(live.id);
        live.def = config;
        let was_paused = live.state == DomainState::Paused;
        let event = if paused {
            live.pause(paused_reason::FROM_SNAPSHOT);
            (!was_paused).then_some((
                LifecycleEvent::Suspended,
                event_detail::SUSPENDED_FROM_SNAPSHOT,
            ))
        } else {
            // The guest's vCPUs stop while its state is loaded, then run.
            live.pause(paused_reason::FROM_SNAPSHOT);
            live.run(running_reason::FROM_SNAPSHOT)?;
            Some((LifecycleEvent::Resumed, event_detail::RESUMED_FROM_SNAPSHOT))
        };
        let event_ref = guest.dom_ref();
        if let Some((kind, detail)) = event {
            self.emit(event_ref, kind, detail);
        }
        Ok(())
    }
}
