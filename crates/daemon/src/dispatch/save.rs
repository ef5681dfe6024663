//! DOMAIN_SAVE / DOMAIN_RESTORE and their `_FLAGS` forms (`virsh save`,
//! `virsh restore`): the guest's state to and from a file on the daemon's
//! host, through the driver's `save`/`restore` (the QEMU driver writes the
//! migration stream with a header carrying the domain XML); and the managed
//! save image the driver keeps per domain (`virsh managedsave`).

use migrated_proto::{
    DomainManagedSaveArgs, DomainManagedSaveRemoveArgs, DomainRestoreArgs, DomainRestoreFlagsArgs,
    DomainSaveArgs, DomainSaveFlagsArgs,
};
use migrated_rpc::WireError;

use super::from_wire_dom;
use crate::handler::Session;
use crate::wire::to_wire_error;

type Result<T> = std::result::Result<T, WireError>;

/// DOMAIN_SAVE.
///
/// # Errors
/// The driver's error (NO_SUPPORT when it cannot save, NO_DOMAIN, a guest
/// that is not running, a file that cannot be written).
pub async fn save(session: &Session, args: DomainSaveArgs) -> Result<()> {
    save_flags(
        session,
        DomainSaveFlagsArgs {
            dom: args.dom,
            to: args.to,
            dxml: None,
            flags: 0,
        },
    )
    .await
}

/// DOMAIN_SAVE_FLAGS.
///
/// # Errors
/// As [`save`]; the driver refuses flags it does not know.
pub async fn save_flags(session: &Session, args: DomainSaveFlagsArgs) -> Result<()> {
    session
        .driver()?
        .driver
        .save(
            &from_wire_dom(&args.dom),
            &args.to,
            args.dxml.as_deref(),
            args.flags,
        )
        .await
        .map_err(|e| to_wire_error(&e))
}

/// DOMAIN_RESTORE.
///
/// # Errors
/// The driver's error (no or a bad image, a guest of that name already
/// running).
pub async fn restore(session: &Session, args: DomainRestoreArgs) -> Result<()> {
    restore_flags(
        session,
        DomainRestoreFlagsArgs {
            from: args.from,
            dxml: None,
            flags: 0,
        },
    )
    .await
}

/// DOMAIN_RESTORE_FLAGS.
///
/// # Errors
/// As [`restore`]; the driver refuses flags it does not know.
pub async fn restore_flags(session: &Session, args: DomainRestoreFlagsArgs) -> Result<()> {
    session
        .driver()?
        .driver
        .restore(&args.from, args.dxml.as_deref(), args.flags)
        .await
        .map_err(|e| to_wire_error(&e))
}

/// DOMAIN_MANAGED_SAVE (`virsh managedsave`).
///
/// # Errors
/// The driver's error: OPERATION_INVALID for a guest that is not running
/// or is transient, a file that cannot be written.
pub async fn managed_save(session: &Session, args: DomainManagedSaveArgs) -> Result<()> {
    session
        .driver()?
        .driver
        .managed_save(&from_wire_dom(&args.dom), args.flags)
        .await
        .map_err(|e| to_wire_error(&e))
}

/// DOMAIN_MANAGED_SAVE_REMOVE (`virsh managedsave-remove`).
///
/// # Errors
/// The driver's error (NO_DOMAIN, an image that cannot be removed).
pub async fn managed_save_remove(
    session: &Session,
    args: DomainManagedSaveRemoveArgs,
) -> Result<()> {
    session
        .driver()?
        .driver
        .managed_save_remove(&from_wire_dom(&args.dom), args.flags)
        .await
        .map_err(|e| to_wire_error(&e))
}
