//! What the QEMU driver implements (see `migrated_core::support`).

use migrated_core::support::{MigrationDefaults, Procedure, SupportTable};

/// The QEMU driver's support table. Migration is not declared yet: it comes
/// with the migration engine, and until then every migration flag and
/// parameter is refused.
pub const SUPPORT: SupportTable = SupportTable {
    driver: "QEMU",
    procedures: &[
        (Procedure::ConnectGetType, "0.1.0"),
        (Procedure::ConnectGetVersion, "0.1.0"),
        (Procedure::ConnectGetUri, "0.1.0"),
        (Procedure::ConnectGetCapabilities, "0.1.0"),
        (Procedure::NodeGetInfo, "0.1.0"),
        (Procedure::NodeGetSecurityModel, "0.1.0"),
        (Procedure::ConnectListAllDomains, "0.1.0"),
        (Procedure::ConnectDomainEventCallbackRegisterAny, "0.1.0"),
        (Procedure::DomainLookupByName, "0.1.0"),
        (Procedure::DomainLookupByUuid, "0.1.0"),
        (Procedure::DomainLookupById, "0.1.0"),
        (Procedure::DomainGetInfo, "0.1.0"),
        (Procedure::DomainGetState, "0.1.0"),
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
        (Procedure::DomainGetAutostart, "0.1.0"),
        (Procedure::DomainSetAutostart, "0.1.0"),
        (Procedure::DomainIsActive, "0.1.0"),
        (Procedure::DomainIsPersistent, "0.1.0"),
        (Procedure::DomainHasManagedSaveImage, "0.1.0"),
        (Procedure::DomainSave, "0.1.0"),
        (Procedure::DomainSaveFlags, "0.1.0"),
        (Procedure::DomainRestore, "0.1.0"),
        (Procedure::DomainRestoreFlags, "0.1.0"),
    ],
    migration_flags: 0,
    migration_params: &[],
    defaults: MigrationDefaults { flags: 0 },
};
