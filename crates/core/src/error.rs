//! The error vocabulary of the calls layer, with libvirt's numbers.
//!
//! Every failure a driver, the daemon's call handlers or the migration code can
//! report is one variant of [`Error`]. Each variant maps to exactly one libvirt
//! `virErrorNumber` ([`ErrorCode`]) and `virErrorDomain` ([`ErrorDomain`]) through
//! [`Error::code`] and [`Error::domain`], which are exhaustive matches so that a new
//! variant cannot be added without choosing its wire identity. The rpc layer turns
//! an `Error` into a `remote_error` payload with those two numbers and the
//! flattened `Display` chain as the message.
//!
//! Messages are lowercase without a final period, except that a message starts
//! with libvirt's own prefix for its code where libvirt has one (`virErrorMsgStrings`
//! in src/util/virerror.c: "Domain not found: …", "Requested operation is not
//! valid: …"), so that virsh prints what it prints against libvirtd; the cause of
//! a wrapped error is exposed through `source()`, never repeated in the message.

use std::io;

use uuid::Uuid;

/// libvirt's `virErrorNumber` values that `migrated` sends (include/libvirt/virterror.h).
///
/// Only the codes worth sending are listed (libvirt-wire.md §2.2); the numbers are
/// part of the wire protocol and must never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum ErrorCode {
    /// `VIR_ERR_OK`: never sent in a reply.
    Ok = 0,
    /// `VIR_ERR_INTERNAL_ERROR`: a bug or an unexpected state.
    InternalError = 1,
    /// `VIR_ERR_NO_SUPPORT`: the driver does not implement this API; clients fall back on it.
    NoSupport = 3,
    /// `VIR_ERR_NO_CONNECT`: no driver handles the requested URI.
    NoConnect = 5,
    /// `VIR_ERR_INVALID_DOMAIN`: malformed domain object.
    InvalidDomain = 7,
    /// `VIR_ERR_INVALID_ARG`: bad argument value or unknown flag bit.
    InvalidArg = 8,
    /// `VIR_ERR_OPERATION_FAILED`: the hypervisor failed to carry out an operation.
    OperationFailed = 9,
    /// `VIR_ERR_XML_ERROR`: unparsable or invalid XML.
    XmlError = 27,
    /// `VIR_ERR_OPERATION_DENIED`: a write on a read-only connection.
    OperationDenied = 29,
    /// `VIR_ERR_SYSTEM_ERROR`: a system call failed.
    SystemError = 38,
    /// `VIR_ERR_RPC`: protocol-level failure (decode, unknown procedure, bounds).
    Rpc = 39,
    /// `VIR_ERR_NO_DOMAIN`: no such domain.
    NoDomain = 42,
    /// `VIR_ERR_NO_STORAGE_POOL`: no storage pool matches (e.g. no pool can
    /// create a missing disk image of an incoming storage migration).
    NoStoragePool = 49,
    /// `VIR_ERR_AUTH_FAILED`: authentication failed or is required.
    AuthFailed = 45,
    /// `VIR_ERR_OPERATION_INVALID`: the operation is invalid in the current state.
    OperationInvalid = 55,
    /// `VIR_ERR_CONFIG_UNSUPPORTED`: configuration construct not supported.
    ConfigUnsupported = 67,
    /// `VIR_ERR_OPERATION_TIMEOUT`: timed out (e.g. waiting for a domain's job lock).
    OperationTimeout = 68,
    /// `VIR_ERR_MIGRATE_PERSIST_FAILED`: migration worked, making the domain persistent did not.
    MigratePersistFailed = 69,
    /// `VIR_ERR_ARGUMENT_UNSUPPORTED`: a recognised argument, flag or param the driver does not support.
    ArgumentUnsupported = 74,
    /// `VIR_ERR_NO_DOMAIN_SNAPSHOT`: no such snapshot.
    NoDomainSnapshot = 72,
    /// `VIR_ERR_SNAPSHOT_REVERT_RISKY`: the revert needs `VIR_DOMAIN_SNAPSHOT_REVERT_FORCE`.
    SnapshotRevertRisky = 77,
    /// `VIR_ERR_OPERATION_ABORTED`: the job was aborted by the user.
    OperationAborted = 78,
    /// `VIR_ERR_NO_DOMAIN_METADATA`: the requested metadata is not there.
    NoDomainMetadata = 80,
    /// `VIR_ERR_MIGRATE_UNSAFE`: migration deemed unsafe.
    MigrateUnsafe = 81,
    /// `VIR_ERR_OVERFLOW`: a value exceeds what the operation can represent.
    Overflow = 82,
    /// `VIR_ERR_OPERATION_UNSUPPORTED`: not supported by the hypervisor at runtime.
    OperationUnsupported = 84,
    /// `VIR_ERR_AGENT_UNRESPONSIVE`: the guest agent does not answer.
    AgentUnresponsive = 86,
    /// `VIR_ERR_RESOURCE_BUSY`: a resource is busy.
    ResourceBusy = 87,
    /// `VIR_ERR_ACCESS_DENIED`: denied by access control.
    AccessDenied = 88,
    /// `VIR_ERR_CPU_INCOMPATIBLE`: destination CPU incompatible.
    CpuIncompatible = 91,
    /// `VIR_ERR_MIGRATE_FINISH_OK`: Finish with `cancelled=1` cleaned up successfully.
    MigrateFinishOk = 93,
    /// `VIR_ERR_DEVICE_MISSING`: the domain has no such device.
    DeviceMissing = 99,
    /// `VIR_ERR_MULTIPLE_DOMAINS`: more than one domain matched.
    MultipleDomains = 110,
}

impl ErrorCode {
    /// libvirt's message format for this code with a detail (`virErrorMsg`
    /// with info, the `msginfo` column of `virErrorMsgStrings` in
    /// src/util/virerror.c): the `str1` libvirtd sends, whose one `%s` is
    /// the detail it sends as `str2`.
    pub fn format(self) -> &'static str {
        match self {
            ErrorCode::Ok | ErrorCode::SystemError | ErrorCode::Rpc => "%s",
            ErrorCode::InternalError => "internal error: %s",
            ErrorCode::NoSupport => "this function is not supported by the connection driver: %s",
            ErrorCode::NoConnect => "no connection driver available for %s",
            ErrorCode::InvalidDomain => "invalid domain pointer in %s",
            ErrorCode::InvalidArg => "invalid argument: %s",
            ErrorCode::OperationFailed => "operation failed: %s",
            ErrorCode::XmlError => "XML error: %s",
            ErrorCode::OperationDenied => "operation forbidden: %s",
            ErrorCode::NoDomain => "Domain not found: %s",
            ErrorCode::NoStoragePool => "Storage pool not found: %s",
            ErrorCode::AuthFailed => "authentication failed: %s",
            ErrorCode::OperationInvalid => "Requested operation is not valid: %s",
            ErrorCode::ConfigUnsupported => "unsupported configuration: %s",
            ErrorCode::OperationTimeout => "Timed out during operation: %s",
            ErrorCode::MigratePersistFailed => {
                "Failed to make domain persistent after migration: %s"
            }
            ErrorCode::ArgumentUnsupported => "argument unsupported: %s",
            ErrorCode::NoDomainSnapshot => "Domain snapshot not found: %s",
            ErrorCode::SnapshotRevertRisky => "revert requires force: %s",
            ErrorCode::OperationAborted => "operation aborted: %s",
            ErrorCode::NoDomainMetadata => "metadata not found: %s",
            ErrorCode::MigrateUnsafe => "Unsafe migration: %s",
            ErrorCode::Overflow => "numerical overflow: %s",
            ErrorCode::OperationUnsupported => "Operation not supported: %s",
            ErrorCode::ResourceBusy => "resource busy: %s",
            ErrorCode::AccessDenied => "access denied: %s",
            ErrorCode::CpuIncompatible => "the CPU is incompatible with host CPU: %s",
            ErrorCode::MigrateFinishOk => "migration successfully aborted: %s",
            ErrorCode::DeviceMissing => "device not found: %s",
            ErrorCode::MultipleDomains => "multiple matching domains found: %s",
            ErrorCode::AgentUnresponsive => "Guest agent is not responding: %s",
        }
    }
}

/// The reason of libvirt's `virDomainObjCheckActive` (src/conf, so reported
/// from `VIR_FROM_DOMAIN` whichever driver asks).
pub const DOMAIN_NOT_RUNNING: &str = "domain is not running";

/// libvirt's `virErrorDomain` values ("which subsystem"), include/libvirt/virterror.h.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum ErrorDomain {
    /// `VIR_FROM_NONE`.
    None = 0,
    /// `VIR_FROM_RPC`: the RPC layer.
    Rpc = 7,
    /// `VIR_FROM_QEMU`: the QEMU driver; also what stock clients look for when they decide
    /// whether Finish's error replaces Perform's (libvirt-wire.md §8.6).
    Qemu = 10,
    /// `VIR_FROM_TEST`: the test driver.
    Test = 12,
    /// `VIR_FROM_STORAGE`: the storage driver.
    Storage = 18,
    /// `VIR_FROM_REMOTE`: the remote driver.
    Remote = 13,
    /// `VIR_FROM_DOMAIN`: domain configuration and the domain API layer.
    Domain = 20,
    /// `VIR_FROM_DOMAIN_SNAPSHOT`: snapshot configuration (src/conf/snapshot_conf.c).
    DomainSnapshot = 35,
    /// `VIR_FROM_STREAMS`: I/O streams.
    Streams = 38,
    /// `VIR_FROM_AUTH`: authentication.
    Auth = 46,
}

/// How a domain was looked up, so that "not found" errors say what was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainKey {
    /// By name.
    Name(String),
    /// By UUID.
    Uuid(Uuid),
    /// By numeric id of a running domain.
    Id(i32),
}

impl std::fmt::Display for DomainKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DomainKey::Name(name) => write!(f, "name '{name}'"),
            DomainKey::Uuid(uuid) => write!(f, "uuid '{uuid}'"),
            DomainKey::Id(id) => write!(f, "id {id}"),
        }
    }
}

/// Every failure of the calls layer; see the module doc for the wire mapping.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The driver does not implement `operation` (`VIR_ERR_NO_SUPPORT`).
    /// The message is libvirt's `virReportUnsupportedError` wording, which never
    /// names the driver.
    #[error("this function is not supported by the connection driver: {operation}")]
    NoSupport {
        /// libvirt API name of the operation, e.g. `virDomainSuspend`.
        operation: &'static str,
        /// Driver name as `CONNECT_GET_TYPE` reports it.
        driver: &'static str,
    },

    /// No domain matches (`VIR_ERR_NO_DOMAIN`).
    #[error("Domain not found: no domain with matching {key}")]
    NoDomain {
        /// What the caller looked for.
        key: DomainKey,
    },

    /// A domain with the same name or UUID already exists. libvirt reports
    /// this as `VIR_ERR_OPERATION_FAILED` (`virDomainObjListAddLocked`), not
    /// `VIR_ERR_DOM_EXIST`, and so do we.
    #[error("operation failed: domain '{name}' {reason}")]
    DomainExists {
        /// Name of the domain being defined or created.
        name: String,
        /// Why it clashes, e.g. "already exists with uuid …".
        reason: String,
    },

    /// The operation is not valid in the domain's or job's current state
    /// (`VIR_ERR_OPERATION_INVALID`).
    #[error("Requested operation is not valid: {reason}")]
    OperationInvalid {
        /// e.g. "domain is already running".
        reason: String,
    },

    /// The driver has the operation but not in this form, or the hypervisor
    /// cannot do it (`VIR_ERR_OPERATION_UNSUPPORTED`), e.g. a storage
    /// migration through a tunnel.
    #[error("Operation not supported: {reason}")]
    OperationUnsupported {
        /// e.g. "summary statistics are not supported yet".
        reason: String,
    },

    /// A write was attempted on a read-only connection (`VIR_ERR_OPERATION_DENIED`).
    #[error("operation forbidden: {operation} is not allowed on a read-only connection")]
    OperationDenied {
        /// libvirt API or procedure name.
        operation: &'static str,
    },

    /// An argument's value refused in libvirt's words, which name no
    /// function (`VIR_ERR_INVALID_ARG`, e.g. "Unsupported compression
    /// method 'foo'").
    #[error("invalid argument: {reason}")]
    InvalidValue {
        /// libvirt's message.
        reason: String,
    },
    /// A bad argument value (`VIR_ERR_INVALID_ARG`).
    #[error("invalid argument in {operation}: {reason}")]
    InvalidArg {
        /// libvirt API or procedure name.
        operation: &'static str,
        /// What is wrong with the argument.
        reason: String,
    },

    /// A value larger than the operation accepts (`VIR_ERR_OVERFLOW`).
    #[error("numerical overflow: {what} must be less than {limit}")]
    Overflow {
        /// What is too large, e.g. "bandwidth".
        what: &'static str,
        /// The first value refused.
        limit: u64,
    },

    /// Flag bits the operation does not know (`VIR_ERR_INVALID_ARG`).
    #[error("unsupported flags (0x{unknown:x}) in function {operation}")]
    UnknownFlags {
        /// libvirt API or procedure name.
        operation: &'static str,
        /// The offending bits only.
        unknown: u64,
    },

    /// A recognised argument, flag or parameter this driver cannot honour
    /// (`VIR_ERR_ARGUMENT_UNSUPPORTED`).
    #[error("argument unsupported: {what} is not supported by the {driver} driver")]
    ArgumentUnsupported {
        /// The flag or parameter, e.g. "migration flag TUNNELLED".
        what: String,
        /// Driver name.
        driver: &'static str,
    },

    /// A hypervisor driver refusing a combination of arguments in its own
    /// words (`VIR_ERR_ARGUMENT_UNSUPPORTED` from `VIR_FROM_QEMU`, e.g.
    /// "post-copy is not supported with tunnelled migration").
    #[error("argument unsupported: {reason}")]
    ArgumentRefused {
        /// libvirt's sentence.
        reason: String,
    },

    /// Contradictory or invalid combination of arguments (`VIR_ERR_ARGUMENT_UNSUPPORTED`),
    /// naming both inputs.
    #[error("argument unsupported: {first} cannot be used with {second}")]
    ArgumentConflict {
        /// One input, e.g. "migration flag TUNNELLED".
        first: String,
        /// The input it conflicts with.
        second: String,
    },

    /// The domain XML could not be parsed or is invalid (`VIR_ERR_XML_ERROR`).
    #[error("invalid domain xml")]
    Xml(#[from] crate::xml::XmlError),
    /// A disk added with a target another disk of the domain has
    /// (`VIR_ERR_XML_ERROR`, libvirt's `virDomainDiskDefCheckDuplicateInfo`).
    #[error("XML error: target '{target}' duplicated for disk sources '{existing}' and '{added}'")]
    DuplicateDiskTarget {
        /// The target both disks name (`vdb`).
        target: String,
        /// The source of the disk the domain has ("(null)" without one).
        existing: String,
        /// The source of the disk added.
        added: String,
    },
    /// A configuration construct the driver does not support (`VIR_ERR_CONFIG_UNSUPPORTED`).
    #[error("unsupported configuration: {reason}")]
    ConfigUnsupported {
        /// What is not supported.
        reason: String,
    },

    /// The hypervisor failed to carry out an operation (`VIR_ERR_OPERATION_FAILED`).
    #[error("operation failed: {operation}: {reason}")]
    OperationFailed {
        /// What was being done, e.g. "migration".
        operation: &'static str,
        /// Why it failed.
        reason: String,
    },

    /// The domain has no device matching the one named
    /// (`VIR_ERR_DEVICE_MISSING`), e.g. a detach of a disk it lacks.
    #[error("device not found: {reason}")]
    DeviceMissing {
        /// libvirt's sentence, e.g. "no target device vdb".
        reason: String,
    },

    /// A device change the domain's state forbids, in libvirt's words
    /// (`VIR_ERR_OPERATION_FAILED`), e.g. a live attach of a disk whose
    /// target the guest already has.
    #[error("operation failed: {reason}")]
    DeviceFailed {
        /// libvirt's sentence, e.g. "target vdb already exists".
        reason: String,
    },

    /// No storage pool matches (`VIR_ERR_NO_STORAGE_POOL`): an incoming
    /// storage migration lacks a disk image that libvirt would create in
    /// the pool holding its directory.
    #[error("storage pool not found: {reason}")]
    NoStoragePool {
        /// What was looked up, in libvirt's words.
        reason: String,
    },

    /// The job was aborted by the user (`VIR_ERR_OPERATION_ABORTED`).
    #[error("operation aborted: {operation} job: canceled by client")]
    OperationAborted {
        /// The job, e.g. "migration out".
        operation: &'static str,
    },

    /// Timed out (`VIR_ERR_OPERATION_TIMEOUT`).
    #[error("Timed out during operation: {operation} did not complete within {millis} ms")]
    OperationTimeout {
        /// What was waited for.
        operation: &'static str,
        /// The limit that expired.
        millis: u64,
    },

    /// A call waited in vain for a domain's job to end (`VIR_ERR_OPERATION_TIMEOUT`,
    /// from `VIR_FROM_NONE` as libvirt's `virDomainObjBeginJobInternal`).
    #[error(
        "Timed out during operation: cannot acquire state change lock (held by monitor={blocker})"
    )]
    JobLockTimeout {
        /// The libvirt API name of the call that owns the job, e.g.
        /// `remoteDispatchDomainMigratePerform3Params`.
        blocker: &'static str,
    },

    /// The migration is unsafe (`VIR_ERR_MIGRATE_UNSAFE`); `VIR_MIGRATE_UNSAFE` overrides it.
    #[error("Unsafe migration: {reason}")]
    MigrateUnsafe {
        /// Why it is unsafe.
        reason: String,
    },

    /// Migration worked but defining the domain on the destination failed
    /// (`VIR_ERR_MIGRATE_PERSIST_FAILED`).
    #[error("failed to make domain '{name}' persistent after migration")]
    MigratePersistFailed {
        /// Domain name.
        name: String,
        /// Why defining failed.
        #[source]
        source: Box<Error>,
    },

    /// A destination cleaned up after `Finish(cancelled=1)`: the answer stock libvirt
    /// expects (`VIR_ERR_MIGRATE_FINISH_OK`, libvirt-wire.md §8.6).
    #[error("migration successfully aborted")]
    MigrateFinishOk,

    /// Destination CPU cannot run the guest (`VIR_ERR_CPU_INCOMPATIBLE`).
    #[error("the CPU is incompatible with host CPU: {reason}")]
    CpuIncompatible {
        /// What is missing or different.
        reason: String,
    },

    /// More typed parameters than the protocol allows (`VIR_ERR_RPC`).
    #[error("too many typed parameters: {count} (at most {max})")]
    TooManyParams {
        /// Number received.
        count: usize,
        /// The limit.
        max: usize,
    },

    /// A typed-parameter name longer than `VIR_TYPED_PARAM_FIELD_LENGTH - 1` bytes
    /// (`VIR_ERR_INVALID_ARG`).
    #[error("typed parameter name '{key}' is too long ({len} bytes, at most {max})")]
    ParamNameTooLong {
        /// The (possibly long) name.
        key: String,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },

    /// A single-valued typed parameter given more than once (`VIR_ERR_INVALID_ARG`).
    #[error("parameter '{key}' occurs multiple times")]
    ParamDuplicate {
        /// The repeated key.
        key: String,
    },

    /// A typed parameter of the wrong type (`VIR_ERR_INVALID_ARG`).
    #[error("invalid type '{actual}' for parameter '{key}', expected '{expected}'")]
    ParamType {
        /// The key.
        key: String,
        /// Type name the key requires.
        expected: &'static str,
        /// Type name that was sent.
        actual: &'static str,
    },

    /// A typed parameter the operation or driver does not know (`VIR_ERR_ARGUMENT_UNSUPPORTED`).
    #[error("parameter '{key}' not supported")]
    ParamUnsupported {
        /// The key.
        key: String,
    },

    /// A call that needs the guest agent on a guest whose XML has no agent
    /// channel (`VIR_ERR_ARGUMENT_UNSUPPORTED`), or has one that nothing is
    /// connected to (`VIR_ERR_AGENT_UNRESPONSIVE`): the daemon never talks
    /// to a guest agent. libvirt's QEMU driver's words for both.
    #[error("{}", if *configured {
        "Guest agent is not responding: QEMU guest agent is not connected"
    } else {
        "argument unsupported: QEMU guest agent is not configured"
    })]
    GuestAgent {
        /// Whether the domain XML has the agent's channel.
        configured: bool,
    },

    /// Another client or job holds the resource (`VIR_ERR_RESOURCE_BUSY`).
    #[error("resource busy: {reason}")]
    ResourceBusy {
        /// What is busy.
        reason: String,
    },

    /// A migration cookie over the 16384-byte limit (`VIR_ERR_ARGUMENT_UNSUPPORTED`).
    #[error(
        "argument unsupported: migration cookie of {size} bytes exceeds the limit of {max} bytes"
    )]
    MigrateCookieTooLarge {
        /// Size of the cookie, NUL included.
        size: usize,
        /// The limit (`cookie::MIGRATE_COOKIE_MAX`).
        max: usize,
    },

    /// A migration cookie that cannot be used (`VIR_ERR_INTERNAL_ERROR`, as libvirt's
    /// cookie parser reports it).
    #[error("invalid migration cookie: {reason}")]
    MigrateCookie {
        /// What is wrong with it.
        reason: String,
    },

    /// `VIR_ERR_NO_DOMAIN_SNAPSHOT`: the domain has no snapshot of that name
    /// (or no current one, no parent…); `reason` is libvirt's detail.
    #[error("Domain snapshot not found: {reason}")]
    NoDomainSnapshot {
        /// libvirt's detail, e.g. "no domain snapshot with matching name 's1'".
        reason: String,
    },
    /// A snapshot of that name exists already (libvirt's
    /// `virDomainMomentAssignDef`).
    #[error("operation failed: domain moment {name} already exists")]
    SnapshotExists {
        /// The name asked for.
        name: String,
    },
    /// `VIR_ERR_SNAPSHOT_REVERT_RISKY`: the revert is refused without
    /// `VIR_DOMAIN_SNAPSHOT_REVERT_FORCE`.
    #[error("revert requires force: {reason}")]
    SnapshotRevertRisky {
        /// libvirt's detail.
        reason: String,
    },
    /// A domain definition that parses but cannot be used as it is, in
    /// libvirt's words (`VIR_ERR_XML_ERROR`), e.g. "Attempted double use of
    /// PCI Address 0000:00:03.0".
    #[error("XML error: {reason}")]
    XmlConfig {
        /// libvirt's detail.
        reason: String,
    },
    /// A `<domainsnapshot>` document that cannot be used.
    #[error("XML error: invalid domain snapshot XML")]
    SnapshotXml(#[source] crate::xml::XmlError),
    /// A `<domainsnapshot>` that parses but asks for what libvirt refuses
    /// (`VIR_ERR_XML_ERROR` from src/conf/snapshot_conf.c).
    #[error("XML error: {reason}")]
    SnapshotConfig {
        /// libvirt's detail.
        reason: String,
    },
    /// The domain has no title, description or metadata element of the kind
    /// asked (`VIR_ERR_NO_DOMAIN_METADATA`, libvirt's words).
    #[error("metadata not found: Requested metadata element is not present")]
    NoDomainMetadata,

    /// A bug or unexpected state (`VIR_ERR_INTERNAL_ERROR`).
    #[error("internal error: {reason}")]
    Internal {
        /// What went wrong.
        reason: String,
    },

    /// A system call failed, in libvirt's words (`virReportSystemError`:
    /// libvirt's sentence, then the OS's description of the errno), e.g.
    /// "cannot read domain image '/x.sav': No such file or directory"
    /// (`VIR_ERR_SYSTEM_ERROR`).
    #[error("{message}: {}", os_description(os))]
    SystemCall {
        /// libvirt's sentence, e.g. "Failed to open file '/x.sav'".
        message: String,
        /// The OS error (not a `source()`: the message carries its text).
        os: io::Error,
    },

    /// A system call failed (`VIR_ERR_SYSTEM_ERROR`).
    #[error("{op} failed")]
    System {
        /// What was being done, e.g. "write /var/lib/migrated/test/domains/….xml".
        op: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// The OS's description of `e` as C's `strerror` gives it, without Rust's
/// " (os error N)".
fn os_description(e: &io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(at) if text.ends_with(')') => text[..at].to_owned(),
        _ => text,
    }
}

/// Result alias of the calls layer.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Shorthand for [`Error::OperationInvalid`].
    pub fn invalid(reason: impl Into<String>) -> Self {
        Error::OperationInvalid {
            reason: reason.into(),
        }
    }

    /// Shorthand for [`Error::Internal`].
    pub fn internal(reason: impl Into<String>) -> Self {
        Error::Internal {
            reason: reason.into(),
        }
    }

    /// libvirt's refusal of a current memory size above the maximum
    /// (`qemuDomainSetMemoryFlags`, `testDomainSetMemoryFlags`: the
    /// message names no function).
    pub fn memory_over_maximum() -> Self {
        Error::InvalidValue {
            reason: "cannot set memory higher than max memory".into(),
        }
    }

    /// Shorthand for [`Error::System`].
    pub fn system(op: impl Into<String>, source: io::Error) -> Self {
        Error::System {
            op: op.into(),
            source,
        }
    }

    /// Shorthand for [`Error::SystemCall`].
    pub fn system_call(message: impl Into<String>, source: io::Error) -> Self {
        Error::SystemCall {
            message: message.into(),
            os: source,
        }
    }

    /// The errno of a failed system call, -1 when it has none (sent as
    /// `int1`, as libvirt's `virReportSystemError` does).
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::System { source: os, .. } | Error::SystemCall { os, .. } => {
                Some(os.raw_os_error().unwrap_or(-1))
            }
            _ => None,
        }
    }

    /// The libvirt error number this error is reported with.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::NoSupport { .. } => ErrorCode::NoSupport,
            Error::NoDomain { .. } => ErrorCode::NoDomain,
            Error::DomainExists { .. } => ErrorCode::OperationFailed,
            Error::OperationInvalid { .. } => ErrorCode::OperationInvalid,
            Error::OperationUnsupported { .. } => ErrorCode::OperationUnsupported,
            Error::OperationDenied { .. } => ErrorCode::OperationDenied,
            Error::InvalidArg { .. } | Error::InvalidValue { .. } => ErrorCode::InvalidArg,
            Error::Overflow { .. } => ErrorCode::Overflow,
            Error::UnknownFlags { .. } => ErrorCode::InvalidArg,
            Error::ArgumentUnsupported { .. } => ErrorCode::ArgumentUnsupported,
            Error::ArgumentConflict { .. } => ErrorCode::ArgumentUnsupported,
            Error::ArgumentRefused { .. } => ErrorCode::ArgumentUnsupported,
            Error::Xml(_) | Error::DuplicateDiskTarget { .. } => ErrorCode::XmlError,
            Error::ConfigUnsupported { .. } => ErrorCode::ConfigUnsupported,
            Error::OperationFailed { .. } => ErrorCode::OperationFailed,
            Error::NoStoragePool { .. } => ErrorCode::NoStoragePool,
            Error::DeviceMissing { .. } => ErrorCode::DeviceMissing,
            Error::DeviceFailed { .. } => ErrorCode::OperationFailed,
            Error::OperationAborted { .. } => ErrorCode::OperationAborted,
            Error::OperationTimeout { .. } => ErrorCode::OperationTimeout,
            Error::JobLockTimeout { .. } => ErrorCode::OperationTimeout,
            Error::MigrateUnsafe { .. } => ErrorCode::MigrateUnsafe,
            Error::MigratePersistFailed { .. } => ErrorCode::MigratePersistFailed,
            Error::MigrateFinishOk => ErrorCode::MigrateFinishOk,
            Error::CpuIncompatible { .. } => ErrorCode::CpuIncompatible,
            Error::TooManyParams { .. } => ErrorCode::Rpc,
            Error::ParamNameTooLong { .. } => ErrorCode::InvalidArg,
            Error::ParamDuplicate { .. } => ErrorCode::InvalidArg,
            Error::ParamType { .. } => ErrorCode::InvalidArg,
            Error::ParamUnsupported { .. } => ErrorCode::ArgumentUnsupported,
            Error::GuestAgent { configured: false } => ErrorCode::ArgumentUnsupported,
            Error::GuestAgent { configured: true } => ErrorCode::AgentUnresponsive,
            Error::ResourceBusy { .. } => ErrorCode::ResourceBusy,
            Error::MigrateCookieTooLarge { .. } => ErrorCode::ArgumentUnsupported,
            Error::MigrateCookie { .. } => ErrorCode::InternalError,
            Error::NoDomainMetadata => ErrorCode::NoDomainMetadata,
            Error::NoDomainSnapshot { .. } => ErrorCode::NoDomainSnapshot,
            Error::SnapshotExists { .. } => ErrorCode::OperationFailed,
            Error::SnapshotRevertRisky { .. } => ErrorCode::SnapshotRevertRisky,
            Error::SnapshotXml(_) | Error::SnapshotConfig { .. } | Error::XmlConfig { .. } => {
                ErrorCode::XmlError
            }
            Error::Internal { .. } => ErrorCode::InternalError,
            Error::System { .. } | Error::SystemCall { .. } => ErrorCode::SystemError,
        }
    }

    /// The libvirt error domain of an error raised outside any driver (a
    /// client, or a daemon connection with no driver open): [`Error::origin`],
    /// or `VIR_FROM_DOMAIN` for errors a driver would raise.
    pub fn domain(&self) -> ErrorDomain {
        self.domain_for(ErrorDomain::Domain)
    }

    /// The libvirt error domain this error is reported with on a connection
    /// served by a driver whose `VIR_FROM_THIS` is `driver` (see
    /// [`crate::support::SupportTable::error_domain`]).
    pub fn domain_for(&self, driver: ErrorDomain) -> ErrorDomain {
        self.origin().unwrap_or(driver)
    }

    /// The error domain of an error libvirt raises outside the hypervisor
    /// driver, `None` for one the driver raises itself.
    ///
    /// libvirt picks the domain from `VIR_FROM_THIS` of the file that raises
    /// the error: the driver's own (`VIR_FROM_QEMU`, `VIR_FROM_TEST`) for
    /// lookups, state checks, flag checks and most other domain-API errors;
    /// `VIR_FROM_DOMAIN` for what src/conf raises (XML parsing, name clashes,
    /// metadata, `virDomainObjCheckActive`'s "domain is not running") and for
    /// the API layer's own refusals (no driver implementation, read-only);
    /// `VIR_FROM_NONE` for src/util (typed-parameter validation, the job lock).
    ///
    /// Hypervisor-side migration failures are `VIR_FROM_QEMU` whatever the
    /// driver: stock clients only let Finish's error replace Perform's when
    /// both come from that domain (libvirt-wire.md §8.6), and we want the same
    /// reporting with the test driver (which libvirt's has no migration to
    /// compare with) that users get with QEMU.
    pub fn origin(&self) -> Option<ErrorDomain> {
        match self {
            Error::NoSupport { .. }
            | Error::DomainExists { .. }
            | Error::OperationDenied { .. }
            | Error::Xml(_)
            | Error::DuplicateDiskTarget { .. }
            | Error::XmlConfig { .. }
            | Error::CpuIncompatible { .. }
            | Error::NoDomainMetadata
            | Error::SnapshotExists { .. } => Some(ErrorDomain::Domain),
            Error::SnapshotXml(_) | Error::SnapshotConfig { .. } => {
                Some(ErrorDomain::DomainSnapshot)
            }
            Error::OperationInvalid { reason } if reason == DOMAIN_NOT_RUNNING => {
                Some(ErrorDomain::Domain)
            }
            Error::OperationFailed { .. }
            | Error::OperationAborted { .. }
            | Error::MigrateUnsafe { .. }
            | Error::MigratePersistFailed { .. }
            | Error::MigrateFinishOk => Some(ErrorDomain::Qemu),
            Error::NoStoragePool { .. } => Some(ErrorDomain::Storage),
            Error::TooManyParams { .. } => Some(ErrorDomain::Rpc),
            Error::JobLockTimeout { .. }
            | Error::ParamNameTooLong { .. }
            | Error::ParamDuplicate { .. }
            | Error::ParamType { .. }
            | Error::ParamUnsupported { .. } => Some(ErrorDomain::None),
            Error::NoDomain { .. }
            | Error::NoDomainSnapshot { .. }
            | Error::SnapshotRevertRisky { .. }
            | Error::OperationInvalid { .. }
            | Error::OperationUnsupported { .. }
            | Error::InvalidArg { .. }
            | Error::InvalidValue { .. }
            | Error::Overflow { .. }
            | Error::UnknownFlags { .. }
            | Error::ArgumentUnsupported { .. }
            | Error::ArgumentConflict { .. }
            | Error::ArgumentRefused { .. }
            | Error::GuestAgent { .. }
            | Error::ConfigUnsupported { .. }
            | Error::DeviceMissing { .. }
            | Error::DeviceFailed { .. }
            | Error::OperationTimeout { .. }
            | Error::ResourceBusy { .. }
            | Error::MigrateCookieTooLarge { .. }
            | Error::MigrateCookie { .. }
            | Error::Internal { .. }
            | Error::System { .. }
            | Error::SystemCall { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<(Error, i32, i32)> {
        let uuid = Uuid::nil();
        vec![
            (
                Error::NoSupport {
                    operation: "virDomainSuspend",
                    driver: "Test",
                },
                3,
                20,
            ),
            (Error::NoDomainMetadata, 80, 20),
            (
                Error::NoDomain {
                    key: DomainKey::Uuid(uuid),
                },
                42,
                12,
            ),
            (
                Error::DomainExists {
                    name: "a".into(),
                    reason: "already exists".into(),
                },
                9,
                20,
            ),
            (
                Error::Overflow {
                    what: "bandwidth",
                    limit: 8_796_093_022_208,
                },
                82,
                12,
            ),
            (Error::invalid("domain is not running"), 55, 20),
            (
                Error::OperationUnsupported {
                    reason: "summary statistics are not supported yet".into(),
                },
                84,
                12,
            ),
            (
                Error::OperationDenied {
                    operation: "virDomainCreate",
                },
                29,
                20,
            ),
            (
                Error::InvalidArg {
                    operation: "virDomainCreate",
                    reason: "x".into(),
                },
                8,
                12,
            ),
            (
                Error::UnknownFlags {
                    operation: "virDomainCreate",
                    unknown: 0x80,
                },
                8,
                12,
            ),
            (
                Error::ArgumentUnsupported {
                    what: "migration flag TUNNELLED".into(),
                    driver: "Test",
                },
                74,
                12,
            ),
            (
                Error::ArgumentConflict {
                    first: "a".into(),
                    second: "b".into(),
                },
                74,
                12,
            ),
            (Error::ArgumentRefused { reason: "x".into() }, 74, 12),
            (Error::ConfigUnsupported { reason: "x".into() }, 67, 12),
            (
                Error::OperationFailed {
                    operation: "migration",
                    reason: "x".into(),
                },
                9,
                10,
            ),
            (
                Error::OperationAborted {
                    operation: "migration out",
                },
                78,
                10,
            ),
            (
                Error::OperationTimeout {
                    operation: "job lock",
                    millis: 30_000,
                },
                68,
                12,
            ),
            (
                Error::JobLockTimeout {
                    blocker: "remoteDispatchDomainMigratePerform3Params",
                },
                68,
                0,
            ),
            (Error::MigrateUnsafe { reason: "x".into() }, 81, 10),
            (
                Error::MigratePersistFailed {
                    name: "a".into(),
                    source: Box::new(Error::internal("x")),
                },
                69,
                10,
            ),
            (Error::MigrateFinishOk, 93, 10),
            (Error::CpuIncompatible { reason: "x".into() }, 91, 20),
            (Error::TooManyParams { count: 65, max: 64 }, 39, 7),
            (
                Error::ParamNameTooLong {
                    key: "k".into(),
                    len: 80,
                    max: 79,
                },
                8,
                0,
            ),
            (Error::ParamDuplicate { key: "k".into() }, 8, 0),
            (
                Error::ParamType {
                    key: "k".into(),
                    expected: "ullong",
                    actual: "string",
                },
                8,
                0,
            ),
            (Error::ParamUnsupported { key: "k".into() }, 74, 0),
            (Error::ResourceBusy { reason: "x".into() }, 87, 12),
            (Error::GuestAgent { configured: false }, 74, 12),
            (Error::GuestAgent { configured: true }, 86, 12),
            (Error::NoStoragePool { reason: "x".into() }, 49, 18),
            (
                Error::MigrateCookieTooLarge {
                    size: 16385,
                    max: 16384,
                },
                74,
                12,
            ),
            (Error::MigrateCookie { reason: "x".into() }, 1, 12),
            (Error::internal("x"), 1, 12),
            (
                Error::system("write f", io::Error::other("disk full")),
                38,
                12,
            ),
        ]
    }

    #[test]
    fn every_variant_maps_to_the_pinned_libvirt_numbers() {
        // The domains are those on a test-driver connection (VIR_FROM_TEST, 12).
        for (err, code, domain) in samples() {
            assert_eq!(err.code() as i32, code, "code of {err:?}");
            assert_eq!(
                err.domain_for(ErrorDomain::Test) as i32,
                domain,
                "domain of {err:?}"
            );
            let outside = err.origin().unwrap_or(ErrorDomain::Domain);
            assert_eq!(err.domain(), outside, "domain of {err:?} outside a driver");
        }
    }

    #[test]
    fn driver_raised_errors_take_the_serving_drivers_domain() {
        let lookup = Error::NoDomain {
            key: DomainKey::Name("nosuchguest".into()),
        };
        assert_eq!(lookup.domain_for(ErrorDomain::Qemu), ErrorDomain::Qemu);
        assert_eq!(lookup.domain_for(ErrorDomain::Test), ErrorDomain::Test);
        // virDomainObjCheckActive lives in src/conf.
        let inactive = Error::invalid(DOMAIN_NOT_RUNNING);
        assert_eq!(inactive.domain_for(ErrorDomain::Qemu), ErrorDomain::Domain);
        let busy = Error::invalid("domain is already running");
        assert_eq!(busy.domain_for(ErrorDomain::Qemu), ErrorDomain::Qemu);
        // Perform's failure stays VIR_FROM_QEMU for the §8.6 rule.
        let failed = Error::OperationFailed {
            operation: "migration",
            reason: "x".into(),
        };
        assert_eq!(failed.domain_for(ErrorDomain::Test), ErrorDomain::Qemu);
    }

    #[test]
    fn formats_have_one_placeholder_after_the_libvirt_prefixes() {
        for (err, _, _) in samples() {
            let format = err.code().format();
            assert_eq!(format.matches("%s").count(), 1, "{format}");
        }
    }

    #[test]
    fn messages_are_lowercase_without_final_period() {
        // libvirt's capitalised prefixes (virErrorMsgStrings) are the exception.
        const LIBVIRT_PREFIXES: [&str; 6] = [
            "Domain not found: ",
            "Requested operation is not valid: ",
            "Operation not supported: ",
            "Timed out during operation: ",
            "Unsafe migration: ",
            "Guest agent is not responding: ",
        ];
        for (err, _, _) in samples() {
            let msg = err.to_string();
            assert!(!msg.ends_with('.'), "{msg}");
            let rest = LIBVIRT_PREFIXES
                .iter()
                .find_map(|prefix| msg.strip_prefix(prefix))
                .unwrap_or(&msg);
            let first = rest.chars().next().expect("message is not empty");
            // An acronym ("QEMU guest agent …") may open it.
            let acronym = rest
                .split_whitespace()
                .next()
                .is_some_and(|w| w.len() > 1 && !w.chars().any(char::is_lowercase));
            assert!(!first.is_uppercase() || acronym, "{msg}");
        }
    }

    #[test]
    fn system_call_reads_as_libvirts_system_errors() {
        let err = Error::system_call(
            "cannot read domain image '/x.sav'",
            io::Error::from_raw_os_error(2),
        );
        assert_eq!(
            err.to_string(),
            "cannot read domain image '/x.sav': No such file or directory"
        );
        assert!(std::error::Error::source(&err).is_none());
        assert_eq!(err.code(), ErrorCode::SystemError);
        assert_eq!(err.errno(), Some(2));
        let other = Error::system_call("x", io::Error::other("disk full"));
        assert_eq!(other.to_string(), "x: disk full");
        assert_eq!(other.errno(), Some(-1));
    }

    #[test]
    fn system_error_keeps_the_cause_out_of_the_message() {
        let err = Error::system("write /x", io::Error::other("disk full"));
        assert_eq!(err.to_string(), "write /x failed");
        let source = std::error::Error::source(&err).expect("io error is the source");
        assert_eq!(source.to_string(), "disk full");
    }

    #[test]
    fn unknown_flags_message_names_function_and_bits() {
        let err = Error::UnknownFlags {
            operation: "virDomainDestroyFlags",
            unknown: 0x100,
        };
        assert_eq!(
            err.to_string(),
            "unsupported flags (0x100) in function virDomainDestroyFlags"
        );
    }

    #[test]
    fn no_domain_message_names_the_key() {
        let err = Error::NoDomain {
            key: DomainKey::Name("web1".into()),
        };
        assert_eq!(
            err.to_string(),
            "Domain not found: no domain with matching name 'web1'"
        );
    }
}
