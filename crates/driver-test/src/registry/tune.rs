//! Tuning and guest queries of test guests, as libvirt 9.0's test driver
//! answers them: the "fair" scheduler with its fixed weight
//! (`testDomainGetSchedulerParametersFlags`), the `<memtune>` limits
//! (`testDomainSetMemoryParameters`), fixed CPU statistics
//! (`testDomainGetCPUStats`), a made-up host name (`testDomainGetHostname`)
//! and a clock that only moves when set (`testDomainGetTime`), whose
//! value also drives `virsh domcontrol` (`testDomainGetControlInfo`).

use migrated_core::domain::{ControlInfo, ControlState, DomainRef, DomainState};
use migrated_core::flags::{affect, check_flags};
use migrated_core::tune::{
    cpu_stats, memory, scheduler, CpuStats, GuestTime, PerCpuStats, TIME_SYNC,
    TYPED_PARAM_STRING_OKAY,
};
use migrated_core::typed_params::{ParamSpec, ParamType, TypedParams, TypedValue};
use migrated_core::xml::MemTune;
use migrated_core::{Error, Result};

use super::Registry;

/// The scheduler libvirt's test driver reports.
const SCHEDULER: &str = "fair";
/// Its one parameter's value, whatever was set.
const WEIGHT: u32 = 50;
/// `TEST_TOTAL_CPUTIME`: the CPU time of every running test guest (ns).
const TOTAL_CPU_TIME: u64 = 48_772_617_035;
/// The total's user and system shares (ns).
const USER_TIME: u64 = 5_540_000_000;
const SYSTEM_TIME: u64 = 6_460_000_000;
/// What each host CPU's vCPU time falls short of its CPU time (ns).
const VCPU_TIME_OFFSET: u64 = 1_234_567_890;

const MEMORY_SPECS: &[ParamSpec] = &[
    ParamSpec::one(memory::HARD_LIMIT, ParamType::ULLong),
    ParamSpec::one(memory::SOFT_LIMIT, ParamType::ULLong),
    ParamSpec::one(memory::SWAP_HARD_LIMIT, ParamType::ULLong),
];

/// A limit as the API passes it: `UNLIMITED` (or more) clears it.
fn limit(kib: u64) -> Option<u64> {
    (kib < memory::UNLIMITED).then_some(kib)
}

impl Registry {
    /// `DOMAIN_GET_SCHEDULER_TYPE`.
    pub fn scheduler_type(&self, dom: &DomainRef) -> Result<(String, i32)> {
        self.get(dom)?;
        Ok((SCHEDULER.to_owned(), 1))
    }

    /// `DOMAIN_GET_SCHEDULER_PARAMETERS(_FLAGS)`: no flags, the fixed weight.
    pub fn scheduler_parameters(&self, dom: &DomainRef, flags: u32) -> Result<TypedParams> {
        // Clients mark every parameter query with STRING_OKAY; no other
        // flag is accepted.
        check_flags(
            "testDomainGetSchedulerParametersFlags",
            u64::from(flags),
            u64::from(TYPED_PARAM_STRING_OKAY),
        )?;
        self.get(dom)?;
        Ok(TypedParams::new().with(scheduler::WEIGHT, TypedValue::UInt(WEIGHT)))
    }

    /// `DOMAIN_SET_SCHEDULER_PARAMETERS(_FLAGS)`: checks the weight and,
    /// as libvirt's test driver, keeps nothing.
    pub fn set_scheduler_parameters(
        &self,
        dom: &DomainRef,
        params: &TypedParams,
        flags: u32,
    ) -> Result<()> {
        check_flags("testDomainSetSchedulerParametersFlags", u64::from(flags), 0)?;
        params.validate(&[ParamSpec::one(scheduler::WEIGHT, ParamType::UInt)])?;
        self.get(dom)?;
        Ok(())
    }

    /// `DOMAIN_GET_MEMORY_PARAMETERS`: the three limits of one definition,
    /// unset ones as [`memory::UNLIMITED`].
    pub fn memory_parameters(&self, dom: &DomainRef, flags: u32) -> Result<TypedParams> {
        check_flags(
            "testDomainGetMemoryParameters",
            u64::from(flags),
            u64::from(affect::LIVE | affect::CONFIG | TYPED_PARAM_STRING_OKAY),
        )?;
        let tune = self
            .one_def(dom, "virDomainGetMemoryParameters", flags)?
            .memtune;
        let value = |v: Option<u64>| TypedValue::ULLong(v.unwrap_or(memory::UNLIMITED));
        Ok(TypedParams::new()
            .with(memory::HARD_LIMIT, value(tune.hard_limit))
            .with(memory::SOFT_LIMIT, value(tune.soft_limit))
            .with(memory::SWAP_HARD_LIMIT, value(tune.swap_hard_limit)))
    }

    /// `DOMAIN_SET_MEMORY_PARAMETERS`: changes the limits of one definition
    /// (a config change is stored). As libvirt's test driver, the hard limit
    /// is checked against the swap limit of the definition in use (the live
    /// one of a running guest), whichever definition changes.
    pub fn set_memory_parameters(
        &mut self,
        dom: &DomainRef,
        params: &TypedParams,
        flags: u32,
    ) -> Result<()> {
        check_flags(
            "testDomainSetMemoryParameters",
            u64::from(flags),
            u64::from(affect::LIVE | affect::CONFIG),
        )?;
        params.validate(MEMORY_SPECS)?;
        let hard = params.get_ullong(memory::HARD_LIMIT)?;
        let soft = params.get_ullong(memory::SOFT_LIMIT)?;
        let swap = params.get_ullong(memory::SWAP_HARD_LIMIT)?;
        let guest = self.guest(&dom.uuid)?;
        let current = guest
            .live
            .as_ref()
            .map_or(&guest.config, |l| &l.def)
            .memtune;
        self.change_one_def(dom, "virDomainSetMemoryParameters", flags, |def, _| {
            if hard.is_some() || swap.is_some() {
                let unset = |v: Option<u64>| v.unwrap_or(memory::UNLIMITED);
                let mem_limit = hard.unwrap_or(unset(current.hard_limit));
                let swap_limit = swap.unwrap_or(unset(current.swap_hard_limit));
                if mem_limit > swap_limit {
                    return Err(Error::InvalidArg {
                        operation: "virDomainSetMemoryParameters",
                        reason: "memory hard_limit tunable value must be lower than or equal \
                                 to swap_hard_limit"
                            .into(),
                    });
                }
            }
            let t: &mut MemTune = &mut def.memtune;
            if let Some(v) = soft {
                t.soft_limit = limit(v);
            }
            if let Some(v) = hard {
                t.hard_limit = limit(v);
            }
            if let Some(v) = swap {
                t.swap_hard_limit = limit(v);
            }
            Ok(())
        })
    }

    /// `DOMAIN_GET_CPU_STATS`: libvirt's test driver's fixed figures, per
    /// host CPU `cpu_time` is the total's share plus the CPU's number.
    pub fn cpu_stats(&self, dom: &DomainRef, flags: u32, host_cpus: u32) -> Result<CpuStats> {
        check_flags(
            "testDomainGetCPUStats",
            u64::from(flags),
            u64::from(TYPED_PARAM_STRING_OKAY),
        )?;
        self.live(dom)?;
        let share = TOTAL_CPU_TIME / u64::from(host_cpus.max(1));
        let per_cpu = (0..u64::from(host_cpus))
            .map(|i| {
                TypedParams::new()
                    .with(cpu_stats::CPU_TIME, TypedValue::ULLong(share + i))
                    .with(
                        cpu_stats::VCPU_TIME,
                        TypedValue::ULLong((share + i).saturating_sub(VCPU_TIME_OFFSET)),
                    )
            })
            .collect();
        Ok(CpuStats {
            total: TypedParams::new()
                .with(cpu_stats::CPU_TIME, TypedValue::ULLong(TOTAL_CPU_TIME))
                .with(cpu_stats::USER_TIME, TypedValue::ULLong(USER_TIME))
                .with(cpu_stats::SYSTEM_TIME, TypedValue::ULLong(SYSTEM_TIME)),
            per_cpu: PerCpuStats::Known(per_cpu),
        })
    }

    /// `DOMAIN_GET_HOSTNAME`: the domain's name followed by "host".
    pub fn guest_hostname(&self, dom: &DomainRef, flags: u32) -> Result<String> {
        check_flags("testDomainGetHostname", u64::from(flags), 0)?;
        let live = self.live(dom)?;
        Ok(format!("{}host", live.def.name))
    }

    /// `DOMAIN_GET_TIME`: the clock of a running (not paused) guest.
    pub fn guest_time(&self, dom: &DomainRef, flags: u32) -> Result<GuestTime> {
        check_flags("testDomainGetTime", u64::from(flags), 0)?;
        match self.get(dom)?.live.as_ref() {
            Some(l) if l.state == DomainState::Running => Ok(l.clock),
            _ => Err(Error::invalid("domain is not running")),
        }
    }

    /// `DOMAIN_SET_TIME`: the clock takes the time given, also with
    /// `TIME_SYNC` (whose 0 libvirt's test driver keeps as it comes).
    pub fn set_guest_time(&mut self, dom: &DomainRef, time: GuestTime, flags: u32) -> Result<()> {
        check_flags("testDomainSetTime", u64::from(flags), u64::from(TIME_SYNC))?;
        self.live(dom)?;
        if let Some(l) = self.guest_mut(&dom.uuid)?.live.as_mut() {
            l.clock = time;
        }
        Ok(())
    }

    /// `DOMAIN_GET_CONTROL_INFO`: libvirt's test driver derives the state
    /// from the clock `virsh domtime` set, so clients can exercise every
    /// state: seconds in 1..10000 a job, 10000..30000 a command in flight,
    /// 30000..60000 a broken channel (the reason being seconds mod 4).
    pub fn control_info(&self, dom: &DomainRef) -> Result<ControlInfo> {
        let seconds = self.live(dom)?.clock.seconds;
        let since = |base: i64| u64::try_from(seconds - base).unwrap_or(0);
        Ok(match seconds {
            1..=9_999 => ControlInfo {
                state: ControlState::Job,
                details: 0,
                state_time_ms: since(0),
            },
            10_000..=29_999 => ControlInfo {
                state: ControlState::Occupied,
                details: 0,
                state_time_ms: since(10_000),
            },
            30_000..=59_999 => ControlInfo {
                state: ControlState::Error,
                details: u32::try_from(seconds % 4).unwrap_or(0),
                state_time_ms: since(30_000),
            },
            _ => ControlInfo::default(),
        })
    }
}
