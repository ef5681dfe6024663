//! What the QEMU driver implements (see `migrated_core::support`).

use migrated_core::flags::MigrateFlags;
use migrated_core::support::{MigrationDefaults, Procedure, SupportTable};
use migrated_core::typed_params::migrate_param;

/// Migration flags [`crate::backend::QemuBackend`] honours. RDMA (with
/// RDMA_PIN_ALL, meaningful only over an `rdma://` transport) is not
/// implemented yet.
const MIGRATION_FLAGS: u64 = MigrateFlags::LIVE.bits()
    | MigrateFlags::PEER2PEER.bits()
    | MigrateFlags::TUNNELLED.bits()
    | MigrateFlags::PERSIST_DEST.bits()
    | MigrateFlags::UNDEFINE_SOURCE.bits()
    | MigrateFlags::PAUSED.bits()
    | MigrateFlags::CHANGE_PROTECTION.bits()
    | MigrateFlags::UNSAFE.bits()
    | MigrateFlags::OFFLINE.bits()
    | MigrateFlags::COMPRESSED.bits()
    | MigrateFlags::ABORT_ON_ERROR.bits()
    | MigrateFlags::AUTO_CONVERGE.bits()
    | MigrateFlags::TLS.bits()
    | MigrateFlags::PARALLEL.bits()
    | MigrateFlags::NON_SHARED_DISK.bits()
    | MigrateFlags::NON_SHARED_INC.bits()
    | MigrateFlags::NON_SHARED_SYNCHRONOUS_WRITES.bits()
    | MigrateFlags::ZEROCOPY.bits()
    | MigrateFlags::POSTCOPY.bits()
    | MigrateFlags::POSTCOPY_RESUME.bits();

/// The QEMU driver's support table.
pub const SUPPORT: SupportTable = SupportTable {
    driver: "QEMU",
    error_domain: migrated_core::error::ErrorDomain::Qemu,
    procedures: &[
        (Procedure::ConnectGetType, "0.1.0"),
        (Procedure::ConnectGetVersion, "0.1.0"),
        (Procedure::ConnectGetUri, "0.1.0"),
        (Procedure::ConnectGetCapabilities, "0.1.0"),
        (Procedure::ConnectGetSysinfo, "0.1.0"),
        (Procedure::ConnectGetDomainCapabilities, "0.1.0"),
        (Procedure::NodeGetInfo, "0.1.0"),
        (Procedure::NodeGetMemoryStats, "0.1.0"),
        (Procedure::NodeGetCpuStats, "0.1.0"),
        (Procedure::NodeGetSecurityModel, "0.1.0"),
        (Procedure::ConnectListAllDomains, "0.1.0"),
        (Procedure::ConnectDomainEventCallbackRegisterAny, "0.1.0"),
        (Procedure::DomainLookupByName, "0.1.0"),
        (Procedure::DomainLookupByUuid, "0.1.0"),
        (Procedure::DomainLookupById, "0.1.0"),
        (Procedure::DomainGetInfo, "0.1.0"),
        (Procedure::DomainGetState, "0.1.0"),
        (Procedure::DomainGetVcpus, "0.1.0"),
        (Procedure::DomainMemoryStats, "0.1.0"),
        (Procedure::DomainGetCpuStats, "0.1.0"),
        (Procedure::DomainGetOsType, "0.1.0"),
        (Procedure::DomainGetXmlDesc, "0.1.0"),
        (Procedure::DomainDefineXml, "0.1.0"),
        (Procedure::DomainDefineXmlFlags, "0.1.0"),
        (Procedure::DomainUndefine, "0.1.0"),
        (Procedure::DomainUndefineFlags, "0.1.0"),
        (Procedure::DomainCreate, "0.1.0"),
        (Procedure::DomainCreateWithFlags, "0.1.0"),
        (Procedure::DomainCreateXml, "0.1.0"),
        (Procedure::DomainDestroy, "0.1.0"),
        (Procedure::DomainDestroyFlags, "0.1.0"),
        (Procedure::DomainSuspend, "0.1.0"),
        (Procedure::DomainResume, "0.1.0"),
        (Procedure::DomainShutdown, "0.1.0"),
        (Procedure::DomainShutdownFlags, "0.1.0"),
        (Procedure::DomainReset, "0.1.0"),
        (Procedure::DomainReboot, "0.1.0"),
        (Procedure::DomainInjectNmi, "0.1.0"),
        (Procedure::DomainSendKey, "0.1.0"),
        (Procedure::DomainOpenConsole, "0.1.0"),
        (Procedure::DomainSetMemory, "0.1.0"),
        (Procedure::DomainSetMaxMemory, "0.1.0"),
        (Procedure::DomainSetMemoryFlags, "0.1.0"),
        (Procedure::DomainSetMetadata, "0.1.0"),
        (Procedure::DomainGetMetadata, "0.1.0"),
        (Procedure::DomainManagedSave, "0.1.0"),
        (Procedure::DomainManagedSaveRemove, "0.1.0"),
        (Procedure::DomainGetAutostart, "0.1.0"),
        (Procedure::DomainSetAutostart, "0.1.0"),
        (Procedure::DomainIsActive, "0.1.0"),
        (Procedure::DomainIsPersistent, "0.1.0"),
        (Procedure::DomainHasManagedSaveImage, "0.1.0"),
        (Procedure::DomainSave, "0.1.0"),
        (Procedure::DomainSaveFlags, "0.1.0"),
        (Procedure::DomainRestore, "0.1.0"),
        (Procedure::DomainRestoreFlags, "0.1.0"),
        (Procedure::DomainSaveImageGetXmlDesc, "0.1.0"),
        (Procedure::DomainSaveImageDefineXml, "0.1.0"),
        (Procedure::DomainManagedSaveGetXmlDesc, "0.1.0"),
        (Procedure::DomainManagedSaveDefineXml, "0.1.0"),
        (Procedure::DomainAttachDevice, "0.1.0"),
        (Procedure::DomainAttachDeviceFlags, "0.1.0"),
        (Procedure::DomainDetachDevice, "0.1.0"),
        (Procedure::DomainDetachDeviceFlags, "0.1.0"),
        (Procedure::DomainUpdateDeviceFlags, "0.1.0"),
        (Procedure::DomainGetControlInfo, "0.1.0"),
        (Procedure::DomainGetIothreadInfo, "0.1.0"),
        (Procedure::DomainGetHostname, "0.1.0"),
        (Procedure::DomainGetTime, "0.1.0"),
        (Procedure::DomainSetTime, "0.1.0"),
        (Procedure::DomainGetBlockIoTune, "0.1.0"),
        (Procedure::DomainSetBlockIoTune, "0.1.0"),
        (Procedure::DomainInterfaceAddresses, "0.1.0"),
        (Procedure::DomainMigrateGetCompressionCache, "0.1.0"),
        (Procedure::DomainMigrateSetCompressionCache, "0.1.0"),
        (Procedure::DomainBlockStats, "0.1.0"),
        (Procedure::DomainBlockStatsFlags, "0.1.0"),
        (Procedure::DomainGetBlockInfo, "0.1.0"),
        (Procedure::DomainInterfaceStats, "0.1.0"),
        (Procedure::DomainMigrateStartPostCopy, "0.1.0"),
        (Procedure::DomainSetVcpus, "0.1.0"),
        (Procedure::DomainSetVcpusFlags, "0.1.0"),
        (Procedure::DomainRename, "0.1.0"),
        (Procedure::DomainCoreDump, "0.1.0"),
        (Procedure::DomainCoreDumpWithFormat, "0.1.0"),
        (Procedure::DomainScreenshot, "0.1.0"),
        (Procedure::DomainSnapshotCreateXml, "0.1.0"),
        (Procedure::DomainSnapshotGetXmlDesc, "0.1.0"),
        (Procedure::DomainSnapshotNum, "0.1.0"),
        (Procedure::DomainSnapshotListNames, "0.1.0"),
        (Procedure::DomainSnapshotLookupByName, "0.1.0"),
        (Procedure::DomainHasCurrentSnapshot, "0.1.0"),
        (Procedure::DomainSnapshotCurrent, "0.1.0"),
        (Procedure::DomainRevertToSnapshot, "0.1.0"),
        (Procedure::DomainSnapshotDelete, "0.1.0"),
        (Procedure::DomainSnapshotGetParent, "0.1.0"),
        (Procedure::DomainSnapshotNumChildren, "0.1.0"),
        (Procedure::DomainSnapshotListChildrenNames, "0.1.0"),
        (Procedure::DomainSnapshotIsCurrent, "0.1.0"),
        (Procedure::DomainSnapshotHasMetadata, "0.1.0"),
        (Procedure::DomainListAllSnapshots, "0.1.0"),
        (Procedure::DomainSnapshotListAllChildren, "0.1.0"),
    ],
    migration_flags: MIGRATION_FLAGS,
    migration_params: &[
        migrate_param::URI,
        migrate_param::DEST_NAME,
        migrate_param::DEST_XML,
        migrate_param::PERSIST_XML,
        migrate_param::BANDWIDTH,
        migrate_param::BANDWIDTH_POSTCOPY,
        migrate_param::GRAPHICS_URI,
        migrate_param::LISTEN_ADDRESS,
        migrate_param::COMPRESSION,
        migrate_param::COMPRESSION_MT_LEVEL,
        migrate_param::COMPRESSION_MT_THREADS,
        migrate_param::COMPRESSION_MT_DTHREADS,
        migrate_param::COMPRESSION_XBZRLE_CACHE,
        migrate_param::AUTO_CONVERGE_INITIAL,
        migrate_param::AUTO_CONVERGE_INCREMENT,
        migrate_param::TLS_DESTINATION,
        migrate_param::PARALLEL_CONNECTIONS,
        migrate_param::MIGRATE_DISKS,
        migrate_param::DISKS_PORT,
        migrate_param::DISKS_URI,
    ],
    defaults: MigrationDefaults {
        flags: MigrateFlags::LIVE.bits(),
    },
    device_stats: true,
};
