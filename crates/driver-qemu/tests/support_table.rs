//! The support table and the trait agree: every operation the table
//! declares is implemented (never `VIR_ERR_NO_SUPPORT`), every other one
//! answers `VIR_ERR_NO_SUPPORT`. Needs no QEMU: calls that would need a
//! guest fail with "no domain", which is not "no support".

use migrated_core::domain::{DomainCapsQuery, DomainRef, HostIdentity};
use migrated_core::driver::{Driver, DumpFormat, Operation};
use migrated_core::error::ErrorCode;
use migrated_core::keycode::Codeset;
use migrated_core::xml::MetadataTarget;
use migrated_driver_qemu::{QemuConfig, QemuDriver, SUPPORT};
use uuid::Uuid;

const DISK: &str = "<disk type='file'><source file='/probe.img'/><target dev='vdb'/></disk>";

async fn code_of(driver: &QemuDriver, op: Operation) -> Option<ErrorCode> {
    let dom = DomainRef {
        name: "nobody".into(),
        uuid: Uuid::new_v4(),
        id: -1,
    };
    let xml = "<domain type='qemu'><name>x</name><memory>1024</memory></domain>";
    let err = match op {
        Operation::ListAllDomains => driver.list_all_domains(0).await.err(),
        Operation::LookupByName => driver.lookup_by_name("nobody").await.err(),
        Operation::LookupByUuid => driver.lookup_by_uuid(&dom.uuid).await.err(),
        Operation::LookupById => driver.lookup_by_id(77).await.err(),
        Operation::GetInfo => driver.get_info(&dom).await.err(),
        Operation::GetState => driver.get_state(&dom, 0).await.err(),
        Operation::GetVcpus => driver.vcpu_info(&dom).await.err(),
        Operation::MemoryStats => driver.memory_stats(&dom).await.err(),
        Operation::SetMemory => driver.set_memory(&dom, 65536, 0).await.err(),
        Operation::GetOsType => driver.get_os_type(&dom).await.err(),
        Operation::GetXmlDesc => driver.get_xml_desc(&dom, 0).await.err(),
        Operation::DefineXml => driver.define_xml(xml, 0).await.err(),
        Operation::Undefine => driver.undefine(&dom, 0).await.err(),
        Operation::Create => driver.create(&dom, 0).await.err(),
        Operation::CreateXml => driver.create_xml(xml, 0).await.err(),
        Operation::Destroy => driver.destroy(&dom, 0).await.err(),
        Operation::Suspend => driver.suspend(&dom).await.err(),
        Operation::Resume => driver.resume(&dom).await.err(),
        Operation::Shutdown => driver.shutdown(&dom, 0).await.err(),
        Operation::Reset => driver.reset(&dom).await.err(),
        Operation::Reboot => driver.reboot(&dom, 0).await.err(),
        Operation::InjectNmi => driver.inject_nmi(&dom).await.err(),
        Operation::SendKey => driver.send_key(&dom, Codeset::Linux, 0, &[30]).await.err(),
        Operation::OpenConsole => driver.open_console(&dom, None, 0).await.err(),
        Operation::GetAutostart => driver.get_autostart(&dom).await.err(),
        Operation::SetAutostart => driver.set_autostart(&dom, true).await.err(),
        Operation::IsActive => driver.is_active(&dom).await.err(),
        Operation::IsPersistent => driver.is_persistent(&dom).await.err(),
        Operation::HasManagedSave => driver.has_managed_save(&dom, 0).await.err(),
        Operation::Capabilities => driver.capabilities().await.err(),
        Operation::DomainCapabilities => driver
            .domain_capabilities(&DomainCapsQuery::default(), 0)
            .await
            .err(),
        Operation::NodeInfo => driver.node_info().await.err(),
        Operation::NodeMemory => driver.node_memory().await.err(),
        Operation::NodeCpuTimes => driver.node_cpu_times(None).await.err(),
        Operation::NodeSecurityModel => driver.node_security_model().await.err(),
        Operation::HypervisorVersion => driver.hypervisor_version().await.err(),
        Operation::GetType => driver.get_type().await.err(),
        Operation::Uri => driver.uri().await.err(),
        Operation::SubscribeEvents => driver.subscribe_events().err(),
        Operation::Save => driver.save(&dom, "/nonexistent/save", None, 0).await.err(),
        Operation::Restore => driver.restore("/nonexistent/save", None, 0).await.err(),
        Operation::BlockStats => driver.block_stats(&dom, "vda").await.err(),
        Operation::BlockStatsFlags => driver.block_stats_flags(&dom, "vda").await.err(),
        Operation::BlockInfo => driver.block_info(&dom, "vda").await.err(),
        Operation::InterfaceStats => driver.interface_stats(&dom, "vnet0").await.err(),
        Operation::MigrateGetCompressionCache => driver.migrate_compression_cache(&dom).await.err(),
        Operation::MigrateSetCompressionCache => driver
            .set_migrate_compression_cache(&dom, 1 << 20)
            .await
            .err(),
        Operation::ManagedSave => driver.managed_save(&dom, 0).await.err(),
        Operation::ManagedSaveRemove => driver.managed_save_remove(&dom, 0).await.err(),
        Operation::SetMetadata => driver
            .set_metadata(&dom, &MetadataTarget::Title, Some("t"), 0)
            .await
            .err(),
        Operation::GetMetadata => driver
            .get_metadata(&dom, &MetadataTarget::Title, 0)
            .await
            .err(),
        Operation::SaveImageGetXmlDesc => driver.save_image_xml("/nonexistent/save", 0).await.err(),
        Operation::SaveImageDefineXml => driver
            .save_image_define_xml("/nonexistent/save", xml, 0)
            .await
            .err(),
        Operation::ManagedSaveGetXmlDesc => driver.managed_save_xml(&dom, 0).await.err(),
        Operation::ManagedSaveDefineXml => {
            driver.managed_save_define_xml(&dom, None, 0).await.err()
        }
        Operation::SetVcpus => driver.set_vcpus(&dom, 1, 0).await.err(),
        Operation::Rename => driver.rename(&dom, "renamed", 0).await.err(),
        Operation::CoreDump => driver
            .core_dump(&dom, "/nonexistent/core", DumpFormat::Raw, 0)
            .await
            .err(),
        Operation::Screenshot => driver.screenshot(&dom, 0, 0).await.err(),
        Operation::AttachDevice => driver.attach_device(&dom, DISK, 0).await.err(),
        Operation::DetachDevice => driver.detach_device(&dom, DISK, 0).await.err(),
        Operation::UpdateDevice => driver.update_device(&dom, DISK, 0).await.err(),
        Operation::GetControlInfo => driver.control_info(&dom).await.err(),
        Operation::GetIoThreadInfo => driver.iothread_info(&dom, 0).await.err(),
        Operation::GetSysinfo => driver.sysinfo().await.err(),
        Operation::GetSchedulerType => driver.scheduler_type(&dom).await.err(),
        Operation::GetSchedulerParameters => driver.scheduler_parameters(&dom, 0).await.err(),
        Operation::SetSchedulerParameters => driver
            .set_scheduler_parameters(&dom, &tune_params("weight"), 0)
            .await
            .err(),
        Operation::GetMemoryParameters => driver.memory_parameters(&dom, 0).await.err(),
        Operation::SetMemoryParameters => driver
            .set_memory_parameters(&dom, &tune_params("soft_limit"), 0)
            .await
            .err(),
        Operation::GetCpuStats => driver.cpu_stats(&dom, 0).await.err(),
        Operation::GetHostname => driver.guest_hostname(&dom, 0).await.err(),
        Operation::GetTime => driver.guest_time(&dom, 0).await.err(),
        Operation::SetTime => driver
            .set_guest_time(
                &dom,
                migrated_core::tune::GuestTime {
                    seconds: 1,
                    nseconds: 0,
                },
                0,
            )
            .await
            .err(),
        Operation::SnapshotCreate => driver
            .snapshot_create(&dom, "<domainsnapshot><name>s</name></domainsnapshot>", 0)
            .await
            .err(),
        Operation::SnapshotList => driver.snapshot_list(&dom, None, 0).await.err(),
        Operation::SnapshotLookup => driver.snapshot_lookup(&dom, "s", 0).await.err(),
        Operation::SnapshotXml => driver.snapshot_xml(&dom, "s", 0).await.err(),
        Operation::SnapshotCurrent => driver.snapshot_current(&dom, 0).await.err(),
        Operation::SnapshotParent => driver.snapshot_parent(&dom, "s", 0).await.err(),
        Operation::SnapshotRevert => driver.snapshot_revert(&dom, "s", 0).await.err(),
        Operation::SnapshotDelete => driver.snapshot_delete(&dom, "s", 0).await.err(),
        Operation::GetBlkioParameters => driver.blkio_parameters(&dom, 0).await.err(),
        Operation::SetBlkioParameters => driver
            .set_blkio_parameters(&dom, &tune_params("weight"), 0)
            .await
            .err(),
        Operation::GetBlockIoTune => driver.block_io_tune(&dom, Some("vda"), 0).await.err(),
        Operation::SetBlockIoTune => driver
            .set_block_io_tune(&dom, "vda", &tune_params("total_bytes_sec"), 0)
            .await
            .err(),
        Operation::GetNumaParameters => driver.numa_parameters(&dom, 0).await.err(),
        Operation::SetNumaParameters => driver
            .set_numa_parameters(&dom, &tune_params("numa_nodeset"), 0)
            .await
            .err(),
        Operation::GetInterfaceParameters => {
            driver.interface_parameters(&dom, "vnet0", 0).await.err()
        }
        Operation::SetInterfaceParameters => driver
            .set_interface_parameters(&dom, "vnet0", &tune_params("inbound.average"), 0)
            .await
            .err(),
        Operation::InterfaceAddresses => driver.interface_addresses(&dom, 0, 0).await.err(),
        Operation::GetPerfEvents => driver.perf_events(&dom, 0).await.err(),
        Operation::SetPerfEvents => driver
            .set_perf_events(&dom, &tune_params("cmt"), 0)
            .await
            .err(),
    };
    err.map(|e| e.code())
}

#[tokio::test]
async fn declared_operations_are_implemented_and_the_rest_are_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = HostIdentity {
        hostname: "h".into(),
        uuid: Uuid::new_v4(),
    };
    let driver = QemuDriver::open(
        QemuConfig::new(dir.path().join("s"), dir.path().join("r")),
        host,
    )
    .await
    .expect("open");
    for &op in Operation::ALL {
        let code = code_of(&driver, op).await;
        if SUPPORT.implements_operation(op) {
            assert_ne!(
                code,
                Some(ErrorCode::NoSupport),
                "{op} is declared but not implemented"
            );
        } else {
            assert_eq!(
                code,
                Some(ErrorCode::NoSupport),
                "{op} is implemented but not declared"
            );
        }
    }
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
