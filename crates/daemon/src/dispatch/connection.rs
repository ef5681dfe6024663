//! Connection-level procedures: authentication, open/close, features,
//! host and driver facts.

use migrated_proto::{
    AuthListRet, AuthType, ConnectGetCapabilitiesRet, ConnectGetDomainCapabilitiesArgs,
    ConnectGetDomainCapabilitiesRet, ConnectGetHostnameRet, ConnectGetLibVersionRet,
    ConnectGetMaxVcpusArgs, ConnectGetMaxVcpusRet, ConnectGetSysinfoArgs, ConnectGetSysinfoRet,
    ConnectGetTypeRet, ConnectGetUriRet, ConnectGetVersionRet, ConnectIsSecureRet, ConnectOpenArgs,
    ConnectSupportsFeatureArgs, ConnectSupportsFeatureRet, NodeGetInfoRet, NodeGetSecurityModelRet,
};
use migrated_rpc::{CallContext, Transport, WireError};

use super::c_chars;
use crate::handler::{Handler, OpenDriver, Session};
use crate::wire::{self, to_wire_error};
use migrated_core::domain::DomainCapsQuery;

/// `VIR_CONNECT_RO`: open read-only.
const CONNECT_RO: u32 = 1;
/// The libvirt version we are wire-compatible with (9.0.0).
pub const LIB_VERSION: u64 = 9_000_000;
/// What CONNECT_GET_MAX_VCPUS answers (the limit of our domain model).
const MAX_VCPUS: i32 = 255;

/// `VIR_DRV_FEATURE_*` numbers (libvirt-wire.md §6).
pub mod feature {
    /// Old v1 migration.
    pub const MIGRATION_V1: i32 = 1;
    /// Prepare2/Perform/Finish2.
    pub const MIGRATION_V2: i32 = 3;
    /// Peer-to-peer migration.
    pub const MIGRATION_P2P: i32 = 4;
    /// Begin3 … Confirm3.
    pub const MIGRATION_V3: i32 = 6;
    /// CHANGE_PROTECTION flag.
    pub const MIGRATE_CHANGE_PROTECTION: i32 = 7;
    /// fd passing over UNIX sockets.
    pub const FD_PASSING: i32 = 8;
    /// String typed parameters.
    pub const TYPED_PARAM_STRING: i32 = 9;
    /// The keepalive program.
    pub const PROGRAM_KEEPALIVE: i32 = 10;
    /// GetXMLDesc accepts MIGRATABLE.
    pub const XML_MIGRATABLE: i32 = 11;
    /// Offline migration.
    pub const MIGRATION_OFFLINE: i32 = 12;
    /// The *_PARAMS migration procedures.
    pub const MIGRATION_PARAMS: i32 = 13;
    /// 316/317 and CALLBACK_* events.
    pub const REMOTE_EVENT_CALLBACK: i32 = 14;
    /// 360/361 and event 362.
    pub const REMOTE_CLOSE_CALLBACK: i32 = 15;
}

/// Whether this daemon supports feature `number`. Answers every number,
/// unknown ones with `false`, never an error: clients abort migrations on
/// an error here (libvirt-wire.md §6).
pub fn feature_supported(number: i32) -> bool {
    use feature::*;
    match number {
        PROGRAM_KEEPALIVE
        | REMOTE_EVENT_CALLBACK
        | REMOTE_CLOSE_CALLBACK
        | TYPED_PARAM_STRING
        | XML_MIGRATABLE => true,
        // Served by dispatch::migration.
        MIGRATION_V2
        | MIGRATION_P2P
        | MIGRATION_V3
        | MIGRATE_CHANGE_PROTECTION
        | MIGRATION_OFFLINE
        | MIGRATION_PARAMS => true,
        // No fd passing; v1 cannot carry a domain definition to prepare with.
        FD_PASSING | MIGRATION_V1 => false,
        _ => false,
    }
}

/// AUTH_LIST: no authentication (TLS client certificates are checked
/// before the first call).
pub fn auth_list() -> AuthListRet {
    AuthListRet {
        types: vec![AuthType::None],
    }
}

/// CONNECT_OPEN: binds the connection to a driver.
///
/// # Errors
/// `VIR_ERR_NO_CONNECT` for a URI no enabled driver serves; "already open".
pub fn open(handler: &Handler, session: &Session, args: ConnectOpenArgs) -> Result<(), WireError> {
    let name = args.name.as_deref();
    let (driver, uri) = handler
        .drivers()
        .resolve(name)
        .ok_or_else(|| wire::no_connect(name.unwrap_or("")))?;
    let readonly = args.flags & CONNECT_RO != 0;
    session.open(OpenDriver { driver, uri }, readonly)?;
    tracing::info!(
        conn_id = session.info().id,
        peer = %session.info().peer,
        uri,
        readonly = session.is_readonly(),
        "connection opened"
    );
    Ok(())
}

/// CONNECT_CLOSE: replies, then closes the connection once the reply is out.
pub fn close(session: &Session) {
    session.handle().close();
}

/// CONNECT_SUPPORTS_FEATURE; asking for keepalive also starts the server's
/// pings toward this client, as libvirtd does.
pub fn supports_feature(
    handler: &Handler,
    session: &Session,
    args: ConnectSupportsFeatureArgs,
) -> ConnectSupportsFeatureRet {
    let supported = feature_supported(args.feature);
    if args.feature == feature::PROGRAM_KEEPALIVE && handler.keepalive() {
        session.handle().start_keepalive();
    }
    ConnectSupportsFeatureRet {
        supported: i32::from(supported),
    }
}

/// CONNECT_GET_TYPE: the driver's name ("TEST", "QEMU", as libvirt's).
///
/// # Errors
/// The driver's error.
pub async fn get_type(session: &Session) -> Result<ConnectGetTypeRet, WireError> {
    let open = session.driver()?;
    let r#type = open
        .driver
        .get_type()
        .await
        .map_err(|e| to_wire_error(&e))?;
    Ok(ConnectGetTypeRet { r#type })
}

/// CONNECT_GET_VERSION: the hypervisor's version.
///
/// # Errors
/// The driver's error.
pub async fn get_version(session: &Session) -> Result<ConnectGetVersionRet, WireError> {
    let open = session.driver()?;
    let hv_ver = open
        .driver
        .hypervisor_version()
        .await
        .map_err(|e| to_wire_error(&e))?;
    Ok(ConnectGetVersionRet { hv_ver })
}

/// CONNECT_GET_LIB_VERSION: the libvirt version we speak (9.0.0).
pub fn get_lib_version() -> ConnectGetLibVersionRet {
    ConnectGetLibVersionRet {
        lib_ver: LIB_VERSION,
    }
}

/// CONNECT_GET_HOSTNAME.
pub fn get_hostname(handler: &Handler) -> ConnectGetHostnameRet {
    ConnectGetHostnameRet {
        hostname: handler.hostname().to_owned(),
    }
}

/// CONNECT_GET_URI: the canonical URI of the opened driver.
///
/// # Errors
/// "not open".
pub fn get_uri(session: &Session) -> Result<ConnectGetUriRet, WireError> {
    Ok(ConnectGetUriRet {
        uri: session.driver()?.uri.to_owned(),
    })
}

/// CONNECT_GET_DOMAIN_CAPABILITIES (`virsh domcapabilities`): the driver's
/// document for the queried emulator, architecture, machine and type.
///
/// # Errors
/// "not open"; the driver's error (NO_SUPPORT on the test driver, as
/// libvirt's).
pub async fn get_domain_capabilities(
    session: &Session,
    args: ConnectGetDomainCapabilitiesArgs,
) -> Result<ConnectGetDomainCapabilitiesRet, WireError> {
    let query = DomainCapsQuery {
        emulator: args.emulatorbin,
        arch: args.arch,
        machine: args.machine,
        virttype: args.virttype,
    };
    let capabilities = session
        .driver()?
        .driver
        .domain_capabilities(&query, args.flags)
        .await
        .map_err(|e| to_wire_error(&e))?;
    Ok(ConnectGetDomainCapabilitiesRet { capabilities })
}

/// CONNECT_GET_SYSINFO (203): the host's SMBIOS description as the
/// driver reads it (`virsh sysinfo`).
///
/// # Errors
/// Unknown flags (`VIR_ERR_INVALID_ARG`); the driver's ("Host SMBIOS
/// information is not available").
pub async fn get_sysinfo(
    session: &Session,
    args: ConnectGetSysinfoArgs,
) -> Result<ConnectGetSysinfoRet, WireError> {
    migrated_core::flags::check_flags("virConnectGetSysinfo", u64::from(args.flags), 0)
        .map_err(|e| to_wire_error(&e))?;
    let sysinfo = session
        .driver()?
        .driver
        .sysinfo()
        .await
        .map_err(|e| to_wire_error(&e))?;
    Ok(ConnectGetSysinfoRet { sysinfo })
}

/// CONNECT_GET_CAPABILITIES: the host part from this daemon and the
/// driver's support table, the guests from the driver
/// ([`crate::capabilities`]).
///
/// # Errors
/// The driver's error.
pub async fn get_capabilities(
    handler: &Handler,
    session: &Session,
) -> Result<ConnectGetCapabilitiesRet, WireError> {
    let open = session.driver()?;
    let driver_xml = open
        .driver
        .capabilities()
        .await
        .map_err(|e| to_wire_error(&e))?;
    // The topology is a description; a driver without node facts still
    // has capabilities.
    let topology = match open.driver.node_info().await {
        Ok(node) => {
            let memory = open.driver.node_memory().await.ok();
            Some(crate::capabilities::Topology::from_host(
                &node,
                memory.as_ref(),
            ))
        }
        Err(_) => None,
    };
    let capabilities = crate::capabilities::render(
        handler.host_uuid(),
        open.driver.support(),
        &driver_xml,
        topology.as_ref(),
    )
    .map_err(|e| to_wire_error(&e))?;
    Ok(ConnectGetCapabilitiesRet { capabilities })
}

/// CONNECT_GET_MAX_VCPUS (the `type` argument is ignored, as every type we
/// serve has the same limit).
pub fn get_max_vcpus(_args: ConnectGetMaxVcpusArgs) -> ConnectGetMaxVcpusRet {
    ConnectGetMaxVcpusRet {
        max_vcpus: MAX_VCPUS,
    }
}

/// CONNECT_IS_SECURE: TLS and local sockets are secure, plain TCP is not.
pub fn is_secure(ctx: &CallContext) -> ConnectIsSecureRet {
    let secure = matches!(ctx.info.transport, Transport::Tls | Transport::Unix);
    ConnectIsSecureRet {
        secure: i32::from(secure),
    }
}

/// NODE_GET_INFO: the driver's host summary; the model is cut to 31 bytes
/// so the `char[32]` field keeps its NUL.
///
/// # Errors
/// The driver's error.
pub async fn node_get_info(session: &Session) -> Result<NodeGetInfoRet, WireError> {
    let open = session.driver()?;
    let info = open
        .driver
        .node_info()
        .await
        .map_err(|e| to_wire_error(&e))?;
    let mut model = [0i8; 32];
    for (slot, byte) in model.iter_mut().zip(info.model.bytes().take(31)) {
        *slot = i8::from_ne_bytes([byte]);
    }
    Ok(NodeGetInfoRet {
        model,
        memory: info.memory_kib,
        cpus: info.cpus,
        mhz: info.mhz,
        nodes: info.nodes,
        sockets: info.sockets,
        cores: info.cores,
        threads: info.threads,
    })
}

/// NODE_GET_SECURITY_MODEL: the driver's model, or none when the driver
/// has no notion of one (so `virsh dominfo` prints no security lines).
///
/// # Errors
/// The driver's error other than "not supported".
pub async fn node_get_security_model(
    session: &Session,
) -> Result<NodeGetSecurityModelRet, WireError> {
    let open = session.driver()?;
    let model = match open.driver.node_security_model().await {
        Ok(model) => model,
        Err(err) if err.code() == migrated_core::error::ErrorCode::NoSupport => Default::default(),
        Err(err) => return Err(to_wire_error(&err)),
    };
    Ok(NodeGetSecurityModelRet {
        model: c_chars(&model.model),
        doi: c_chars(&model.doi),
    })
}

/// CONNECT_(UN)REGISTER_CLOSE_CALLBACK: remembered; the daemon never
/// closes a connection on its own except for keepalive and shutdown, where
/// the client notices EOF itself.
pub fn close_callback(session: &Session, registered: bool) {
    session.set_close_callback(registered);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_answer_every_number_with_zero_or_one() {
        let yes: Vec<i32> = (-5..100).filter(|n| feature_supported(*n)).collect();
        assert_eq!(yes, vec![3, 4, 6, 7, 9, 10, 11, 12, 13, 14, 15]);
    }
}
