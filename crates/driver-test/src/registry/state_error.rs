//! The refusals of libvirt's test driver for a guest in the wrong state.
//!
//! `testDomainSuspend`, `testDomainResume`, `testDomainShutdownFlags` and
//! `testDomainCreateWithFlags` look at the state themselves and answer
//! `VIR_ERR_INTERNAL_ERROR` naming the guest (from `VIR_FROM_TEST`), unlike
//! the calls that use src/conf's `virDomainObjCheckActive` ("Requested
//! operation is not valid: domain is not running", `VIR_FROM_DOMAIN`), which
//! this driver answers with [`Error::invalid`] as libvirt does.

use migrated_core::Error;

/// A suspend of a guest that is shut off or paused already, a shutdown of
/// one that is shut off.
pub(crate) fn not_running(name: &str) -> Error {
    Error::internal(format!("domain '{name}' not running"))
}

/// A resume of a guest that is not paused (running or shut off).
pub(crate) fn not_paused(name: &str) -> Error {
    Error::internal(format!("domain '{name}' not paused"))
}

/// A start of a guest that runs already.
pub(crate) fn already_running(name: &str) -> Error {
    Error::internal(format!("Domain '{name}' is already running"))
}

#[cfg(test)]
mod tests {
    use migrated_core::error::{ErrorCode, ErrorDomain};

    use super::*;

    #[test]
    fn internal_errors_from_the_test_driver_with_libvirts_words() {
        for (err, text) in [
            (not_running("vm"), "internal error: domain 'vm' not running"),
            (not_paused("vm"), "internal error: domain 'vm' not paused"),
            (
                already_running("vm"),
                "internal error: Domain 'vm' is already running",
            ),
        ] {
            assert_eq!(err.to_string(), text);
            assert_eq!(err.code(), ErrorCode::InternalError);
            assert_eq!(err.domain_for(ErrorDomain::Test), ErrorDomain::Test);
        }
    }
}
