//! One call per [`Operation`], for the drivers' support-table tests: each
//! driver crate's test calls [`probe`] for every operation on a fresh
//! driver and checks that the declared ones never answer
//! `VIR_ERR_NO_SUPPORT` and the others always do.
//!
//! The arguments are harmless (a domain that may not exist, paths under
//! `/nonexistent`): any answer but "not supported" means the driver
//! implements the call. The match is exhaustive, so a new operation must be
//! probed here once, for every driver.

use crate::domain::{DomainCapsQuery, DomainRef};
use crate::driver::{Driver, DumpFormat, Operation};
use crate::error::ErrorCode;
use crate::keycode::Codeset;
use crate::tune::GuestTime;
use crate::typed_params::{TypedParams, TypedValue};
use crate::xml::MetadataTarget;

/// A disk device for the hot-plug probes.
const DISK: &str = "<disk type='file'><source file='/probe.img'/><target dev='vdb'/></disk>";

/// A snapshot definition for the snapshot probes.
const SNAPSHOT: &str = "<domainsnapshot><name>s</name></domainsnapshot>";

/// Calls the trait method behind `op` once on `dom`; `domain_xml` is a
/// definition the driver accepts (for define/create/save-image probes).
/// Answers the error code, `None` on success.
pub async fn probe(
    drv: &dyn Driver,
    dom: &DomainRef,
    domain_xml: &str,
    op: Operation,
) -> Option<ErrorCode> {
    fn code<T>(r: crate::Result<T>) -> Option<ErrorCode> {
        r.err().map(|e| e.code())
    }
    let save = "/nonexistent/save";
    match op {
        Operation::ListAllDomains => code(drv.list_all_domains(0).await),
        Operation::LookupByName => code(drv.lookup_by_name(&dom.name).await),
        Operation::LookupByUuid => code(drv.lookup_by_uuid(&dom.uuid).await),
        Operation::LookupById => code(drv.lookup_by_id(77).await),
        Operation::GetInfo => code(drv.get_info(dom).await),
        Operation::GetState => code(drv.get_state(dom, 0).await),
        Operation::GetVcpus => code(drv.vcpu_info(dom).await),
        Operation::MemoryStats => code(drv.memory_stats(dom).await),
        Operation::SetMemory => code(drv.set_memory(dom, 65536, 0).await),
        Operation::SetMemoryStatsPeriod => code(drv.set_memory_stats_period(dom, 5, 0).await),
        Operation::GetOsType => code(drv.get_os_type(dom).await),
        Operation::GetXmlDesc => code(drv.get_xml_desc(dom, 0).await),
        Operation::DefineXml => code(drv.define_xml(domain_xml, 0).await),
        Operation::Undefine => code(drv.undefine(dom, 0).await),
        Operation::Create => code(drv.create(dom, 0).await),
        Operation::CreateXml => code(drv.create_xml(domain_xml, 0).await),
        Operation::Destroy => code(drv.destroy(dom, 0).await),
        Operation::Suspend => code(drv.suspend(dom).await),
        Operation::Resume => code(drv.resume(dom).await),
        Operation::Shutdown => code(drv.shutdown(dom, 0).await),
        Operation::Reset => code(drv.reset(dom).await),
        Operation::Reboot => code(drv.reboot(dom, 0).await),
        Operation::InjectNmi => code(drv.inject_nmi(dom).await),
        Operation::SendKey => code(drv.send_key(dom, Codeset::Linux, 0, &[30]).await),
        Operation::OpenConsole => code(drv.open_console(dom, None, 0).await),
        Operation::GetAutostart => code(drv.get_autostart(dom).await),
        Operation::SetAutostart => code(drv.set_autostart(dom, false).await),
        Operation::IsActive => code(drv.is_active(dom).await),
        Operation::IsPersistent => code(drv.is_persistent(dom).await),
        Operation::HasManagedSave => code(drv.has_managed_save(dom, 0).await),
        Operation::Capabilities => code(drv.capabilities().await),
        Operation::DomainCapabilities => code(
            drv.domain_capabilities(&DomainCapsQuery::default(), 0)
                .await,
        ),
        Operation::NodeInfo => code(drv.node_info().await),
        Operation::NodeMemory => code(drv.node_memory().await),
        Operation::NodeCpuTimes => code(drv.node_cpu_times(None).await),
        Operation::NodeSecurityModel => code(drv.node_security_model().await),
        Operation::HypervisorVersion => code(drv.hypervisor_version().await),
        Operation::GetType => code(drv.get_type().await),
        Operation::Uri => code(drv.uri().await),
        Operation::SubscribeEvents => code(drv.subscribe_events()),
        Operation::Save => code(drv.save(dom, save, None, 0).await),
        Operation::Restore => code(drv.restore(save, None, 0).await),
        Operation::BlockStats => code(drv.block_stats(dom, "vda").await),
        Operation::BlockStatsFlags => code(drv.block_stats_flags(dom, "vda").await),
        Operation::BlockInfo => code(drv.block_info(dom, "vda").await),
        Operation::InterfaceStats => code(drv.interface_stats(dom, "vnet0").await),
        Operation::MigrateGetCompressionCache => code(drv.migrate_compression_cache(dom).await),
        Operation::MigrateSetCompressionCache => {
            code(drv.set_migrate_compression_cache(dom, 1 << 20).await)
        }
        Operation::ManagedSave => code(drv.managed_save(dom, 0).await),
        Operation::ManagedSaveRemove => code(drv.managed_save_remove(dom, 0).await),
        Operation::SetMetadata => code(
            drv.set_metadata(dom, &MetadataTarget::Title, Some("t"), 0)
                .await,
        ),
        Operation::GetMetadata => code(drv.get_metadata(dom, &MetadataTarget::Title, 0).await),
        Operation::SaveImageGetXmlDesc => code(drv.save_image_xml(save, 0).await),
        Operation::SaveImageDefineXml => code(drv.save_image_define_xml(save, domain_xml, 0).await),
        Operation::ManagedSaveGetXmlDesc => code(drv.managed_save_xml(dom, 0).await),
        Operation::ManagedSaveDefineXml => code(drv.managed_save_define_xml(dom, None, 0).await),
        Operation::SetVcpus => code(drv.set_vcpus(dom, 1, 0).await),
        Operation::Rename => code(drv.rename(dom, "renamed", 0).await),
        Operation::AttachDevice => code(drv.attach_device(dom, DISK, 0).await),
        Operation::DetachDevice => code(drv.detach_device(dom, DISK, 0).await),
        Operation::UpdateDevice => code(drv.update_device(dom, DISK, 0).await),
        Operation::GetControlInfo => code(drv.control_info(dom).await),
        Operation::GetIoThreadInfo => code(drv.iothread_info(dom, 0).await),
        Operation::GetSysinfo => code(drv.sysinfo().await),
        Operation::CoreDump => code(
            drv.core_dump(dom, "/nonexistent/core", DumpFormat::Raw, 0)
                .await,
        ),
        Operation::Screenshot => code(drv.screenshot(dom, 0, 0).await),
        Operation::GetSchedulerType => code(drv.scheduler_type(dom).await),
        Operation::GetSchedulerParameters => code(drv.scheduler_parameters(dom, 0).await),
        Operation::SetSchedulerParameters => code(
            drv.set_scheduler_parameters(dom, &one_param("weight", TypedValue::UInt(10)), 0)
                .await,
        ),
        Operation::GetMemoryParameters => code(drv.memory_parameters(dom, 0).await),
        Operation::SetMemoryParameters => code(
            drv.set_memory_parameters(dom, &one_param("soft_limit", TypedValue::ULLong(1024)), 0)
                .await,
        ),
        Operation::GetCpuStats => code(drv.cpu_stats(dom, 0).await),
        Operation::GetHostname => code(drv.guest_hostname(dom, 0).await),
        Operation::GetTime => code(drv.guest_time(dom, 0).await),
        Operation::SetTime => code(
            drv.set_guest_time(
                dom,
                GuestTime {
                    seconds: 1,
                    nseconds: 0,
                },
                0,
            )
            .await,
        ),
        Operation::SnapshotCreate => code(drv.snapshot_create(dom, SNAPSHOT, 0).await),
        Operation::SnapshotList => code(drv.snapshot_list(dom, None, 0).await),
        Operation::SnapshotLookup => code(drv.snapshot_lookup(dom, "s", 0).await),
        Operation::SnapshotXml => code(drv.snapshot_xml(dom, "s", 0).await),
        Operation::SnapshotCurrent => code(drv.snapshot_current(dom, 0).await),
        Operation::SnapshotParent => code(drv.snapshot_parent(dom, "s", 0).await),
        Operation::SnapshotRevert => code(drv.snapshot_revert(dom, "s", 0).await),
        Operation::SnapshotDelete => code(drv.snapshot_delete(dom, "s", 0).await),
        Operation::GetBlkioParameters => code(drv.blkio_parameters(dom, 0).await),
        Operation::SetBlkioParameters => code(
            drv.set_blkio_parameters(dom, &one_param("weight", TypedValue::UInt(10)), 0)
                .await,
        ),
        Operation::GetBlockIoTune => code(drv.block_io_tune(dom, Some("vda"), 0).await),
        Operation::SetBlockIoTune => code(
            drv.set_block_io_tune(
                dom,
                "vda",
                &one_param("total_bytes_sec", TypedValue::ULLong(1024)),
                0,
            )
            .await,
        ),
        Operation::GetNumaParameters => code(drv.numa_parameters(dom, 0).await),
        Operation::SetNumaParameters => code(
            drv.set_numa_parameters(
                dom,
                &one_param("numa_nodeset", TypedValue::String("0".into())),
                0,
            )
            .await,
        ),
        Operation::GetInterfaceParameters => code(drv.interface_parameters(dom, "vnet0", 0).await),
        Operation::SetInterfaceParameters => code(
            drv.set_interface_parameters(
                dom,
                "vnet0",
                &one_param("inbound.average", TypedValue::UInt(10)),
                0,
            )
            .await,
        ),
        Operation::InterfaceAddresses => code(drv.interface_addresses(dom, 0, 0).await),
        Operation::GetPerfEvents => code(drv.perf_events(dom, 0).await),
        Operation::SetPerfEvents => code(
            drv.set_perf_events(dom, &one_param("cmt", TypedValue::Boolean(true)), 0)
                .await,
        ),
        Operation::QemuMonitorCommand => code(
            drv.qemu_monitor_command(dom, r#"{"execute":"query-status"}"#, 0)
                .await,
        ),
        Operation::QemuAgentCommand => code(
            drv.qemu_agent_command(dom, r#"{"execute":"guest-ping"}"#, 0, 0)
                .await,
        ),
        Operation::SubscribeMonitorEvents => code(drv.subscribe_monitor_events()),
    }
}

/// A one-parameter list for the tuning setters.
fn one_param(key: &str, value: TypedValue) -> TypedParams {
    TypedParams::new().with(key, value)
}
