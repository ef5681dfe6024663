//! Job queries and migration tuning: GET_JOB_INFO (163), GET_JOB_STATS (298),
//! ABORT_JOB (164, 442), MIGRATE_SET/GET_MAX_SPEED (207/242),
//! MIGRATE_START_POST_COPY (364),
//! MIGRATE_SET/GET_MAX_DOWNTIME (166/387), GET_CONTROL_INFO (229, `virsh
//! domcontrol`), and our MIGRATION_STATUS.
//!
//! They run on their own call tasks, so a client polls them on the very
//! connection whose PERFORM is still in flight (virsh `migrate --verbose`).

use migrated_core::driver::{ControlInfo, ControlState, DomainRef};
use migrated_core::flags::MigrateFlags;
use migrated_core::job::{JobRegistry, JobStats, JobType, Phase, SourcePhase};
use migrated_core::migration::Role;
use migrated_core::support::Procedure;
use migrated_proto::{self as proto, MigrationStatusArgs, MigrationStatusRet};
use migrated_rpc::WireError;

use super::from_wire_dom;
use super::migration::manager;
use crate::handler::{Handler, Session};
use crate::wire::to_wire_error;

type Result<T> = std::result::Result<T, WireError>;

/// `VIR_DOMAIN_JOB_STATS_COMPLETED`.
const STATS_COMPLETED: u32 = 1;
/// `VIR_DOMAIN_JOB_STATS_KEEP_COMPLETED`.
const STATS_KEEP_COMPLETED: u32 = 2;

fn err(e: migrated_core::Error) -> WireError {
    to_wire_error(&e)
}

fn check_flags(operation: &'static str, flags: u32, allowed: u32) -> Result<()> {
    migrated_core::flags::check_flags(operation, u64::from(flags), u64::from(allowed)).map_err(err)
}

/// The domain as the driver knows it (so an unknown guest is NO_DOMAIN).
async fn known(session: &Session, dom: &proto::NonnullDomain) -> Result<DomainRef> {
    let dom = from_wire_dom(dom);
    session
        .driver()?
        .driver
        .lookup_by_uuid(&dom.uuid)
        .await
        .map_err(err)
}

/// The statistics of a running job are the source's: the destination of a
/// migration only receives, and libvirt refuses the query there rather than
/// answer zeros (qemuDomainGetJobStatsInternal); the completed job's
/// statistics, which Finish records on both hosts, stay available.
///
/// # Errors
/// `VIR_ERR_OPERATION_UNSUPPORTED` while `dom` is arriving here.
fn refuse_incoming(registry: &JobRegistry, dom: &DomainRef) -> Result<()> {
    if arriving(registry, dom) {
        return Err(err(migrated_core::Error::OperationUnsupported {
            reason: "migration statistics are available only on the source host".into(),
        }));
    }
    Ok(())
}

/// Whether `dom` is the destination of a migration running now.
fn arriving(registry: &JobRegistry, dom: &DomainRef) -> bool {
    registry
        .get(&dom.uuid)
        .is_some_and(|job| job.role() == Role::Destination)
}

/// GET_JOB_INFO (163).
///
/// # Errors
/// `VIR_ERR_NO_DOMAIN`, `VIR_ERR_OPERATION_UNSUPPORTED` on the destination
/// of a running migration; no support when the driver cannot migrate.
pub async fn get_job_info(
    handler: &Handler,
    session: &Session,
    a: proto::DomainGetJobInfoArgs,
) -> Result<proto::DomainGetJobInfoRet> {
    let dom = known(session, &a.dom).await?;
    let info = job_stats(handler, session, &dom, false)?.to_job_info();
    Ok(proto::DomainGetJobInfoRet {
        r#type: info.job_type,
        time_elapsed: info.time_elapsed,
        time_remaining: info.time_remaining,
        data_total: info.data_total,
        data_processed: info.data_processed,
        data_remaining: info.data_remaining,
        mem_total: info.mem_total,
        mem_processed: info.mem_processed,
        mem_remaining: info.mem_remaining,
        file_total: info.file_total,
        file_processed: info.file_processed,
        file_remaining: info.file_remaining,
    })
}

/// GET_CONTROL_INFO (229): the driver's view of the channel to the
/// domain's hypervisor (ready, a command in flight, broken), with a
/// migration job of the domain reported over a usable channel, as libvirt
/// reports its async jobs: `job`, for as long as the job has run.
///
/// # Errors
/// Unknown flags (`VIR_ERR_INVALID_ARG`); the driver's (`VIR_ERR_NO_DOMAIN`,
/// "domain is not running").
pub async fn get_control_info(
    handler: &Handler,
    session: &Session,
    a: proto::DomainGetControlInfoArgs,
) -> Result<proto::DomainGetControlInfoRet> {
    check_flags("virDomainGetControlInfo", a.flags, 0)?;
    let open = session.driver()?;
    let dom = from_wire_dom(&a.dom);
    let mut info = open.driver.control_info(&dom).await.map_err(err)?;
    if info.state != ControlState::Error {
        let job = handler
            .drivers()
            .manager(open.uri)
            .and_then(|manager| manager.registry().get(&dom.uuid));
        if let Some(job) = job {
            info = ControlInfo {
                state: ControlState::Job,
                details: 0,
                state_time_ms: u64::try_from(job.elapsed().as_millis()).unwrap_or(u64::MAX),
            };
        }
    }
    Ok(proto::DomainGetControlInfoRet {
        state: info.state as u32,
        details: info.details,
        state_time: info.state_time_ms,
    })
}

/// GET_JOB_STATS (298): the active job, or with COMPLETED the last finished
/// one (forgotten afterwards unless KEEP_COMPLETED).
///
/// # Errors
/// Unknown flag bits (`VIR_ERR_INVALID_ARG`), `VIR_ERR_NO_DOMAIN`,
/// `VIR_ERR_OPERATION_UNSUPPORTED` for the running job on the destination of
/// a migration.
pub async fn get_job_stats(
    handler: &Handler,
    session: &Session,
    a: proto::DomainGetJobStatsArgs,
) -> Result<proto::DomainGetJobStatsRet> {
    check_flags(
        "virDomainGetJobStats",
        a.flags,
        STATS_COMPLETED | STATS_KEEP_COMPLETED,
    )?;
    let dom = known(session, &a.dom).await?;
    let completed = a.flags & STATS_COMPLETED != 0;
    let stats = job_stats(handler, session, &dom, completed)?;
    if completed && a.flags & STATS_KEEP_COMPLETED == 0 {
        manager(handler, session)?
            .registry()
            .clear_completed(&dom.uuid);
        if let Some(local) = session.driver()?.driver.local_jobs() {
            local.clear_completed(&dom.uuid);
        }
    }
    Ok(proto::DomainGetJobStatsRet {
        r#type: stats.job_type as i32,
        params: stats.to_typed_params().into_wire(),
    })
}

/// ABORT_JOB (164) and ABORT_JOB_FLAGS (442, no flag supported). On a job
/// held after a restart (source guest kept paused until the destination's
/// outcome is known) it settles the job in favour of this host.
///
/// # Errors
/// "no job is active" (`VIR_ERR_OPERATION_INVALID`), an incoming migration
/// (libvirt's refusal: the source's operator aborts, or DESTROY here
/// cancels it), unknown flags.
pub async fn abort_job(
    handler: &Handler,
    session: &Session,
    dom: &proto::NonnullDomain,
    flags: u32,
) -> Result<()> {
    check_flags("virDomainAbortJobFlags", flags, 0)?;
    let dom = known(session, dom).await?;
    let manager = manager(handler, session)?;
    if manager.held().iter().any(|e| e.uuid == dom.uuid) {
        // A job recovered after a restart waits for the destination's
        // outcome; aborting it is the operator saying "the destination does
        // not run this guest": it is given back here.
        tracing::warn!(dom = %dom.name, "held migration job aborted by the operator: the guest stays here");
        return manager.resolve(&dom, false).await.map_err(err);
    }
    if arriving(manager.registry(), &dom) {
        return Err(err(migrated_core::Error::invalid(
            "cannot abort incoming migration; use virDomainDestroy instead",
        )));
    }
    // A job the driver runs by itself (a dump) when no migration runs.
    if manager.registry().get(&dom.uuid).is_none() {
        if let Some(local) = session.driver()?.driver.local_jobs() {
            if local.abort(&dom.uuid).map_err(err)? {
                return Ok(());
            }
        }
    }
    manager.abort_job(&dom).map_err(err)
}

/// The statistics GET_JOB_INFO / GET_JOB_STATS report: the domain's
/// migration job, else the job its driver runs by itself (a dump); with
/// `completed`, the last finished one of either (the migration's first).
fn job_stats(
    handler: &Handler,
    session: &Session,
    dom: &DomainRef,
    completed: bool,
) -> Result<JobStats> {
    let manager = manager(handler, session)?;
    if !completed {
        refuse_incoming(manager.registry(), dom)?;
    }
    let migration = manager.registry().stats(&dom.uuid, completed);
    let wanted = if completed {
        migration.job_type != JobType::None
    } else {
        migration.is_active()
    };
    if wanted {
        return Ok(migration);
    }
    let local = session
        .driver()?
        .driver
        .local_jobs()
        .and_then(|jobs| jobs.stats(&dom.uuid, completed));
    Ok(local.unwrap_or(migration))
}

/// DESTROY / UNDEFINE of a guest whose job was held after a restart (source
/// paused after perform-done, destination's outcome unknown) is the operator
/// saying "the destination runs it" (docs/operations.md §6): the job is
/// settled that way — the copy here is stopped, and undefined if the
/// migration asked for UNDEFINE_SOURCE — instead of being refused by change
/// protection. DESTROY of a guest a running migration owns aborts that
/// migration first ([`abort_for_destroy`]). Answers `true` when nothing is
/// left for the call to do.
///
/// # Errors
/// The settlement's errors.
pub async fn settle_held_by_operator(
    handler: &Handler,
    session: &Session,
    call: &proto::Call,
) -> Result<bool> {
    use proto::Call;
    let (dom, destroy) = match call {
        Call::DomainDestroy(a) => (&a.dom, true),
        Call::DomainDestroyFlags(a) => (&a.dom, true),
        Call::DomainUndefine(a) => (&a.dom, false),
        Call::DomainUndefineFlags(a) => (&a.dom, false),
        _ => return Ok(false),
    };
    let Ok(open) = session.driver() else {
        return Ok(false);
    };
    let Some(manager) = handler.drivers().manager(open.uri) else {
        return Ok(false);
    };
    let dom = from_wire_dom(dom);
    if !manager.held().iter().any(|e| e.uuid == dom.uuid) {
        if destroy && manager.registry().get(&dom.uuid).is_some() {
            return abort_for_destroy(&manager, &open, &dom).await;
        }
        return Ok(false);
    }
    tracing::warn!(dom = %dom.name, "held migration job settled by the operator: the destination runs the guest");
    manager.resolve(&dom, true).await.map_err(err)?;
    // Destroy is done once the copy here is stopped; undefine goes on unless
    // UNDEFINE_SOURCE already removed the config.
    Ok(destroy || open.driver.lookup_by_uuid(&dom.uuid).await.is_err())
}

/// The largest migration bandwidth, MiB/s, libvirt's QEMU driver accepts
/// (`QEMU_DOMAIN_MIG_BANDWIDTH_MAX`: `i64::MAX` bytes/s in MiB/s) and
/// reports as the speed of a domain nobody limited.
const BANDWIDTH_MAX_MIB_S: u64 = (i64::MAX as u64) / (1024 * 1024);

/// How long DESTROY waits for the migration it aborted to end.
const DESTROY_ABORT_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// DESTROY of a guest a migration job owns, as libvirt: the operator's
/// way to stop a stuck migration (and, on the destination, to cancel the
/// incoming one). The job is aborted first, through the same path as
/// ABORT_JOB, so the source gets its guest back and the destination drops
/// its copy; then the destroy goes on where a copy is still running.
/// Answers `true` when no running copy is left here to destroy.
async fn abort_for_destroy(
    manager: &migrated_core::migration::Manager,
    open: &crate::handler::OpenDriver,
    dom: &DomainRef,
) -> Result<bool> {
    tracing::warn!(dom = %dom.name, "destroy during a migration: aborting the migration first");
    manager.abort_job(dom).map_err(err)?;
    let started = std::time::Instant::now();
    loop {
        let job_ended = manager.registry().get(&dom.uuid).is_none();
        // The destination's incoming copy goes with the abort (a config
        // defined there before may stay, inactive).
        if !open.driver.is_active(dom).await.unwrap_or(false) {
            return Ok(true);
        }
        if job_ended {
            return Ok(false);
        }
        if started.elapsed() > DESTROY_ABORT_WAIT {
            return Err(err(migrated_core::Error::OperationTimeout {
                operation: "abort of the migration before destroy",
                millis: DESTROY_ABORT_WAIT.as_millis() as u64,
            }));
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// `VIR_DOMAIN_MIGRATE_MAX_SPEED_POSTCOPY`: the speed of the post-copy phase.
const MAX_SPEED_POSTCOPY: u32 = 1;

/// Checks MIGRATE_SET/GET_MAX_SPEED's flags; answers whether they ask for
/// the post-copy speed. The flag is known only where the driver migrates
/// with post-copy (elsewhere it is an unknown flag, as in libvirt's drivers
/// without post-copy).
fn speed_flags(session: &Session, operation: &'static str, flags: u32) -> Result<bool> {
    let postcopy = session
        .driver()?
        .driver
        .support()
        .migration_flags()
        .contains(MigrateFlags::POSTCOPY);
    check_flags(
        operation,
        flags,
        if postcopy { MAX_SPEED_POSTCOPY } else { 0 },
    )?;
    Ok(flags & MAX_SPEED_POSTCOPY != 0)
}

/// The running guest whose post-copy speed is set or read (libvirt's QEMU
/// driver keeps it in QEMU, so the guest must run).
async fn running(session: &Session, dom: &proto::NonnullDomain) -> Result<DomainRef> {
    let dom = known(session, dom).await?;
    if !session
        .driver()?
        .driver
        .is_active(&dom)
        .await
        .map_err(err)?
    {
        return Err(err(migrated_core::Error::invalid("domain is not running")));
    }
    Ok(dom)
}

/// MIGRATE_SET_MAX_SPEED (207), MiB/s; with
/// `VIR_DOMAIN_MIGRATE_MAX_SPEED_POSTCOPY` the post-copy phase's speed (0 =
/// unlimited), for the guest's later migrations and its running one (whose
/// data plane hands it to the hypervisor).
///
/// # Errors
/// Unknown flags (POSTCOPY where the driver has no post-copy), a bandwidth
/// above [`BANDWIDTH_MAX_MIB_S`] (post-copy: above `u64::MAX` bytes/s in
/// MiB/s; `VIR_ERR_OVERFLOW`), `VIR_ERR_NO_DOMAIN`, a post-copy speed of a
/// guest that is not running (`VIR_ERR_OPERATION_INVALID`).
pub async fn set_max_speed(
    handler: &Handler,
    session: &Session,
    a: proto::DomainMigrateSetMaxSpeedArgs,
) -> Result<()> {
    let postcopy = speed_flags(session, "virDomainMigrateSetMaxSpeed", a.flags)?;
    let max = if postcopy {
        u64::MAX / (1024 * 1024)
    } else {
        BANDWIDTH_MAX_MIB_S
    };
    if a.bandwidth > max {
        return Err(err(migrated_core::Error::Overflow {
            what: "bandwidth",
            limit: max + 1,
        }));
    }
    let registry = manager(handler, session)?;
    let registry = registry.registry();
    if postcopy {
        let dom = running(session, &a.dom).await?;
        registry.set_max_postcopy_speed(&dom.uuid, a.bandwidth);
    } else {
        let dom = known(session, &a.dom).await?;
        registry.set_max_speed(&dom.uuid, a.bandwidth);
    }
    Ok(())
}

/// MIGRATE_GET_MAX_SPEED (242); with `VIR_DOMAIN_MIGRATE_MAX_SPEED_POSTCOPY`
/// the post-copy speed (0 = unlimited, as QEMU's parameter reads).
///
/// # Errors
/// As [`set_max_speed`].
pub async fn get_max_speed(
    handler: &Handler,
    session: &Session,
    a: proto::DomainMigrateGetMaxSpeedArgs,
) -> Result<proto::DomainMigrateGetMaxSpeedRet> {
    let postcopy = speed_flags(session, "virDomainMigrateGetMaxSpeed", a.flags)?;
    let dom = if postcopy {
        running(session, &a.dom).await?
    } else {
        known(session, &a.dom).await?
    };
    let tuning = manager(handler, session)?.registry().tuning(&dom.uuid);
    let bandwidth = match (postcopy, tuning.max_speed_mib_s) {
        (true, _) => tuning.max_postcopy_speed_mib_s,
        // 0 is "not limited" here; libvirt reports that as the largest value.
        (false, 0) => BANDWIDTH_MAX_MIB_S,
        (false, set) => set,
    };
    Ok(proto::DomainMigrateGetMaxSpeedRet { bandwidth })
}

/// MIGRATE_START_POST_COPY (364): asks the guest's outgoing migration,
/// started with `VIR_MIGRATE_POSTCOPY`, to switch to post-copy (the data
/// plane sends QEMU's `migrate-start-postcopy`), as libvirt's
/// qemuDomainMigrateStartPostCopy.
///
/// # Errors
/// Unknown flags; `VIR_ERR_NO_SUPPORT` from a driver without post-copy
/// (the test driver, as libvirt's); `VIR_ERR_NO_DOMAIN`;
/// `VIR_ERR_OPERATION_INVALID` for a guest that is not running, without an
/// outgoing migration, or whose migration was started without
/// `VIR_MIGRATE_POSTCOPY` (libvirt's words).
pub async fn start_post_copy(
    handler: &Handler,
    session: &Session,
    a: proto::DomainMigrateStartPostCopyArgs,
) -> Result<()> {
    const OP: &str = "virDomainMigrateStartPostCopy";
    let open = session.driver()?;
    let support = open.driver.support();
    if !support.implements(Procedure::DomainMigrateStartPostCopy) {
        return Err(err(migrated_core::Error::NoSupport {
            operation: OP,
            driver: support.driver,
        }));
    }
    check_flags(OP, a.flags, 0)?;
    let dom = running(session, &a.dom).await?;
    let job = manager(handler, session)?
        .registry()
        .get(&dom.uuid)
        .filter(|j| matches!(j.phase(), Phase::Source(SourcePhase::Perform3)))
        .ok_or_else(|| {
            err(migrated_core::Error::invalid(
                "post-copy can only be started while outgoing migration is in progress",
            ))
        })?;
    job.request_postcopy().map_err(err)?;
    tracing::info!(dom = %dom.name, "post-copy requested");
    Ok(())
}

/// MIGRATE_SET_MAX_DOWNTIME (166), ms.
///
/// # Errors
/// 0 ms (`VIR_ERR_INVALID_ARG`), unknown flags, `VIR_ERR_NO_DOMAIN`.
pub async fn set_max_downtime(
    handler: &Handler,
    session: &Session,
    a: proto::DomainMigrateSetMaxDowntimeArgs,
) -> Result<()> {
    check_flags("virDomainMigrateSetMaxDowntime", a.flags, 0)?;
    let dom = known(session, &a.dom).await?;
    manager(handler, session)?
        .registry()
        .set_max_downtime(&dom.uuid, a.downtime)
        .map_err(err)
}

/// MIGRATE_GET_MAX_DOWNTIME (387).
///
/// # Errors
/// As [`set_max_downtime`].
pub async fn get_max_downtime(
    handler: &Handler,
    session: &Session,
    a: proto::DomainMigrateGetMaxDowntimeArgs,
) -> Result<proto::DomainMigrateGetMaxDowntimeRet> {
    check_flags("virDomainMigrateGetMaxDowntime", a.flags, 0)?;
    let dom = known(session, &a.dom).await?;
    let tuning = manager(handler, session)?.registry().tuning(&dom.uuid);
    Ok(proto::DomainMigrateGetMaxDowntimeRet {
        downtime: tuning.max_downtime_ms,
    })
}

/// MIGRATE_GET_COMPRESSION_CACHE (299): the XBZRLE cache of the running
/// guest's compressed migrations, bytes.
///
/// # Errors
/// Unknown flags, `VIR_ERR_NO_DOMAIN`, a guest that is not running
/// (`VIR_ERR_OPERATION_INVALID`), `VIR_ERR_NO_SUPPORT` from a driver
/// without it (the test driver, as libvirt's).
pub async fn get_compression_cache(
    session: &Session,
    a: proto::DomainMigrateGetCompressionCacheArgs,
) -> Result<proto::DomainMigrateGetCompressionCacheRet> {
    check_flags("virDomainMigrateGetCompressionCache", a.flags, 0)?;
    let cache_size = session
        .driver()?
        .driver
        .migrate_compression_cache(&from_wire_dom(&a.dom))
        .await
        .map_err(err)?;
    Ok(proto::DomainMigrateGetCompressionCacheRet { cache_size })
}

/// MIGRATE_SET_COMPRESSION_CACHE (300): sets it for the guest's later
/// compressed migrations that name no `compression.xbzrle.cache`.
///
/// # Errors
/// As [`get_compression_cache`], and the hypervisor's refusal of the size.
pub async fn set_compression_cache(
    session: &Session,
    a: proto::DomainMigrateSetCompressionCacheArgs,
) -> Result<()> {
    check_flags("virDomainMigrateSetCompressionCache", a.flags, 0)?;
    session
        .driver()?
        .driver
        .set_migrate_compression_cache(&from_wire_dom(&a.dom), a.cache_size)
        .await
        .map_err(err)
}

/// MIGRATION_STATUS (program MIGR, 1): the guest's migration job as the
/// journal and registry know it; `detail` says when a recovered job keeps the
/// guest paused until the operator or the peer settles it, and for a running
/// test-driver guest ends with `memory sha256 <hex>`.
///
/// # Errors
/// `VIR_ERR_NO_DOMAIN`; no support when the driver cannot migrate.
pub async fn migration_status(
    handler: &Handler,
    session: &Session,
    a: MigrationStatusArgs,
) -> Result<MigrationStatusRet> {
    let dom = session
        .driver()?
        .driver
        .lookup_by_name(&a.name)
        .await
        .map_err(err)?;
    let manager = manager(handler, session)?;
    let memory = handler
        .drivers()
        .guest_detail(session.driver()?.uri, &dom.uuid)
        .await;
    let held = manager.held().into_iter().find(|e| e.uuid == dom.uuid);
    let Some(job) = manager.registry().get(&dom.uuid) else {
        return Ok(MigrationStatusRet {
            phase: 0,
            role: 0,
            job_id: None,
            peer: None,
            detail: memory,
        });
    };
    let phase = job.phase();
    let role = match phase.role() {
        Role::Source => 1,
        Role::Destination => 2,
    };
    let detail = match (&held, &phase) {
        (Some(_), _) => Some(format!(
            "held in phase {} (recovered after a restart, or its client went away): the guest is kept paused and resumable until the destination's outcome is known",
            phase.name()
        )),
        (None, p) => Some(format!("phase {}", p.name())),
    }
    .map(|d| match &memory {
        Some(m) => format!("{d}; {m}"),
        None => d,
    });
    Ok(MigrationStatusRet {
        phase: phase_number(&phase),
        role,
        job_id: Some(job.job_id().to_string()),
        peer: held.and_then(|e| e.peer_host).map(|u| u.to_string()),
        detail,
    })
}

/// A stable number per phase for MIGRATION_STATUS (0 = no job).
fn phase_number(phase: &Phase) -> i32 {
    use migrated_core::job::{DestinationPhase as D, SourcePhase as S};
    match phase {
        Phase::Source(S::Begin3 { .. }) => 1,
        Phase::Source(S::Perform3) => 2,
        Phase::Source(S::Perform3Done) => 3,
        Phase::Source(S::Confirm3) => 4,
        Phase::Source(S::Confirm3Cancelled) => 5,
        Phase::Destination(D::Prepare3 { .. }) => 11,
        Phase::Destination(D::Finish3) => 12,
        Phase::Destination(D::Finish3Done) => 13,
        Phase::Destination(D::Finish3Cancelled) => 14,
    }
}

/// Runs one CALL of migrated's own program (`MIGR`, proto/migrated.x).
///
/// # Errors
/// Undecodable arguments (`VIR_ERR_RPC`), "not open" before CONNECT_OPEN,
/// the procedure's own errors.
pub async fn run_migrated(
    handler: &Handler,
    session: &Session,
    proc_: proto::MigratedProcedure,
    payload: &[u8],
) -> Result<bytes::Bytes> {
    let call = proto::MigratedCall::decode(proc_, payload)
        .map_err(|e| crate::wire::bad_arguments(proc_.name(), &e))?;
    match call {
        proto::MigratedCall::MigrationStatus(a) => {
            let ret = migration_status(handler, session, a).await?;
            migrated_xdr::to_bytes(&ret)
                .map(bytes::Bytes::from)
                .map_err(|e| crate::wire::cannot_encode(proc_.name(), &e))
        }
    }
}
