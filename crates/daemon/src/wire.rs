//! Errors as clients see them: every `remote_error` the daemon sends is
//! built here.
//!
//! [`to_wire_error`] is the one conversion from a call's
//! [`migrated_core::Error`]; the other constructors cover the failures that
//! happen before a driver is involved (unknown procedure, connection not
//! open, read-only refusal, undecodable arguments), with libvirtd's codes
//! and wording so stock clients print what users know.

use std::error::Error as StdError;

use migrated_core::error::{ErrorCode, ErrorDomain};
use migrated_rpc::WireError;

/// `VIR_ERR_ERROR`: the level of every error we send.
const LEVEL_ERROR: i32 = 2;

/// Builds the `remote_error` for a failed call: code and domain from the
/// error's exhaustive mapping, message = the error and its causes joined
/// with ": ", `str1` = the message (clients show `message`; `str1` mirrors it
/// as libvirtd fills it with the text too).
pub fn to_wire_error(err: &migrated_core::Error) -> WireError {
    wire(err.code(), err.domain(), flatten(err))
}

/// "unknown procedure: N" (`VIR_ERR_RPC` / `VIR_FROM_RPC`), also the answer
/// to an event procedure sent as a CALL.
pub fn unknown_procedure(number: i32) -> WireError {
    wire(
        ErrorCode::Rpc,
        ErrorDomain::Rpc,
        format!("unknown procedure: {number}"),
    )
}

/// Arguments over a limit of the protocol (`VIR_ERR_RPC` / `VIR_FROM_RPC`),
/// e.g. "maxinfo > REMOTE_VCPUINFO_MAX", as libvirtd's dispatcher says it.
pub fn rpc_error(text: &str) -> WireError {
    wire(ErrorCode::Rpc, ErrorDomain::Rpc, text.to_owned())
}

/// A call that needs CONNECT_OPEN first (`VIR_ERR_INTERNAL_ERROR`).
pub fn not_open() -> WireError {
    rpc_internal("hypervisor connection not open".to_owned())
}

/// A write procedure on a read-only connection (`VIR_ERR_OPERATION_DENIED`).
pub fn read_only(procedure: &str) -> WireError {
    wire(
        ErrorCode::OperationDenied,
        ErrorDomain::Domain,
        format!("operation forbidden: read only access prevents {procedure}"),
    )
}

/// A procedure this daemon does not serve (`VIR_ERR_NO_SUPPORT`, libvirtd's
/// wording); stock clients fall back to older calls on this code.
pub fn not_supported(api: &str) -> WireError {
    wire(
        ErrorCode::NoSupport,
        ErrorDomain::Domain,
        format!("this function is not supported by the connection driver: {api}"),
    )
}

/// CONNECT_OPEN for a URI no enabled driver serves (`VIR_ERR_NO_CONNECT`).
pub fn no_connect(uri: &str) -> WireError {
    wire(
        ErrorCode::NoConnect,
        ErrorDomain::None,
        format!("no connection driver available for {uri}"),
    )
}

/// An internal error the RPC layer reports (`VIR_ERR_INTERNAL_ERROR` /
/// `VIR_FROM_RPC`), e.g. libvirtd's "unsupported event ID 27".
pub fn rpc_internal(reason: String) -> WireError {
    wire(
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
    wire(
        ErrorCode::Rpc,
        ErrorDomain::Rpc,
        format!("cannot decode the arguments of {procedure}: {err}"),
    )
}

/// A reply that could not be encoded: a bug or a value over a wire bound.
pub fn cannot_encode(procedure: &str, err: &migrated_xdr::Error) -> WireError {
    wire(
        ErrorCode::InternalError,
        ErrorDomain::Rpc,
        format!("internal error: cannot encode the reply of {procedure}: {err}"),
    )
}

fn wire(code: ErrorCode, domain: ErrorDomain, message: String) -> WireError {
    WireError {
        code: code as i32,
        domain: domain as i32,
        str1: Some(message.clone()),
        message: Some(message),
        level: LEVEL_ERROR,
        str2: None,
        str3: None,
        int1: -1,
        int2: -1,
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

    /// (error, code, domain, message) as a stock client will see them.
    fn table() -> Vec<(Error, i32, i32, &'static str)> {
        vec![
            (
                Error::NoSupport {
                    operation: "virDomainSuspend",
                    driver: "Test",
                },
                3,
                20,
                "this function is not supported by the connection driver: virDomainSuspend",
            ),
            (
                Error::NoDomain {
                    key: DomainKey::Name("ghost".into()),
                },
                42,
                20,
                "Domain not found: no domain with matching name 'ghost'",
            ),
            (
                Error::invalid("domain is not running"),
                55,
                20,
                "Requested operation is not valid: domain is not running",
            ),
            (
                Error::OperationDenied {
                    operation: "virDomainDestroy",
                },
                29,
                20,
                "operation forbidden: virDomainDestroy is not allowed on a read-only connection",
            ),
            (
                Error::system(
                    "write /var/lib/migrated/x.xml",
                    std::io::Error::from_raw_os_error(28),
                ),
                38,
                20,
                "write /var/lib/migrated/x.xml failed: No space left on device (os error 28)",
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
            ),
            (
                Error::TooManyParams { count: 65, max: 64 },
                39,
                7,
                "too many typed parameters: 65 (at most 64)",
            ),
        ]
    }

    #[test]
    fn core_errors_map_to_code_domain_and_flattened_message() {
        for (err, code, domain, message) in table() {
            let wire = to_wire_error(&err);
            assert_eq!((wire.code, wire.domain), (code, domain), "{err:?}");
            assert_eq!(wire.message.as_deref(), Some(message));
            assert_eq!(wire.str1.as_deref(), Some(message));
            assert_eq!(wire.level, 2);
        }
    }

    #[test]
    fn protocol_refusals_use_libvirt_codes_and_words() {
        let e = unknown_procedure(9999);
        assert_eq!((e.code, e.domain), (39, 7));
        assert_eq!(e.message.as_deref(), Some("unknown procedure: 9999"));
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
    }
}
