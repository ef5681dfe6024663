//! The older wire generations against real daemons: the sequencer over
//! remote endpoints that hide the *_PARAMS feature (v3 calls 213–218) or
//! also v3 (v2 calls 108/62/109), so the daemon's legacy handlers are driven
//! exactly as an old client would.

mod migrate_support;

use async_trait::async_trait;
use migrate_support::{define, exactly_one_copy, state, Hosts};
use migrated_client::endpoint::{BeginOut, FinishOut, PrepareOut};
use migrated_client::sequencer::{self, feature};
use migrated_client::{
    Connection, DataTarget, Endpoint, OpenFlags, Protocol, RemoteEndpoint, TunnelSink,
};
use migrated_core::domain::{DomainRef, DomainState};
use migrated_core::flags::MigrateFlags;
use migrated_core::migration::MigrateRequest;

/// A remote endpoint that denies some features.
struct Old {
    inner: RemoteEndpoint,
    hidden: &'static [i32],
}

#[async_trait]
impl Endpoint for Old {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    async fn supports_feature(&self, f: i32) -> migrated_client::Result<bool> {
        if self.hidden.contains(&f) {
            return Ok(false);
        }
        self.inner.supports_feature(f).await
    }
    async fn begin3(
        &self,
        p: Protocol,
        d: &DomainRef,
        r: &MigrateRequest,
    ) -> migrated_client::Result<BeginOut> {
        self.inner.begin3(p, d, r).await
    }
    async fn get_state(&self, p: Protocol, d: &DomainRef) -> migrated_client::Result<DomainState> {
        self.inner.get_state(p, d).await
    }
    async fn perform3(
        &self,
        p: Protocol,
        d: &DomainRef,
        r: &MigrateRequest,
        c: &[u8],
        t: DataTarget,
    ) -> migrated_client::Result<Vec<u8>> {
        self.inner.perform3(p, d, r, c, t).await
    }
    async fn confirm3(
        &self,
        p: Protocol,
        d: &DomainRef,
        r: &MigrateRequest,
        c: &[u8],
        x: bool,
    ) -> migrated_client::Result<()> {
        self.inner.confirm3(p, d, r, c, x).await
    }
    async fn prepare3(
        &self,
        p: Protocol,
        r: &MigrateRequest,
        c: &[u8],
    ) -> migrated_client::Result<PrepareOut> {
        self.inner.prepare3(p, r, c).await
    }
    async fn prepare_tunnel3(
        &self,
        p: Protocol,
        r: &MigrateRequest,
        c: &[u8],
    ) -> migrated_client::Result<(Vec<u8>, TunnelSink)> {
        self.inner.prepare_tunnel3(p, r, c).await
    }
    async fn finish3(
        &self,
        p: Protocol,
        n: &str,
        r: &MigrateRequest,
        c: &[u8],
        x: bool,
    ) -> migrated_client::Result<FinishOut> {
        self.inner.finish3(p, n, r, c, x).await
    }
}

fn with_hidden(hidden: &'static [i32]) {
    let hosts = Hosts::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = (hosts.a_uri(), hosts.b_uri());
    let name = "legacy-g";
    define(&a, dir.path(), name, "", true);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let ca = Connection::open(&a, OpenFlags::default())
            .await
            .expect("open a");
        let cb = Connection::open(&b, OpenFlags::default())
            .await
            .expect("open b");
        let dom = ca.lookup_domain(name).await.expect("guest");
        let (src, dst) = (
            Old {
                inner: RemoteEndpoint::new(ca.clone()),
                hidden,
            },
            Old {
                inner: RemoteEndpoint::new(cb.clone()),
                hidden,
            },
        );
        let req = MigrateRequest {
            flags: MigrateFlags::LIVE,
            dname: Some("legacy-new".into()),
            bandwidth_mib_s: Some(500),
            ..MigrateRequest::default()
        };
        let ddom = sequencer::migrate(&src, &dst, dom.reference(), req)
            .await
            .unwrap_or_else(|e| panic!("legacy migration failed: {e}\n{}", hosts.logs()));
        assert_eq!(ddom.name, "legacy-new");
        ca.close().await.ok();
        cb.close().await.ok();
    });
    assert_eq!(state(&b, "legacy-new").as_deref(), Some("running"));
    assert_eq!(state(&a, name).as_deref(), Some("shut off"));
    exactly_one_copy(&hosts, "legacy-new");
}

#[test]
fn v3_without_params_migrates() {
    with_hidden(&[feature::MIGRATION_PARAMS]);
}

#[test]
fn v2_migrates() {
    with_hidden(&[feature::MIGRATION_PARAMS, feature::MIGRATION_V3]);
}
