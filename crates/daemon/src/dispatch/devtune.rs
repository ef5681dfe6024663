//! Tuning of a domain's I/O, NUMA policy, devices and perf events, and its
//! interface addresses: `virsh blkiotune` (DOMAIN_GET/SET_BLKIO_PARAMETERS),
//! `virsh blkdeviotune` (DOMAIN_GET/SET_BLOCK_IO_TUNE), `virsh numatune`
//! (DOMAIN_GET/SET_NUMA_PARAMETERS), `virsh domiftune`
//! (DOMAIN_GET/SET_INTERFACE_PARAMETERS), `virsh domifaddr`
//! (DOMAIN_INTERFACE_ADDRESSES) and `virsh perf` (DOMAIN_GET/SET_PERF_EVENTS).
//!
//! As in [`super::tune`], the RPC bounds of libvirtd, the public API's
//! argument checks and the count protocol of the parameter queries are
//! applied here once for every driver; the drivers answer every parameter.
//! LIVE with CONFIG is refused here for the queries (the public API does)
//! and left to the drivers for the changes: libvirt's QEMU driver changes
//! both definitions, its test driver refuses.

use migrated_core::flags::affect;
use migrated_core::tune::{self, ifaddr};
use migrated_core::typed_params::TypedParams;
use migrated_core::Error;
use migrated_proto as proto;

use super::from_wire_dom;
use super::tune::{check_wanted, driver, err, received};
use crate::handler::Session;
use crate::wire::read_only;
use migrated_rpc::WireError;

type Result<T> = std::result::Result<T, WireError>;

/// The first `wanted` of `all` (or their count), as the wire answers it.
fn answer(
    operation: &'static str,
    all: TypedParams,
    wanted: i32,
) -> Result<(Vec<proto::TypedParam>, i32)> {
    let (params, nparams) = tune::select(operation, all, wanted).map_err(err)?;
    Ok((params.into_iter().map(Into::into).collect(), nparams))
}

/// The checks of a parameter query before its driver runs.
fn check_query(operation: &'static str, nparams: i32, max: usize, flags: u32) -> Result<()> {
    check_wanted(nparams, max)?;
    affect::check_exclusive(operation, flags).map_err(err)
}

/// DOMAIN_GET_BLKIO_PARAMETERS (206).
///
/// # Errors
/// `VIR_ERR_RPC` over the bound; a negative count or LIVE with CONFIG
/// (`VIR_ERR_INVALID_ARG`); the driver's.
pub async fn get_blkio_parameters(
    session: &Session,
    a: proto::DomainGetBlkioParametersArgs,
) -> Result<proto::DomainGetBlkioParametersRet> {
    const OP: &str = "virDomainGetBlkioParameters";
    check_query(
        OP,
        a.nparams,
        proto::REMOTE_DOMAIN_BLKIO_PARAMETERS_MAX,
        a.flags,
    )?;
    let all = driver(session)?
        .blkio_parameters(&from_wire_dom(&a.dom), a.flags)
        .await
        .map_err(err)?;
    let (params, nparams) = answer(OP, all, a.nparams)?;
    Ok(proto::DomainGetBlkioParametersRet { params, nparams })
}

/// DOMAIN_SET_BLKIO_PARAMETERS (205).
///
/// # Errors
/// A malformed list; the driver's.
pub async fn set_blkio_parameters(
    session: &Session,
    a: proto::DomainSetBlkioParametersArgs,
) -> Result<()> {
    let params = received(a.params, proto::REMOTE_DOMAIN_BLKIO_PARAMETERS_MAX)?;
    driver(session)?
        .set_blkio_parameters(&from_wire_dom(&a.dom), &params, a.flags)
        .await
        .map_err(err)
}

/// DOMAIN_GET_BLOCK_IO_TUNE (253): the disk may be left out only to count.
///
/// # Errors
/// As [`get_blkio_parameters`]; no disk with `nparams > 0`
/// (`VIR_ERR_INVALID_ARG`).
pub async fn get_block_io_tune(
    session: &Session,
    a: proto::DomainGetBlockIoTuneArgs,
) -> Result<proto::DomainGetBlockIoTuneRet> {
    const OP: &str = "virDomainGetBlockIoTune";
    check_query(
        OP,
        a.nparams,
        proto::REMOTE_DOMAIN_BLOCK_IO_TUNE_PARAMETERS_MAX,
        a.flags,
    )?;
    if a.nparams != 0 && a.disk.is_none() {
        return Err(err(Error::InvalidArg {
            operation: OP,
            reason: format!("disk in {OP} must not be NULL"),
        }));
    }
    let all = driver(session)?
        .block_io_tune(&from_wire_dom(&a.dom), a.disk.as_deref(), a.flags)
        .await
        .map_err(err)?;
    let (params, nparams) = answer(OP, all, a.nparams)?;
    Ok(proto::DomainGetBlockIoTuneRet { params, nparams })
}

/// DOMAIN_SET_BLOCK_IO_TUNE (252).
///
/// # Errors
/// A malformed list; the driver's (limits that
/// contradict each other, an unknown disk).
pub async fn set_block_io_tune(
    session: &Session,
    a: proto::DomainSetBlockIoTuneArgs,
) -> Result<()> {
    let params = received(a.params, proto::REMOTE_DOMAIN_BLOCK_IO_TUNE_PARAMETERS_MAX)?;
    driver(session)?
        .set_block_io_tune(&from_wire_dom(&a.dom), &a.disk, &params, a.flags)
        .await
        .map_err(err)
}

/// DOMAIN_GET_NUMA_PARAMETERS (255).
///
/// # Errors
/// As [`get_blkio_parameters`].
pub async fn get_numa_parameters(
    session: &Session,
    a: proto::DomainGetNumaParametersArgs,
) -> Result<proto::DomainGetNumaParametersRet> {
    const OP: &str = "virDomainGetNumaParameters";
    check_query(
        OP,
        a.nparams,
        proto::REMOTE_DOMAIN_NUMA_PARAMETERS_MAX,
        a.flags,
    )?;
    let all = driver(session)?
        .numa_parameters(&from_wire_dom(&a.dom), a.flags)
        .await
        .map_err(err)?;
    let (params, nparams) = answer(OP, all, a.nparams)?;
    Ok(proto::DomainGetNumaParametersRet { params, nparams })
}

/// DOMAIN_SET_NUMA_PARAMETERS (254).
///
/// # Errors
/// A malformed list; the driver's.
pub async fn set_numa_parameters(
    session: &Session,
    a: proto::DomainSetNumaParametersArgs,
) -> Result<()> {
    let params = received(a.params, proto::REMOTE_DOMAIN_NUMA_PARAMETERS_MAX)?;
    driver(session)?
        .set_numa_parameters(&from_wire_dom(&a.dom), &params, a.flags)
        .await
        .map_err(err)
}

/// DOMAIN_GET_INTERFACE_PARAMETERS (257).
///
/// # Errors
/// As [`get_blkio_parameters`]; an unknown interface (the driver's).
pub async fn get_interface_parameters(
    session: &Session,
    a: proto::DomainGetInterfaceParametersArgs,
) -> Result<proto::DomainGetInterfaceParametersRet> {
    const OP: &str = "virDomainGetInterfaceParameters";
    check_query(
        OP,
        a.nparams,
        proto::REMOTE_DOMAIN_INTERFACE_PARAMETERS_MAX,
        a.flags,
    )?;
    let all = driver(session)?
        .interface_parameters(&from_wire_dom(&a.dom), &a.device, a.flags)
        .await
        .map_err(err)?;
    let (params, nparams) = answer(OP, all, a.nparams)?;
    Ok(proto::DomainGetInterfaceParametersRet { params, nparams })
}

/// DOMAIN_SET_INTERFACE_PARAMETERS (256).
///
/// # Errors
/// A malformed list; the driver's.
pub async fn set_interface_parameters(
    session: &Session,
    a: proto::DomainSetInterfaceParametersArgs,
) -> Result<()> {
    let params = received(a.params, proto::REMOTE_DOMAIN_INTERFACE_PARAMETERS_MAX)?;
    driver(session)?
        .set_interface_parameters(&from_wire_dom(&a.dom), &a.device, &params, a.flags)
        .await
        .map_err(err)
}

/// DOMAIN_INTERFACE_ADDRESSES (353): allowed read-only except from the
/// guest agent, as libvirt's public API decides.
///
/// # Errors
/// `VIR_ERR_OPERATION_DENIED` for the agent on a read-only connection;
/// the driver's.
pub async fn interface_addresses(
    session: &Session,
    a: proto::DomainInterfaceAddressesArgs,
) -> Result<proto::DomainInterfaceAddressesRet> {
    const OP: &str = "virDomainInterfaceAddresses";
    if a.source == ifaddr::SRC_AGENT && session.is_readonly() {
        return Err(read_only(OP));
    }
    let ifaces = driver(session)?
        .interface_addresses(&from_wire_dom(&a.dom), a.source, a.flags)
        .await
        .map_err(err)?;
    if ifaces.len() > proto::REMOTE_DOMAIN_INTERFACE_MAX {
        return Err(crate::wire::rpc_error("too many interfaces"));
    }
    let ifaces = ifaces
        .into_iter()
        .map(|i| proto::DomainInterface {
            name: i.name,
            hwaddr: i.hwaddr,
            addrs: i
                .addrs
                .into_iter()
                .take(proto::REMOTE_DOMAIN_IP_ADDR_MAX)
                .map(|a| proto::DomainIpAddr {
                    r#type: a.kind,
                    addr: a.addr,
                    prefix: a.prefix,
                })
                .collect(),
        })
        .collect();
    Ok(proto::DomainInterfaceAddressesRet { ifaces })
}

/// DOMAIN_GET_PERF_EVENTS (365): every event, enabled or not.
///
/// # Errors
/// LIVE with CONFIG; the driver's.
pub async fn get_perf_events(
    session: &Session,
    a: proto::DomainGetPerfEventsArgs,
) -> Result<proto::DomainGetPerfEventsRet> {
    affect::check_exclusive("virDomainGetPerfEvents", a.flags).map_err(err)?;
    let all = driver(session)?
        .perf_events(&from_wire_dom(&a.dom), a.flags)
        .await
        .map_err(err)?;
    Ok(proto::DomainGetPerfEventsRet {
        params: all.into_vec().into_iter().map(Into::into).collect(),
    })
}

/// DOMAIN_SET_PERF_EVENTS (366).
///
/// # Errors
/// A malformed list; the driver's.
pub async fn set_perf_events(session: &Session, a: proto::DomainSetPerfEventsArgs) -> Result<()> {
    let params = received(a.params, proto::REMOTE_DOMAIN_PERF_EVENTS_MAX)?;
    driver(session)?
        .set_perf_events(&from_wire_dom(&a.dom), &params, a.flags)
        .await
        .map_err(err)
}
