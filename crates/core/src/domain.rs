//! Domain handles, states, info structures and domain events: the values a
//! [`Driver`](crate::driver::Driver) hands back, in libvirt's numbering.

use uuid::Uuid;

use crate::typed_params::TypedParams;

/// A reference to a domain as it travels on the wire (`remote_nonnull_domain`).
///
/// Servers identify the domain by `uuid`; `name` is for messages and `id` is the
/// running instance's number (`-1` while inactive).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DomainRef {
    /// Domain name.
    pub name: String,
    /// Domain UUID.
    pub uuid: Uuid,
    /// Id of the running instance, [`DomainRef::INACTIVE_ID`] when not running.
    pub id: i32,
}

impl DomainRef {
    /// The id libvirt reports for a domain that is not running.
    pub const INACTIVE_ID: i32 = -1;

    /// Whether this reference names a running instance.
    pub fn is_active(&self) -> bool {
        self.id != Self::INACTIVE_ID
    }
}

/// `virDomainState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum DomainState {
    /// `VIR_DOMAIN_NOSTATE`.
    NoState = 0,
    /// `VIR_DOMAIN_RUNNING`.
    Running = 1,
    /// `VIR_DOMAIN_BLOCKED`.
    Blocked = 2,
    /// `VIR_DOMAIN_PAUSED`.
    Paused = 3,
    /// `VIR_DOMAIN_SHUTDOWN`: being shut down.
    Shutdown = 4,
    /// `VIR_DOMAIN_SHUTOFF`.
    Shutoff = 5,
    /// `VIR_DOMAIN_CRASHED`.
    Crashed = 6,
    /// `VIR_DOMAIN_PMSUSPENDED`.
    PmSuspended = 7,
}

impl DomainState {
    /// Whether a domain in this state has a running instance (an id).
    pub fn is_active(self) -> bool {
        !matches!(self, DomainState::Shutoff | DomainState::NoState)
    }
}

/// `virDomainRunningReason` values used by `migrated`.
pub mod running_reason {
    /// Normal startup from boot.
    pub const BOOTED: i32 = 1;
    /// Migrated from another host.
    pub const MIGRATED: i32 = 2;
    /// Restored from a state file.
    pub const RESTORED: i32 = 3;
    /// Returned from paused state.
    pub const UNPAUSED: i32 = 5;
    /// `VIR_DOMAIN_RUNNING_WAKEUP`: woke up from a power-management suspend.
    pub const WAKEUP: i32 = 8;
    /// Returned from migration that was cancelled.
    pub const MIGRATION_CANCELED: i32 = 6;
    /// Running on the destination of a post-copy migration: pages still
    /// arrive from the source.
    pub const POSTCOPY: i32 = 10;
    /// Running on the destination of a post-copy migration whose stream
    /// broke: missing pages cannot arrive until it is recovered.
    pub const POSTCOPY_FAILED: i32 = 11;
    /// `VIR_DOMAIN_RUNNING_FROM_SNAPSHOT`: reverted to a snapshot.
    pub const FROM_SNAPSHOT: i32 = 4;
}

/// `virDomainPausedReason` values used by `migrated`.
pub mod paused_reason {
    /// Paused on user request.
    pub const USER: i32 = 1;
    /// Paused for migration: an incoming guest before Finish, or the source during
    /// the final copy.
    pub const MIGRATION: i32 = 2;
    /// Paused for saving to a file.
    pub const SAVE: i32 = 3;
    /// Paused for a core dump.
    pub const DUMP: i32 = 4;
    /// Paused by a disk I/O error (`werror=stop`): resuming would hit it again.
    pub const IOERROR: i32 = 5;
    /// `VIR_DOMAIN_PAUSED_WATCHDOG`: the watchdog fired with action `pause`.
    pub const WATCHDOG: i32 = 6;
    /// The source of a post-copy migration: the guest runs on the
    /// destination, which still pulls pages from here.
    pub const POSTCOPY: i32 = 12;
    /// The source of a post-copy migration whose stream broke: its memory
    /// is stale, so it must never run again; only a recovery finishes it.
    pub const POSTCOPY_FAILED: i32 = 13;
    /// `VIR_DOMAIN_PAUSED_FROM_SNAPSHOT`: reverted to a snapshot.
    pub const FROM_SNAPSHOT: i32 = 7;
    /// `VIR_DOMAIN_PAUSED_SNAPSHOT`: paused while a snapshot is taken.
    pub const SNAPSHOT: i32 = 9;
}

/// `virDomainShutoffReason` values used by `migrated`.
pub mod shutoff_reason {
    /// Never started, or unknown.
    pub const UNKNOWN: i32 = 0;
    /// Normal shutdown.
    pub const SHUTDOWN: i32 = 1;
    /// Forced poweroff.
    pub const DESTROYED: i32 = 2;
    /// Domain crashed.
    pub const CRASHED: i32 = 3;
    /// Migrated to another host.
    pub const MIGRATED: i32 = 4;
    /// Saved to a file.
    pub const SAVED: i32 = 5;
    /// Failed to start.
    pub const FAILED: i32 = 6;
    /// `VIR_DOMAIN_SHUTOFF_FROM_SNAPSHOT`: reverted to a snapshot.
    pub const FROM_SNAPSHOT: i32 = 7;
}

/// State plus reason, the answer to `DOMAIN_GET_STATE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateReason {
    /// The state.
    pub state: DomainState,
    /// Reason, interpreted per state (see the `*_reason` modules).
    pub reason: i32,
}

/// `DOMAIN_GET_INFO` answer (libvirt-wire.md §3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DomainInfo {
    /// Current state.
    pub state: DomainState,
    /// Maximum memory in KiB.
    pub max_mem_kib: u64,
    /// Current memory in KiB.
    pub memory_kib: u64,
    /// Number of virtual CPUs.
    pub nr_virt_cpu: u16,
    /// CPU time used, in nanoseconds.
    pub cpu_time_ns: u64,
}

/// `VIR_VCPU_RUNNING`: the state of every vCPU of a running guest here
/// (`VIR_VCPU_OFFLINE` and `VIR_VCPU_BLOCKED` are not reported, as libvirt's
/// QEMU driver).
pub const VCPU_RUNNING: i32 = 1;

/// One vCPU of a running domain, `virVcpuInfo` (`DOMAIN_GET_VCPUS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VcpuInfo {
    /// vCPU number, from 0.
    pub number: u32,
    /// `VIR_VCPU_*`, e.g. [`VCPU_RUNNING`].
    pub state: i32,
    /// CPU time this vCPU used, in nanoseconds.
    pub cpu_time_ns: u64,
    /// Host CPU it last ran on (-1 when not known).
    pub cpu: i32,
}

/// Tags of `virDomainMemoryStatStruct` (`DOMAIN_MEMORY_STATS`) this project
/// reports.
pub mod memory_stat {
    /// `VIR_DOMAIN_MEMORY_STAT_SWAP_IN`: memory swapped in by the guest, KiB.
    pub const SWAP_IN: i32 = 0;
    /// `VIR_DOMAIN_MEMORY_STAT_SWAP_OUT`: memory swapped out, KiB.
    pub const SWAP_OUT: i32 = 1;
    /// `VIR_DOMAIN_MEMORY_STAT_MAJOR_FAULT`: page faults that needed I/O.
    pub const MAJOR_FAULT: i32 = 2;
    /// `VIR_DOMAIN_MEMORY_STAT_MINOR_FAULT`: other page faults.
    pub const MINOR_FAULT: i32 = 3;
    /// `VIR_DOMAIN_MEMORY_STAT_UNUSED`: memory the guest leaves unused, KiB.
    pub const UNUSED: i32 = 4;
    /// `VIR_DOMAIN_MEMORY_STAT_AVAILABLE`: memory the guest sees, KiB.
    pub const AVAILABLE: i32 = 5;
    /// `VIR_DOMAIN_MEMORY_STAT_ACTUAL_BALLOON`: current balloon size, KiB.
    pub const ACTUAL_BALLOON: i32 = 6;
    /// `VIR_DOMAIN_MEMORY_STAT_RSS`: resident set size of the guest, KiB.
    pub const RSS: i32 = 7;
    /// `VIR_DOMAIN_MEMORY_STAT_USABLE`: memory the guest could use without
    /// swapping, KiB.
    pub const USABLE: i32 = 8;
    /// `VIR_DOMAIN_MEMORY_STAT_LAST_UPDATE`: when the guest last reported,
    /// seconds since the Epoch.
    pub const LAST_UPDATE: i32 = 9;
    /// `VIR_DOMAIN_MEMORY_STAT_DISK_CACHES`: the guest's page cache, KiB.
    pub const DISK_CACHES: i32 = 10;
    /// `VIR_DOMAIN_MEMORY_STAT_HUGETLB_PGALLOC`: huge pages allocated.
    pub const HUGETLB_PGALLOC: i32 = 11;
    /// `VIR_DOMAIN_MEMORY_STAT_HUGETLB_PGFAIL`: huge page allocations failed.
    pub const HUGETLB_PGFAIL: i32 = 12;
}

/// One memory statistic of a running domain: a [`memory_stat`] tag and its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryStat {
    /// `VIR_DOMAIN_MEMORY_STAT_*`.
    pub tag: i32,
    /// The value, in the tag's unit (KiB for sizes).
    pub value: u64,
}

/// The host's memory (`NODE_GET_MEMORY_STATS`, `NODE_GET_FREE_MEMORY`,
/// `NODE_GET_CELLS_FREE_MEMORY`), in KiB.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeMemory {
    /// Total usable memory.
    pub total_kib: u64,
    /// Free memory.
    pub free_kib: u64,
    /// Block-device buffers.
    pub buffers_kib: u64,
    /// Page cache.
    pub cached_kib: u64,
    /// Each NUMA cell's memory, cell 0 first.
    pub cells: Vec<CellMemory>,
}

/// One NUMA cell's memory, in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CellMemory {
    /// Total memory of the cell.
    pub total_kib: u64,
    /// Free memory of the cell.
    pub free_kib: u64,
}

/// CPU time of the host or of one host CPU since boot, in ns, as libvirt
/// groups it (`NODE_GET_CPU_STATS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuTimes {
    /// System, interrupt and soft-interrupt time.
    pub kernel_ns: u64,
    /// User and nice time.
    pub user_ns: u64,
    /// Idle time.
    pub idle_ns: u64,
    /// Time waiting for I/O.
    pub iowait_ns: u64,
}

/// What CONNECT_GET_DOMAIN_CAPABILITIES asks about (`virsh domcapabilities
/// --emulatorbin --arch --machine --virttype`); `None` lets the driver pick
/// its default, as libvirt does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DomainCapsQuery {
    /// Emulator binary path.
    pub emulator: Option<String>,
    /// Guest architecture (`x86_64`).
    pub arch: Option<String>,
    /// Machine type or alias (`pc`, `q35`, `pc-i440fx-7.2`).
    pub machine: Option<String>,
    /// Domain type (`kvm`, `qemu`).
    pub virttype: Option<String>,
}

/// `NODE_GET_INFO` answer (libvirt-wire.md §3.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// CPU model, at most 31 bytes (the wire field is `char[32]`, NUL-padded).
    pub model: String,
    /// Memory in KiB.
    pub memory_kib: u64,
    /// Number of active CPUs.
    pub cpus: i32,
    /// Expected CPU frequency in MHz.
    pub mhz: i32,
    /// NUMA nodes.
    pub nodes: i32,
    /// Sockets per node.
    pub sockets: i32,
    /// Cores per socket.
    pub cores: i32,
    /// Threads per core.
    pub threads: i32,
}

/// `NODE_GET_SECURITY_MODEL` answer; both empty means "no security model".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityModel {
    /// Model name (e.g. "selinux"), empty for none.
    pub model: String,
    /// Domain of interpretation, empty for none.
    pub doi: String,
}

/// What `virDomainGetControlInfo` reports of the channel to a running
/// guest's hypervisor (`virsh domcontrol`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ControlInfo {
    /// The channel's state.
    pub state: ControlState,
    /// Why the channel is in [`ControlState::Error`] (a
    /// `VIR_DOMAIN_CONTROL_ERROR_REASON_*`), 0 otherwise.
    pub details: u32,
    /// Milliseconds spent in the current state ([`ControlState::Job`],
    /// [`ControlState::Occupied`]), 0 otherwise.
    pub state_time_ms: u64,
}

/// `virDomainControlState`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ControlState {
    /// Ready for commands (`VIR_DOMAIN_CONTROL_OK`).
    #[default]
    Ok = 0,
    /// A background job (a migration) runs on the domain
    /// (`VIR_DOMAIN_CONTROL_JOB`).
    Job = 1,
    /// A command to the hypervisor is in flight (`VIR_DOMAIN_CONTROL_OCCUPIED`).
    Occupied = 2,
    /// The channel is unusable (`VIR_DOMAIN_CONTROL_ERROR`).
    Error = 3,
}

/// `VIR_DOMAIN_CONTROL_ERROR_REASON_MONITOR`: the monitor connection broke.
pub const CONTROL_ERROR_REASON_MONITOR: u32 = 2;

/// A screenshot of a guest's screen (`virDomainScreenshot`): the image
/// travels on the call's stream, its type in the reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Screenshot {
    /// MIME type: `image/png`, `image/x-portable-pixmap`.
    pub mime: String,
    /// The image file's bytes.
    pub data: Vec<u8>,
}

/// One IOThread of a domain (`virDomainIOThreadInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoThreadInfo {
    /// The IOThread's id.
    pub id: u32,
    /// Host CPUs it may run on, bit N = CPU N.
    pub cpumap: Vec<u8>,
}

/// Who the host is: reported in capabilities and carried in migration cookies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostIdentity {
    /// Host name reported to clients and peers.
    pub hostname: String,
    /// Host UUID; two hosts with the same UUID are considered the same host.
    pub uuid: Uuid,
}

/// `virDomainEventType`: the lifecycle event kinds (libvirt-wire.md §3.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum LifecycleEvent {
    /// Config added or updated.
    Defined = 0,
    /// Config removed.
    Undefined = 1,
    /// Started.
    Started = 2,
    /// Paused.
    Suspended = 3,
    /// Unpaused.
    Resumed = 4,
    /// Stopped.
    Stopped = 5,
    /// Guest-initiated shutdown.
    Shutdown = 6,
    /// Power-management suspended.
    PmSuspended = 7,
    /// Crashed.
    Crashed = 8,
}

/// Event detail values (`virDomainEvent*DetailType`) used by `migrated`, per event kind.
pub mod event_detail {
    /// `VIR_DOMAIN_EVENT_DEFINED_ADDED`.
    pub const DEFINED_ADDED: i32 = 0;
    /// `VIR_DOMAIN_EVENT_DEFINED_UPDATED`.
    pub const DEFINED_UPDATED: i32 = 1;
    /// `VIR_DOMAIN_EVENT_DEFINED_RENAMED`: under its new name.
    pub const DEFINED_RENAMED: i32 = 2;
    /// `VIR_DOMAIN_EVENT_UNDEFINED_REMOVED`.
    pub const UNDEFINED_REMOVED: i32 = 0;
    /// `VIR_DOMAIN_EVENT_UNDEFINED_RENAMED`: under its old name.
    pub const UNDEFINED_RENAMED: i32 = 1;
    /// `VIR_DOMAIN_EVENT_STARTED_BOOTED`.
    pub const STARTED_BOOTED: i32 = 0;
    /// `VIR_DOMAIN_EVENT_STARTED_MIGRATED`.
    pub const STARTED_MIGRATED: i32 = 1;
    /// `VIR_DOMAIN_EVENT_STARTED_RESTORED`.
    pub const STARTED_RESTORED: i32 = 2;
    /// `VIR_DOMAIN_EVENT_SUSPENDED_PAUSED`.
    pub const SUSPENDED_PAUSED: i32 = 0;
    /// `VIR_DOMAIN_EVENT_SUSPENDED_MIGRATED`.
    pub const SUSPENDED_MIGRATED: i32 = 1;
    /// `VIR_DOMAIN_EVENT_SUSPENDED_POSTCOPY`: the source switched to post-copy.
    pub const SUSPENDED_POSTCOPY: i32 = 7;
    /// `VIR_DOMAIN_EVENT_SUSPENDED_POSTCOPY_FAILED`.
    pub const SUSPENDED_POSTCOPY_FAILED: i32 = 8;
    /// `VIR_DOMAIN_EVENT_RESUMED_UNPAUSED`.
    pub const RESUMED_UNPAUSED: i32 = 0;
    /// `VIR_DOMAIN_EVENT_RESUMED_FROM_SNAPSHOT`: a snapshot revert ran it.
    pub const RESUMED_FROM_SNAPSHOT: i32 = 2;
    /// `VIR_DOMAIN_EVENT_RESUMED_MIGRATED`.
    pub const RESUMED_MIGRATED: i32 = 1;
    /// `VIR_DOMAIN_EVENT_RESUMED_POSTCOPY`: the destination runs while pages
    /// still arrive.
    pub const RESUMED_POSTCOPY: i32 = 3;
    /// `VIR_DOMAIN_EVENT_RESUMED_POSTCOPY_FAILED`: the destination runs but
    /// its post-copy stream broke.
    pub const RESUMED_POSTCOPY_FAILED: i32 = 4;
    /// `VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN`.
    pub const STOPPED_SHUTDOWN: i32 = 0;
    /// `VIR_DOMAIN_EVENT_STOPPED_DESTROYED`.
    pub const STOPPED_DESTROYED: i32 = 1;
    /// `VIR_DOMAIN_EVENT_STOPPED_CRASHED`: stopped after a crash (or a
    /// core dump with `VIR_DUMP_CRASH`).
    pub const STOPPED_CRASHED: i32 = 2;
    /// `VIR_DOMAIN_EVENT_STOPPED_MIGRATED`.
    pub const STOPPED_MIGRATED: i32 = 3;
    /// `VIR_DOMAIN_EVENT_STOPPED_SAVED`.
    pub const STOPPED_SAVED: i32 = 4;
    /// `VIR_DOMAIN_EVENT_STOPPED_FAILED`: e.g. an incoming migration that was cancelled.
    pub const STOPPED_FAILED: i32 = 5;
    /// `VIR_DOMAIN_EVENT_STOPPED_FROM_SNAPSHOT`: a snapshot revert shut it off.
    pub const STOPPED_FROM_SNAPSHOT: i32 = 6;
    /// `VIR_DOMAIN_EVENT_STARTED_FROM_SNAPSHOT`: a snapshot revert started it.
    pub const STARTED_FROM_SNAPSHOT: i32 = 3;
    /// `VIR_DOMAIN_EVENT_SUSPENDED_FROM_SNAPSHOT`: a snapshot revert paused it.
    pub const SUSPENDED_FROM_SNAPSHOT: i32 = 5;
    /// `VIR_DOMAIN_EVENT_DEFINED_FROM_SNAPSHOT`: a snapshot revert replaced its config.
    pub const DEFINED_FROM_SNAPSHOT: i32 = 3;
    /// `VIR_DOMAIN_EVENT_SUSPENDED_IOERROR`: paused by a disk I/O error.
    pub const SUSPENDED_IOERROR: i32 = 2;
    /// `VIR_DOMAIN_EVENT_SUSPENDED_WATCHDOG`: paused by the watchdog.
    pub const SUSPENDED_WATCHDOG: i32 = 3;
    /// `VIR_DOMAIN_EVENT_STARTED_WAKEUP`: woke up from a PM suspend.
    pub const STARTED_WAKEUP: i32 = 4;
    /// `VIR_DOMAIN_EVENT_PMSUSPENDED_MEMORY`: suspended to memory.
    pub const PMSUSPENDED_MEMORY: i32 = 0;
    /// `VIR_DOMAIN_EVENT_PMSUSPENDED_DISK`: suspended to disk.
    pub const PMSUSPENDED_DISK: i32 = 1;
    /// `VIR_DOMAIN_EVENT_SHUTDOWN_FINISHED`: QEMU did not say who asked.
    pub const SHUTDOWN_FINISHED: i32 = 0;
    /// `VIR_DOMAIN_EVENT_SHUTDOWN_GUEST`: the guest powered itself off.
    pub const SHUTDOWN_GUEST: i32 = 1;
    /// `VIR_DOMAIN_EVENT_SHUTDOWN_HOST`: the host asked (e.g. a QMP `quit`).
    pub const SHUTDOWN_HOST: i32 = 2;
}

/// `VIR_DOMAIN_EVENT_ID_*`: the event kinds a client registers for
/// (`CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY`).
pub mod event_id {
    /// `VIR_DOMAIN_EVENT_ID_LIFECYCLE`.
    pub const LIFECYCLE: i32 = 0;
    /// `VIR_DOMAIN_EVENT_ID_REBOOT`.
    pub const REBOOT: i32 = 1;
    /// `VIR_DOMAIN_EVENT_ID_RTC_CHANGE`.
    pub const RTC_CHANGE: i32 = 2;
    /// `VIR_DOMAIN_EVENT_ID_WATCHDOG`.
    pub const WATCHDOG: i32 = 3;
    /// `VIR_DOMAIN_EVENT_ID_IO_ERROR`.
    pub const IO_ERROR: i32 = 4;
    /// `VIR_DOMAIN_EVENT_ID_GRAPHICS`.
    pub const GRAPHICS: i32 = 5;
    /// `VIR_DOMAIN_EVENT_ID_IO_ERROR_REASON`.
    pub const IO_ERROR_REASON: i32 = 6;
    /// `VIR_DOMAIN_EVENT_ID_TRAY_CHANGE`.
    pub const TRAY_CHANGE: i32 = 10;
    /// `VIR_DOMAIN_EVENT_ID_PMWAKEUP`.
    pub const PMWAKEUP: i32 = 11;
    /// `VIR_DOMAIN_EVENT_ID_PMSUSPEND`.
    pub const PMSUSPEND: i32 = 12;
    /// `VIR_DOMAIN_EVENT_ID_BALLOON_CHANGE`.
    pub const BALLOON_CHANGE: i32 = 13;
    /// `VIR_DOMAIN_EVENT_ID_PMSUSPEND_DISK`.
    pub const PMSUSPEND_DISK: i32 = 14;
    /// `VIR_DOMAIN_EVENT_ID_TUNABLE`.
    pub const TUNABLE: i32 = 17;
    /// `VIR_DOMAIN_EVENT_ID_AGENT_LIFECYCLE`.
    pub const AGENT_LIFECYCLE: i32 = 18;
    /// `VIR_DOMAIN_EVENT_ID_DEVICE_REMOVAL_FAILED`.
    pub const DEVICE_REMOVAL_FAILED: i32 = 22;
    /// `VIR_DOMAIN_EVENT_ID_METADATA_CHANGE`.
    pub const METADATA_CHANGE: i32 = 23;
    /// `VIR_DOMAIN_EVENT_ID_MEMORY_FAILURE`.
    pub const MEMORY_FAILURE: i32 = 25;
    /// `VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED`: the last id the legacy
    /// (non-callback) registration accepts; later ids exist only for callbacks.
    pub const DEVICE_REMOVED: i32 = 15;
    /// `VIR_DOMAIN_EVENT_ID_DEVICE_ADDED`.
    pub const DEVICE_ADDED: i32 = 19;
    /// `VIR_DOMAIN_EVENT_ID_MIGRATION_ITERATION`.
    pub const MIGRATION_ITERATION: i32 = 20;
    /// `VIR_DOMAIN_EVENT_ID_JOB_COMPLETED`.
    pub const JOB_COMPLETED: i32 = 21;
    /// `VIR_DOMAIN_EVENT_ID_LAST` of libvirt 9.0: one past the last id it knows.
    pub const LAST: i32 = 27;
}

/// What happened, per event kind.
#[derive(Debug, Clone, PartialEq)]
pub enum DomainEventKind {
    /// A lifecycle change (`VIR_DOMAIN_EVENT_ID_LIFECYCLE`).
    Lifecycle {
        /// Event kind.
        event: LifecycleEvent,
        /// Detail, interpreted per kind (see [`event_detail`]).
        detail: i32,
    },
    /// The guest was reset, by itself or by the host
    /// (`VIR_DOMAIN_EVENT_ID_REBOOT`, QEMU's `RESET`).
    Reboot,
    /// An outgoing migration started a new pass over memory
    /// (`VIR_DOMAIN_EVENT_ID_MIGRATION_ITERATION`, QEMU's `MIGRATION_PASS`).
    MigrationIteration {
        /// The pass number, from 1.
        iteration: i32,
    },
    /// A job ended successfully (`VIR_DOMAIN_EVENT_ID_JOB_COMPLETED`).
    JobCompleted {
        /// The completed job's statistics, as `GET_JOB_STATS` with
        /// `COMPLETED` returns them.
        stats: TypedParams,
    },
    /// A device was hot-plugged (`VIR_DOMAIN_EVENT_ID_DEVICE_ADDED`).
    DeviceAdded {
        /// The device's alias (`vdb`, `net1`).
        alias: String,
    },
    /// A device left the running guest: the guest released it and its
    /// back-end is gone (`VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED`).
    DeviceRemoved {
        /// The device's alias.
        alias: String,
    },
    /// The guest set its real-time clock (`VIR_DOMAIN_EVENT_ID_RTC_CHANGE`).
    RtcChange {
        /// The clock's new offset from the host's UTC, seconds.
        offset: i64,
    },
    /// The watchdog fired (`VIR_DOMAIN_EVENT_ID_WATCHDOG`).
    Watchdog {
        /// What it did, one of [`crate::event::watchdog_action`].
        action: i32,
    },
    /// A disk I/O failed (`VIR_DOMAIN_EVENT_ID_IO_ERROR`).
    IoError(crate::event::IoError),
    /// A disk I/O failed, with why (`VIR_DOMAIN_EVENT_ID_IO_ERROR_REASON`).
    IoErrorReason(crate::event::IoError),
    /// A graphics client came or went (`VIR_DOMAIN_EVENT_ID_GRAPHICS`).
    Graphics(Box<crate::event::Graphics>),
    /// A removable disk's tray opened or closed (`VIR_DOMAIN_EVENT_ID_TRAY_CHANGE`).
    TrayChange {
        /// The disk's alias.
        alias: String,
        /// One of [`crate::event::tray_reason`].
        reason: i32,
    },
    /// The guest woke up from a power-management suspend (`VIR_DOMAIN_EVENT_ID_PMWAKEUP`).
    PmWakeup,
    /// The guest suspended itself to memory (`VIR_DOMAIN_EVENT_ID_PMSUSPEND`).
    PmSuspend,
    /// The guest suspended itself to disk (`VIR_DOMAIN_EVENT_ID_PMSUSPEND_DISK`).
    PmSuspendDisk,
    /// The balloon reached a new size (`VIR_DOMAIN_EVENT_ID_BALLOON_CHANGE`).
    BalloonChange {
        /// The guest's current memory, KiB.
        actual_kib: u64,
    },
    /// Tuning of the running guest changed (`VIR_DOMAIN_EVENT_ID_TUNABLE`).
    Tunable {
        /// The changed values under libvirt's `VIR_DOMAIN_TUNABLE_*` names.
        params: TypedParams,
    },
    /// The guest agent connected or went away (`VIR_DOMAIN_EVENT_ID_AGENT_LIFECYCLE`).
    AgentLifecycle {
        /// One of the `agent_lifecycle` states of [`crate::event`].
        state: i32,
        /// One of the `agent_lifecycle` reasons.
        reason: i32,
    },
    /// The guest refused to release a device
    /// (`VIR_DOMAIN_EVENT_ID_DEVICE_REMOVAL_FAILED`).
    DeviceRemovalFailed {
        /// The device's alias.
        alias: String,
    },
    /// The title, description or a metadata element changed
    /// (`VIR_DOMAIN_EVENT_ID_METADATA_CHANGE`).
    MetadataChange {
        /// `VIR_DOMAIN_METADATA_*`: 0 description, 1 title, 2 element.
        kind: i32,
        /// The element's namespace, for an element.
        uri: Option<String>,
    },
    /// The host met a memory failure (`VIR_DOMAIN_EVENT_ID_MEMORY_FAILURE`).
    MemoryFailure {
        /// Whose memory, one of [`crate::event::memory_failure`]'s recipients.
        recipient: i32,
        /// What was done about it.
        action: i32,
        /// `VIR_DOMAIN_MEMORY_FAILURE_*` bits.
        flags: u32,
    },
}

impl DomainEventKind {
    /// The `VIR_DOMAIN_EVENT_ID_*` a client registers to receive this kind.
    pub fn id(&self) -> i32 {
        match self {
            DomainEventKind::Lifecycle { .. } => event_id::LIFECYCLE,
            DomainEventKind::Reboot => event_id::REBOOT,
            DomainEventKind::MigrationIteration { .. } => event_id::MIGRATION_ITERATION,
            DomainEventKind::JobCompleted { .. } => event_id::JOB_COMPLETED,
            DomainEventKind::DeviceAdded { .. } => event_id::DEVICE_ADDED,
            DomainEventKind::DeviceRemoved { .. } => event_id::DEVICE_REMOVED,
            DomainEventKind::RtcChange { .. } => event_id::RTC_CHANGE,
            DomainEventKind::Watchdog { .. } => event_id::WATCHDOG,
            DomainEventKind::IoError(_) => event_id::IO_ERROR,
            DomainEventKind::IoErrorReason(_) => event_id::IO_ERROR_REASON,
            DomainEventKind::Graphics(_) => event_id::GRAPHICS,
            DomainEventKind::TrayChange { .. } => event_id::TRAY_CHANGE,
            DomainEventKind::PmWakeup => event_id::PMWAKEUP,
            DomainEventKind::PmSuspend => event_id::PMSUSPEND,
            DomainEventKind::PmSuspendDisk => event_id::PMSUSPEND_DISK,
            DomainEventKind::BalloonChange { .. } => event_id::BALLOON_CHANGE,
            DomainEventKind::Tunable { .. } => event_id::TUNABLE,
            DomainEventKind::AgentLifecycle { .. } => event_id::AGENT_LIFECYCLE,
            DomainEventKind::DeviceRemovalFailed { .. } => event_id::DEVICE_REMOVAL_FAILED,
            DomainEventKind::MetadataChange { .. } => event_id::METADATA_CHANGE,
            DomainEventKind::MemoryFailure { .. } => event_id::MEMORY_FAILURE,
        }
    }
}

/// A domain event, as sent to the clients registered for its kind.
#[derive(Debug, Clone, PartialEq)]
pub struct DomainEvent {
    /// The domain, with its id at the time of the event.
    pub dom: DomainRef,
    /// What happened.
    pub kind: DomainEventKind,
}

impl DomainEvent {
    /// A lifecycle event.
    pub fn lifecycle(dom: DomainRef, event: LifecycleEvent, detail: i32) -> Self {
        Self {
            dom,
            kind: DomainEventKind::Lifecycle { event, detail },
        }
    }

    /// The lifecycle event kind and detail, `None` for other kinds.
    pub fn as_lifecycle(&self) -> Option<(LifecycleEvent, i32)> {
        match self.kind {
            DomainEventKind::Lifecycle { event, detail } => Some((event, detail)),
            _ => None,
        }
    }
}

/// I/O statistics of one disk of a running domain (`DOMAIN_BLOCK_STATS`,
/// `DOMAIN_BLOCK_STATS_FLAGS`); `None` where the hypervisor keeps no count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlockStats {
    /// Read requests.
    pub rd_req: Option<i64>,
    /// Bytes read.
    pub rd_bytes: Option<i64>,
    /// Write requests.
    pub wr_req: Option<i64>,
    /// Bytes written.
    pub wr_bytes: Option<i64>,
    /// Flush requests.
    pub flush_req: Option<i64>,
    /// Time spent reading, ns.
    pub rd_total_ns: Option<i64>,
    /// Time spent writing, ns.
    pub wr_total_ns: Option<i64>,
    /// Time spent flushing, ns.
    pub flush_total_ns: Option<i64>,
    /// Errors.
    pub errs: Option<i64>,
}

/// Sizes of one disk (`DOMAIN_GET_BLOCK_INFO`), bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlockInfo {
    /// What the guest sees.
    pub capacity: u64,
    /// Host storage in use.
    pub allocation: u64,
    /// The host file's (or device's) size.
    pub physical: u64,
}

/// Traffic of one network interface of a running domain
/// (`DOMAIN_INTERFACE_STATS`), from the guest's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InterfaceStats {
    /// Bytes received.
    pub rx_bytes: i64,
    /// Packets received.
    pub rx_packets: i64,
    /// Receive errors.
    pub rx_errs: i64,
    /// Received packets dropped.
    pub rx_drop: i64,
    /// Bytes sent.
    pub tx_bytes: i64,
    /// Packets sent.
    pub tx_packets: i64,
    /// Send errors.
    pub tx_errs: i64,
    /// Packets dropped on sending.
    pub tx_drop: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_and_event_numbers_match_libvirt() {
        assert_eq!(DomainState::Running as i32, 1);
        assert_eq!(DomainState::Paused as i32, 3);
        assert_eq!(DomainState::Shutoff as i32, 5);
        assert_eq!(DomainState::PmSuspended as i32, 7);
        assert_eq!(LifecycleEvent::Defined as i32, 0);
        assert_eq!(LifecycleEvent::Stopped as i32, 5);
        assert_eq!(LifecycleEvent::Crashed as i32, 8);
    }

    #[test]
    fn only_shutoff_and_nostate_are_inactive() {
        assert!(DomainState::Running.is_active());
        assert!(DomainState::Paused.is_active());
        assert!(!DomainState::Shutoff.is_active());
        assert!(!DomainState::NoState.is_active());
    }
}

/// What a rename needs to know of the domain (libvirt's `qemuDomainRename`
/// and `testDomainRename` checks, in their order).
#[derive(Debug, Clone, Copy)]
pub struct RenameCheck<'a> {
    /// Its current name.
    pub name: &'a str,
    /// Whether it runs (or is paused).
    pub active: bool,
    /// Whether it has a persistent config.
    pub persistent: bool,
    /// Whether a managed save image of it exists.
    pub managed_save: bool,
    /// Whether another domain is called the new name.
    pub name_taken: bool,
}

impl RenameCheck<'_> {
    /// Checks that the domain may take `new_name`.
    ///
    /// # Errors
    /// [`crate::Error::OperationInvalid`] with libvirt's words for an active,
    /// transient or managed-saved domain, the same name or a name taken;
    /// [`crate::Error::Xml`] for a name no definition could have.
    pub fn check(&self, new_name: &str) -> crate::Result<()> {
        use crate::Error;
        if self.active {
            return Err(Error::invalid("cannot rename active domain"));
        }
        if !self.persistent {
            return Err(Error::invalid("cannot rename a transient domain"));
        }
        if self.managed_save {
            return Err(Error::invalid(
                "domain with a managed saved state can't be renamed",
            ));
        }
        if self.name == new_name {
            return Err(Error::invalid("Can't rename domain to itself"));
        }
        if self.name_taken {
            return Err(Error::invalid(format!(
                "domain with name '{new_name}' already exists"
            )));
        }
        crate::xml::check_name(new_name)?;
        Ok(())
    }
}

#[cfg(test)]
mod rename_tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn rename_is_refused_as_libvirt_refuses_it() {
        let ok = RenameCheck {
            name: "a",
            active: false,
            persistent: true,
            managed_save: false,
            name_taken: false,
        };
        ok.check("b").expect("a shut-off persistent domain");
        let cases = [
            (
                RenameCheck { active: true, ..ok },
                "b",
                "cannot rename active domain",
            ),
            (
                RenameCheck {
                    persistent: false,
                    ..ok
                },
                "b",
                "transient",
            ),
            (
                RenameCheck {
                    managed_save: true,
                    ..ok
                },
                "b",
                "managed saved state",
            ),
            (ok, "a", "to itself"),
            (
                RenameCheck {
                    name_taken: true,
                    ..ok
                },
                "b",
                "'b' already exists",
            ),
        ];
        for (check, name, words) in cases {
            let e = check.check(name).expect_err(words);
            assert_eq!(e.code(), ErrorCode::OperationInvalid, "{e}");
            assert!(e.to_string().contains(words), "{e}");
        }
        let e = ok.check("x/y").expect_err("slash");
        assert_eq!(e.code(), ErrorCode::XmlError);
    }
}
