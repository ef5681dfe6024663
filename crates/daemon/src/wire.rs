//! Errors as clients see them: every `remote_error` the daemon sends is
//! built here.
//!
//! [`to_wire_error`] is the one conversion from a call's
//! [`migrated_core::Error`]; the other constructors cover the failures that
//! happen before a driver is involved (unknown procedure, connection not
//! open, read-only refusal, undecodable arguments), with libvirtd's codes
//! and wording so stock clients print what users know.
//!
//! Every error is filled as libvirt's `virReportErrorHelper` fills it:
//! `str1` is the code's message format ("Domain not found: %s"), `str2` the
//! detail, `int1` = `int2` = -1; flag errors are `virCheckFlags`'s (`str1` =
//! function, `str2` = "flags", `int1` = `int2` = 0) and system errors carry
//! the errno in `int1`. The domain of an error the driver raises is the
//! driver's (`VIR_FROM_QEMU`, `VIR_FROM_TEST`): the call being dispatched
//! runs inside [`with_driver_domain`], which [`to_wire_error`] reads.

use std::error::Error as StdError;
use std::future::Future;

use migrated_core::error::{ErrorCode, ErrorDomain};
use migrated_rpc::WireError;

/// `VIR_ERR_ERROR`: the level of every error we send.
const LEVEL_ERROR: i32 = 2;

tokio::task_local! {
    /// `VIR_FROM_THIS` of the driver serving the call being dispatched.
    static DRIVER_DOMAIN: ErrorDomain;
}

/// Runs `call` with `domain` as the domain of the errors its driver raises
/// ([`migrated_core::Error::origin`] `None`). Without it, or with `None`
/// (no driver open yet), those errors are reported from `VIR_FROM_DOMAIN`.
pub async fn with_driver_domain<F: Future>(domain: Option<ErrorDomain>, call: F) -> F::Output {
    match domain {
        Some(domain) => DRIVER_DOMAIN.scope(domain, call).await,
        None => call.await,
    }
}

/// Builds the `remote_error` for a failed call: code from the error's
/// exhaustive mapping, domain from its origin or else the serving driver's
/// ([`with_driver_domain`]), message = the error and its causes joined
/// with ": ", and the extras as libvirtd fills them (module doc).
pub fn to_wire_error(err: &migrated_core::Error) -> WireError {
    let driver = DRIVER_DOMAIN
        .try_with(|domain| *domain)
        .unwrap_or(ErrorDomain::Domain);
    to_wire_error_for(err, driver)
}

/// [`to_wire_error`] on a connection served by a driver whose
/// `VIR_FROM_THIS` is `driver`.
pub fn to_wire_error_for(err: &migrated_core::Error, driver: ErrorDomain) -> WireError {
    let mut wire = libvirt_error(err.code(), err.domain_for(driver), flatten(err));
    match err {
        // virCheckFlags → virReportInvalidArg(flags, …), naming the driver's
        // function (qemuDomainGetXMLDesc, testDomainGetXMLDesc) as libvirt's
        // __FUNCTION__ does.
        migrated_core::Error::UnknownFlags { operation, .. } => {
            let function = driver_function(operation, wire.domain);
            if function != *operation {
                wire.message = wire.message.map(|text| {
                    text.replace(
                        &format!("function {operation}"),
                        &format!("function {function}"),
                    )
                });
            }
            wire.str1 = Some(function);
            wire.str2 = Some("flags".to_owned());
            wire.int1 = 0;
            wire.int2 = 0;
        }
        // virReportSystemError keeps the errno.
        migrated_core::Error::System { .. } | migrated_core::Error::SystemCall { .. } => {
            wire.int1 = err.errno().unwrap_or(-1);
        }
        _ => {}
    }
    wire
}

/// The driver function libvirt names for the public API `operation`
/// (`virDomainGetXMLDesc` → `qemuDomainGetXMLDesc` on the QEMU driver,
/// `testDomainGetXMLDesc` on the test driver): its drivers implement each
/// API in a function of the same name with their own prefix.
fn driver_function(operation: &str, domain: i32) -> String {
    let prefix = match domain {
        d if d == ErrorDomain::Qemu as i32 => "qemu",
        d if d == ErrorDomain::Test as i32 => "test",
        _ => return operation.to_owned(),
    };
    match operation.strip_prefix("vir") {
        Some(rest) => format!("{prefix}{rest}"),
        None => operation.to_owned(),
    }
}

/// "unknown procedure: N" (`VIR_ERR_RPC` / `VIR_FROM_RPC`), also the answer
/// to an event procedure sent as a CALL.
pub fn unknown_procedure(number: i32) -> WireError {
    libvirt_error(
        ErrorCode::Rpc,
        ErrorDomain::Rpc,
        format!("unknown procedure: {number}"),
    )
}

/// Arguments over a limit of the protocol (`VIR_ERR_RPC` / `VIR_FROM_RPC`),
/// e.g. "maxinfo > REMOTE_VCPUINFO_MAX", as libvirtd's dispatcher says it.
pub fn rpc_error(text: &str) -> WireError {
    libvirt_error(ErrorCode::Rpc, ErrorDomain::Rpc, text.to_owned())
}

/// A call that needs CONNECT_OPEN first (`VIR_ERR_INTERNAL_ERROR`).
pub fn not_open() -> WireError {
    rpc_internal("hypervisor connection not open".to_owned())
}

/// A write procedure on a read-only connection (`VIR_ERR_OPERATION_DENIED`).
pub fn read_only(procedure: &str) -> WireError {
    libvirt_error(
        ErrorCode::OperationDenied,
        ErrorDomain::Domain,
        format!("operation forbidden: read only access prevents {procedure}"),
    )
}

/// A procedure this daemon does not serve (`VIR_ERR_NO_SUPPORT`, libvirtd's
/// wording); stock clients fall back to older calls on this code.
pub fn not_supported(api: &str) -> WireError {
    libvirt_error(
        ErrorCode::NoSupport,
        ErrorDomain::Domain,
        format!("this function is not supported by the connection driver: {api}"),
    )
}

/// CONNECT_OPEN for a URI no enabled driver serves (`VIR_ERR_NO_CONNECT`).
pub fn no_connect(uri: &str) -> WireError {
    libvirt_error(
        ErrorCode::NoConnect,
        ErrorDomain::None,
        format!("no connection driver available for {uri}"),
    )
}

/// An internal error the RPC layer reports (`VIR_ERR_INTERNAL_ERROR` /
/// `VIR_FROM_RPC`), e.g. libvirtd's "unsupported event ID 27".
pub fn rpc_internal(reason: String) -> WireError {
    libvirt_error(
        ErrorCode::InternalError,
        ErrorDomain::Rpc,
        format!("internal error: {reason}"),
    )
}

/// A second CONNECT_OPEN on one connection (`VIR_ERR_INTERNAL_ERROR`).
pub fn already_open() -> WireError {
    rpc_internal("connection already open".to_owned())
}

/// Arguments that do not decode (`VIR_ERR_RPC`): bad length, bound
/// exceeded, invalid UTF-8, non-zero padding, trailing bytes.
pub fn bad_arguments(procedure: &str, err: &migrated_xdr::Error) -> WireError {
    libvirt_error(
        ErrorCode::Rpc,
        ErrorDomain::Rpc,
        format!("cannot decode the arguments of {procedure}: {err}"),
    )
}

/// A reply that could not be encoded: a bug or a value over a wire bound.
pub fn cannot_encode(procedure: &str, err: &migrated_xdr::Error) -> WireError {
    libvirt_error(
        ErrorCode::InternalError,
        ErrorDomain::Rpc,
        format!("internal error: cannot encode the reply of {procedure}: {err}"),
    )
}

/// A `remote_error` with libvirt's extras for `code` and `message` (module
/// doc), for errors raised outside [`migrated_core::Error`].
pub fn libvirt_error(code: ErrorCode, domain: ErrorDomain, message: String) -> WireError {
    let (str1, str2) = format_and_detail(code, &message);
    WireError {
        code: code as i32,
        domain: domain as i32,
        message: Some(message),
        level: LEVEL_ERROR,
        str1: Some(str1),
        str2: Some(str2),
        str3: None,
        int1: -1,
        int2: -1,
    }
}

/// `str1` and `str2` of an error with this code and message, as
/// `virReportErrorHelper` fills them: the code's format and the text its
/// `%s` stands for. A message without the code's words (our own wording,
/// libvirt has no such error) is sent with the format "%s", so that `str1`
/// with `str2` put in is always the message; a message that is the code's
/// words alone (no detail, e.g. "migration successfully aborted") is sent
/// as libvirt sends it, with an empty detail.
fn format_and_detail(code: ErrorCode, message: &str) -> (String, String) {
    let format = code.format();
    let (prefix, suffix) = format.split_once("%s").unwrap_or((format, ""));
    match message
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_suffix(suffix))
    {
        Some(detail) if !detail.is_empty() => (format.to_owned(), detail.to_owned()),
        _ if message == prefix.trim_end_matches([':', ' ']) => (message.to_owned(), String::new()),
        _ => ("%s".to_owned(), message.to_owned()),
    }
}

/// The error's message followed by each cause's, separated by ": ".
pub(crate) fn flatten(err: &dyn StdError) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        // Some wrappers already print their cause; do not say it twice.
        if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use migrated_core::error::DomainKey;
    use migrated_core::Error;
    use uuid::Uuid;

    use super::*;

    /// (error, code, domain on a QEMU connection, message, str1, str2) as a
    /// stock client will see them.
    type Row = (Error, i32, i32, &'static str, &'static str, &'static str);

    fn table() -> Vec<Row> {
        vec![
            (
                Error::NoSupport {
                    operation: "virDomainSuspend",
                    driver: "Test",
                },
                3,
                20,
                "this function is not supported by the connection driver: virDomainSuspend",
                "this function is not supported by the connection driver: %s",
                "virDomainSuspend",
            ),
            // captures/errors 014: lookup of 'nosuchguest'.
            (
                Error::NoDomain {
                    key: DomainKey::Name("nosuchguest".into()),
                },
                42,
                10,
                "Domain not found: no domain with matching name 'nosuchguest'",
                "Domain not found: %s",
                "no domain with matching name 'nosuchguest'",
            ),
            // captures/migrate-p2p: virDomainObjCheckActive is src/conf's.
            (
                Error::invalid("domain is not running"),
                55,
                20,
                "Requested operation is not valid: domain is not running",
                "Requested operation is not valid: %s",
                "domain is not running",
            ),
            // captures/errors 060: --offline without --persistent.
            (
                Error::invalid("offline migration must be specified with the persistent flag set"),
                55,
                10,
                "Requested operation is not valid: offline migration must be specified with the \
                 persistent flag set",
                "Requested operation is not valid: %s",
                "offline migration must be specified with the persistent flag set",
            ),
            (
                Error::OperationDenied {
                    operation: "virDomainDestroy",
                },
                29,
                20,
                "operation forbidden: virDomainDestroy is not allowed on a read-only connection",
                "operation forbidden: %s",
                "virDomainDestroy is not allowed on a read-only connection",
            ),
            (
                Error::MigratePersistFailed {
                    name: "g".into(),
                    source: Box::new(Error::NoDomain {
                        key: DomainKey::Uuid(Uuid::nil()),
                    }),
                },
                69,
                10,
                "failed to make domain 'g' persistent after migration: Domain not found: \
                 no domain with matching uuid '00000000-0000-0000-0000-000000000000'",
                "%s",
                "failed to make domain 'g' persistent after migration: Domain not found: \
                 no domain with matching uuid '00000000-0000-0000-0000-000000000000'",
            ),
            (
                Error::TooManyParams { count: 65, max: 64 },
                39,
                7,
                "too many typed parameters: 65 (at most 64)",
                "%s",
                "too many typed parameters: 65 (at most 64)",
            ),
            (
                Error::ArgumentUnsupported {
                    what: "migration flag TUNNELLED".into(),
                    driver: "QEMU",
                },
                74,
                10,
                "argument unsupported: migration flag TUNNELLED is not supported by the QEMU driver",
                "argument unsupported: %s",
                "migration flag TUNNELLED is not supported by the QEMU driver",
            ),
            (
                Error::OperationFailed {
                    operation: "migration",
                    reason: "job failed".into(),
                },
                9,
                10,
                "operation failed: migration: job failed",
                "operation failed: %s",
                "migration: job failed",
            ),
            (
                Error::JobLockTimeout {
                    blocker: "remoteDispatchDomainMigratePerform3Params",
                },
                68,
                0,
                "Timed out during operation: cannot acquire state change lock (held by \
                 monitor=remoteDispatchDomainMigratePerform3Params)",
                "Timed out during operation: %s",
                "cannot acquire state change lock (held by \
                 monitor=remoteDispatchDomainMigratePerform3Params)",
            ),
            (
                Error::MigrateUnsafe {
                    reason: "disk vda has a cache mode".into(),
                },
                81,
                10,
                "Unsafe migration: disk vda has a cache mode",
                "Unsafe migration: %s",
                "disk vda has a cache mode",
            ),
            (
                Error::MigrateFinishOk,
                93,
                10,
                "migration successfully aborted",
                "migration successfully aborted",
                "",
            ),
        ]
    }

    #[test]
    fn core_errors_map_to_code_domain_message_and_extras() {
        for (err, code, domain, message, str1, str2) in table() {
            let wire = to_wire_error_for(&err, ErrorDomain::Qemu);
            assert_eq!((wire.code, wire.domain), (code, domain), "{err:?}");
            assert_eq!(wire.message.as_deref(), Some(message));
            assert_eq!(wire.str1.as_deref(), Some(str1), "{err:?}");
            assert_eq!(wire.str2.as_deref(), Some(str2), "{err:?}");
            assert_eq!((wire.str3, wire.int1, wire.int2), (None, -1, -1));
            assert_eq!(wire.level, 2);
        }
    }

    /// captures/errors 076: virCheckFlags in qemuDomainGetXMLDesc.
    #[test]
    fn unknown_flags_are_filled_as_vir_check_flags_does() {
        let err = Error::UnknownFlags {
            operation: "qemuDomainGetXMLDesc",
            unknown: 0x4000_0000,
        };
        let wire = to_wire_error_for(&err, ErrorDomain::Qemu);
        assert_eq!((wire.code, wire.domain), (8, 10));
        assert_eq!(
            wire.message.as_deref(),
            Some("unsupported flags (0x40000000) in function qemuDomainGetXMLDesc")
        );
        assert_eq!(wire.str1.as_deref(), Some("qemuDomainGetXMLDesc"));
        assert_eq!(wire.str2.as_deref(), Some("flags"));
        assert_eq!((wire.str3, wire.int1, wire.int2), (None, 0, 0));
    }

    /// libvirt names the driver function the flags were checked in.
    #[test]
    fn unknown_flags_name_the_serving_drivers_function() {
        let err = Error::UnknownFlags {
            operation: "virDomainDestroyFlags",
            unknown: 0x100,
        };
        for (driver, function) in [
            (ErrorDomain::Qemu, "qemuDomainDestroyFlags"),
            (ErrorDomain::Test, "testDomainDestroyFlags"),
            (ErrorDomain::Domain, "virDomainDestroyFlags"),
        ] {
            let wire = to_wire_error_for(&err, driver);
            assert_eq!(wire.str1.as_deref(), Some(function));
            assert_eq!(
                wire.message,
                Some(format!("unsupported flags (0x100) in function {function}"))
            );
        }
    }

    #[test]
    fn system_errors_carry_the_errno() {
        let err = Error::system(
            "write /var/lib/migrated/x.xml",
            std::io::Error::from_raw_os_error(28),
        );
        let wire = to_wire_error_for(&err, ErrorDomain::Test);
        assert_eq!((wire.code, wire.domain, wire.int1), (38, 12, 28));
        let message = "write /var/lib/migrated/x.xml failed: No space left on device (os error 28)";
        assert_eq!(wire.message.as_deref(), Some(message));
        assert_eq!(wire.str1.as_deref(), Some("%s"));
        assert_eq!(wire.str2.as_deref(), Some(message));
    }

    #[tokio::test]
    async fn the_dispatched_calls_driver_domain_is_the_default() {
        let lookup = Error::NoDomain {
            key: DomainKey::Name("g".into()),
        };
        let on_test = with_driver_domain(Some(ErrorDomain::Test), async {
            to_wire_error(&lookup).domain
        });
        assert_eq!(on_test.await, 12);
        let unopened = with_driver_domain(None, async { to_wire_error(&lookup).domain });
        assert_eq!(unopened.await, 20);
        assert_eq!(to_wire_error(&lookup).domain, 20);
    }

    #[test]
    fn protocol_refusals_use_libvirt_codes_and_words() {
        let e = unknown_procedure(9999);
        assert_eq!((e.code, e.domain), (39, 7));
        assert_eq!(e.message.as_deref(), Some("unknown procedure: 9999"));
        assert_eq!((e.str1.as_deref(), e.str2), (Some("%s"), e.message.clone()));
        let e = not_open();
        assert_eq!(e.code, 1);
        assert!(e
            .message
            .as_deref()
            .is_some_and(|m| m.contains("connection not open")));
        let e = read_only("virDomainDefineXML");
        assert_eq!(e.code, 29);
        assert_eq!(
            e.message.as_deref(),
            Some("operation forbidden: read only access prevents virDomainDefineXML")
        );
        let e = not_supported("virConnectGetSysinfo");
        assert_eq!((e.code, e.domain), (3, 20));
        assert_eq!(
            e.message.as_deref(),
            Some("this function is not supported by the connection driver: virConnectGetSysinfo")
        );
        let e = no_connect("xen:///");
        assert_eq!(e.code, 5);
        assert_eq!(
            e.message.as_deref(),
            Some("no connection driver available for xen:///")
        );
        assert_eq!(
            (e.str1.as_deref(), e.str2.as_deref()),
            (
                Some("no connection driver available for %s"),
                Some("xen:///")
            )
        );
    }
}
