//! DOMAIN_SAVE / DOMAIN_RESTORE and their `_FLAGS` forms (`virsh save`,
//! `virsh restore`): the guest's state to and from a file on the daemon's
//! host, through the driver's `save`/`restore` (the QEMU driver writes the
//! migration stream with a header carrying the domain XML); and the managed
//! save image the driver keeps per domain (`virsh managedsave`); the domain
//! XML stored in either (`virsh save-image-dumpxml` / `save-image-define`,
//! `managedsave-dumpxml` / `managedsave-define`).

use migrated_core::flags::save::IMAGE_XML_SECURE;
use migrated_proto::{
    DomainManagedSaveArgs, DomainManagedSaveDefineXmlArgs, DomainManagedSaveGetXmlDescArgs,
    DomainManagedSaveGetXmlDescRet, DomainManagedSaveRemoveArgs, DomainRestoreArgs,
    DomainRestoreFlagsArgs, DomainSaveArgs, DomainSaveFlagsArgs, DomainSaveImageDefineXmlArgs,
    DomainSaveImageGetXmlDescArgs, DomainSaveImageGetXmlDescRet,
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

/// Refuses the secure flag on a read-only connection, as libvirt's public
/// API does before calling the driver.
fn check_secure(session: &Session, flags: u32, api: &str) -> Result<()> {
    if flags & IMAGE_XML_SECURE != 0 && session.is_readonly() {
        return Err(crate::wire::read_only(&format!("{api} with secure flag")));
    }
    Ok(())
}

/// DOMAIN_SAVE_IMAGE_GET_XML_DESC (`virsh save-image-dumpxml`).
///
/// # Errors
/// OPERATION_DENIED for the secure flag on a read-only connection; the
/// driver's error (a missing file, one that is not a save image).
pub async fn save_image_get_xml_desc(
    session: &Session,
    args: DomainSaveImageGetXmlDescArgs,
) -> Result<DomainSaveImageGetXmlDescRet> {
    check_secure(session, args.flags, "virDomainSaveImageGetXMLDesc")?;
    let xml = session
        .driver()?
        .driver
        .save_image_xml(&args.file, args.flags)
        .await
        .map_err(|e| to_wire_error(&e))?;
    Ok(DomainSaveImageGetXmlDescRet { xml })
}

/// DOMAIN_SAVE_IMAGE_DEFINE_XML (`virsh save-image-define`, and
/// `save-image-edit` after a dumpxml).
///
/// # Errors
/// The driver's error: as [`save_image_get_xml_desc`], and
/// CONFIG_UNSUPPORTED for XML that changes the guest ABI.
pub async fn save_image_define_xml(
    session: &Session,
    args: DomainSaveImageDefineXmlArgs,
) -> Result<()> {
    session
        .driver()?
        .driver
        .save_image_define_xml(&args.file, &args.dxml, args.flags)
        .await
        .map_err(|e| to_wire_error(&e))
}

/// DOMAIN_MANAGED_SAVE_GET_XML_DESC (`virsh managedsave-dumpxml`).
///
/// # Errors
/// As [`save_image_get_xml_desc`]; OPERATION_INVALID without an image.
pub async fn managed_save_get_xml_desc(
    session: &Session,
    args: DomainManagedSaveGetXmlDescArgs,
) -> Result<DomainManagedSaveGetXmlDescRet> {
    check_secure(session, args.flags, "virDomainManagedSaveGetXMLDesc")?;
    let xml = session
        .driver()?
        .driver
        .managed_save_xml(&from_wire_dom(&args.dom), args.flags)
        .await
        .map_err(|e| to_wire_error(&e))?;
    Ok(DomainManagedSaveGetXmlDescRet { xml })
}

/// DOMAIN_MANAGED_SAVE_DEFINE_XML (`virsh managedsave-define`,
/// `managedsave-edit`).
///
/// # Errors
/// As [`save_image_define_xml`]; OPERATION_INVALID without an image.
pub async fn managed_save_define_xml(
    session: &Session,
    args: DomainManagedSaveDefineXmlArgs,
) -> Result<()> {
    session
        .driver()?
        .driver
        .managed_save_define_xml(&from_wire_dom(&args.dom), args.dxml.as_deref(), args.flags)
        .await
        .map_err(|e| to_wire_error(&e))
}
