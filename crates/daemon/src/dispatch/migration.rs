//! Migration procedures: every wire variant (the *_PARAMS calls 302–307, the
//! v3 calls 213–218, v2 108/148/62/109, v1 61/63) is turned into one
//! [`MigrateRequest`] here, at the dispatch edge, and handed to the opened
//! driver's migration [`Manager`] — one code path per step.
//!
//! | step | *_PARAMS | v3 | v2 / v1 | manager |
//! |---|---|---|---|---|
//! | Begin | 302 | 213 | — | `begin3` |
//! | Prepare | 303 | 214 | 108 / 61 | `prepare3` |
//! | PrepareTunnel | 304 | 215 | 148 | `prepare3` with the call's stream ([`migration_tunnel`](super::migration_tunnel)) |
//! | Perform | 305 | 216 | 62 | `perform3` (v2: `perform2`); PEER2PEER: [`perform_p2p`] |
//! | Finish | 306 | 217 | 109 / 63 | `finish3` |
//! | Confirm | 307 | 218 | — | `confirm3` |
//!
//! Job queries and tuning live in [`migration_jobs`](super::migration_jobs).

use std::sync::Arc;

use migrated_core::driver::DomainRef;
use migrated_core::flags::MigrateFlags;
use migrated_core::job::{DestinationPhase, Phase, SourcePhase, JOB_WAIT_TIME};
use migrated_core::migration::{DataUri, Manager, MigrateRequest};
use migrated_core::typed_params::TypedParams;
use migrated_proto::{self as proto, Call, NonnullDomain, TypedParam};
use migrated_rpc::{CallContext, WireError};

use super::from_wire_dom;
use super::migration_local::perform_p2p;
use super::to_wire_dom;
use crate::config::Config;
use crate::handler::{Handler, Session};
use crate::wire::to_wire_error;

type Result<T> = std::result::Result<T, WireError>;

fn err(e: migrated_core::Error) -> WireError {
    to_wire_error(&e)
}

/// Builds the test driver's migration manager for this daemon's
/// configuration and, inside a runtime, starts recovering journalled jobs.
///
/// # Errors
/// The manager's error when its journal directory cannot be created.
pub fn test_driver_manager(
    config: &Config,
    driver: migrated_driver_test::TestDriver,
) -> migrated_core::Result<Arc<Manager>> {
    let mc = crate::drivers::manager_config(config, &config.state_dir)?;
    let backend = migrated_driver_test::migration::TestBackend::new(driver);
    let manager = Arc::new(Manager::new(mc, Arc::new(backend))?);
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        let m = manager.clone();
        rt.spawn(async move {
            match m.recover().await {
                Ok(done) => {
                    for r in done {
                        tracing::warn!(dom = %r.entry.name, job_id = %r.entry.job_id, action = ?r.action, "migration job recovered");
                    }
                    super::migration_peers::settle_held(m).await;
                }
                Err(e) => tracing::error!(error = %e, "migration recovery failed"),
            }
        });
    }
    Ok(manager)
}

/// The migration manager of the connection's driver.
///
/// # Errors
/// `VIR_ERR_NO_SUPPORT` when the driver cannot migrate; "not open" before
/// CONNECT_OPEN.
pub fn manager(handler: &Handler, session: &Session) -> Result<Arc<Manager>> {
    let open = session.driver()?;
    handler.drivers().manager(open.uri).ok_or_else(|| {
        err(migrated_core::Error::NoSupport {
            operation: "virDomainMigrate3",
            driver: open.driver.support().driver,
        })
    })
}

/// Change protection, as libvirt's job masks: a state-changing domain call
/// on a guest a migration job owns waits for the job to end
/// ([`JOB_WAIT_TIME`] at most, then `VIR_ERR_OPERATION_TIMEOUT` naming the
/// call that holds the job) and then runs on whatever the job left. SUSPEND
/// of a guest being sent is allowed, as libvirt's outgoing jobs allow it:
/// during Perform it asks the data plane to pause the guest so the
/// migration converges (`virsh migrate --timeout-suspend`; answers `true`,
/// the call is handled), in the other source phases it goes to the driver.
/// DESTROY (and UNDEFINE of a held guest) were settled before, by
/// [`super::migration_jobs::settle_held_by_operator`]; the other calls on a
/// held guest (its source job kept after a restart until someone settles
/// it) are refused at once with `VIR_ERR_OPERATION_INVALID`.
///
/// # Errors
/// The timeout; the refusal on a held guest.
pub async fn guard(handler: &Handler, session: &Session, call: &Call) -> Result<bool> {
    let dom = match call {
        Call::DomainDestroy(a) => &a.dom,
        Call::DomainDestroyFlags(a) => &a.dom,
        Call::DomainSuspend(a) => &a.dom,
        Call::DomainResume(a) => &a.dom,
        Call::DomainShutdown(a) => &a.dom,
        Call::DomainShutdownFlags(a) => &a.dom,
        Call::DomainReset(a) => &a.dom,
        Call::DomainReboot(a) => &a.dom,
        Call::DomainInjectNmi(a) => &a.dom,
        Call::DomainSendKey(a) => &a.dom,
        Call::DomainUndefine(a) => &a.dom,
        Call::DomainUndefineFlags(a) => &a.dom,
        Call::DomainCreate(a) => &a.dom,
        Call::DomainCreateWithFlags(a) => &a.dom,
        Call::DomainSetAutostart(a) => &a.dom,
        Call::DomainMigrateSetCompressionCache(a) => &a.dom,
        Call::DomainManagedSave(a) => &a.dom,
        Call::DomainCoreDump(a) => &a.dom,
        Call::DomainCoreDumpWithFormat(a) => &a.dom,
        Call::DomainManagedSaveRemove(a) => &a.dom,
        Call::DomainManagedSaveDefineXml(a) => &a.dom,
        Call::DomainSetMemory(a) => &a.dom,
        Call::DomainSetMaxMemory(a) => &a.dom,
        Call::DomainSetMemoryFlags(a) => &a.dom,
        Call::DomainSetMemoryStatsPeriod(a) => &a.dom,
        Call::DomainSetMetadata(a) => &a.dom,
        Call::DomainSetVcpus(a) => &a.dom,
        Call::DomainSetVcpusFlags(a) => &a.dom,
        Call::DomainRename(a) => &a.dom,
        Call::DomainAttachDevice(a) => &a.dom,
        Call::DomainAttachDeviceFlags(a) => &a.dom,
        Call::DomainDetachDevice(a) => &a.dom,
        Call::DomainDetachDeviceFlags(a) => &a.dom,
        Call::DomainUpdateDeviceFlags(a) => &a.dom,
        _ => return Ok(false),
    };
    let Ok(open) = session.driver() else {
        return Ok(false);
    };
    let Some(manager) = handler.drivers().manager(open.uri) else {
        return Ok(false);
    };
    let dom = from_wire_dom(dom);
    let Some(job) = manager.registry().get(&dom.uuid) else {
        return Ok(false);
    };
    if let (Call::DomainSuspend(_), Phase::Source(phase)) = (call, job.phase()) {
        if phase == SourcePhase::Perform3 {
            tracing::info!(dom = %dom.name, "suspend during migration: pausing to converge");
            job.request_pause();
            return Ok(true);
        }
        return Ok(false);
    }
    drop(job);
    if manager.held().iter().any(|e| e.uuid == dom.uuid) {
        // A held job ends only when the operator (or the peer) settles it:
        // nothing to wait for, refused at once as "being migrated".
        manager.registry().guard(&dom).map_err(err)?;
    }
    tracing::info!(dom = %dom.name, "call waits for the migration job to end");
    manager
        .registry()
        .wait_unlocked(&dom.uuid, JOB_WAIT_TIME)
        .await
        .map_err(err)?;
    Ok(false)
}

fn params_request(params: Vec<TypedParam>, flags: u64) -> Result<MigrateRequest> {
    let params =
        TypedParams::from_wire(params, proto::REMOTE_DOMAIN_MIGRATE_PARAM_LIST_MAX).map_err(err)?;
    MigrateRequest::from_params(&params, flags).map_err(err)
}

/// Prepare's `uri_out` as stock clients need it: `virDomainMigrateVersion3Full`
/// (and our sequencer, which follows it) checks for a data URI *before*
/// skipping Perform for OFFLINE (libvirt-wire.md §8.2 step 4), so an offline
/// Prepare without the caller's `migrate_uri` still names one. libvirt's qemu
/// driver does the same (`qemuMigrationDstPrepareDirect` answers
/// `tcp:<hostname>:<port>` whatever the flags); ours names port 0, as no
/// listener is opened and no data ever goes there.
fn data_uri(
    handler: &Handler,
    req_offline_without_uri: bool,
    uri_out: Option<String>,
) -> Option<String> {
    match uri_out {
        Some(uri) => Some(uri),
        None if req_offline_without_uri => Some(DataUri::format_libvirt(handler.hostname(), 0)),
        None => None,
    }
}

/// libvirt kills an incoming guest whose client (or p2p source) went away
/// before Finish (the destination's connection close callback); so do we:
/// once the connection that prepared it closes, a job still in Prepare3 is
/// finished as cancelled, leaving nothing behind. The watcher ends with the
/// job too: a connection that prepares migration after migration must not
/// collect one parked task per job (the soak's memory growth).
fn cancel_on_disconnect(
    ctx: &CallContext,
    manager: Arc<Manager>,
    cookie: &[u8],
    req: MigrateRequest,
) {
    let Ok(Some(cookie)) = migrated_core::cookie::Cookie::decode(cookie) else {
        return;
    };
    let (uuid, job_id) = (cookie.uuid, cookie.job_id);
    let Some(job) = manager
        .registry()
        .get(&uuid)
        .filter(|job| job.job_id() == job_id)
    else {
        // Already finished (or replaced): nothing to cancel.
        return;
    };
    let handle = ctx.handle.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = handle.closed() => {}
            _ = job.ended() => return,
        }
        drop(job);
        let Some(job) = manager.registry().get(&uuid) else {
            return;
        };
        let waiting = matches!(
            job.phase(),
            Phase::Destination(DestinationPhase::Prepare3 { .. })
        );
        if job.job_id() != job_id || !waiting {
            return;
        }
        let dname = job.domain().name;
        tracing::warn!(%job_id, dom = %dname, "connection closed before Finish: cancelling the incoming migration");
        match manager.finish3(&dname, req, &[], true).await {
            Ok(_) | Err(migrated_core::Error::MigrateFinishOk) => {}
            Err(e) => {
                tracing::warn!(%job_id, error = %e, "cancelling the incoming migration failed")
            }
        }
    });
}

fn offline_without_uri(req: &MigrateRequest) -> bool {
    req.is_offline() && req.uri.is_none()
}

fn ret_dom(dom: &DomainRef) -> NonnullDomain {
    to_wire_dom(dom)
}

/// BEGIN3_PARAMS (302).
///
/// # Errors
/// The request checks' and the manager's errors.
pub async fn begin3_params(
    handler: &Handler,
    session: &Session,
    a: proto::DomainMigrateBegin3ParamsArgs,
) -> Result<proto::DomainMigrateBegin3ParamsRet> {
    let req = params_request(a.params, u64::from(a.flags))?;
    let dom = from_wire_dom(&a.dom);
    refuse_autodestroy(handler, session, &dom, req.flags).await?;
    let d = dom.clone();
    let out = source_detached(
        handler,
        session,
        dom,
        |m| async move { m.begin3(&d, req).await },
    )
    .await?;
    Ok(proto::DomainMigrateBegin3ParamsRet {
        cookie_out: out.cookie,
        xml: out.xml,
    })
}

/// BEGIN3 (213).
///
/// # Errors
/// As [`begin3_params`].
pub async fn begin3(
    handler: &Handler,
    session: &Session,
    a: proto::DomainMigrateBegin3Args,
) -> Result<proto::DomainMigrateBegin3Ret> {
    let req = MigrateRequest::from_legacy(
        a.xmlin.as_deref(),
        a.dname.as_deref(),
        None,
        a.resource,
        a.flags,
    );
    let dom = from_wire_dom(&a.dom);
    refuse_autodestroy(handler, session, &dom, req.flags).await?;
    let d = dom.clone();
    let out = source_detached(
        handler,
        session,
        dom,
        |m| async move { m.begin3(&d, req).await },
    )
    .await?;
    Ok(proto::DomainMigrateBegin3Ret {
        cookie_out: out.cookie,
        xml: out.xml,
    })
}

/// PREPARE3_PARAMS (303).
///
/// # Errors
/// As [`begin3_params`]; cookie errors (size, garbage, same host).
pub async fn prepare3_params(
    handler: &Handler,
    session: &Session,
    ctx: &CallContext,
    a: proto::DomainMigratePrepare3ParamsArgs,
) -> Result<proto::DomainMigratePrepare3ParamsRet> {
    let req = params_request(a.params, u64::from(a.flags))?;
    let (cookie_out, uri_out) = prepare_direct(handler, session, ctx, req, &a.cookie_in).await?;
    Ok(proto::DomainMigratePrepare3ParamsRet {
        cookie_out,
        uri_out,
    })
}

/// PREPARE3 (214).
///
/// # Errors
/// As [`prepare3_params`].
pub async fn prepare3(
    handler: &Handler,
    session: &Session,
    ctx: &CallContext,
    a: proto::DomainMigratePrepare3Args,
) -> Result<proto::DomainMigratePrepare3Ret> {
    let req = MigrateRequest::from_legacy(
        Some(&a.dom_xml),
        a.dname.as_deref(),
        a.uri_in.as_deref(),
        a.resource,
        a.flags,
    );
    let (cookie_out, uri_out) = prepare_direct(handler, session, ctx, req, &a.cookie_in).await?;
    Ok(proto::DomainMigratePrepare3Ret {
        cookie_out,
        uri_out,
    })
}

/// PREPARE2 (108): Prepare without a cookie from Begin.
///
/// # Errors
/// As [`prepare3_params`].
pub async fn prepare2(
    handler: &Handler,
    session: &Session,
    ctx: &CallContext,
    a: proto::DomainMigratePrepare2Args,
) -> Result<proto::DomainMigratePrepare2Ret> {
    let req = MigrateRequest::from_legacy(
        Some(&a.dom_xml),
        a.dname.as_deref(),
        a.uri_in.as_deref(),
        a.resource,
        a.flags,
    );
    let (cookie, uri_out) = prepare_direct(handler, session, ctx, req, &[]).await?;
    Ok(proto::DomainMigratePrepare2Ret { cookie, uri_out })
}

/// PREPARE (61, v1): there is no definition to prepare with, so the
/// manager refuses it with a clear error.
///
/// # Errors
/// As [`prepare3_params`].
pub async fn prepare1(
    handler: &Handler,
    session: &Session,
    ctx: &CallContext,
    a: proto::DomainMigratePrepareArgs,
) -> Result<proto::DomainMigratePrepareRet> {
    let req = MigrateRequest::from_legacy(
        None,
        a.dname.as_deref(),
        a.uri_in.as_deref(),
        a.resource,
        a.flags,
    );
    let (cookie, uri_out) = prepare_direct(handler, session, ctx, req, &[]).await?;
    Ok(proto::DomainMigratePrepareRet { cookie, uri_out })
}

/// Prepare with a direct data connection: one path for every wire variant.
async fn prepare_direct(
    handler: &Handler,
    session: &Session,
    ctx: &CallContext,
    req: MigrateRequest,
    cookie: &[u8],
) -> Result<(Vec<u8>, Option<String>)> {
    let manager = manager(handler, session)?;
    let offline = offline_without_uri(&req);
    let out = manager
        .prepare3(req.clone(), cookie, None)
        .await
        .map_err(err)?;
    cancel_on_disconnect(ctx, manager, &out.cookie, req);
    Ok((out.cookie, data_uri(handler, offline, out.uri_out)))
}

/// The PrepareTunnel variants: the stream is registered before the reply
/// (libvirt-wire.md §8.4) and feeds the data plane; on error it is dropped
/// with the call, so no stream outlives a refused Prepare.
async fn prepare_tunnel(
    handler: &Handler,
    session: &Session,
    ctx: &CallContext,
    req: MigrateRequest,
    cookie: &[u8],
) -> Result<Vec<u8>> {
    let manager = manager(handler, session)?;
    let stream = ctx.open_stream();
    let reader = super::migration_tunnel::reader(stream);
    let out = manager
        .prepare3(req.clone(), cookie, Some(reader))
        .await
        .map_err(err)?;
    cancel_on_disconnect(ctx, manager, &out.cookie, req);
    Ok(out.cookie)
}

/// PREPARE_TUNNEL3_PARAMS (304).
///
/// # Errors
/// As [`prepare3_params`].
pub async fn prepare_tunnel3_params(
    handler: &Handler,
    session: &Session,
    ctx: &CallContext,
    a: proto::DomainMigratePrepareTunnel3ParamsArgs,
) -> Result<proto::DomainMigratePrepareTunnel3ParamsRet> {
    let req = params_request(a.params, u64::from(a.flags))?;
    let cookie_out = prepare_tunnel(handler, session, ctx, req, &a.cookie_in).await?;
    Ok(proto::DomainMigratePrepareTunnel3ParamsRet { cookie_out })
}

/// PREPARE_TUNNEL3 (215).
///
/// # Errors
/// As [`prepare3_params`].
pub async fn prepare_tunnel3(
    handler: &Handler,
    session: &Session,
    ctx: &CallContext,
    a: proto::DomainMigratePrepareTunnel3Args,
) -> Result<proto::DomainMigratePrepareTunnel3Ret> {
    let req = MigrateRequest::from_legacy(
        Some(&a.dom_xml),
        a.dname.as_deref(),
        None,
        a.resource,
        a.flags,
    );
    let cookie_out = prepare_tunnel(handler, session, ctx, req, &a.cookie_in).await?;
    Ok(proto::DomainMigratePrepareTunnel3Ret { cookie_out })
}

/// PREPARE_TUNNEL (148, v2: no cookies).
///
/// # Errors
/// As [`prepare3_params`].
pub async fn prepare_tunnel2(
    handler: &Handler,
    session: &Session,
    ctx: &CallContext,
    a: proto::DomainMigratePrepareTunnelArgs,
) -> Result<()> {
    let req = MigrateRequest::from_legacy(
        Some(&a.dom_xml),
        a.dname.as_deref(),
        None,
        a.resource,
        a.flags,
    );
    prepare_tunnel(handler, session, ctx, req, &[]).await?;
    Ok(())
}

/// libvirt's `qemuMigrationSrcIsAllowed`: a guest whose current run an open
/// connection started with AUTODESTROY goes with that connection, so it
/// cannot be migrated (offline migration moves only its definition).
///
/// # Errors
/// `VIR_ERR_OPERATION_INVALID` "domain is marked for auto destroy".
async fn refuse_autodestroy(
    handler: &Handler,
    session: &Session,
    dom: &DomainRef,
    flags: MigrateFlags,
) -> Result<()> {
    if flags.contains(MigrateFlags::OFFLINE) {
        return Ok(());
    }
    let Some(run) = handler.autodestroy_run(&dom.uuid) else {
        return Ok(());
    };
    let now = session
        .driver()?
        .driver
        .lookup_by_uuid(&dom.uuid)
        .await
        .map_err(err)?;
    if now.id == run {
        return Err(err(migrated_core::Error::invalid(
            "domain is marked for auto destroy",
        )));
    }
    Ok(())
}

/// Perform with PEER2PEER: the whole migration, driven from here.
async fn p2p(
    handler: &Handler,
    session: &Session,
    dom: DomainRef,
    dconnuri: Option<String>,
    req: MigrateRequest,
) -> Result<()> {
    refuse_autodestroy(handler, session, &dom, req.flags).await?;
    let manager = manager(handler, session)?;
    let dconnuri = dconnuri.ok_or_else(|| {
        err(migrated_core::Error::InvalidArg {
            operation: "virDomainMigratePerform3Params",
            reason: "peer-to-peer migration needs the destination URI (dconnuri)".into(),
        })
    })?;
    perform_p2p(manager, session.driver()?.driver, dom, &dconnuri, req).await
}

/// PERFORM3_PARAMS (305): Perform, or with PEER2PEER the whole migration.
///
/// # Errors
/// As [`begin3_params`]; the data plane's errors; for p2p the migration's.
pub async fn perform3_params(
    handler: &Handler,
    session: &Session,
    a: proto::DomainMigratePerform3ParamsArgs,
) -> Result<proto::DomainMigratePerform3ParamsRet> {
    let req = params_request(a.params, u64::from(a.flags))?;
    let dom = from_wire_dom(&a.dom);
    if req.has(MigrateFlags::PEER2PEER) {
        p2p(handler, session, dom, a.dconnuri, req).await?;
        return Ok(proto::DomainMigratePerform3ParamsRet {
            cookie_out: Vec::new(),
        });
    }
    let d = dom.clone();
    let cookie_in = a.cookie_in;
    let cookie_out = source_detached(handler, session, dom, |m| async move {
        m.perform3(&d, req, &cookie_in, None).await
    })
    .await?;
    Ok(proto::DomainMigratePerform3ParamsRet { cookie_out })
}

/// PERFORM3 (216).
///
/// # Errors
/// As [`perform3_params`].
pub async fn perform3(
    handler: &Handler,
    session: &Session,
    a: proto::DomainMigratePerform3Args,
) -> Result<proto::DomainMigratePerform3Ret> {
    let req = MigrateRequest::from_legacy(
        a.xmlin.as_deref(),
        a.dname.as_deref(),
        a.uri.as_deref(),
        a.resource,
        a.flags,
    );
    let dom = from_wire_dom(&a.dom);
    if req.has(MigrateFlags::PEER2PEER) {
        p2p(handler, session, dom, a.dconnuri, req).await?;
        return Ok(proto::DomainMigratePerform3Ret {
            cookie_out: Vec::new(),
        });
    }
    let d = dom.clone();
    let cookie_in = a.cookie_in;
    let cookie_out = source_detached(handler, session, dom, |m| async move {
        m.perform3(&d, req, &cookie_in, None).await
    })
    .await?;
    Ok(proto::DomainMigratePerform3Ret { cookie_out })
}

/// PERFORM (62, v1 and v2): with PEER2PEER `uri` is the destination's
/// libvirt URI; otherwise the source completes right after sending.
///
/// # Errors
/// As [`perform3_params`].
pub async fn perform2(
    handler: &Handler,
    session: &Session,
    a: proto::DomainMigratePerformArgs,
) -> Result<()> {
    let dom = from_wire_dom(&a.dom);
    if MigrateFlags(a.flags).contains(MigrateFlags::PEER2PEER) {
        let req = MigrateRequest::from_legacy(None, a.dname.as_deref(), None, a.resource, a.flags);
        return p2p(handler, session, dom, Some(a.uri), req).await;
    }
    let req =
        MigrateRequest::from_legacy(None, a.dname.as_deref(), Some(&a.uri), a.resource, a.flags);
    refuse_autodestroy(handler, session, &dom, req.flags).await?;
    manager(handler, session)?
        .perform2(&dom, req, &a.cookie)
        .await
        .map_err(err)
}

/// Runs a source step (Begin3, Perform3) on its own task, so a caller that
/// goes away mid-step cannot cancel it half-way, and then watches the
/// caller's connection: if it closes while the job waits for the caller's
/// next step, [`Manager::caller_gone`] settles it (Begin3 ends; Perform3Done
/// is held until the destination's outcome is known).
async fn source_detached<T, F, Fut>(
    handler: &Handler,
    session: &Session,
    dom: DomainRef,
    step: F,
) -> Result<T>
where
    F: FnOnce(Arc<Manager>) -> Fut,
    Fut: std::future::Future<Output = migrated_core::Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let manager = manager(handler, session)?;
    let conn = session.handle().clone();
    let fut = step(Arc::clone(&manager));
    let task = tokio::spawn(async move {
        let out = fut.await;
        if out.is_ok() {
            watch_caller(manager, conn, dom);
        }
        out
    });
    match task.await {
        Ok(r) => r.map_err(err),
        Err(e) => Err(err(migrated_core::Error::internal(format!(
            "migration step task failed: {e}"
        )))),
    }
}

/// Waits for the caller's connection to close while `dom`'s current job lives.
fn watch_caller(manager: Arc<Manager>, conn: migrated_rpc::ConnHandle, dom: DomainRef) {
    let Some(job_id) = manager.registry().get(&dom.uuid).map(|j| j.job_id()) else {
        return;
    };
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = conn.closed() => break,
                () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {
                    let alive = manager
                        .registry()
                        .get(&dom.uuid)
                        .is_some_and(|j| j.job_id() == job_id);
                    if !alive {
                        return;
                    }
                }
            }
        }
        manager.caller_gone(&dom, job_id);
    });
}

/// Runs Finish on its own task, so a caller that goes away mid-step cannot
/// cancel it half-way (guest started, job not ended). If the caller is gone
/// once the guest runs here, the reply cannot reach it and its source will
/// cancel and resume the guest (libvirt-wire.md §8.6): the copy started here
/// is stopped (and its PERSIST_DEST config removed), or the guest would run
/// on both hosts.
async fn finish_detached(
    handler: &Handler,
    session: &Session,
    dname: String,
    req: MigrateRequest,
    cookie: Vec<u8>,
    cancelled: bool,
) -> Result<migrated_core::migration::Finish3Out> {
    let manager = manager(handler, session)?;
    let driver = session.driver()?.driver;
    let conn = session.handle().clone();
    let persisted = req.has(MigrateFlags::PERSIST_DEST);
    let task = tokio::spawn(async move {
        let out = manager.finish3(&dname, req, &cookie, cancelled).await?;
        if !conn.is_closed() {
            return Ok(out);
        }
        tracing::error!(dom = %out.dom.name, "finish succeeded but its caller is gone: stopping the copy here, its source resumes the guest");
        if let Err(e) = driver.destroy(&out.dom, 0).await {
            tracing::error!(dom = %out.dom.name, error = %e, "stopping the orphaned incoming guest failed");
        }
        if persisted {
            if let Err(e) = driver.undefine(&out.dom, 0).await {
                tracing::warn!(dom = %out.dom.name, error = %e, "removing the orphaned guest's config failed");
            }
        }
        Err(migrated_core::Error::OperationFailed {
            operation: "migration in",
            reason: "the caller of Finish went away before the answer".into(),
        })
    });
    match task.await {
        Ok(r) => r.map_err(err),
        Err(e) => Err(err(migrated_core::Error::internal(format!(
            "finish task failed: {e}"
        )))),
    }
}

/// FINISH3_PARAMS (306).
///
/// # Errors
/// "no incoming migration job" without Prepare; cookie errors; the data
/// plane's verdict; `VIR_ERR_MIGRATE_FINISH_OK` after `cancelled`.
pub async fn finish3_params(
    handler: &Handler,
    session: &Session,
    a: proto::DomainMigrateFinish3ParamsArgs,
) -> Result<proto::DomainMigrateFinish3ParamsRet> {
    let req = params_request(a.params, u64::from(a.flags))?;
    let dname = req.dname.clone().unwrap_or_default();
    let out = finish_detached(handler, session, dname, req, a.cookie_in, a.cancelled != 0).await?;
    Ok(proto::DomainMigrateFinish3ParamsRet {
        dom: ret_dom(&out.dom),
        cookie_out: out.cookie,
    })
}

/// FINISH3 (217).
///
/// # Errors
/// As [`finish3_params`].
pub async fn finish3(
    handler: &Handler,
    session: &Session,
    a: proto::DomainMigrateFinish3Args,
) -> Result<proto::DomainMigrateFinish3Ret> {
    let req = MigrateRequest::from_legacy(None, Some(&a.dname), a.uri.as_deref(), 0, a.flags);
    let out = finish_detached(
        handler,
        session,
        a.dname,
        req,
        a.cookie_in,
        a.cancelled != 0,
    )
    .await?;
    Ok(proto::DomainMigrateFinish3Ret {
        dom: ret_dom(&out.dom),
        cookie_out: out.cookie,
    })
}

/// FINISH2 (109): `retcode` ≠ 0 means Perform failed.
///
/// # Errors
/// As [`finish3_params`].
pub async fn finish2(
    handler: &Handler,
    session: &Session,
    a: proto::DomainMigrateFinish2Args,
) -> Result<proto::DomainMigrateFinish2Ret> {
    let req = MigrateRequest::from_legacy(None, Some(&a.dname), Some(&a.uri), 0, a.flags);
    let out = manager(handler, session)?
        .finish3(&a.dname, req, &a.cookie, a.retcode != 0)
        .await
        .map_err(err)?;
    Ok(proto::DomainMigrateFinish2Ret {
        ddom: ret_dom(&out.dom),
    })
}

/// FINISH (63, v1).
///
/// # Errors
/// As [`finish3_params`].
pub async fn finish1(
    handler: &Handler,
    session: &Session,
    a: proto::DomainMigrateFinishArgs,
) -> Result<proto::DomainMigrateFinishRet> {
    let req = MigrateRequest::from_legacy(None, Some(&a.dname), Some(&a.uri), 0, a.flags);
    let out = manager(handler, session)?
        .finish3(&a.dname, req, &a.cookie, false)
        .await
        .map_err(err)?;
    Ok(proto::DomainMigrateFinishRet {
        ddom: ret_dom(&out.dom),
    })
}

/// CONFIRM3_PARAMS (307).
///
/// # Errors
/// "no job" (e.g. Confirm3 twice); the backend's errors.
pub async fn confirm3_params(
    handler: &Handler,
    session: &Session,
    a: proto::DomainMigrateConfirm3ParamsArgs,
) -> Result<()> {
    let req = params_request(a.params, u64::from(a.flags))?;
    manager(handler, session)?
        .confirm3(&from_wire_dom(&a.dom), req, &a.cookie_in, a.cancelled != 0)
        .await
        .map_err(err)
}

/// CONFIRM3 (218).
///
/// # Errors
/// As [`confirm3_params`].
pub async fn confirm3(
    handler: &Handler,
    session: &Session,
    a: proto::DomainMigrateConfirm3Args,
) -> Result<()> {
    let req = MigrateRequest::from_legacy(None, None, None, 0, a.flags);
    manager(handler, session)?
        .confirm3(&from_wire_dom(&a.dom), req, &a.cookie_in, a.cancelled != 0)
        .await
        .map_err(err)
}
