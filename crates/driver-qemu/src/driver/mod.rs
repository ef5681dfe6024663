//! [`QemuDriver`]: core's `Driver` trait over real QEMU processes.
//!
//! State lives in a registry behind a std mutex that is only held for
//! short, non-blocking sections; each domain also has a job lock (an async
//! mutex) that serializes its lifecycle operations across QEMU and QMP
//! calls. Every running guest has an event task that follows QMP events
//! (STOP, RESUME, SHUTDOWN) and the pidfd of its QEMU, so the state is right
//! whoever caused the change, and turns QEMU's exit into "shut off" with the
//! right reason: the one the driver recorded before stopping it (destroyed,
//! migrated, saved), "shutdown" after a guest SHUTDOWN, "crashed" otherwise.
//!
//! Guests outlive the daemon: [`QemuDriver::open`] reads the status files
//! (`<runtime_dir>/qemu/<name>.json`), re-attaches to every QEMU that still
//! runs (pidfd + QMP) and records the others as crashed.

mod abi;
mod agent;
mod api;
mod balloon_stats;
mod console;
mod domcaps;
mod dump;
mod host;
mod host_stats;
mod hotplug;
mod ifaddr;
mod iotune;
mod job_lock;
mod managed;
mod memory;
mod metadata;
mod monitor;
mod passthrough;
mod power;
mod qmp_events;
mod registry;
mod save;
mod snapshot;
mod vcpus;

use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use migrated_core::console::ConsoleLocks;
use migrated_core::domain::{
    event_detail, paused_reason, running_reason, shutoff_reason, DomainEvent, DomainEventKind,
    DomainRef, DomainState, HostIdentity, LifecycleEvent, StateReason,
};
use migrated_core::job::LocalJobs;
use migrated_core::migration::resumes_after_migration;
use migrated_core::qemu_monitor::MonitorEvent;
use migrated_core::xml::{
    CharSource, CharType, DomainDef, DomainType, FormatOptions, GraphicsType,
};
use migrated_core::{Error, Result};
use tokio::sync::{broadcast, OnceCell};
use tracing::{info, warn};
use uuid::Uuid;

use crate::process::{launch, LaunchPaths, QemuProcess};
use crate::qmp::commands::{
    Balloon, Cont, MigrationStatus, QueryChardev, QueryMigrate, QuerySpice, QueryStatus, QueryVnc,
    RunState,
};
use crate::qmp::{Qmp, QmpConfig};
use crate::spec::{add_console_compat, has_balloon, launch_spec, set_aliases};
use crate::status::{RecordedState, StatusFile, STATUS_VERSION};
use crate::store::Store;
use crate::tls::MigrationTls;
use job_lock::JobLock;
use monitor::spawn_monitor;
use registry::{Domain, Live, Registry, Runtime, StopIntent};

/// The canonical URI of this driver.
pub const URI: &str = "qemu:///system";

/// Domain events buffered per subscriber.
const EVENT_CAPACITY: usize = 1024;

/// How long a graceful destroy waits for QEMU to exit after SIGTERM.
const GRACEFUL_TIMEOUT: Duration = Duration::from_secs(10);

/// A post-copy state change of a migrating guest
/// ([`QemuDriver::mark_postcopy`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PostcopyMark {
    /// The source switched: the destination runs the guest.
    SourceActive,
    /// The source's post-copy stream broke.
    SourceFailed,
    /// The destination's post-copy stream broke.
    DestinationFailed,
    /// The destination's broken post-copy stream was recovered: pages flow
    /// again.
    DestinationResumed,
    /// The destination received the last page.
    DestinationCompleted,
}

/// Which end of a post-copy migration a guest is
/// ([`QemuDriver::check_postcopy_resumable`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PostcopyEnd {
    /// The source: paused, its memory stale.
    Source,
    /// The destination: running, pulling the missing pages.
    Destination,
}

/// Whether `state` is a post-copy source's (paused "post-copy" or
/// "post-copy failed"): its memory is stale and it must not run.
pub(crate) fn is_postcopy_source(state: StateReason) -> bool {
    state.state == DomainState::Paused
        && matches!(
            state.reason,
            paused_reason::POSTCOPY | paused_reason::POSTCOPY_FAILED
        )
}

/// Whether `state` is a post-copy destination's (running "post-copy" or
/// "post-copy failed"): it holds the only up-to-date copy of the guest.
pub(crate) fn is_postcopy_destination(state: StateReason) -> bool {
    state.state == DomainState::Running
        && matches!(
            state.reason,
            running_reason::POSTCOPY | running_reason::POSTCOPY_FAILED
        )
}

/// The refusal to run a post-copy source again.
pub(crate) fn postcopy_source_stale() -> Error {
    Error::invalid(
        "the domain switched to post-copy migration: its memory on this host is stale, so it \
         cannot run here; recover the migration (migrate --postcopy --postcopy-resume) or \
         destroy this copy",
    )
}

/// Where the driver keeps its files and how it talks to QEMU.
#[derive(Debug, Clone)]
pub struct QemuConfig {
    /// Persistent configs: `<state_dir>/qemu/`.
    pub state_dir: PathBuf,
    /// Status files, QMP sockets, pidfiles: `<runtime_dir>/qemu/`.
    pub runtime_dir: PathBuf,
    /// QEMU's per-guest logs (stderr).
    pub log_dir: PathBuf,
    /// QMP limits and timeouts.
    pub qmp: QmpConfig,
    /// Compress save images with zstd.
    pub save_zstd: bool,
    /// Credentials of QEMU-native TLS on migration streams (`VIR_MIGRATE_TLS`).
    pub migration_tls: MigrationTls,
}

impl QemuConfig {
    /// The layout under one state and one runtime directory (logs in
    /// `<state_dir>/qemu/log`).
    pub fn new(state_dir: impl Into<PathBuf>, runtime_dir: impl Into<PathBuf>) -> Self {
        let state_dir = state_dir.into();
        Self {
            log_dir: state_dir.join("qemu").join("log"),
            state_dir,
            runtime_dir: runtime_dir.into(),
            qmp: QmpConfig::default(),
            save_zstd: true,
            migration_tls: MigrationTls::default(),
        }
    }
}

/// The QEMU driver. Cheap to clone; clones share the same guests. Dropping
/// the last clone stops watching guests but leaves them running.
#[derive(Clone)]
pub struct QemuDriver {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for QemuDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QemuDriver")
            .field("runtime_dir", &self.shared.config.runtime_dir)
            .finish_non_exhaustive()
    }
}

struct Shared {
    config: QemuConfig,
    host: HostIdentity,
    store: Store,
    registry: Mutex<Registry>,
    events: broadcast::Sender<DomainEvent>,
    /// Every QMP event of every run, for `qemu-monitor-event` clients.
    monitor_events: broadcast::Sender<MonitorEvent>,
    next_id: AtomicI32,
    version: OnceCell<u64>,
    /// Who holds each guest's console.
    consoles: ConsoleLocks,
    /// Dumps running now and the last one's statistics, per guest.
    jobs: LocalJobs,
}

impl Shared {
    fn lock(&self) -> Result<MutexGuard<'_, Registry>> {
        self.registry
            .lock()
            .map_err(|_| Error::internal("qemu driver state is poisoned by an earlier panic"))
    }

    fn emit(&self, dom: DomainRef, event: LifecycleEvent, detail: i32) {
        // No subscriber is not an error.
        let _ = self.events.send(DomainEvent::lifecycle(dom, event, detail));
    }

    /// Sends an event about `dom` as it is now, running or not.
    fn emit_event(&self, dom: DomainRef, kind: DomainEventKind) {
        // No subscriber is not an error.
        let _ = self.events.send(DomainEvent { dom, kind });
    }

    /// Sends a non-lifecycle event about the run `id` of `uuid`, if that is
    /// still the current run.
    fn emit_kind(&self, uuid: &Uuid, id: i32, kind: DomainEventKind) {
        let dom = self.lock().ok().and_then(|reg| {
            reg.domains
                .get(uuid)
                .filter(|d| d.live.as_ref().is_some_and(|l| l.id == id))
                .map(Domain::dom_ref)
        });
        if let Some(dom) = dom {
            // No subscriber is not an error.
            let _ = self.events.send(DomainEvent { dom, kind });
        }
    }

    /// Records a new run state if `id` is still the current run; emits the
    /// event and rewrites the status file only on an actual change.
    fn set_state(
        &self,
        uuid: &Uuid,
        id: i32,
        state: StateReason,
        event: Option<(LifecycleEvent, i32)>,
    ) {
        self.record_state(uuid, id, state, event, |old| old.state != state.state);
    }

    /// Records `state` for run `id` when its state or reason differs (a
    /// post-copy migration changes only the reason), then emits `event`.
    fn set_state_reason(
        &self,
        uuid: &Uuid,
        id: i32,
        state: StateReason,
        event: Option<(LifecycleEvent, i32)>,
    ) {
        self.record_state(uuid, id, state, event, |old| old != state);
    }

    /// Records `state` for run `id` when `changed` says the recorded one
    /// differs: rewrites the status file, then emits `event`.
    fn record_state(
        &self,
        uuid: &Uuid,
        id: i32,
        state: StateReason,
        event: Option<(LifecycleEvent, i32)>,
        changed: impl FnOnce(StateReason) -> bool,
    ) {
        let Ok(mut reg) = self.lock() else { return };
        let Some(domain) = reg.domains.get_mut(uuid) else {
            return;
        };
        let persistent = domain.persistent;
        let Some(live) = domain.live.as_mut().filter(|l| l.id == id) else {
            return;
        };
        if !changed(live.state) {
            return;
        }
        live.state = state;
        if let Err(e) = status_of(live, persistent).write(&self.config.runtime_dir) {
            warn!(error = %e.chain(), "cannot update status file");
        }
        let dom = domain.dom_ref();
        drop(reg);
        if let Some((event, detail)) = event {
            self.emit(dom, event, detail);
        }
    }

    /// Pauses run `id` of `uuid` for `reason` (`paused_reason::SAVE`,
    /// `DUMP`): the state is recorded before `stop` so the STOP event finds
    /// it done; if `stop` fails the state goes back to `was`.
    async fn pause_for(
        &self,
        qmp: &Qmp,
        uuid: &Uuid,
        id: i32,
        was: StateReason,
        reason: i32,
    ) -> crate::error::Result<()> {
        self.pause_with(qmp, uuid, id, was, reason, event_detail::SUSPENDED_PAUSED)
            .await
    }

    /// As [`Shared::pause_for`], the Suspended event with `detail`.
    async fn pause_with(
        &self,
        qmp: &Qmp,
        uuid: &Uuid,
        id: i32,
        was: StateReason,
        reason: i32,
        detail: i32,
    ) -> crate::error::Result<()> {
        self.set_state(
            uuid,
            id,
            StateReason {
                state: DomainState::Paused,
                reason,
            },
            Some((LifecycleEvent::Suspended, detail)),
        );
        let stopped = qmp.execute(&crate::qmp::commands::Stop).await.map(drop);
        if stopped.is_err() {
            self.force_state(uuid, id, was);
        }
        stopped
    }

    /// Runs run `id` of `uuid` again (`cont`) and records it running,
    /// unpaused, with the Resumed event.
    async fn unpause(&self, qmp: &Qmp, uuid: &Uuid, id: i32) -> crate::error::Result<()> {
        qmp.execute(&Cont).await?;
        self.set_unpaused(uuid, id);
        Ok(())
    }

    /// Records run `id` of `uuid` running, unpaused, with the Resumed event
    /// (after our `cont`, or QEMU's RESUME event).
    fn set_unpaused(&self, uuid: &Uuid, id: i32) {
        self.set_state(
            uuid,
            id,
            StateReason {
                state: DomainState::Running,
                reason: running_reason::UNPAUSED,
            },
            Some((LifecycleEvent::Resumed, event_detail::RESUMED_UNPAUSED)),
        );
    }

    /// Records `state` for run `id` whatever it was, without an event.
    fn force_state(&self, uuid: &Uuid, id: i32, state: StateReason) {
        let Ok(mut reg) = self.lock() else { return };
        let Some(domain) = reg.domains.get_mut(uuid) else {
            return;
        };
        let persistent = domain.persistent;
        let Some(live) = domain.live.as_mut().filter(|l| l.id == id) else {
            return;
        };
        live.state = state;
        if let Err(e) = status_of(live, persistent).write(&self.config.runtime_dir) {
            warn!(error = %e.chain(), "cannot update status file");
        }
    }

    /// Turns the end of run `id` into "shut off": clears the live part,
    /// removes the run's files, drops a transient domain, emits `Stopped`.
    /// Idempotent: the event task and the stopping operation may both call it.
    fn finish_stop(&self, uuid: &Uuid, id: i32) {
        let Ok(mut reg) = self.lock() else { return };
        let Some(domain) = reg.domains.get_mut(uuid) else {
            return;
        };
        if domain.live.as_ref().map_or(true, |l| l.id != id) {
            return;
        }
        let dom = domain.dom_ref();
        let Some(live) = domain.live.take() else {
            return;
        };
        let runtime = Arc::clone(&live.runtime);
        let (reason, detail) = match runtime.intent() {
            Some(intent) => (intent.reason, intent.detail),
            None if runtime.guest_shutdown.load(Ordering::SeqCst) => {
                (shutoff_reason::SHUTDOWN, event_detail::STOPPED_SHUTDOWN)
            }
            // libvirt's QEMU driver, on a monitor EOF without a SHUTDOWN
            // event: state "shut off (crashed)", event "stopped (failed)".
            None => (shutoff_reason::CRASHED, event_detail::STOPPED_FAILED),
        };
        domain.shutoff_reason = reason;
        let transient = !domain.persistent;
        if transient {
            reg.domains.remove(uuid);
        }
        // Still under the lock (a few unlinks, no fsync, a channel send):
        // whichever of the event task and the stopping operation comes
        // second returns only once the files are gone and the event is out,
        // so a caller of destroy or Confirm never sees a stopped guest's
        // status file, and Confirm's JOB_COMPLETED follows the STOPPED event
        // as in libvirt.
        cleanup_run_files(&self.config.runtime_dir, &dom.name, &runtime.paths);
        info!(name = %dom.name, reason, "qemu guest stopped");
        self.emit(dom, LifecycleEvent::Stopped, detail);
        drop(reg);
        // Dropping the last Arc<Runtime> here (outside the lock) ends the
        // event task, possibly the one running this function.
        drop(live);
    }
}

/// Puts the port QEMU picked for an automatic VNC display into the live
/// definition, which migration cookies and `dumpxml` report.
async fn record_vnc_port(qmp: &Qmp, def: &mut DomainDef) {
    let Some(g) = def.devices.graphics.iter_mut().find(|g| {
        g.kind == GraphicsType::Vnc && (g.autoport == Some(true) || g.port.map_or(true, |p| p < 0))
    }) else {
        return;
    };
    match qmp.execute(&QueryVnc).await {
        Ok(info) => {
            if let Some(port) = info.service.and_then(|s| s.parse::<i32>().ok()) {
                g.port = Some(port);
            }
        }
        Err(e) => warn!(error = %e.chain(), "cannot read the vnc port"),
    }
}

/// Puts the pty QEMU allocated for serial port 0 into the live definition:
/// `<source path=…/>` of the pty serial port and console, and the console's
/// `tty`, as libvirt shows them (`virsh console` clients read them).
async fn record_pty_path(qmp: &Qmp, def: &mut DomainDef) {
    let devices = &mut def.devices;
    let is_pty = |c: &migrated_core::xml::CharDevice| c.kind == CharType::Pty;
    if !devices.serials.iter().chain(&devices.consoles).any(is_pty) {
        return;
    }
    let chardevs = match qmp.execute(&QueryChardev).await {
        Ok(chardevs) => chardevs,
        Err(e) => {
            warn!(error = %e.chain(), "cannot read the serial port's pty");
            return;
        }
    };
    let Some(path) = chardevs
        .iter()
        .find(|c| c.label == "charserial0")
        .and_then(|c| c.pty_path())
    else {
        return;
    };
    let serial = devices.serials.first_mut().into_iter();
    for (device, console) in serial
        .map(|s| (s, false))
        .chain(devices.consoles.iter_mut().map(|c| (c, true)))
        .filter(|(c, _)| is_pty(c))
    {
        device.source.get_or_insert_with(CharSource::default).path = Some(path.to_owned());
        if console {
            device.tty = Some(path.to_owned());
        }
    }
}

/// Puts the ports QEMU's SPICE server listens on (the automatic one was
/// chosen by [`crate::spec`]) into the live definition, for migration
/// cookies (graphics relocation) and `dumpxml`.
async fn record_spice_port(qmp: &Qmp, def: &mut DomainDef) {
    let Some(g) = def
        .devices
        .graphics
        .iter_mut()
        .find(|g| g.kind == GraphicsType::Spice)
    else {
        return;
    };
    match qmp.execute(&QuerySpice).await {
        Ok(info) => {
            if let Some(port) = info.port.and_then(|p| i32::try_from(p).ok()) {
                g.port = Some(port);
            }
            if let Some(port) = info.tls_port.and_then(|p| i32::try_from(p).ok()) {
                g.tls_port = Some(port);
            }
        }
        Err(e) => warn!(error = %e.chain(), "cannot read the spice ports"),
    }
}

/// Asks the balloon for the configured current size before the guest
/// runs, as libvirt's `qemuProcessSetupBalloon` (QEMU starts with all of
/// `<memory>`); nothing to do without a balloon or below the maximum.
async fn set_initial_balloon(qmp: &Qmp, def: &DomainDef) -> crate::error::Result<()> {
    if !has_balloon(def) || def.current_memory_kib >= def.memory_kib {
        return Ok(());
    }
    qmp.execute(&Balloon {
        value: def.current_memory_kib.saturating_mul(1024),
    })
    .await
    .map(|_| ())
}

fn cleanup_run_files(runtime_dir: &std::path::Path, name: &str, paths: &LaunchPaths) {
    for path in [&paths.qmp_socket, &paths.pidfile] {
        let _ = std::fs::remove_file(path);
    }
    // Sockets of channels QEMU could not remove (it was killed).
    let _ = std::fs::remove_dir_all(&paths.channel_dir);
    if let Err(e) = StatusFile::remove(runtime_dir, name) {
        warn!(error = %e.chain(), "cannot remove status file");
    }
}

fn status_of(live: &Live, persistent: bool) -> StatusFile {
    let (state, reason) = match live.state.state {
        DomainState::Paused => (RecordedState::Paused, live.state.reason),
        _ => (RecordedState::Running, live.state.reason),
    };
    StatusFile {
        version: STATUS_VERSION,
        name: live.def.name.clone(),
        uuid: live.def.uuid,
        id: live.id,
        pid: live.runtime.process.pid(),
        qmp_socket: live.runtime.paths.qmp_socket.clone(),
        log: live.runtime.paths.log.clone(),
        xml: live.def.format(&FormatOptions {
            secure: true,
            inactive: false,
            migratable: false,
        }),
        persistent,
        state,
        reason,
    }
}

/// How a guest is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StartMode {
    /// Boot and run (or stay paused when asked).
    Boot { paused: bool },
    /// `-incoming defer`: wait, paused, for `migrate-incoming`.
    Incoming,
    /// `-incoming defer` for a restore; `Started` is emitted once restored.
    Restore,
    /// Paused (from snapshot) for a snapshot revert to load its state
    /// into; `Started` (from snapshot) is emitted.
    Snapshot,
}

impl QemuDriver {
    /// Opens the driver: loads persistent configs, re-attaches to the guests
    /// recorded in status files, then boots autostart guests that are off.
    ///
    /// # Errors
    /// [`Error::System`] when the state or runtime directory is unusable.
    pub async fn open(config: QemuConfig, host: HostIdentity) -> Result<Self> {
        let store = Store::open(&config.state_dir)?;
        let mut registry = Registry::default();
        for mut stored in store.load()? {
            // A definition stored before addresses were assigned gets them
            // now, as libvirt's daemon does when it loads its configs.
            let before = stored.def.clone();
            match abi::complete(&mut stored.def, "virDomainDefineXML").await {
                Ok(()) if stored.def != before => {
                    if let Err(e) = store.save(&stored.def) {
                        warn!(name = %stored.def.name, error = %e.chain(), "cannot store the completed definition");
                    }
                }
                Ok(()) => {}
                Err(e) => {
                    warn!(name = %stored.def.name, error = %e, "definition kept without PCI addresses");
                }
            }
            let managed_save =
                managed::managed_save_path(&config.state_dir, &stored.def.name).exists();
            registry.domains.insert(
                stored.def.uuid,
                Domain {
                    config: stored.def,
                    persistent: true,
                    autostart: stored.autostart,
                    shutoff_reason: shutoff_reason::UNKNOWN,
                    managed_save,
                    live: None,
                    snapshots: stored.snapshots,
                    job: Arc::default(),
                },
            );
        }
        let driver = Self {
            shared: Arc::new(Shared {
                config,
                host,
                store,
                registry: Mutex::new(registry),
                events: broadcast::channel(EVENT_CAPACITY).0,
                monitor_events: broadcast::channel(EVENT_CAPACITY).0,
                next_id: AtomicI32::new(1),
                version: OnceCell::new(),
                consoles: ConsoleLocks::default(),
                jobs: LocalJobs::new(),
            }),
        };
        driver.reattach_all().await?;
        driver.autostart().await;
        Ok(driver)
    }

    /// The migration TLS credentials this driver was configured with.
    pub(crate) fn migration_tls(&self) -> &MigrationTls {
        &self.shared.config.migration_tls
    }

    /// The QMP monitor of a running guest, for the migration engine.
    ///
    /// # Errors
    /// `VIR_ERR_NO_DOMAIN`, `VIR_ERR_OPERATION_INVALID` when it is not running.
    pub fn qmp(&self, dom: &DomainRef) -> Result<Qmp> {
        Ok(self.runtime(dom)?.qmp.clone())
    }

    /// The pid of a running guest's QEMU.
    ///
    /// # Errors
    /// As [`QemuDriver::qmp`].
    pub fn pid(&self, dom: &DomainRef) -> Result<i32> {
        Ok(self.runtime(dom)?.process.pid())
    }

    /// Starts the guest of `xml` with `-incoming defer`, paused for
    /// migration, and returns it with its monitor; the caller sends
    /// `migrate-incoming`. The guest is transient unless a shut-off
    /// persistent domain with the same name and UUID is defined here, which
    /// then runs with `xml` as its live definition. A failed incoming guest
    /// is stopped with [`migrated_core::driver::Driver::destroy`] (a
    /// transient one disappears).
    ///
    /// # Errors
    /// As [`migrated_core::driver::Driver::create_xml`]; `VIR_ERR_OPERATION_INVALID`
    /// when the guest already runs here.
    pub async fn start_incoming(&self, xml: &str) -> Result<(DomainRef, Qmp)> {
        let def = parse_def(xml)?;
        let existing = {
            let reg = self.shared.lock()?;
            match reg.domains.get(&def.uuid) {
                Some(d) if d.live.is_some() => {
                    return Err(Error::invalid(format!(
                        "domain '{}' is already active",
                        d.config.name
                    )))
                }
                Some(d) if d.config.name == def.name && d.managed_save => {
                    return Err(migrated_core::migration::managed_save_on_destination(
                        &d.config.name,
                    ))
                }
                Some(d) if d.config.name == def.name => Some(d.dom_ref()),
                _ => None,
            }
        };
        let dom = match existing {
            Some(dom) => {
                let job = self.job(&dom)?;
                let _job = job
                    .acquire("remoteDispatchDomainMigratePrepare3Params")
                    .await?;
                self.start_locked(&dom, StartMode::Incoming, Some(def))
                    .await?
            }
            None => {
                // The source's definition as it is: its QEMU's hardware.
                let dom = self.add_transient(def)?;
                match self.start(&dom, StartMode::Incoming).await {
                    Ok(dom) => dom,
                    Err(e) => {
                        self.remove_if_transient_and_off(&dom);
                        return Err(e);
                    }
                }
            }
        };
        Ok((dom.clone(), self.qmp(&dom)?))
    }

    /// Ends an incoming migration on the destination: resumes the guest and
    /// records it as running "migrated", or with `paused` leaves it paused by
    /// the user (event suspended/paused), as libvirt does.
    ///
    /// # Errors
    /// `VIR_ERR_NO_DOMAIN`, `VIR_ERR_OPERATION_INVALID` when it is not
    /// running, `VIR_ERR_OPERATION_FAILED` when `cont` fails.
    pub async fn finish_incoming(
        &self,
        dom: &DomainRef,
        paused: bool,
        postcopy: bool,
    ) -> Result<DomainRef> {
        let job = self.job(dom)?;
        let _job = job
            .acquire_unbounded("remoteDispatchDomainMigrateFinish3Params")
            .await;
        let (runtime, id) = self.runtime_and_id(dom)?;
        if paused {
            // As libvirt: a guest left paused by the migration is the user's
            // pause from here on, announced as such.
            self.shared.force_state(
                &dom.uuid,
                id,
                StateReason {
                    state: DomainState::Paused,
                    reason: paused_reason::USER,
                },
            );
            self.shared.emit(
                self.read(|r| Ok(r.get(dom)?.dom_ref()))?,
                LifecycleEvent::Suspended,
                event_detail::SUSPENDED_PAUSED,
            );
        } else {
            // Recorded before `cont`: QEMU's RESUME event arrives ahead of the
            // reply, and the event task must find the state already changed
            // rather than record a plain "unpaused".
            // In post-copy the guest runs while its pages still arrive.
            let (reason, detail) = if postcopy {
                (running_reason::POSTCOPY, event_detail::RESUMED_POSTCOPY)
            } else {
                (running_reason::MIGRATED, event_detail::RESUMED_MIGRATED)
            };
            self.shared.set_state(
                &dom.uuid,
                id,
                StateReason {
                    state: DomainState::Running,
                    reason,
                },
                Some((LifecycleEvent::Resumed, detail)),
            );
            if let Err(e) = runtime.qmp.execute(&Cont).await {
                self.shared.force_state(
                    &dom.uuid,
                    id,
                    StateReason {
                        state: DomainState::Paused,
                        reason: paused_reason::MIGRATION,
                    },
                );
                return Err(e.into_core("virDomainMigrateFinish3"));
            }
        }
        self.read(|r| Ok(r.get(dom)?.dom_ref()))
    }

    /// Stops the source QEMU after its guest migrated away: shut off with
    /// reason "migrated" (a transient domain disappears).
    ///
    /// # Errors
    /// As [`migrated_core::driver::Driver::destroy`].
    pub async fn stop_migrated(&self, dom: &DomainRef) -> Result<()> {
        let intent = StopIntent {
            reason: shutoff_reason::MIGRATED,
            detail: event_detail::STOPPED_MIGRATED,
        };
        self.stop(dom, intent, false).await
    }

    /// The channel behind [`Driver::subscribe_events`], for the migration
    /// manager's job events.
    pub(crate) fn event_sender(&self) -> broadcast::Sender<DomainEvent> {
        self.shared.events.clone()
    }

    /// Marks whether an outgoing migration of `dom` runs, so the STOP at
    /// switch-over is recorded as "paused for migration".
    pub(crate) fn set_migrating(&self, dom: &DomainRef, on: bool) -> Result<()> {
        self.runtime(dom)?.migrating.store(on, Ordering::SeqCst);
        Ok(())
    }

    /// Records the post-copy state of a migrating guest: on the source
    /// paused "post-copy" (event suspended/post-copy) once the destination
    /// runs it, paused "post-copy failed" once its stream broke; on the
    /// destination running "post-copy failed" once its stream broke, and
    /// running "migrated" (no event) once the last page arrived.
    pub(crate) fn mark_postcopy(&self, dom: &DomainRef, mark: PostcopyMark) -> Result<()> {
        let id = self.live_id(dom)?;
        let (state, reason, event) = match mark {
            PostcopyMark::SourceActive => (
                DomainState::Paused,
                paused_reason::POSTCOPY,
                Some((LifecycleEvent::Suspended, event_detail::SUSPENDED_POSTCOPY)),
            ),
            PostcopyMark::SourceFailed => (
                DomainState::Paused,
                paused_reason::POSTCOPY_FAILED,
                Some((
                    LifecycleEvent::Suspended,
                    event_detail::SUSPENDED_POSTCOPY_FAILED,
                )),
            ),
            PostcopyMark::DestinationFailed => (
                DomainState::Running,
                running_reason::POSTCOPY_FAILED,
                Some((
                    LifecycleEvent::Resumed,
                    event_detail::RESUMED_POSTCOPY_FAILED,
                )),
            ),
            PostcopyMark::DestinationResumed => (
                DomainState::Running,
                running_reason::POSTCOPY,
                Some((LifecycleEvent::Resumed, event_detail::RESUMED_POSTCOPY)),
            ),
            PostcopyMark::DestinationCompleted => {
                (DomainState::Running, running_reason::MIGRATED, None)
            }
        };
        self.shared
            .set_state_reason(&dom.uuid, id, StateReason { state, reason }, event);
        Ok(())
    }

    /// Checks that `dom` is the `end` of a post-copy migration whose stream
    /// broke, with QEMU waiting in `postcopy-paused` for a recovery, as
    /// libvirt's `qemuMigrationAnyCanResume` does (in its words); a pause
    /// QEMU reports before the post-copy watch noticed it is recorded
    /// ("post-copy failed") on the way.
    ///
    /// # Errors
    /// `VIR_ERR_OPERATION_INVALID`: not in post-copy, post-copy that has not
    /// failed, or a QEMU still migrating; QMP errors.
    pub(crate) async fn check_postcopy_resumable(
        &self,
        dom: &DomainRef,
        end: PostcopyEnd,
    ) -> Result<()> {
        let state = self.read(|r| Ok(r.get(dom)?.state()))?;
        let (in_postcopy, failed_reason, mark) = match end {
            PostcopyEnd::Source => (
                is_postcopy_source(state),
                paused_reason::POSTCOPY_FAILED,
                PostcopyMark::SourceFailed,
            ),
            PostcopyEnd::Destination => (
                is_postcopy_destination(state),
                running_reason::POSTCOPY_FAILED,
                PostcopyMark::DestinationFailed,
            ),
        };
        if !in_postcopy {
            return Err(Error::invalid(format!(
                "migration of domain {} is not in post-copy phase",
                dom.name
            )));
        }
        let status = self
            .qmp(dom)?
            .execute(&QueryMigrate)
            .await
            .map_err(|e| e.into_core("migration"))?
            .status;
        if status == Some(MigrationStatus::PostcopyPaused) {
            self.mark_postcopy(dom, mark)?;
            return Ok(());
        }
        Err(Error::invalid(if state.reason == failed_reason {
            "QEMU reports migration is still running".to_owned()
        } else {
            format!("post-copy migration of domain {} has not failed", dom.name)
        }))
    }

    fn live_id(&self, dom: &DomainRef) -> Result<i32> {
        self.read(|r| {
            r.get(dom)?
                .live
                .as_ref()
                .map(|l| l.id)
                .ok_or_else(|| Error::invalid("domain is not running"))
        })
    }

    /// Whether the source guest `dom` has switched to post-copy (recorded,
    /// or as its QEMU reports now): its memory is stale, so it must never
    /// run again here.
    pub(crate) async fn source_in_postcopy(&self, dom: &DomainRef) -> Result<bool> {
        let recorded = self.read(|r| {
            Ok(r.get(dom)?
                .live
                .as_ref()
                .is_some_and(|l| is_postcopy_source(l.state)))
        })?;
        if recorded {
            return Ok(true);
        }
        let qmp = self.qmp(dom)?;
        let info = qmp
            .execute(&QueryMigrate)
            .await
            .map_err(|e| e.into_core("migration"))?;
        Ok(info.status.is_some_and(MigrationStatus::is_postcopy))
    }

    /// Whether the incoming guest `dom` has switched to post-copy (recorded
    /// as running "post-copy", or as its QEMU reports now): it is then the
    /// only up-to-date copy of the guest. A QEMU that cannot be asked counts
    /// as not switched.
    pub(crate) async fn incoming_in_postcopy(&self, dom: &DomainRef) -> bool {
        let recorded = self.read(|r| {
            Ok(r.get(dom)?
                .live
                .as_ref()
                .is_some_and(|l| is_postcopy_destination(l.state)))
        });
        if recorded.unwrap_or(false) {
            return true;
        }
        let Ok(qmp) = self.qmp(dom) else {
            return false;
        };
        match qmp.execute(&QueryMigrate).await {
            Ok(info) => info.status.is_some_and(MigrationStatus::is_postcopy),
            Err(_) => false,
        }
    }

    /// Makes sure a source guest runs again after its migration failed or
    /// was cancelled (QEMU resumes it by itself only in some failure paths).
    /// A guest that switched to post-copy is never resumed: it is recorded
    /// as paused "post-copy failed" and the call fails.
    ///
    /// # Errors
    /// `VIR_ERR_NO_DOMAIN`, `VIR_ERR_OPERATION_INVALID` when it is not
    /// running or is in post-copy, `VIR_ERR_OPERATION_FAILED` when `cont`
    /// fails.
    pub async fn resume_migration_source(&self, dom: &DomainRef) -> Result<()> {
        self.resume_source(dom, false).await
    }

    /// After a cancelled or failed migration of a guest that ran when its
    /// job began: runs it again whoever paused it since (an operator's
    /// SUSPEND between Begin and Perform included), as libvirt restores
    /// the pre-migration state. A post-copy source, a guest QEMU stopped on
    /// an I/O error and a guest no longer running are left as they are.
    ///
    /// # Errors
    /// `VIR_ERR_NO_DOMAIN`, `VIR_ERR_OPERATION_FAILED` when `cont` fails.
    pub async fn restore_migration_source(&self, dom: &DomainRef) -> Result<()> {
        let recorded = self.read(|r| Ok(r.get(dom)?.live.as_ref().map(|l| l.state)))?;
        match recorded {
            Some(state) if !is_postcopy_source(state) => self.resume_source(dom, true).await,
            _ => Ok(()),
        }
    }

    /// [`QemuDriver::resume_migration_source`] and
    /// [`QemuDriver::restore_migration_source`]: `cont` if
    /// [`resumes_after_migration`] accepts the recorded state.
    async fn resume_source(&self, dom: &DomainRef, ran_at_begin: bool) -> Result<()> {
        let job = self.job(dom)?;
        let _job = job
            .acquire_unbounded("remoteDispatchDomainMigrateConfirm3Params")
            .await;
        let runtime = self.runtime(dom)?;
        if self.source_in_postcopy(dom).await? {
            // The destination ran the guest: this memory is stale.
            self.mark_postcopy(dom, PostcopyMark::SourceFailed)?;
            warn!(dom = %dom.name, "post-copy migration failed: the source stays paused");
            return Err(postcopy_source_stale());
        }
        runtime.migrating.store(false, Ordering::SeqCst);
        let (id, state) = self.read(|r| {
            let live = r
                .get(dom)?
                .live
                .as_ref()
                .ok_or_else(|| Error::invalid("domain is not running"))?;
            Ok((live.id, live.state))
        })?;
        let status = runtime
            .qmp
            .execute(&QueryStatus)
            .await
            .map_err(|e| e.into_core("virDomainMigrateConfirm3"))?;
        // QEMU's run state tells an I/O error apart, which the recorded
        // reason (from a bare STOP event) does not.
        if status.running
            || status.status == RunState::IoError
            || !resumes_after_migration(state, ran_at_begin)
        {
            return Ok(());
        }
        self.shared.set_state(
            &dom.uuid,
            id,
            StateReason {
                state: DomainState::Running,
                reason: running_reason::MIGRATION_CANCELED,
            },
            Some((LifecycleEvent::Resumed, event_detail::RESUMED_MIGRATED)),
        );
        if let Err(e) = runtime.qmp.execute(&Cont).await {
            self.shared.force_state(&dom.uuid, id, state);
            return Err(e.into_core("virDomainMigrateConfirm3"));
        }
        Ok(())
    }

    /// The runtime and run id of `dom`, which must be running.
    fn runtime_and_id(&self, dom: &DomainRef) -> Result<(Arc<Runtime>, i32)> {
        self.read(|r| {
            let live = r
                .get(dom)?
                .live
                .as_ref()
                .ok_or_else(|| Error::invalid("domain is not running"))?;
            Ok((Arc::clone(&live.runtime), live.id))
        })
    }

    fn runtime(&self, dom: &DomainRef) -> Result<Arc<Runtime>> {
        let reg = self.shared.lock()?;
        let domain = reg.get(dom)?;
        domain
            .live
            .as_ref()
            .map(|l| Arc::clone(&l.runtime))
            .ok_or_else(|| Error::invalid("domain is not running"))
    }

    fn job(&self, dom: &DomainRef) -> Result<Arc<JobLock>> {
        Ok(Arc::clone(&self.shared.lock()?.get(dom)?.job))
    }

    fn add_transient(&self, def: DomainDef) -> Result<DomainRef> {
        let mut reg = self.shared.lock()?;
        if reg.check_duplicates(&def)? {
            return Err(Error::DomainExists {
                name: def.name.clone(),
                reason: "already exists".into(),
            });
        }
        let uuid = def.uuid;
        reg.domains.insert(
            uuid,
            Domain {
                config: def,
                persistent: false,
                autostart: false,
                shutoff_reason: shutoff_reason::UNKNOWN,
                managed_save: false,
                live: None,
                snapshots: Default::default(),
                job: Arc::default(),
            },
        );
        Ok(reg.domains[&uuid].dom_ref())
    }

    fn remove_if_transient_and_off(&self, dom: &DomainRef) {
        if let Ok(mut reg) = self.shared.lock() {
            if reg
                .domains
                .get(&dom.uuid)
                .is_some_and(|d| !d.persistent && d.live.is_none())
            {
                reg.domains.remove(&dom.uuid);
            }
        }
    }

    async fn start(&self, dom: &DomainRef, mode: StartMode) -> Result<DomainRef> {
        let job = self.job(dom)?;
        let _job = job.acquire("remoteDispatchDomainCreateWithFlags").await?;
        self.start_locked(dom, mode, None).await
    }

    /// Starts `dom` (with `def` instead of its config when given); the
    /// caller holds the domain's job lock.
    async fn start_locked(
        &self,
        dom: &DomainRef,
        mode: StartMode,
        def: Option<DomainDef>,
    ) -> Result<DomainRef> {
        let def = {
            let reg = self.shared.lock()?;
            let domain = reg.get(dom)?;
            if domain.live.is_some() {
                return Err(Error::invalid("domain is already running"));
            }
            def.unwrap_or_else(|| domain.config.clone())
        };
        let mut spec = launch_spec(&def).map_err(|e| e.into_core("virDomainCreate"))?;
        spec.incoming = matches!(mode, StartMode::Incoming | StartMode::Restore);
        let cfg = &self.shared.config;
        let paths = LaunchPaths::for_guest(&cfg.runtime_dir, &cfg.log_dir, &def.name);
        let launched = launch(spec, &paths, cfg.qmp)
            .await
            .map_err(|e| e.into_core("virDomainCreate"))?;
        let events = launched.qmp.events();
        // The vCPUs a guest had plugged after its boot (a migration's or a
        // restore's next QEMU), as devices again: the migration stream
        // carries them as such.
        let (boot, current) = (def.boot_vcpus(), def.current_vcpus());
        if current > boot {
            if let Err((_, e)) = vcpus::hotplug(&launched.qmp, boot, current).await {
                let _ = launched.process.kill().await;
                cleanup_run_files(&cfg.runtime_dir, &def.name, &paths);
                return Err(e);
            }
        }
        if let Err(e) = iotune::apply_disk_throttling(&launched.qmp, &def).await {
            let _ = launched.process.kill().await;
            cleanup_run_files(&cfg.runtime_dir, &def.name, &paths);
            return Err(e.into_core("virDomainCreate"));
        }
        balloon_stats::apply_period(&launched.qmp, &def).await;
        if matches!(mode, StartMode::Boot { .. } | StartMode::Snapshot) {
            if let Err(e) = set_initial_balloon(&launched.qmp, &def).await {
                let _ = launched.process.kill().await;
                cleanup_run_files(&cfg.runtime_dir, &def.name, &paths);
                return Err(e.into_core("virDomainCreate"));
            }
        }
        let (state, started_detail) = match mode {
            StartMode::Boot { paused: false } => {
                if let Err(e) = launched.qmp.execute(&Cont).await {
                    let _ = launched.process.kill().await;
                    cleanup_run_files(&cfg.runtime_dir, &def.name, &paths);
                    return Err(e.into_core("virDomainCreate"));
                }
                (
                    StateReason {
                        state: DomainState::Running,
                        reason: running_reason::BOOTED,
                    },
                    event_detail::STARTED_BOOTED,
                )
            }
            StartMode::Boot { paused: true } => (
                StateReason {
                    state: DomainState::Paused,
                    reason: paused_reason::USER,
                },
                event_detail::STARTED_BOOTED,
            ),
            StartMode::Incoming | StartMode::Restore => (
                StateReason {
                    state: DomainState::Paused,
                    reason: paused_reason::MIGRATION,
                },
                event_detail::STARTED_MIGRATED,
            ),
            StartMode::Snapshot => (
                StateReason {
                    state: DomainState::Paused,
                    reason: paused_reason::FROM_SNAPSHOT,
                },
                event_detail::STARTED_FROM_SNAPSHOT,
            ),
        };
        let id = self.shared.next_id.fetch_add(1, Ordering::SeqCst);
        let mut live_def = def;
        live_def.id = Some(id);
        record_vnc_port(&launched.qmp, &mut live_def).await;
        record_spice_port(&launched.qmp, &mut live_def).await;
        add_console_compat(&mut live_def);
        record_pty_path(&launched.qmp, &mut live_def).await;
        set_aliases(&mut live_def);
        let agent = qmp_events::record_channel_states(&launched.qmp, &mut live_def).await;
        let runtime = Arc::new(Runtime {
            process: Arc::new(launched.process),
            qmp: launched.qmp,
            paths,
            intent: Mutex::new(None),
            guest_shutdown: Default::default(),
            fake_reboot: Default::default(),
            paused_shutdown: Default::default(),
            migrating: Default::default(),
            tainted: Default::default(),
            monitor: Mutex::new(None),
        });
        let live = Live {
            def: live_def,
            id,
            state,
            runtime: Arc::clone(&runtime),
        };
        let dom = {
            let mut reg = self.shared.lock()?;
            let domain = reg.get_mut(dom)?;
            if let Err(e) = status_of(&live, domain.persistent).write(&cfg.runtime_dir) {
                warn!(error = %e.chain(), "cannot write status file; the guest will not survive a daemon restart");
            }
            domain.live = Some(live);
            domain.dom_ref()
        };
        spawn_monitor(&self.shared, &runtime, dom.uuid, id, events);
        info!(name = %dom.name, id, pid = runtime.process.pid(), "qemu guest started");
        // libvirt reports the agent channel's state while it connects to the
        // new QEMU, before the started event.
        if let Some(kind) = agent {
            self.shared.emit_event(dom.clone(), kind);
        }
        if mode != StartMode::Restore {
            self.shared
                .emit(dom.clone(), LifecycleEvent::Started, started_detail);
        }
        if mode == (StartMode::Boot { paused: true }) {
            self.shared.emit(
                dom.clone(),
                LifecycleEvent::Suspended,
                event_detail::SUSPENDED_PAUSED,
            );
        }
        Ok(dom)
    }

    /// Stops run of `dom` with `intent`: SIGTERM first when `graceful`.
    ///
    /// As libvirt's `qemuProcessBeginStopJob`, a stop never queues behind
    /// another job: when one holds the domain (a dump, a save, a command
    /// to a hung QEMU), the signal goes out first, the holder's QMP call
    /// ends with the process, and the job lock follows.
    async fn stop(&self, dom: &DomainRef, intent: StopIntent, graceful: bool) -> Result<()> {
        let dispatcher = if intent.reason == shutoff_reason::MIGRATED {
            "remoteDispatchDomainMigrateConfirm3Params"
        } else {
            "remoteDispatchDomainDestroyFlags"
        };
        let job = self.job(dom)?;
        let _job = match job.try_acquire(dispatcher) {
            Some(guard) => guard,
            None => {
                let signalled = self.read(|r| {
                    Ok(r.get(dom)?
                        .live
                        .as_ref()
                        .map(|l| (Arc::clone(&l.runtime), l.id)))
                })?;
                let Some((runtime, id)) = signalled else {
                    // Not running (yet): wait for the job, then decide.
                    let _job = job.acquire_unbounded(dispatcher).await;
                    return self.stop_locked(dom, intent, graceful).await;
                };
                runtime.set_intent(intent);
                let signal = if graceful {
                    rustix::process::Signal::Term
                } else {
                    rustix::process::Signal::Kill
                };
                info!(name = %dom.name, "stopping the guest while another job holds it");
                runtime
                    .process
                    .signal(signal)
                    .map_err(|e| e.into_core("virDomainDestroyFlags"))?;
                let guard = job.acquire_unbounded(dispatcher).await;
                // The run signalled may have ended (and been cleaned up by
                // its exit watcher) while the holder finished: done.
                let same_run = self.read(|r| {
                    Ok(r.get(dom)
                        .ok()
                        .and_then(|d| d.live.as_ref().map(|l| l.id == id))
                        .unwrap_or(false))
                })?;
                if !same_run {
                    return Ok(());
                }
                guard
            }
        };
        self.stop_locked(dom, intent, graceful).await
    }

    /// Stops `dom`; the caller holds the domain's job lock.
    async fn stop_locked(&self, dom: &DomainRef, intent: StopIntent, graceful: bool) -> Result<()> {
        let (runtime, id) = {
            let reg = self.shared.lock()?;
            let live = reg
                .get(dom)?
                .live
                .as_ref()
                .ok_or_else(|| Error::invalid("domain is not running"))?;
            (Arc::clone(&live.runtime), live.id)
        };
        runtime.set_intent(intent);
        if graceful {
            runtime
                .process
                .signal(rustix::process::Signal::Term)
                .map_err(|e| e.into_core("virDomainDestroyFlags"))?;
            if tokio::time::timeout(GRACEFUL_TIMEOUT, runtime.process.wait())
                .await
                .is_err()
            {
                return Err(Error::OperationFailed {
                    operation: "virDomainDestroyFlags",
                    reason: format!(
                        "qemu did not exit within {} s of SIGTERM",
                        GRACEFUL_TIMEOUT.as_secs()
                    ),
                });
            }
        } else {
            runtime
                .process
                .kill()
                .await
                .map_err(|e| e.into_core("virDomainDestroyFlags"))?;
        }
        self.shared.finish_stop(&dom.uuid, id);
        Ok(())
    }

    async fn reattach_all(&self) -> Result<()> {
        let runtime_dir = self.shared.config.runtime_dir.clone();
        let mut max_id = 0;
        for (path, status) in StatusFile::list(&runtime_dir).map_err(|e| e.into_core("reattach"))? {
            let status = match status {
                Ok(s) => s,
                Err(e) => {
                    warn!(path = %path.display(), error = %e.chain(), "ignoring unreadable status file");
                    continue;
                }
            };
            max_id = max_id.max(status.id);
            if let Err(e) = self.reattach(status).await {
                warn!(path = %path.display(), error = %e, "cannot re-attach");
            }
        }
        self.shared.next_id.store(max_id + 1, Ordering::SeqCst);
        Ok(())
    }

    /// Re-attaches one recorded guest, or records it as crashed.
    async fn reattach(&self, status: StatusFile) -> Result<()> {
        let cfg = &self.shared.config;
        let live_def = parse_def(&status.xml)?;
        // A transient guest exists only through its status file.
        {
            let mut reg = self.shared.lock()?;
            reg.domains.entry(status.uuid).or_insert_with(|| Domain {
                config: live_def.clone(),
                persistent: false,
                autostart: false,
                shutoff_reason: shutoff_reason::UNKNOWN,
                managed_save: false,
                live: None,
                snapshots: Default::default(),
                job: Arc::default(),
            });
        }
        let paths = LaunchPaths {
            qmp_socket: status.qmp_socket.clone(),
            pidfile: cfg
                .runtime_dir
                .join("qemu")
                .join(format!("{}.pid", status.name)),
            log: status.log.clone(),
            channel_dir: LaunchPaths::channel_dir(&cfg.runtime_dir, &status.name),
        };
        let attached = match QemuProcess::attach(status.pid, &status.name, &status.uuid.to_string())
        {
            Ok(Some(process)) => match Qmp::connect(&status.qmp_socket, cfg.qmp).await {
                Ok(qmp) => Some((process, qmp)),
                Err(e) => {
                    // libvirt does the same (qemuProcessReconnect): a guest
                    // that cannot be managed is stopped, not left orphaned.
                    warn!(name = %status.name, error = %e.chain(), "qemu monitor unusable after restart; killing qemu");
                    let _ = process.kill().await;
                    None
                }
            },
            Ok(None) => None,
            Err(e) => {
                warn!(name = %status.name, error = %e.chain(), "recorded pid is not this guest's qemu");
                None
            }
        };
        let Some((process, qmp)) = attached else {
            info!(name = %status.name, "qemu guest died while the daemon was away");
            cleanup_run_files(&cfg.runtime_dir, &status.name, &paths);
            let mut reg = self.shared.lock()?;
            match reg.domains.get_mut(&status.uuid) {
                Some(d) if d.persistent => d.shutoff_reason = shutoff_reason::CRASHED,
                Some(_) => {
                    reg.domains.remove(&status.uuid);
                }
                None => {}
            }
            return Ok(());
        };
        let events = qmp.events();
        let run = qmp
            .execute(&QueryStatus)
            .await
            .map_err(|e| e.into_core("reattach"))?;
        let run = power::settle_on_reattach(&qmp, run, &status.name)
            .await
            .map_err(|e| e.into_core("reattach"))?;
        // A source that switched to post-copy stays paused for good: its
        // memory is stale, whatever its QEMU's run state says.
        let postcopy_source = match qmp.execute(&QueryMigrate).await.ok().and_then(|m| m.status) {
            _ if run.status == RunState::Running => None,
            Some(MigrationStatus::PostcopyActive | MigrationStatus::PostcopyRecover) => {
                Some(paused_reason::POSTCOPY)
            }
            Some(MigrationStatus::PostcopyPaused) => Some(paused_reason::POSTCOPY_FAILED),
            _ if status.state == RecordedState::Paused
                && matches!(
                    status.reason,
                    paused_reason::POSTCOPY | paused_reason::POSTCOPY_FAILED
                ) =>
            {
                Some(status.reason)
            }
            _ => None,
        };
        let state = if let Some(reason) = postcopy_source {
            StateReason {
                state: DomainState::Paused,
                reason,
            }
        } else {
            match run.status {
                RunState::Running => StateReason {
                    state: DomainState::Running,
                    reason: if status.state == RecordedState::Running {
                        status.reason
                    } else {
                        running_reason::UNPAUSED
                    },
                },
                RunState::Inmigrate | RunState::Postmigrate | RunState::FinishMigrate => {
                    StateReason {
                        state: DomainState::Paused,
                        reason: paused_reason::MIGRATION,
                    }
                }
                _ => StateReason {
                    state: DomainState::Paused,
                    reason: if status.state == RecordedState::Paused {
                        status.reason
                    } else {
                        paused_reason::USER
                    },
                },
            }
        };
        let runtime = Arc::new(Runtime {
            process: Arc::new(process),
            qmp,
            paths,
            intent: Mutex::new(None),
            guest_shutdown: Default::default(),
            fake_reboot: Default::default(),
            paused_shutdown: Default::default(),
            migrating: Default::default(),
            tainted: Default::default(),
            monitor: Mutex::new(None),
        });
        let mut def = live_def;
        def.id = Some(status.id);
        {
            let mut reg = self.shared.lock()?;
            let Some(domain) = reg.domains.get_mut(&status.uuid) else {
                return Ok(());
            };
            domain.live = Some(Live {
                def,
                id: status.id,
                state,
                runtime: Arc::clone(&runtime),
            });
        }
        spawn_monitor(&self.shared, &runtime, status.uuid, status.id, events);
        info!(name = %status.name, id = status.id, pid = status.pid, "re-attached to qemu guest");
        Ok(())
    }

    async fn autostart(&self) {
        let todo: Vec<DomainRef> = match self.shared.lock() {
            Ok(reg) => reg
                .domains
                .values()
                .filter(|d| d.autostart && d.live.is_none())
                .map(Domain::dom_ref)
                .collect(),
            Err(_) => return,
        };
        for dom in todo {
            // As libvirt's autostart: a managed save image is restored.
            if let Err(e) = self.start_or_restore(&dom, 0).await {
                warn!(name = %dom.name, error = %e, "autostart failed");
            }
        }
    }

    fn read<T>(&self, f: impl FnOnce(&Registry) -> Result<T>) -> Result<T> {
        f(&*self.shared.lock()?)
    }
}

fn parse_def(xml: &str) -> Result<DomainDef> {
    let def = DomainDef::parse(xml)?;
    if !matches!(def.domain_type, DomainType::Kvm | DomainType::Qemu) {
        return Err(Error::ConfigUnsupported {
            reason: format!(
                "domain type '{}' is not run by the qemu driver",
                def.domain_type
            ),
        });
    }
    Ok(def)
}
