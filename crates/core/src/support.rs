//! Support tables: what each driver implements, declared as data.
//!
//! Each driver crate declares `pub const SUPPORT: SupportTable`. The daemon uses
//! it to answer feature questions and to check migration flags and params,
//! `cargo xtask hvsupport` renders `docs/hvsupport.md` from it, and a test in
//! each driver crate calls every [`Operation`] on a fresh driver to check that a
//! declared procedure never answers `VIR_ERR_NO_SUPPORT` and an undeclared one
//! always does.

#[cfg(feature = "test-support")]
pub mod probe;

use crate::driver::Operation;
use crate::error::{Error, Result};
use crate::flags::MigrateFlags;

pub use migrated_proto::Procedure;

/// The procedures served by a [`crate::driver::Driver`] method, with the operation
/// each one becomes. Procedures answered by the daemon itself (connection,
/// authentication, events registration, hostname) and the old listing calls
/// (derived from [`Operation::ListAllDomains`]) are not here.
pub const PROCEDURE_OPERATIONS: &[(Procedure, Operation)] = &[
    (Procedure::ConnectListAllDomains, Operation::ListAllDomains),
    (Procedure::DomainLookupByName, Operation::LookupByName),
    (Procedure::DomainLookupByUuid, Operation::LookupByUuid),
    (Procedure::DomainLookupById, Operation::LookupById),
    (Procedure::DomainGetInfo, Operation::GetInfo),
    (Procedure::DomainGetState, Operation::GetState),
    (Procedure::DomainGetVcpus, Operation::GetVcpus),
    (Procedure::DomainMemoryStats, Operation::MemoryStats),
    (Procedure::DomainGetOsType, Operation::GetOsType),
    (Procedure::DomainGetXmlDesc, Operation::GetXmlDesc),
    (Procedure::DomainDefineXml, Operation::DefineXml),
    (Procedure::DomainDefineXmlFlags, Operation::DefineXml),
    (Procedure::DomainUndefine, Operation::Undefine),
    (Procedure::DomainUndefineFlags, Operation::Undefine),
    (Procedure::DomainCreate, Operation::Create),
    (Procedure::DomainCreateWithFlags, Operation::Create),
    (Procedure::DomainCreateXml, Operation::CreateXml),
    (Procedure::DomainDestroy, Operation::Destroy),
    (Procedure::DomainDestroyFlags, Operation::Destroy),
    (Procedure::DomainSuspend, Operation::Suspend),
    (Procedure::DomainResume, Operation::Resume),
    (Procedure::DomainShutdown, Operation::Shutdown),
    (Procedure::DomainShutdownFlags, Operation::Shutdown),
    (Procedure::DomainReset, Operation::Reset),
    (Procedure::DomainReboot, Operation::Reboot),
    (Procedure::DomainInjectNmi, Operation::InjectNmi),
    (Procedure::DomainSendKey, Operation::SendKey),
    (Procedure::DomainGetAutostart, Operation::GetAutostart),
    (Procedure::DomainSetAutostart, Operation::SetAutostart),
    (Procedure::DomainIsActive, Operation::IsActive),
    (Procedure::DomainIsPersistent, Operation::IsPersistent),
    (
        Procedure::DomainHasManagedSaveImage,
        Operation::HasManagedSave,
    ),
    (Procedure::ConnectGetCapabilities, Operation::Capabilities),
    (
        Procedure::ConnectGetDomainCapabilities,
        Operation::DomainCapabilities,
    ),
    (Procedure::NodeGetInfo, Operation::NodeInfo),
    (Procedure::NodeGetMemoryStats, Operation::NodeMemory),
    (Procedure::NodeGetCpuStats, Operation::NodeCpuTimes),
    (
        Procedure::NodeGetSecurityModel,
        Operation::NodeSecurityModel,
    ),
    (Procedure::ConnectGetVersion, Operation::HypervisorVersion),
    (Procedure::ConnectGetType, Operation::GetType),
    (Procedure::ConnectGetUri, Operation::Uri),
    (
        Procedure::ConnectDomainEventCallbackRegisterAny,
        Operation::SubscribeEvents,
    ),
    (Procedure::DomainSave, Operation::Save),
    (Procedure::DomainSaveFlags, Operation::Save),
    (Procedure::DomainRestore, Operation::Restore),
    (Procedure::DomainRestoreFlags, Operation::Restore),
    (
        Procedure::DomainMigrateGetCompressionCache,
        Operation::MigrateGetCompressionCache,
    ),
    (
        Procedure::DomainMigrateSetCompressionCache,
        Operation::MigrateSetCompressionCache,
    ),
    (Procedure::DomainBlockStats, Operation::BlockStats),
    (Procedure::DomainBlockStatsFlags, Operation::BlockStatsFlags),
    (Procedure::DomainGetBlockInfo, Operation::BlockInfo),
    (Procedure::DomainInterfaceStats, Operation::InterfaceStats),
    (Procedure::DomainOpenConsole, Operation::OpenConsole),
    (Procedure::DomainManagedSave, Operation::ManagedSave),
    (
        Procedure::DomainManagedSaveRemove,
        Operation::ManagedSaveRemove,
    ),
    (Procedure::DomainSetMemory, Operation::SetMemory),
    (Procedure::DomainSetMaxMemory, Operation::SetMemory),
    (Procedure::DomainSetMemoryFlags, Operation::SetMemory),
    (Procedure::DomainSetMetadata, Operation::SetMetadata),
    (Procedure::DomainGetMetadata, Operation::GetMetadata),
    (
        Procedure::DomainSaveImageGetXmlDesc,
        Operation::SaveImageGetXmlDesc,
    ),
    (
        Procedure::DomainSaveImageDefineXml,
        Operation::SaveImageDefineXml,
    ),
    (
        Procedure::DomainManagedSaveGetXmlDesc,
        Operation::ManagedSaveGetXmlDesc,
    ),
    (
        Procedure::DomainManagedSaveDefineXml,
        Operation::ManagedSaveDefineXml,
    ),
    (Procedure::DomainSetVcpus, Operation::SetVcpus),
    (Procedure::DomainSetVcpusFlags, Operation::SetVcpus),
    (Procedure::DomainRename, Operation::Rename),
    (Procedure::DomainCoreDump, Operation::CoreDump),
    (Procedure::DomainCoreDumpWithFormat, Operation::CoreDump),
    (Procedure::DomainScreenshot, Operation::Screenshot),
    (Procedure::DomainAttachDevice, Operation::AttachDevice),
    (Procedure::DomainAttachDeviceFlags, Operation::AttachDevice),
    (Procedure::DomainDetachDevice, Operation::DetachDevice),
    (Procedure::DomainDetachDeviceFlags, Operation::DetachDevice),
    (Procedure::DomainUpdateDeviceFlags, Operation::UpdateDevice),
    (Procedure::DomainGetControlInfo, Operation::GetControlInfo),
    (Procedure::DomainGetIothreadInfo, Operation::GetIoThreadInfo),
    (Procedure::ConnectGetSysinfo, Operation::GetSysinfo),
    (
        Procedure::DomainGetSchedulerType,
        Operation::GetSchedulerType,
    ),
    (
        Procedure::DomainGetSchedulerParameters,
        Operation::GetSchedulerParameters,
    ),
    (
        Procedure::DomainGetSchedulerParametersFlags,
        Operation::GetSchedulerParameters,
    ),
    (
        Procedure::DomainSetSchedulerParameters,
        Operation::SetSchedulerParameters,
    ),
    (
        Procedure::DomainSetSchedulerParametersFlags,
        Operation::SetSchedulerParameters,
    ),
    (
        Procedure::DomainGetMemoryParameters,
        Operation::GetMemoryParameters,
    ),
    (
        Procedure::DomainSetMemoryParameters,
        Operation::SetMemoryParameters,
    ),
    (Procedure::DomainGetCpuStats, Operation::GetCpuStats),
    (Procedure::DomainGetHostname, Operation::GetHostname),
    (Procedure::DomainGetTime, Operation::GetTime),
    (Procedure::DomainSetTime, Operation::SetTime),
    (
        Procedure::DomainGetBlkioParameters,
        Operation::GetBlkioParameters,
    ),
    (
        Procedure::DomainSetBlkioParameters,
        Operation::SetBlkioParameters,
    ),
    (Procedure::DomainGetBlockIoTune, Operation::GetBlockIoTune),
    (Procedure::DomainSetBlockIoTune, Operation::SetBlockIoTune),
    (
        Procedure::DomainGetNumaParameters,
        Operation::GetNumaParameters,
    ),
    (
        Procedure::DomainSetNumaParameters,
        Operation::SetNumaParameters,
    ),
    (
        Procedure::DomainGetInterfaceParameters,
        Operation::GetInterfaceParameters,
    ),
    (
        Procedure::DomainSetInterfaceParameters,
        Operation::SetInterfaceParameters,
    ),
    (
        Procedure::DomainInterfaceAddresses,
        Operation::InterfaceAddresses,
    ),
    (Procedure::DomainGetPerfEvents, Operation::GetPerfEvents),
    (Procedure::DomainSetPerfEvents, Operation::SetPerfEvents),
    (
        Procedure::DomainSnapshotCreateXml,
        Operation::SnapshotCreate,
    ),
    (Procedure::DomainSnapshotGetXmlDesc, Operation::SnapshotXml),
    (Procedure::DomainSnapshotNum, Operation::SnapshotList),
    (Procedure::DomainSnapshotListNames, Operation::SnapshotList),
    (Procedure::DomainListAllSnapshots, Operation::SnapshotList),
    (
        Procedure::DomainSnapshotNumChildren,
        Operation::SnapshotList,
    ),
    (
        Procedure::DomainSnapshotListChildrenNames,
        Operation::SnapshotList,
    ),
    (
        Procedure::DomainSnapshotListAllChildren,
        Operation::SnapshotList,
    ),
    (
        Procedure::DomainSnapshotLookupByName,
        Operation::SnapshotLookup,
    ),
    (
        Procedure::DomainSnapshotHasMetadata,
        Operation::SnapshotLookup,
    ),
    (
        Procedure::DomainHasCurrentSnapshot,
        Operation::SnapshotCurrent,
    ),
    (Procedure::DomainSnapshotCurrent, Operation::SnapshotCurrent),
    (
        Procedure::DomainSnapshotIsCurrent,
        Operation::SnapshotCurrent,
    ),
    (
        Procedure::DomainSnapshotGetParent,
        Operation::SnapshotParent,
    ),
    (Procedure::DomainRevertToSnapshot, Operation::SnapshotRevert),
    (Procedure::DomainSnapshotDelete, Operation::SnapshotDelete),
];

/// The driver operation a procedure becomes, if it is served by a driver method.
pub fn operation_for(procedure: Procedure) -> Option<Operation> {
    PROCEDURE_OPERATIONS
        .iter()
        .find(|(p, _)| *p == procedure)
        .map(|(_, op)| *op)
}

/// What a driver does when the caller leaves choices open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MigrationDefaults {
    /// Flags added to a migration of a running guest that asks for none
    /// (e.g. `LIVE`), so a plain `migrate GUEST DEST` behaves sensibly.
    pub flags: u64,
}

/// The declaration of what a driver implements.
#[derive(Debug, Clone, Copy)]
pub struct SupportTable {
    /// Driver name as `CONNECT_GET_TYPE` reports it ("Test", "QEMU").
    pub driver: &'static str,
    /// The `virErrorDomain` of the errors the driver raises itself (its
    /// `VIR_FROM_THIS`: `VIR_FROM_QEMU`, `VIR_FROM_TEST`); see
    /// [`crate::Error::origin`].
    pub error_domain: crate::error::ErrorDomain,
    /// Implemented procedures with the `migrated` version they appeared in.
    pub procedures: &'static [(Procedure, &'static str)],
    /// Supported `VIR_MIGRATE_*` bits.
    pub migration_flags: u64,
    /// Supported `VIR_MIGRATE_PARAM_*` keys.
    pub migration_params: &'static [&'static str],
    /// Defaults applied when the caller leaves choices open.
    pub defaults: MigrationDefaults,
    /// Whether `virsh domstats` serves the `block` and `interface` groups
    /// (from [`crate::driver::Driver::block_stats`], `block_info` and
    /// `interface_stats`) and `cpu.user` / `cpu.system` (from `cpu_stats`),
    /// as libvirt's QEMU driver does and its test driver does not.
    pub device_stats: bool,
}

impl SupportTable {
    /// The version `procedure` appeared in, if this driver implements it.
    pub fn since(&self, procedure: Procedure) -> Option<&'static str> {
        self.procedures
            .iter()
            .find(|(p, _)| *p == procedure)
            .map(|(_, since)| *since)
    }

    /// Whether this driver implements `procedure`.
    pub fn implements(&self, procedure: Procedure) -> bool {
        self.since(procedure).is_some()
    }

    /// Whether any declared procedure maps to `op`.
    pub fn implements_operation(&self, op: Operation) -> bool {
        self.procedures
            .iter()
            .any(|(p, _)| operation_for(*p) == Some(op))
    }

    /// The supported migration flags.
    pub fn migration_flags(&self) -> MigrateFlags {
        MigrateFlags(self.migration_flags)
    }

    /// Checks a migration flag word against libvirt's flags and this driver's.
    ///
    /// # Errors
    /// - [`Error::UnknownFlags`] (`VIR_ERR_INVALID_ARG`) for bits libvirt does not define;
    /// - [`Error::ArgumentUnsupported`] (`VIR_ERR_ARGUMENT_UNSUPPORTED`) naming the first
    ///   flag this driver does not support.
    pub fn check_migration_flags(
        &self,
        operation: &'static str,
        flags: MigrateFlags,
    ) -> Result<()> {
        flags.check_known(operation)?;
        let unsupported = flags.difference(self.migration_flags());
        match unsupported.names().first() {
            None => Ok(()),
            Some(name) => Err(Error::ArgumentUnsupported {
                what: format!("migration flag {name}"),
                driver: self.driver,
            }),
        }
    }

    /// Checks a migration parameter key against this driver's list.
    ///
    /// # Errors
    /// [`Error::ArgumentUnsupported`] (`VIR_ERR_ARGUMENT_UNSUPPORTED`) naming the key.
    pub fn check_migration_param(&self, key: &str) -> Result<()> {
        if self.migration_params.contains(&key) {
            Ok(())
        } else {
            Err(Error::ArgumentUnsupported {
                what: format!("migration parameter '{key}'"),
                driver: self.driver,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    const TABLE: SupportTable = SupportTable {
        driver: "Sample",
        error_domain: crate::error::ErrorDomain::Domain,
        procedures: &[
            (Procedure::DomainSuspend, "0.1.0"),
            (Procedure::DomainResume, "0.2.0"),
        ],
        migration_flags: MigrateFlags::LIVE.bits() | MigrateFlags::PEER2PEER.bits(),
        migration_params: &["bandwidth"],
        defaults: MigrationDefaults {
            flags: MigrateFlags::LIVE.bits(),
        },
        device_stats: false,
    };

    #[test]
    fn since_and_implements_follow_the_table() {
        assert_eq!(TABLE.since(Procedure::DomainResume), Some("0.2.0"));
        assert!(TABLE.implements(Procedure::DomainSuspend));
        assert!(!TABLE.implements(Procedure::DomainDestroy));
        assert!(TABLE.implements_operation(Operation::Suspend));
        assert!(!TABLE.implements_operation(Operation::Destroy));
    }

    #[test]
    fn unsupported_migration_flag_is_named_with_driver() {
        let err = TABLE
            .check_migration_flags(
                "virDomainMigrateBegin3Params",
                MigrateFlags::LIVE | MigrateFlags::TUNNELLED,
            )
            .expect_err("tunnelled is not in the table");
        assert_eq!(err.code(), ErrorCode::ArgumentUnsupported);
        let msg = err.to_string();
        assert!(msg.contains("TUNNELLED") && msg.contains("Sample"), "{msg}");
        TABLE
            .check_migration_flags("virDomainMigrateBegin3Params", MigrateFlags::LIVE)
            .expect("live is supported");
    }

    #[test]
    fn unknown_migration_bit_is_invalid_arg_not_unsupported() {
        let err = TABLE
            .check_migration_flags("virDomainMigrateBegin3Params", MigrateFlags(1 << 30))
            .expect_err("bit 30 is unknown");
        assert_eq!(err.code(), ErrorCode::InvalidArg);
    }

    #[test]
    fn migration_params_are_checked_by_key() {
        TABLE.check_migration_param("bandwidth").expect("declared");
        let err = TABLE
            .check_migration_param("compression")
            .expect_err("not declared");
        assert_eq!(err.code(), ErrorCode::ArgumentUnsupported);
    }

    #[test]
    fn procedure_operation_map_has_unique_procedures_and_covers_every_operation() {
        let mut procs: Vec<_> = PROCEDURE_OPERATIONS
            .iter()
            .map(|(p, _)| *p as i32)
            .collect();
        procs.sort_unstable();
        procs.dedup();
        assert_eq!(procs.len(), PROCEDURE_OPERATIONS.len());
        for op in Operation::ALL {
            assert!(
                PROCEDURE_OPERATIONS.iter().any(|(_, o)| o == op),
                "{op} has no procedure"
            );
        }
    }
}
