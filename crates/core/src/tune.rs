//! Domain tuning and guest-side queries: the typed-parameter names of
//! `virsh schedinfo`, `virsh memtune` and `virsh cpu-stats`, and the shape
//! of their answers (libvirt's `include/libvirt/libvirt-domain.h`).
//!
//! This module knows no wire: the daemon turns [`CpuStats`] and parameter
//! lists into replies, drivers fill them.

use crate::error::{Error, Result};
use crate::typed_params::{TypedParam, TypedParams};

/// `VIR_DOMAIN_SCHEDULER_*`: the parameters of `virsh schedinfo`.
pub mod scheduler {
    /// `VIR_DOMAIN_SCHEDULER_WEIGHT` (uint): the "fair" scheduler's weight.
    pub const WEIGHT: &str = "weight";
}

/// `VIR_DOMAIN_MEMORY_*`: the parameters of `virsh memtune`, in KiB.
pub mod memory {
    /// `VIR_DOMAIN_MEMORY_HARD_LIMIT` (ullong).
    pub const HARD_LIMIT: &str = "hard_limit";
    /// `VIR_DOMAIN_MEMORY_SOFT_LIMIT` (ullong).
    pub const SOFT_LIMIT: &str = "soft_limit";
    /// `VIR_DOMAIN_MEMORY_SWAP_HARD_LIMIT` (ullong).
    pub const SWAP_HARD_LIMIT: &str = "swap_hard_limit";
    /// `VIR_DOMAIN_MEMORY_PARAM_UNLIMITED`: a limit that is not set
    /// (`virsh memtune` prints "unlimited").
    pub const UNLIMITED: u64 = 9_007_199_254_740_991;
}

/// `VIR_DOMAIN_CPU_STATS_*`: the statistics of `virsh cpu-stats`, in ns.
pub mod cpu_stats {
    /// `VIR_DOMAIN_CPU_STATS_CPUTIME` (ullong): CPU time, total or per host CPU.
    pub const CPU_TIME: &str = "cpu_time";
    /// `VIR_DOMAIN_CPU_STATS_USERTIME` (ullong): user time of the total.
    pub const USER_TIME: &str = "user_time";
    /// `VIR_DOMAIN_CPU_STATS_SYSTEMTIME` (ullong): system time of the total.
    pub const SYSTEM_TIME: &str = "system_time";
    /// `VIR_DOMAIN_CPU_STATS_VCPUTIME` (ullong): vCPU time per host CPU.
    pub const VCPU_TIME: &str = "vcpu_time";
}

pub mod bandwidth;
pub mod blkio;
pub mod ifaddr;
pub mod iotune;
pub mod numa;
pub mod perf;
pub use ifaddr::{InterfaceAddresses, IpAddress};

/// `VIR_DOMAIN_TIME_SYNC`: set the guest clock from its RTC.
pub const TIME_SYNC: u32 = 1 << 0;

/// `VIR_DOMAIN_GET_HOSTNAME_LEASE`: the host name from DHCP leases.
pub const GET_HOSTNAME_LEASE: u32 = 1 << 0;

/// `VIR_DOMAIN_GET_HOSTNAME_AGENT`: the host name from the guest agent.
pub const GET_HOSTNAME_AGENT: u32 = 1 << 1;

/// `VIR_TYPED_PARAM_STRING_OKAY`: the caller accepts string parameters
/// (clients set it on every parameter query).
pub const TYPED_PARAM_STRING_OKAY: u32 = 1 << 2;

/// The libvirt API of `virsh dommemstat --period`.
pub const SET_MEMORY_STATS_PERIOD: &str = "virDomainSetMemoryStatsPeriod";

/// The `<memballoon><stats period=…/>` that `virDomainSetMemoryStatsPeriod`
/// sets: `None` for 0 (libvirt writes no `<stats>` then), after the checks
/// both drivers make first.
///
/// # Errors
/// `VIR_ERR_INVALID_ARG` for flags other than `VIR_DOMAIN_AFFECT_*` and for
/// a negative period (libvirt's QEMU driver's "invalid value for collection
/// period").
pub fn memory_stats_period(period: i32, flags: u32) -> Result<Option<u32>> {
    crate::flags::check_flags(
        SET_MEMORY_STATS_PERIOD,
        u64::from(flags),
        u64::from(crate::flags::affect::LIVE | crate::flags::affect::CONFIG),
    )?;
    let period = u32::try_from(period).map_err(|_| Error::InvalidValue {
        reason: "invalid value for collection period".into(),
    })?;
    Ok((period > 0).then_some(period))
}

/// A guest's clock, as `virDomainGetTime` answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestTime {
    /// Seconds since the Epoch.
    pub seconds: i64,
    /// The nanoseconds of the second.
    pub nseconds: u32,
}

/// A running domain's CPU usage: its total and its share of each host CPU.
#[derive(Debug, Clone, PartialEq)]
pub struct CpuStats {
    /// `cpu_time`, `user_time`, `system_time` of the whole domain.
    pub total: TypedParams,
    /// The domain's CPU time split by host CPU, when the driver knows it.
    pub per_cpu: PerCpuStats,
}

/// What a driver knows of a domain's CPU time per host CPU.
#[derive(Debug, Clone, PartialEq)]
pub enum PerCpuStats {
    /// One list per host CPU (`cpu_time`, `vcpu_time`), host CPU 0 first.
    Known(Vec<TypedParams>),
    /// The split is not kept anywhere the driver can read (libvirt needs a
    /// cgroup v1 `cpuacct` group per guest for it; on a cgroup v2 host its
    /// QEMU driver cannot give it either). The counting queries are still
    /// answered, as libvirt answers them before it reads any figure.
    Unknown {
        /// Host CPUs (`virsh cpu-stats` asks for them first).
        host_cpus: usize,
        /// Why, the message of the `VIR_ERR_OPERATION_UNSUPPORTED` error.
        reason: String,
    },
}

/// The statistics libvirt gives per host CPU: `cpu_time` and `vcpu_time`.
const PER_CPU_PARAMS: usize = 2;

/// What one `virDomainGetCPUStats` call answers: the parameters (strides of
/// `nparams` per CPU, or the total) and the count the caller reads.
#[derive(Debug, Clone, PartialEq)]
pub struct CpuStatsReply {
    /// Statistics, per CPU in order; empty for the counting queries.
    pub params: Vec<TypedParam>,
    /// Statistics per CPU returned, or the number the query asked for.
    pub count: i32,
}

impl CpuStats {
    /// Answers one `virDomainGetCPUStats(nparams, start_cpu, ncpus)` query as
    /// libvirt's drivers and daemon do: `start_cpu == -1` is the total
    /// (`nparams == 0` asks how many statistics it has); otherwise
    /// `ncpus == 0` asks how many host CPUs there are, `nparams == 0` how
    /// many statistics each has, and else the first `nparams` statistics of
    /// host CPUs `start_cpu..start_cpu + ncpus` (those that exist).
    ///
    /// The argument checks of the public API (`virDomainGetCPUStats`) come
    /// first.
    ///
    /// # Errors
    /// [`Error::InvalidArg`] for a total asked with `ncpus != 1`, a negative
    /// `start_cpu`, or a `start_cpu` past the last host CPU (libvirt's
    /// "start_cpu %d larger than maximum of %d").
    pub fn answer(&self, nparams: u32, start_cpu: i32, ncpus: u32) -> Result<CpuStatsReply> {
        const OP: &str = "virDomainGetCPUStats";
        let invalid = |reason: String| Error::InvalidArg {
            operation: OP,
            reason,
        };
        let wanted = usize::try_from(nparams).unwrap_or(usize::MAX);
        if start_cpu == -1 {
            if ncpus != 1 {
                return Err(invalid(format!(
                    "ncpus in {OP} must be 1 when start_cpu is -1"
                )));
            }
            if nparams == 0 {
                return Ok(CpuStatsReply {
                    params: Vec::new(),
                    count: count_of(self.total.len()),
                });
            }
            let params: Vec<TypedParam> = self.total.iter().take(wanted).cloned().collect();
            return Ok(CpuStatsReply {
                count: count_of(params.len()),
                params,
            });
        }
        let start = usize::try_from(start_cpu)
            .map_err(|_| invalid(format!("start_cpu in {OP} must not be negative")))?;
        let (host_cpus, per_cpu) = match &self.per_cpu {
            PerCpuStats::Known(cpus) => (cpus.len(), cpus.first().map_or(0, TypedParams::len)),
            PerCpuStats::Unknown { host_cpus, .. } => (*host_cpus, PER_CPU_PARAMS),
        };
        if ncpus == 0 {
            return Ok(CpuStatsReply {
                params: Vec::new(),
                count: count_of(host_cpus),
            });
        }
        if nparams == 0 {
            return Ok(CpuStatsReply {
                params: Vec::new(),
                count: count_of(per_cpu),
            });
        }
        if start >= host_cpus {
            return Err(invalid(format!(
                "start_cpu {start_cpu} larger than maximum of {}",
                host_cpus.saturating_sub(1)
            )));
        }
        let cpus = match &self.per_cpu {
            PerCpuStats::Known(cpus) => cpus,
            PerCpuStats::Unknown { reason, .. } => {
                return Err(Error::OperationUnsupported {
                    reason: reason.clone(),
                })
            }
        };
        let stride = wanted.min(per_cpu);
        let wanted_cpus = usize::try_from(ncpus).unwrap_or(usize::MAX);
        let params = cpus
            .iter()
            .skip(start)
            .take(wanted_cpus)
            .flat_map(|cpu| cpu.iter().take(stride).cloned())
            .collect();
        Ok(CpuStatsReply {
            params,
            count: count_of(stride),
        })
    }
}

fn count_of(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// The first `wanted` of `all`, or (`wanted == 0`) none with the count of
/// `all`: how libvirt's `*GetParameters` calls answer a caller that first
/// asks how many parameters there are, then for them.
///
/// # Errors
/// [`Error::InvalidArg`] for a negative `wanted` (the public API's
/// "nparams in … must not be negative").
pub fn select(
    operation: &'static str,
    all: TypedParams,
    wanted: i32,
) -> Result<(Vec<TypedParam>, i32)> {
    let wanted = usize::try_from(wanted).map_err(|_| Error::InvalidArg {
        operation,
        reason: format!("nparams in {operation} must not be negative"),
    })?;
    if wanted == 0 {
        return Ok((Vec::new(), count_of(all.len())));
    }
    let params: Vec<TypedParam> = all.into_vec().into_iter().take(wanted).collect();
    let count = count_of(params.len());
    Ok((params, count))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use crate::typed_params::TypedValue;

    fn stats() -> CpuStats {
        let cpu = |i: u64| {
            TypedParams::new()
                .with(cpu_stats::CPU_TIME, TypedValue::ULLong(100 + i))
                .with(cpu_stats::VCPU_TIME, TypedValue::ULLong(10 + i))
        };
        CpuStats {
            total: TypedParams::new()
                .with(cpu_stats::CPU_TIME, TypedValue::ULLong(300))
                .with(cpu_stats::USER_TIME, TypedValue::ULLong(200))
                .with(cpu_stats::SYSTEM_TIME, TypedValue::ULLong(100)),
            per_cpu: PerCpuStats::Known(vec![cpu(0), cpu(1), cpu(2)]),
        }
    }

    #[test]
    fn an_unknown_split_counts_but_refuses_the_figures() {
        let s = CpuStats {
            per_cpu: PerCpuStats::Unknown {
                host_cpus: 4,
                reason: "no split".to_owned(),
            },
            ..stats()
        };
        assert_eq!(s.answer(0, 0, 0).expect("cpus").count, 4);
        assert_eq!(s.answer(0, 0, 1).expect("params per cpu").count, 2);
        assert_eq!(s.answer(3, -1, 1).expect("total").count, 3);
        let e = s.answer(2, 0, 4).expect_err("figures");
        assert_eq!(e.code(), ErrorCode::OperationUnsupported);
        assert!(e.to_string().contains("no split"), "{e}");
        let e = s.answer(2, 4, 1).expect_err("past the last cpu");
        assert_eq!(e.code(), ErrorCode::InvalidArg);
    }

    #[test]
    fn counting_queries_answer_counts_without_parameters() {
        let s = stats();
        let total = s.answer(0, -1, 1).expect("total count");
        assert_eq!((total.params.len(), total.count), (0, 3));
        let cpus = s.answer(0, 0, 0).expect("cpu count");
        assert_eq!((cpus.params.len(), cpus.count), (0, 3));
        let per_cpu = s.answer(0, 0, 1).expect("stats per cpu");
        assert_eq!((per_cpu.params.len(), per_cpu.count), (0, 2));
    }

    #[test]
    fn per_cpu_strides_cover_the_cpus_that_exist() {
        let r = stats().answer(2, 1, 8).expect("cpus 1..");
        assert_eq!(r.count, 2);
        let names: Vec<&str> = r.params.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(names, ["cpu_time", "vcpu_time", "cpu_time", "vcpu_time"]);
        assert_eq!(r.params[0].value, TypedValue::ULLong(101));
        let one = stats().answer(1, 0, 3).expect("cpu_time only");
        assert_eq!((one.params.len(), one.count), (3, 1));
        let total = stats().answer(2, -1, 1).expect("total");
        assert_eq!(total.count, 2);
    }

    #[test]
    fn bad_ranges_are_invalid_arguments() {
        let s = stats();
        for (nparams, start, ncpus, text) in [
            (2, 3, 1, "start_cpu 3 larger than maximum of 2"),
            (2, -1, 2, "must be 1"),
            (2, -2, 1, "must not be negative"),
        ] {
            let e = s.answer(nparams, start, ncpus).expect_err(text);
            assert_eq!(e.code(), ErrorCode::InvalidArg);
            assert!(e.to_string().contains(text), "{e}");
        }
    }

    #[test]
    fn select_counts_then_truncates() {
        let all = TypedParams::new()
            .with("a", TypedValue::UInt(1))
            .with("b", TypedValue::UInt(2));
        assert_eq!(select("op", all.clone(), 0).expect("count").1, 2);
        let (params, n) = select("op", all.clone(), 1).expect("first");
        assert_eq!((params.len(), n), (1, 1));
        assert_eq!(select("op", all.clone(), 5).expect("all").1, 2);
        let e = select("op", all, -1).expect_err("negative");
        assert_eq!(e.code(), ErrorCode::InvalidArg);
    }
}
