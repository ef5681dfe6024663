//! Domain tuning and guest queries: the scheduler (`virsh schedinfo`:
//! DOMAIN_GET_SCHEDULER_TYPE, DOMAIN_GET/SET_SCHEDULER_PARAMETERS and their
//! FLAGS forms), the memory limits (`virsh memtune`: DOMAIN_GET/SET_MEMORY_
//! PARAMETERS), CPU usage (`virsh cpu-stats`: DOMAIN_GET_CPU_STATS), and
//! the guest's own view (`virsh domhostname`: DOMAIN_GET_HOSTNAME; `virsh
//! domtime`: DOMAIN_GET/SET_TIME).
//!
//! What libvirt checks before a driver runs is checked here once for every
//! driver: the RPC bounds of libvirtd's dispatcher ("nparams too large",
//! `VIR_ERR_RPC`), the public API's argument rules, and the count protocol
//! of the parameter queries (ask with 0 for how many, then for them).

use migrated_core::driver::Driver;
use migrated_core::flags::affect;
use migrated_core::tune::{self, GuestTime};
use migrated_core::typed_params::TypedParams;
use migrated_proto::{self as proto, NonnullDomain};
use migrated_rpc::WireError;

use super::from_wire_dom;
use crate::handler::Session;
use crate::wire::{rpc_error, to_wire_error};

type Result<T> = std::result::Result<T, WireError>;

pub(super) fn err(e: migrated_core::Error) -> WireError {
    to_wire_error(&e)
}

pub(super) fn driver(session: &Session) -> Result<std::sync::Arc<dyn Driver>> {
    Ok(session.driver()?.driver)
}

/// libvirtd's refusal of a wanted count over the procedure's bound.
pub(super) fn check_wanted(nparams: i32, max: usize) -> Result<()> {
    if usize::try_from(nparams).is_ok_and(|n| n > max) {
        return Err(rpc_error("nparams too large"));
    }
    Ok(())
}

/// The public API's rule for the scheduler queries: at least one
/// parameter must be asked for (`virCheckPositiveArgGoto`).
fn check_positive(operation: &'static str, nparams: i32) -> Result<()> {
    if nparams <= 0 {
        return Err(err(migrated_core::Error::InvalidArg {
            operation,
            reason: format!("nparams in {operation} must be greater than zero"),
        }));
    }
    Ok(())
}

pub(super) fn received(params: Vec<proto::TypedParam>, max: usize) -> Result<TypedParams> {
    TypedParams::from_wire(params, max).map_err(err)
}

/// DOMAIN_GET_SCHEDULER_TYPE (56).
///
/// # Errors
/// The driver's (`VIR_ERR_NO_DOMAIN`, `VIR_ERR_NO_SUPPORT`).
pub async fn get_scheduler_type(
    session: &Session,
    a: proto::DomainGetSchedulerTypeArgs,
) -> Result<proto::DomainGetSchedulerTypeRet> {
    let (r#type, nparams) = driver(session)?
        .scheduler_type(&from_wire_dom(&a.dom))
        .await
        .map_err(err)?;
    Ok(proto::DomainGetSchedulerTypeRet { r#type, nparams })
}

async fn scheduler_parameters(
    session: &Session,
    operation: &'static str,
    dom: &NonnullDomain,
    nparams: i32,
    flags: u32,
) -> Result<Vec<proto::TypedParam>> {
    check_wanted(nparams, proto::REMOTE_DOMAIN_SCHEDULER_PARAMETERS_MAX)?;
    check_positive(operation, nparams)?;
    affect::check_exclusive(operation, flags).map_err(err)?;
    let all = driver(session)?
        .scheduler_parameters(&from_wire_dom(dom), flags)
        .await
        .map_err(err)?;
    let (params, _) = tune::select(operation, all, nparams).map_err(err)?;
    Ok(params.into_iter().map(Into::into).collect())
}

/// DOMAIN_GET_SCHEDULER_PARAMETERS (57): the first `nparams` parameters of
/// the current definition.
///
/// # Errors
/// `VIR_ERR_RPC` over the bound; `VIR_ERR_INVALID_ARG` for `nparams < 1`;
/// the driver's.
pub async fn get_scheduler_parameters(
    session: &Session,
    a: proto::DomainGetSchedulerParametersArgs,
) -> Result<proto::DomainGetSchedulerParametersRet> {
    let params = scheduler_parameters(
        session,
        "virDomainGetSchedulerParameters",
        &a.dom,
        a.nparams,
        0,
    )
    .await?;
    Ok(proto::DomainGetSchedulerParametersRet { params })
}

/// DOMAIN_GET_SCHEDULER_PARAMETERS_FLAGS (223): as
/// [`get_scheduler_parameters`] for the definition `flags` choose.
///
/// # Errors
/// As [`get_scheduler_parameters`]; LIVE with CONFIG (`VIR_ERR_INVALID_ARG`).
pub async fn get_scheduler_parameters_flags(
    session: &Session,
    a: proto::DomainGetSchedulerParametersFlagsArgs,
) -> Result<proto::DomainGetSchedulerParametersFlagsRet> {
    let params = scheduler_parameters(
        session,
        "virDomainGetSchedulerParametersFlags",
        &a.dom,
        a.nparams,
        a.flags,
    )
    .await?;
    Ok(proto::DomainGetSchedulerParametersFlagsRet { params })
}

async fn set_scheduler(
    session: &Session,
    operation: &'static str,
    dom: &NonnullDomain,
    params: Vec<proto::TypedParam>,
    flags: u32,
) -> Result<()> {
    let params = received(params, proto::REMOTE_DOMAIN_SCHEDULER_PARAMETERS_MAX)?;
    affect::check_exclusive(operation, flags).map_err(err)?;
    driver(session)?
        .set_scheduler_parameters(&from_wire_dom(dom), &params, flags)
        .await
        .map_err(err)
}

/// DOMAIN_SET_SCHEDULER_PARAMETERS (58).
///
/// # Errors
/// A malformed list (`VIR_ERR_RPC`, `VIR_ERR_INVALID_ARG`); the driver's
/// (unknown parameter `VIR_ERR_ARGUMENT_UNSUPPORTED`, wrong type
/// `VIR_ERR_INVALID_ARG`).
pub async fn set_scheduler_parameters(
    session: &Session,
    a: proto::DomainSetSchedulerParametersArgs,
) -> Result<()> {
    set_scheduler(
        session,
        "virDomainSetSchedulerParameters",
        &a.dom,
        a.params,
        0,
    )
    .await
}

/// DOMAIN_SET_SCHEDULER_PARAMETERS_FLAGS (219).
///
/// # Errors
/// As [`set_scheduler_parameters`]; LIVE with CONFIG.
pub async fn set_scheduler_parameters_flags(
    session: &Session,
    a: proto::DomainSetSchedulerParametersFlagsArgs,
) -> Result<()> {
    set_scheduler(
        session,
        "virDomainSetSchedulerParametersFlags",
        &a.dom,
        a.params,
        a.flags,
    )
    .await
}

/// DOMAIN_GET_MEMORY_PARAMETERS (198): with `nparams == 0` how many limits
/// there are, else the first `nparams`.
///
/// # Errors
/// `VIR_ERR_RPC` over the bound; a negative count or LIVE with CONFIG
/// (`VIR_ERR_INVALID_ARG`); the driver's.
pub async fn get_memory_parameters(
    session: &Session,
    a: proto::DomainGetMemoryParametersArgs,
) -> Result<proto::DomainGetMemoryParametersRet> {
    const OP: &str = "virDomainGetMemoryParameters";
    check_wanted(a.nparams, proto::REMOTE_DOMAIN_MEMORY_PARAMETERS_MAX)?;
    affect::check_exclusive(OP, a.flags).map_err(err)?;
    let all = driver(session)?
        .memory_parameters(&from_wire_dom(&a.dom), a.flags)
        .await
        .map_err(err)?;
    let (params, nparams) = tune::select(OP, all, a.nparams).map_err(err)?;
    Ok(proto::DomainGetMemoryParametersRet {
        params: params.into_iter().map(Into::into).collect(),
        nparams,
    })
}

/// DOMAIN_SET_MEMORY_PARAMETERS (197).
///
/// # Errors
/// An empty or malformed list, LIVE with CONFIG (`VIR_ERR_INVALID_ARG`);
/// the driver's.
pub async fn set_memory_parameters(
    session: &Session,
    a: proto::DomainSetMemoryParametersArgs,
) -> Result<()> {
    const OP: &str = "virDomainSetMemoryParameters";
    let params = received(a.params, proto::REMOTE_DOMAIN_MEMORY_PARAMETERS_MAX)?;
    if params.is_empty() {
        return Err(err(migrated_core::Error::InvalidArg {
            operation: OP,
            reason: format!("nparams in {OP} must be greater than zero"),
        }));
    }
    affect::check_exclusive(OP, a.flags).map_err(err)?;
    driver(session)?
        .set_memory_parameters(&from_wire_dom(&a.dom), &params, a.flags)
        .await
        .map_err(err)
}

/// DOMAIN_GET_CPU_STATS (262): the counting queries and the statistics of
/// [`tune::CpuStats::answer`].
///
/// # Errors
/// `VIR_ERR_RPC` for over 16 statistics or 128 CPUs (libvirtd's bounds);
/// bad ranges (`VIR_ERR_INVALID_ARG`); the driver's ("domain is not
/// running").
pub async fn get_cpu_stats(
    session: &Session,
    a: proto::DomainGetCpuStatsArgs,
) -> Result<proto::DomainGetCpuStatsRet> {
    if usize::try_from(a.nparams).is_ok_and(|n| n > proto::REMOTE_NODE_CPU_STATS_MAX) {
        return Err(rpc_error("nparams too large"));
    }
    if usize::try_from(a.ncpus).is_ok_and(|n| n > proto::REMOTE_DOMAIN_GET_CPU_STATS_NCPUS_MAX) {
        return Err(rpc_error("ncpus too large"));
    }
    let stats = driver(session)?
        .cpu_stats(&from_wire_dom(&a.dom), a.flags)
        .await
        .map_err(err)?;
    let answer = stats.answer(a.nparams, a.start_cpu, a.ncpus).map_err(err)?;
    Ok(proto::DomainGetCpuStatsRet {
        params: answer.params.into_iter().map(Into::into).collect(),
        nparams: answer.count,
    })
}

/// DOMAIN_GET_HOSTNAME (277); not on read-only connections (it may ask
/// the guest agent).
///
/// # Errors
/// The driver's.
pub async fn get_hostname(
    session: &Session,
    a: proto::DomainGetHostnameArgs,
) -> Result<proto::DomainGetHostnameRet> {
    let hostname = driver(session)?
        .guest_hostname(&from_wire_dom(&a.dom), a.flags)
        .await
        .map_err(err)?;
    Ok(proto::DomainGetHostnameRet { hostname })
}

/// DOMAIN_GET_TIME (337); not on read-only connections.
///
/// # Errors
/// The driver's ("domain is not running").
pub async fn get_time(
    session: &Session,
    a: proto::DomainGetTimeArgs,
) -> Result<proto::DomainGetTimeRet> {
    let t = driver(session)?
        .guest_time(&from_wire_dom(&a.dom), a.flags)
        .await
        .map_err(err)?;
    Ok(proto::DomainGetTimeRet {
        seconds: t.seconds,
        nseconds: t.nseconds,
    })
}

/// DOMAIN_SET_TIME (338).
///
/// # Errors
/// The driver's.
pub async fn set_time(session: &Session, a: proto::DomainSetTimeArgs) -> Result<()> {
    let time = GuestTime {
        seconds: a.seconds,
        nseconds: a.nseconds,
    };
    driver(session)?
        .set_guest_time(&from_wire_dom(&a.dom), time, a.flags)
        .await
        .map_err(err)
}
