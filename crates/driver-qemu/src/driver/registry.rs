//! The driver's table of domains and the pure rules over it (lookups,
//! listing filters, name/UUID clashes). Nothing here blocks or awaits.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use super::job_lock::JobLock;
use migrated_core::domain::{DomainRef, DomainState, StateReason};
use migrated_core::error::DomainKey;
use migrated_core::flags::{self, check_flags};
use migrated_core::snapshot::Snapshots;
use migrated_core::xml::DomainDef;
use migrated_core::{Error, Result};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::process::{LaunchPaths, QemuProcess};
use crate::qmp::Qmp;

/// One domain: its config and, while it runs, its live part.
pub(crate) struct Domain {
    /// Persistent config, or the definition of a transient domain.
    pub config: DomainDef,
    /// Whether `config` is stored on disk.
    pub persistent: bool,
    /// Whether it starts with the daemon.
    pub autostart: bool,
    /// Why it last stopped (libvirt's shutoff reason).
    pub shutoff_reason: i32,
    /// Whether its managed save image exists (libvirt's `hasManagedSave`).
    pub managed_save: bool,
    /// Present while QEMU runs.
    pub live: Option<Live>,
    /// Its snapshot metadata (stored for a persistent domain).
    pub snapshots: Snapshots,
    /// Serializes lifecycle operations on this domain (start, stop, pause):
    /// held across QEMU and QMP calls, unlike the registry lock.
    pub job: Arc<JobLock>,
}

/// A running instance.
pub(crate) struct Live {
    /// The definition it was started with (its id set).
    pub def: DomainDef,
    /// Domain id.
    pub id: i32,
    /// Running or paused, with reason.
    pub state: StateReason,
    /// The QEMU process and monitor.
    pub runtime: Arc<Runtime>,
}

/// Why the driver itself is stopping a guest, so the exit is not taken for a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StopIntent {
    /// Shutoff reason to record.
    pub reason: i32,
    /// `Stopped` event detail to emit.
    pub detail: i32,
}

/// QEMU process, monitor and the per-run flags the event task reads.
pub(crate) struct Runtime {
    pub process: Arc<QemuProcess>,
    pub qmp: Qmp,
    pub paths: LaunchPaths,
    pub intent: Mutex<Option<StopIntent>>,
    pub guest_shutdown: AtomicBool,
    /// A reboot is asked for (libvirt's `fakeReboot`): the guest's next
    /// shutdown becomes a reset and a resume. QEMU's shutdown action is
    /// `pause` only while this is set (set first, cleared last).
    pub fake_reboot: AtomicBool,
    /// QEMU paused in run state `shutdown` for the fake reboot (libvirt's
    /// `pausedShutdown`): its STOP is no pause, its RESUME no resume.
    pub paused_shutdown: AtomicBool,
    /// An outgoing migration runs: QEMU's STOP is the migration's switch-over.
    pub migrating: AtomicBool,
    /// A user's monitor command ran on this run (libvirt's "custom-monitor" taint).
    pub tainted: AtomicBool,
    pub monitor: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // The event task holds only weak references; stop it with its run.
        if let Ok(mut task) = self.monitor.lock() {
            if let Some(task) = task.take() {
                task.abort();
            }
        }
    }
}

impl Runtime {
    pub fn set_intent(&self, intent: StopIntent) {
        if let Ok(mut slot) = self.intent.lock() {
            *slot = Some(intent);
        }
    }

    pub fn intent(&self) -> Option<StopIntent> {
        self.intent.lock().ok().and_then(|i| *i)
    }
}

impl Domain {
    pub fn dom_ref(&self) -> DomainRef {
        DomainRef {
            name: self.config.name.clone(),
            uuid: self.config.uuid,
            id: self.live.as_ref().map_or(DomainRef::INACTIVE_ID, |l| l.id),
        }
    }

    pub fn state(&self) -> StateReason {
        match &self.live {
            Some(live) => live.state,
            None => StateReason {
                state: DomainState::Shutoff,
                reason: self.shutoff_reason,
            },
        }
    }
}

/// All domains by UUID.
#[derive(Default)]
pub(crate) struct Registry {
    pub domains: HashMap<Uuid, Domain>,
}

impl Registry {
    pub fn get(&self, dom: &DomainRef) -> Result<&Domain> {
        self.domains.get(&dom.uuid).ok_or_else(|| no_domain(dom))
    }

    pub fn get_mut(&mut self, dom: &DomainRef) -> Result<&mut Domain> {
        self.domains
            .get_mut(&dom.uuid)
            .ok_or_else(|| no_domain(dom))
    }

    pub fn by_name(&self, name: &str) -> Result<&Domain> {
        self.domains
            .values()
            .find(|d| d.config.name == name)
            .ok_or_else(|| Error::NoDomain {
                key: DomainKey::Name(name.to_owned()),
            })
    }

    pub fn by_id(&self, id: i32) -> Result<&Domain> {
        self.domains
            .values()
            .find(|d| d.live.as_ref().is_some_and(|l| l.id == id))
            .ok_or(Error::NoDomain {
                key: DomainKey::Id(id),
            })
    }

    /// `virConnectListAllDomains`: domains passing every filter group, by name.
    pub fn list(&self, filter: u32) -> Result<Vec<DomainRef>> {
        check_flags(
            "virConnectListAllDomains",
            u64::from(filter),
            u64::from(flags::list::ALL),
        )?;
        let mut out: Vec<DomainRef> = self
            .domains
            .values()
            .filter(|d| matches_filter(d, filter))
            .map(Domain::dom_ref)
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Refuses a definition whose name or UUID belongs to another domain;
    /// `Ok(true)` when it updates the domain with the same UUID and name.
    pub fn check_duplicates(&self, def: &DomainDef) -> Result<bool> {
        if let Some(existing) = self.domains.get(&def.uuid) {
            if existing.config.name != def.name {
                return Err(Error::DomainExists {
                    name: existing.config.name.clone(),
                    reason: format!("is already defined with uuid {}", def.uuid),
                });
            }
            return Ok(true);
        }
        if let Some(other) = self.domains.values().find(|d| d.config.name == def.name) {
            return Err(Error::DomainExists {
                name: def.name.clone(),
                reason: format!("already exists with uuid {}", other.config.uuid),
            });
        }
        Ok(false)
    }
}

fn no_domain(dom: &DomainRef) -> Error {
    Error::NoDomain {
        key: DomainKey::Uuid(dom.uuid),
    }
}

/// One `virConnectListAllDomainsFlags` group: no bit set means "any".
fn group(filter: u32, pairs: &[(u32, bool)]) -> bool {
    let asked = pairs.iter().any(|(bit, _)| filter & bit != 0);
    !asked || pairs.iter().any(|(bit, yes)| filter & bit != 0 && *yes)
}

fn matches_filter(d: &Domain, filter: u32) -> bool {
    use flags::list::*;
    let state = d.state().state;
    let active = state.is_active();
    group(filter, &[(ACTIVE, active), (INACTIVE, !active)])
        && group(
            filter,
            &[(PERSISTENT, d.persistent), (TRANSIENT, !d.persistent)],
        )
        && group(
            filter,
            &[
                (RUNNING, state == DomainState::Running),
                (PAUSED, state == DomainState::Paused),
                (SHUTOFF, state == DomainState::Shutoff),
                (
                    OTHER,
                    !matches!(
                        state,
                        DomainState::Running | DomainState::Paused | DomainState::Shutoff
                    ),
                ),
            ],
        )
        && group(
            filter,
            &[
                (MANAGEDSAVE, d.managed_save),
                (NO_MANAGEDSAVE, !d.managed_save),
            ],
        )
        && group(
            filter,
            &[(AUTOSTART, d.autostart), (NO_AUTOSTART, !d.autostart)],
        )
        && group(filter, &[(HAS_SNAPSHOT, false), (NO_SNAPSHOT, true)])
        && group(filter, &[(HAS_CHECKPOINT, false), (NO_CHECKPOINT, true)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use migrated_core::domain::shutoff_reason;

    fn domain(name: &str, persistent: bool, autostart: bool) -> Domain {
        let xml = format!(
            "<domain type='qemu'><name>{name}</name><uuid>{}</uuid>\
             <memory unit='KiB'>65536</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>",
            Uuid::new_v4()
        );
        Domain {
            config: DomainDef::parse(&xml).expect("xml"),
            persistent,
            autostart,
            shutoff_reason: shutoff_reason::UNKNOWN,
            managed_save: false,
            live: None,
            snapshots: Default::default(),
            job: Arc::default(),
        }
    }

    fn names(list: Vec<DomainRef>) -> Vec<String> {
        list.into_iter().map(|d| d.name).collect()
    }

    #[test]
    fn list_filters_by_group_and_sorts_by_name() {
        let mut r = Registry::default();
        for d in [
            domain("b-persistent", true, true),
            domain("a-transient", false, false),
        ] {
            r.domains.insert(d.config.uuid, d);
        }
        use flags::list::*;
        assert_eq!(
            names(r.list(0).expect("all")),
            ["a-transient", "b-persistent"]
        );
        assert_eq!(names(r.list(PERSISTENT).expect("p")), ["b-persistent"]);
        assert_eq!(
            names(r.list(TRANSIENT | AUTOSTART).expect("t")),
            Vec::<String>::new()
        );
        assert_eq!(names(r.list(INACTIVE | SHUTOFF).expect("off")).len(), 2);
        assert!(r.list(ACTIVE).expect("active").is_empty());
        assert!(r.list(MANAGEDSAVE).expect("none saved").is_empty());
        assert!(r.list(1 << 20).is_err());
    }

    #[test]
    fn clashing_names_and_uuids_are_refused() {
        let mut r = Registry::default();
        let d = domain("web", true, false);
        let mut same_uuid = d.config.clone();
        same_uuid.name = "other".into();
        let mut same_name = d.config.clone();
        same_name.uuid = Uuid::new_v4();
        let update = d.config.clone();
        r.domains.insert(d.config.uuid, d);
        assert!(matches!(
            r.check_duplicates(&same_uuid),
            Err(Error::DomainExists { .. })
        ));
        assert!(matches!(
            r.check_duplicates(&same_name),
            Err(Error::DomainExists { .. })
        ));
        assert!(r.check_duplicates(&update).expect("update"));
    }
}
