//! DOMAIN_SET_METADATA / DOMAIN_GET_METADATA (`virsh desc`, `virsh desc
//! --title`, `virsh metadata`, `virsh list --title`): the wire's type, key
//! and URI checked as libvirt's public API checks them, then the driver's
//! change or read of the domain XML's `<title>`, `<description>` or
//! `<metadata>` child, which travels with the guest when it migrates.

use migrated_core::xml::MetadataTarget;
use migrated_proto::{DomainGetMetadataArgs, DomainGetMetadataRet, DomainSetMetadataArgs};
use migrated_rpc::WireError;

use super::from_wire_dom;
use crate::handler::Session;
use crate::wire::to_wire_error;

type Result<T> = std::result::Result<T, WireError>;

/// DOMAIN_SET_METADATA.
///
/// # Errors
/// INVALID_ARG for arguments libvirt's API refuses (a title with a newline,
/// a key or URI where none belongs, an element without URI or key);
/// XML_ERROR for an element that is not well-formed; the driver's errors.
pub async fn set(session: &Session, args: DomainSetMetadataArgs) -> Result<()> {
    let err = |e: migrated_core::Error| to_wire_error(&e);
    let target = MetadataTarget::for_set(
        args.r#type,
        args.metadata.as_deref(),
        args.key.as_deref(),
        args.uri.as_deref(),
    )
    .map_err(err)?;
    session
        .driver()?
        .driver
        .set_metadata(
            &from_wire_dom(&args.dom),
            &target,
            args.metadata.as_deref(),
            args.flags,
        )
        .await
        .map_err(err)
}

/// DOMAIN_GET_METADATA.
///
/// # Errors
/// INVALID_ARG as [`set`]; NO_DOMAIN_METADATA when there is none of that
/// kind; the driver's errors.
pub async fn get(session: &Session, args: DomainGetMetadataArgs) -> Result<DomainGetMetadataRet> {
    let err = |e: migrated_core::Error| to_wire_error(&e);
    let target = MetadataTarget::for_get(args.r#type, args.uri.as_deref()).map_err(err)?;
    let metadata = session
        .driver()?
        .driver
        .get_metadata(&from_wire_dom(&args.dom), &target, args.flags)
        .await
        .map_err(err)?;
    Ok(DomainGetMetadataRet { metadata })
}
