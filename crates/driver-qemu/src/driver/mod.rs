//! [`QemuDriver`]: core's `Driver` trait over real QEMU processes.
//!
//! State lives in a [`Registry`] behind a std mutex that is only held for
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

mod registry;

use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use async_trait::async_trait;
use migrated_core::domain::{
    event_detail, paused_reason, running_reason, shutoff_reason, DomainEvent, DomainInfo,
    DomainRef, DomainState, HostIdentity, LifecycleEvent, NodeInfo, SecurityModel, StateReason,
};
use migrated_core::driver::Driver;
use migrated_core::flags::{self, check_flags};
use migrated_core::support::SupportTable;
use migrated_core::xml::{DomainDef, DomainType, FormatOptions};
use migrated_core::{Error, Result};
use tokio::sync::{broadcast, OnceCell};
use tracing::{info, warn};
use uuid::Uuid;

use crate::command::Accel;
use crate::process::{launch, LaunchPaths, QemuProcess};
use crate::qmp::commands::{
    Cont, QueryBalloon, QueryCpusFast, QueryStatus, RunState, Stop, SystemPowerdown,
};
use crate::qmp::message::names;
use crate::qmp::{Qmp, QmpConfig};
use crate::spec::launch_spec;
use crate::status::{RecordedState, StatusFile, STATUS_VERSION};
use crate::store::Store;
use crate::support::SUPPORT;
use registry::{Domain, Live, Registry, Runtime, StopIntent};

/// The canonical URI of this driver.
pub const URI: &str = "qemu:///system";

/// Lifecycle events buffered per subscriber.
const EVENT_CAPACITY: usize = 1024;

/// How long a graceful destroy waits for QEMU to exit after SIGTERM.
const GRACEFUL_TIMEOUT: Duration = Duration::from_secs(10);

/// `VIR_DOMAIN_EVENT_STOPPED_CRASHED`.
const STOPPED_CRASHED: i32 = 2;
/// `VIR_DOMAIN_CRASHED_PANICKED` and `VIR_DOMAIN_EVENT_CRASHED_PANICKED`.
const CRASHED_PANICKED: i32 = 1;
const EVENT_CRASHED_PANICKED: i32 = 0;

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
    next_id: AtomicI32,
    version: OnceCell<u64>,
}

impl Shared {
    fn lock(&self) -> Result<MutexGuard<'_, Registry>> {
        self.registry
            .lock()
            .map_err(|_| Error::internal("qemu driver state is poisoned by an earlier panic"))
    }

    fn emit(&self, dom: DomainRef, event: LifecycleEvent, detail: i32) {
        // No subscriber is not an error.
        let _ = self.events.send(DomainEvent { dom, event, detail });
    }

    /// Records a new run state if `id` is still the current run; emits the
    /// event and rewrites the status file only on an actual change.
    fn set_state(&self, uuid: &Uuid, id: i32, state: StateReason, event: (LifecycleEvent, i32)) {
        let Ok(mut reg) = self.lock() else { return };
        let Some(domain) = reg.domains.get_mut(uuid) else {
            return;
        };
        let persistent = domain.persistent;
        let Some(live) = domain.live.as_mut().filter(|l| l.id == id) else {
            return;
        };
        if live.state.state == state.state {
            return;
        }
        live.state = state;
        if let Err(e) = status_of(live, persistent).write(&self.config.runtime_dir) {
            warn!(error = %e.chain(), "cannot update status file");
        }
        let dom = domain.dom_ref();
        drop(reg);
        self.emit(dom, event.0, event.1);
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
            None => (shutoff_reason::CRASHED, STOPPED_CRASHED),
        };
        domain.shutoff_reason = reason;
        let transient = !domain.persistent;
        if transient {
            reg.domains.remove(uuid);
        }
        drop(reg);
        cleanup_run_files(&self.config.runtime_dir, &dom.name, &runtime.paths);
        info!(name = %dom.name, reason, "qemu guest stopped");
        self.emit(dom, LifecycleEvent::Stopped, detail);
        // Dropping the last Arc<Runtime> here (outside the lock) ends the
        // event task, possibly the one running this function.
        drop(live);
    }
}

fn cleanup_run_files(runtime_dir: &std::path::Path, name: &str, paths: &LaunchPaths) {
    for path in [&paths.qmp_socket, &paths.pidfile] {
        let _ = std::fs::remove_file(path);
    }
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
        for stored in store.load()? {
            registry.domains.insert(
                stored.def.uuid,
                Domain {
                    config: stored.def,
                    persistent: true,
                    autostart: stored.autostart,
                    shutoff_reason: shutoff_reason::UNKNOWN,
                    live: None,
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
                next_id: AtomicI32::new(1),
                version: OnceCell::new(),
            }),
        };
        driver.reattach_all().await?;
        driver.autostart().await;
        Ok(driver)
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

    /// Starts a transient guest from `xml` with `-incoming defer`, paused for
    /// migration, and returns it with its monitor; the caller sends
    /// `migrate-incoming`. A failed incoming guest is removed with
    /// [`Driver::destroy`].
    ///
    /// # Errors
    /// As [`Driver::create_xml`].
    pub async fn start_incoming(&self, xml: &str) -> Result<(DomainRef, Qmp)> {
        let dom = self.add_transient(xml)?;
        let dom = self.start(&dom, StartMode::Incoming).await?;
        Ok((dom.clone(), self.qmp(&dom)?))
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

    fn job(&self, dom: &DomainRef) -> Result<Arc<tokio::sync::Mutex<()>>> {
        Ok(Arc::clone(&self.shared.lock()?.get(dom)?.job))
    }

    fn add_transient(&self, xml: &str) -> Result<DomainRef> {
        let def = parse_def(xml)?;
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
                live: None,
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
        let _job = job.lock().await;
        let def = {
            let reg = self.shared.lock()?;
            let domain = reg.get(dom)?;
            if domain.live.is_some() {
                return Err(Error::invalid("domain is already running"));
            }
            domain.config.clone()
        };
        let mut spec = launch_spec(&def).map_err(|e| e.into_core("virDomainCreate"))?;
        spec.incoming = mode == StartMode::Incoming;
        let cfg = &self.shared.config;
        let paths = LaunchPaths::for_guest(&cfg.runtime_dir, &cfg.log_dir, &def.name);
        let launched = launch(spec, &paths, cfg.qmp)
            .await
            .map_err(|e| e.into_core("virDomainCreate"))?;
        let events = launched.qmp.events();
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
            StartMode::Incoming => (
                StateReason {
                    state: DomainState::Paused,
                    reason: paused_reason::MIGRATION,
                },
                event_detail::STARTED_MIGRATED,
            ),
        };
        let id = self.shared.next_id.fetch_add(1, Ordering::SeqCst);
        let mut live_def = def;
        live_def.id = Some(id);
        let runtime = Arc::new(Runtime {
            process: Arc::new(launched.process),
            qmp: launched.qmp,
            paths,
            intent: Mutex::new(None),
            guest_shutdown: Default::default(),
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
        self.shared
            .emit(dom.clone(), LifecycleEvent::Started, started_detail);
        if state.state == DomainState::Paused && mode != StartMode::Incoming {
            self.shared.emit(
                dom.clone(),
                LifecycleEvent::Suspended,
                event_detail::SUSPENDED_PAUSED,
            );
        }
        Ok(dom)
    }

    /// Stops run of `dom` with `intent`: SIGTERM first when `graceful`.
    async fn stop(&self, dom: &DomainRef, intent: StopIntent, graceful: bool) -> Result<()> {
        let job = self.job(dom)?;
        let _job = job.lock().await;
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
                live: None,
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
        let state = match run.status {
            RunState::Running => StateReason {
                state: DomainState::Running,
                reason: if status.state == RecordedState::Running {
                    status.reason
                } else {
                    running_reason::UNPAUSED
                },
            },
            RunState::Inmigrate | RunState::Postmigrate | RunState::FinishMigrate => StateReason {
                state: DomainState::Paused,
                reason: paused_reason::MIGRATION,
            },
            _ => StateReason {
                state: DomainState::Paused,
                reason: if status.state == RecordedState::Paused {
                    status.reason
                } else {
                    paused_reason::USER
                },
            },
        };
        let runtime = Arc::new(Runtime {
            process: Arc::new(process),
            qmp,
            paths,
            intent: Mutex::new(None),
            guest_shutdown: Default::default(),
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
            if let Err(e) = self.start(&dom, StartMode::Boot { paused: false }).await {
                warn!(name = %dom.name, error = %e, "autostart failed");
            }
        }
    }

    fn read<T>(&self, f: impl FnOnce(&Registry) -> Result<T>) -> Result<T> {
        f(&*self.shared.lock()?)
    }
}

/// Follows one run's QMP events and its QEMU's exit.
fn spawn_monitor(
    shared: &Arc<Shared>,
    runtime: &Arc<Runtime>,
    uuid: Uuid,
    id: i32,
    mut events: broadcast::Receiver<crate::qmp::Event>,
) {
    let weak: Weak<Shared> = Arc::downgrade(shared);
    let process = Arc::clone(&runtime.process);
    let weak_runtime = Arc::downgrade(runtime);
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                event = events.recv() => {
                    let Some(shared) = weak.upgrade() else { return };
                    match event {
                        Ok(event) => on_event(&shared, &weak_runtime, &uuid, id, &event.event),
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            warn!(missed = n, "qmp events lagged");
                        }
                        // The connection closed: QEMU is exiting; wait for the pidfd.
                        Err(broadcast::error::RecvError::Closed) => {
                            drop(shared);
                            let status = process.wait().await;
                            info!(%uuid, %status, "qemu exited");
                            if let Some(shared) = weak.upgrade() {
                                shared.finish_stop(&uuid, id);
                            }
                            return;
                        }
                    }
                }
                status = process.wait() => {
                    info!(%uuid, %status, "qemu exited");
                    if let Some(shared) = weak.upgrade() {
                        shared.finish_stop(&uuid, id);
                    }
                    return;
                }
            }
        }
    });
    if let Ok(mut slot) = runtime.monitor.lock() {
        *slot = Some(task);
    }
}

fn on_event(shared: &Shared, runtime: &Weak<Runtime>, uuid: &Uuid, id: i32, name: &str) {
    match name {
        names::STOP => shared.set_state(
            uuid,
            id,
            StateReason {
                state: DomainState::Paused,
                reason: paused_reason::USER,
            },
            (LifecycleEvent::Suspended, event_detail::SUSPENDED_PAUSED),
        ),
        names::RESUME => shared.set_state(
            uuid,
            id,
            StateReason {
                state: DomainState::Running,
                reason: running_reason::UNPAUSED,
            },
            (LifecycleEvent::Resumed, event_detail::RESUMED_UNPAUSED),
        ),
        names::SHUTDOWN => {
            if let Some(rt) = runtime.upgrade() {
                rt.guest_shutdown.store(true, Ordering::SeqCst);
            }
            let dom = shared
                .lock()
                .ok()
                .and_then(|reg| reg.domains.get(uuid).map(Domain::dom_ref));
            if let Some(dom) = dom {
                shared.emit(
                    dom,
                    LifecycleEvent::Shutdown,
                    event_detail::SHUTDOWN_FINISHED,
                );
            }
        }
        names::GUEST_PANICKED => shared.set_state(
            uuid,
            id,
            StateReason {
                state: DomainState::Crashed,
                reason: CRASHED_PANICKED,
            },
            (LifecycleEvent::Crashed, EVENT_CRASHED_PANICKED),
        ),
        _ => {}
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

fn proc_cpu_time_ns(pid: i32) -> u64 {
    // Fields 14 and 15 of /proc/PID/stat (utime, stime), in clock ticks,
    // counted after the parenthesised command name (which may hold spaces).
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // rest starts at field 3 (state): utime is field 14 → index 11.
    let total = ticks(11) + ticks(12);
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = u64::try_from(hz).ok().filter(|&h| h > 0).unwrap_or(100);
    total.saturating_mul(1_000_000_000 / hz)
}

fn capabilities_xml(host: &HostIdentity, emulator: Option<&std::path::Path>) -> String {
    let kvm = if Accel::detect() == Accel::Kvm {
        "      <domain type='kvm'/>\n"
    } else {
        ""
    };
    let emulator = emulator
        .map(|p| {
            format!(
                "      <emulator>{}</emulator>\n",
                xml_escape(&p.to_string_lossy())
            )
        })
        .unwrap_or_default();
    format!(
        "<capabilities>\n  <host>\n    <uuid>{}</uuid>\n    <cpu>\n      <arch>x86_64</arch>\n    </cpu>\n  </host>\n  \
         <guest>\n    <os_type>hvm</os_type>\n    <arch name='x86_64'>\n      <wordsize>64</wordsize>\n{emulator}      \
         <domain type='qemu'/>\n{kvm}    </arch>\n  </guest>\n</capabilities>\n",
        host.uuid
    )
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&apos;")
}

/// `QEMU emulator version 7.2.22 (...)` → 7 002 022.
fn parse_version(text: &str) -> Option<u64> {
    let rest = text.split("version ").nth(1)?;
    let triple = rest.split_whitespace().next()?;
    let mut parts = triple.split('.').map(|p| p.parse::<u64>().ok());
    let major = parts.next()??;
    let minor = parts.next().flatten().unwrap_or(0);
    let micro = parts.next().flatten().unwrap_or(0);
    Some(major * 1_000_000 + minor * 1_000 + micro)
}

fn node_info() -> NodeInfo {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_kib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let mhz = cpuinfo
        .lines()
        .find(|l| l.starts_with("cpu MHz"))
        .and_then(|l| l.split(':').nth(1))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as i32);
    let cpus = std::thread::available_parallelism()
        .map(|n| i32::try_from(n.get()).unwrap_or(i32::MAX))
        .unwrap_or(1);
    NodeInfo {
        model: "x86_64".into(),
        memory_kib,
        cpus,
        mhz,
        nodes: 1,
        sockets: 1,
        cores: cpus,
        threads: 1,
    }
}

#[async_trait]
impl Driver for QemuDriver {
    fn support(&self) -> &'static SupportTable {
        &SUPPORT
    }

    async fn list_all_domains(&self, flags: u32) -> Result<Vec<DomainRef>> {
        self.read(|r| r.list(flags))
    }

    async fn lookup_by_name(&self, name: &str) -> Result<DomainRef> {
        self.read(|r| Ok(r.by_name(name)?.dom_ref()))
    }

    async fn lookup_by_uuid(&self, uuid: &Uuid) -> Result<DomainRef> {
        self.read(|r| {
            r.domains
                .get(uuid)
                .map(Domain::dom_ref)
                .ok_or(Error::NoDomain {
                    key: migrated_core::error::DomainKey::Uuid(*uuid),
                })
        })
    }

    async fn lookup_by_id(&self, id: i32) -> Result<DomainRef> {
        self.read(|r| Ok(r.by_id(id)?.dom_ref()))
    }

    async fn get_info(&self, dom: &DomainRef) -> Result<DomainInfo> {
        let (state, def, runtime) = self.read(|r| {
            let d = r.get(dom)?;
            let def = d.live.as_ref().map_or(&d.config, |l| &l.def).clone();
            Ok((
                d.state().state,
                def,
                d.live.as_ref().map(|l| Arc::clone(&l.runtime)),
            ))
        })?;
        let mut info = DomainInfo {
            state,
            max_mem_kib: def.memory_kib,
            memory_kib: def.current_memory_kib,
            nr_virt_cpu: u16::try_from(def.vcpus).unwrap_or(u16::MAX),
            cpu_time_ns: 0,
        };
        if let Some(rt) = runtime {
            if let Ok(cpus) = rt.qmp.execute(&QueryCpusFast).await {
                info.nr_virt_cpu = u16::try_from(cpus.len()).unwrap_or(u16::MAX);
            }
            // No balloon device is normal: the configured size stands.
            if let Ok(balloon) = rt.qmp.execute(&QueryBalloon).await {
                info.memory_kib = balloon.actual / 1024;
            }
            info.cpu_time_ns = proc_cpu_time_ns(rt.process.pid());
        }
        Ok(info)
    }

    async fn get_state(&self, dom: &DomainRef, flags: u32) -> Result<StateReason> {
        check_flags("virDomainGetState", u64::from(flags), 0)?;
        self.read(|r| Ok(r.get(dom)?.state()))
    }

    async fn get_os_type(&self, dom: &DomainRef) -> Result<String> {
        self.read(|r| Ok(r.get(dom)?.config.os.os_type.clone()))
    }

    async fn get_xml_desc(&self, dom: &DomainRef, flags: u32) -> Result<String> {
        use flags::xml::{INACTIVE, MIGRATABLE, SECURE, UPDATE_CPU};
        check_flags(
            "virDomainGetXMLDesc",
            u64::from(flags),
            u64::from(SECURE | INACTIVE | UPDATE_CPU | MIGRATABLE),
        )?;
        self.read(|r| {
            let d = r.get(dom)?;
            let inactive = flags & INACTIVE != 0;
            let def = match &d.live {
                Some(live) if !inactive || !d.persistent => &live.def,
                _ => &d.config,
            };
            Ok(def.format(&FormatOptions {
                secure: flags & SECURE != 0,
                inactive,
                migratable: flags & MIGRATABLE != 0,
            }))
        })
    }

    async fn define_xml(&self, xml: &str, flags: u32) -> Result<DomainRef> {
        check_flags(
            "virDomainDefineXMLFlags",
            u64::from(flags),
            u64::from(flags::define::VALIDATE),
        )?;
        let def = parse_def(xml)?;
        // Refuse what could never start now rather than at the first start.
        launch_spec(&def).map_err(|e| e.into_core("virDomainDefineXML"))?;
        let mut reg = self.shared.lock()?;
        let exists = reg.check_duplicates(&def)?;
        self.shared
            .store
            .save(&def)
            .map_err(|e| e.into_core("virDomainDefineXML"))?;
        let uuid = def.uuid;
        let detail = match reg.domains.get_mut(&uuid) {
            Some(d) if exists => {
                let detail = if d.persistent {
                    event_detail::DEFINED_UPDATED
                } else {
                    event_detail::DEFINED_ADDED
                };
                d.config = def;
                d.persistent = true;
                detail
            }
            _ => {
                reg.domains.insert(
                    uuid,
                    Domain {
                        config: def,
                        persistent: true,
                        autostart: false,
                        shutoff_reason: shutoff_reason::UNKNOWN,
                        live: None,
                        job: Arc::default(),
                    },
                );
                event_detail::DEFINED_ADDED
            }
        };
        let dom = reg.domains[&uuid].dom_ref();
        drop(reg);
        self.shared
            .emit(dom.clone(), LifecycleEvent::Defined, detail);
        Ok(dom)
    }

    async fn undefine(&self, dom: &DomainRef, flags: u32) -> Result<()> {
        use flags::undefine::*;
        // Nothing of these exists for this driver, so there is nothing to keep or remove.
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
        let mut reg = self.shared.lock()?;
        let d = reg.get_mut(dom)?;
        if !d.persistent {
            return Err(Error::invalid("cannot undefine transient domain"));
        }
        self.shared
            .store
            .remove(&dom.uuid)
            .map_err(|e| e.into_core("virDomainUndefine"))?;
        let out = d.dom_ref();
        if d.live.is_some() {
            d.persistent = false;
            d.autostart = false;
        } else {
            reg.domains.remove(&dom.uuid);
        }
        drop(reg);
        self.shared.emit(
            out,
            LifecycleEvent::Undefined,
            event_detail::UNDEFINED_REMOVED,
        );
        Ok(())
    }

    async fn create(&self, dom: &DomainRef, flags: u32) -> Result<DomainRef> {
        check_flags(
            "virDomainCreateWithFlags",
            u64::from(flags),
            u64::from(flags::create::START_PAUSED),
        )?;
        let paused = flags & flags::create::START_PAUSED != 0;
        self.start(dom, StartMode::Boot { paused }).await
    }

    async fn create_xml(&self, xml: &str, flags: u32) -> Result<DomainRef> {
        check_flags(
            "virDomainCreateXML",
            u64::from(flags),
            u64::from(flags::create::START_PAUSED),
        )?;
        let paused = flags & flags::create::START_PAUSED != 0;
        let dom = self.add_transient(xml)?;
        match self.start(&dom, StartMode::Boot { paused }).await {
            Ok(dom) => Ok(dom),
            Err(e) => {
                self.remove_if_transient_and_off(&dom);
                Err(e)
            }
        }
    }

    async fn destroy(&self, dom: &DomainRef, flags: u32) -> Result<()> {
        check_flags(
            "virDomainDestroyFlags",
            u64::from(flags),
            u64::from(flags::destroy::GRACEFUL),
        )?;
        let intent = StopIntent {
            reason: shutoff_reason::DESTROYED,
            detail: event_detail::STOPPED_DESTROYED,
        };
        self.stop(dom, intent, flags & flags::destroy::GRACEFUL != 0)
            .await
    }

    async fn suspend(&self, dom: &DomainRef) -> Result<()> {
        let job = self.job(dom)?;
        let _job = job.lock().await;
        let (runtime, id) = self.read(|r| {
            let d = r.get(dom)?;
            match &d.live {
                Some(l) if l.state.state == DomainState::Running => {
                    Ok((Arc::clone(&l.runtime), l.id))
                }
                Some(_) => Err(Error::invalid("domain is not running")),
                None => Err(Error::invalid("domain is not running")),
            }
        })?;
        runtime
            .qmp
            .execute(&Stop)
            .await
            .map_err(|e| e.into_core("virDomainSuspend"))?;
        self.shared.set_state(
            &dom.uuid,
            id,
            StateReason {
                state: DomainState::Paused,
                reason: paused_reason::USER,
            },
            (LifecycleEvent::Suspended, event_detail::SUSPENDED_PAUSED),
        );
        Ok(())
    }

    async fn resume(&self, dom: &DomainRef) -> Result<()> {
        let job = self.job(dom)?;
        let _job = job.lock().await;
        let (runtime, id) = self.read(|r| {
            let d = r.get(dom)?;
            match &d.live {
                Some(l) if l.state.state == DomainState::Paused => {
                    Ok((Arc::clone(&l.runtime), l.id))
                }
                Some(_) => Err(Error::invalid("domain is not paused")),
                None => Err(Error::invalid("domain is not running")),
            }
        })?;
        runtime
            .qmp
            .execute(&Cont)
            .await
            .map_err(|e| e.into_core("virDomainResume"))?;
        self.shared.set_state(
            &dom.uuid,
            id,
            StateReason {
                state: DomainState::Running,
                reason: running_reason::UNPAUSED,
            },
            (LifecycleEvent::Resumed, event_detail::RESUMED_UNPAUSED),
        );
        Ok(())
    }

    async fn shutdown(&self, dom: &DomainRef, flags: u32) -> Result<()> {
        use flags::shutdown::*;
        check_flags(
            "virDomainShutdownFlags",
            u64::from(flags),
            u64::from(ACPI_POWER_BTN | GUEST_AGENT | INITCTL | SIGNAL | PARAVIRT),
        )?;
        if flags & !ACPI_POWER_BTN != 0 {
            return Err(Error::ArgumentUnsupported {
                what: "shutdown modes other than the ACPI power button".into(),
                driver: SUPPORT.driver,
            });
        }
        let runtime = self.runtime(dom)?;
        runtime
            .qmp
            .execute(&SystemPowerdown)
            .await
            .map_err(|e| e.into_core("virDomainShutdown"))?;
        Ok(())
    }

    async fn get_autostart(&self, dom: &DomainRef) -> Result<bool> {
        self.read(|r| Ok(r.get(dom)?.autostart))
    }

    async fn set_autostart(&self, dom: &DomainRef, autostart: bool) -> Result<()> {
        let mut reg = self.shared.lock()?;
        let d = reg.get_mut(dom)?;
        if !d.persistent {
            return Err(Error::invalid("cannot set autostart for transient domain"));
        }
        self.shared
            .store
            .set_autostart(&dom.uuid, autostart)
            .map_err(|e| e.into_core("virDomainSetAutostart"))?;
        d.autostart = autostart;
        Ok(())
    }

    async fn is_active(&self, dom: &DomainRef) -> Result<bool> {
        self.read(|r| Ok(r.get(dom)?.live.is_some()))
    }

    async fn is_persistent(&self, dom: &DomainRef) -> Result<bool> {
        self.read(|r| Ok(r.get(dom)?.persistent))
    }

    async fn has_managed_save(&self, dom: &DomainRef, flags: u32) -> Result<bool> {
        check_flags("virDomainHasManagedSaveImage", u64::from(flags), 0)?;
        self.read(|r| r.get(dom).map(|_| false))
    }

    async fn capabilities(&self) -> Result<String> {
        let emulator = crate::command::find_emulator(None).ok();
        Ok(capabilities_xml(&self.shared.host, emulator.as_deref()))
    }

    async fn node_info(&self) -> Result<NodeInfo> {
        Ok(node_info())
    }

    async fn node_security_model(&self) -> Result<SecurityModel> {
        Ok(SecurityModel::default())
    }

    async fn hypervisor_version(&self) -> Result<u64> {
        self.shared
            .version
            .get_or_try_init(|| async {
                let emulator = crate::command::find_emulator(None)
                    .map_err(|e| e.into_core("virConnectGetVersion"))?;
                let out = tokio::process::Command::new(&emulator)
                    .arg("--version")
                    .stdin(std::process::Stdio::null())
                    .output()
                    .await
                    .map_err(|e| {
                        Error::system(format!("run {} --version", emulator.display()), e)
                    })?;
                parse_version(&String::from_utf8_lossy(&out.stdout)).ok_or_else(|| {
                    Error::OperationFailed {
                        operation: "virConnectGetVersion",
                        reason: format!("cannot parse the version of {}", emulator.display()),
                    }
                })
            })
            .await
            .copied()
    }

    async fn get_type(&self) -> Result<String> {
        Ok(SUPPORT.driver.to_owned())
    }

    async fn uri(&self) -> Result<String> {
        Ok(URI.to_owned())
    }

    fn subscribe_events(&self) -> Result<broadcast::Receiver<DomainEvent>> {
        Ok(self.shared.events.subscribe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_qemu_version_lines() {
        assert_eq!(
            parse_version(
                "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\nCopyright"
            ),
            Some(7_002_022)
        );
        assert_eq!(
            parse_version("QEMU emulator version 9.1\n"),
            Some(9_001_000)
        );
        assert_eq!(parse_version("garbage"), None);
    }

    #[test]
    fn cpu_time_of_this_process_is_positive_and_of_a_missing_one_zero() {
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        assert!(x > 0);
        assert!(proc_cpu_time_ns(std::process::id() as i32) > 0);
        assert_eq!(proc_cpu_time_ns(-5), 0);
    }

    #[test]
    fn capabilities_name_the_host_and_qemu_domain_type() {
        let host = HostIdentity {
            hostname: "h".into(),
            uuid: Uuid::nil(),
        };
        let xml = capabilities_xml(
            &host,
            Some(std::path::Path::new("/usr/bin/qemu-system-x86_64")),
        );
        assert!(xml.contains(&Uuid::nil().to_string()));
        assert!(xml.contains("<domain type='qemu'/>"));
        assert!(xml.contains("<emulator>/usr/bin/qemu-system-x86_64</emulator>"));
    }
}
