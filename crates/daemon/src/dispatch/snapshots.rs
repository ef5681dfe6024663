//! Snapshot procedures (`DOMAIN_SNAPSHOT_*`): each becomes one of the
//! driver's snapshot operations; listing and counting calls share
//! [`Driver::snapshot_list`], the "current" questions share
//! [`Driver::snapshot_current`]. A snapshot travels as its name and domain,
//! and every answer naming one hands back the caller's domain handle, as
//! libvirtd does.

use migrated_core::driver::Driver;
use migrated_core::snapshot::not_found;
use migrated_proto::{
    DomainHasCurrentSnapshotArgs, DomainHasCurrentSnapshotRet, DomainListAllSnapshotsArgs,
    DomainListAllSnapshotsRet, DomainRevertToSnapshotArgs, DomainSnapshotCreateXmlArgs,
    DomainSnapshotCreateXmlRet, DomainSnapshotCurrentArgs, DomainSnapshotCurrentRet,
    DomainSnapshotDeleteArgs, DomainSnapshotGetParentArgs, DomainSnapshotGetParentRet,
    DomainSnapshotGetXmlDescArgs, DomainSnapshotGetXmlDescRet, DomainSnapshotHasMetadataArgs,
    DomainSnapshotHasMetadataRet, DomainSnapshotIsCurrentArgs, DomainSnapshotIsCurrentRet,
    DomainSnapshotListAllChildrenArgs, DomainSnapshotListAllChildrenRet,
    DomainSnapshotListChildrenNamesArgs, DomainSnapshotListChildrenNamesRet,
    DomainSnapshotListNamesArgs, DomainSnapshotListNamesRet, DomainSnapshotLookupByNameArgs,
    DomainSnapshotLookupByNameRet, DomainSnapshotNumArgs, DomainSnapshotNumChildrenArgs,
    DomainSnapshotNumChildrenRet, DomainSnapshotNumRet, NonnullDomain, NonnullDomainSnapshot,
    REMOTE_DOMAIN_SNAPSHOT_LIST_MAX,
};
use migrated_rpc::WireError;

use super::from_wire_dom;
use crate::handler::Session;
use crate::wire::to_wire_error;

type Result<T> = std::result::Result<T, WireError>;

fn err(e: migrated_core::Error) -> WireError {
    to_wire_error(&e)
}

fn driver(session: &Session) -> Result<std::sync::Arc<dyn Driver>> {
    Ok(session.driver()?.driver)
}

fn handle(dom: &NonnullDomain, name: String) -> NonnullDomainSnapshot {
    NonnullDomainSnapshot {
        name,
        dom: dom.clone(),
    }
}

fn count(names: &[String]) -> i32 {
    i32::try_from(names.len()).unwrap_or(i32::MAX)
}

/// The names a `*_LIST_NAMES` call may return: at most `maxnames`, which
/// libvirtd bounds by the protocol's list limit.
fn truncate(mut names: Vec<String>, maxnames: i32, operation: &'static str) -> Result<Vec<String>> {
    let max = usize::try_from(maxnames).map_err(|_| {
        err(migrated_core::Error::InvalidArg {
            operation,
            reason: "negative maximum".into(),
        })
    })?;
    if max > REMOTE_DOMAIN_SNAPSHOT_LIST_MAX {
        return Err(err(migrated_core::Error::InvalidArg {
            operation,
            reason: format!("maxnames > {REMOTE_DOMAIN_SNAPSHOT_LIST_MAX}"),
        }));
    }
    names.truncate(max);
    Ok(names)
}

async fn list(
    session: &Session,
    dom: &NonnullDomain,
    of: Option<&str>,
    flags: u32,
) -> Result<Vec<String>> {
    driver(session)?
        .snapshot_list(&from_wire_dom(dom), of, flags)
        .await
        .map_err(err)
}

/// DOMAIN_SNAPSHOT_CREATE_XML.
///
/// # Errors
/// The driver's error (bad XML, taken name, refused flags…).
pub async fn create_xml(
    session: &Session,
    args: DomainSnapshotCreateXmlArgs,
) -> Result<DomainSnapshotCreateXmlRet> {
    let name = driver(session)?
        .snapshot_create(&from_wire_dom(&args.dom), &args.xml_desc, args.flags)
        .await
        .map_err(err)?;
    Ok(DomainSnapshotCreateXmlRet {
        snap: handle(&args.dom, name),
    })
}

/// DOMAIN_SNAPSHOT_GET_XML_DESC.
///
/// # Errors
/// NO_DOMAIN_SNAPSHOT; the driver's error.
pub async fn get_xml_desc(
    session: &Session,
    args: DomainSnapshotGetXmlDescArgs,
) -> Result<DomainSnapshotGetXmlDescRet> {
    let xml = driver(session)?
        .snapshot_xml(&from_wire_dom(&args.snap.dom), &args.snap.name, args.flags)
        .await
        .map_err(err)?;
    Ok(DomainSnapshotGetXmlDescRet { xml })
}

/// DOMAIN_SNAPSHOT_NUM.
///
/// # Errors
/// The driver's error.
pub async fn num(session: &Session, args: DomainSnapshotNumArgs) -> Result<DomainSnapshotNumRet> {
    let names = list(session, &args.dom, None, args.flags).await?;
    Ok(DomainSnapshotNumRet { num: count(&names) })
}

/// DOMAIN_SNAPSHOT_LIST_NAMES.
///
/// # Errors
/// INVALID_ARG for a bad maximum; the driver's error.
pub async fn list_names(
    session: &Session,
    args: DomainSnapshotListNamesArgs,
) -> Result<DomainSnapshotListNamesRet> {
    let names = list(session, &args.dom, None, args.flags).await?;
    Ok(DomainSnapshotListNamesRet {
        names: truncate(names, args.maxnames, "virDomainSnapshotListNames")?,
    })
}

/// DOMAIN_LIST_ALL_SNAPSHOTS: `need_results = 0` asks only for the count.
///
/// # Errors
/// The driver's error.
pub async fn list_all(
    session: &Session,
    args: DomainListAllSnapshotsArgs,
) -> Result<DomainListAllSnapshotsRet> {
    let names = list(session, &args.dom, None, args.flags).await?;
    let ret = count(&names);
    let snapshots = if args.need_results != 0 {
        names.into_iter().map(|n| handle(&args.dom, n)).collect()
    } else {
        Vec::new()
    };
    Ok(DomainListAllSnapshotsRet { snapshots, ret })
}

/// DOMAIN_SNAPSHOT_NUM_CHILDREN.
///
/// # Errors
/// NO_DOMAIN_SNAPSHOT; the driver's error.
pub async fn num_children(
    session: &Session,
    args: DomainSnapshotNumChildrenArgs,
) -> Result<DomainSnapshotNumChildrenRet> {
    let names = list(session, &args.snap.dom, Some(&args.snap.name), args.flags).await?;
    Ok(DomainSnapshotNumChildrenRet { num: count(&names) })
}

/// DOMAIN_SNAPSHOT_LIST_CHILDREN_NAMES.
///
/// # Errors
/// INVALID_ARG for a bad maximum; NO_DOMAIN_SNAPSHOT; the driver's error.
pub async fn list_children_names(
    session: &Session,
    args: DomainSnapshotListChildrenNamesArgs,
) -> Result<DomainSnapshotListChildrenNamesRet> {
    let names = list(session, &args.snap.dom, Some(&args.snap.name), args.flags).await?;
    Ok(DomainSnapshotListChildrenNamesRet {
        names: truncate(names, args.maxnames, "virDomainSnapshotListChildrenNames")?,
    })
}

/// DOMAIN_SNAPSHOT_LIST_ALL_CHILDREN.
///
/// # Errors
/// NO_DOMAIN_SNAPSHOT; the driver's error.
pub async fn list_all_children(
    session: &Session,
    args: DomainSnapshotListAllChildrenArgs,
) -> Result<DomainSnapshotListAllChildrenRet> {
    let dom = &args.snapshot.dom;
    let names = list(session, dom, Some(&args.snapshot.name), args.flags).await?;
    let ret = count(&names);
    let snapshots = if args.need_results != 0 {
        names.into_iter().map(|n| handle(dom, n)).collect()
    } else {
        Vec::new()
    };
    Ok(DomainSnapshotListAllChildrenRet { snapshots, ret })
}

/// DOMAIN_SNAPSHOT_LOOKUP_BY_NAME.
///
/// # Errors
/// NO_DOMAIN_SNAPSHOT; the driver's error.
pub async fn lookup_by_name(
    session: &Session,
    args: DomainSnapshotLookupByNameArgs,
) -> Result<DomainSnapshotLookupByNameRet> {
    driver(session)?
        .snapshot_lookup(&from_wire_dom(&args.dom), &args.name, args.flags)
        .await
        .map_err(err)?;
    Ok(DomainSnapshotLookupByNameRet {
        snap: handle(&args.dom, args.name),
    })
}

/// DOMAIN_SNAPSHOT_HAS_METADATA: every snapshot a driver knows has it.
///
/// # Errors
/// NO_DOMAIN_SNAPSHOT; the driver's error.
pub async fn has_metadata(
    session: &Session,
    args: DomainSnapshotHasMetadataArgs,
) -> Result<DomainSnapshotHasMetadataRet> {
    driver(session)?
        .snapshot_lookup(&from_wire_dom(&args.snap.dom), &args.snap.name, args.flags)
        .await
        .map_err(err)?;
    Ok(DomainSnapshotHasMetadataRet { metadata: 1 })
}

/// DOMAIN_HAS_CURRENT_SNAPSHOT.
///
/// # Errors
/// The driver's error.
pub async fn has_current(
    session: &Session,
    args: DomainHasCurrentSnapshotArgs,
) -> Result<DomainHasCurrentSnapshotRet> {
    let current = driver(session)?
        .snapshot_current(&from_wire_dom(&args.dom), args.flags)
        .await
        .map_err(err)?;
    Ok(DomainHasCurrentSnapshotRet {
        result: i32::from(current.is_some()),
    })
}

/// DOMAIN_SNAPSHOT_CURRENT.
///
/// # Errors
/// NO_DOMAIN_SNAPSHOT when there is none (libvirt's message); the driver's error.
pub async fn current(
    session: &Session,
    args: DomainSnapshotCurrentArgs,
) -> Result<DomainSnapshotCurrentRet> {
    let current = driver(session)?
        .snapshot_current(&from_wire_dom(&args.dom), args.flags)
        .await
        .map_err(err)?;
    let name = current.ok_or_else(|| {
        err(migrated_core::Error::NoDomainSnapshot {
            reason: "the domain does not have a current snapshot".into(),
        })
    })?;
    Ok(DomainSnapshotCurrentRet {
        snap: handle(&args.dom, name),
    })
}

/// DOMAIN_SNAPSHOT_IS_CURRENT.
///
/// # Errors
/// NO_DOMAIN_SNAPSHOT; the driver's error.
pub async fn is_current(
    session: &Session,
    args: DomainSnapshotIsCurrentArgs,
) -> Result<DomainSnapshotIsCurrentRet> {
    let drv = driver(session)?;
    let dom = from_wire_dom(&args.snap.dom);
    // The flags belong to this call; the lookup only proves the name.
    let current = drv.snapshot_current(&dom, args.flags).await.map_err(err)?;
    drv.snapshot_lookup(&dom, &args.snap.name, 0)
        .await
        .map_err(err)?;
    Ok(DomainSnapshotIsCurrentRet {
        current: i32::from(current.as_deref() == Some(args.snap.name.as_str())),
    })
}

/// DOMAIN_SNAPSHOT_GET_PARENT.
///
/// # Errors
/// NO_DOMAIN_SNAPSHOT (also for a snapshot without parent); the driver's error.
pub async fn get_parent(
    session: &Session,
    args: DomainSnapshotGetParentArgs,
) -> Result<DomainSnapshotGetParentRet> {
    let parent = driver(session)?
        .snapshot_parent(&from_wire_dom(&args.snap.dom), &args.snap.name, args.flags)
        .await
        .map_err(err)?;
    Ok(DomainSnapshotGetParentRet {
        snap: handle(&args.snap.dom, parent),
    })
}

/// DOMAIN_REVERT_TO_SNAPSHOT.
///
/// # Errors
/// NO_DOMAIN_SNAPSHOT, SNAPSHOT_REVERT_RISKY; the driver's error.
pub async fn revert(session: &Session, args: DomainRevertToSnapshotArgs) -> Result<()> {
    driver(session)?
        .snapshot_revert(&from_wire_dom(&args.snap.dom), &args.snap.name, args.flags)
        .await
        .map_err(err)
}

/// DOMAIN_SNAPSHOT_DELETE.
///
/// # Errors
/// NO_DOMAIN_SNAPSHOT; the driver's error.
pub async fn delete(session: &Session, args: DomainSnapshotDeleteArgs) -> Result<()> {
    if args.snap.name.is_empty() {
        return Err(err(not_found(&args.snap.name)));
    }
    driver(session)?
        .snapshot_delete(&from_wire_dom(&args.snap.dom), &args.snap.name, args.flags)
        .await
        .map_err(err)
}
