//! The `Driver` trait for [`QemuDriver`]: argument checks and the short
//! registry reads live here; starting, stopping and saving are in the parent
//! module and `save.rs`.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use migrated_core::console::Console;
use migrated_core::domain::{
    event_detail, memory_stat, paused_reason, shutoff_reason, BlockInfo, BlockStats, ControlInfo,
    ControlState, CpuTimes, DomainCapsQuery, DomainEvent, DomainInfo, DomainRef, DomainState,
    InterfaceStats, IoThreadInfo, LifecycleEvent, MemoryStat, NodeInfo, NodeMemory, SecurityModel,
    StateReason, VcpuInfo, CONTROL_ERROR_REASON_MONITOR, VCPU_RUNNING,
};
use migrated_core::driver::{Driver, DumpFormat, LocalJobs, Screenshot};
use migrated_core::flags::{self, check_flags};
use migrated_core::hotplug::Change;
use migrated_core::keycode::Codeset;
use migrated_core::qemu_monitor::MonitorEvent;
use migrated_core::support::SupportTable;
use migrated_core::tune::{
    CpuStats, GuestTime, InterfaceAddresses, GET_HOSTNAME_AGENT, TIME_SYNC, TYPED_PARAM_STRING_OKAY,
};
use migrated_core::typed_params::TypedParams;
use migrated_core::xml::{FormatOptions, InterfaceType, MetadataTarget};
use migrated_core::{Error, Result};
use tokio::sync::broadcast;
use uuid::Uuid;

use super::host::{
    capabilities_xml, node_cpu_times, node_info, node_memory, parse_version, proc_cpu_stats,
    proc_cpu_time_ns, proc_rss_kib, proc_stat,
};
use super::host_stats::{image_file_info, tap_stats};
use super::power::PowerRequest;
use super::registry::{Domain, StopIntent};
use super::{abi, balloon_stats, parse_def, save, QemuDriver, StartMode, URI};
use crate::qmp::commands::{
    is_disk, MigrateSetParameters, QueryBalloon, QueryBlock, QueryBlockstats, QueryCpusFast,
    QueryMigrateParameters, Stop, SystemReset,
};
use crate::spec::launch_spec;
use crate::support::SUPPORT;

#[async_trait]
impl Driver for QemuDriver {
    fn support(&self) -> &'static SupportTable {
        &SUPPORT
    }

    async fn list_all_domains(&self, flags: u32) -> Result<Vec<DomainRef>> {
        self.read(|r| r.list(flags))
    }

    async fn lookup_by_name(&self, name: &str) -> Result<DomainRef> {
        self.read(|r| Ok(r.by_name(name)?.dom_ref()))
    }

    async fn lookup_by_uuid(&self, uuid: &Uuid) -> Result<DomainRef> {
        self.read(|r| {
            r.domains
                .get(uuid)
                .map(Domain::dom_ref)
                .ok_or(Error::NoDomain {
                    key: migrated_core::error::DomainKey::Uuid(*uuid),
                })
        })
    }

    async fn lookup_by_id(&self, id: i32) -> Result<DomainRef> {
        self.read(|r| Ok(r.by_id(id)?.dom_ref()))
    }

    async fn get_info(&self, dom: &DomainRef) -> Result<DomainInfo> {
        let (state, def, runtime) = self.read(|r| {
            let d = r.get(dom)?;
            let def = d.live.as_ref().map_or(&d.config, |l| &l.def).clone();
            Ok((
                d.state().state,
                def,
                d.live.as_ref().map(|l| Arc::clone(&l.runtime)),
            ))
        })?;
        let mut info = DomainInfo {
            state,
            max_mem_kib: def.memory_kib,
            memory_kib: def.current_memory_kib,
            nr_virt_cpu: u16::try_from(def.current_vcpus()).unwrap_or(u16::MAX),
            cpu_time_ns: 0,
        };
        if let Some(rt) = runtime {
            if let Ok(cpus) = rt.qmp.execute(&QueryCpusFast).await {
                info.nr_virt_cpu = u16::try_from(cpus.len()).unwrap_or(u16::MAX);
            }
            // No balloon device is normal: the configured size stands.
            if let Ok(balloon) = rt.qmp.execute(&QueryBalloon).await {
                info.memory_kib = balloon.actual / 1024;
            }
            info.cpu_time_ns = proc_cpu_time_ns(rt.process.pid());
        }
        Ok(info)
    }

    async fn vcpu_info(&self, dom: &DomainRef) -> Result<Vec<VcpuInfo>> {
        let runtime = self.runtime(dom)?;
        let cpus = runtime
            .qmp
            .execute(&QueryCpusFast)
            .await
            .map_err(|e| e.into_core("virDomainGetVcpus"))?;
        let pid = runtime.process.pid();
        Ok(cpus
            .iter()
            .map(|c| {
                // Each vCPU is a thread of QEMU: its CPU time and the host
                // CPU it last ran on are the thread's.
                let stat = proc_stat(&format!("/proc/{pid}/task/{}/stat", c.thread_id));
                VcpuInfo {
                    number: c.cpu_index,
                    state: VCPU_RUNNING,
                    cpu_time_ns: stat.map_or(0, |s| s.cpu_time_ns),
                    cpu: stat.map_or(-1, |s| s.cpu),
                }
            })
            .collect())
    }

    async fn block_stats(&self, dom: &DomainRef, disk: &str) -> Result<BlockStats> {
        const API: &str = "virDomainBlockStats";
        // As libvirt: an empty path sums every disk.
        let nodes = self.read(|r| {
            let live = r
                .get(dom)?
                .live
                .as_ref()
                .ok_or_else(|| Error::invalid("domain is not running"))?;
            let disks = &live.def.devices;
            if disk.is_empty() {
                return Ok(disks
                    .disks
                    .iter()
                    .map(|d| d.target.dev.clone())
                    .collect::<Vec<_>>());
            }
            let d = disks.disk_for(disk)?;
            Ok(vec![d.target.dev.clone()])
        })?;
        let entries = self
            .runtime(dom)?
            .qmp
            .execute(&QueryBlockstats)
            .await
            .map_err(|e| e.into_core(API))?;
        let mut sum = crate::qmp::commands::BlockDeviceStats::default();
        for target in &nodes {
            let s = entries
                .iter()
                .find(|e| is_disk(e.qdev.as_deref(), e.node_name.as_deref(), target))
                .ok_or_else(|| Error::internal(format!("QEMU has no statistics of {target}")))?
                .stats;
            sum.rd_bytes += s.rd_bytes;
            sum.wr_bytes += s.wr_bytes;
            sum.rd_operations += s.rd_operations;
            sum.wr_operations += s.wr_operations;
            sum.flush_operations += s.flush_operations;
            sum.rd_total_time_ns += s.rd_total_time_ns;
            sum.wr_total_time_ns += s.wr_total_time_ns;
            sum.flush_total_time_ns += s.flush_total_time_ns;
        }
        // QEMU counts no errors: libvirt leaves `errs` unknown.
        Ok(BlockStats {
            rd_req: Some(sum.rd_operations),
            rd_bytes: Some(sum.rd_bytes),
            wr_req: Some(sum.wr_operations),
            wr_bytes: Some(sum.wr_bytes),
            flush_req: Some(sum.flush_operations),
            rd_total_ns: Some(sum.rd_total_time_ns),
            wr_total_ns: Some(sum.wr_total_time_ns),
            flush_total_ns: Some(sum.flush_total_time_ns),
            errs: None,
        })
    }

    async fn block_stats_flags(&self, dom: &DomainRef, disk: &str) -> Result<BlockStats> {
        self.block_stats(dom, disk).await
    }

    async fn block_info(&self, dom: &DomainRef, disk: &str) -> Result<BlockInfo> {
        const API: &str = "virDomainGetBlockInfo";
        let (target, path, format, running) = self.read(|r| {
            let d = r.get(dom)?;
            let def = d.live.as_ref().map_or(&d.config, |l| &l.def);
            let found = def.devices.assigned_disk(disk)?;
            let source = found
                .source
                .as_ref()
                .filter(|s| !s.path.is_empty())
                .ok_or_else(|| Error::InvalidValue {
                    reason: format!("disk '{disk}' does not currently have a source assigned"),
                })?;
            let format = found
                .driver
                .as_ref()
                .and_then(|drv| drv.format.clone())
                .unwrap_or_else(|| "raw".into());
            Ok((
                found.target.dev.clone(),
                std::path::PathBuf::from(&source.path),
                format,
                d.live.is_some(),
            ))
        })?;
        // The file's own sizes; a running QEMU knows the guest's size best.
        let on_host = image_file_info(&path, &format)?;
        if !running {
            return Ok(on_host);
        }
        let image = self
            .runtime(dom)?
            .qmp
            .execute(&QueryBlock)
            .await
            .map_err(|e| e.into_core(API))?
            .into_iter()
            .filter(|b| {
                let node = b.inserted.as_ref().and_then(|i| i.node_name.as_deref());
                is_disk(b.qdev.as_deref(), node, &target)
            })
            .find_map(|b| b.inserted)
            .ok_or_else(|| Error::internal(format!("QEMU has no image of {target}")))?
            .image;
        Ok(BlockInfo {
            capacity: image.virtual_size,
            allocation: image.actual_size.unwrap_or(on_host.allocation),
            physical: on_host.physical,
        })
    }

    async fn interface_stats(&self, dom: &DomainRef, device: &str) -> Result<InterfaceStats> {
        let ifname = self.read(|r| {
            let live = r
                .get(dom)?
                .live
                .as_ref()
                .ok_or_else(|| Error::invalid("domain is not running"))?;
            let nic = live.def.devices.interface_for(device)?;
            // User networking has no host device; a bridge's tap is
            // named by qemu-bridge-helper unless `<target dev>` names it.
            Ok(match nic.kind {
                InterfaceType::User => None,
                _ => nic.target_dev.clone(),
            })
        })?;
        tap_stats(ifname.as_deref())
    }

    async fn migrate_compression_cache(&self, dom: &DomainRef) -> Result<u64> {
        const API: &str = "virDomainMigrateGetCompressionCache";
        let runtime = self.runtime(dom)?;
        let params = runtime
            .qmp
            .execute(&QueryMigrateParameters)
            .await
            .map_err(|e| e.into_core(API))?;
        params
            .xbzrle_cache_size
            .ok_or_else(|| Error::internal("QEMU did not report xbzrle-cache-size"))
    }

    async fn set_migrate_compression_cache(&self, dom: &DomainRef, bytes: u64) -> Result<()> {
        // Set on the running QEMU, as libvirt does: a later compressed
        // migration without `compression.xbzrle.cache` leaves it as it is.
        let runtime = self.runtime(dom)?;
        runtime
            .qmp
            .execute(&MigrateSetParameters {
                xbzrle_cache_size: Some(bytes),
                ..MigrateSetParameters::default()
            })
            .await
            .map_err(|e| e.into_core("virDomainMigrateSetCompressionCache"))?;
        Ok(())
    }

    async fn memory_stats(&self, dom: &DomainRef) -> Result<Vec<MemoryStat>> {
        let runtime = self.runtime(dom)?;
        let def = self.read(|r| {
            let d = r.get(dom)?;
            Ok(d.live.as_ref().map_or(&d.config, |l| &l.def).clone())
        })?;
        let configured = def.current_memory_kib;
        // As libvirt: the balloon's size when the guest has a balloon
        // device, else the configured size; and QEMU's resident size.
        let actual = match runtime.qmp.execute(&QueryBalloon).await {
            Ok(balloon) => balloon.actual / 1024,
            Err(_) => configured,
        };
        let mut stats = vec![MemoryStat {
            tag: memory_stat::ACTUAL_BALLOON,
            value: actual,
        }];
        stats.extend(balloon_stats::guest_stats(&runtime.qmp, &def).await);
        if let Some(rss) = proc_rss_kib(runtime.process.pid()) {
            stats.push(MemoryStat {
                tag: memory_stat::RSS,
                value: rss,
            });
        }
        Ok(stats)
    }

    async fn set_memory_stats_period(
        &self,
        dom: &DomainRef,
        period: i32,
        flags: u32,
    ) -> Result<()> {
        self.set_memory_stats_period_impl(dom, period, flags).await
    }

    async fn attach_device(&self, dom: &DomainRef, xml: &str, flags: u32) -> Result<()> {
        self.change_device_impl(dom, Change::Attach, xml, flags)
            .await
    }

    async fn detach_device(&self, dom: &DomainRef, xml: &str, flags: u32) -> Result<()> {
        self.change_device_impl(dom, Change::Detach, xml, flags)
            .await
    }

    async fn update_device(&self, dom: &DomainRef, xml: &str, flags: u32) -> Result<()> {
        self.change_device_impl(dom, Change::Update, xml, flags)
            .await
    }

    async fn set_memory(&self, dom: &DomainRef, kib: u64, flags: u32) -> Result<()> {
        self.set_memory_impl(dom, kib, flags).await
    }

    async fn get_state(&self, dom: &DomainRef, flags: u32) -> Result<StateReason> {
        check_flags("virDomainGetState", u64::from(flags), 0)?;
        self.read(|r| Ok(r.get(dom)?.state()))
    }

    async fn get_os_type(&self, dom: &DomainRef) -> Result<String> {
        self.read(|r| Ok(r.get(dom)?.config.os.os_type.clone()))
    }

    async fn get_xml_desc(&self, dom: &DomainRef, flags: u32) -> Result<String> {
        use flags::xml::{INACTIVE, MIGRATABLE, SECURE, UPDATE_CPU};
        check_flags(
            "virDomainGetXMLDesc",
            u64::from(flags),
            u64::from(SECURE | INACTIVE | UPDATE_CPU | MIGRATABLE),
        )?;
        self.read(|r| {
            let d = r.get(dom)?;
            let inactive = flags & INACTIVE != 0;
            let def = match &d.live {
                Some(live) if !inactive || !d.persistent => &live.def,
                _ => &d.config,
            };
            Ok(def.format(&FormatOptions {
                secure: flags & SECURE != 0,
                inactive,
                migratable: flags & MIGRATABLE != 0,
            }))
        })
    }

    async fn define_xml(&self, xml: &str, flags: u32) -> Result<DomainRef> {
        check_flags(
            "virDomainDefineXMLFlags",
            u64::from(flags),
            u64::from(flags::define::VALIDATE),
        )?;
        let mut def = parse_def(xml)?;
        abi::complete(&mut def, "virDomainDefineXML").await?;
        // Refuse what could never start now rather than at the first start.
        launch_spec(&def).map_err(|e| e.into_core("virDomainDefineXML"))?;
        let mut reg = self.shared.lock()?;
        let exists = reg.check_duplicates(&def)?;
        self.shared
            .store
            .save(&def)
            .map_err(|e| e.into_core("virDomainDefineXML"))?;
        let uuid = def.uuid;
        let detail = match reg.domains.get_mut(&uuid) {
            Some(d) if exists => {
                let detail = if d.persistent {
                    event_detail::DEFINED_UPDATED
                } else {
                    // A transient domain's snapshots become stored with its config.
                    self.shared.store.save_snapshots(&uuid, &d.snapshots)?;
                    event_detail::DEFINED_ADDED
                };
                d.config = def;
                d.persistent = true;
                detail
            }
            _ => {
                reg.domains.insert(
                    uuid,
                    Domain {
                        config: def,
                        persistent: true,
                        autostart: false,
                        shutoff_reason: shutoff_reason::UNKNOWN,
                        managed_save: false,
                        live: None,
                        snapshots: Default::default(),
                        job: Arc::default(),
                    },
                );
                event_detail::DEFINED_ADDED
            }
        };
        let dom = reg.domains[&uuid].dom_ref();
        drop(reg);
        self.shared
            .emit(dom.clone(), LifecycleEvent::Defined, detail);
        Ok(dom)
    }

    async fn undefine(&self, dom: &DomainRef, flags: u32) -> Result<()> {
        use flags::undefine::*;
        // Of these only managed save images and snapshots exist for this driver.
        let allowed = MANAGED_SAVE
            | SNAPSHOTS_METADATA
            | NVRAM
            | KEEP_NVRAM
            | CHECKPOINTS_METADATA
            | TPM
            | KEEP_TPM;
        check_flags(
            "virDomainUndefineFlags",
            u64::from(flags),
            u64::from(allowed),
        )?;
        self.read(|r| {
            let d = r.get(dom)?;
            if !d.persistent {
                return Err(Error::invalid("cannot undefine transient domain"));
            }
            // Checked before anything is removed.
            migrated_core::snapshot::check_undefine(d.live.is_some(), d.snapshots.len(), flags)
        })?;
        self.undefine_managed_save(dom, flags)?;
        let mut reg = self.shared.lock()?;
        let d = reg.get_mut(dom)?;
        if !d.persistent {
            return Err(Error::invalid("cannot undefine transient domain"));
        }
        self.shared
            .store
            .remove(&dom.uuid)
            .map_err(|e| e.into_core("virDomainUndefine"))?;
        let out = d.dom_ref();
        if d.live.is_some() {
            d.persistent = false;
            d.autostart = false;
        } else {
            reg.domains.remove(&dom.uuid);
        }
        drop(reg);
        self.shared.emit(
            out,
            LifecycleEvent::Undefined,
            event_detail::UNDEFINED_REMOVED,
        );
        Ok(())
    }

    async fn create(&self, dom: &DomainRef, flags: u32) -> Result<DomainRef> {
        check_flags(
            "virDomainCreateWithFlags",
            u64::from(flags),
            // AUTODESTROY is the daemon's: it destroys the guest with the
            // connection that started it.
            u64::from(
                flags::create::START_PAUSED
                    | flags::create::START_FORCE_BOOT
                    | flags::create::START_AUTODESTROY,
            ),
        )?;
        self.start_or_restore(dom, flags).await
    }

    async fn create_xml(&self, xml: &str, flags: u32) -> Result<DomainRef> {
        check_flags(
            "virDomainCreateXML",
            u64::from(flags),
            u64::from(flags::create::START_PAUSED | flags::create::START_AUTODESTROY),
        )?;
        let paused = flags & flags::create::START_PAUSED != 0;
        let mut def = parse_def(xml)?;
        abi::complete(&mut def, "virDomainCreateXML").await?;
        let dom = self.add_transient(def)?;
        match self.start(&dom, StartMode::Boot { paused }).await {
            Ok(dom) => Ok(dom),
            Err(e) => {
                self.remove_if_transient_and_off(&dom);
                Err(e)
            }
        }
    }

    async fn destroy(&self, dom: &DomainRef, flags: u32) -> Result<()> {
        check_flags(
            "virDomainDestroyFlags",
            u64::from(flags),
            u64::from(flags::destroy::GRACEFUL),
        )?;
        let intent = StopIntent {
            reason: shutoff_reason::DESTROYED,
            detail: event_detail::STOPPED_DESTROYED,
        };
        self.stop(dom, intent, flags & flags::destroy::GRACEFUL != 0)
            .await
    }

    async fn suspend(&self, dom: &DomainRef) -> Result<()> {
        let job = self.job(dom)?;
        let _job = job.acquire("remoteDispatchDomainSuspend").await?;
        let run = self.read(|r| {
            let d = r.get(dom)?;
            match &d.live {
                Some(l) if l.state.state == DomainState::Running => {
                    Ok(Some((Arc::clone(&l.runtime), l.id)))
                }
                // libvirt's QEMU driver: suspending a paused guest succeeds
                // and changes nothing (no event).
                Some(l) if l.state.state == DomainState::Paused => Ok(None),
                Some(_) | None => Err(Error::invalid("domain is not running")),
            }
        })?;
        let Some((runtime, id)) = run else {
            return Ok(());
        };
        runtime
            .qmp
            .execute(&Stop)
            .await
            .map_err(|e| e.into_core("virDomainSuspend"))?;
        self.shared.set_state(
            &dom.uuid,
            id,
            StateReason {
                state: DomainState::Paused,
                reason: paused_reason::USER,
            },
            Some((LifecycleEvent::Suspended, event_detail::SUSPENDED_PAUSED)),
        );
        Ok(())
    }

    async fn reset(&self, dom: &DomainRef) -> Result<()> {
        let job = self.job(dom)?;
        let _job = job.acquire("remoteDispatchDomainReset").await?;
        let runtime = self.read(|r| match &r.get(dom)?.live {
            Some(l) => Ok(Arc::clone(&l.runtime)),
            None => Err(Error::invalid("domain is not running")),
        })?;
        self.cancel_reboot(&runtime).await?;
        // The vCPUs keep their run state: a paused guest stays paused.
        runtime
            .qmp
            .execute(&SystemReset)
            .await
            .map_err(|e| e.into_core("virDomainReset"))?;
        Ok(())
    }

    async fn resume(&self, dom: &DomainRef) -> Result<()> {
        let job = self.job(dom)?;
        let _job = job.acquire("remoteDispatchDomainResume").await?;
        let (runtime, id) = self.read(|r| {
            let d = r.get(dom)?;
            match &d.live {
                Some(l) if super::is_postcopy_source(l.state) => {
                    Err(super::postcopy_source_stale())
                }
                Some(l) if l.state.state == DomainState::Paused => {
                    Ok((Arc::clone(&l.runtime), l.id))
                }
                Some(l) if l.state.state == DomainState::Running => {
                    Err(Error::invalid("domain is already running"))
                }
                Some(_) => Err(Error::invalid("domain is not paused")),
                None => Err(Error::invalid("domain is not running")),
            }
        })?;
        self.shared
            .unpause(&runtime.qmp, &dom.uuid, id)
            .await
            .map_err(|e| e.into_core("virDomainResume"))
    }

    async fn shutdown(&self, dom: &DomainRef, flags: u32) -> Result<()> {
        self.power_button(dom, flags, PowerRequest::Shutdown).await
    }

    async fn reboot(&self, dom: &DomainRef, flags: u32) -> Result<()> {
        self.power_button(dom, flags, PowerRequest::Reboot).await
    }

    async fn inject_nmi(&self, dom: &DomainRef) -> Result<()> {
        self.inject_nmi_impl(dom).await
    }

    async fn control_info(&self, dom: &DomainRef) -> Result<ControlInfo> {
        // As qemuDomainGetControlInfo: a broken monitor first, then a
        // background job of ours (a dump), then a command in flight;
        // migration jobs are added by the daemon.
        let runtime = self.runtime(dom)?;
        Ok(if runtime.qmp.closed_reason().is_some() {
            ControlInfo {
                state: ControlState::Error,
                details: CONTROL_ERROR_REASON_MONITOR,
                state_time_ms: 0,
            }
        } else if let Some(job) = self.shared.jobs.stats(&dom.uuid, false) {
            ControlInfo {
                state: ControlState::Job,
                details: 0,
                state_time_ms: job.time_elapsed_ms,
            }
        } else if let Some(busy) = runtime.qmp.busy_for() {
            ControlInfo {
                state: ControlState::Occupied,
                details: 0,
                state_time_ms: u64::try_from(busy.as_millis()).unwrap_or(u64::MAX),
            }
        } else {
            ControlInfo::default()
        })
    }

    async fn iothread_info(&self, dom: &DomainRef, flags: u32) -> Result<Vec<IoThreadInfo>> {
        const OP: &str = "virDomainGetIOThreadInfo";
        let affect = u64::from(flags::affect::LIVE | flags::affect::CONFIG);
        check_flags(OP, u64::from(flags), affect)?;
        // No guest of this driver has IOThreads (the domain XML model has no
        // <iothreads>, and no -object iothread is ever started), so the
        // answer is libvirt's for a domain without any, live or config.
        self.read(|r| {
            let domain = r.get(dom)?;
            flags::affect::resolve_one(OP, flags, domain.live.is_some(), domain.persistent)?;
            Ok(Vec::new())
        })
    }

    async fn send_key(
        &self,
        dom: &DomainRef,
        codeset: Codeset,
        holdtime: u32,
        keycodes: &[u32],
    ) -> Result<()> {
        self.send_key_impl(dom, codeset, holdtime, keycodes).await
    }

    async fn open_console(
        &self,
        dom: &DomainRef,
        dev_name: Option<&str>,
        flags: u32,
    ) -> Result<Console> {
        self.open_console_impl(dom, dev_name, flags).await
    }

    async fn get_autostart(&self, dom: &DomainRef) -> Result<bool> {
        self.read(|r| Ok(r.get(dom)?.autostart))
    }

    async fn set_autostart(&self, dom: &DomainRef, autostart: bool) -> Result<()> {
        let mut reg = self.shared.lock()?;
        let d = reg.get_mut(dom)?;
        if !d.persistent {
            return Err(Error::invalid("cannot set autostart for transient domain"));
        }
        self.shared
            .store
            .set_autostart(&dom.uuid, autostart)
            .map_err(|e| e.into_core("virDomainSetAutostart"))?;
        d.autostart = autostart;
        Ok(())
    }

    async fn is_active(&self, dom: &DomainRef) -> Result<bool> {
        self.read(|r| Ok(r.get(dom)?.live.is_some()))
    }

    async fn is_persistent(&self, dom: &DomainRef) -> Result<bool> {
        self.read(|r| Ok(r.get(dom)?.persistent))
    }

    async fn has_managed_save(&self, dom: &DomainRef, flags: u32) -> Result<bool> {
        check_flags("virDomainHasManagedSaveImage", u64::from(flags), 0)?;
        self.read(|r| Ok(r.get(dom)?.managed_save))
    }

    async fn capabilities(&self) -> Result<String> {
        let emulator = crate::command::find_emulator(None).ok();
        Ok(capabilities_xml(&self.shared.host, emulator.as_deref()))
    }

    async fn cpu_stats(&self, dom: &DomainRef, flags: u32) -> Result<CpuStats> {
        check_flags(
            "virDomainGetCPUStats",
            u64::from(flags),
            u64::from(TYPED_PARAM_STRING_OKAY),
        )?;
        let runtime = self.runtime(dom)?;
        let host_cpus = usize::try_from(node_info().cpus).unwrap_or(1);
        proc_cpu_stats(runtime.process.pid(), host_cpus)
    }

    async fn guest_time(&self, dom: &DomainRef, flags: u32) -> Result<GuestTime> {
        check_flags("virDomainGetTime", u64::from(flags), 0)?;
        Err(self.agent_unavailable(dom)?)
    }

    async fn set_guest_time(&self, dom: &DomainRef, time: GuestTime, flags: u32) -> Result<()> {
        let _ = time;
        check_flags("virDomainSetTime", u64::from(flags), u64::from(TIME_SYNC))?;
        Err(self.agent_unavailable(dom)?)
    }

    async fn guest_hostname(&self, dom: &DomainRef, flags: u32) -> Result<String> {
        // The agent's answer only: DHCP leases (VIR_DOMAIN_GET_HOSTNAME_LEASE)
        // come from libvirt's network driver, which this daemon has not.
        check_flags(
            "virDomainGetHostname",
            u64::from(flags),
            u64::from(GET_HOSTNAME_AGENT),
        )?;
        Err(self.agent_unavailable(dom)?)
    }

    async fn block_io_tune(
        &self,
        dom: &DomainRef,
        disk: Option<&str>,
        flags: u32,
    ) -> Result<TypedParams> {
        self.block_io_tune_impl(dom, disk, flags).await
    }

    async fn set_block_io_tune(
        &self,
        dom: &DomainRef,
        disk: &str,
        params: &TypedParams,
        flags: u32,
    ) -> Result<()> {
        self.set_block_io_tune_impl(dom, disk, params, flags).await
    }

    async fn interface_addresses(
        &self,
        dom: &DomainRef,
        source: u32,
        flags: u32,
    ) -> Result<Vec<InterfaceAddresses>> {
        self.interface_addresses_impl(dom, source, flags).await
    }

    async fn sysinfo(&self) -> Result<String> {
        migrated_core::sysinfo::read_host().ok_or_else(|| Error::ConfigUnsupported {
            reason: "Host SMBIOS information is not available".into(),
        })
    }

    async fn domain_capabilities(&self, query: &DomainCapsQuery, flags: u32) -> Result<String> {
        super::domcaps::domain_capabilities(query, flags).await
    }

    async fn node_info(&self) -> Result<NodeInfo> {
        Ok(node_info())
    }

    async fn node_memory(&self) -> Result<NodeMemory> {
        node_memory().ok_or_else(|| Error::internal("cannot read /proc/meminfo"))
    }

    async fn node_cpu_times(&self, cpu: Option<u32>) -> Result<CpuTimes> {
        node_cpu_times(cpu).ok_or_else(|| Error::internal("cannot read /proc/stat"))
    }

    async fn node_security_model(&self) -> Result<SecurityModel> {
        Ok(SecurityModel::default())
    }

    async fn hypervisor_version(&self) -> Result<u64> {
        self.shared
            .version
            .get_or_try_init(|| async {
                let emulator = crate::command::find_emulator(None)
                    .map_err(|e| e.into_core("virConnectGetVersion"))?;
                let out = tokio::process::Command::new(&emulator)
                    .arg("--version")
                    .stdin(std::process::Stdio::null())
                    .output()
                    .await
                    .map_err(|e| {
                        Error::system(format!("run {} --version", emulator.display()), e)
                    })?;
                parse_version(&String::from_utf8_lossy(&out.stdout)).ok_or_else(|| {
                    Error::OperationFailed {
                        operation: "virConnectGetVersion",
                        reason: format!("cannot parse the version of {}", emulator.display()),
                    }
                })
            })
            .await
            .copied()
    }

    async fn get_type(&self) -> Result<String> {
        Ok(SUPPORT.driver.to_owned())
    }

    async fn uri(&self) -> Result<String> {
        Ok(URI.to_owned())
    }

    fn subscribe_events(&self) -> Result<broadcast::Receiver<DomainEvent>> {
        Ok(self.shared.events.subscribe())
    }

    fn subscribe_monitor_events(&self) -> Result<broadcast::Receiver<MonitorEvent>> {
        Ok(self.shared.monitor_events.subscribe())
    }

    async fn qemu_monitor_command(&self, dom: &DomainRef, cmd: &str, flags: u32) -> Result<String> {
        self.qemu_monitor_command_impl(dom, cmd, flags).await
    }

    async fn qemu_agent_command(
        &self,
        dom: &DomainRef,
        cmd: &str,
        timeout: i32,
        flags: u32,
    ) -> Result<Option<String>> {
        self.qemu_agent_command_impl(dom, cmd, timeout, flags).await
    }

    async fn save(&self, dom: &DomainRef, to: &str, dxml: Option<&str>, flags: u32) -> Result<()> {
        self.save_as(dom, to, dxml, flags, false).await
    }

    async fn core_dump(
        &self,
        dom: &DomainRef,
        to: &str,
        format: DumpFormat,
        flags: u32,
    ) -> Result<()> {
        self.core_dump_impl(dom, to, format, flags).await
    }

    async fn screenshot(&self, dom: &DomainRef, screen: u32, flags: u32) -> Result<Screenshot> {
        self.screenshot_impl(dom, screen, flags).await
    }

    fn local_jobs(&self) -> Option<&LocalJobs> {
        Some(&self.shared.jobs)
    }

    async fn snapshot_create(&self, dom: &DomainRef, xml: &str, flags: u32) -> Result<String> {
        self.snapshot_create_impl(dom, xml, flags).await
    }

    async fn snapshot_list(
        &self,
        dom: &DomainRef,
        of: Option<&str>,
        flags: u32,
    ) -> Result<Vec<String>> {
        self.with_snapshots(dom, |s| s.list(of, flags))
    }

    async fn snapshot_lookup(&self, dom: &DomainRef, name: &str, flags: u32) -> Result<()> {
        self.with_snapshots(dom, |s| s.lookup(name, flags))
    }

    async fn snapshot_xml(&self, dom: &DomainRef, name: &str, flags: u32) -> Result<String> {
        self.with_snapshots(dom, |s| s.xml_desc(name, flags))
    }

    async fn snapshot_current(&self, dom: &DomainRef, flags: u32) -> Result<Option<String>> {
        self.with_snapshots(dom, |s| s.current_of(flags))
    }

    async fn snapshot_parent(&self, dom: &DomainRef, name: &str, flags: u32) -> Result<String> {
        self.with_snapshots(dom, |s| s.parent_of(name, flags))
    }

    async fn snapshot_revert(&self, dom: &DomainRef, name: &str, flags: u32) -> Result<()> {
        self.snapshot_revert_impl(dom, name, flags).await
    }

    async fn snapshot_delete(&self, dom: &DomainRef, name: &str, flags: u32) -> Result<()> {
        self.snapshot_delete_impl(dom, name, flags).await
    }

    async fn restore(&self, from: &str, dxml: Option<&str>, flags: u32) -> Result<()> {
        self.restore_impl(from, dxml, flags).await
    }

    async fn set_vcpus(&self, dom: &DomainRef, count: u32, flags: u32) -> Result<()> {
        self.set_vcpus_impl(dom, count, flags).await
    }

    async fn rename(&self, dom: &DomainRef, new_name: &str, flags: u32) -> Result<DomainRef> {
        self.rename_impl(dom, new_name, flags).await
    }

    async fn managed_save(&self, dom: &DomainRef, flags: u32) -> Result<()> {
        self.managed_save_impl(dom, flags).await
    }

    async fn managed_save_remove(&self, dom: &DomainRef, flags: u32) -> Result<()> {
        self.managed_save_remove_impl(dom, flags).await
    }

    async fn save_image_xml(&self, file: &str, flags: u32) -> Result<String> {
        save::image_xml(Path::new(file), flags, "virDomainSaveImageGetXMLDesc")
    }

    async fn save_image_define_xml(&self, file: &str, dxml: &str, flags: u32) -> Result<()> {
        save::define_image_xml(
            Path::new(file),
            Some(dxml),
            flags,
            "virDomainSaveImageDefineXML",
        )
    }

    async fn managed_save_xml(&self, dom: &DomainRef, flags: u32) -> Result<String> {
        self.managed_save_xml_impl(dom, flags)
    }

    async fn managed_save_define_xml(
        &self,
        dom: &DomainRef,
        dxml: Option<&str>,
        flags: u32,
    ) -> Result<()> {
        self.managed_save_define_xml_impl(dom, dxml, flags).await
    }

    async fn set_metadata(
        &self,
        dom: &DomainRef,
        target: &MetadataTarget,
        value: Option<&str>,
        flags: u32,
    ) -> Result<()> {
        self.set_metadata_impl(dom, target, value, flags)
    }

    async fn get_metadata(
        &self,
        dom: &DomainRef,
        target: &MetadataTarget,
        flags: u32,
    ) -> Result<String> {
        self.get_metadata_impl(dom, target, flags)
    }
}
