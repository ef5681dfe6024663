//! The support table must tell the truth: every procedure it declares is
//! answered by a real implementation, every procedure it leaves out answers
//! `VIR_ERR_NO_SUPPORT`.

use migrated_core::domain::{DomainCapsQuery, DomainRef, HostIdentity};
use migrated_core::driver::{Driver, DumpFormat, Operation};
use migrated_core::error::ErrorCode;
use migrated_core::keycode::Codeset;
use migrated_core::support::PROCEDURE_OPERATIONS;
use migrated_core::xml::MetadataTarget;
use migrated_core::Error;
use migrated_driver_test::{TestDriver, SUPPORT};
use uuid::Uuid;

const XML: &str = "<domain type='test'><name>probe</name>\
                   <memory unit='MiB'>1</memory><os><type>hvm</type></os></domain>";

const DISK: &str = "<disk type='file'><source file='/probe.img'/><target dev='vdb'/></disk>";

/// Calls the trait method behind `op` once and reports whether it answered
/// "not supported". Any other outcome, success or error, means the driver
/// implements it. The match is exhaustive, so a new operation must be probed.
async fn answers_no_support(drv: &dyn Driver, dom: &DomainRef, op: Operation) -> bool {
    fn no_support<T>(r: Result<T, Error>) -> bool {
        matches!(r, Err(ref e) if e.code() == ErrorCode::NoSupport)
    }
    match op {
        Operation::ListAllDomains => no_support(drv.list_all_domains(0).await),
        Operation::LookupByName => no_support(drv.lookup_by_name(&dom.name).await),
        Operation::LookupByUuid => no_support(drv.lookup_by_uuid(&dom.uuid).await),
        Operation::LookupById => no_support(drv.lookup_by_id(1).await),
        Operation::GetInfo => no_support(drv.get_info(dom).await),
        Operation::GetState => no_support(drv.get_state(dom, 0).await),
        Operation::GetVcpus => no_support(drv.vcpu_info(dom).await),
        Operation::MemoryStats => no_support(drv.memory_stats(dom).await),
        Operation::SetMemory => no_support(drv.set_memory(dom, 65536, 0).await),
        Operation::GetOsType => no_support(drv.get_os_type(dom).await),
        Operation::GetXmlDesc => no_support(drv.get_xml_desc(dom, 0).await),
        Operation::DefineXml => no_support(drv.define_xml(XML, 0).await),
        Operation::Undefine => no_support(drv.undefine(dom, 0).await),
        Operation::Create => no_support(drv.create(dom, 0).await),
        Operation::CreateXml => no_support(drv.create_xml(XML, 0).await),
        Operation::Destroy => no_support(drv.destroy(dom, 0).await),
        Operation::Suspend => no_support(drv.suspend(dom).await),
        Operation::Resume => no_support(drv.resume(dom).await),
        Operation::Shutdown => no_support(drv.shutdown(dom, 0).await),
        Operation::Reset => no_support(drv.reset(dom).await),
        Operation::Reboot => no_support(drv.reboot(dom, 0).await),
        Operation::InjectNmi => no_support(drv.inject_nmi(dom).await),
        Operation::SendKey => no_support(drv.send_key(dom, Codeset::Linux, 0, &[30]).await),
        Operation::OpenConsole => no_support(drv.open_console(dom, None, 0).await),
        Operation::GetAutostart => no_support(drv.get_autostart(dom).await),
        Operation::SetAutostart => no_support(drv.set_autostart(dom, false).await),
        Operation::IsActive => no_support(drv.is_active(dom).await),
        Operation::IsPersistent => no_support(drv.is_persistent(dom).await),
        Operation::HasManagedSave => no_support(drv.has_managed_save(dom, 0).await),
        Operation::Capabilities => no_support(drv.capabilities().await),
        Operation::DomainCapabilities => no_support(
            drv.domain_capabilities(&DomainCapsQuery::default(), 0)
                .await,
        ),
        Operation::NodeInfo => no_support(drv.node_info().await),
        Operation::NodeMemory => no_support(drv.node_memory().await),
        Operation::NodeCpuTimes => no_support(drv.node_cpu_times(None).await),
        Operation::NodeSecurityModel => no_support(drv.node_security_model().await),
        Operation::HypervisorVersion => no_support(drv.hypervisor_version().await),
        Operation::GetType => no_support(drv.get_type().await),
        Operation::Uri => no_support(drv.uri().await),
        Operation::SubscribeEvents => no_support(drv.subscribe_events()),
        Operation::Save => no_support(drv.save(dom, "/nonexistent/save", None, 0).await),
        Operation::Restore => no_support(drv.restore("/nonexistent/save", None, 0).await),
        Operation::BlockStats => no_support(drv.block_stats(dom, "vda").await),
        Operation::BlockStatsFlags => no_support(drv.block_stats_flags(dom, "vda").await),
        Operation::BlockInfo => no_support(drv.block_info(dom, "vda").await),
        Operation::InterfaceStats => no_support(drv.interface_stats(dom, "vnet0").await),
        Operation::MigrateGetCompressionCache => {
            no_support(drv.migrate_compression_cache(dom).await)
        }
        Operation::MigrateSetCompressionCache => {
            no_support(drv.set_migrate_compression_cache(dom, 1 << 20).await)
        }
        Operation::ManagedSave => no_support(drv.managed_save(dom, 0).await),
        Operation::ManagedSaveRemove => no_support(drv.managed_save_remove(dom, 0).await),
        Operation::SetMetadata => no_support(
            drv.set_metadata(dom, &MetadataTarget::Title, Some("t"), 0)
                .await,
        ),
        Operation::GetMetadata => {
            no_support(drv.get_metadata(dom, &MetadataTarget::Title, 0).await)
        }
        Operation::SaveImageGetXmlDesc => {
            no_support(drv.save_image_xml("/nonexistent/save", 0).await)
        }
        Operation::SaveImageDefineXml => no_support(
            drv.save_image_define_xml("/nonexistent/save", "<domain/>", 0)
                .await,
        ),
        Operation::ManagedSaveGetXmlDesc => no_support(drv.managed_save_xml(dom, 0).await),
        Operation::ManagedSaveDefineXml => {
            no_support(drv.managed_save_define_xml(dom, None, 0).await)
        }
        Operation::SetVcpus => no_support(drv.set_vcpus(dom, 1, 0).await),
        Operation::Rename => no_support(drv.rename(dom, "renamed", 0).await),
        Operation::AttachDevice => no_support(drv.attach_device(dom, DISK, 0).await),
        Operation::DetachDevice => no_support(drv.detach_device(dom, DISK, 0).await),
        Operation::UpdateDevice => no_support(drv.update_device(dom, DISK, 0).await),
        Operation::GetControlInfo => no_support(drv.control_info(dom).await),
        Operation::GetIoThreadInfo => no_support(drv.iothread_info(dom, 0).await),
        Operation::GetSysinfo => no_support(drv.sysinfo().await),
        Operation::CoreDump => no_support(
            drv.core_dump(dom, "/nonexistent/core", DumpFormat::Raw, 0)
                .await,
        ),
        Operation::Screenshot => no_support(drv.screenshot(dom, 0, 0).await),
        Operation::GetSchedulerType => no_support(drv.scheduler_type(dom).await),
        Operation::GetSchedulerParameters => no_support(drv.scheduler_parameters(dom, 0).await),
        Operation::SetSchedulerParameters => no_support(
            drv.set_scheduler_parameters(dom, &tune_params("weight"), 0)
                .await,
        ),
        Operation::GetMemoryParameters => no_support(drv.memory_parameters(dom, 0).await),
        Operation::SetMemoryParameters => no_support(
            drv.set_memory_parameters(dom, &tune_params("soft_limit"), 0)
                .await,
        ),
        Operation::GetCpuStats => no_support(drv.cpu_stats(dom, 0).await),
        Operation::GetHostname => no_support(drv.guest_hostname(dom, 0).await),
        Operation::GetTime => no_support(drv.guest_time(dom, 0).await),
        Operation::SetTime => no_support(
            drv.set_guest_time(
                dom,
                migrated_core::tune::GuestTime {
                    seconds: 1,
                    nseconds: 0,
                },
                0,
            )
            .await,
        ),
        Operation::SnapshotCreate => no_support(
            drv.snapshot_create(dom, "<domainsnapshot><name>s</name></domainsnapshot>", 0)
                .await,
        ),
        Operation::SnapshotList => no_support(drv.snapshot_list(dom, None, 0).await),
        Operation::SnapshotLookup => no_support(drv.snapshot_lookup(dom, "s", 0).await),
        Operation::SnapshotXml => no_support(drv.snapshot_xml(dom, "s", 0).await),
        Operation::SnapshotCurrent => no_support(drv.snapshot_current(dom, 0).await),
        Operation::SnapshotParent => no_support(drv.snapshot_parent(dom, "s", 0).await),
        Operation::SnapshotRevert => no_support(drv.snapshot_revert(dom, "s", 0).await),
        Operation::SnapshotDelete => no_support(drv.snapshot_delete(dom, "s", 0).await),
        Operation::GetBlkioParameters => no_support(drv.blkio_parameters(dom, 0).await),
        Operation::SetBlkioParameters => no_support(
            drv.set_blkio_parameters(dom, &tune_params("weight"), 0)
                .await,
        ),
        Operation::GetBlockIoTune => no_support(drv.block_io_tune(dom, Some("vda"), 0).await),
        Operation::SetBlockIoTune => no_support(
            drv.set_block_io_tune(dom, "vda", &tune_params("total_bytes_sec"), 0)
                .await,
        ),
        Operation::GetNumaParameters => no_support(drv.numa_parameters(dom, 0).await),
        Operation::SetNumaParameters => no_support(
            drv.set_numa_parameters(dom, &tune_params("numa_nodeset"), 0)
                .await,
        ),
        Operation::GetInterfaceParameters => {
            no_support(drv.interface_parameters(dom, "vnet0", 0).await)
        }
        Operation::SetInterfaceParameters => no_support(
            drv.set_interface_parameters(dom, "vnet0", &tune_params("inbound.average"), 0)
                .await,
        ),
        Operation::InterfaceAddresses => no_support(drv.interface_addresses(dom, 0, 0).await),
        Operation::GetPerfEvents => no_support(drv.perf_events(dom, 0).await),
        Operation::SetPerfEvents => {
            no_support(drv.set_perf_events(dom, &tune_params("cmt"), 0).await)
        }
    }
}

#[tokio::test]
async fn support_table_matches_real_behaviour() {
    let mut mismatches = Vec::new();
    for &(procedure, op) in PROCEDURE_OPERATIONS {
        // A fresh driver per probe, with one defined guest to act on, so that
        // one probe's side effects cannot change another's answer.
        let dir = tempfile::tempdir().expect("tempdir");
        let drv = TestDriver::new(
            dir.path(),
            HostIdentity {
                hostname: "probe".into(),
                uuid: Uuid::new_v4(),
            },
        )
        .expect("driver opens");
        let other = "<domain type='test'><name>target</name>\
                     <memory unit='MiB'>1</memory><os><type>hvm</type></os></domain>";
        let dom = drv.define_xml(other, 0).await.expect("define probe target");

        let declared = SUPPORT.implements(procedure);
        let unsupported = answers_no_support(&drv, &dom, op).await;
        if declared == unsupported {
            mismatches.push(format!(
                "{procedure:?} ({op}): declared={declared}, answers NO_SUPPORT={unsupported}"
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "support table is wrong:\n{}",
        mismatches.join("\n")
    );
}

#[test]
fn support_table_declares_each_procedure_once_with_a_version() {
    let mut seen = Vec::new();
    for (procedure, since) in SUPPORT.procedures {
        assert!(!seen.contains(procedure), "{procedure:?} declared twice");
        seen.push(*procedure);
        let parts: Vec<_> = since.split('.').collect();
        assert!(
            parts.len() == 3 && parts.iter().all(|p| p.parse::<u32>().is_ok()),
            "{procedure:?} has a malformed since-version {since:?}"
        );
    }
}

#[test]
fn migration_defaults_are_supported_flags() {
    let defaults = SUPPORT.defaults.flags;
    assert_eq!(defaults & !SUPPORT.migration_flags, 0);
}

/// A one-parameter list for the tuning setters (a value each accepts).
fn tune_params(key: &str) -> migrated_core::typed_params::TypedParams {
    use migrated_core::typed_params::TypedValue;
    let value = match key {
        "weight" | "inbound.average" => TypedValue::UInt(10),
        "numa_nodeset" => TypedValue::String("0".into()),
        "cmt" => TypedValue::Boolean(true),
        _ => TypedValue::ULLong(1024),
    };
    migrated_core::typed_params::TypedParams::new().with(key, value)
}
