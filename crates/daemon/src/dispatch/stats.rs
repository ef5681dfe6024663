//! CONNECT_GET_ALL_DOMAIN_STATS (344): `virsh domstats`,
//! `virConnectGetAllDomainStats` and `virDomainListGetStats`.
//!
//! Composed here from what every driver already answers (the listing, the
//! state and the info), so each driver that lists domains serves it: the
//! groups `state`, `cpu-total`, `balloon` and `vcpu`, with libvirt's field
//! names and types. A driver whose support table says `device_stats` also
//! serves `block` and `interface`, from the domain's XML and its
//! `block_stats`, `block_info` and `interface_stats` answers, and
//! `cpu.user` / `cpu.system` from its `cpu_stats` total; as libvirt,
//! a figure the driver cannot give is left out, not an error. Other groups
//! (perf, iothread, …) are left out when not asked for explicitly, and
//! refused under `ENFORCE_STATS`, as libvirt's drivers do.

use migrated_core::domain::{DomainRef, DomainState};
use migrated_core::driver::Driver;
use migrated_core::flags::list;
use migrated_core::tune::cpu_stats;
use migrated_core::typed_params::{TypedParams, TypedValue};
use migrated_core::xml::{DomainDef, InterfaceType};
use migrated_proto::{
    ConnectGetAllDomainStatsArgs, ConnectGetAllDomainStatsRet, DomainStatsRecord,
};
use migrated_rpc::WireError;

use super::{from_wire_dom, to_wire_dom};
use crate::handler::Session;
use crate::wire::to_wire_error;

type Result<T> = std::result::Result<T, WireError>;

/// `VIR_DOMAIN_STATS_*` groups.
mod group {
    /// `VIR_DOMAIN_STATS_STATE`: `state.state`, `state.reason`.
    pub const STATE: u32 = 1 << 0;
    /// `VIR_DOMAIN_STATS_CPU_TOTAL`: `cpu.time`.
    pub const CPU_TOTAL: u32 = 1 << 1;
    /// `VIR_DOMAIN_STATS_BALLOON`: `balloon.current`, `balloon.maximum`.
    pub const BALLOON: u32 = 1 << 2;
    /// `VIR_DOMAIN_STATS_VCPU`: `vcpu.current`, `vcpu.maximum`, `vcpu.N.state`.
    pub const VCPU: u32 = 1 << 3;
    /// `VIR_DOMAIN_STATS_INTERFACE`: `net.count`, `net.N.name`, `net.N.rx.bytes`, ….
    pub const INTERFACE: u32 = 1 << 4;
    /// `VIR_DOMAIN_STATS_BLOCK`: `block.count`, `block.N.name`, `block.N.rd.reqs`, ….
    pub const BLOCK: u32 = 1 << 5;
    /// The groups served for every driver.
    pub const SERVED: u32 = STATE | CPU_TOTAL | BALLOON | VCPU;
    /// The groups served for a driver with `device_stats`.
    pub const DEVICES: u32 = INTERFACE | BLOCK;

    /// The groups served for a driver.
    pub fn served(device_stats: bool) -> u32 {
        if device_stats {
            SERVED | DEVICES
        } else {
            SERVED
        }
    }
}

/// `VIR_CONNECT_GET_ALL_DOMAINS_STATS_*` flags besides the state filters.
mod flag {
    /// Do not wait for a running job (nothing here waits on one).
    pub const NOWAIT: u32 = 1 << 29;
    /// Backing-chain block statistics (the block group here reports the
    /// disks' top images only).
    pub const BACKING: u32 = 1 << 30;
    /// Fail instead of leaving out groups that are not served.
    pub const ENFORCE_STATS: u32 = 1 << 31;
}

/// The listing filters these calls take (`ACTIVE` … `OTHER`), the same bits
/// as CONNECT_LIST_ALL_DOMAINS.
const FILTERS: u32 = list::ACTIVE
    | list::INACTIVE
    | list::PERSISTENT
    | list::TRANSIENT
    | list::RUNNING
    | list::PAUSED
    | list::SHUTOFF
    | list::OTHER;

/// `VIR_VCPU_RUNNING`.
const VCPU_RUNNING: i32 = 1;

const API: &str = "virConnectGetAllDomainStats";

fn err(e: migrated_core::Error) -> WireError {
    to_wire_error(&e)
}

/// The groups to report: every group in `served` for 0, else the requested
/// ones that are served (all of them, or an error, under `ENFORCE_STATS`).
fn groups(requested: u32, flags: u32, served: u32, driver: &'static str) -> Result<u32> {
    if requested == 0 {
        return Ok(served);
    }
    let missing = requested & !served;
    if missing != 0 && flags & flag::ENFORCE_STATS != 0 {
        return Err(err(migrated_core::Error::ArgumentUnsupported {
            what: format!("stats types bits 0x{missing:x}"),
            driver,
        }));
    }
    Ok(requested & served)
}

/// CONNECT_GET_ALL_DOMAIN_STATS: one record per domain, in the order of the
/// given list (domains in it that no longer exist are skipped, as libvirt
/// does) or of the driver's listing, after the state filters in `flags`.
///
/// # Errors
/// Unknown flags (`VIR_ERR_INVALID_ARG`); unserved groups under
/// `ENFORCE_STATS` (`VIR_ERR_ARGUMENT_UNSUPPORTED`); the driver's error.
pub async fn get_all(
    session: &Session,
    args: ConnectGetAllDomainStatsArgs,
) -> Result<ConnectGetAllDomainStatsRet> {
    migrated_core::flags::check_flags(
        API,
        u64::from(args.flags),
        u64::from(FILTERS | flag::NOWAIT | flag::BACKING | flag::ENFORCE_STATS),
    )
    .map_err(err)?;
    let driver = session.driver()?.driver;
    let support = driver.support();
    let groups = groups(
        args.stats,
        args.flags,
        group::served(support.device_stats),
        support.driver,
    )?;
    let listed = driver
        .list_all_domains(args.flags & FILTERS)
        .await
        .map_err(err)?;
    let doms: Vec<DomainRef> = if args.doms.is_empty() {
        listed
    } else {
        args.doms
            .iter()
            .map(from_wire_dom)
            .filter_map(|want| listed.iter().find(|d| d.uuid == want.uuid).cloned())
            .collect()
    };
    let mut ret_stats = Vec::with_capacity(doms.len());
    for dom in &doms {
        // A domain undefined since the listing is left out, as libvirt
        // leaves out domains that vanish while it collects.
        match record(driver.as_ref(), dom, groups).await {
            Ok(params) => ret_stats.push(DomainStatsRecord {
                dom: to_wire_dom(dom),
                params: params.into_wire(),
            }),
            Err(e) if e.code() == migrated_core::error::ErrorCode::NoDomain => {}
            Err(e) => return Err(err(e)),
        }
    }
    Ok(ConnectGetAllDomainStatsRet { ret_stats })
}

/// One domain's statistics for `groups`.
async fn record(
    driver: &dyn Driver,
    dom: &DomainRef,
    groups: u32,
) -> migrated_core::Result<TypedParams> {
    let device_stats = driver.support().device_stats;
    let mut p = TypedParams::new();
    let info = driver.get_info(dom).await?;
    let active = !matches!(info.state, DomainState::Shutoff);
    if groups & group::STATE != 0 {
        let state = driver.get_state(dom, 0).await?;
        p.push("state.state", TypedValue::Int(state.state as i32));
        p.push("state.reason", TypedValue::Int(state.reason));
    }
    if groups & group::CPU_TOTAL != 0 && active {
        p.push("cpu.time", TypedValue::ULLong(info.cpu_time_ns));
        if device_stats {
            // libvirt's QEMU driver adds the user and system shares (its
            // test driver does not); a figure it cannot read is left out.
            if let Ok(stats) = driver.cpu_stats(dom, 0).await {
                for (field, name) in [
                    (cpu_stats::USER_TIME, "cpu.user"),
                    (cpu_stats::SYSTEM_TIME, "cpu.system"),
                ] {
                    if let Some(value) = stats.total.get(field) {
                        p.push(name, value.clone());
                    }
                }
            }
        }
    }
    if groups & group::BALLOON != 0 {
        // libvirt reports the configured size for a guest that is not
        // running, and the balloon's for one that is.
        p.push("balloon.current", TypedValue::ULLong(info.memory_kib));
        p.push("balloon.maximum", TypedValue::ULLong(info.max_mem_kib));
    }
    if groups & (group::VCPU | group::DEVICES) == 0 {
        return Ok(p);
    }
    // The live definition for a running guest, as libvirt reads its vCPUs
    // and devices from the running domain object.
    let xml = driver.get_xml_desc(dom, 0).await?;
    let def = DomainDef::parse(&xml)?;
    if groups & group::VCPU != 0 {
        let vcpus = u32::from(info.nr_virt_cpu);
        p.push("vcpu.current", TypedValue::UInt(vcpus));
        p.push("vcpu.maximum", TypedValue::UInt(def.vcpus.max(vcpus)));
        if active {
            // Each vCPU's state and time where the driver knows them
            // (libvirt's qemuDomainGetStatsVcpu), else running.
            match driver.vcpu_info(dom).await {
                Ok(infos) => {
                    for v in infos {
                        let n = v.number;
                        p.push(format!("vcpu.{n}.state"), TypedValue::Int(v.state));
                        p.push(format!("vcpu.{n}.time"), TypedValue::ULLong(v.cpu_time_ns));
                    }
                }
                Err(_) => {
                    for n in 0..vcpus {
                        p.push(format!("vcpu.{n}.state"), TypedValue::Int(VCPU_RUNNING));
                    }
                }
            }
        }
    }
    if groups & group::DEVICES != 0 {
        if groups & group::INTERFACE != 0 && active {
            interface_stats(driver, dom, &def, &mut p).await;
        }
        if groups & group::BLOCK != 0 {
            block_stats(driver, dom, &def, active, &mut p).await;
        }
    }
    Ok(p)
}

/// A `*.count` field's value.
fn count(len: usize) -> TypedValue {
    TypedValue::UInt(u32::try_from(len).unwrap_or(u32::MAX))
}

/// Pushes `value` as an unsigned counter, unless the driver has no count.
fn push_count(p: &mut TypedParams, key: String, value: Option<i64>) {
    if let Some(v) = value.and_then(|v| u64::try_from(v).ok()) {
        p.push(key, TypedValue::ULLong(v));
    }
}

/// The `interface` group of a running domain, as libvirt's
/// `qemuDomainGetStatsInterface`: `net.count` counts every interface, but
/// only those with a host device (not user networking) get a name and
/// counters, and counters the host cannot give are left out.
async fn interface_stats(
    driver: &dyn Driver,
    dom: &DomainRef,
    def: &DomainDef,
    p: &mut TypedParams,
) {
    let nics = &def.devices.interfaces;
    p.push("net.count", count(nics.len()));
    for (n, nic) in nics.iter().enumerate() {
        let Some(ifname) = nic
            .target_dev
            .as_deref()
            .filter(|_| nic.kind != InterfaceType::User)
        else {
            continue;
        };
        p.push(
            format!("net.{n}.name"),
            TypedValue::String(ifname.to_owned()),
        );
        let Ok(s) = driver.interface_stats(dom, ifname).await else {
            continue;
        };
        for (field, value) in [
            ("rx.bytes", s.rx_bytes),
            ("rx.pkts", s.rx_packets),
            ("rx.errs", s.rx_errs),
            ("rx.drop", s.rx_drop),
            ("tx.bytes", s.tx_bytes),
            ("tx.pkts", s.tx_packets),
            ("tx.errs", s.tx_errs),
            ("tx.drop", s.tx_drop),
        ] {
            push_count(p, format!("net.{n}.{field}"), Some(value));
        }
    }
}

/// The `block` group, as libvirt's `qemuDomainGetStatsBlock` without
/// backing chains: every disk gets its target name and (if it has one) its
/// source path; a running guest's I/O counters and the sizes follow where
/// the driver can give them (none for an empty CD-ROM).
async fn block_stats(
    driver: &dyn Driver,
    dom: &DomainRef,
    def: &DomainDef,
    active: bool,
    p: &mut TypedParams,
) {
    let disks = &def.devices.disks;
    p.push("block.count", count(disks.len()));
    for (n, disk) in disks.iter().enumerate() {
        let target = disk.target.dev.as_str();
        p.push(
            format!("block.{n}.name"),
            TypedValue::String(target.to_owned()),
        );
        let Some(path) = disk
            .source
            .as_ref()
            .map(|s| s.path.as_str())
            .filter(|s| !s.is_empty())
        else {
            continue;
        };
        p.push(
            format!("block.{n}.path"),
            TypedValue::String(path.to_owned()),
        );
        if active {
            if let Ok(s) = driver.block_stats(dom, target).await {
                for (field, value) in [
                    ("rd.reqs", s.rd_req),
                    ("rd.bytes", s.rd_bytes),
                    ("rd.times", s.rd_total_ns),
                    ("wr.reqs", s.wr_req),
                    ("wr.bytes", s.wr_bytes),
                    ("wr.times", s.wr_total_ns),
                    ("fl.reqs", s.flush_req),
                    ("fl.times", s.flush_total_ns),
                ] {
                    push_count(p, format!("block.{n}.{field}"), value);
                }
            }
        }
        if let Ok(info) = driver.block_info(dom, target).await {
            // libvirt leaves out sizes it does not know (zero).
            for (field, value) in [
                ("allocation", info.allocation),
                ("capacity", info.capacity),
                ("physical", info.physical),
            ] {
                if value != 0 {
                    p.push(format!("block.{n}.{field}"), TypedValue::ULLong(value));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_asks_for_every_served_group() {
        assert_eq!(
            groups(0, 0, group::SERVED, "Test").ok(),
            Some(group::SERVED)
        );
        let qemu = group::served(true);
        assert_eq!(groups(0, 0, qemu, "QEMU").ok(), Some(qemu));
        assert_eq!(
            groups(16 | 32, flag::ENFORCE_STATS, qemu, "QEMU").ok(),
            Some(16 | 32)
        );
    }

    #[test]
    fn unserved_groups_are_left_out_unless_enforced() {
        // state | block
        assert_eq!(
            groups(1 | 32, 0, group::SERVED, "Test").ok(),
            Some(group::STATE)
        );
        let enforced =
            groups(1 | 32, flag::ENFORCE_STATS, group::SERVED, "Test").expect_err("refused");
        assert_eq!(enforced.code, 74, "VIR_ERR_ARGUMENT_UNSUPPORTED");
        let message = enforced.message.unwrap_or_default();
        assert!(message.contains("0x20"), "{message}");
    }
}
