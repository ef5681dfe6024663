//! Peer-to-peer migration: the source daemon runs the client library's
//! sequencer itself, with a [`LocalEndpoint`] (this daemon's migration
//! [`Manager`]) as the source and a [`RemoteEndpoint`] to the destination
//! URI the client gave (libvirt-wire.md §8.3; libvirt's
//! `qemuMigrationSrcPerformPeer2Peer3`).
//!
//! ```text
//! client ──PERFORM3_PARAMS(dconnuri)──▶ source daemon ──open dconnuri (keepalive 5/5)──▶ destination
//!                                        sequencer: Begin (local) · Prepare[Tunnel]3 (remote)
//!                                                   Perform (local, direct or into the stream)
//!                                                   Finish3 (remote) · Confirm (local)
//! ```
//!
//! During Perform the source also watches its connection to the
//! destination (EOF, or the keepalive verdict): when the destination daemon
//! goes away mid-transfer the job is aborted, so the driver cancels the
//! transfer (QEMU: `migrate_cancel`) and the guest runs here again, instead
//! of sending on to a destination nobody will finish (libvirt's
//! `qemuMigrationSrcPerformPeer2Peer3` checks its dconn the same way).

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use migrated_client::endpoint::{BeginOut, FinishOut, PrepareOut};
use migrated_client::{
    sequencer, Connection, DataTarget, Endpoint, OpenFlags, Protocol, RemoteEndpoint, TunnelSink,
};
use migrated_core::domain::{DomainRef, DomainState};
use migrated_core::driver::Driver;
use migrated_core::error::{ErrorCode, ErrorDomain};
use migrated_core::migration::{Manager, MigrateRequest};
use migrated_rpc::WireError;
use tracing::Instrument;

use super::connection::feature_supported;
use crate::wire::{flatten, to_wire_error};

/// This daemon's side of a peer-to-peer migration.
pub struct LocalEndpoint {
    manager: Arc<Manager>,
    driver: Arc<dyn Driver>,
    /// The connection to the destination, watched during Perform.
    peer: Option<Connection>,
}

impl LocalEndpoint {
    /// The endpoint of `driver`'s guests, migrated by `manager`.
    pub fn new(manager: Arc<Manager>, driver: Arc<dyn Driver>) -> Self {
        Self {
            manager,
            driver,
            peer: None,
        }
    }

    /// Aborts a running Perform when `peer` (the connection to the
    /// destination) closes before it ends.
    pub fn watching(mut self, peer: Connection) -> Self {
        self.peer = Some(peer);
        self
    }

    /// Runs `perform`; if the peer connection closes first, aborts the
    /// job (the driver cancels the transfer and resumes the guest) and
    /// reports the lost destination instead of the abort.
    async fn watched<T>(
        &self,
        dom: &DomainRef,
        perform: impl Future<Output = migrated_core::Result<T>>,
    ) -> migrated_core::Result<T> {
        let Some(peer) = &self.peer else {
            return perform.await;
        };
        tokio::pin!(perform);
        let reason = tokio::select! {
            r = &mut perform => return r,
            reason = peer.closed() => reason.unwrap_or_else(|| "connection closed".into()),
        };
        tracing::warn!(dom = %dom.name, %reason, "lost the destination during Perform: cancelling the migration");
        if let Err(e) = self.manager.abort_job(dom) {
            // E.g. all data was already sent: Perform ends by itself.
            tracing::debug!(dom = %dom.name, error = %e, "could not abort the job");
        }
        match perform.await {
            Ok(v) => Ok(v),
            Err(err) => {
                tracing::debug!(dom = %dom.name, error = %err, "perform after the destination was lost");
                Err(migrated_core::Error::OperationFailed {
                    operation: "migration",
                    reason: format!(
                        "lost connection to the destination during the migration ({reason}); \
                         the migration was cancelled and the guest runs on the source"
                    ),
                })
            }
        }
    }
}

fn local<T>(r: migrated_core::Result<T>) -> migrated_client::Result<T> {
    r.map_err(migrated_client::Error::from)
}

#[async_trait]
impl Endpoint for LocalEndpoint {
    fn describe(&self) -> String {
        "local".into()
    }

    async fn supports_feature(&self, feature: i32) -> migrated_client::Result<bool> {
        Ok(feature_supported(feature))
    }

    async fn begin3(
        &self,
        _proto: Protocol,
        dom: &DomainRef,
        req: &MigrateRequest,
    ) -> migrated_client::Result<BeginOut> {
        let out = local(self.manager.begin3(dom, req.clone()).await)?;
        Ok(BeginOut {
            cookie: out.cookie,
            xml: out.xml,
        })
    }

    async fn get_state(
        &self,
        _proto: Protocol,
        dom: &DomainRef,
    ) -> migrated_client::Result<DomainState> {
        Ok(local(self.driver.get_state(dom, 0).await)?.state)
    }

    async fn perform3(
        &self,
        _proto: Protocol,
        dom: &DomainRef,
        req: &MigrateRequest,
        cookie: &[u8],
        target: DataTarget,
    ) -> migrated_client::Result<Vec<u8>> {
        let sink = match target {
            DataTarget::Tunnel(sink) => sink,
            DataTarget::Direct | DataTarget::None => {
                let perform = self.manager.perform3(dom, req.clone(), cookie, None);
                return local(self.watched(dom, perform).await);
            }
        };
        let (writer, pump) = sink.start();
        let perform = self
            .manager
            .perform3(dom, req.clone(), cookie, Some(writer));
        let performed = self.watched(dom, perform).await;
        let streamed = pump.complete(performed.is_ok()).await;
        match (performed, streamed) {
            (Ok(cookie), Ok(())) => Ok(cookie),
            (Err(err), _) => Err(err.into()),
            (Ok(_), Err(err)) => {
                // The data plane finished but the destination did not confirm
                // the stream: Perform failed, so no Confirm will come (§8.6)
                // and the guest paused here must run again now.
                tracing::warn!(error = %err, dom = %dom.name, "tunnel not confirmed, resuming the guest here");
                if let Err(e) = self.manager.confirm3(dom, req.clone(), &[], true).await {
                    tracing::error!(error = %e, dom = %dom.name, "could not resume the guest after the tunnel failed");
                }
                Err(err)
            }
        }
    }

    async fn confirm3(
        &self,
        _proto: Protocol,
        dom: &DomainRef,
        req: &MigrateRequest,
        cookie: &[u8],
        cancelled: bool,
    ) -> migrated_client::Result<()> {
        local(
            self.manager
                .confirm3(dom, req.clone(), cookie, cancelled)
                .await,
        )
    }

    async fn prepare3(
        &self,
        _proto: Protocol,
        req: &MigrateRequest,
        cookie: &[u8],
    ) -> migrated_client::Result<PrepareOut> {
        let out = local(self.manager.prepare3(req.clone(), cookie, None).await)?;
        Ok(PrepareOut {
            cookie: out.cookie,
            uri_out: out.uri_out,
        })
    }

    async fn prepare_tunnel3(
        &self,
        _proto: Protocol,
        _req: &MigrateRequest,
        _cookie: &[u8],
    ) -> migrated_client::Result<(Vec<u8>, TunnelSink)> {
        Err(migrated_core::Error::ArgumentUnsupported {
            what: "a tunnelled migration into this daemon without a connection".into(),
            driver: self.manager.driver(),
        }
        .into())
    }

    async fn finish3(
        &self,
        _proto: Protocol,
        dname: &str,
        req: &MigrateRequest,
        cookie: &[u8],
        cancelled: bool,
    ) -> migrated_client::Result<FinishOut> {
        let out = local(
            self.manager
                .finish3(dname, req.clone(), cookie, cancelled)
                .await,
        )?;
        Ok(FinishOut {
            dom: out.dom,
            cookie: out.cookie,
        })
    }
}

/// A client-library error as the `remote_error` the p2p client gets: the
/// destination's error is relayed whole, as libvirt's remote driver raises
/// it again; our own libvirt errors keep their code and domain.
pub fn client_error_to_wire(err: &migrated_client::Error) -> WireError {
    match err {
        migrated_client::Error::Local(e) => to_wire_error(e),
        migrated_client::Error::Remote { wire, .. } => (**wire).clone(),
        other => to_wire_error(&migrated_core::Error::OperationFailed {
            operation: "peer-to-peer migration",
            reason: flatten(other),
        }),
    }
}

/// libvirt's answer when a peer-to-peer source cannot open the destination
/// (`qemuMigrationSrcPerformPeer2Peer` in 9.0 passes the connection's own
/// error on): a socket that cannot connect is libvirt's RPC-layer system
/// error ("unable to connect to server at 'HOST:PORT': Connection refused");
/// any other failure is relayed as the client library reports it.
fn p2p_connect_error(err: &migrated_client::Error) -> WireError {
    match err.socket_connect_message() {
        Some(message) => {
            crate::wire::libvirt_error(ErrorCode::SystemError, ErrorDomain::Rpc, message)
        }
        None => client_error_to_wire(err),
    }
}

/// Runs a whole peer-to-peer migration of `dom` to `dconnuri` from this
/// daemon; returns when it is over (the client's PERFORM reply).
///
/// # Errors
/// The migration's error as a `remote_error` ([`client_error_to_wire`]):
/// the destination cannot be reached, lacks peer-to-peer support, or a
/// step failed (see the sequencer's failure rule).
pub async fn perform_p2p(
    manager: Arc<Manager>,
    driver: Arc<dyn Driver>,
    dom: DomainRef,
    dconnuri: &str,
    req: MigrateRequest,
) -> Result<(), WireError> {
    let span = tracing::info_span!("p2p", dom = %dom.name, dconnuri);
    // A restarted source asks this peer about a job held after perform-done.
    let state_dir = manager.state_dir().to_path_buf();
    super::migration_peers::record(&state_dir, &dom.uuid, dconnuri);
    let result = run_p2p(manager, driver, dom.clone(), dconnuri, req)
        .instrument(span)
        .await;
    super::migration_peers::forget(&state_dir, &dom.uuid);
    result
}

async fn run_p2p(
    manager: Arc<Manager>,
    driver: Arc<dyn Driver>,
    dom: DomainRef,
    dconnuri: &str,
    req: MigrateRequest,
) -> Result<(), WireError> {
    let dconn = Connection::open(dconnuri, OpenFlags::default())
        .await
        .map_err(|e| p2p_connect_error(&e))?;
    let result = async {
        let dst = RemoteEndpoint::new(dconn.clone());
        if !dst
            .supports_feature(sequencer::feature::MIGRATION_P2P)
            .await?
        {
            return Err(migrated_core::Error::OperationFailed {
                operation: "migration",
                reason: "Destination libvirt does not support peer-to-peer migration protocol"
                    .into(),
            }
            .into());
        }
        let src = LocalEndpoint::new(manager, driver).watching(dconn.clone());
        sequencer::migrate(&src, &dst, &dom, req).await
    }
    .await;
    // The outcome is decided: the caller's reply need not wait for the two
    // round trips of a polite close (UNREGISTER_CLOSE_CALLBACK, CONNECT_CLOSE).
    tokio::spawn(async move {
        if let Err(e) = dconn.close().await {
            tracing::debug!(error = %e, "closing the destination connection failed");
        }
    });
    match result {
        Ok(ddom) => {
            tracing::info!(dom = %dom.name, ddom = %ddom.name, "peer-to-peer migration completed");
            Ok(())
        }
        Err(err) => Err(client_error_to_wire(&err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// libvirt's remote driver raises a peer's error again with all its
    /// fields; so does a peer-to-peer source.
    #[test]
    fn a_destination_error_is_relayed_whole() {
        let peer = WireError {
            str1: Some("virDomainMigratePrepare3Params".into()),
            str2: Some("flags".into()),
            int1: 0,
            int2: 0,
            ..WireError::new(8, 10, "unsupported flags (0x1) in function x")
        };
        let err = migrated_client::Error::from_wire("DOMAIN_MIGRATE_PREPARE3_PARAMS", peer.clone());
        assert_eq!(client_error_to_wire(&err), peer);
    }

    #[test]
    fn an_unreachable_destination_is_libvirts_rpc_system_error() {
        let err = migrated_client::Error::Connect {
            address: "tcp://127.0.0.1:1".into(),
            source: Box::new(migrated_rpc::Error::Io(std::io::Error::from_raw_os_error(
                111,
            ))),
        };
        let wire = p2p_connect_error(&err);
        assert_eq!((wire.code, wire.domain), (38, 7));
        assert_eq!(
            wire.message.as_deref(),
            Some("unable to connect to server at '127.0.0.1:1': Connection refused")
        );
    }

    #[test]
    fn other_open_failures_are_relayed() {
        let err = migrated_client::Error::Local(Box::new(migrated_core::Error::internal("x")));
        let wire = p2p_connect_error(&err);
        assert_eq!((wire.code, wire.domain), (1, 20));
        assert_eq!(wire.message.as_deref(), Some("internal error: x"));
    }
}
