//! A domain's disks and network interfaces as libvirt reports them:
//! DOMAIN_BLOCK_STATS and DOMAIN_BLOCK_STATS_FLAGS (`virsh domblkstat`,
//! which asks for the typed form first and falls back to the legacy one on
//! `VIR_ERR_NO_SUPPORT`), DOMAIN_GET_BLOCK_INFO (`virsh domblkinfo`) and
//! DOMAIN_INTERFACE_STATS (`virsh domifstat`). The figures come from the
//! driver; the wire forms are composed here.

use migrated_core::domain::BlockStats;
use migrated_core::driver::Driver;
use migrated_core::flags::check_flags;
use migrated_core::typed_params::{TypedParams, TypedValue};
use migrated_proto::{
    DomainBlockStatsArgs, DomainBlockStatsFlagsArgs, DomainBlockStatsFlagsRet, DomainBlockStatsRet,
    DomainGetBlockInfoArgs, DomainGetBlockInfoRet, DomainInterfaceStatsArgs,
    DomainInterfaceStatsRet, REMOTE_DOMAIN_BLOCK_STATS_PARAMETERS_MAX,
};
use migrated_rpc::WireError;

use super::from_wire_dom;
use crate::handler::Session;
use crate::wire::to_wire_error;

type Result<T> = std::result::Result<T, WireError>;

/// `VIR_TYPED_PARAM_STRING_OKAY`: the caller accepts string parameters.
const TYPED_PARAM_STRING_OKAY: u32 = 1 << 2;

fn err(e: migrated_core::Error) -> WireError {
    to_wire_error(&e)
}

fn driver(session: &Session) -> Result<std::sync::Arc<dyn Driver>> {
    Ok(session.driver()?.driver)
}

/// DOMAIN_BLOCK_STATS: the legacy five counters, -1 where unknown.
///
/// # Errors
/// The driver's: a domain that is not running, an unknown disk
/// (`VIR_ERR_INVALID_ARG` "invalid path: …").
pub async fn block_stats(
    session: &Session,
    a: DomainBlockStatsArgs,
) -> Result<DomainBlockStatsRet> {
    let s = driver(session)?
        .block_stats(&from_wire_dom(&a.dom), &a.path)
        .await
        .map_err(err)?;
    let known = |v: Option<i64>| v.unwrap_or(-1);
    Ok(DomainBlockStatsRet {
        rd_req: known(s.rd_req),
        rd_bytes: known(s.rd_bytes),
        wr_req: known(s.wr_req),
        wr_bytes: known(s.wr_bytes),
        errs: known(s.errs),
    })
}

/// The typed form of `s`, in libvirt's QEMU driver's order, with only the
/// counters the hypervisor keeps.
fn block_stats_params(s: &BlockStats) -> TypedParams {
    let mut params = TypedParams::new();
    for (field, value) in [
        ("wr_bytes", s.wr_bytes),
        ("wr_operations", s.wr_req),
        ("rd_bytes", s.rd_bytes),
        ("rd_operations", s.rd_req),
        ("flush_operations", s.flush_req),
        ("wr_total_times", s.wr_total_ns),
        ("rd_total_times", s.rd_total_ns),
        ("flush_total_times", s.flush_total_ns),
        ("errs", s.errs),
    ] {
        if let Some(v) = value {
            params.push(field, TypedValue::LLong(v));
        }
    }
    params
}

/// DOMAIN_BLOCK_STATS_FLAGS: `nparams = 0` asks how many counters there
/// are; otherwise at most `nparams` of them, as typed parameters.
///
/// # Errors
/// `nparams` over the protocol's limit (`VIR_ERR_RPC` "nparams too large")
/// or negative, unknown flags (`VIR_ERR_INVALID_ARG`); the driver's.
pub async fn block_stats_flags(
    session: &Session,
    a: DomainBlockStatsFlagsArgs,
) -> Result<DomainBlockStatsFlagsRet> {
    const OP: &str = "virDomainBlockStatsFlags";
    let wanted = usize::try_from(a.nparams).map_err(|_| {
        err(migrated_core::Error::InvalidArg {
            operation: OP,
            reason: "nparams must not be negative".into(),
        })
    })?;
    if wanted > REMOTE_DOMAIN_BLOCK_STATS_PARAMETERS_MAX {
        return Err(crate::wire::rpc_error("nparams too large"));
    }
    check_flags(OP, u64::from(a.flags), u64::from(TYPED_PARAM_STRING_OKAY)).map_err(err)?;
    let stats = driver(session)?
        .block_stats_flags(&from_wire_dom(&a.dom), &a.path)
        .await
        .map_err(err)?;
    let params = block_stats_params(&stats);
    if wanted == 0 {
        return Ok(DomainBlockStatsFlagsRet {
            params: Vec::new(),
            nparams: i32::try_from(params.len()).unwrap_or(i32::MAX),
        });
    }
    let params: Vec<_> = params.into_wire().into_iter().take(wanted).collect();
    Ok(DomainBlockStatsFlagsRet {
        nparams: i32::try_from(params.len()).unwrap_or(i32::MAX),
        params,
    })
}

/// DOMAIN_GET_BLOCK_INFO: capacity, allocation and physical size, bytes.
///
/// # Errors
/// Unknown flags; the driver's (an unknown disk, a disk without source).
pub async fn get_block_info(
    session: &Session,
    a: DomainGetBlockInfoArgs,
) -> Result<DomainGetBlockInfoRet> {
    check_flags("virDomainGetBlockInfo", u64::from(a.flags), 0).map_err(err)?;
    let info = driver(session)?
        .block_info(&from_wire_dom(&a.dom), &a.path)
        .await
        .map_err(err)?;
    Ok(DomainGetBlockInfoRet {
        capacity: info.capacity,
        allocation: info.allocation,
        physical: info.physical,
    })
}

/// DOMAIN_INTERFACE_STATS: the interface's traffic as the guest sees it.
///
/// # Errors
/// The driver's: a domain that is not running, an unknown interface
/// (`VIR_ERR_INVALID_ARG`), one without a host device (QEMU's user
/// networking: `VIR_ERR_INTERNAL_ERROR`, as libvirt).
pub async fn interface_stats(
    session: &Session,
    a: DomainInterfaceStatsArgs,
) -> Result<DomainInterfaceStatsRet> {
    let s = driver(session)?
        .interface_stats(&from_wire_dom(&a.dom), &a.path)
        .await
        .map_err(err)?;
    Ok(DomainInterfaceStatsRet {
        rx_bytes: s.rx_bytes,
        rx_packets: s.rx_packets,
        rx_errs: s.rx_errs,
        rx_drop: s.rx_drop,
        tx_bytes: s.tx_bytes,
        tx_packets: s.tx_packets,
        tx_errs: s.tx_errs,
        tx_drop: s.tx_drop,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_block_stats_follow_libvirts_order_and_skip_unknown_counters() {
        let s = BlockStats {
            rd_req: Some(1),
            rd_bytes: Some(2),
            wr_req: Some(3),
            wr_bytes: Some(4),
            flush_req: Some(5),
            ..BlockStats::default()
        };
        let names: Vec<_> = block_stats_params(&s)
            .iter()
            .map(|p| p.field.clone())
            .collect();
        assert_eq!(
            names,
            [
                "wr_bytes",
                "wr_operations",
                "rd_bytes",
                "rd_operations",
                "flush_operations"
            ]
        );
    }
}
