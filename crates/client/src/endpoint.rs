//! [`Endpoint`]: one side of a migration as the [sequencer](crate::sequencer)
//! sees it, and [`RemoteEndpoint`], the side behind a [`Connection`].
//!
//! A client-managed migration (`virDomainMigrate3`) runs the sequencer over
//! two `RemoteEndpoint`s; the peer-to-peer source daemon runs the very same
//! sequencer over its own local endpoint (a wrapper of its migration
//! manager) and a `RemoteEndpoint` to the destination.
//!
//! `RemoteEndpoint` speaks whichever generation of migration calls the two
//! peers share ([`Protocol`], negotiated by the sequencer from
//! `SUPPORTS_FEATURE`): the *_PARAMS calls (302–307), the v3 calls
//! (213–218) or the v2 calls (108/148/62/109, no Begin/Confirm on the wire:
//! Begin becomes `GET_XML_DESC`, Confirm nothing).

use async_trait::async_trait;
use migrated_core::domain::{DomainRef, DomainState};
use migrated_core::migration::MigrateRequest;
use migrated_core::typed_params::migrate_param;
use migrated_proto::{procs, NonnullDomain};

use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::migrate_tunnel::TunnelSink;

/// `VIR_DOMAIN_XML_MIGRATABLE`.
const XML_MIGRATABLE: u32 = 8;

/// The generation of migration calls two endpoints share, oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// Prepare2 / Perform / Finish2 (features 3/3).
    V2,
    /// Begin3 … Confirm3 with positional arguments (features 6/6).
    V3,
    /// Begin3Params … Confirm3Params (features 13/13).
    V3Params,
}

/// What Begin answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BeginOut {
    /// Cookie for Prepare.
    pub cookie: Vec<u8>,
    /// The definition the destination must run.
    pub xml: String,
}

/// What Prepare answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrepareOut {
    /// Cookie for Perform.
    pub cookie: Vec<u8>,
    /// Where the source must send the data, when the destination chose it.
    pub uri_out: Option<String>,
}

/// What Finish answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishOut {
    /// The guest on the destination.
    pub dom: DomainRef,
    /// Cookie for Confirm.
    pub cookie: Vec<u8>,
}

/// Where Perform sends the guest's data.
#[derive(Debug)]
pub enum DataTarget {
    /// To the data URI in the request (`migrate_uri`, Prepare's `uri_out`).
    Direct,
    /// Into the stream the destination opened in PrepareTunnel3 (TUNNELLED,
    /// only a local source can write it).
    Tunnel(TunnelSink),
    /// OFFLINE: nothing is sent (the sequencer skips Perform).
    None,
}

/// One side of a migration. Source-side steps: [`begin3`](Endpoint::begin3),
/// [`get_state`](Endpoint::get_state), [`perform3`](Endpoint::perform3),
/// [`confirm3`](Endpoint::confirm3); destination-side steps:
/// [`prepare3`](Endpoint::prepare3), [`prepare_tunnel3`](Endpoint::prepare_tunnel3),
/// [`finish3`](Endpoint::finish3).
///
/// # Errors
/// Every method returns the step's failure as [`Error`]: a remote endpoint
/// its peer's libvirt error ([`Error::Remote`]) or transport failure, a local
/// one [`Error::Local`].
#[async_trait]
pub trait Endpoint: Send + Sync {
    /// A short description for logs (the URI or "local").
    fn describe(&self) -> String;

    /// `CONNECT_SUPPORTS_FEATURE`.
    async fn supports_feature(&self, feature: i32) -> Result<bool>;

    /// Source, Begin: the destination definition and the first cookie.
    async fn begin3(
        &self,
        proto: Protocol,
        dom: &DomainRef,
        req: &MigrateRequest,
    ) -> Result<BeginOut>;

    /// Source: the guest's state (paused guests stay paused on the destination).
    async fn get_state(&self, proto: Protocol, dom: &DomainRef) -> Result<DomainState>;

    /// Source, Perform: sends the guest to `target`; answers the cookie for Finish.
    async fn perform3(
        &self,
        proto: Protocol,
        dom: &DomainRef,
        req: &MigrateRequest,
        cookie: &[u8],
        target: DataTarget,
    ) -> Result<Vec<u8>>;

    /// Source, Confirm: `cancelled` = the destination does not run the guest.
    async fn confirm3(
        &self,
        proto: Protocol,
        dom: &DomainRef,
        req: &MigrateRequest,
        cookie: &[u8],
        cancelled: bool,
    ) -> Result<()>;

    /// Destination, Prepare (direct data connection).
    async fn prepare3(
        &self,
        proto: Protocol,
        req: &MigrateRequest,
        cookie: &[u8],
    ) -> Result<PrepareOut>;

    /// Destination, PrepareTunnel: answers the cookie and the stream Perform
    /// writes the data into.
    async fn prepare_tunnel3(
        &self,
        proto: Protocol,
        req: &MigrateRequest,
        cookie: &[u8],
    ) -> Result<(Vec<u8>, TunnelSink)>;

    /// Destination, Finish: `dname` is the guest's name there.
    async fn finish3(
        &self,
        proto: Protocol,
        dname: &str,
        req: &MigrateRequest,
        cookie: &[u8],
        cancelled: bool,
    ) -> Result<FinishOut>;
}

/// An [`Endpoint`] reached through a [`Connection`].
#[derive(Debug, Clone)]
pub struct RemoteEndpoint {
    conn: Connection,
}

impl RemoteEndpoint {
    /// The endpoint behind `conn`.
    pub fn new(conn: Connection) -> Self {
        Self { conn }
    }

    /// The connection.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

fn wire_dom(dom: &DomainRef) -> NonnullDomain {
    dom.clone().into()
}

fn flags32(req: &MigrateRequest) -> Result<u32> {
    u32::try_from(req.flags.bits()).map_err(|_| {
        Error::from(migrated_core::Error::UnknownFlags {
            operation: "virDomainMigrate3",
            unknown: req.flags.bits() & !u64::from(u32::MAX),
        })
    })
}

fn resource(req: &MigrateRequest) -> u64 {
    req.bandwidth_mib_s.unwrap_or(0)
}

fn params(req: &MigrateRequest) -> Vec<migrated_proto::TypedParam> {
    req.to_params().into_wire()
}

/// The positional (v3 and v2) calls can carry only these parameters
/// (libvirt-wire.md §8.2, "Without params support").
pub(crate) fn legacy_expressible(req: &MigrateRequest) -> Result<()> {
    const EXPRESSIBLE: &[&str] = &[
        migrate_param::URI,
        migrate_param::DEST_NAME,
        migrate_param::DEST_XML,
        migrate_param::BANDWIDTH,
    ];
    match req
        .param_keys()
        .into_iter()
        .find(|k| !EXPRESSIBLE.contains(&k.as_str()))
    {
        Some(key) => Err(migrated_core::Error::ArgumentUnsupported {
            what: format!("migration parameter '{key}' without *_PARAMS migration support"),
            driver: "remote",
        }
        .into()),
        None => Ok(()),
    }
}

fn state_from_code(code: i32) -> Result<DomainState> {
    Ok(match code {
        0 => DomainState::NoState,
        1 => DomainState::Running,
        2 => DomainState::Blocked,
        3 => DomainState::Paused,
        4 => DomainState::Shutdown,
        5 => DomainState::Shutoff,
        6 => DomainState::Crashed,
        7 => DomainState::PmSuspended,
        _ => {
            return Err(Error::InvalidReply {
                procedure: "DOMAIN_GET_STATE",
                reason: format!("unknown domain state {code}"),
            })
        }
    })
}

#[async_trait]
impl Endpoint for RemoteEndpoint {
    fn describe(&self) -> String {
        self.conn.uri().to_string()
    }

    async fn supports_feature(&self, feature: i32) -> Result<bool> {
        self.conn.supports_feature(feature).await
    }

    async fn begin3(
        &self,
        proto: Protocol,
        dom: &DomainRef,
        req: &MigrateRequest,
    ) -> Result<BeginOut> {
        match proto {
            Protocol::V3Params => {
                let args = migrated_proto::DomainMigrateBegin3ParamsArgs {
                    dom: wire_dom(dom),
                    params: params(req),
                    flags: flags32(req)?,
                };
                let ret = self
                    .conn
                    .call::<procs::DomainMigrateBegin3Params>(&args)
                    .await?;
                Ok(BeginOut {
                    cookie: ret.cookie_out,
                    xml: ret.xml,
                })
            }
            Protocol::V3 => {
                let args = migrated_proto::DomainMigrateBegin3Args {
                    dom: wire_dom(dom),
                    xmlin: req.dest_xml.clone(),
                    flags: req.flags.bits(),
                    dname: req.dname.clone(),
                    resource: resource(req),
                };
                let ret = self.conn.call::<procs::DomainMigrateBegin3>(&args).await?;
                Ok(BeginOut {
                    cookie: ret.cookie_out,
                    xml: ret.xml,
                })
            }
            Protocol::V2 => {
                let args = migrated_proto::DomainGetXmlDescArgs {
                    dom: wire_dom(dom),
                    flags: XML_MIGRATABLE,
                };
                let ret = self.conn.call::<procs::DomainGetXmlDesc>(&args).await?;
                Ok(BeginOut {
                    cookie: Vec::new(),
                    xml: ret.xml,
                })
            }
        }
    }

    async fn get_state(&self, proto: Protocol, dom: &DomainRef) -> Result<DomainState> {
        // As virDomainMigrate3: GET_STATE on the params path, GET_INFO before.
        let code = if proto == Protocol::V3Params {
            let args = migrated_proto::DomainGetStateArgs {
                dom: wire_dom(dom),
                flags: 0,
            };
            self.conn.call::<procs::DomainGetState>(&args).await?.state
        } else {
            let args = migrated_proto::DomainGetInfoArgs { dom: wire_dom(dom) };
            i32::from(self.conn.call::<procs::DomainGetInfo>(&args).await?.state)
        };
        state_from_code(code)
    }

    async fn perform3(
        &self,
        proto: Protocol,
        dom: &DomainRef,
        req: &MigrateRequest,
        cookie: &[u8],
        target: DataTarget,
    ) -> Result<Vec<u8>> {
        if let DataTarget::Tunnel(_) = target {
            return Err(migrated_core::Error::ArgumentUnsupported {
                what: "a tunnelled migration driven by a client (use PEER2PEER)".into(),
                driver: "remote",
            }
            .into());
        }
        match proto {
            Protocol::V3Params => {
                let args = migrated_proto::DomainMigratePerform3ParamsArgs {
                    dom: wire_dom(dom),
                    dconnuri: None,
                    params: params(req),
                    cookie_in: cookie.to_vec(),
                    flags: flags32(req)?,
                };
                Ok(self
                    .conn
                    .call::<procs::DomainMigratePerform3Params>(&args)
                    .await?
                    .cookie_out)
            }
            Protocol::V3 => {
                let args = migrated_proto::DomainMigratePerform3Args {
                    dom: wire_dom(dom),
                    xmlin: None,
                    cookie_in: cookie.to_vec(),
                    dconnuri: None,
                    uri: req.uri.clone(),
                    flags: req.flags.bits(),
                    dname: req.dname.clone(),
                    resource: resource(req),
                };
                Ok(self
                    .conn
                    .call::<procs::DomainMigratePerform3>(&args)
                    .await?
                    .cookie_out)
            }
            Protocol::V2 => {
                let args = migrated_proto::DomainMigratePerformArgs {
                    dom: wire_dom(dom),
                    cookie: cookie.to_vec(),
                    uri: req.uri.clone().unwrap_or_default(),
                    flags: req.flags.bits(),
                    dname: req.dname.clone(),
                    resource: resource(req),
                };
                self.conn.call::<procs::DomainMigratePerform>(&args).await?;
                Ok(Vec::new())
            }
        }
    }

    async fn confirm3(
        &self,
        proto: Protocol,
        dom: &DomainRef,
        req: &MigrateRequest,
        cookie: &[u8],
        cancelled: bool,
    ) -> Result<()> {
        match proto {
            Protocol::V3Params => {
                let args = migrated_proto::DomainMigrateConfirm3ParamsArgs {
                    dom: wire_dom(dom),
                    params: params(req),
                    cookie_in: cookie.to_vec(),
                    flags: flags32(req)?,
                    cancelled: i32::from(cancelled),
                };
                self.conn
                    .call::<procs::DomainMigrateConfirm3Params>(&args)
                    .await
            }
            Protocol::V3 => {
                let args = migrated_proto::DomainMigrateConfirm3Args {
                    dom: wire_dom(dom),
                    cookie_in: cookie.to_vec(),
                    flags: req.flags.bits(),
                    cancelled: i32::from(cancelled),
                };
                self.conn.call::<procs::DomainMigrateConfirm3>(&args).await
            }
            // v2 has no confirm step: the source finished in Perform.
            Protocol::V2 => Ok(()),
        }
    }

    async fn prepare3(
        &self,
        proto: Protocol,
        req: &MigrateRequest,
        cookie: &[u8],
    ) -> Result<PrepareOut> {
        match proto {
            Protocol::V3Params => {
                let args = migrated_proto::DomainMigratePrepare3ParamsArgs {
                    params: params(req),
                    cookie_in: cookie.to_vec(),
                    flags: flags32(req)?,
                };
                let ret = self
                    .conn
                    .call::<procs::DomainMigratePrepare3Params>(&args)
                    .await?;
                Ok(PrepareOut {
                    cookie: ret.cookie_out,
                    uri_out: ret.uri_out,
                })
            }
            Protocol::V3 => {
                let args = migrated_proto::DomainMigratePrepare3Args {
                    cookie_in: cookie.to_vec(),
                    uri_in: req.uri.clone(),
                    flags: req.flags.bits(),
                    dname: req.dname.clone(),
                    resource: resource(req),
                    dom_xml: req.dest_xml.clone().unwrap_or_default(),
                };
                let ret = self
                    .conn
                    .call::<procs::DomainMigratePrepare3>(&args)
                    .await?;
                Ok(PrepareOut {
                    cookie: ret.cookie_out,
                    uri_out: ret.uri_out,
                })
            }
            Protocol::V2 => {
                let args = migrated_proto::DomainMigratePrepare2Args {
                    uri_in: req.uri.clone(),
                    flags: req.flags.bits(),
                    dname: req.dname.clone(),
                    resource: resource(req),
                    dom_xml: req.dest_xml.clone().unwrap_or_default(),
                };
                let ret = self
                    .conn
                    .call::<procs::DomainMigratePrepare2>(&args)
                    .await?;
                Ok(PrepareOut {
                    cookie: ret.cookie,
                    uri_out: ret.uri_out,
                })
            }
        }
    }

    async fn prepare_tunnel3(
        &self,
        proto: Protocol,
        req: &MigrateRequest,
        cookie: &[u8],
    ) -> Result<(Vec<u8>, TunnelSink)> {
        match proto {
            Protocol::V3Params => {
                let args = migrated_proto::DomainMigratePrepareTunnel3ParamsArgs {
                    params: params(req),
                    cookie_in: cookie.to_vec(),
                    flags: flags32(req)?,
                };
                let (ret, stream) = self
                    .conn
                    .call_with_stream::<procs::DomainMigratePrepareTunnel3Params>(&args)
                    .await?;
                Ok((ret.cookie_out, TunnelSink::new(stream)))
            }
            Protocol::V3 => {
                let args = migrated_proto::DomainMigratePrepareTunnel3Args {
                    cookie_in: cookie.to_vec(),
                    flags: req.flags.bits(),
                    dname: req.dname.clone(),
                    resource: resource(req),
                    dom_xml: req.dest_xml.clone().unwrap_or_default(),
                };
                let (ret, stream) = self
                    .conn
                    .call_with_stream::<procs::DomainMigratePrepareTunnel3>(&args)
                    .await?;
                Ok((ret.cookie_out, TunnelSink::new(stream)))
            }
            Protocol::V2 => {
                let args = migrated_proto::DomainMigratePrepareTunnelArgs {
                    flags: req.flags.bits(),
                    dname: req.dname.clone(),
                    resource: resource(req),
                    dom_xml: req.dest_xml.clone().unwrap_or_default(),
                };
                let ((), stream) = self
                    .conn
                    .call_with_stream::<procs::DomainMigratePrepareTunnel>(&args)
                    .await?;
                Ok((Vec::new(), TunnelSink::new(stream)))
            }
        }
    }

    async fn finish3(
        &self,
        proto: Protocol,
        dname: &str,
        req: &MigrateRequest,
        cookie: &[u8],
        cancelled: bool,
    ) -> Result<FinishOut> {
        match proto {
            Protocol::V3Params => {
                let mut req = req.clone();
                req.dname.get_or_insert_with(|| dname.to_owned());
                let args = migrated_proto::DomainMigrateFinish3ParamsArgs {
                    params: params(&req),
                    cookie_in: cookie.to_vec(),
                    flags: flags32(&req)?,
                    cancelled: i32::from(cancelled),
                };
                let ret = self
                    .conn
                    .call::<procs::DomainMigrateFinish3Params>(&args)
                    .await?;
                Ok(FinishOut {
                    dom: ret.dom.into(),
                    cookie: ret.cookie_out,
                })
            }
            Protocol::V3 => {
                let args = migrated_proto::DomainMigrateFinish3Args {
                    dname: dname.to_owned(),
                    cookie_in: cookie.to_vec(),
                    dconnuri: None,
                    uri: req.uri.clone(),
                    flags: req.flags.bits(),
                    cancelled: i32::from(cancelled),
                };
                let ret = self.conn.call::<procs::DomainMigrateFinish3>(&args).await?;
                Ok(FinishOut {
                    dom: ret.dom.into(),
                    cookie: ret.cookie_out,
                })
            }
            Protocol::V2 => {
                let args = migrated_proto::DomainMigrateFinish2Args {
                    dname: dname.to_owned(),
                    cookie: cookie.to_vec(),
                    uri: req.uri.clone().unwrap_or_default(),
                    flags: req.flags.bits(),
                    retcode: i32::from(cancelled),
                };
                let ret = self.conn.call::<procs::DomainMigrateFinish2>(&args).await?;
                Ok(FinishOut {
                    dom: ret.ddom.into(),
                    cookie: Vec::new(),
                })
            }
        }
    }
}
