//! A domain's vCPUs and memory as libvirt reports them: DOMAIN_GET_VCPUS
//! (`virsh vcpuinfo`), DOMAIN_GET_VCPUS_FLAGS (`virsh vcpucount`),
//! DOMAIN_GET_MAX_VCPUS, DOMAIN_GET_VCPU_PIN_INFO (`virsh vcpupin`),
//! DOMAIN_MEMORY_STATS (`virsh dommemstat`), the vCPU count changes
//! (`virsh setvcpus`: DOMAIN_SET_VCPUS, DOMAIN_SET_VCPUS_FLAGS), the memory
//! size changes (`virsh setmem`, `virsh setmaxmem`), and the host CPU map
//! they are read against, NODE_GET_CPU_MAP; and the IOThreads
//! (`virsh iothreadinfo`: DOMAIN_GET_IOTHREAD_INFO).
//!
//! The counts come from the domain's XML, live or inactive: `<vcpu
//! current='N'>M</vcpu>` is N vCPUs online of at most M. Per-vCPU figures
//! and memory statistics come from the driver. Pinning is not supported, so
//! every vCPU may run on every host CPU.

use migrated_core::driver::{DomainRef, DomainState, Driver};
use migrated_core::flags::{affect, check_flags, vcpu, xml};
use migrated_core::xml::DomainDef;
use migrated_proto::{
    DomainGetIothreadInfoArgs, DomainGetIothreadInfoRet, DomainGetMaxVcpusArgs,
    DomainGetMaxVcpusRet, DomainGetVcpuPinInfoArgs, DomainGetVcpuPinInfoRet, DomainGetVcpusArgs,
    DomainGetVcpusFlagsArgs, DomainGetVcpusFlagsRet, DomainGetVcpusRet, DomainIothreadInfo,
    DomainMemoryStat, DomainMemoryStatsArgs, DomainMemoryStatsRet, NodeGetCpuMapArgs,
    NodeGetCpuMapRet, VcpuInfo, REMOTE_CPUMAPS_MAX, REMOTE_DOMAIN_MEMORY_STATS_MAX,
    REMOTE_VCPUINFO_MAX,
};
use migrated_rpc::WireError;

use super::from_wire_dom;
use crate::handler::Session;
use crate::wire::to_wire_error;

type Result<T> = std::result::Result<T, WireError>;

use affect::{CONFIG as AFFECT_CONFIG, LIVE as AFFECT_LIVE};
use vcpu::{GUEST as VCPU_GUEST, MAXIMUM as VCPU_MAXIMUM};

fn err(e: migrated_core::Error) -> WireError {
    to_wire_error(&e)
}

fn driver(session: &Session) -> Result<std::sync::Arc<dyn Driver>> {
    Ok(session.driver()?.driver)
}

fn not_running(what: &str) -> WireError {
    err(migrated_core::Error::invalid(what))
}

/// The vCPU count `flags` asks for: of the live definition or the config
/// (as `virDomainObjGetOneDef`), the vCPUs online or the maximum.
async fn vcpu_count(driver: &dyn Driver, dom: &DomainRef, flags: u32) -> Result<i32> {
    check_flags(
        "virDomainGetVcpusFlags",
        u64::from(flags),
        u64::from(AFFECT_LIVE | AFFECT_CONFIG | VCPU_MAXIMUM | VCPU_GUEST),
    )
    .map_err(err)?;
    if flags & AFFECT_LIVE != 0 && flags & AFFECT_CONFIG != 0 {
        return Err(err(migrated_core::Error::InvalidArg {
            operation: "virDomainGetVcpusFlags",
            reason: "flags 'affect live' and 'affect config' are mutually exclusive".into(),
        }));
    }
    let info = driver.get_info(dom).await.map_err(err)?;
    let active = info.state != DomainState::Shutoff;
    if flags & AFFECT_LIVE != 0 && !active {
        return Err(not_running("domain is not running"));
    }
    if flags & AFFECT_CONFIG != 0 && !driver.is_persistent(dom).await.map_err(err)? {
        return Err(not_running(
            "transient domains do not have any persistent config",
        ));
    }
    if flags & VCPU_GUEST != 0 {
        return Err(err(migrated_core::Error::ArgumentUnsupported {
            what: "the guest agent's vCPU count (VIR_DOMAIN_VCPU_GUEST)".into(),
            driver: driver.support().driver,
        }));
    }
    let config = flags & AFFECT_CONFIG != 0 || (flags & AFFECT_LIVE == 0 && !active);
    let desc = driver
        .get_xml_desc(dom, if config { xml::INACTIVE } else { 0 })
        .await
        .map_err(err)?;
    let def = DomainDef::parse(&desc).map_err(|e| err(e.into()))?;
    let count = if flags & VCPU_MAXIMUM != 0 {
        def.vcpus
    } else {
        def.current_vcpus()
    };
    Ok(i32::try_from(count).unwrap_or(i32::MAX))
}

/// DOMAIN_SET_VCPUS (`flags` LIVE) and DOMAIN_SET_VCPUS_FLAGS: `nvcpus`
/// vCPUs online, or with `VCPU_MAXIMUM` at most, live and/or configured.
///
/// # Errors
/// INVALID_ARG, as libvirt's public API checks before the driver: a zero
/// count, MAXIMUM without CONFIG, GUEST with CONFIG; the driver's errors
/// (count over the maximum, the maximum of a running guest, ...).
pub async fn set_vcpus(
    session: &Session,
    dom: migrated_proto::NonnullDomain,
    nvcpus: u32,
    flags: u32,
) -> Result<()> {
    const OP: &str = "virDomainSetVcpusFlags";
    let invalid = |reason: &str| {
        err(migrated_core::Error::InvalidArg {
            operation: OP,
            reason: reason.into(),
        })
    };
    if flags & VCPU_MAXIMUM != 0 && flags & AFFECT_CONFIG == 0 {
        return Err(invalid(
            "Flag 'VIR_DOMAIN_AFFECT_CONFIG' is required by flag 'VIR_DOMAIN_VCPU_MAXIMUM'",
        ));
    }
    if flags & VCPU_GUEST != 0 && flags & AFFECT_CONFIG != 0 {
        return Err(invalid(
            "Flags 'VIR_DOMAIN_VCPU_GUEST' and 'VIR_DOMAIN_AFFECT_CONFIG' are mutually exclusive",
        ));
    }
    if nvcpus == 0 {
        return Err(invalid("nvcpus must not be zero"));
    }
    driver(session)?
        .set_vcpus(&from_wire_dom(&dom), nvcpus, flags)
        .await
        .map_err(err)
}

/// DOMAIN_GET_VCPUS_FLAGS: current or maximum vCPUs, live or configured.
///
/// # Errors
/// Unknown flags or LIVE with CONFIG (`VIR_ERR_INVALID_ARG`); LIVE on a
/// guest that is not running or CONFIG on a transient one
/// (`VIR_ERR_OPERATION_INVALID`); GUEST (`VIR_ERR_ARGUMENT_UNSUPPORTED`: no
/// guest agent); `VIR_ERR_NO_DOMAIN`.
pub async fn get_vcpus_flags(
    session: &Session,
    a: DomainGetVcpusFlagsArgs,
) -> Result<DomainGetVcpusFlagsRet> {
    let driver = driver(session)?;
    let num = vcpu_count(driver.as_ref(), &from_wire_dom(&a.dom), a.flags).await?;
    Ok(DomainGetVcpusFlagsRet { num })
}

/// DOMAIN_GET_MAX_VCPUS: the running guest's maximum, as libvirt's QEMU
/// driver (LIVE | MAXIMUM).
///
/// # Errors
/// As [`get_vcpus_flags`].
pub async fn get_max_vcpus(
    session: &Session,
    a: DomainGetMaxVcpusArgs,
) -> Result<DomainGetMaxVcpusRet> {
    let driver = driver(session)?;
    let num = vcpu_count(
        driver.as_ref(),
        &from_wire_dom(&a.dom),
        AFFECT_LIVE | VCPU_MAXIMUM,
    )
    .await?;
    Ok(DomainGetMaxVcpusRet { num })
}

/// Checks a request for `count` CPU maps of `maplen` bytes (`maplen` at
/// least `min_maplen`) against libvirt's rules and the protocol's limits.
fn map_size(
    operation: &'static str,
    what: &str,
    count: i32,
    maplen: i32,
    min_maplen: usize,
) -> Result<(usize, usize)> {
    let invalid = |reason: String| err(migrated_core::Error::InvalidArg { operation, reason });
    let count = usize::try_from(count)
        .ok()
        .filter(|&n| n >= 1)
        .ok_or_else(|| invalid(format!("{what} must be at least 1")))?;
    let maplen = usize::try_from(maplen)
        .ok()
        .filter(|&n| n >= min_maplen)
        .ok_or_else(|| invalid(format!("maplen must be at least {min_maplen}")))?;
    if count > REMOTE_VCPUINFO_MAX {
        return Err(crate::wire::rpc_error(&format!(
            "{what} > REMOTE_VCPUINFO_MAX"
        )));
    }
    if count.saturating_mul(maplen) > REMOTE_CPUMAPS_MAX {
        return Err(crate::wire::rpc_error(&format!(
            "{what} * maplen > REMOTE_CPUMAPS_MAX"
        )));
    }
    Ok((count, maplen))
}

/// The host's CPU count, as the driver describes the host.
async fn host_cpus(driver: &dyn Driver) -> usize {
    driver
        .node_info()
        .await
        .map_or(1, |n| usize::try_from(n.cpus).unwrap_or(1))
}

/// `count` maps of `maplen` bytes, the first `filled` of them with every
/// host CPU's bit set (no pinning), the rest zero, as libvirt lays them out.
fn cpu_maps(count: usize, maplen: usize, filled: usize, host_cpus: usize) -> Vec<u8> {
    let mut maps = vec![0u8; count * maplen];
    if maplen > 0 {
        for map in maps.chunks_mut(maplen).take(filled) {
            for cpu in 0..host_cpus.min(maplen * 8) {
                map[cpu / 8] |= 1 << (cpu % 8);
            }
        }
    }
    maps
}

/// DOMAIN_GET_VCPUS: up to `maxinfo` vCPUs of a running guest, and for each
/// a `maplen`-byte map of the host CPUs it may run on.
///
/// # Errors
/// `maxinfo` < 1, `maplen` < 0 (`VIR_ERR_INVALID_ARG`) or over the
/// protocol's limits (`VIR_ERR_RPC`); a guest that is not running
/// (`VIR_ERR_OPERATION_INVALID`); the driver's error.
pub async fn get_vcpus(session: &Session, a: DomainGetVcpusArgs) -> Result<DomainGetVcpusRet> {
    let (maxinfo, maplen) = map_size("virDomainGetVcpus", "maxinfo", a.maxinfo, a.maplen, 0)?;
    let driver = driver(session)?;
    let dom = from_wire_dom(&a.dom);
    if driver.get_info(&dom).await.map_err(err)?.state == DomainState::Shutoff {
        return Err(not_running(
            "cannot retrieve vcpu information for inactive domain",
        ));
    }
    let vcpus = driver.vcpu_info(&dom).await.map_err(err)?;
    let info: Vec<VcpuInfo> = vcpus
        .iter()
        .take(maxinfo)
        .map(|v| VcpuInfo {
            number: v.number,
            state: v.state,
            cpu_time: v.cpu_time_ns,
            cpu: v.cpu,
        })
        .collect();
    let cpumaps = cpu_maps(
        maxinfo,
        maplen,
        info.len(),
        host_cpus(driver.as_ref()).await,
    );
    Ok(DomainGetVcpusRet { info, cpumaps })
}

/// DOMAIN_MEMORY_STATS: up to `maxStats` statistics of a running guest.
///
/// # Errors
/// `maxStats` over the protocol's limit (`VIR_ERR_RPC`); unknown flags;
/// a guest that is not running (`VIR_ERR_OPERATION_INVALID`); the driver's
/// error.
pub async fn memory_stats(
    session: &Session,
    a: DomainMemoryStatsArgs,
) -> Result<DomainMemoryStatsRet> {
    let max_stats = usize::try_from(a.max_stats).unwrap_or(usize::MAX);
    if max_stats > REMOTE_DOMAIN_MEMORY_STATS_MAX {
        return Err(crate::wire::rpc_error(
            "maxStats > REMOTE_DOMAIN_MEMORY_STATS_MAX",
        ));
    }
    check_flags("virDomainMemoryStats", u64::from(a.flags), 0).map_err(err)?;
    let driver = driver(session)?;
    let dom = from_wire_dom(&a.dom);
    if driver.get_info(&dom).await.map_err(err)?.state == DomainState::Shutoff {
        return Err(not_running("domain is not running"));
    }
    let stats = driver
        .memory_stats(&dom)
        .await
        .map_err(err)?
        .into_iter()
        .take(max_stats)
        .map(|s| DomainMemoryStat {
            tag: s.tag,
            val: s.value,
        })
        .collect();
    Ok(DomainMemoryStatsRet { stats })
}

/// DOMAIN_GET_VCPU_PIN_INFO: for up to `ncpumaps` vCPU slots (the
/// maximum, not only those online), the host CPUs each may run on (all of
/// them), live or configured.
///
/// # Errors
/// `ncpumaps` or `maplen` < 1 (`VIR_ERR_INVALID_ARG`) or over the
/// protocol's limits (`VIR_ERR_RPC`); as [`get_vcpus_flags`] for `flags`.
pub async fn get_vcpu_pin_info(
    session: &Session,
    a: DomainGetVcpuPinInfoArgs,
) -> Result<DomainGetVcpuPinInfoRet> {
    let (count, maplen) = map_size(
        "virDomainGetVcpuPinInfo",
        "ncpumaps",
        a.ncpumaps,
        a.maplen,
        1,
    )?;
    check_flags(
        "virDomainGetVcpuPinInfo",
        u64::from(a.flags),
        u64::from(AFFECT_LIVE | AFFECT_CONFIG),
    )
    .map_err(err)?;
    let driver = driver(session)?;
    // Every vCPU slot, online or not, as libvirt's
    // virDomainDefGetVcpuPinInfoHelper (`virsh vcpupin` lists them all).
    let vcpus = vcpu_count(
        driver.as_ref(),
        &from_wire_dom(&a.dom),
        a.flags | VCPU_MAXIMUM,
    )
    .await?;
    let num = usize::try_from(vcpus).unwrap_or(0).min(count);
    Ok(DomainGetVcpuPinInfoRet {
        cpumaps: cpu_maps(count, maplen, num, host_cpus(driver.as_ref()).await),
        num: i32::try_from(num).unwrap_or(i32::MAX),
    })
}

/// DOMAIN_GET_IOTHREAD_INFO (351): the IOThreads of the running guest or
/// of its config (`VIR_DOMAIN_AFFECT_LIVE`/`CONFIG`, one of them).
///
/// # Errors
/// INVALID_ARG for unknown flags and for both; the driver's (NO_DOMAIN,
/// "domain is not running", a transient domain's config).
pub async fn get_iothread_info(
    session: &Session,
    a: DomainGetIothreadInfoArgs,
) -> Result<DomainGetIothreadInfoRet> {
    const OP: &str = "virDomainGetIOThreadInfo";
    check_flags(
        OP,
        u64::from(a.flags),
        u64::from(AFFECT_LIVE | AFFECT_CONFIG),
    )
    .map_err(err)?;
    affect::check_exclusive(OP, a.flags).map_err(err)?;
    let threads = driver(session)?
        .iothread_info(&from_wire_dom(&a.dom), a.flags)
        .await
        .map_err(err)?;
    Ok(DomainGetIothreadInfoRet {
        ret: u32::try_from(threads.len()).unwrap_or(u32::MAX),
        info: threads
            .into_iter()
            .map(|t| DomainIothreadInfo {
                iothread_id: t.id,
                cpumap: t.cpumap,
            })
            .collect(),
    })
}

/// NODE_GET_CPU_MAP: the host's CPUs, all online (as the driver describes
/// the host).
///
/// # Errors
/// Unknown flags (`VIR_ERR_INVALID_ARG`); the driver's error.
pub async fn node_get_cpu_map(session: &Session, a: NodeGetCpuMapArgs) -> Result<NodeGetCpuMapRet> {
    check_flags("virNodeGetCPUMap", u64::from(a.flags), 0).map_err(err)?;
    let driver = driver(session)?;
    let cpus = driver.node_info().await.map_err(err)?.cpus;
    let count = usize::try_from(cpus).unwrap_or(0);
    Ok(NodeGetCpuMapRet {
        cpumap: if a.need_map != 0 {
            cpu_maps(1, count.div_ceil(8), 1, count)
        } else {
            Vec::new()
        },
        online: if a.need_online != 0 {
            u32::try_from(cpus).unwrap_or(0)
        } else {
            0
        },
        ret: cpus,
    })
}

/// DOMAIN_SET_MEMORY (`virsh setmem`: live), DOMAIN_SET_MAX_MEMORY
/// (`virsh setmaxmem`: the maximum) and DOMAIN_SET_MEMORY_FLAGS, as the
/// `flags` of the last; `kib` is the new size.
///
/// # Errors
/// INVALID_ARG for a zero size (libvirt's public API checks it before the
/// driver); the driver's errors (sizes over the maximum, a running guest's
/// maximum, no balloon).
pub async fn set_memory(
    session: &Session,
    dom: migrated_proto::NonnullDomain,
    kib: u64,
    flags: u32,
) -> Result<()> {
    if kib == 0 {
        return Err(err(migrated_core::Error::InvalidArg {
            operation: "virDomainSetMemoryFlags",
            reason: "memory must not be zero".into(),
        }));
    }
    driver(session)?
        .set_memory(&from_wire_dom(&dom), kib, flags)
        .await
        .map_err(err)
}

/// DOMAIN_SET_MEMORY_STATS_PERIOD (308): `virsh dommemstat --period`.
///
/// # Errors
/// The driver's (no balloon, a negative period, flags).
pub async fn set_memory_stats_period(
    session: &Session,
    args: migrated_proto::DomainSetMemoryStatsPeriodArgs,
) -> Result<()> {
    driver(session)?
        .set_memory_stats_period(&from_wire_dom(&args.dom), args.period, args.flags)
        .await
        .map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_set_every_host_cpu_of_the_filled_vcpus_only() {
        // 3 maps of 2 bytes, 2 vCPUs, 10 host CPUs.
        assert_eq!(
            cpu_maps(3, 2, 2, 10),
            vec![0xff, 0x03, 0xff, 0x03, 0x00, 0x00]
        );
        // A map shorter than the host's CPUs keeps to its length.
        assert_eq!(cpu_maps(1, 1, 1, 16), vec![0xff]);
        assert!(cpu_maps(2, 0, 2, 4).is_empty());
    }

    #[test]
    fn map_sizes_follow_libvirts_rules_and_limits() {
        assert!(map_size("op", "maxinfo", 4, 1, 0).is_ok());
        assert_eq!(
            map_size("op", "maxinfo", 0, 1, 0).err().map(|e| e.code),
            Some(8)
        );
        assert_eq!(
            map_size("op", "ncpumaps", 1, 0, 1).err().map(|e| e.code),
            Some(8)
        );
        let too_big = map_size("op", "maxinfo", 16384, 1024, 0).expect_err("over the limit");
        assert_eq!(too_big.code, 39, "VIR_ERR_RPC");
    }
}
