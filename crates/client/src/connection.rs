//! [`Connection`]: one open connection to a daemon, with libvirt's open
//! sequence and typed connection-level calls.
//!
//! The open sequence mirrors libvirt's remote driver (`doRemoteOpen` in
//! `src/remote/remote_driver.c`, see libvirt-wire.md §8.1) as virsh runs it:
//!
//! ```text
//! AUTH_LIST (66)                 NO_SUPPORT → no auth; first entry must be "none"
//! SUPPORTS_FEATURE(10)           1 → keepalive every 5 s, dead after 5 misses
//! CONNECT_OPEN (1)               name from the URI, flags RO for read-only
//! SUPPORTS_FEATURE(14)           asked like libvirt; errors count as 0
//! SUPPORTS_FEATURE(15)           1 → CONNECT_REGISTER_CLOSE_CALLBACK (360)
//! ```
//!
//! and [`Connection::close`] sends `CONNECT_UNREGISTER_CLOSE_CALLBACK (361)`
//! when the callback was registered, then `CONNECT_CLOSE (2)`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use migrated_core::domain::{NodeInfo, SecurityModel};
use migrated_core::error::ErrorCode;
use migrated_core::typed_params::TypedParams;
use migrated_proto::{procs, AuthType, RemoteProcedure};
use migrated_rpc::client::RpcClient;
use migrated_rpc::ClientStream;
use tracing::debug;
use uuid::Uuid;

use crate::domain::Domain;
use crate::error::{Error, Result};
use crate::transport;
use crate::uri::ConnectUri;

/// `VIR_CONNECT_RO`.
const CONNECT_RO: u32 = 1;

/// Keepalive interval virsh uses (`virConnectSetKeepAlive(5, ...)`).
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
/// Unanswered pings before the peer is declared dead.
const KEEPALIVE_COUNT: u32 = 5;

/// `VIR_DRV_FEATURE_*` numbers the client asks about.
pub mod feature {
    /// The server speaks the keepalive program.
    pub const PROGRAM_KEEPALIVE: i32 = 10;
    /// Modern event registration (316/317).
    pub const REMOTE_EVENT_CALLBACK: i32 = 14;
    /// CONNECT_REGISTER/UNREGISTER_CLOSE_CALLBACK (360/361).
    pub const REMOTE_CLOSE_CALLBACK: i32 = 15;
}

/// How to open a connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenFlags {
    /// Open read-only (`VIR_CONNECT_RO`; the read-only socket for local URIs).
    pub readonly: bool,
}

/// An open connection to a migrated (or libvirt) daemon.
///
/// Cheap to clone (an `Arc` inside); clones share the connection and may be
/// used from several tasks at once — calls are multiplexed by serial.
#[derive(Debug, Clone)]
pub struct Connection {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    rpc: RpcClient,
    uri: ConnectUri,
    readonly: bool,
    close_callback: bool,
    closed: AtomicBool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The RPC client's tasks keep the socket alive on their own; the last
        // handle going away must end them.
        self.rpc.close();
    }
}

impl Connection {
    /// Opens `uri` and runs libvirt's open sequence.
    ///
    /// # Errors
    /// [`Error::InvalidUri`]; [`Error::Connect`] when the socket or TLS
    /// handshake fails; [`Error::UnsupportedAuth`] when the server requires
    /// SASL or polkit; [`Error::Remote`] when the server refuses
    /// `CONNECT_OPEN` (e.g. an unknown driver URI).
    pub async fn open(uri: &str, flags: OpenFlags) -> Result<Self> {
        let uri = ConnectUri::parse(uri)?;
        let rpc = transport::connect(&uri, flags.readonly).await?;

        match call::<procs::AuthList>(&rpc, &()).await {
            Ok(ret) => check_auth(&ret.types, uri.params.auth.as_deref())?,
            // an ancient server without AUTH_LIST needs no authentication
            Err(e) if e.is_code(ErrorCode::NoSupport) => {}
            Err(e) => return Err(e),
        }

        if supports(&rpc, feature::PROGRAM_KEEPALIVE).await {
            rpc.start_keepalive(KEEPALIVE_INTERVAL, KEEPALIVE_COUNT);
        }

        let args = migrated_proto::ConnectOpenArgs {
            name: Some(uri.remote_name()),
            flags: if flags.readonly { CONNECT_RO } else { 0 },
        };
        call::<procs::ConnectOpen>(&rpc, &args).await?;

        // libvirt asks both even when it ends up not using events; so do we,
        // so the server sees the same sequence from us as from virsh.
        supports(&rpc, feature::REMOTE_EVENT_CALLBACK).await;
        let mut close_callback = false;
        if supports(&rpc, feature::REMOTE_CLOSE_CALLBACK).await {
            match call::<procs::ConnectRegisterCloseCallback>(&rpc, &()).await {
                Ok(()) => close_callback = true,
                Err(e) => debug!(error = %e, "close callback not registered"),
            }
        }

        Ok(Self {
            inner: Arc::new(Inner {
                rpc,
                uri,
                readonly: flags.readonly,
                close_callback,
                closed: AtomicBool::new(false),
            }),
        })
    }

    /// Closes the connection politely (UNREGISTER_CLOSE_CALLBACK if
    /// registered, then CONNECT_CLOSE). Idempotent: later calls do nothing.
    /// Other clones become unusable.
    ///
    /// # Errors
    /// [`Error::Remote`] / [`Error::Rpc`] when CONNECT_CLOSE fails; the
    /// socket is shut down either way.
    pub async fn close(&self) -> Result<()> {
        if self.inner.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        if self.inner.close_callback {
            if let Err(e) = self
                .call::<procs::ConnectUnregisterCloseCallback>(&())
                .await
            {
                debug!(error = %e, "unregistering the close callback failed");
            }
        }
        let result = self.call::<procs::ConnectClose>(&()).await;
        self.inner.rpc.close();
        result
    }

    /// The parsed URI this connection was opened with.
    pub fn uri(&self) -> &ConnectUri {
        &self.inner.uri
    }

    /// Whether the connection was opened read-only.
    pub fn is_readonly(&self) -> bool {
        self.inner.readonly
    }

    /// Calls any remote procedure with typed arguments and result.
    ///
    /// # Errors
    /// [`Error::Encode`], [`Error::Decode`], [`Error::Remote`] for an ERROR
    /// reply, [`Error::Rpc`] when the connection fails.
    pub async fn call<P: RemoteProcedure>(&self, args: &P::Args) -> Result<P::Ret> {
        call::<P>(&self.inner.rpc, args).await
    }

    /// Calls a procedure that opens a data stream (`@stream` in the `.x`,
    /// e.g. `DOMAIN_MIGRATE_PREPARE_TUNNEL3_PARAMS`); the stream is
    /// registered before the call is sent, so no early data is lost.
    ///
    /// # Errors
    /// As [`Connection::call`]; on an ERROR reply no stream exists.
    pub async fn call_with_stream<P: RemoteProcedure>(
        &self,
        args: &P::Args,
    ) -> Result<(P::Ret, ClientStream)> {
        let procedure = P::PROC.name();
        let payload =
            migrated_xdr::to_bytes(args).map_err(|source| Error::Encode { procedure, source })?;
        let (reply, stream) = self
            .inner
            .rpc
            .call_with_stream(
                migrated_proto::REMOTE_PROGRAM,
                migrated_proto::REMOTE_PROTOCOL_VERSION,
                P::PROC as i32,
                payload,
            )
            .await
            .map_err(|e| Error::from_rpc(procedure, e))?;
        let ret = migrated_xdr::from_bytes(&reply)
            .map_err(|source| Error::Decode { procedure, source })?;
        Ok((ret, stream))
    }

    /// The RPC client, for calls of programs other than the remote one.
    pub(crate) fn rpc(&self) -> &RpcClient {
        &self.inner.rpc
    }

    /// Whether the connection is still up (not closed by us, the peer, or keepalive).
    pub fn is_alive(&self) -> bool {
        !self.inner.rpc.is_closed()
    }

    /// Resolves once the connection is closed, with the reason when known
    /// (e.g. the keepalive verdict).
    ///
    /// # Cancel safety
    /// Cancel-safe.
    pub async fn closed(&self) -> Option<String> {
        self.inner.rpc.closed().await
    }

    /// `CONNECT_SUPPORTS_FEATURE`: whether the driver has a `VIR_DRV_FEATURE_*`.
    ///
    /// # Errors
    /// See [`Connection::call`].
    pub async fn supports_feature(&self, feature: i32) -> Result<bool> {
        let args = migrated_proto::ConnectSupportsFeatureArgs { feature };
        Ok(self
            .call::<procs::ConnectSupportsFeature>(&args)
            .await?
            .supported
            != 0)
    }

    /// `CONNECT_GET_TYPE`: the hypervisor type ("QEMU", "TEST", ...).
    ///
    /// # Errors
    /// See [`Connection::call`].
    pub async fn get_type(&self) -> Result<String> {
        Ok(self.call::<procs::ConnectGetType>(&()).await?.r#type)
    }

    /// `CONNECT_GET_VERSION`: hypervisor version, major * 1,000,000 + minor * 1,000 + micro.
    ///
    /// # Errors
    /// See [`Connection::call`].
    pub async fn get_version(&self) -> Result<u64> {
        Ok(self.call::<procs::ConnectGetVersion>(&()).await?.hv_ver)
    }

    /// `CONNECT_GET_LIB_VERSION`: the daemon's version, packed like [`Connection::get_version`].
    ///
    /// # Errors
    /// See [`Connection::call`].
    pub async fn get_lib_version(&self) -> Result<u64> {
        Ok(self.call::<procs::ConnectGetLibVersion>(&()).await?.lib_ver)
    }

    /// `CONNECT_GET_HOSTNAME`.
    ///
    /// # Errors
    /// See [`Connection::call`].
    pub async fn get_hostname(&self) -> Result<String> {
        Ok(self.call::<procs::ConnectGetHostname>(&()).await?.hostname)
    }

    /// `CONNECT_GET_URI`: the server's canonical URI of this connection.
    ///
    /// # Errors
    /// See [`Connection::call`].
    pub async fn get_uri(&self) -> Result<String> {
        Ok(self.call::<procs::ConnectGetUri>(&()).await?.uri)
    }

    /// `CONNECT_GET_CAPABILITIES`: the capabilities XML.
    ///
    /// # Errors
    /// See [`Connection::call`].
    pub async fn get_capabilities(&self) -> Result<String> {
        Ok(self
            .call::<procs::ConnectGetCapabilities>(&())
            .await?
            .capabilities)
    }

    /// `CONNECT_IS_SECURE`: whether the channel is encrypted or local.
    ///
    /// # Errors
    /// See [`Connection::call`].
    pub async fn is_secure(&self) -> Result<bool> {
        Ok(self.call::<procs::ConnectIsSecure>(&()).await?.secure != 0)
    }

    /// `NODE_GET_INFO`.
    ///
    /// # Errors
    /// See [`Connection::call`].
    pub async fn node_info(&self) -> Result<NodeInfo> {
        let ret = self.call::<procs::NodeGetInfo>(&()).await?;
        Ok(NodeInfo {
            model: c_chars_to_string(&ret.model[..]),
            memory_kib: ret.memory,
            cpus: ret.cpus,
            mhz: ret.mhz,
            nodes: ret.nodes,
            sockets: ret.sockets,
            cores: ret.cores,
            threads: ret.threads,
        })
    }

    /// `NODE_GET_SECURITY_MODEL`.
    ///
    /// # Errors
    /// See [`Connection::call`].
    pub async fn node_security_model(&self) -> Result<SecurityModel> {
        let ret = self.call::<procs::NodeGetSecurityModel>(&()).await?;
        Ok(SecurityModel {
            model: c_chars_to_string(&ret.model[..]),
            doi: c_chars_to_string(&ret.doi[..]),
        })
    }

    /// `CONNECT_LIST_ALL_DOMAINS` with `VIR_CONNECT_LIST_DOMAINS_*` flags
    /// (`migrated_core::flags::list::*`; 0 = all).
    ///
    /// # Errors
    /// See [`Connection::call`]; [`Error::InvalidReply`] for a malformed handle.
    pub async fn list_all_domains(&self, flags: u32) -> Result<Vec<Domain>> {
        let args = migrated_proto::ConnectListAllDomainsArgs {
            need_results: 1,
            flags,
        };
        let ret = self.call::<procs::ConnectListAllDomains>(&args).await?;
        Ok(ret
            .domains
            .into_iter()
            .map(|d| Domain::from_wire(self.clone(), d))
            .collect())
    }

    /// `CONNECT_GET_ALL_DOMAIN_STATS` (`virConnectGetAllDomainStats`, or
    /// `virDomainListGetStats` for a non-empty `doms`): each domain's
    /// statistics of the `VIR_DOMAIN_STATS_*` groups in `stats` (0 = every
    /// group the driver serves), with `VIR_CONNECT_GET_ALL_DOMAINS_STATS_*`
    /// `flags`.
    ///
    /// # Errors
    /// See [`Connection::call`]; [`Error::ReplyValue`] for a malformed parameter.
    pub async fn all_domain_stats(
        &self,
        doms: &[Domain],
        stats: u32,
        flags: u32,
    ) -> Result<Vec<(Domain, TypedParams)>> {
        let args = migrated_proto::ConnectGetAllDomainStatsArgs {
            doms: doms.iter().map(Domain::wire).collect(),
            stats,
            flags,
        };
        let ret = self.call::<procs::ConnectGetAllDomainStats>(&args).await?;
        ret.ret_stats
            .into_iter()
            .map(|record| {
                let params = TypedParams::from_wire(
                    record.params,
                    migrated_proto::REMOTE_CONNECT_GET_ALL_DOMAIN_STATS_MAX,
                )
                .map_err(|source| Error::ReplyValue {
                    procedure: "CONNECT_GET_ALL_DOMAIN_STATS",
                    source: Box::new(source),
                })?;
                Ok((Domain::from_wire(self.clone(), record.dom), params))
            })
            .collect()
    }

    /// `DOMAIN_LOOKUP_BY_ID` (running domains only).
    ///
    /// # Errors
    /// [`Error::Remote`] with `VIR_ERR_NO_DOMAIN` when there is none.
    pub async fn lookup_domain_by_id(&self, id: i32) -> Result<Domain> {
        let args = migrated_proto::DomainLookupByIdArgs { id };
        let ret = self.call::<procs::DomainLookupById>(&args).await?;
        Ok(Domain::from_wire(self.clone(), ret.dom))
    }

    /// `DOMAIN_LOOKUP_BY_UUID`.
    ///
    /// # Errors
    /// [`Error::Remote`] with `VIR_ERR_NO_DOMAIN` when there is none.
    pub async fn lookup_domain_by_uuid(&self, uuid: Uuid) -> Result<Domain> {
        let args = migrated_proto::DomainLookupByUuidArgs {
            uuid: *uuid.as_bytes(),
        };
        let ret = self.call::<procs::DomainLookupByUuid>(&args).await?;
        Ok(Domain::from_wire(self.clone(), ret.dom))
    }

    /// `DOMAIN_LOOKUP_BY_NAME`.
    ///
    /// # Errors
    /// [`Error::Remote`] with `VIR_ERR_NO_DOMAIN` when there is none.
    pub async fn lookup_domain_by_name(&self, name: &str) -> Result<Domain> {
        let args = migrated_proto::DomainLookupByNameArgs {
            name: name.to_owned(),
        };
        let ret = self.call::<procs::DomainLookupByName>(&args).await?;
        Ok(Domain::from_wire(self.clone(), ret.dom))
    }

    /// Resolves a user's domain argument like virsh (`virshLookupDomainBy`):
    /// a non-negative integer is tried as an id, a 36-character string as a
    /// UUID, and finally the text as a name. Earlier misses are discarded,
    /// so the error is the one of the last lookup tried.
    ///
    /// # Errors
    /// [`Error::Remote`] (usually `VIR_ERR_NO_DOMAIN`) from the last lookup.
    pub async fn lookup_domain(&self, text: &str) -> Result<Domain> {
        if let Ok(id) = text.parse::<i32>() {
            if id >= 0 {
                if let Ok(dom) = self.lookup_domain_by_id(id).await {
                    return Ok(dom);
                }
            }
        }
        if text.len() == 36 {
            if let Ok(uuid) = Uuid::parse_str(text) {
                if let Ok(dom) = self.lookup_domain_by_uuid(uuid).await {
                    return Ok(dom);
                }
            }
        }
        self.lookup_domain_by_name(text).await
    }

    /// Defines a persistent domain: `DOMAIN_DEFINE_XML` when `flags` is 0
    /// (what virsh sends), else `DOMAIN_DEFINE_XML_FLAGS`.
    ///
    /// # Errors
    /// See [`Connection::call`]; the server's XML errors arrive as [`Error::Remote`].
    pub async fn define_xml(&self, xml: &str, flags: u32) -> Result<Domain> {
        let dom = if flags == 0 {
            let args = migrated_proto::DomainDefineXmlArgs {
                xml: xml.to_owned(),
            };
            self.call::<procs::DomainDefineXml>(&args).await?.dom
        } else {
            let args = migrated_proto::DomainDefineXmlFlagsArgs {
                xml: xml.to_owned(),
                flags,
            };
            self.call::<procs::DomainDefineXmlFlags>(&args).await?.dom
        };
        Ok(Domain::from_wire(self.clone(), dom))
    }

    /// `DOMAIN_CREATE_XML`: starts a transient domain.
    ///
    /// # Errors
    /// See [`Connection::call`].
    pub async fn create_xml(&self, xml: &str, flags: u32) -> Result<Domain> {
        let args = migrated_proto::DomainCreateXmlArgs {
            xml_desc: xml.to_owned(),
            flags,
        };
        let ret = self.call::<procs::DomainCreateXml>(&args).await?;
        Ok(Domain::from_wire(self.clone(), ret.dom))
    }
}

/// One typed call on a raw RPC client (used before a [`Connection`] exists).
async fn call<P: RemoteProcedure>(rpc: &RpcClient, args: &P::Args) -> Result<P::Ret> {
    let procedure = P::PROC.name();
    let payload =
        migrated_xdr::to_bytes(args).map_err(|source| Error::Encode { procedure, source })?;
    let reply = rpc
        .call(
            migrated_proto::REMOTE_PROGRAM,
            migrated_proto::REMOTE_PROTOCOL_VERSION,
            P::PROC as i32,
            payload,
        )
        .await
        .map_err(|e| Error::from_rpc(procedure, e))?;
    migrated_xdr::from_bytes(&reply).map_err(|source| Error::Decode { procedure, source })
}

/// Picks the authentication method like libvirt's `doRemoteOpen`: none when
/// the server lists none, else the first listed, or with `auth=NAME` the
/// first listed of that kind; only "none" is implemented here.
fn check_auth(offered: &[AuthType], requested: Option<&str>) -> Result<()> {
    let Some(&first) = offered.first() else {
        return Ok(());
    };
    let chosen = match requested {
        None => first,
        Some(name) => {
            let kind = name.split('.').next().unwrap_or(name);
            let wanted = match kind.to_ascii_lowercase().as_str() {
                "none" => Some(AuthType::None),
                "sasl" => Some(AuthType::Sasl),
                "polkit" => Some(AuthType::Polkit),
                _ => None,
            };
            wanted
                .filter(|w| offered.contains(w))
                .ok_or_else(|| Error::AuthRejected {
                    requested: name.to_owned(),
                })?
        }
    };
    match chosen {
        AuthType::None => Ok(()),
        other => Err(Error::UnsupportedAuth {
            method: other as i32,
        }),
    }
}

/// SUPPORTS_FEATURE during open, where libvirt treats any error as "no".
async fn supports(rpc: &RpcClient, feature: i32) -> bool {
    let args = migrated_proto::ConnectSupportsFeatureArgs { feature };
    match call::<procs::ConnectSupportsFeature>(rpc, &args).await {
        Ok(ret) => ret.supported != 0,
        Err(e) => {
            debug!(feature, error = %e, "feature query failed, taken as unsupported");
            false
        }
    }
}

/// libvirt's `char x[N]` / `char x<N>` fields hold a NUL-terminated C string.
pub(crate) fn c_chars_to_string<C: Copy + Into<i32>>(chars: &[C]) -> String {
    let bytes: Vec<u8> = chars
        .iter()
        .map(|&c| c.into() as u8)
        .take_while(|&b| b != 0)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_offered_method_is_used_unless_the_uri_names_one() {
        assert!(check_auth(&[], None).is_ok());
        assert!(check_auth(&[], Some("sasl")).is_ok());
        assert!(check_auth(&[AuthType::None], None).is_ok());
        assert!(matches!(
            check_auth(&[AuthType::Sasl, AuthType::None], None),
            Err(Error::UnsupportedAuth { method: 1 })
        ));
        assert!(check_auth(&[AuthType::Sasl, AuthType::None], Some("none")).is_ok());
        assert!(matches!(
            check_auth(&[AuthType::None, AuthType::Polkit], Some("polkit")),
            Err(Error::UnsupportedAuth { method: 2 })
        ));
    }

    #[test]
    fn a_method_the_server_does_not_offer_is_rejected() {
        for requested in ["sasl.gssapi", "polkit", "bogus"] {
            match check_auth(&[AuthType::None], Some(requested)) {
                Err(Error::AuthRejected { requested: r }) => assert_eq!(r, requested),
                other => panic!("{requested}: {other:?}"),
            }
        }
    }

    #[test]
    fn c_strings_stop_at_the_first_nul() {
        assert_eq!(
            c_chars_to_string(&[b'a' as i8, b'b' as i8, 0, b'c' as i8]),
            "ab"
        );
        assert_eq!(c_chars_to_string::<i8>(&[]), "");
        assert_eq!(c_chars_to_string(&[b'x' as i8]), "x");
    }
}
