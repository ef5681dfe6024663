//! migrated-driver-test: the in-process test hypervisor (`test:///default`).
//!
//! Guests live inside the daemon process with real state: persistent (defined)
//! and transient domains, ids increasing from 1, state and reason, autostart,
//! info (memory, vCPUs, CPU time advancing while running) and a lifecycle event
//! for every change. A running guest owns real memory ([`GuestMemory`]): 4 KiB
//! pages of the size its XML declares, allocated on first write, with a dirty
//! bitmap, and optionally a workload thread ([`workload`]) that dirties pages at
//! the rate its metadata asks for — so migration is live and measurable.
//!
//! # Persistence
//!
//! Persistent configs are stored under `<state_dir>/test/domains/<uuid>.xml`
//! (autostart marks under `<state_dir>/test/autostart/`), each written
//! atomically. On start-up they are loaded **shut off**: running test guests
//! live in the daemon's memory and do not survive a daemon restart (their
//! memory contents are lost). Guests marked autostart are booted afresh.
//! A config file that cannot be read is skipped with a warning and left in place.
//!
//! # Migration
//!
//! The migration engine streams [`TestDriver::memory`] and drives the guest
//! through `incoming_*` (destination) and `outgoing_*` (source) transitions,
//! which own the states, reasons and events of each step.
//!
//! # Layering
//!
//! This crate implements [`migrated_core::driver::Driver`]; it never sees the
//! wire. Errors are `migrated_core::Error` with libvirt's codes.

mod guest;
pub mod memory;
pub mod migration;
mod registry;
mod screen;
mod stats;
mod store;
pub mod support;
pub mod workload;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use migrated_core::domain::{
    BlockInfo, BlockStats, CellMemory, ControlInfo, DomainEvent, DomainInfo, DomainRef,
    HostIdentity, InterfaceStats, IoThreadInfo, MemoryStat, NodeInfo, NodeMemory, SecurityModel,
    StateReason, VcpuInfo,
};
use migrated_core::driver::{Driver, DumpFormat, Screenshot};
use migrated_core::flags::{affect, check_flags};
use migrated_core::hotplug::Change;
use migrated_core::keycode::{self, Codeset};
use migrated_core::support::SupportTable;
use migrated_core::tune::{CpuStats, GuestTime, InterfaceAddresses};
use migrated_core::typed_params::TypedParams;
use migrated_core::xml::{DomainDef, MetadataTarget};
use migrated_core::{Error, Result};
use tokio::sync::broadcast;
use uuid::Uuid;

pub use memory::{GuestMemory, PageContent, PAGE_SIZE};

/// Memory of the fictional host this driver describes (as libvirt's test
/// driver: 16 GiB in 2 NUMA cells), KiB.
const HOST_MEMORY_KIB: u64 = 16 * 1024 * 1024;
/// NUMA cells of the fictional host.
const HOST_CELLS: u64 = 2;
/// Cores per socket of the fictional host; libvirt's test driver reports
/// per-CPU statistics for this many host CPUs.
const HOST_CORES: u32 = 2;

/// `virConnectGetSysinfo` of libvirt's test driver, word for word.
const SYSINFO: &str = "<sysinfo type='smbios'>
  <bios>
    <entry name='vendor'>LENOVO</entry>
    <entry name='version'>G4ETA1WW (2.61 )</entry>
    <entry name='date'>05/07/2014</entry>
    <entry name='release'>2.61</entry>
  </bios>
</sysinfo>
";
pub use migration::TestBackend;
pub use support::SUPPORT;
pub use workload::{Workload, WorkloadConfig};

use registry::Registry;
use store::Store;

/// Domain events buffered per subscriber before the oldest are dropped.
const EVENT_CAPACITY: usize = 1024;

/// The canonical URI of this driver.
pub const URI: &str = "test:///default";

/// The test driver. Cheap to clone; clones share the same guests.
#[derive(Clone)]
pub struct TestDriver {
    shared: Arc<Shared>,
}

struct Shared {
    host: HostIdentity,
    // A std mutex: every critical section is short and synchronous; work that
    // blocks (disk writes, joining a workload thread) runs on the blocking pool.
    registry: Mutex<Registry>,
    events: broadcast::Sender<DomainEvent>,
}

impl std::fmt::Debug for TestDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDriver")
            .field("host", &self.shared.host)
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn lock(&self) -> Result<MutexGuard<'_, Registry>> {
        self.registry
            .lock()
            .map_err(|_| Error::internal("test driver state is poisoned by an earlier panic"))
    }
}

impl TestDriver {
    /// Opens the driver: creates `<state_dir>/test/` if needed and loads the
    /// stored persistent configs (all shut off, autostart ones booted).
    ///
    /// # Errors
    /// [`Error::System`] if the state directory cannot be created or listed.
    pub fn new(state_dir: &Path, host: HostIdentity) -> Result<Self> {
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let registry = Registry::load(Store::open(state_dir)?, events.clone())?;
        Ok(Self {
            shared: Arc::new(Shared {
                host,
                registry: Mutex::new(registry),
                events,
            }),
        })
    }

    /// The channel behind [`Driver::subscribe_events`], for the migration
    /// manager's job events.
    pub(crate) fn event_sender(&self) -> broadcast::Sender<DomainEvent> {
        self.shared.events.clone()
    }

    /// The memory of a running guest, for the migration engine to stream.
    pub fn memory(&self, uuid: &Uuid) -> Option<Arc<GuestMemory>> {
        self.shared.lock().ok()?.memory(uuid)
    }

    /// Destination, Prepare: creates a paused incoming instance of `def` (event
    /// started/migrated) and returns it with its zeroed memory to fill.
    ///
    /// # Errors
    /// `VIR_ERR_OPERATION_FAILED` on a name/UUID clash, `VIR_ERR_OPERATION_INVALID` if
    /// the guest already runs here, `VIR_ERR_CONFIG_UNSUPPORTED` for memory the
    /// test driver cannot model.
    pub async fn incoming_prepare(&self, def: DomainDef) -> Result<(DomainRef, Arc<GuestMemory>)> {
        self.blocking(move |r| r.incoming_prepare(def)).await
    }

    /// Destination, Finish after a complete transfer: defines `persist` if given,
    /// then runs the guest (or leaves it paused when `paused`).
    ///
    /// # Errors
    /// `VIR_ERR_OPERATION_INVALID` if `dom` is not an incoming migration.
    pub async fn incoming_finish(
        &self,
        dom: &DomainRef,
        persist: Option<DomainDef>,
        paused: bool,
    ) -> Result<DomainRef> {
        let dom = dom.clone();
        self.blocking(move |r| r.incoming_finish(&dom, persist, paused))
            .await
    }

    /// Destination, Finish cancelled: kills the incoming instance (stopped/failed).
    ///
    /// # Errors
    /// `VIR_ERR_OPERATION_INVALID` if it is not running.
    pub async fn incoming_abort(&self, dom: &DomainRef) -> Result<()> {
        let dom = dom.clone();
        self.blocking(move |r| r.incoming_abort(&dom)).await
    }

    /// Source, before the final copy: pauses a running guest (suspended/migrated);
    /// returns once its workload has stopped writing.
    ///
    /// # Errors
    /// `VIR_ERR_OPERATION_INVALID` if it is not running.
    pub async fn outgoing_pause(&self, dom: &DomainRef) -> Result<()> {
        let dom = dom.clone();
        self.blocking(move |r| r.outgoing_pause(&dom)).await
    }

    /// Source, Confirm cancelled: resumes a guest paused by
    /// [`TestDriver::outgoing_pause`] and lifts any throttle.
    ///
    /// # Errors
    /// `VIR_ERR_OPERATION_INVALID` if it is not running.
    pub async fn outgoing_resume(&self, dom: &DomainRef) -> Result<()> {
        let dom = dom.clone();
        self.blocking(move |r| r.outgoing_resume(&dom)).await
    }

    /// Source, a cancelled or failed migration of a guest that ran when its
    /// job began: runs it again, an operator's pause included (see
    /// [`migrated_core::migration::resumes_after_migration`]); a guest no
    /// longer active is left alone.
    ///
    /// # Errors
    /// The registry's internal errors.
    pub async fn outgoing_restore(&self, dom: &DomainRef) -> Result<()> {
        let dom = dom.clone();
        self.blocking(move |r| r.outgoing_restore(&dom)).await
    }

    /// Source, Confirm after success: stops the guest (stopped/migrated) and,
    /// with `undefine`, removes its config.
    ///
    /// # Errors
    /// `VIR_ERR_OPERATION_INVALID` if it is not running; `VIR_ERR_SYSTEM_ERROR`
    /// if the config cannot be removed.
    pub async fn outgoing_complete(&self, dom: &DomainRef, undefine: bool) -> Result<()> {
        let dom = dom.clone();
        self.blocking(move |r| r.outgoing_complete(&dom, undefine))
            .await
    }

    /// A device hot-plug call (the store write runs on the blocking pool).
    async fn change_device(
        &self,
        dom: &DomainRef,
        change: Change,
        xml: &str,
        flags: u32,
    ) -> Result<()> {
        let (dom, xml) = (dom.clone(), xml.to_owned());
        self.blocking(move |r| r.change_device(&dom, change, &xml, flags))
            .await
    }

    /// Runs `f` on the registry on the blocking pool.
    async fn blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Registry) -> Result<T> + Send + 'static,
    {
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || f(&mut *shared.lock()?))
            .await
            .map_err(|e| Error::internal(format!("test driver task failed: {e}")))?
    }

    fn read<T>(&self, f: impl FnOnce(&Registry) -> Result<T>) -> Result<T> {
        f(&*self.shared.lock()?)
    }

    /// Runs `f` on the registry in place: for changes that touch no disk.
    fn update<T>(&self, f: impl FnOnce(&mut Registry) -> Result<T>) -> Result<T> {
        f(&mut *self.shared.lock()?)
    }
}

fn capabilities_xml(host: &HostIdentity) -> String {
    format!(
        "<capabilities>\n  <host>\n    <uuid>{}</uuid>\n    <cpu>\n      <arch>x86_64</arch>\n    \
         </cpu>\n  </host>\n  <guest>\n    <os_type>hvm</os_type>\n    <arch name='x86_64'>\n      \
         <wordsize>64</wordsize>\n      <domain type='test'/>\n    </arch>\n  </guest>\n\
         </capabilities>\n",
        host.uuid
    )
}

/// The crate version as `major·1 000 000 + minor·1 000 + micro`.
fn version_number() -> u64 {
    let part = |s: &str| s.parse::<u64>().unwrap_or(0);
    part(env!("CARGO_PKG_VERSION_MAJOR")) * 1_000_000
        + part(env!("CARGO_PKG_VERSION_MINOR")) * 1_000
        + part(env!("CARGO_PKG_VERSION_PATCH"))
}

#[async_trait]
impl Driver for TestDriver {
    fn support(&self) -> &'static SupportTable {
        &SUPPORT
    }

    async fn list_all_domains(&self, flags: u32) -> Result<Vec<DomainRef>> {
        self.read(|r| r.list(flags))
    }

    async fn lookup_by_name(&self, name: &str) -> Result<DomainRef> {
        self.read(|r| r.by_name(name))
    }

    async fn lookup_by_uuid(&self, uuid: &Uuid) -> Result<DomainRef> {
        self.read(|r| r.by_uuid(uuid))
    }

    async fn lookup_by_id(&self, id: i32) -> Result<DomainRef> {
        self.read(|r| r.by_id(id))
    }

    async fn get_info(&self, dom: &DomainRef) -> Result<DomainInfo> {
        self.read(|r| r.info(dom))
    }

    async fn get_state(&self, dom: &DomainRef, flags: u32) -> Result<StateReason> {
        self.read(|r| r.state(dom, flags))
    }

    async fn vcpu_info(&self, dom: &DomainRef) -> Result<Vec<VcpuInfo>> {
        let host_cpus = u32::try_from(self.node_info().await?.cpus).unwrap_or(1);
        self.read(|r| Ok(r.live(dom)?.vcpus(host_cpus)))
    }

    async fn memory_stats(&self, dom: &DomainRef) -> Result<Vec<MemoryStat>> {
        self.read(|r| Ok(r.live(dom)?.memory_stats()))
    }

    async fn block_stats(&self, dom: &DomainRef, disk: &str) -> Result<BlockStats> {
        if disk.is_empty() {
            return Err(Error::OperationUnsupported {
                reason: "summary statistics are not supported yet".into(),
            });
        }
        self.read(|r| {
            r.live(dom)?.def.devices.disk_for(disk)?;
            Ok(stats::block())
        })
    }

    async fn block_info(&self, dom: &DomainRef, disk: &str) -> Result<BlockInfo> {
        self.read(|r| {
            let guest = r.get(dom)?;
            let def = guest.live.as_ref().map_or(&guest.config, |l| &l.def);
            def.devices.assigned_disk(disk)?;
            Ok(stats::BLOCK_INFO)
        })
    }

    async fn interface_stats(&self, dom: &DomainRef, device: &str) -> Result<InterfaceStats> {
        self.read(|r| {
            r.live(dom)?.def.devices.interface_for(device)?;
            Ok(stats::interface())
        })
    }

    async fn get_os_type(&self, dom: &DomainRef) -> Result<String> {
        self.read(|r| Ok(r.get(dom)?.config.os.os_type.clone()))
    }

    async fn get_xml_desc(&self, dom: &DomainRef, flags: u32) -> Result<String> {
        self.read(|r| r.xml_desc(dom, flags))
    }

    async fn define_xml(&self, xml: &str, flags: u32) -> Result<DomainRef> {
        let xml = xml.to_owned();
        self.blocking(move |r| r.define(&xml, flags)).await
    }

    async fn undefine(&self, dom: &DomainRef, flags: u32) -> Result<()> {
        let dom = dom.clone();
        self.blocking(move |r| r.undefine(&dom, flags)).await
    }

    async fn create(&self, dom: &DomainRef, flags: u32) -> Result<DomainRef> {
        let dom = dom.clone();
        self.blocking(move |r| r.start(&dom, flags)).await
    }

    async fn create_xml(&self, xml: &str, flags: u32) -> Result<DomainRef> {
        let xml = xml.to_owned();
        self.blocking(move |r| r.create_xml(&xml, flags)).await
    }

    async fn destroy(&self, dom: &DomainRef, flags: u32) -> Result<()> {
        let dom = dom.clone();
        self.blocking(move |r| r.destroy(&dom, flags)).await
    }

    async fn suspend(&self, dom: &DomainRef) -> Result<()> {
        let dom = dom.clone();
        self.blocking(move |r| r.suspend(&dom)).await
    }

    async fn resume(&self, dom: &DomainRef) -> Result<()> {
        let dom = dom.clone();
        self.blocking(move |r| r.resume(&dom)).await
    }

    async fn shutdown(&self, dom: &DomainRef, flags: u32) -> Result<()> {
        let dom = dom.clone();
        self.blocking(move |r| r.shutdown(&dom, flags)).await
    }

    async fn reset(&self, dom: &DomainRef) -> Result<()> {
        // As libvirt's test driver: nothing to reset in a simulated guest,
        // but only a running (or paused) one can be.
        self.read(|r| {
            if r.get(dom)?.is_active() {
                Ok(())
            } else {
                Err(Error::invalid("domain is not running"))
            }
        })
    }

    async fn reboot(&self, dom: &DomainRef, flags: u32) -> Result<()> {
        let dom = dom.clone();
        self.blocking(move |r| r.reboot(&dom, flags)).await
    }

    async fn inject_nmi(&self, dom: &DomainRef) -> Result<()> {
        // As libvirt's test driver: a running (or paused) guest takes it
        // and nothing happens.
        self.reset(dom).await
    }

    async fn control_info(&self, dom: &DomainRef) -> Result<ControlInfo> {
        self.read(|r| r.control_info(dom))
    }

    async fn iothread_info(&self, dom: &DomainRef, flags: u32) -> Result<Vec<IoThreadInfo>> {
        check_flags(
            "virDomainGetIOThreadInfo",
            u64::from(flags),
            u64::from(affect::LIVE | affect::CONFIG),
        )?;
        // The domain XML model has no <iothreads>: the definition either
        // flag picks has none.
        self.read(|r| {
            let domain = r.get(dom)?;
            affect::resolve_one(
                "virDomainGetIOThreadInfo",
                flags,
                domain.is_active(),
                domain.persistent,
            )?;
            Ok(Vec::new())
        })
    }

    async fn send_key(
        &self,
        dom: &DomainRef,
        codeset: Codeset,
        _holdtime: u32,
        keycodes: &[u32],
    ) -> Result<()> {
        // libvirt's test driver presses nothing, but refuses a code its
        // codeset has no key for.
        self.reset(dom).await?;
        match keycodes
            .iter()
            .find(|&&code| keycode::translate(codeset, codeset, code).is_none())
        {
            Some(code) => Err(Error::internal(format!(
                "invalid keycode {code} of {codeset} codeset"
            ))),
            None => Ok(()),
        }
    }

    async fn get_autostart(&self, dom: &DomainRef) -> Result<bool> {
        self.read(|r| Ok(r.get(dom)?.autostart))
    }

    async fn set_autostart(&self, dom: &DomainRef, autostart: bool) -> Result<()> {
        let dom = dom.clone();
        self.blocking(move |r| r.set_autostart(&dom, autostart))
            .await
    }

    async fn is_active(&self, dom: &DomainRef) -> Result<bool> {
        self.read(|r| Ok(r.get(dom)?.is_active()))
    }

    async fn is_persistent(&self, dom: &DomainRef) -> Result<bool> {
        self.read(|r| Ok(r.get(dom)?.persistent))
    }

    async fn has_managed_save(&self, dom: &DomainRef, flags: u32) -> Result<bool> {
        migrated_core::flags::check_flags("virDomainHasManagedSaveImage", u64::from(flags), 0)?;
        self.read(|r| Ok(r.get(dom)?.managed_save.is_some()))
    }

    async fn managed_save(&self, dom: &DomainRef, flags: u32) -> Result<()> {
        let dom = dom.clone();
        self.blocking(move |r| r.managed_save(&dom, flags)).await
    }

    async fn managed_save_remove(&self, dom: &DomainRef, flags: u32) -> Result<()> {
        let dom = dom.clone();
        self.blocking(move |r| r.managed_save_remove(&dom, flags))
            .await
    }

    async fn set_metadata(
        &self,
        dom: &DomainRef,
        target: &MetadataTarget,
        value: Option<&str>,
        flags: u32,
    ) -> Result<()> {
        let (dom, target, value) = (dom.clone(), target.clone(), value.map(str::to_owned));
        self.blocking(move |r| r.set_metadata(&dom, &target, value.as_deref(), flags))
            .await
    }

    async fn get_metadata(
        &self,
        dom: &DomainRef,
        target: &MetadataTarget,
        flags: u32,
    ) -> Result<String> {
        self.read(|r| r.get_metadata(dom, target, flags))
    }

    async fn attach_device(&self, dom: &DomainRef, xml: &str, flags: u32) -> Result<()> {
        self.change_device(dom, Change::Attach, xml, flags).await
    }

    async fn detach_device(&self, dom: &DomainRef, xml: &str, flags: u32) -> Result<()> {
        self.change_device(dom, Change::Detach, xml, flags).await
    }

    async fn update_device(&self, dom: &DomainRef, xml: &str, flags: u32) -> Result<()> {
        self.change_device(dom, Change::Update, xml, flags).await
    }

    async fn set_memory(&self, dom: &DomainRef, kib: u64, flags: u32) -> Result<()> {
        let dom = dom.clone();
        self.blocking(move |r| r.set_memory(&dom, kib, flags)).await
    }

    async fn set_memory_stats_period(
        &self,
        dom: &DomainRef,
        period: i32,
        flags: u32,
    ) -> Result<()> {
        let dom = dom.clone();
        self.blocking(move |r| r.set_memory_stats_period(&dom, period, flags))
            .await
    }

    async fn set_vcpus(&self, dom: &DomainRef, count: u32, flags: u32) -> Result<()> {
        let dom = dom.clone();
        self.blocking(move |r| r.set_vcpus(&dom, count, flags))
            .await
    }

    async fn rename(&self, dom: &DomainRef, new_name: &str, flags: u32) -> Result<DomainRef> {
        let (dom, new_name) = (dom.clone(), new_name.to_owned());
        self.blocking(move |r| r.rename(&dom, &new_name, flags))
            .await
    }

    async fn save(&self, dom: &DomainRef, to: &str, dxml: Option<&str>, flags: u32) -> Result<()> {
        let (dom, to, dxml) = (dom.clone(), PathBuf::from(to), dxml.map(str::to_owned));
        self.blocking(move |r| r.save(&dom, &to, dxml.as_deref(), flags))
            .await
    }

    async fn core_dump(
        &self,
        dom: &DomainRef,
        to: &str,
        format: DumpFormat,
        flags: u32,
    ) -> Result<()> {
        let (dom, to) = (dom.clone(), PathBuf::from(to));
        self.blocking(move |r| r.core_dump(&dom, &to, format, flags))
            .await
    }

    async fn screenshot(&self, dom: &DomainRef, screen: u32, flags: u32) -> Result<Screenshot> {
        self.shared.lock()?.screenshot(dom, screen, flags)
    }

    async fn restore(&self, from: &str, dxml: Option<&str>, flags: u32) -> Result<()> {
        let (from, dxml) = (PathBuf::from(from), dxml.map(str::to_owned));
        self.blocking(move |r| r.restore(&from, dxml.as_deref(), flags).map(drop))
            .await
    }

    async fn save_image_xml(&self, file: &str, flags: u32) -> Result<String> {
        // The image alone, no guest: as libvirt's testDomainSaveImageGetXMLDesc.
        registry::SAVE_IMAGE.xml(Path::new(file), flags, "virDomainSaveImageGetXMLDesc")
    }

    async fn save_image_define_xml(&self, file: &str, dxml: &str, flags: u32) -> Result<()> {
        registry::SAVE_IMAGE.define_xml(
            Path::new(file),
            Some(dxml),
            flags,
            "virDomainSaveImageDefineXML",
        )
    }

    async fn snapshot_create(&self, dom: &DomainRef, xml: &str, flags: u32) -> Result<String> {
        let (dom, xml) = (dom.clone(), xml.to_owned());
        self.blocking(move |r| r.snapshot_create(&dom, &xml, flags))
            .await
    }

    async fn snapshot_list(
        &self,
        dom: &DomainRef,
        of: Option<&str>,
        flags: u32,
    ) -> Result<Vec<String>> {
        self.read(|r| r.snapshot_list(dom, of, flags))
    }

    async fn snapshot_lookup(&self, dom: &DomainRef, name: &str, flags: u32) -> Result<()> {
        self.read(|r| r.snapshot_lookup(dom, name, flags))
    }

    async fn snapshot_xml(&self, dom: &DomainRef, name: &str, flags: u32) -> Result<String> {
        self.read(|r| r.snapshot_xml(dom, name, flags))
    }

    async fn snapshot_current(&self, dom: &DomainRef, flags: u32) -> Result<Option<String>> {
        self.read(|r| r.snapshot_current(dom, flags))
    }

    async fn snapshot_parent(&self, dom: &DomainRef, name: &str, flags: u32) -> Result<String> {
        self.read(|r| r.snapshot_parent(dom, name, flags))
    }

    async fn snapshot_revert(&self, dom: &DomainRef, name: &str, flags: u32) -> Result<()> {
        let (dom, name) = (dom.clone(), name.to_owned());
        self.blocking(move |r| r.snapshot_revert(&dom, &name, flags))
            .await
    }

    async fn snapshot_delete(&self, dom: &DomainRef, name: &str, flags: u32) -> Result<()> {
        let (dom, name) = (dom.clone(), name.to_owned());
        self.blocking(move |r| r.snapshot_delete(&dom, &name, flags))
            .await
    }

    async fn capabilities(&self) -> Result<String> {
        Ok(capabilities_xml(&self.shared.host))
    }

    async fn sysinfo(&self) -> Result<String> {
        // The fixed description libvirt's test driver answers.
        Ok(SYSINFO.to_owned())
    }

    async fn scheduler_type(&self, dom: &DomainRef) -> Result<(String, i32)> {
        self.read(|r| r.scheduler_type(dom))
    }

    async fn scheduler_parameters(&self, dom: &DomainRef, flags: u32) -> Result<TypedParams> {
        self.read(|r| r.scheduler_parameters(dom, flags))
    }

    async fn set_scheduler_parameters(
        &self,
        dom: &DomainRef,
        params: &TypedParams,
        flags: u32,
    ) -> Result<()> {
        self.read(|r| r.set_scheduler_parameters(dom, params, flags))
    }

    async fn memory_parameters(&self, dom: &DomainRef, flags: u32) -> Result<TypedParams> {
        self.read(|r| r.memory_parameters(dom, flags))
    }

    async fn set_memory_parameters(
        &self,
        dom: &DomainRef,
        params: &TypedParams,
        flags: u32,
    ) -> Result<()> {
        // A config change writes the stored definition: off the runtime.
        let (dom, params) = (dom.clone(), params.clone());
        self.blocking(move |r| r.set_memory_parameters(&dom, &params, flags))
            .await
    }

    async fn cpu_stats(&self, dom: &DomainRef, flags: u32) -> Result<CpuStats> {
        self.read(|r| r.cpu_stats(dom, flags, HOST_CORES))
    }

    async fn guest_hostname(&self, dom: &DomainRef, flags: u32) -> Result<String> {
        self.read(|r| r.guest_hostname(dom, flags))
    }

    async fn guest_time(&self, dom: &DomainRef, flags: u32) -> Result<GuestTime> {
        self.read(|r| r.guest_time(dom, flags))
    }

    async fn set_guest_time(&self, dom: &DomainRef, time: GuestTime, flags: u32) -> Result<()> {
        self.update(|r| r.set_guest_time(dom, time, flags))
    }

    async fn blkio_parameters(&self, dom: &DomainRef, flags: u32) -> Result<TypedParams> {
        self.read(|r| r.blkio_parameters(dom, flags))
    }

    async fn set_blkio_parameters(
        &self,
        dom: &DomainRef,
        params: &TypedParams,
        flags: u32,
    ) -> Result<()> {
        // A config change writes the stored definition: off the runtime.
        let (dom, params) = (dom.clone(), params.clone());
        self.blocking(move |r| r.set_blkio_parameters(&dom, &params, flags))
            .await
    }

    async fn block_io_tune(
        &self,
        dom: &DomainRef,
        disk: Option<&str>,
        flags: u32,
    ) -> Result<TypedParams> {
        self.read(|r| r.block_io_tune(dom, disk, flags))
    }

    async fn set_block_io_tune(
        &self,
        dom: &DomainRef,
        disk: &str,
        params: &TypedParams,
        flags: u32,
    ) -> Result<()> {
        let (dom, disk, params) = (dom.clone(), disk.to_owned(), params.clone());
        self.blocking(move |r| r.set_block_io_tune(&dom, &disk, &params, flags))
            .await
    }

    async fn numa_parameters(&self, dom: &DomainRef, flags: u32) -> Result<TypedParams> {
        self.read(|r| r.numa_parameters(dom, flags))
    }

    async fn set_numa_parameters(
        &self,
        dom: &DomainRef,
        params: &TypedParams,
        flags: u32,
    ) -> Result<()> {
        let (dom, params) = (dom.clone(), params.clone());
        self.blocking(move |r| r.set_numa_parameters(&dom, &params, flags))
            .await
    }

    async fn interface_parameters(
        &self,
        dom: &DomainRef,
        device: &str,
        flags: u32,
    ) -> Result<TypedParams> {
        self.read(|r| r.interface_parameters(dom, device, flags))
    }

    async fn set_interface_parameters(
        &self,
        dom: &DomainRef,
        device: &str,
        params: &TypedParams,
        flags: u32,
    ) -> Result<()> {
        let (dom, device, params) = (dom.clone(), device.to_owned(), params.clone());
        self.blocking(move |r| r.set_interface_parameters(&dom, &device, &params, flags))
            .await
    }

    async fn interface_addresses(
        &self,
        dom: &DomainRef,
        source: u32,
        flags: u32,
    ) -> Result<Vec<InterfaceAddresses>> {
        self.read(|r| r.interface_addresses(dom, source, flags))
    }

    async fn perf_events(&self, dom: &DomainRef, flags: u32) -> Result<TypedParams> {
        self.read(|r| r.perf_events(dom, flags))
    }

    async fn set_perf_events(
        &self,
        dom: &DomainRef,
        params: &TypedParams,
        flags: u32,
    ) -> Result<()> {
        let (dom, params) = (dom.clone(), params.clone());
        self.blocking(move |r| r.set_perf_events(&dom, &params, flags))
            .await
    }

    async fn node_info(&self) -> Result<NodeInfo> {
        // The same fictional host libvirt's own test driver describes.
        Ok(NodeInfo {
            model: "x86_64".into(),
            memory_kib: HOST_MEMORY_KIB,
            cpus: 16,
            mhz: 1400,
            nodes: HOST_CELLS as i32,
            sockets: 2,
            cores: HOST_CORES as i32,
            threads: 2,
        })
    }

    async fn node_memory(&self) -> Result<NodeMemory> {
        // The fictional host's cells share its memory equally; running
        // guests take theirs from the first cells first.
        let mut used = self.read(|r| Ok(r.running_memory_kib()))?;
        let per_cell = HOST_MEMORY_KIB / HOST_CELLS;
        let cells: Vec<CellMemory> = (0..HOST_CELLS)
            .map(|_| {
                let taken = used.min(per_cell);
                used -= taken;
                CellMemory {
                    total_kib: per_cell,
                    free_kib: per_cell - taken,
                }
            })
            .collect();
        Ok(NodeMemory {
            total_kib: HOST_MEMORY_KIB,
            free_kib: cells.iter().map(|c| c.free_kib).sum(),
            buffers_kib: 0,
            cached_kib: 0,
            cells,
        })
    }

    async fn node_security_model(&self) -> Result<SecurityModel> {
        Ok(SecurityModel::default())
    }

    async fn hypervisor_version(&self) -> Result<u64> {
        Ok(version_number())
    }

    async fn get_type(&self) -> Result<String> {
        // libvirt's testConnectGetType: upper case, unlike the driver's
        // name in messages and the support matrix.
        Ok("TEST".to_owned())
    }

    async fn uri(&self) -> Result<String> {
        Ok(URI.to_owned())
    }

    fn subscribe_events(&self) -> Result<broadcast::Receiver<DomainEvent>> {
        Ok(self.shared.events.subscribe())
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod snapshot_tests;
