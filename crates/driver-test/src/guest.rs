//! One test guest: its persistent config and, while it runs, its live instance.

use std::sync::Arc;
use std::time::{Duration, Instant};

use migrated_core::domain::{
    memory_stat, paused_reason, running_reason, DomainRef, DomainState, MemoryStat, StateReason,
    VcpuInfo, VCPU_RUNNING,
};
use migrated_core::tune::GuestTime;
use migrated_core::xml::DomainDef;
use migrated_core::Result;

use crate::memory::GuestMemory;
use crate::workload::{Workload, WorkloadConfig};

/// The clock of a guest that just started: libvirt's test driver's
/// (`testDomainObjPrivateAlloc`), 1989-11-17 15:32:00 UTC.
const BOOT_CLOCK: GuestTime = GuestTime {
    seconds: 627_319_920,
    nseconds: 0,
};

/// A guest known to the driver: persistent (defined) or transient (exists only
/// while running).
#[derive(Debug)]
pub(crate) struct Guest {
    /// The persistent config, or for a transient guest the definition it was
    /// created from.
    pub config: DomainDef,
    /// Whether the config is stored on disk.
    pub persistent: bool,
    /// Whether the guest starts with the daemon.
    pub autostart: bool,
    /// Shut-off reason, meaningful while `live` is `None`.
    pub shutoff_reason: i32,
    /// The running instance.
    pub live: Option<Live>,
    /// The managed save image: the state `virsh managedsave` kept, in
    /// memory (as libvirt's test driver keeps its `hasManagedSave`).
    pub managed_save: Option<SavedState>,
}

/// A stopped guest's state, kept for its next start.
#[derive(Debug)]
pub(crate) struct SavedState {
    /// The definition it ran with.
    pub def: DomainDef,
    /// Its memory, as it was when it stopped.
    pub memory: Arc<GuestMemory>,
    /// Whether it resumes running (else paused).
    pub running: bool,
}

/// A running (or paused) instance of a guest.
#[derive(Debug)]
pub(crate) struct Live {
    pub id: i32,
    /// The definition it runs with (the config at start time).
    pub def: DomainDef,
    pub state: DomainState,
    pub reason: i32,
    pub memory: Arc<GuestMemory>,
    /// The guest's clock as `virsh domtime` reads and sets it: fixed,
    /// not ticking, as in libvirt's test driver.
    pub clock: GuestTime,
    workload_config: Option<WorkloadConfig>,
    workload: Option<Workload>,
    cpu_time: Duration,
    running_since: Option<Instant>,
}

impl Live {
    /// Boots `def` as instance `id`, paused or running.
    pub fn boot(id: i32, def: DomainDef, paused: bool) -> Result<Self> {
        let memory = Arc::new(GuestMemory::new(def.memory_kib.saturating_mul(1024))?);
        Self::with_memory(id, def, memory, paused, running_reason::BOOTED)
    }

    /// Restores a saved guest as instance `id` (reason "restored").
    pub fn restore(id: i32, saved: SavedState, paused: bool) -> Result<Self> {
        Self::with_memory(
            id,
            saved.def,
            saved.memory,
            paused || !saved.running,
            running_reason::RESTORED,
        )
    }

    fn with_memory(
        id: i32,
        mut def: DomainDef,
        memory: Arc<GuestMemory>,
        paused: bool,
        reason: i32,
    ) -> Result<Self> {
        let workload_config = WorkloadConfig::from_def(&def)?;
        def.id = Some(id);
        let mut live = Self {
            id,
            def,
            state: DomainState::Paused,
            reason: paused_reason::USER,
            memory,
            clock: BOOT_CLOCK,
            workload_config,
            workload: None,
            cpu_time: Duration::ZERO,
            running_since: None,
        };
        if !paused {
            live.run(reason)?;
        }
        Ok(live)
    }

    /// Lets the vCPUs (and the workload) run.
    pub fn run(&mut self, reason: i32) -> Result<()> {
        if let (Some(cfg), None) = (self.workload_config, &self.workload) {
            self.workload = Some(
                self.memory
                    .start_workload(cfg.dirty_pages_per_sec, cfg.working_set_pages)?,
            );
        }
        self.state = DomainState::Running;
        self.reason = reason;
        self.running_since = Some(Instant::now());
        Ok(())
    }

    /// Stops the vCPUs; returns once the workload has written its last page.
    pub fn pause(&mut self, reason: i32) {
        if let Some(workload) = self.workload.take() {
            workload.stop();
        }
        if let Some(since) = self.running_since.take() {
            self.cpu_time += since.elapsed();
        }
        self.state = DomainState::Paused;
        self.reason = reason;
    }

    /// CPU time consumed: wall time spent running, times the vCPUs online.
    pub fn cpu_time_ns(&self) -> u64 {
        let total = self.vcpu_time_ns();
        let vcpus = self.def.current_vcpus().max(1);
        u64::try_from(u128::from(total).saturating_mul(u128::from(vcpus))).unwrap_or(u64::MAX)
    }

    /// CPU time of each vCPU: the wall time spent running.
    fn vcpu_time_ns(&self) -> u64 {
        let running = self.running_since.map_or(Duration::ZERO, |s| s.elapsed());
        u64::try_from((self.cpu_time + running).as_nanos()).unwrap_or(u64::MAX)
    }

    /// The vCPUs online: all running, each with its share of the CPU time,
    /// on the fictional host's CPUs in turn (`host_cpus` of them).
    pub fn vcpus(&self, host_cpus: u32) -> Vec<VcpuInfo> {
        let time = self.vcpu_time_ns();
        (0..self.def.current_vcpus())
            .map(|number| VcpuInfo {
                number,
                state: VCPU_RUNNING,
                cpu_time_ns: time,
                cpu: i32::try_from(number % host_cpus.max(1)).unwrap_or(-1),
            })
            .collect()
    }

    /// Balloon size (the current memory) and resident size (the pages
    /// holding data: the guest's memory is allocated as it is written).
    pub fn memory_stats(&self) -> Vec<MemoryStat> {
        vec![
            MemoryStat {
                tag: memory_stat::ACTUAL_BALLOON,
                value: self.def.current_memory_kib,
            },
            MemoryStat {
                tag: memory_stat::RSS,
                value: self.memory.allocated_pages() * (crate::memory::PAGE_SIZE as u64 / 1024),
            },
        ]
    }
}

impl Guest {
    /// The guest's wire reference (with its id while running).
    pub fn dom_ref(&self) -> DomainRef {
        DomainRef {
            name: self.config.name.clone(),
            uuid: self.config.uuid,
            id: self.live.as_ref().map_or(DomainRef::INACTIVE_ID, |l| l.id),
        }
    }

    /// State and reason.
    pub fn state(&self) -> StateReason {
        match &self.live {
            Some(live) => StateReason {
                state: live.state,
                reason: live.reason,
            },
            None => StateReason {
                state: DomainState::Shutoff,
                reason: self.shutoff_reason,
            },
        }
    }

    /// Whether it runs or is paused.
    pub fn is_active(&self) -> bool {
        self.live.is_some()
    }
}
