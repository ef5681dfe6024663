//! The hypervisor driver trait: one method per operation the daemon serves.
//!
//! Every method has a default body that answers [`Error::NoSupport`]
//! (`VIR_ERR_NO_SUPPORT`), never `Ok`: a driver that does not implement an
//! operation says so, and stock clients fall back on that code (e.g. `virsh list`
//! to the old listing calls). What a driver implements is also declared as data
//! in its [`SupportTable`](crate::support::SupportTable); a test in each driver
//! crate checks the table against these methods.
//!
//! The old listing procedures (`CONNECT_NUM_OF_DOMAINS`, `CONNECT_LIST_DOMAINS`,
//! `…_DEFINED_…`) have no method of their own: the daemon derives them from
//! [`Driver::list_all_domains`]. Migration methods live in a separate trait
//! (added with the migration engine), so this one stays about lifecycle.

use async_trait::async_trait;
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::console::Console;
pub use crate::domain::{
    BlockInfo, BlockStats, CellMemory, ControlInfo, ControlState, CpuTimes, DomainCapsQuery,
    DomainEvent, DomainEventKind, DomainInfo, DomainRef, DomainState, HostIdentity, InterfaceStats,
    IoThreadInfo, LifecycleEvent, MemoryStat, NodeInfo, NodeMemory, Screenshot, SecurityModel,
    StateReason, VcpuInfo,
};
use crate::error::{Error, Result};
pub use crate::flags::dump::Format as DumpFormat;
pub use crate::job::LocalJobs;
use crate::qemu_monitor::MonitorEvent;
use crate::support::SupportTable;
use crate::tune::{CpuStats, GuestTime, InterfaceAddresses};
use crate::typed_params::TypedParams;
use crate::xml::MetadataTarget;

/// The operations of [`Driver`], named after the libvirt API each implements.
///
/// Used in [`Error::NoSupport`] messages and to tie support tables to trait methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// [`Driver::list_all_domains`].
    ListAllDomains,
    /// [`Driver::lookup_by_name`].
    LookupByName,
    /// [`Driver::lookup_by_uuid`].
    LookupByUuid,
    /// [`Driver::lookup_by_id`].
    LookupById,
    /// [`Driver::get_info`].
    GetInfo,
    /// [`Driver::get_state`].
    GetState,
    /// [`Driver::vcpu_info`].
    GetVcpus,
    /// [`Driver::memory_stats`].
    MemoryStats,
    /// [`Driver::set_memory`].
    SetMemory,
    /// [`Driver::set_memory_stats_period`].
    SetMemoryStatsPeriod,
    /// [`Driver::get_os_type`].
    GetOsType,
    /// [`Driver::get_xml_desc`].
    GetXmlDesc,
    /// [`Driver::define_xml`].
    DefineXml,
    /// [`Driver::undefine`].
    Undefine,
    /// [`Driver::create`].
    Create,
    /// [`Driver::create_xml`].
    CreateXml,
    /// [`Driver::destroy`].
    Destroy,
    /// [`Driver::suspend`].
    Suspend,
    /// [`Driver::resume`].
    Resume,
    /// [`Driver::shutdown`].
    Shutdown,
    /// [`Driver::open_console`].
    OpenConsole,
    /// [`Driver::reset`].
    Reset,
    /// [`Driver::reboot`].
    Reboot,
    /// [`Driver::inject_nmi`].
    InjectNmi,
    /// [`Driver::send_key`].
    SendKey,
    /// [`Driver::get_autostart`].
    GetAutostart,
    /// [`Driver::set_autostart`].
    SetAutostart,
    /// [`Driver::is_active`].
    IsActive,
    /// [`Driver::is_persistent`].
    IsPersistent,
    /// [`Driver::has_managed_save`].
    HasManagedSave,
    /// [`Driver::capabilities`].
    Capabilities,
    /// [`Driver::domain_capabilities`].
    DomainCapabilities,
    /// [`Driver::node_info`].
    NodeInfo,
    /// [`Driver::node_memory`].
    NodeMemory,
    /// [`Driver::node_cpu_times`].
    NodeCpuTimes,
    /// [`Driver::node_security_model`].
    NodeSecurityModel,
    /// [`Driver::hypervisor_version`].
    HypervisorVersion,
    /// [`Driver::get_type`].
    GetType,
    /// [`Driver::uri`].
    Uri,
    /// [`Driver::subscribe_events`].
    SubscribeEvents,
    /// [`Driver::save`].
    Save,
    /// [`Driver::restore`].
    Restore,
    /// [`Driver::migrate_compression_cache`].
    MigrateGetCompressionCache,
    /// [`Driver::set_migrate_compression_cache`].
    MigrateSetCompressionCache,
    /// [`Driver::block_stats`].
    BlockStats,
    /// [`Driver::block_stats_flags`].
    BlockStatsFlags,
    /// [`Driver::block_info`].
    BlockInfo,
    /// [`Driver::interface_stats`].
    InterfaceStats,
    /// [`Driver::managed_save`].
    ManagedSave,
    /// [`Driver::managed_save_remove`].
    ManagedSaveRemove,
    /// [`Driver::set_metadata`].
    SetMetadata,
    /// [`Driver::get_metadata`].
    GetMetadata,
    /// [`Driver::save_image_xml`].
    SaveImageGetXmlDesc,
    /// [`Driver::save_image_define_xml`].
    SaveImageDefineXml,
    /// [`Driver::managed_save_xml`].
    ManagedSaveGetXmlDesc,
    /// [`Driver::managed_save_define_xml`].
    ManagedSaveDefineXml,
    /// [`Driver::set_vcpus`].
    SetVcpus,
    /// [`Driver::rename`].
    Rename,
    /// [`Driver::attach_device`].
    AttachDevice,
    /// [`Driver::detach_device`].
    DetachDevice,
    /// [`Driver::update_device`].
    UpdateDevice,
    /// [`Driver::control_info`].
    GetControlInfo,
    /// [`Driver::iothread_info`].
    GetIoThreadInfo,
    /// [`Driver::sysinfo`].
    GetSysinfo,
    /// [`Driver::core_dump`].
    CoreDump,
    /// [`Driver::screenshot`].
    Screenshot,
    /// [`Driver::scheduler_type`].
    GetSchedulerType,
    /// [`Driver::scheduler_parameters`].
    GetSchedulerParameters,
    /// [`Driver::set_scheduler_parameters`].
    SetSchedulerParameters,
    /// [`Driver::memory_parameters`].
    GetMemoryParameters,
    /// [`Driver::set_memory_parameters`].
    SetMemoryParameters,
    /// [`Driver::cpu_stats`].
    GetCpuStats,
    /// [`Driver::guest_hostname`].
    GetHostname,
    /// [`Driver::guest_time`].
    GetTime,
    /// [`Driver::set_guest_time`].
    SetTime,
    /// [`Driver::blkio_parameters`].
    GetBlkioParameters,
    /// [`Driver::set_blkio_parameters`].
    SetBlkioParameters,
    /// [`Driver::block_io_tune`].
    GetBlockIoTune,
    /// [`Driver::set_block_io_tune`].
    SetBlockIoTune,
    /// [`Driver::numa_parameters`].
    GetNumaParameters,
    /// [`Driver::set_numa_parameters`].
    SetNumaParameters,
    /// [`Driver::interface_parameters`].
    GetInterfaceParameters,
    /// [`Driver::set_interface_parameters`].
    SetInterfaceParameters,
    /// [`Driver::interface_addresses`].
    InterfaceAddresses,
    /// [`Driver::perf_events`].
    GetPerfEvents,
    /// [`Driver::set_perf_events`].
    SetPerfEvents,
    /// [`Driver::snapshot_create`].
    SnapshotCreate,
    /// [`Driver::snapshot_list`].
    SnapshotList,
    /// [`Driver::snapshot_lookup`].
    SnapshotLookup,
    /// [`Driver::snapshot_xml`].
    SnapshotXml,
    /// [`Driver::snapshot_current`].
    SnapshotCurrent,
    /// [`Driver::snapshot_parent`].
    SnapshotParent,
    /// [`Driver::snapshot_revert`].
    SnapshotRevert,
    /// [`Driver::snapshot_delete`].
    SnapshotDelete,
    /// [`Driver::qemu_monitor_command`].
    QemuMonitorCommand,
    /// [`Driver::qemu_agent_command`].
    QemuAgentCommand,
    /// [`Driver::subscribe_monitor_events`].
    SubscribeMonitorEvents,
}

impl Operation {
    /// Every operation, in trait order.
    pub const ALL: &'static [Operation] = &[
        Operation::ListAllDomains,
        Operation::LookupByName,
        Operation::LookupByUuid,
        Operation::LookupById,
        Operation::GetInfo,
        Operation::GetState,
        Operation::GetVcpus,
        Operation::MemoryStats,
        Operation::SetMemory,
        Operation::SetMemoryStatsPeriod,
        Operation::GetOsType,
        Operation::GetXmlDesc,
        Operation::DefineXml,
        Operation::Undefine,
        Operation::Create,
        Operation::CreateXml,
        Operation::Destroy,
        Operation::Suspend,
        Operation::Resume,
        Operation::Shutdown,
        Operation::OpenConsole,
        Operation::Reset,
        Operation::Reboot,
        Operation::InjectNmi,
        Operation::SendKey,
        Operation::GetAutostart,
        Operation::SetAutostart,
        Operation::IsActive,
        Operation::IsPersistent,
        Operation::HasManagedSave,
        Operation::Capabilities,
        Operation::DomainCapabilities,
        Operation::NodeInfo,
        Operation::NodeMemory,
        Operation::NodeCpuTimes,
        Operation::NodeSecurityModel,
        Operation::HypervisorVersion,
        Operation::GetType,
        Operation::Uri,
        Operation::SubscribeEvents,
        Operation::Save,
        Operation::Restore,
        Operation::MigrateGetCompressionCache,
        Operation::MigrateSetCompressionCache,
        Operation::BlockStats,
        Operation::BlockStatsFlags,
        Operation::BlockInfo,
        Operation::InterfaceStats,
        Operation::ManagedSave,
        Operation::ManagedSaveRemove,
        Operation::SetMetadata,
        Operation::GetMetadata,
        Operation::SaveImageGetXmlDesc,
        Operation::SaveImageDefineXml,
        Operation::ManagedSaveGetXmlDesc,
        Operation::ManagedSaveDefineXml,
        Operation::SetVcpus,
        Operation::Rename,
        Operation::AttachDevice,
        Operation::DetachDevice,
        Operation::UpdateDevice,
        Operation::GetControlInfo,
        Operation::GetIoThreadInfo,
        Operation::GetSysinfo,
        Operation::CoreDump,
        Operation::Screenshot,
        Operation::GetSchedulerType,
        Operation::GetSchedulerParameters,
        Operation::SetSchedulerParameters,
        Operation::GetMemoryParameters,
        Operation::SetMemoryParameters,
        Operation::GetCpuStats,
        Operation::GetHostname,
        Operation::GetTime,
        Operation::SetTime,
        Operation::SnapshotCreate,
        Operation::SnapshotList,
        Operation::SnapshotLookup,
        Operation::SnapshotXml,
        Operation::SnapshotCurrent,
        Operation::SnapshotParent,
        Operation::SnapshotRevert,
        Operation::SnapshotDelete,
        Operation::GetBlkioParameters,
        Operation::SetBlkioParameters,
        Operation::GetBlockIoTune,
        Operation::SetBlockIoTune,
        Operation::GetNumaParameters,
        Operation::SetNumaParameters,
        Operation::GetInterfaceParameters,
        Operation::SetInterfaceParameters,
        Operation::InterfaceAddresses,
        Operation::GetPerfEvents,
        Operation::SetPerfEvents,
        Operation::QemuMonitorCommand,
        Operation::QemuAgentCommand,
        Operation::SubscribeMonitorEvents,
    ];

    /// The libvirt public API this operation implements (what users see in messages).
    pub const fn api_name(self) -> &'static str {
        match self {
            Operation::ListAllDomains => "virConnectListAllDomains",
            Operation::LookupByName => "virDomainLookupByName",
            Operation::LookupByUuid => "virDomainLookupByUUID",
            Operation::LookupById => "virDomainLookupByID",
            Operation::GetInfo => "virDomainGetInfo",
            Operation::GetState => "virDomainGetState",
            Operation::GetVcpus => "virDomainGetVcpus",
            Operation::MemoryStats => "virDomainMemoryStats",
            Operation::SetMemory => "virDomainSetMemoryFlags",
            Operation::SetMemoryStatsPeriod => "virDomainSetMemoryStatsPeriod",
            Operation::GetOsType => "virDomainGetOSType",
            Operation::GetXmlDesc => "virDomainGetXMLDesc",
            Operation::DefineXml => "virDomainDefineXMLFlags",
            Operation::Undefine => "virDomainUndefineFlags",
            Operation::Create => "virDomainCreateWithFlags",
            Operation::CreateXml => "virDomainCreateXML",
            Operation::Destroy => "virDomainDestroyFlags",
            Operation::Suspend => "virDomainSuspend",
            Operation::Resume => "virDomainResume",
            Operation::Shutdown => "virDomainShutdownFlags",
            Operation::OpenConsole => "virDomainOpenConsole",
            Operation::Reset => "virDomainReset",
            Operation::Reboot => "virDomainReboot",
            Operation::InjectNmi => "virDomainInjectNMI",
            Operation::SendKey => "virDomainSendKey",
            Operation::GetAutostart => "virDomainGetAutostart",
            Operation::SetAutostart => "virDomainSetAutostart",
            Operation::IsActive => "virDomainIsActive",
            Operation::IsPersistent => "virDomainIsPersistent",
            Operation::HasManagedSave => "virDomainHasManagedSaveImage",
            Operation::Capabilities => "virConnectGetCapabilities",
            Operation::DomainCapabilities => "virConnectGetDomainCapabilities",
            Operation::NodeInfo => "virNodeGetInfo",
            Operation::NodeMemory => "virNodeGetMemoryStats",
            Operation::NodeCpuTimes => "virNodeGetCPUStats",
            Operation::NodeSecurityModel => "virNodeGetSecurityModel",
            Operation::HypervisorVersion => "virConnectGetVersion",
            Operation::GetType => "virConnectGetType",
            Operation::Uri => "virConnectGetURI",
            Operation::SubscribeEvents => "virConnectDomainEventRegisterAny",
            Operation::Save => "virDomainSaveFlags",
            Operation::Restore => "virDomainRestoreFlags",
            Operation::MigrateGetCompressionCache => "virDomainMigrateGetCompressionCache",
            Operation::MigrateSetCompressionCache => "virDomainMigrateSetCompressionCache",
            Operation::BlockStats => "virDomainBlockStats",
            Operation::BlockStatsFlags => "virDomainBlockStatsFlags",
            Operation::BlockInfo => "virDomainGetBlockInfo",
            Operation::InterfaceStats => "virDomainInterfaceStats",
            Operation::ManagedSave => "virDomainManagedSave",
            Operation::ManagedSaveRemove => "virDomainManagedSaveRemove",
            Operation::SetMetadata => "virDomainSetMetadata",
            Operation::GetMetadata => "virDomainGetMetadata",
            Operation::SaveImageGetXmlDesc => "virDomainSaveImageGetXMLDesc",
            Operation::SaveImageDefineXml => "virDomainSaveImageDefineXML",
            Operation::ManagedSaveGetXmlDesc => "virDomainManagedSaveGetXMLDesc",
            Operation::ManagedSaveDefineXml => "virDomainManagedSaveDefineXML",
            Operation::SetVcpus => "virDomainSetVcpusFlags",
            Operation::Rename => "virDomainRename",
            Operation::AttachDevice => "virDomainAttachDeviceFlags",
            Operation::DetachDevice => "virDomainDetachDeviceFlags",
            Operation::UpdateDevice => "virDomainUpdateDeviceFlags",
            Operation::GetControlInfo => "virDomainGetControlInfo",
            Operation::GetIoThreadInfo => "virDomainGetIOThreadInfo",
            Operation::GetSysinfo => "virConnectGetSysinfo",
            Operation::CoreDump => "virDomainCoreDumpWithFormat",
            Operation::Screenshot => "virDomainScreenshot",
            Operation::GetSchedulerType => "virDomainGetSchedulerType",
            Operation::GetSchedulerParameters => "virDomainGetSchedulerParametersFlags",
            Operation::SetSchedulerParameters => "virDomainSetSchedulerParametersFlags",
            Operation::GetMemoryParameters => "virDomainGetMemoryParameters",
            Operation::SetMemoryParameters => "virDomainSetMemoryParameters",
            Operation::GetCpuStats => "virDomainGetCPUStats",
            Operation::GetHostname => "virDomainGetHostname",
            Operation::GetTime => "virDomainGetTime",
            Operation::SetTime => "virDomainSetTime",
            Operation::SnapshotCreate => "virDomainSnapshotCreateXML",
            Operation::SnapshotList => "virDomainListAllSnapshots",
            Operation::SnapshotLookup => "virDomainSnapshotLookupByName",
            Operation::SnapshotXml => "virDomainSnapshotGetXMLDesc",
            Operation::SnapshotCurrent => "virDomainSnapshotCurrent",
            Operation::SnapshotParent => "virDomainSnapshotGetParent",
            Operation::SnapshotRevert => "virDomainRevertToSnapshot",
            Operation::SnapshotDelete => "virDomainSnapshotDelete",
            Operation::GetBlkioParameters => "virDomainGetBlkioParameters",
            Operation::SetBlkioParameters => "virDomainSetBlkioParameters",
            Operation::GetBlockIoTune => "virDomainGetBlockIoTune",
            Operation::SetBlockIoTune => "virDomainSetBlockIoTune",
            Operation::GetNumaParameters => "virDomainGetNumaParameters",
            Operation::SetNumaParameters => "virDomainSetNumaParameters",
            Operation::GetInterfaceParameters => "virDomainGetInterfaceParameters",
            Operation::SetInterfaceParameters => "virDomainSetInterfaceParameters",
            Operation::InterfaceAddresses => "virDomainInterfaceAddresses",
            Operation::GetPerfEvents => "virDomainGetPerfEvents",
            Operation::SetPerfEvents => "virDomainSetPerfEvents",
            Operation::QemuMonitorCommand => "virDomainQemuMonitorCommand",
            Operation::QemuAgentCommand => "virDomainQemuAgentCommand",
            Operation::SubscribeMonitorEvents => "virConnectDomainQemuMonitorEventRegister",
        }
    }

    /// The [`Driver`] method implementing this operation.
    pub const fn method(self) -> &'static str {
        match self {
            Operation::ListAllDomains => "list_all_domains",
            Operation::LookupByName => "lookup_by_name",
            Operation::LookupByUuid => "lookup_by_uuid",
            Operation::LookupById => "lookup_by_id",
            Operation::GetInfo => "get_info",
            Operation::GetState => "get_state",
            Operation::GetVcpus => "vcpu_info",
            Operation::MemoryStats => "memory_stats",
            Operation::SetMemory => "set_memory",
            Operation::SetMemoryStatsPeriod => "set_memory_stats_period",
            Operation::GetOsType => "get_os_type",
            Operation::GetXmlDesc => "get_xml_desc",
            Operation::DefineXml => "define_xml",
            Operation::Undefine => "undefine",
            Operation::Create => "create",
            Operation::CreateXml => "create_xml",
            Operation::Destroy => "destroy",
            Operation::Suspend => "suspend",
            Operation::Resume => "resume",
            Operation::Shutdown => "shutdown",
            Operation::OpenConsole => "open_console",
            Operation::Reset => "reset",
            Operation::Reboot => "reboot",
            Operation::InjectNmi => "inject_nmi",
            Operation::SendKey => "send_key",
            Operation::GetAutostart => "get_autostart",
            Operation::SetAutostart => "set_autostart",
            Operation::IsActive => "is_active",
            Operation::IsPersistent => "is_persistent",
            Operation::HasManagedSave => "has_managed_save",
            Operation::Capabilities => "capabilities",
            Operation::DomainCapabilities => "domain_capabilities",
            Operation::NodeInfo => "node_info",
            Operation::NodeMemory => "node_memory",
            Operation::NodeCpuTimes => "node_cpu_times",
            Operation::NodeSecurityModel => "node_security_model",
            Operation::HypervisorVersion => "hypervisor_version",
            Operation::GetType => "get_type",
            Operation::Uri => "uri",
            Operation::SubscribeEvents => "subscribe_events",
            Operation::Save => "save",
            Operation::Restore => "restore",
            Operation::MigrateGetCompressionCache => "migrate_compression_cache",
            Operation::MigrateSetCompressionCache => "set_migrate_compression_cache",
            Operation::BlockStats => "block_stats",
            Operation::BlockStatsFlags => "block_stats_flags",
            Operation::BlockInfo => "block_info",
            Operation::InterfaceStats => "interface_stats",
            Operation::ManagedSave => "managed_save",
            Operation::ManagedSaveRemove => "managed_save_remove",
            Operation::SetMetadata => "set_metadata",
            Operation::GetMetadata => "get_metadata",
            Operation::SaveImageGetXmlDesc => "save_image_xml",
            Operation::SaveImageDefineXml => "save_image_define_xml",
            Operation::ManagedSaveGetXmlDesc => "managed_save_xml",
            Operation::ManagedSaveDefineXml => "managed_save_define_xml",
            Operation::SetVcpus => "set_vcpus",
            Operation::Rename => "rename",
            Operation::AttachDevice => "attach_device",
            Operation::DetachDevice => "detach_device",
            Operation::UpdateDevice => "update_device",
            Operation::GetControlInfo => "control_info",
            Operation::GetIoThreadInfo => "iothread_info",
            Operation::GetSysinfo => "sysinfo",
            Operation::CoreDump => "core_dump",
            Operation::Screenshot => "screenshot",
            Operation::GetSchedulerType => "scheduler_type",
            Operation::GetSchedulerParameters => "scheduler_parameters",
            Operation::SetSchedulerParameters => "set_scheduler_parameters",
            Operation::GetMemoryParameters => "memory_parameters",
            Operation::SetMemoryParameters => "set_memory_parameters",
            Operation::GetCpuStats => "cpu_stats",
            Operation::GetHostname => "guest_hostname",
            Operation::GetTime => "guest_time",
            Operation::SetTime => "set_guest_time",
            Operation::SnapshotCreate => "snapshot_create",
            Operation::SnapshotList => "snapshot_list",
            Operation::SnapshotLookup => "snapshot_lookup",
            Operation::SnapshotXml => "snapshot_xml",
            Operation::SnapshotCurrent => "snapshot_current",
            Operation::SnapshotParent => "snapshot_parent",
            Operation::SnapshotRevert => "snapshot_revert",
            Operation::SnapshotDelete => "snapshot_delete",
            Operation::GetBlkioParameters => "blkio_parameters",
            Operation::SetBlkioParameters => "set_blkio_parameters",
            Operation::GetBlockIoTune => "block_io_tune",
            Operation::SetBlockIoTune => "set_block_io_tune",
            Operation::GetNumaParameters => "numa_parameters",
            Operation::SetNumaParameters => "set_numa_parameters",
            Operation::GetInterfaceParameters => "interface_parameters",
            Operation::SetInterfaceParameters => "set_interface_parameters",
            Operation::InterfaceAddresses => "interface_addresses",
            Operation::GetPerfEvents => "perf_events",
            Operation::SetPerfEvents => "set_perf_events",
            Operation::QemuMonitorCommand => "qemu_monitor_command",
            Operation::QemuAgentCommand => "qemu_agent_command",
            Operation::SubscribeMonitorEvents => "subscribe_monitor_events",
        }
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.api_name())
    }
}

/// A hypervisor driver. See the module doc for the "not supported" contract.
///
/// Domains are passed as [`DomainRef`]s exactly as they arrive from the wire;
/// drivers look them up by `uuid` and answer [`Error::NoDomain`] when it is unknown.
/// `flags` are the raw wire words; a driver refuses bits it does not know with
/// [`crate::flags::check_flags`] (`VIR_ERR_INVALID_ARG`).
///
/// # Errors
/// Every method returns [`Error::NoSupport`] unless the driver implements it;
/// implementations document their own errors.
#[async_trait]
pub trait Driver: Send + Sync {
    /// What this driver implements; its `driver` name appears in "not supported" errors.
    fn support(&self) -> &'static SupportTable;

    /// The "not supported" error for `op` on this driver.
    fn no_support(&self, op: Operation) -> Error {
        Error::NoSupport {
            operation: op.api_name(),
            driver: self.support().driver,
        }
    }

    /// Domains matching the `flags` filter ([`crate::flags::list`]; 0 = all), sorted by name.
    async fn list_all_domains(&self, flags: u32) -> Result<Vec<DomainRef>> {
        let _ = flags;
        Err(self.no_support(Operation::ListAllDomains))
    }

    /// The domain called `name`.
    async fn lookup_by_name(&self, name: &str) -> Result<DomainRef> {
        let _ = name;
        Err(self.no_support(Operation::LookupByName))
    }

    /// The domain with `uuid`.
    async fn lookup_by_uuid(&self, uuid: &Uuid) -> Result<DomainRef> {
        let _ = uuid;
        Err(self.no_support(Operation::LookupByUuid))
    }

    /// The running domain with `id`.
    async fn lookup_by_id(&self, id: i32) -> Result<DomainRef> {
        let _ = id;
        Err(self.no_support(Operation::LookupById))
    }

    /// State, memory, vCPUs and CPU time.
    async fn get_info(&self, dom: &DomainRef) -> Result<DomainInfo> {
        let _ = dom;
        Err(self.no_support(Operation::GetInfo))
    }

    /// State and reason.
    async fn get_state(&self, dom: &DomainRef, flags: u32) -> Result<StateReason> {
        let _ = (dom, flags);
        Err(self.no_support(Operation::GetState))
    }

    /// The vCPUs of a running domain: state, CPU time, host CPU.
    async fn vcpu_info(&self, dom: &DomainRef) -> Result<Vec<VcpuInfo>> {
        let _ = dom;
        Err(self.no_support(Operation::GetVcpus))
    }

    /// Memory statistics of a running domain (balloon size, resident size).
    async fn memory_stats(&self, dom: &DomainRef) -> Result<Vec<MemoryStat>> {
        let _ = dom;
        Err(self.no_support(Operation::MemoryStats))
    }

    /// Changes the guest's memory, KiB ([`crate::flags::memory`] flags): the
    /// current (balloon) size, or with `MEM_MAXIMUM` the maximum, live
    /// and/or in the persistent config.
    async fn set_memory(&self, dom: &DomainRef, kib: u64, flags: u32) -> Result<()> {
        let _ = (dom, kib, flags);
        Err(self.no_support(Operation::SetMemory))
    }

    /// How often, in seconds, the guest's balloon driver reports its memory
    /// statistics (`virsh dommemstat --period`; 0 stops them), live and/or
    /// in the persistent config ([`crate::flags::affect`] flags): the
    /// `<memballoon><stats period=…/>` of the definitions changed.
    async fn set_memory_stats_period(
        &self,
        dom: &DomainRef,
        period: i32,
        flags: u32,
    ) -> Result<()> {
        let _ = (dom, period, flags);
        Err(self.no_support(Operation::SetMemoryStatsPeriod))
    }

    /// Guest OS type (e.g. "hvm").
    async fn get_os_type(&self, dom: &DomainRef) -> Result<String> {
        let _ = dom;
        Err(self.no_support(Operation::GetOsType))
    }

    /// Domain XML ([`crate::flags::xml`] flags: live or inactive, secure, migratable).
    async fn get_xml_desc(&self, dom: &DomainRef, flags: u32) -> Result<String> {
        let _ = (dom, flags);
        Err(self.no_support(Operation::GetXmlDesc))
    }

    /// Defines (or updates) a persistent domain from XML.
    async fn define_xml(&self, xml: &str, flags: u32) -> Result<DomainRef> {
        let _ = (xml, flags);
        Err(self.no_support(Operation::DefineXml))
    }

    /// Removes a domain's persistent config ([`crate::flags::undefine`] flags).
    async fn undefine(&self, dom: &DomainRef, flags: u32) -> Result<()> {
        let _ = (dom, flags);
        Err(self.no_support(Operation::Undefine))
    }

    /// Starts a defined domain ([`crate::flags::create`] flags); returns it with its new id.
    async fn create(&self, dom: &DomainRef, flags: u32) -> Result<DomainRef> {
        let _ = (dom, flags);
        Err(self.no_support(Operation::Create))
    }

    /// Creates and starts a transient domain from XML.
    async fn create_xml(&self, xml: &str, flags: u32) -> Result<DomainRef> {
        let _ = (xml, flags);
        Err(self.no_support(Operation::CreateXml))
    }

    /// Stops a domain immediately ([`crate::flags::destroy`] flags).
    async fn destroy(&self, dom: &DomainRef, flags: u32) -> Result<()> {
        let _ = (dom, flags);
        Err(self.no_support(Operation::Destroy))
    }

    /// Pauses a running domain.
    async fn suspend(&self, dom: &DomainRef) -> Result<()> {
        let _ = dom;
        Err(self.no_support(Operation::Suspend))
    }

    /// Unpauses a paused domain.
    async fn resume(&self, dom: &DomainRef) -> Result<()> {
        let _ = dom;
        Err(self.no_support(Operation::Resume))
    }

    /// Asks the guest to shut down ([`crate::flags::shutdown`] flags).
    async fn shutdown(&self, dom: &DomainRef, flags: u32) -> Result<()> {
        let _ = (dom, flags);
        Err(self.no_support(Operation::Shutdown))
    }

    /// Resets the guest at once, as the reset button does (no guest
    /// cooperation, no shutdown): it keeps running from its firmware.
    async fn reset(&self, dom: &DomainRef) -> Result<()> {
        let _ = dom;
        Err(self.no_support(Operation::Reset))
    }

    /// Asks the guest to reboot ([`crate::flags::reboot`] flags); what
    /// happens after depends on the domain's `<on_reboot>` action.
    async fn reboot(&self, dom: &DomainRef, flags: u32) -> Result<()> {
        let _ = (dom, flags);
        Err(self.no_support(Operation::Reboot))
    }

    /// Sends the guest a non-maskable interrupt.
    async fn inject_nmi(&self, dom: &DomainRef) -> Result<()> {
        let _ = dom;
        Err(self.no_support(Operation::InjectNmi))
    }

    /// Presses `keycodes` (of `codeset`, at most
    /// [`crate::keycode::SEND_KEY_MAX_KEYS`], at least one) together for
    /// `holdtime` ms (0: the hypervisor's default), then releases them.
    async fn send_key(
        &self,
        dom: &DomainRef,
        codeset: crate::keycode::Codeset,
        holdtime: u32,
        keycodes: &[u32],
    ) -> Result<()> {
        let _ = (dom, codeset, holdtime, keycodes);
        Err(self.no_support(Operation::SendKey))
    }

    /// Opens a console of a running guest: `dev_name` is a device alias
    /// (`console0`, `serial0`), none the first console
    /// ([`crate::console`] flags).
    async fn open_console(
        &self,
        dom: &DomainRef,
        dev_name: Option<&str>,
        flags: u32,
    ) -> Result<Console> {
        let _ = (dom, dev_name, flags);
        Err(self.no_support(Operation::OpenConsole))
    }

    /// Whether the domain starts with the daemon.
    async fn get_autostart(&self, dom: &DomainRef) -> Result<bool> {
        let _ = dom;
        Err(self.no_support(Operation::GetAutostart))
    }

    /// Sets whether the domain starts with the daemon.
    async fn set_autostart(&self, dom: &DomainRef, autostart: bool) -> Result<()> {
        let _ = (dom, autostart);
        Err(self.no_support(Operation::SetAutostart))
    }

    /// Whether the domain is running or paused.
    async fn is_active(&self, dom: &DomainRef) -> Result<bool> {
        let _ = dom;
        Err(self.no_support(Operation::IsActive))
    }

    /// Whether the domain has a persistent config.
    async fn is_persistent(&self, dom: &DomainRef) -> Result<bool> {
        let _ = dom;
        Err(self.no_support(Operation::IsPersistent))
    }

    /// Whether a managed save image exists.
    async fn has_managed_save(&self, dom: &DomainRef, flags: u32) -> Result<bool> {
        let _ = (dom, flags);
        Err(self.no_support(Operation::HasManagedSave))
    }

    /// Capabilities XML of the host and its guests.
    async fn capabilities(&self) -> Result<String> {
        Err(self.no_support(Operation::Capabilities))
    }

    /// `domainCapabilities` XML: what a domain of the queried emulator,
    /// architecture, machine type and domain type may use on this host.
    async fn domain_capabilities(&self, query: &DomainCapsQuery, flags: u32) -> Result<String> {
        let _ = (query, flags);
        Err(self.no_support(Operation::DomainCapabilities))
    }

    /// Host CPU and memory summary.
    async fn node_info(&self) -> Result<NodeInfo> {
        Err(self.no_support(Operation::NodeInfo))
    }

    /// The host's memory, in total and per NUMA cell.
    async fn node_memory(&self) -> Result<NodeMemory> {
        Err(self.no_support(Operation::NodeMemory))
    }

    /// CPU time of host CPU `cpu`, or of all of them for `None`.
    async fn node_cpu_times(&self, cpu: Option<u32>) -> Result<CpuTimes> {
        let _ = cpu;
        Err(self.no_support(Operation::NodeCpuTimes))
    }

    /// Host security model (empty when there is none).
    async fn node_security_model(&self) -> Result<SecurityModel> {
        Err(self.no_support(Operation::NodeSecurityModel))
    }

    /// Hypervisor version as major·1 000 000 + minor·1 000 + micro.
    async fn hypervisor_version(&self) -> Result<u64> {
        Err(self.no_support(Operation::HypervisorVersion))
    }

    /// Driver name as `CONNECT_GET_TYPE` reports it ("TEST", "QEMU").
    async fn get_type(&self) -> Result<String> {
        Err(self.no_support(Operation::GetType))
    }

    /// Canonical URI of this driver (e.g. "test:///default").
    async fn uri(&self) -> Result<String> {
        Err(self.no_support(Operation::Uri))
    }

    /// A receiver of every domain event from now on: lifecycle changes, and
    /// the migration manager's job events (iterations, job completed) when
    /// the driver's [`MigrationBackend`](crate::migration::MigrationBackend)
    /// hands it the same channel.
    ///
    /// A receiver that falls behind loses the oldest events (`RecvError::Lagged`).
    fn subscribe_events(&self) -> Result<broadcast::Receiver<DomainEvent>> {
        Err(self.no_support(Operation::SubscribeEvents))
    }

    /// A receiver of every QMP event of every running guest from now on
    /// (`virConnectDomainQemuMonitorEventRegister`); filtering by guest and
    /// name is the caller's. A receiver that falls behind loses the oldest.
    fn subscribe_monitor_events(&self) -> Result<broadcast::Receiver<MonitorEvent>> {
        Err(self.no_support(Operation::SubscribeMonitorEvents))
    }

    /// Runs one monitor command on a running guest and answers the reply
    /// text (`virDomainQemuMonitorCommand`): QMP JSON passed through, whose
    /// answer is the whole reply object QEMU sent, or HMP text with
    /// [`MONITOR_COMMAND_HMP`](crate::qemu_monitor::MONITOR_COMMAND_HMP).
    async fn qemu_monitor_command(&self, dom: &DomainRef, cmd: &str, flags: u32) -> Result<String> {
        let _ = (dom, cmd, flags);
        Err(self.no_support(Operation::QemuMonitorCommand))
    }

    /// Sends one raw JSON command to the guest agent
    /// (`virDomainQemuAgentCommand`); `timeout` is libvirt's word (-2 block,
    /// -1 default, 0 do not wait, N seconds, below -2 invalid); `None` when
    /// told not to wait.
    async fn qemu_agent_command(
        &self,
        dom: &DomainRef,
        cmd: &str,
        timeout: i32,
        flags: u32,
    ) -> Result<Option<String>> {
        let _ = (dom, cmd, timeout, flags);
        Err(self.no_support(Operation::QemuAgentCommand))
    }

    /// Saves a domain's state to `to` on the daemon's host and stops it.
    async fn save(&self, dom: &DomainRef, to: &str, dxml: Option<&str>, flags: u32) -> Result<()> {
        let _ = (dom, to, dxml, flags);
        Err(self.no_support(Operation::Save))
    }

    /// Restores a domain saved with [`Driver::save`].
    async fn restore(&self, from: &str, dxml: Option<&str>, flags: u32) -> Result<()> {
        let _ = (from, dxml, flags);
        Err(self.no_support(Operation::Restore))
    }

    /// The XBZRLE page cache size, in bytes, the running domain's
    /// compressed migrations use.
    async fn migrate_compression_cache(&self, dom: &DomainRef) -> Result<u64> {
        let _ = dom;
        Err(self.no_support(Operation::MigrateGetCompressionCache))
    }

    /// Sets the XBZRLE page cache size, in bytes, of the running domain's
    /// later compressed migrations (unless one names its own).
    async fn set_migrate_compression_cache(&self, dom: &DomainRef, bytes: u64) -> Result<()> {
        let _ = (dom, bytes);
        Err(self.no_support(Operation::MigrateSetCompressionCache))
    }

    /// I/O statistics of the running domain's disk `disk` (its target,
    /// e.g. `vda`, or its source path): the legacy five counters.
    async fn block_stats(&self, dom: &DomainRef, disk: &str) -> Result<BlockStats> {
        let _ = (dom, disk);
        Err(self.no_support(Operation::BlockStats))
    }

    /// As [`Driver::block_stats`], for the typed-parameter form (libvirt's
    /// drivers implement the two separately; virsh falls back to the
    /// legacy one when this is missing).
    async fn block_stats_flags(&self, dom: &DomainRef, disk: &str) -> Result<BlockStats> {
        let _ = (dom, disk);
        Err(self.no_support(Operation::BlockStatsFlags))
    }

    /// Sizes of the domain's disk `disk` (target or source path).
    async fn block_info(&self, dom: &DomainRef, disk: &str) -> Result<BlockInfo> {
        let _ = (dom, disk);
        Err(self.no_support(Operation::BlockInfo))
    }

    /// Traffic of the running domain's interface `device` (its host device
    /// name or its MAC address).
    async fn interface_stats(&self, dom: &DomainRef, device: &str) -> Result<InterfaceStats> {
        let _ = (dom, device);
        Err(self.no_support(Operation::InterfaceStats))
    }

    /// Saves a running persistent domain's state to its managed save image
    /// and stops it; the next start restores it.
    async fn managed_save(&self, dom: &DomainRef, flags: u32) -> Result<()> {
        let _ = (dom, flags);
        Err(self.no_support(Operation::ManagedSave))
    }

    /// Removes a domain's managed save image (none is fine).
    async fn managed_save_remove(&self, dom: &DomainRef, flags: u32) -> Result<()> {
        let _ = (dom, flags);
        Err(self.no_support(Operation::ManagedSaveRemove))
    }

    /// Sets or removes (`None`) the title, description or metadata element
    /// `target` names, live and/or in the config ([`crate::flags::affect`]).
    async fn set_metadata(
        &self,
        dom: &DomainRef,
        target: &MetadataTarget,
        value: Option<&str>,
        flags: u32,
    ) -> Result<()> {
        let _ = (dom, target, value, flags);
        Err(self.no_support(Operation::SetMetadata))
    }

    /// The title, description or metadata element `target` names, of the
    /// live definition or the config ([`crate::flags::affect`]).
    async fn get_metadata(
        &self,
        dom: &DomainRef,
        target: &MetadataTarget,
        flags: u32,
    ) -> Result<String> {
        let _ = (dom, target, flags);
        Err(self.no_support(Operation::GetMetadata))
    }

    /// The domain XML stored in the save image `file` (made by
    /// [`Driver::save`]); passwords only with
    /// [`crate::flags::save::IMAGE_XML_SECURE`].
    async fn save_image_xml(&self, file: &str, flags: u32) -> Result<String> {
        let _ = (file, flags);
        Err(self.no_support(Operation::SaveImageGetXmlDesc))
    }

    /// Replaces the domain XML stored in the save image `file` with `dxml`,
    /// which must describe the same guest ABI; [`crate::flags::save`]
    /// `RUNNING` / `PAUSED` change the state a restore leaves it in.
    async fn save_image_define_xml(&self, file: &str, dxml: &str, flags: u32) -> Result<()> {
        let _ = (file, dxml, flags);
        Err(self.no_support(Operation::SaveImageDefineXml))
    }

    /// As [`Driver::save_image_xml`], for the domain's managed save image.
    async fn managed_save_xml(&self, dom: &DomainRef, flags: u32) -> Result<String> {
        let _ = (dom, flags);
        Err(self.no_support(Operation::ManagedSaveGetXmlDesc))
    }

    /// As [`Driver::save_image_define_xml`], for the domain's managed save
    /// image (`None` keeps the stored XML and changes only the state).
    async fn managed_save_define_xml(
        &self,
        dom: &DomainRef,
        dxml: Option<&str>,
        flags: u32,
    ) -> Result<()> {
        let _ = (dom, dxml, flags);
        Err(self.no_support(Operation::ManagedSaveDefineXml))
    }

    /// Changes the guest's vCPU count ([`crate::flags::vcpu`] flags): the
    /// vCPUs online, or with `VCPU_MAXIMUM` the maximum, live and/or in the
    /// persistent config. `count` is non-zero (the daemon checks it, as
    /// libvirt's public API does).
    async fn set_vcpus(&self, dom: &DomainRef, count: u32, flags: u32) -> Result<()> {
        let _ = (dom, count, flags);
        Err(self.no_support(Operation::SetVcpus))
    }

    /// Renames a shut-off persistent domain to `new_name`; returns it under
    /// its new name. Emits undefined/renamed (old name), then
    /// defined/renamed (new name).
    async fn rename(&self, dom: &DomainRef, new_name: &str, flags: u32) -> Result<DomainRef> {
        let _ = (dom, new_name, flags);
        Err(self.no_support(Operation::Rename))
    }

    /// Adds the device described by `xml` (`<disk>`, `<interface>`) to the
    /// running guest and/or its persistent config, per
    /// [`crate::flags::affect`] in `flags` (`virsh attach-device`,
    /// `attach-disk`, `attach-interface`).
    async fn attach_device(&self, dom: &DomainRef, xml: &str, flags: u32) -> Result<()> {
        let _ = (dom, xml, flags);
        Err(self.no_support(Operation::AttachDevice))
    }

    /// Removes the device `xml` names from the running guest and/or its
    /// persistent config (`virsh detach-device`, `detach-disk`,
    /// `detach-interface`).
    async fn detach_device(&self, dom: &DomainRef, xml: &str, flags: u32) -> Result<()> {
        let _ = (dom, xml, flags);
        Err(self.no_support(Operation::DetachDevice))
    }

    /// Replaces the device `xml` names with `xml` in the running guest
    /// and/or its persistent config (`virsh update-device`).
    async fn update_device(&self, dom: &DomainRef, xml: &str, flags: u32) -> Result<()> {
        let _ = (dom, xml, flags);
        Err(self.no_support(Operation::UpdateDevice))
    }

    /// The state of the channel to a running domain's hypervisor: busy with
    /// a command, broken, or ready. Background jobs (migrations) are the
    /// daemon's: it reports them over what the driver says.
    async fn control_info(&self, dom: &DomainRef) -> Result<ControlInfo> {
        let _ = dom;
        Err(self.no_support(Operation::GetControlInfo))
    }

    /// The domain's IOThreads, of the running guest or its persistent
    /// config as [`crate::flags::affect`] `flags` choose.
    async fn iothread_info(&self, dom: &DomainRef, flags: u32) -> Result<Vec<IoThreadInfo>> {
        let _ = (dom, flags);
        Err(self.no_support(Operation::GetIoThreadInfo))
    }

    /// The host's SMBIOS description as libvirt's `<sysinfo type='smbios'>` XML.
    async fn sysinfo(&self) -> Result<String> {
        Err(self.no_support(Operation::GetSysinfo))
    }

    /// Dumps a running guest into the file `to` on the daemon's host, as
    /// `virDomainCoreDumpWithFormat` with [`crate::flags::dump`] `flags`
    /// (the daemon has refused libvirt's exclusive pairs already).
    async fn core_dump(
        &self,
        dom: &DomainRef,
        to: &str,
        format: DumpFormat,
        flags: u32,
    ) -> Result<()> {
        let _ = (dom, to, format, flags);
        Err(self.no_support(Operation::CoreDump))
    }

    /// An image of the running guest's `screen` (0: the first head).
    async fn screenshot(&self, dom: &DomainRef, screen: u32, flags: u32) -> Result<Screenshot> {
        let _ = (dom, screen, flags);
        Err(self.no_support(Operation::Screenshot))
    }

    /// The jobs this driver runs on domains by itself (a dump), which the
    /// daemon reports and aborts beside its migration jobs; `None` for a
    /// driver that runs none.
    fn local_jobs(&self) -> Option<&LocalJobs> {
        None
    }

    /// The scheduler of a domain and how many parameters it has
    /// (`virsh schedinfo`).
    async fn scheduler_type(&self, dom: &DomainRef) -> Result<(String, i32)> {
        let _ = dom;
        Err(self.no_support(Operation::GetSchedulerType))
    }

    /// The scheduler's parameters of the definition [`crate::flags::affect`]
    /// `flags` choose (one of them).
    async fn scheduler_parameters(&self, dom: &DomainRef, flags: u32) -> Result<TypedParams> {
        let _ = (dom, flags);
        Err(self.no_support(Operation::GetSchedulerParameters))
    }

    /// Changes scheduler parameters ([`crate::tune::scheduler`]).
    async fn set_scheduler_parameters(
        &self,
        dom: &DomainRef,
        params: &TypedParams,
        flags: u32,
    ) -> Result<()> {
        let _ = (dom, params, flags);
        Err(self.no_support(Operation::SetSchedulerParameters))
    }

    /// The memory limits ([`crate::tune::memory`]) of one definition, all
    /// of them: the daemon answers as many as the caller asked for.
    async fn memory_parameters(&self, dom: &DomainRef, flags: u32) -> Result<TypedParams> {
        let _ = (dom, flags);
        Err(self.no_support(Operation::GetMemoryParameters))
    }

    /// Changes memory limits of one definition (`virsh memtune`).
    async fn set_memory_parameters(
        &self,
        dom: &DomainRef,
        params: &TypedParams,
        flags: u32,
    ) -> Result<()> {
        let _ = (dom, params, flags);
        Err(self.no_support(Operation::SetMemoryParameters))
    }

    /// A running domain's CPU time, total and per host CPU
    /// (`virsh cpu-stats`); the daemon picks what the query asks for.
    async fn cpu_stats(&self, dom: &DomainRef, flags: u32) -> Result<CpuStats> {
        let _ = (dom, flags);
        Err(self.no_support(Operation::GetCpuStats))
    }

    /// The guest's host name (`virsh domhostname`).
    async fn guest_hostname(&self, dom: &DomainRef, flags: u32) -> Result<String> {
        let _ = (dom, flags);
        Err(self.no_support(Operation::GetHostname))
    }

    /// The guest's clock (`virsh domtime`).
    async fn guest_time(&self, dom: &DomainRef, flags: u32) -> Result<GuestTime> {
        let _ = (dom, flags);
        Err(self.no_support(Operation::GetTime))
    }

    /// Sets the guest's clock, or with [`crate::tune::TIME_SYNC`] resyncs
    /// it from its RTC (`virsh domtime --time/--now/--sync`).
    async fn set_guest_time(&self, dom: &DomainRef, time: GuestTime, flags: u32) -> Result<()> {
        let _ = (dom, time, flags);
        Err(self.no_support(Operation::SetTime))
    }

    /// `virDomainSnapshotCreateXML`: takes (or with `REDEFINE` restores the
    /// metadata of) the snapshot `xml` describes; returns its name.
    async fn snapshot_create(&self, dom: &DomainRef, xml: &str, flags: u32) -> Result<String> {
        let _ = (dom, xml, flags);
        Err(self.no_support(Operation::SnapshotCreate))
    }

    /// The names of the domain's snapshots (`of` = `None`) or of a
    /// snapshot's children matching the `VIR_DOMAIN_SNAPSHOT_LIST_*`
    /// `flags`; every listing and counting call is served by this.
    async fn snapshot_list(
        &self,
        dom: &DomainRef,
        of: Option<&str>,
        flags: u32,
    ) -> Result<Vec<String>> {
        let _ = (dom, of, flags);
        Err(self.no_support(Operation::SnapshotList))
    }

    /// Checks that snapshot `name` exists (`virDomainSnapshotLookupByName`,
    /// `virDomainSnapshotHasMetadata`).
    async fn snapshot_lookup(&self, dom: &DomainRef, name: &str, flags: u32) -> Result<()> {
        let _ = (dom, name, flags);
        Err(self.no_support(Operation::SnapshotLookup))
    }

    /// The snapshot's `<domainsnapshot>` XML.
    async fn snapshot_xml(&self, dom: &DomainRef, name: &str, flags: u32) -> Result<String> {
        let _ = (dom, name, flags);
        Err(self.no_support(Operation::SnapshotXml))
    }

    /// The current snapshot's name, if any.
    async fn snapshot_current(&self, dom: &DomainRef, flags: u32) -> Result<Option<String>> {
        let _ = (dom, flags);
        Err(self.no_support(Operation::SnapshotCurrent))
    }

    /// The name of snapshot `name`'s parent; `VIR_ERR_NO_DOMAIN_SNAPSHOT`
    /// when it has none.
    async fn snapshot_parent(&self, dom: &DomainRef, name: &str, flags: u32) -> Result<String> {
        let _ = (dom, name, flags);
        Err(self.no_support(Operation::SnapshotParent))
    }

    /// Reverts the domain to snapshot `name` (`VIR_DOMAIN_SNAPSHOT_REVERT_*`).
    async fn snapshot_revert(&self, dom: &DomainRef, name: &str, flags: u32) -> Result<()> {
        let _ = (dom, name, flags);
        Err(self.no_support(Operation::SnapshotRevert))
    }

    /// Deletes snapshot `name` (`VIR_DOMAIN_SNAPSHOT_DELETE_*`).
    async fn snapshot_delete(&self, dom: &DomainRef, name: &str, flags: u32) -> Result<()> {
        let _ = (dom, name, flags);
        Err(self.no_support(Operation::SnapshotDelete))
    }

    /// The block I/O weights of one definition ([`crate::tune::blkio`]),
    /// all of them (`virsh blkiotune`).
    async fn blkio_parameters(&self, dom: &DomainRef, flags: u32) -> Result<TypedParams> {
        let _ = (dom, flags);
        Err(self.no_support(Operation::GetBlkioParameters))
    }

    /// Changes block I/O weights of one definition.
    async fn set_blkio_parameters(
        &self,
        dom: &DomainRef,
        params: &TypedParams,
        flags: u32,
    ) -> Result<()> {
        let _ = (dom, params, flags);
        Err(self.no_support(Operation::SetBlkioParameters))
    }

    /// The I/O throttling of one disk ([`crate::xml::IOTUNE_LIMITS`] and
    /// `group_name`), all of it (`virsh blkdeviotune`). `disk` is `None`
    /// only for a caller that counts the parameters.
    async fn block_io_tune(
        &self,
        dom: &DomainRef,
        disk: Option<&str>,
        flags: u32,
    ) -> Result<TypedParams> {
        let _ = (dom, disk, flags);
        Err(self.no_support(Operation::GetBlockIoTune))
    }

    /// Changes the I/O throttling of one disk.
    async fn set_block_io_tune(
        &self,
        dom: &DomainRef,
        disk: &str,
        params: &TypedParams,
        flags: u32,
    ) -> Result<()> {
        let _ = (dom, disk, params, flags);
        Err(self.no_support(Operation::SetBlockIoTune))
    }

    /// The NUMA memory policy of one definition ([`crate::tune::numa`];
    /// `virsh numatune`).
    async fn numa_parameters(&self, dom: &DomainRef, flags: u32) -> Result<TypedParams> {
        let _ = (dom, flags);
        Err(self.no_support(Operation::GetNumaParameters))
    }

    /// Changes the NUMA memory policy of one definition.
    async fn set_numa_parameters(
        &self,
        dom: &DomainRef,
        params: &TypedParams,
        flags: u32,
    ) -> Result<()> {
        let _ = (dom, params, flags);
        Err(self.no_support(Operation::SetNumaParameters))
    }

    /// The traffic shaping of one interface ([`crate::tune::bandwidth`];
    /// `virsh domiftune`), by MAC address or host device name.
    async fn interface_parameters(
        &self,
        dom: &DomainRef,
        device: &str,
        flags: u32,
    ) -> Result<TypedParams> {
        let _ = (dom, device, flags);
        Err(self.no_support(Operation::GetInterfaceParameters))
    }

    /// Changes the traffic shaping of one interface.
    async fn set_interface_parameters(
        &self,
        dom: &DomainRef,
        device: &str,
        params: &TypedParams,
        flags: u32,
    ) -> Result<()> {
        let _ = (dom, device, params, flags);
        Err(self.no_support(Operation::SetInterfaceParameters))
    }

    /// The guest's interfaces and their addresses from `source`
    /// ([`crate::tune::ifaddr`]; `virsh domifaddr`).
    async fn interface_addresses(
        &self,
        dom: &DomainRef,
        source: u32,
        flags: u32,
    ) -> Result<Vec<InterfaceAddresses>> {
        let _ = (dom, source, flags);
        Err(self.no_support(Operation::InterfaceAddresses))
    }

    /// Every perf event of one definition and whether it is enabled
    /// ([`crate::xml::PERF_EVENTS`]; `virsh perf`).
    async fn perf_events(&self, dom: &DomainRef, flags: u32) -> Result<TypedParams> {
        let _ = (dom, flags);
        Err(self.no_support(Operation::GetPerfEvents))
    }

    /// Enables or disables perf events of one definition.
    async fn set_perf_events(
        &self,
        dom: &DomainRef,
        params: &TypedParams,
        flags: u32,
    ) -> Result<()> {
        let _ = (dom, params, flags);
        Err(self.no_support(Operation::SetPerfEvents))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use crate::support::{MigrationDefaults, SupportTable};

    static EMPTY: SupportTable = SupportTable {
        driver: "Empty",
        error_domain: crate::error::ErrorDomain::Domain,
        procedures: &[],
        migration_flags: 0,
        migration_params: &[],
        defaults: MigrationDefaults { flags: 0 },
        qemu_procedures: &[],
        device_stats: false,
    };

    struct Empty;

    impl Driver for Empty {
        fn support(&self) -> &'static SupportTable {
            &EMPTY
        }
    }

    #[tokio::test]
    async fn default_methods_answer_no_support_naming_api_and_driver() {
        let drv = Empty;
        let dom = DomainRef {
            name: "a".into(),
            uuid: Uuid::nil(),
            id: -1,
        };
        let results: Vec<(Operation, Error)> = vec![
            (
                Operation::ListAllDomains,
                drv.list_all_domains(0).await.expect_err("default body"),
            ),
            (
                Operation::Suspend,
                drv.suspend(&dom).await.expect_err("default body"),
            ),
            (
                Operation::DefineXml,
                drv.define_xml("<domain/>", 0)
                    .await
                    .expect_err("default body"),
            ),
            (
                Operation::Capabilities,
                drv.capabilities().await.expect_err("default body"),
            ),
            (
                Operation::DomainCapabilities,
                drv.domain_capabilities(&DomainCapsQuery::default(), 0)
                    .await
                    .expect_err("default body"),
            ),
            (
                Operation::SubscribeEvents,
                drv.subscribe_events().expect_err("default body"),
            ),
            (
                Operation::Restore,
                drv.restore("/x", None, 0).await.expect_err("default body"),
            ),
        ];
        for (op, err) in results {
            assert_eq!(err.code(), ErrorCode::NoSupport);
            assert!(
                matches!(
                    err,
                    Error::NoSupport {
                        driver: "Empty",
                        ..
                    }
                ),
                "{err:?}"
            );
            let msg = err.to_string();
            assert!(msg.contains(op.api_name()), "{msg}");
        }
    }

    #[test]
    fn operation_names_are_unique() {
        for name in [Operation::api_name, Operation::method] {
            let mut names: Vec<_> = Operation::ALL.iter().map(|op| name(*op)).collect();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), Operation::ALL.len());
        }
    }
}
