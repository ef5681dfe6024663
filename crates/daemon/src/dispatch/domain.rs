//! Domain procedures: listing (modern and old), lookup, state, config and
//! lifecycle. Each one translates the wire arguments, calls the opened
//! driver, and translates the answer back.

use migrated_core::driver::{DomainRef, Driver};
use migrated_core::error::ErrorCode;
use migrated_core::flags::list;
use migrated_proto::{
    ConnectListAllDomainsArgs, ConnectListAllDomainsRet, ConnectListDefinedDomainsArgs,
    ConnectListDefinedDomainsRet, ConnectListDomainsArgs, ConnectListDomainsRet,
    ConnectNumOfDefinedDomainsRet, ConnectNumOfDomainsRet, DomainCreateArgs,
    DomainCreateWithFlagsArgs, DomainCreateWithFlagsRet, DomainCreateXmlArgs, DomainCreateXmlRet,
    DomainDefineXmlArgs, DomainDefineXmlFlagsArgs, DomainDefineXmlFlagsRet, DomainDefineXmlRet,
    DomainDestroyArgs, DomainDestroyFlagsArgs, DomainGetAutostartArgs, DomainGetAutostartRet,
    DomainGetInfoArgs, DomainGetInfoRet, DomainGetMaxMemoryArgs, DomainGetMaxMemoryRet,
    DomainGetMessagesArgs, DomainGetMessagesRet, DomainGetOsTypeArgs, DomainGetOsTypeRet,
    DomainGetSecurityLabelArgs, DomainGetSecurityLabelRet, DomainGetStateArgs, DomainGetStateRet,
    DomainGetXmlDescArgs, DomainGetXmlDescRet, DomainHasManagedSaveImageArgs,
    DomainHasManagedSaveImageRet, DomainInjectNmiArgs, DomainIsActiveArgs, DomainIsActiveRet,
    DomainIsPersistentArgs, DomainIsPersistentRet, DomainIsUpdatedArgs, DomainIsUpdatedRet,
    DomainLookupByIdArgs, DomainLookupByIdRet, DomainLookupByNameArgs, DomainLookupByNameRet,
    DomainLookupByUuidArgs, DomainLookupByUuidRet, DomainRebootArgs, DomainRenameArgs,
    DomainRenameRet, DomainResetArgs, DomainResumeArgs, DomainSendKeyArgs, DomainSetAutostartArgs,
    DomainShutdownArgs, DomainShutdownFlagsArgs, DomainSuspendArgs, DomainUndefineArgs,
    DomainUndefineFlagsArgs, NonnullDomain,
};
use migrated_rpc::WireError;
use uuid::Uuid;

use super::{from_wire_dom, to_wire_dom};
use crate::handler::{Handler, Session};
use crate::wire::to_wire_error;

type Result<T> = std::result::Result<T, WireError>;

fn driver(session: &Session) -> Result<std::sync::Arc<dyn Driver>> {
    Ok(session.driver()?.driver)
}

fn err(e: migrated_core::Error) -> WireError {
    to_wire_error(&e)
}

fn invalid_arg(operation: &'static str, reason: &str) -> WireError {
    err(migrated_core::Error::InvalidArg {
        operation,
        reason: reason.to_owned(),
    })
}

fn bool_word(value: bool) -> i32 {
    i32::from(value)
}

/// CONNECT_LIST_ALL_DOMAINS: `need_results = 0` asks only for the count.
///
/// # Errors
/// The driver's error (e.g. unknown filter bits → INVALID_ARG).
pub async fn list_all(
    session: &Session,
    args: ConnectListAllDomainsArgs,
) -> Result<ConnectListAllDomainsRet> {
    let doms = driver(session)?
        .list_all_domains(args.flags)
        .await
        .map_err(err)?;
    let count = u32::try_from(doms.len()).unwrap_or(u32::MAX);
    let domains = if args.need_results != 0 {
        doms.iter().map(to_wire_dom).collect()
    } else {
        Vec::new()
    };
    Ok(ConnectListAllDomainsRet {
        domains,
        ret: count,
    })
}

async fn filtered(session: &Session, flags: u32) -> Result<Vec<DomainRef>> {
    driver(session)?.list_all_domains(flags).await.map_err(err)
}

fn count(doms: &[DomainRef]) -> i32 {
    i32::try_from(doms.len()).unwrap_or(i32::MAX)
}

fn limit(max: i32, operation: &'static str) -> Result<usize> {
    usize::try_from(max).map_err(|_| invalid_arg(operation, "negative maximum"))
}

/// CONNECT_NUM_OF_DOMAINS: running (and paused) domains.
///
/// # Errors
/// The driver's error.
pub async fn num_of_domains(session: &Session) -> Result<ConnectNumOfDomainsRet> {
    Ok(ConnectNumOfDomainsRet {
        num: count(&filtered(session, list::ACTIVE).await?),
    })
}

/// CONNECT_LIST_DOMAINS: ids of active domains, at most `maxids`.
///
/// # Errors
/// INVALID_ARG for a negative maximum; the driver's error.
pub async fn list_domains(
    session: &Session,
    args: ConnectListDomainsArgs,
) -> Result<ConnectListDomainsRet> {
    let max = limit(args.maxids, "virConnectListDomains")?;
    let doms = filtered(session, list::ACTIVE).await?;
    Ok(ConnectListDomainsRet {
        ids: doms.iter().map(|d| d.id).take(max).collect(),
    })
}

/// CONNECT_NUM_OF_DEFINED_DOMAINS: inactive (hence persistent) domains.
///
/// # Errors
/// The driver's error.
pub async fn num_of_defined(session: &Session) -> Result<ConnectNumOfDefinedDomainsRet> {
    Ok(ConnectNumOfDefinedDomainsRet {
        num: count(&filtered(session, list::INACTIVE).await?),
    })
}

/// CONNECT_LIST_DEFINED_DOMAINS: names of inactive domains, at most `maxnames`.
///
/// # Errors
/// INVALID_ARG for a negative maximum; the driver's error.
pub async fn list_defined(
    session: &Session,
    args: ConnectListDefinedDomainsArgs,
) -> Result<ConnectListDefinedDomainsRet> {
    let max = limit(args.maxnames, "virConnectListDefinedDomains")?;
    let doms = filtered(session, list::INACTIVE).await?;
    Ok(ConnectListDefinedDomainsRet {
        names: doms.into_iter().map(|d| d.name).take(max).collect(),
    })
}

/// DOMAIN_LOOKUP_BY_NAME.
///
/// # Errors
/// NO_DOMAIN.
pub async fn lookup_by_name(
    session: &Session,
    args: DomainLookupByNameArgs,
) -> Result<DomainLookupByNameRet> {
    let dom = driver(session)?
        .lookup_by_name(&args.name)
        .await
        .map_err(err)?;
    Ok(DomainLookupByNameRet {
        dom: to_wire_dom(&dom),
    })
}

/// DOMAIN_LOOKUP_BY_UUID.
///
/// # Errors
/// NO_DOMAIN.
pub async fn lookup_by_uuid(
    session: &Session,
    args: DomainLookupByUuidArgs,
) -> Result<DomainLookupByUuidRet> {
    let uuid = Uuid::from_bytes(args.uuid);
    let dom = driver(session)?.lookup_by_uuid(&uuid).await.map_err(err)?;
    Ok(DomainLookupByUuidRet {
        dom: to_wire_dom(&dom),
    })
}

/// DOMAIN_LOOKUP_BY_ID.
///
/// # Errors
/// NO_DOMAIN.
pub async fn lookup_by_id(
    session: &Session,
    args: DomainLookupByIdArgs,
) -> Result<DomainLookupByIdRet> {
    let dom = driver(session)?.lookup_by_id(args.id).await.map_err(err)?;
    Ok(DomainLookupByIdRet {
        dom: to_wire_dom(&dom),
    })
}

/// DOMAIN_GET_INFO.
///
/// # Errors
/// NO_DOMAIN; the driver's error.
pub async fn get_info(session: &Session, args: DomainGetInfoArgs) -> Result<DomainGetInfoRet> {
    let info = driver(session)?
        .get_info(&from_wire_dom(&args.dom))
        .await
        .map_err(err)?;
    Ok(DomainGetInfoRet {
        // virDomainState values are 0..=7; the wire field is an unsigned char.
        state: u8::try_from(info.state as i32).unwrap_or(0),
        max_mem: info.max_mem_kib,
        memory: info.memory_kib,
        nr_virt_cpu: info.nr_virt_cpu,
        cpu_time: info.cpu_time_ns,
    })
}

/// DOMAIN_GET_MAX_MEMORY, from the domain's info.
///
/// # Errors
/// NO_DOMAIN; the driver's error.
pub async fn get_max_memory(
    session: &Session,
    args: DomainGetMaxMemoryArgs,
) -> Result<DomainGetMaxMemoryRet> {
    let info = driver(session)?
        .get_info(&from_wire_dom(&args.dom))
        .await
        .map_err(err)?;
    Ok(DomainGetMaxMemoryRet {
        memory: info.max_mem_kib,
    })
}

/// DOMAIN_GET_STATE.
///
/// # Errors
/// NO_DOMAIN; INVALID_ARG for flags.
pub async fn get_state(session: &Session, args: DomainGetStateArgs) -> Result<DomainGetStateRet> {
    let sr = driver(session)?
        .get_state(&from_wire_dom(&args.dom), args.flags)
        .await
        .map_err(err)?;
    Ok(DomainGetStateRet {
        state: sr.state as i32,
        reason: sr.reason,
    })
}

/// DOMAIN_GET_OS_TYPE.
///
/// # Errors
/// NO_DOMAIN.
pub async fn get_os_type(
    session: &Session,
    args: DomainGetOsTypeArgs,
) -> Result<DomainGetOsTypeRet> {
    let r#type = driver(session)?
        .get_os_type(&from_wire_dom(&args.dom))
        .await
        .map_err(err)?;
    Ok(DomainGetOsTypeRet { r#type })
}

/// DOMAIN_GET_XML_DESC. The SECURE flag (passwords) is refused on
/// read-only connections, as libvirt does.
///
/// # Errors
/// OPERATION_DENIED for SECURE on a read-only connection; NO_DOMAIN.
pub async fn get_xml_desc(
    session: &Session,
    args: DomainGetXmlDescArgs,
) -> Result<DomainGetXmlDescRet> {
    if args.flags & migrated_core::flags::xml::SECURE != 0 && session.is_readonly() {
        return Err(crate::wire::read_only(
            "virDomainGetXMLDesc with VIR_DOMAIN_XML_SECURE",
        ));
    }
    let xml = driver(session)?
        .get_xml_desc(&from_wire_dom(&args.dom), args.flags)
        .await
        .map_err(err)?;
    Ok(DomainGetXmlDescRet { xml })
}

/// DOMAIN_GET_SECURITY_LABEL: no security driver, so an empty label.
///
/// # Errors
/// NO_DOMAIN.
pub async fn get_security_label(
    session: &Session,
    args: DomainGetSecurityLabelArgs,
) -> Result<DomainGetSecurityLabelRet> {
    exists(session, &args.dom).await?;
    Ok(DomainGetSecurityLabelRet {
        label: Vec::new(),
        enforcing: 0,
    })
}

async fn exists(session: &Session, dom: &NonnullDomain) -> Result<DomainRef> {
    driver(session)?
        .lookup_by_uuid(&Uuid::from_bytes(dom.uuid))
        .await
        .map_err(err)
}

/// DOMAIN_GET_AUTOSTART.
///
/// # Errors
/// NO_DOMAIN.
pub async fn get_autostart(
    session: &Session,
    args: DomainGetAutostartArgs,
) -> Result<DomainGetAutostartRet> {
    let on = driver(session)?
        .get_autostart(&from_wire_dom(&args.dom))
        .await
        .map_err(err)?;
    Ok(DomainGetAutostartRet {
        autostart: bool_word(on),
    })
}

/// DOMAIN_SET_AUTOSTART.
///
/// # Errors
/// NO_DOMAIN; the driver's error (e.g. transient domain).
pub async fn set_autostart(session: &Session, args: DomainSetAutostartArgs) -> Result<()> {
    driver(session)?
        .set_autostart(&from_wire_dom(&args.dom), args.autostart != 0)
        .await
        .map_err(err)
}

/// DOMAIN_IS_ACTIVE.
///
/// # Errors
/// NO_DOMAIN.
pub async fn is_active(session: &Session, args: DomainIsActiveArgs) -> Result<DomainIsActiveRet> {
    let active = driver(session)?
        .is_active(&from_wire_dom(&args.dom))
        .await
        .map_err(err)?;
    Ok(DomainIsActiveRet {
        active: bool_word(active),
    })
}

/// DOMAIN_IS_PERSISTENT.
///
/// # Errors
/// NO_DOMAIN.
pub async fn is_persistent(
    session: &Session,
    args: DomainIsPersistentArgs,
) -> Result<DomainIsPersistentRet> {
    let persistent = driver(session)?
        .is_persistent(&from_wire_dom(&args.dom))
        .await
        .map_err(err)?;
    Ok(DomainIsPersistentRet {
        persistent: bool_word(persistent),
    })
}

/// DOMAIN_IS_UPDATED: live changes without a config update do not exist
/// here, so always 0.
///
/// # Errors
/// NO_DOMAIN.
pub async fn is_updated(
    session: &Session,
    args: DomainIsUpdatedArgs,
) -> Result<DomainIsUpdatedRet> {
    exists(session, &args.dom).await?;
    Ok(DomainIsUpdatedRet { updated: 0 })
}

/// DOMAIN_HAS_MANAGED_SAVE_IMAGE: the driver's answer, or 0 when it has
/// no managed save at all.
///
/// # Errors
/// NO_DOMAIN.
pub async fn has_managed_save_image(
    session: &Session,
    args: DomainHasManagedSaveImageArgs,
) -> Result<DomainHasManagedSaveImageRet> {
    let dom = from_wire_dom(&args.dom);
    let result = match driver(session)?.has_managed_save(&dom, args.flags).await {
        Ok(has) => has,
        Err(e) if e.code() == ErrorCode::NoSupport => {
            exists(session, &args.dom).await?;
            false
        }
        Err(e) => return Err(err(e)),
    };
    Ok(DomainHasManagedSaveImageRet {
        result: bool_word(result),
    })
}

/// DOMAIN_GET_MESSAGES: no taint or deprecation messages.
///
/// # Errors
/// NO_DOMAIN.
pub async fn get_messages(
    session: &Session,
    args: DomainGetMessagesArgs,
) -> Result<DomainGetMessagesRet> {
    exists(session, &args.dom).await?;
    Ok(DomainGetMessagesRet { msgs: Vec::new() })
}

/// DOMAIN_DEFINE_XML.
///
/// # Errors
/// XML_ERROR, OPERATION_FAILED (name or UUID clash), ... from the driver.
pub async fn define_xml(
    session: &Session,
    args: DomainDefineXmlArgs,
) -> Result<DomainDefineXmlRet> {
    let dom = driver(session)?
        .define_xml(&args.xml, 0)
        .await
        .map_err(err)?;
    Ok(DomainDefineXmlRet {
        dom: to_wire_dom(&dom),
    })
}

/// DOMAIN_DEFINE_XML_FLAGS.
///
/// # Errors
/// As [`define_xml`]; INVALID_ARG for unknown flags.
pub async fn define_xml_flags(
    session: &Session,
    args: DomainDefineXmlFlagsArgs,
) -> Result<DomainDefineXmlFlagsRet> {
    let dom = driver(session)?
        .define_xml(&args.xml, args.flags)
        .await
        .map_err(err)?;
    Ok(DomainDefineXmlFlagsRet {
        dom: to_wire_dom(&dom),
    })
}

/// DOMAIN_UNDEFINE.
///
/// # Errors
/// NO_DOMAIN; OPERATION_INVALID for a transient domain.
pub async fn undefine(session: &Session, args: DomainUndefineArgs) -> Result<()> {
    driver(session)?
        .undefine(&from_wire_dom(&args.dom), 0)
        .await
        .map_err(err)
}

/// DOMAIN_UNDEFINE_FLAGS.
///
/// # Errors
/// As [`undefine`]; INVALID_ARG for unknown flags.
pub async fn undefine_flags(session: &Session, args: DomainUndefineFlagsArgs) -> Result<()> {
    driver(session)?
        .undefine(&from_wire_dom(&args.dom), args.flags)
        .await
        .map_err(err)
}

/// DOMAIN_RENAME (`virsh domrename`): a shut-off persistent domain takes
/// a new name.
///
/// # Errors
/// INVALID_ARG without a new name (libvirt's public API checks it before
/// the driver); the driver's errors (running or transient domain, name
/// taken or the same, managed save image).
pub async fn rename(session: &Session, args: DomainRenameArgs) -> Result<DomainRenameRet> {
    let Some(new_name) = args.new_name else {
        return Err(invalid_arg("virDomainRename", "new_name must not be NULL"));
    };
    driver(session)?
        .rename(&from_wire_dom(&args.dom), &new_name, args.flags)
        .await
        .map_err(err)?;
    Ok(DomainRenameRet { retcode: 0 })
}

/// DOMAIN_CREATE: starts a defined domain (the client then looks it up by
/// UUID to learn the id).
///
/// # Errors
/// NO_DOMAIN; OPERATION_INVALID when already running.
pub async fn create(session: &Session, args: DomainCreateArgs) -> Result<()> {
    driver(session)?
        .create(&from_wire_dom(&args.dom), 0)
        .await
        .map(drop)
        .map_err(err)
}

/// DOMAIN_CREATE_WITH_FLAGS: returns the domain with its new id.
///
/// # Errors
/// As [`create`]; INVALID_ARG for unknown flags.
pub async fn create_with_flags(
    handler: &Handler,
    session: &Session,
    args: DomainCreateWithFlagsArgs,
) -> Result<DomainCreateWithFlagsRet> {
    let dom = driver(session)?
        .create(&from_wire_dom(&args.dom), args.flags)
        .await
        .map_err(err)?;
    mark_autodestroy(handler, session, args.flags, &dom);
    Ok(DomainCreateWithFlagsRet {
        dom: to_wire_dom(&dom),
    })
}

/// A guest started with `VIR_DOMAIN_START_AUTODESTROY` (which only drivers
/// that accept the flag let through) goes with this connection.
fn mark_autodestroy(handler: &Handler, session: &Session, flags: u32, dom: &DomainRef) {
    if flags & migrated_core::flags::create::START_AUTODESTROY != 0 {
        handler.mark_autodestroy(session, dom.clone());
    }
}

/// DOMAIN_CREATE_XML: a transient domain, started at once.
///
/// # Errors
/// XML_ERROR, OPERATION_FAILED (name or UUID clash), ... from the driver.
pub async fn create_xml(
    handler: &Handler,
    session: &Session,
    args: DomainCreateXmlArgs,
) -> Result<DomainCreateXmlRet> {
    let dom = driver(session)?
        .create_xml(&args.xml_desc, args.flags)
        .await
        .map_err(err)?;
    mark_autodestroy(handler, session, args.flags, &dom);
    Ok(DomainCreateXmlRet {
        dom: to_wire_dom(&dom),
    })
}

/// DOMAIN_DESTROY.
///
/// # Errors
/// NO_DOMAIN; OPERATION_INVALID when not running.
pub async fn destroy(session: &Session, args: DomainDestroyArgs) -> Result<()> {
    driver(session)?
        .destroy(&from_wire_dom(&args.dom), 0)
        .await
        .map_err(err)
}

/// DOMAIN_DESTROY_FLAGS.
///
/// # Errors
/// As [`destroy`]; INVALID_ARG for unknown flags.
pub async fn destroy_flags(session: &Session, args: DomainDestroyFlagsArgs) -> Result<()> {
    driver(session)?
        .destroy(&from_wire_dom(&args.dom), args.flags)
        .await
        .map_err(err)
}

/// DOMAIN_SUSPEND.
///
/// # Errors
/// NO_DOMAIN; OPERATION_INVALID when not running.
pub async fn suspend(session: &Session, args: DomainSuspendArgs) -> Result<()> {
    driver(session)?
        .suspend(&from_wire_dom(&args.dom))
        .await
        .map_err(err)
}

/// DOMAIN_RESUME.
///
/// # Errors
/// NO_DOMAIN; OPERATION_INVALID when not paused.
pub async fn resume(session: &Session, args: DomainResumeArgs) -> Result<()> {
    driver(session)?
        .resume(&from_wire_dom(&args.dom))
        .await
        .map_err(err)
}

/// DOMAIN_SHUTDOWN.
///
/// # Errors
/// NO_DOMAIN; OPERATION_INVALID when not running.
pub async fn shutdown(session: &Session, args: DomainShutdownArgs) -> Result<()> {
    driver(session)?
        .shutdown(&from_wire_dom(&args.dom), 0)
        .await
        .map_err(err)
}

/// DOMAIN_RESET (245): the guest's reset button.
///
/// # Errors
/// NO_DOMAIN; OPERATION_INVALID when not running; INVALID_ARG for flags
/// (none are defined).
pub async fn reset(session: &Session, args: DomainResetArgs) -> Result<()> {
    migrated_core::flags::check_flags("virDomainReset", u64::from(args.flags), 0).map_err(err)?;
    driver(session)?
        .reset(&from_wire_dom(&args.dom))
        .await
        .map_err(err)
}

/// DOMAIN_SHUTDOWN_FLAGS.
///
/// # Errors
/// As [`shutdown`]; INVALID_ARG for unknown flags.
pub async fn shutdown_flags(session: &Session, args: DomainShutdownFlagsArgs) -> Result<()> {
    driver(session)?
        .shutdown(&from_wire_dom(&args.dom), args.flags)
        .await
        .map_err(err)
}

/// DOMAIN_REBOOT (27).
///
/// # Errors
/// NO_DOMAIN; OPERATION_INVALID when not running; INVALID_ARG for flags
/// the driver does not know.
pub async fn reboot(session: &Session, args: DomainRebootArgs) -> Result<()> {
    driver(session)?
        .reboot(&from_wire_dom(&args.dom), args.flags)
        .await
        .map_err(err)
}

/// DOMAIN_INJECT_NMI (210).
///
/// # Errors
/// NO_DOMAIN; OPERATION_INVALID when not running; INVALID_ARG for flags
/// (none are defined).
pub async fn inject_nmi(session: &Session, args: DomainInjectNmiArgs) -> Result<()> {
    migrated_core::flags::check_flags("virDomainInjectNMI", u64::from(args.flags), 0)
        .map_err(err)?;
    driver(session)?
        .inject_nmi(&from_wire_dom(&args.dom))
        .await
        .map_err(err)
}

/// DOMAIN_SEND_KEY (226): the checks `virDomainSendKey` makes on the
/// client side (a codeset libvirt knows, at least one key), then the driver.
///
/// # Errors
/// INVALID_ARG for an unknown codeset, no keys or flags (none are
/// defined); NO_DOMAIN; OPERATION_INVALID when not running; the driver's
/// error for a keycode it cannot translate.
pub async fn send_key(session: &Session, args: DomainSendKeyArgs) -> Result<()> {
    const OP: &str = "virDomainSendKey";
    migrated_core::flags::check_flags(OP, u64::from(args.flags), 0).map_err(err)?;
    let codeset = migrated_core::keycode::Codeset::from_wire(args.codeset)
        .ok_or_else(|| invalid_arg(OP, &format!("Unsupported codeset '{}'", args.codeset)))?;
    if args.keycodes.is_empty() {
        return Err(invalid_arg(OP, "nkeycodes must be greater than zero"));
    }
    driver(session)?
        .send_key(
            &from_wire_dom(&args.dom),
            codeset,
            args.holdtime,
            &args.keycodes,
        )
        .await
        .map_err(err)
}
