//! Typed QMP commands: one type per command the driver uses.
//!
//! Each type serializes to the command's `arguments` and names its reply
//! type, so a wire shape is written once (field names from QEMU's
//! `qapi/*.json`, checked against QEMU 7.2). Unknown reply fields are
//! ignored, so newer QEMUs that add fields still parse.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A QMP command: its wire name, its arguments (`Self`) and its reply.
pub trait Command: Serialize {
    /// The name after `execute`.
    const NAME: &'static str;
    /// What `return` holds.
    type Reply: DeserializeOwned;
}

/// The reply of commands that return `{}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct Empty {}

macro_rules! unit_command {
    ($(#[$doc:meta] $ty:ident = $name:literal;)*) => {$(
        #[$doc]
        #[derive(Debug, Clone, Copy, Default, Serialize)]
        pub struct $ty;
        impl Command for $ty {
            const NAME: &'static str = $name;
            type Reply = Empty;
        }
    )*};
}

unit_command! {
    /// Leave capabilities negotiation mode (sent once after the greeting).
    QmpCapabilities = "qmp_capabilities";
    /// Pause all vCPUs.
    Stop = "stop";
    /// Resume all vCPUs.
    Cont = "cont";
    /// Send the guest an ACPI power button press.
    SystemPowerdown = "system_powerdown";
    /// Reset the guest.
    SystemReset = "system_reset";
    /// Make QEMU exit at once.
    Quit = "quit";
    /// Cancel the running outgoing migration.
    MigrateCancel = "migrate_cancel";
    /// Send every vCPU a non-maskable interrupt.
    InjectNmi = "inject-nmi";
}

/// `send-key`: press `keys` together, hold them, release them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct SendKey {
    /// The keys, pressed in order and released in reverse.
    pub keys: Vec<KeyValue>,
    /// How long they stay pressed, ms (QEMU's default, 100, when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold_time: Option<u32>,
}

impl Command for SendKey {
    const NAME: &'static str = "send-key";
    type Reply = Empty;
}

/// QEMU's `KeyValue`: libvirt sends keys as numbers (QEMU's "qnum" codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "data", rename_all = "lowercase")]
pub enum KeyValue {
    /// A key number (an XT scancode, `0x80 |` the second byte for `0xe0` keys).
    Number(u32),
}

/// `set-action` (QEMU 6.0+): what QEMU does when the guest shuts down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SetAction {
    /// The action on a guest shutdown.
    pub shutdown: ShutdownAction,
}

impl Command for SetAction {
    const NAME: &'static str = "set-action";
    type Reply = Empty;
}

/// QEMU's `ShutdownAction`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ShutdownAction {
    /// Exit (QEMU's default, and the driver's outside a reboot).
    Poweroff,
    /// Stop the vCPUs in run state `shutdown` (`-no-shutdown`).
    Pause,
}

/// `query-status`.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct QueryStatus;

impl Command for QueryStatus {
    const NAME: &'static str = "query-status";
    type Reply = StatusInfo;
}

/// Reply of `query-status`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct StatusInfo {
    /// Whether vCPUs run.
    pub running: bool,
    /// QEMU's run state.
    pub status: RunState,
}

/// QEMU's `RunState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum RunState {
    /// Stopped by a debugger.
    Debug,
    /// Waiting for an incoming migration.
    Inmigrate,
    /// An internal error stopped the guest.
    InternalError,
    /// An I/O error stopped the guest.
    IoError,
    /// Paused by `stop`.
    Paused,
    /// Stopped after an outgoing migration completed.
    Postmigrate,
    /// Not started yet (`-S`).
    Prelaunch,
    /// Stopped for the final phase of a migration.
    FinishMigrate,
    /// Loading a snapshot.
    RestoreVm,
    /// Running.
    Running,
    /// Saving a snapshot.
    SaveVm,
    /// The guest shut down.
    Shutdown,
    /// The guest is suspended (S3).
    Suspended,
    /// The watchdog fired.
    Watchdog,
    /// The guest panicked.
    GuestPanicked,
    /// COLO fault tolerance.
    Colo,
    /// A state this driver does not know.
    #[serde(other)]
    Unknown,
}

/// `query-cpus-fast`.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct QueryCpusFast;

impl Command for QueryCpusFast {
    const NAME: &'static str = "query-cpus-fast";
    type Reply = Vec<CpuInfoFast>;
}

/// One vCPU in the reply of `query-cpus-fast`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct CpuInfoFast {
    /// Index of the vCPU.
    pub cpu_index: u32,
    /// Host thread id running it (for CPU time from `/proc`).
    pub thread_id: i32,
}

/// `query-blockstats`: I/O counters of every disk front end.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct QueryBlockstats;

impl Command for QueryBlockstats {
    const NAME: &'static str = "query-blockstats";
    type Reply = Vec<BlockStatsEntry>;
}

/// One disk of [`QueryBlockstats`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct BlockStatsEntry {
    /// The top node (`drive-<target>` for the disks this driver attaches,
    /// until an external snapshot puts an overlay on top).
    pub node_name: Option<String>,
    /// The guest device: its qdev id or QOM path (see [`qdev_target`]).
    #[serde(default)]
    pub qdev: Option<String>,
    /// The counters.
    pub stats: BlockDeviceStats,
}

/// The counters this driver reports of a [`BlockStatsEntry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(default)]
pub struct BlockDeviceStats {
    /// Bytes read.
    pub rd_bytes: i64,
    /// Bytes written.
    pub wr_bytes: i64,
    /// Read requests.
    pub rd_operations: i64,
    /// Write requests.
    pub wr_operations: i64,
    /// Flush requests.
    pub flush_operations: i64,
    /// Time spent reading, ns.
    pub rd_total_time_ns: i64,
    /// Time spent writing, ns.
    pub wr_total_time_ns: i64,
    /// Time spent flushing, ns.
    pub flush_total_time_ns: i64,
}

/// `query-block`: every disk front end and the image behind it.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct QueryBlock;

impl Command for QueryBlock {
    const NAME: &'static str = "query-block";
    type Reply = Vec<BlockEntry>;
}

/// One disk of [`QueryBlock`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default)]
pub struct BlockEntry {
    /// The guest device: its qdev id or QOM path (see [`qdev_target`]).
    pub qdev: Option<String>,
    /// The medium, absent for an empty drive.
    pub inserted: Option<BlockInserted>,
}

/// The disk target (device id) in a `qdev` of `query-block` or
/// `query-blockstats`: the id itself, or for virtio disks the QOM path of
/// the proxy's backend (`/machine/peripheral/vda/virtio-backend`). Unlike
/// the top node's name it stays the same when an external snapshot puts an
/// overlay on top.
pub fn qdev_target(qdev: &str) -> &str {
    qdev.strip_prefix("/machine/peripheral/")
        .and_then(|p| p.split('/').next())
        .unwrap_or(qdev)
}

/// Whether a block backend with `qdev` and top node `node` belongs to the
/// disk with target `target`.
pub fn is_disk(qdev: Option<&str>, node: Option<&str>, target: &str) -> bool {
    match qdev {
        Some(q) if !q.is_empty() => qdev_target(q) == target,
        _ => node == Some(crate::command::disk_node(target).as_str()),
    }
}

/// The medium of a [`BlockEntry`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct BlockInserted {
    /// The top node (`drive-<target>`).
    pub node_name: Option<String>,
    /// The image.
    pub image: BlockImage,
}

/// The image of a [`BlockInserted`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct BlockImage {
    /// The size the guest sees, bytes.
    pub virtual_size: u64,
    /// Host storage in use, bytes (absent when QEMU cannot tell).
    pub actual_size: Option<u64>,
}

/// `query-balloon` (fails with `DeviceNotActive` when there is no balloon).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct QueryBalloon;

impl Command for QueryBalloon {
    const NAME: &'static str = "query-balloon";
    type Reply = BalloonInfo;
}

/// Reply of `query-balloon`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct BalloonInfo {
    /// Guest memory in bytes after ballooning.
    pub actual: u64,
}

/// `human-monitor-command`: run an HMP command and get its text output.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct HumanMonitorCommand {
    /// The HMP command line, e.g. `xp /2xg 0x200000`.
    pub command_line: String,
}

impl Command for HumanMonitorCommand {
    const NAME: &'static str = "human-monitor-command";
    type Reply = String;
}

/// `getfd`: store the file descriptor sent with this command under a name.
#[derive(Debug, Clone, Serialize)]
pub struct Getfd {
    /// The name later commands use (`fd:NAME` in a migration URI).
    pub fdname: String,
}

impl Command for Getfd {
    const NAME: &'static str = "getfd";
    type Reply = Empty;
}

/// `balloon`: ask the guest's balloon driver for a new memory size.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Balloon {
    /// Target size, bytes.
    pub value: u64,
}

impl Command for Balloon {
    const NAME: &'static str = "balloon";
    type Reply = Empty;
}

/// `qom-set`: one property of a QOM object (e.g. the balloon's
/// `guest-stats-polling-interval`).
#[derive(Debug, Clone, Serialize)]
pub struct QomSet<'a> {
    /// The object, e.g. `/machine/peripheral/balloon0`.
    pub path: &'a str,
    /// The property.
    pub property: &'a str,
    /// Its new value.
    pub value: serde_json::Value,
}

impl Command for QomSet<'_> {
    const NAME: &'static str = "qom-set";
    type Reply = Empty;
}

/// `qom-get`: one property of a QOM object, as QEMU gives it.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct QomGet<'a> {
    /// The object.
    pub path: &'a str,
    /// The property.
    pub property: &'a str,
}

impl Command for QomGet<'_> {
    const NAME: &'static str = "qom-get";
    type Reply = serde_json::Value;
}

/// `query-hotpluggable-cpus`: the vCPU slots of a guest started with
/// `-smp N,maxcpus=M`, plugged or not.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct QueryHotpluggableCpus;

impl Command for QueryHotpluggableCpus {
    const NAME: &'static str = "query-hotpluggable-cpus";
    type Reply = Vec<HotpluggableCpu>;
}

/// One slot in the reply of `query-hotpluggable-cpus`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct HotpluggableCpu {
    /// The device type to `device_add` into it, e.g. `qemu64-x86_64-cpu`.
    #[serde(rename = "type")]
    pub cpu_type: String,
    /// vCPUs the slot holds.
    pub vcpus_count: u32,
    /// Where the slot is in the topology.
    pub props: CpuProps,
    /// The plugged CPU's QOM path; none for an empty slot.
    #[serde(default)]
    pub qom_path: Option<String>,
}

/// A vCPU slot's place in the topology (`CpuInstanceProperties`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct CpuProps {
    /// NUMA node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<u32>,
    /// Socket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket_id: Option<u32>,
    /// Die within the socket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub die_id: Option<u32>,
    /// Core within the die.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub core_id: Option<u32>,
    /// Thread within the core.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<u32>,
}

/// `device_add` of a vCPU into a slot `query-hotpluggable-cpus` listed.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceAddCpu {
    /// The slot's `type`.
    pub driver: String,
    /// The device id (`vcpuN`, as libvirt names them).
    pub id: String,
    /// The slot's `props`.
    #[serde(flatten)]
    pub props: CpuProps,
}

impl Command for DeviceAddCpu {
    const NAME: &'static str = "device_add";
    type Reply = Empty;
}

/// `device_del`: ask the guest to release a device; `DEVICE_DELETED`
/// follows once it has.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceDel {
    /// The device id.
    pub id: String,
}

impl Command for DeviceDel {
    const NAME: &'static str = "device_del";
    type Reply = Empty;
}

/// `closefd`: forget a descriptor stored by `getfd`.
#[derive(Debug, Clone, Serialize)]
pub struct Closefd {
    /// The name given to `getfd`.
    pub fdname: String,
}

impl Command for Closefd {
    const NAME: &'static str = "closefd";
    type Reply = Empty;
}

/// `add-fd`: put the file descriptor sent with this command in an fd set.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct AddFd {
    /// The set to add to; QEMU allocates one when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fdset_id: Option<i64>,
    /// Free text kept with the descriptor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opaque: Option<String>,
}

impl Command for AddFd {
    const NAME: &'static str = "add-fd";
    type Reply = AddFdInfo;
}

/// Reply of `add-fd`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct AddFdInfo {
    /// The set the descriptor went into.
    pub fdset_id: i64,
    /// The descriptor's number inside QEMU (`/dev/fdset/N` opens a dup of it).
    pub fd: i64,
}

/// `remove-fd`.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct RemoveFd {
    /// The set.
    pub fdset_id: i64,
    /// One descriptor of the set, or all when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fd: Option<i64>,
}

impl Command for RemoveFd {
    const NAME: &'static str = "remove-fd";
    type Reply = Empty;
}

/// `migrate`: start an outgoing migration to `uri` (`tcp:`, `fd:`, `exec:`, `unix:`).
#[derive(Debug, Clone, Serialize)]
pub struct Migrate {
    /// Where to send the stream.
    pub uri: String,
    /// Reconnect a post-copy migration paused on a broken stream
    /// (`postcopy-paused`) to a destination waiting in `migrate-recover`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub resume: bool,
}

impl Command for Migrate {
    const NAME: &'static str = "migrate";
    type Reply = Empty;
}

/// `migrate-incoming`: start listening for the migration a `-incoming defer` QEMU waits for.
#[derive(Debug, Clone, Serialize)]
pub struct MigrateIncoming {
    /// Where to receive from.
    pub uri: String,
}

impl Command for MigrateIncoming {
    const NAME: &'static str = "migrate-incoming";
    type Reply = Empty;
}

/// `migrate-recover`: on a destination whose incoming post-copy migration
/// is `postcopy-paused`, listen on `uri` for the source's `migrate` with
/// `resume: true`.
#[derive(Debug, Clone, Serialize)]
pub struct MigrateRecover {
    /// Where to listen.
    pub uri: String,
}

impl Command for MigrateRecover {
    const NAME: &'static str = "migrate-recover";
    type Reply = Empty;
}

/// `migrate-continue`: go on from a pause (`pre-switchover`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MigrateContinue {
    /// The state the migration is paused in.
    pub state: MigrationStatus,
}

impl Command for MigrateContinue {
    const NAME: &'static str = "migrate-continue";
    type Reply = Empty;
}

/// `migrate-start-postcopy`: switch the outgoing migration to post-copy
/// (needs the `postcopy-ram` capability on both ends).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct MigrateStartPostcopy;

impl Command for MigrateStartPostcopy {
    const NAME: &'static str = "migrate-start-postcopy";
    type Reply = Empty;
}

/// `query-migrate`.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct QueryMigrate;

impl Command for QueryMigrate {
    const NAME: &'static str = "query-migrate";
    type Reply = MigrationInfo;
}

/// QEMU's `MigrationStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum MigrationStatus {
    /// No migration ever ran.
    None,
    /// Setting up.
    Setup,
    /// Being cancelled.
    Cancelling,
    /// Cancelled.
    Cancelled,
    /// Sending.
    Active,
    /// Post-copy phase.
    PostcopyActive,
    /// Post-copy paused on a network failure.
    PostcopyPaused,
    /// Post-copy recovering.
    PostcopyRecover,
    /// Done.
    Completed,
    /// Failed.
    Failed,
    /// COLO.
    Colo,
    /// Paused before switch-over (capability `pause-before-switchover`).
    PreSwitchover,
    /// Migrating device state.
    Device,
    /// Waiting for devices to unplug.
    WaitUnplug,
    /// A status this driver does not know.
    #[serde(other)]
    Unknown,
}

impl MigrationStatus {
    /// Whether the migration has switched to post-copy (and not ended).
    pub fn is_postcopy(self) -> bool {
        matches!(
            self,
            Self::PostcopyActive | Self::PostcopyPaused | Self::PostcopyRecover
        )
    }
}

/// Reply of `query-migrate`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct MigrationInfo {
    /// Absent before the first migration.
    #[serde(default)]
    pub status: Option<MigrationStatus>,
    /// RAM statistics, while active and after completion.
    #[serde(default)]
    pub ram: Option<MigrationRam>,
    /// Milliseconds since the migration started (or its total when done).
    #[serde(default)]
    pub total_time: Option<u64>,
    /// Measured downtime in ms, once completed.
    #[serde(default)]
    pub downtime: Option<u64>,
    /// Expected downtime in ms, while active.
    #[serde(default)]
    pub expected_downtime: Option<u64>,
    /// Set-up time in ms.
    #[serde(default)]
    pub setup_time: Option<u64>,
    /// Why it failed.
    #[serde(default)]
    pub error_desc: Option<String>,
    /// Statistics of the `compress` capability, when it is on.
    #[serde(default)]
    pub compression: Option<MigrationCompression>,
    /// Statistics of the `xbzrle` capability, when it is on.
    #[serde(default)]
    pub xbzrle_cache: Option<MigrationXbzrle>,
}

/// `compression` part of [`MigrationInfo`] (the `mt` method).
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct MigrationCompression {
    /// Pages sent compressed.
    #[serde(deserialize_with = "non_negative")]
    pub pages: u64,
    /// Bytes those pages took once compressed.
    #[serde(deserialize_with = "non_negative")]
    pub compressed_size: u64,
}

/// A counter QEMU declares as a signed `int`: QEMU 7.2's `compressed-size`
/// is negative early in a migration (it subtracts each page's 8-byte header
/// from what it has flushed so far), so below zero reads as 0.
fn non_negative<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let v = i64::deserialize(d)?;
    Ok(u64::try_from(v).unwrap_or(0))
}

/// `xbzrle-cache` part of [`MigrationInfo`].
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct MigrationXbzrle {
    /// The cache size, bytes.
    pub cache_size: u64,
    /// Bytes sent as XBZRLE deltas.
    pub bytes: u64,
    /// Pages sent as XBZRLE deltas.
    pub pages: u64,
    /// Pages not found in the cache.
    pub cache_miss: u64,
    /// Pages whose delta was larger than the page.
    pub overflow: u64,
}

/// RAM part of [`MigrationInfo`].
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct MigrationRam {
    /// Bytes sent.
    pub transferred: u64,
    /// Bytes still to send.
    pub remaining: u64,
    /// Guest RAM size.
    pub total: u64,
    /// Zero pages (sent as a flag).
    pub duplicate: u64,
    /// Normal pages sent.
    pub normal: u64,
    /// Bytes of normal pages sent.
    pub normal_bytes: u64,
    /// Pages dirtied per second.
    pub dirty_pages_rate: u64,
    /// Throughput in Mbit/s.
    pub mbps: f64,
    /// Dirty-bitmap syncs (iterations).
    pub dirty_sync_count: u64,
    /// Page size in bytes.
    pub page_size: u64,
    /// Bytes sent over the `multifd` channels (0 without `multifd`).
    pub multifd_bytes: u64,
    /// Dirty-bitmap syncs at which a `zero-copy-send` migration found the
    /// kernel had copied pages after all (QEMU 7.1+; 0 without zero-copy,
    /// and over loopback every sync, the kernel copying what it loops back).
    pub dirty_sync_missed_zero_copy: u64,
    /// Pages the destination asked for during post-copy.
    pub postcopy_requests: u64,
}

/// One capability for `migrate-set-capabilities` (and of the
/// `query-migrate-capabilities` reply).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationCapability {
    /// Capability name (`xbzrle`, `auto-converge`, `multifd`, `zero-copy-send`, ...).
    pub capability: String,
    /// On or off.
    pub state: bool,
}

/// `migrate-set-capabilities`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MigrateSetCapabilities {
    /// The capabilities to change.
    pub capabilities: Vec<MigrationCapability>,
}

impl Command for MigrateSetCapabilities {
    const NAME: &'static str = "migrate-set-capabilities";
    type Reply = Empty;
}

/// `query-migrate-capabilities`: the state of every migration capability.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct QueryMigrateCapabilities;

impl Command for QueryMigrateCapabilities {
    const NAME: &'static str = "query-migrate-capabilities";
    type Reply = Vec<MigrationCapability>;
}

/// `query-migrate-parameters`.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct QueryMigrateParameters;

impl Command for QueryMigrateParameters {
    const NAME: &'static str = "query-migrate-parameters";
    type Reply = MigrationParameters;
}

/// The part of the `query-migrate-parameters` reply this driver reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct MigrationParameters {
    /// Channels `multifd` opens (QEMU's default is 2).
    pub multifd_channels: Option<u32>,
    /// The XBZRLE page cache, bytes (QEMU's default is 64 MiB).
    pub xbzrle_cache_size: Option<u64>,
    /// zlib level of the `compress` capability (QEMU's default is 1).
    pub compress_level: Option<u32>,
    /// Compression threads on the source (QEMU's default is 8).
    pub compress_threads: Option<u32>,
    /// Decompression threads on the destination (QEMU's default is 2).
    pub decompress_threads: Option<u32>,
}

/// `migrate-set-parameters`; only the fields that are set are sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct MigrateSetParameters {
    /// Bytes per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_bandwidth: Option<u64>,
    /// Bytes per second of the post-copy phase; 0 = unlimited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_postcopy_bandwidth: Option<u64>,
    /// Milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub downtime_limit: Option<u64>,
    /// Parallel connections with `multifd`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub multifd_channels: Option<u32>,
    /// `none`, `zlib` or `zstd` with `multifd`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub multifd_compression: Option<String>,
    /// XBZRLE cache in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xbzrle_cache_size: Option<u64>,
    /// zlib level (0-9) with the `compress` capability.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compress_level: Option<u32>,
    /// Compression threads with the `compress` capability (source).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compress_threads: Option<u32>,
    /// Decompression threads with the `compress` capability (destination).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decompress_threads: Option<u32>,
    /// Initial throttle with `auto-converge`, percent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_throttle_initial: Option<u32>,
    /// Throttle step with `auto-converge`, percent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_throttle_increment: Option<u32>,
    /// Id of the `tls-creds-x509` object securing the stream; `""` = no TLS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_creds: Option<String>,
    /// Name the source checks the destination's certificate against (when
    /// empty, the host of the `migrate` URI); `""` resets it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_hostname: Option<String>,
}

impl Command for MigrateSetParameters {
    const NAME: &'static str = "migrate-set-parameters";
    type Reply = Empty;
}

/// `object-add` of a `tls-creds-x509` object: x509 credentials loaded from
/// `dir` (`ca-cert.pem`, `server-cert.pem`/`server-key.pem` or
/// `client-cert.pem`/`client-key.pem`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ObjectAddTlsCredsX509 {
    /// Always `tls-creds-x509`.
    pub qom_type: &'static str,
    /// The object id later named by `tls-creds`.
    pub id: String,
    /// Directory holding the PEM files.
    pub dir: String,
    /// `server` (the incoming side) or `client` (the outgoing side).
    pub endpoint: &'static str,
    /// Whether the peer must present a certificate from the CA.
    pub verify_peer: bool,
}

impl Command for ObjectAddTlsCredsX509 {
    const NAME: &'static str = "object-add";
    type Reply = Empty;
}

/// `object-del`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectDel {
    /// Id of the object to remove.
    pub id: String,
}

impl Command for ObjectDel {
    const NAME: &'static str = "object-del";
    type Reply = Empty;
}

/// `query-vnc`.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct QueryVnc;

impl Command for QueryVnc {
    const NAME: &'static str = "query-vnc";
    type Reply = VncInfo;
}

/// Reply of `query-vnc`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct VncInfo {
    /// Whether a VNC server runs.
    pub enabled: bool,
    /// The listening port, as text (absent when disabled).
    #[serde(default)]
    pub service: Option<String>,
}

/// `query-spice`.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct QuerySpice;

impl Command for QuerySpice {
    const NAME: &'static str = "query-spice";
    type Reply = SpiceInfo;
}

/// Reply of `query-spice`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SpiceInfo {
    /// Whether a SPICE server runs.
    pub enabled: bool,
    /// The plain listening port (absent when disabled or TLS only).
    #[serde(default)]
    pub port: Option<i64>,
    /// The TLS port, if any.
    #[serde(default, rename = "tls-port")]
    pub tls_port: Option<i64>,
}

/// `query-chardev`.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct QueryChardev;

impl Command for QueryChardev {
    const NAME: &'static str = "query-chardev";
    type Reply = Vec<ChardevInfo>;
}

/// One entry of `query-chardev`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ChardevInfo {
    /// The chardev id (`charserial0`).
    pub label: String,
    /// Its backend as text: `pty:/dev/pts/3`, `unix:/run/…,server=on`.
    pub filename: String,
    /// Whether the guest side (e.g. a virtio port) is open.
    #[serde(default, rename = "frontend-open")]
    pub frontend_open: Option<bool>,
}

impl ChardevInfo {
    /// The pty path of a pty backend.
    pub fn pty_path(&self) -> Option<&str> {
        self.filename.strip_prefix("pty:")
    }
}

/// `client_migrate_info`: where the graphics clients should reconnect once
/// the guest has migrated (SPICE only; libvirt's graphics relocation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientMigrateInfo {
    /// `spice`.
    pub protocol: String,
    /// Destination host for the clients.
    pub hostname: String,
    /// Plain port on the destination.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    /// TLS port on the destination.
    #[serde(rename = "tls-port", skip_serializing_if = "Option::is_none")]
    pub tls_port: Option<i64>,
    /// Subject of the destination's TLS certificate.
    #[serde(rename = "cert-subject", skip_serializing_if = "Option::is_none")]
    pub cert_subject: Option<String>,
}

impl Command for ClientMigrateInfo {
    const NAME: &'static str = "client_migrate_info";
    type Reply = Empty;
}

/// `pmemsave`: write guest-physical memory to a file (on QEMU's side).
#[derive(Debug, Clone, Serialize)]
pub struct Pmemsave {
    /// Guest-physical start address.
    pub val: u64,
    /// Bytes.
    pub size: u64,
    /// Output file, opened by QEMU.
    pub filename: String,
}

impl Command for Pmemsave {
    const NAME: &'static str = "pmemsave";
    type Reply = Empty;
}

#[cfg(test)]
mod tests {
    #[test]
    fn disks_are_found_by_device_not_top_node() {
        assert_eq!(qdev_target("/machine/peripheral/vda/virtio-backend"), "vda");
        assert_eq!(qdev_target("sda"), "sda");
        // After an external snapshot the top node is the overlay's.
        let qdev = Some("/machine/peripheral/vda/virtio-backend");
        assert!(is_disk(qdev, Some("snap0-1-vda"), "vda"));
        assert!(!is_disk(qdev, Some("drive-vdb"), "vdb"));
        assert!(is_disk(None, Some("drive-vdb"), "vdb"));
        assert!(is_disk(Some(""), Some("drive-vdb"), "vdb"));
    }

    use super::*;

    fn args<C: Command>(c: &C) -> String {
        serde_json::to_string(c).expect("serializes")
    }

    #[test]
    fn argument_names_follow_the_qapi_schema() {
        assert_eq!(
            args(&HumanMonitorCommand {
                command_line: "info status".into()
            }),
            r#"{"command-line":"info status"}"#
        );
        assert_eq!(
            args(&AddFd {
                fdset_id: Some(3),
                opaque: None
            }),
            r#"{"fdset-id":3}"#
        );
        assert_eq!(
            args(&MigrateSetParameters {
                max_bandwidth: Some(1 << 30),
                downtime_limit: Some(300),
                ..Default::default()
            }),
            r#"{"max-bandwidth":1073741824,"downtime-limit":300}"#
        );
        assert_eq!(args(&Stop), "null");
        assert_eq!(
            args(&SendKey {
                keys: vec![KeyValue::Number(0x1d), KeyValue::Number(0xd3)],
                hold_time: Some(50),
            }),
            r#"{"keys":[{"type":"number","data":29},{"type":"number","data":211}],"hold-time":50}"#
        );
        assert_eq!(
            args(&SendKey {
                keys: vec![KeyValue::Number(0x1e)],
                hold_time: None,
            }),
            r#"{"keys":[{"type":"number","data":30}]}"#
        );
        assert_eq!(
            args(&SetAction {
                shutdown: ShutdownAction::Pause
            }),
            r#"{"shutdown":"pause"}"#
        );
        assert_eq!(
            args(&MigrateSetParameters {
                tls_creds: Some(String::new()),
                tls_hostname: Some("192.0.2.1".into()),
                ..Default::default()
            }),
            r#"{"tls-creds":"","tls-hostname":"192.0.2.1"}"#
        );
        assert_eq!(
            args(&ObjectAddTlsCredsX509 {
                qom_type: "tls-creds-x509",
                id: "objlibvirt_migrate_tls0".into(),
                dir: "/etc/pki/qemu".into(),
                endpoint: "server",
                verify_peer: true,
            }),
            r#"{"qom-type":"tls-creds-x509","id":"objlibvirt_migrate_tls0","dir":"/etc/pki/qemu","endpoint":"server","verify-peer":true}"#
        );
    }

    #[test]
    fn parses_query_migrate_reply_of_a_completed_migration() {
        let reply = r#"{"status": "completed", "setup-time": 2, "downtime": 8, "total-time": 30,
            "ram": {"total": 268435456, "postcopy-requests": 0, "dirty-sync-count": 3,
            "multifd-bytes": 0, "pages-per-second": 1000, "downtime-bytes": 1, "page-size": 4096,
            "remaining": 0, "postcopy-bytes": 0, "mbps": 312.5, "transferred": 1200000,
            "dirty-sync-missed-zero-copy": 0, "precopy-bytes": 12, "duplicate": 65000,
            "dirty-pages-rate": 0, "skipped": 0, "normal-bytes": 1000000, "normal": 250}}"#;
        let info: MigrationInfo = serde_json::from_str(reply).expect("parses");
        assert_eq!(info.status, Some(MigrationStatus::Completed));
        assert_eq!(info.downtime, Some(8));
        let ram = info.ram.expect("ram stats");
        assert_eq!(ram.transferred, 1_200_000);
        assert_eq!(ram.dirty_sync_count, 3);
        assert_eq!(ram.multifd_bytes, 0);
    }

    #[test]
    fn a_negative_compressed_size_early_in_an_mt_migration_reads_as_zero() {
        // As QEMU 7.2 answered one pass into an mt+xbzrle migration.
        let reply = r#"{"status": "active", "compression": {"busy-rate": 0, "compressed-size": -32,
            "pages": 0, "compression-rate": 0, "busy": 0},
            "xbzrle-cache": {"cache-size": 16777216, "bytes": 0, "pages": 0, "cache-miss": 0,
            "cache-miss-rate": 0, "encoding-rate": 0, "overflow": 0}}"#;
        let info: MigrationInfo = serde_json::from_str(reply).expect("parses");
        let c = info.compression.expect("compression stats");
        assert_eq!((c.pages, c.compressed_size), (0, 0));
    }

    #[test]
    fn parses_multifd_capability_and_parameters() {
        let caps: Vec<MigrationCapability> = serde_json::from_str(
            r#"[{"state": false, "capability": "xbzrle"}, {"state": true, "capability": "multifd"}]"#,
        )
        .expect("parses");
        assert!(caps.iter().any(|c| c.capability == "multifd" && c.state));
        let params: MigrationParameters = serde_json::from_str(
            r#"{"downtime-limit": 300, "multifd-channels": 4, "tls-authz": ""}"#,
        )
        .expect("parses");
        assert_eq!(params.multifd_channels, Some(4));
        assert_eq!(
            args(&MigrateSetParameters {
                multifd_channels: Some(4),
                ..Default::default()
            }),
            r#"{"multifd-channels":4}"#
        );
    }

    #[test]
    fn unknown_states_do_not_fail_parsing() {
        let s: StatusInfo = serde_json::from_str(
            r#"{"running": false, "singlestep": false, "status": "brand-new"}"#,
        )
        .expect("parses");
        assert_eq!(s.status, RunState::Unknown);
        let s: StatusInfo =
            serde_json::from_str(r#"{"running": false, "status": "prelaunch"}"#).expect("parses");
        assert_eq!(s.status, RunState::Prelaunch);
    }
}

/// A TCP address of QEMU's `InetSocketAddress` (the port is a string).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InetSocketAddress {
    /// Host name or IP literal.
    pub host: String,
    /// Port number as text.
    pub port: String,
}

/// A UNIX socket address of QEMU's `UnixSocketAddress`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnixSocketAddress {
    /// The socket's path.
    pub path: String,
}

/// QEMU's flat `SocketAddress` (`blockdev-add`'s NBD `server`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum SocketAddress {
    /// TCP.
    Inet(InetSocketAddress),
    /// UNIX socket.
    Unix(UnixSocketAddress),
}

/// QEMU's `SocketAddressLegacy` (`nbd-server-start`'s `addr`): the same
/// addresses with their fields under `data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "data", rename_all = "lowercase")]
pub enum SocketAddressLegacy {
    /// TCP.
    Inet(InetSocketAddress),
    /// UNIX socket.
    Unix(UnixSocketAddress),
}

impl From<SocketAddress> for SocketAddressLegacy {
    fn from(a: SocketAddress) -> Self {
        match a {
            SocketAddress::Inet(i) => SocketAddressLegacy::Inet(i),
            SocketAddress::Unix(u) => SocketAddressLegacy::Unix(u),
        }
    }
}

/// `nbd-server-start`: QEMU's built-in NBD server (one per QEMU).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct NbdServerStart {
    /// Where to listen.
    pub addr: SocketAddressLegacy,
    /// A `tls-creds-x509` object: clients must speak TLS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_creds: Option<String>,
}

impl Command for NbdServerStart {
    const NAME: &'static str = "nbd-server-start";
    type Reply = Empty;
}

unit_command! {
    /// Stop the NBD server and close all its exports.
    NbdServerStop = "nbd-server-stop";
}

/// `block-export-add` of an NBD export of a block node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct BlockExportAddNbd {
    /// Always `nbd`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The export's id (for `block-export-del`).
    pub id: String,
    /// The node exported.
    pub node_name: String,
    /// The name NBD clients ask for.
    pub name: String,
    /// Whether clients may write.
    pub writable: bool,
}

impl Command for BlockExportAddNbd {
    const NAME: &'static str = "block-export-add";
    type Reply = Empty;
}

/// `blockdev-add` of an NBD client node connected to `server`'s `export`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct BlockdevAddNbd {
    /// Always `nbd`.
    pub driver: &'static str,
    /// The new node's name.
    pub node_name: String,
    /// The NBD server.
    pub server: SocketAddress,
    /// The export to open.
    pub export: String,
    /// A `tls-creds-x509` object: connect with TLS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_creds: Option<String>,
    /// The host name the server's certificate must carry (with TLS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_hostname: Option<String>,
}

impl Command for BlockdevAddNbd {
    const NAME: &'static str = "blockdev-add";
    type Reply = Empty;
}

/// `blockdev-del`: remove a node nothing uses any more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct BlockdevDel {
    /// The node.
    pub node_name: String,
}

impl Command for BlockdevDel {
    const NAME: &'static str = "blockdev-del";
    type Reply = Empty;
}

/// `blockdev-mirror`: copy `device` to the existing node `target`, then
/// keep them in sync (the job is `ready` once they are).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct BlockdevMirror {
    /// The job's id.
    pub job_id: String,
    /// The source node.
    pub device: String,
    /// The target node.
    pub target: String,
    /// `full` (the whole chain) or `top` (only the top image's data).
    pub sync: &'static str,
    /// Bytes per second, 0 for unlimited.
    pub speed: u64,
    /// Whether the job disappears by itself once concluded (false: it
    /// waits for `job-dismiss`, so its outcome can be read).
    pub auto_dismiss: bool,
    /// `write-blocking`: a guest write completes only once the target has
    /// it too, so the mirror converges whatever the guest writes
    /// (`VIR_MIGRATE_NON_SHARED_SYNCHRONOUS_WRITES`); absent: QEMU's
    /// `background`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub copy_mode: Option<&'static str>,
}

impl Command for BlockdevMirror {
    const NAME: &'static str = "blockdev-mirror";
    type Reply = Empty;
}

/// `block-job-cancel`: stop a block job. A `ready` mirror cancelled without
/// `force` first copies what is left, so the target is a consistent copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockJobCancel {
    /// The job's id.
    pub device: String,
    /// Stop at once, even a `ready` mirror.
    pub force: bool,
}

impl Command for BlockJobCancel {
    const NAME: &'static str = "block-job-cancel";
    type Reply = Empty;
}

/// `job-dismiss`: remove a concluded job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobDismiss {
    /// The job's id.
    pub id: String,
}

impl Command for JobDismiss {
    const NAME: &'static str = "job-dismiss";
    type Reply = Empty;
}

/// `query-block-jobs`.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct QueryBlockJobs;

impl Command for QueryBlockJobs {
    const NAME: &'static str = "query-block-jobs";
    type Reply = Vec<BlockJobInfo>;
}

/// QEMU's `JobStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum JobStatus {
    /// Being created.
    Created,
    /// Working.
    Running,
    /// Paused.
    Paused,
    /// A mirror whose target has caught up (and is kept in sync).
    Ready,
    /// A paused `ready` job.
    Standby,
    /// Waiting for its transaction.
    Waiting,
    /// Waiting to be finalized.
    Pending,
    /// Being cancelled or failed.
    Aborting,
    /// Finished (successfully or not); waits for `job-dismiss`.
    Concluded,
    /// Gone.
    Null,
    /// A status this driver does not know.
    #[serde(other)]
    Unknown,
}

/// One job in the reply of `query-block-jobs`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BlockJobInfo {
    /// The job's id.
    pub device: String,
    /// Bytes the job will have processed (grows with new writes).
    pub len: u64,
    /// Bytes processed.
    pub offset: u64,
    /// Whether a mirror is in sync.
    #[serde(default)]
    pub ready: bool,
    /// Its state.
    pub status: JobStatus,
    /// Why it failed, once concluded unsuccessfully.
    #[serde(default)]
    pub error: Option<String>,
}

/// `query-named-block-nodes`.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct QueryNamedBlockNodes {
    /// Only the nodes themselves, not their children inline.
    pub flat: bool,
}

impl Command for QueryNamedBlockNodes {
    const NAME: &'static str = "query-named-block-nodes";
    type Reply = Vec<BlockNodeInfo>;
}

/// One node in the reply of `query-named-block-nodes`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct BlockNodeInfo {
    /// The node's name.
    #[serde(default)]
    pub node_name: Option<String>,
    /// The block driver (`qcow2`, `raw`, `nbd`, `file`).
    pub drv: String,
    /// What the node presents.
    pub image: BlockImageInfo,
}

/// The image of a node (QEMU's `ImageInfo`, the fields the driver reads).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct BlockImageInfo {
    /// Size the guest sees, in bytes.
    pub virtual_size: u64,
}

/// `query-machines`: the machine types the emulator offers.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct QueryMachines;

impl Command for QueryMachines {
    const NAME: &'static str = "query-machines";
    type Reply = Vec<MachineInfo>;
}

/// One machine type of [`QueryMachines`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MachineInfo {
    /// Its name (`pc-i440fx-7.2`).
    pub name: String,
    /// The alias that names it (`pc`), if any.
    #[serde(default)]
    pub alias: Option<String>,
    /// The most vCPUs it can have.
    #[serde(rename = "cpu-max")]
    pub cpu_max: u32,
    /// Whether it is the emulator's default.
    #[serde(rename = "is-default", default)]
    pub is_default: bool,
}

/// `query-cpu-definitions`: the named CPU models and whether the
/// accelerator can run them.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct QueryCpuDefinitions;

impl Command for QueryCpuDefinitions {
    const NAME: &'static str = "query-cpu-definitions";
    type Reply = Vec<CpuDefinition>;
}

/// One CPU model of [`QueryCpuDefinitions`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CpuDefinition {
    /// Its name (`EPYC`).
    pub name: String,
    /// Features the accelerator lacks for it; `None` when QEMU cannot tell.
    #[serde(rename = "unavailable-features", default)]
    pub unavailable_features: Option<Vec<String>>,
    /// Deprecated by QEMU.
    #[serde(default)]
    pub deprecated: bool,
}

/// `dump-guest-memory`: write the guest's memory as a core file (ELF or a
/// kdump/win-dmp format) to `protocol` (`fd:NAME`); with `detach` the
/// command returns at once and `DUMP_COMPLETED` reports the end.
#[derive(Debug, Clone, Serialize)]
pub struct DumpGuestMemory {
    /// Map guest-physical to guest-virtual addresses (libvirt: false).
    pub paging: bool,
    /// Where to write: `fd:NAME` or `file:PATH`.
    pub protocol: String,
    /// Run in the background.
    pub detach: bool,
    /// `elf` (QEMU's default when absent), `kdump-zlib`, …
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

impl Command for DumpGuestMemory {
    const NAME: &'static str = "dump-guest-memory";
    type Reply = Empty;
}

/// `query-dump`: the progress of the (last) `dump-guest-memory`.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct QueryDump;

impl Command for QueryDump {
    const NAME: &'static str = "query-dump";
    type Reply = DumpQueryResult;
}

/// `DumpStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DumpStatus {
    /// No dump was started.
    None,
    /// Writing.
    Active,
    /// Done.
    Completed,
    /// Failed (the event's `error` says why).
    Failed,
}

/// `DumpQueryResult`: reply of `query-dump`, and `DUMP_COMPLETED`'s `result`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct DumpQueryResult {
    /// Where the dump is.
    pub status: DumpStatus,
    /// Bytes written.
    pub completed: u64,
    /// Bytes to write in all.
    pub total: u64,
}

/// `query-dump-guest-memory-capability`: the formats this QEMU writes.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct QueryDumpGuestMemoryCapability;

impl Command for QueryDumpGuestMemoryCapability {
    const NAME: &'static str = "query-dump-guest-memory-capability";
    type Reply = DumpGuestMemoryCapability;
}

/// Reply of [`QueryDumpGuestMemoryCapability`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DumpGuestMemoryCapability {
    /// `elf`, `kdump-zlib`, `kdump-lzo`, `kdump-snappy`, `win-dmp`.
    pub formats: Vec<String>,
}

/// `screendump`: write the display of `device`'s `head` (the primary
/// console when absent) to `filename`, as `format` (`ppm` when absent;
/// `png` since QEMU 7.1 when built with libpng).
#[derive(Debug, Clone, Serialize)]
pub struct Screendump {
    /// File written by QEMU.
    pub filename: String,
    /// The video device's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// The head of `device`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head: Option<u32>,
    /// `ppm` or `png`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<&'static str>,
}

impl Command for Screendump {
    const NAME: &'static str = "screendump";
    type Reply = Empty;
}

/// `snapshot-save` (QEMU 6.0+): a job that writes an internal snapshot
/// called `tag` of the disks `devices`, the VM state going into `vmstate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct SnapshotSave {
    /// The job's id.
    pub job_id: String,
    /// The snapshot's name inside the images.
    pub tag: String,
    /// The node that receives the VM state.
    pub vmstate: String,
    /// The nodes to snapshot (block node names).
    pub devices: Vec<String>,
}

impl Command for SnapshotSave {
    const NAME: &'static str = "snapshot-save";
    type Reply = Empty;
}

/// `snapshot-load` (QEMU 6.0+): a job that loads the internal snapshot
/// `tag` of `devices`, the VM state from `vmstate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct SnapshotLoad {
    /// The job's id.
    pub job_id: String,
    /// The snapshot's name inside the images.
    pub tag: String,
    /// The node that holds the VM state.
    pub vmstate: String,
    /// The nodes to revert.
    pub devices: Vec<String>,
}

impl Command for SnapshotLoad {
    const NAME: &'static str = "snapshot-load";
    type Reply = Empty;
}

/// `snapshot-delete` (QEMU 6.0+): a job that removes the internal snapshot
/// `tag` from `devices`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct SnapshotDelete {
    /// The job's id.
    pub job_id: String,
    /// The snapshot's name inside the images.
    pub tag: String,
    /// The nodes to remove it from.
    pub devices: Vec<String>,
}

impl Command for SnapshotDelete {
    const NAME: &'static str = "snapshot-delete";
    type Reply = Empty;
}

/// `query-jobs`: every job QEMU knows (not only block jobs).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct QueryJobs;

impl Command for QueryJobs {
    const NAME: &'static str = "query-jobs";
    type Reply = Vec<JobInfo>;
}

/// One job in the reply of `query-jobs`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct JobInfo {
    /// The job's id.
    pub id: String,
    /// Its state.
    pub status: JobStatus,
    /// Progress so far, in the job's own unit.
    #[serde(default)]
    pub current_progress: u64,
    /// The progress it is expected to reach.
    #[serde(default)]
    pub total_progress: u64,
    /// Why it failed, once concluded unsuccessfully.
    #[serde(default)]
    pub error: Option<String>,
}
