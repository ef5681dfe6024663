//! `virsh setvcpus` and `virsh domrename`, with the rules and words of
//! libvirt's `qemuDomainSetVcpusFlags` and `qemuDomainRename`.
//!
//! A guest whose `<vcpu current='N'>M</vcpu>` has N < M starts with
//! `-smp N,maxcpus=M`: M - N empty vCPU slots. A live change plugs vCPUs
//! into the lowest empty slots (`device_add` of the type
//! `query-hotpluggable-cpus` names, id `vcpuN`) or unplugs the ones it
//! plugged, highest first (`device_del`, then the guest must release them:
//! `DEVICE_DELETED`). vCPUs the guest started with cannot be unplugged, as
//! in libvirt. The live definition's `current` follows, so a migration or
//! a save starts the next QEMU with that many vCPUs online.
//!
//! The maximum only changes in the config (QEMU's slots are fixed at start).

use std::sync::Arc;
use std::time::Duration;

use migrated_core::domain::{event_detail, DomainRef, LifecycleEvent, RenameCheck};
use migrated_core::flags::{affect, check_flags, vcpu};
use migrated_core::xml::DomainDef;
use migrated_core::{Error, Result};
use tracing::warn;

use super::{status_of, QemuDriver};
use crate::qmp::commands::{DeviceAddCpu, DeviceDel, QueryHotpluggableCpus};
use crate::qmp::message::names;
use crate::qmp::Qmp;
use crate::spec::launch_spec;

const OP: &str = "virDomainSetVcpusFlags";

/// vCPU slots a guest may have (QEMU's limit for the `pc` machine, and what
/// `CONNECT_GET_MAX_VCPUS` answers).
const MAX_VCPUS: u32 = 255;

/// How long the guest has to release an unplugged vCPU (libvirt's
/// `qemuDomainRemoveDeviceWaitTime`).
const UNPLUG_WAIT: Duration = Duration::from_secs(5);

/// The id of the vCPU device this driver plugs into socket `socket`.
fn vcpu_id(socket: u32) -> String {
    format!("vcpu{socket}")
}

/// libvirt's refusal of a count over `def`'s maximum.
fn check_max(def: &DomainDef, count: u32, which: &str) -> Result<()> {
    if count > def.vcpus {
        return Err(Error::InvalidValue {
            reason: format!(
                "requested vcpus is greater than max allowable vcpus for the {which} domain: \
                 {count} > {}",
                def.vcpus
            ),
        });
    }
    Ok(())
}

impl QemuDriver {
    pub(super) async fn set_vcpus_impl(
        &self,
        dom: &DomainRef,
        count: u32,
        flags: u32,
    ) -> Result<()> {
        check_flags(
            OP,
            u64::from(flags),
            u64::from(
                affect::LIVE | affect::CONFIG | vcpu::MAXIMUM | vcpu::GUEST | vcpu::HOTPLUGGABLE,
            ),
        )?;
        if flags & vcpu::GUEST != 0 {
            // The guest agent sets the count; this daemon never has one
            // connected, so libvirt's answer for a guest without it.
            return Err(self.agent_unavailable(dom)?);
        }
        let maximum = flags & vcpu::MAXIMUM != 0;
        let job = self.job(dom)?;
        let _job = job.acquire("remoteDispatchDomainSetVcpusFlags").await?;
        let (runtime, config) = self.read(|r| {
            let d = r.get(dom)?;
            let (live, config) = affect::resolve(flags, d.live.is_some(), d.persistent)?;
            if maximum {
                if live {
                    return Err(Error::OperationUnsupported {
                        reason: "maximum vcpu count of a live domain can't be modified".into(),
                    });
                }
                if count > MAX_VCPUS {
                    return Err(Error::ConfigUnsupported {
                        reason: format!(
                            "Maximum CPUs greater than specified machine type limit {MAX_VCPUS}"
                        ),
                    });
                }
            }
            let runtime = match (&d.live, live) {
                (Some(l), true) => {
                    check_max(&l.def, count, "live")?;
                    Some((Arc::clone(&l.runtime), l.def.current_vcpus()))
                }
                _ => None,
            };
            let config = if config {
                let mut def = d.config.clone();
                if maximum {
                    def.set_max_vcpus(count);
                } else {
                    check_max(&def, count, "persistent")?;
                    def.set_current_vcpus(count);
                }
                Some(def)
            } else {
                None
            };
            Ok((runtime, config))
        })?;
        if let Some(def) = &config {
            // What could never start is refused now, not at the next start.
            launch_spec(def).map_err(|e| e.into_core(OP))?;
        }
        if let Some((runtime, current)) = runtime {
            let online = hotplug(&runtime.qmp, current, count).await;
            // The live definition follows what is online, even after a
            // partial change.
            let mut reg = self.shared.lock()?;
            let d = reg.get_mut(dom)?;
            let persistent = d.persistent;
            if let Some(l) = d.live.as_mut() {
                let now = online.as_ref().map_or_else(|(n, _)| *n, |n| *n);
                if now != l.def.current_vcpus() {
                    l.def.record_vcpu_hotplug(now);
                    if let Err(e) = status_of(l, persistent).write(&self.shared.config.runtime_dir)
                    {
                        warn!(error = %e.chain(), "cannot update status file");
                    }
                }
            }
            online.map_err(|(_, e)| e)?;
        }
        if let Some(def) = config {
            let mut reg = self.shared.lock()?;
            let d = reg.get_mut(dom)?;
            self.shared.store.save(&def).map_err(|e| e.into_core(OP))?;
            d.config = def;
        }
        Ok(())
    }

    pub(super) async fn rename_impl(
        &self,
        dom: &DomainRef,
        new_name: &str,
        flags: u32,
    ) -> Result<DomainRef> {
        check_flags("virDomainRename", u64::from(flags), 0)?;
        let job = self.job(dom)?;
        let _job = job.acquire("remoteDispatchDomainRename").await?;
        let mut reg = self.shared.lock()?;
        let name_taken = reg.domains.values().any(|d| d.config.name == new_name);
        let d = reg.get_mut(dom)?;
        RenameCheck {
            name: &d.config.name,
            active: d.live.is_some(),
            persistent: d.persistent,
            managed_save: d.managed_save,
            name_taken,
        }
        .check(new_name)?;
        let old = d.dom_ref();
        let mut def = d.config.clone();
        def.name = new_name.to_owned();
        // The config file is named by UUID: one atomic rewrite renames it.
        self.shared
            .store
            .save(&def)
            .map_err(|e| e.into_core("virDomainRename"))?;
        d.config = def;
        let new = d.dom_ref();
        drop(reg);
        self.shared.emit(
            old,
            LifecycleEvent::Undefined,
            event_detail::UNDEFINED_RENAMED,
        );
        self.shared.emit(
            new.clone(),
            LifecycleEvent::Defined,
            event_detail::DEFINED_RENAMED,
        );
        Ok(new)
    }
}

/// Plugs or unplugs vCPUs of a running guest from `current` to `count`
/// online; the count online afterwards, with the error of a partial change.
pub(super) async fn hotplug(
    qmp: &Qmp,
    current: u32,
    count: u32,
) -> std::result::Result<u32, (u32, Error)> {
    let fail = |online: u32, e: crate::error::Error| (online, e.into_core(OP));
    let mut slots = qmp
        .execute(&QueryHotpluggableCpus)
        .await
        .map_err(|e| fail(current, e))?;
    slots.sort_by_key(|s| (s.props.socket_id, s.props.core_id, s.props.thread_id));
    let mut online = current;
    if count > current {
        for slot in slots.iter().filter(|s| s.qom_path.is_none()) {
            if online >= count {
                break;
            }
            if slot.vcpus_count != 1 {
                return Err((
                    online,
                    Error::InvalidArg {
                        operation: OP,
                        reason: "target vm vcpu granularity does not allow the desired vcpu count"
                            .into(),
                    },
                ));
            }
            let id = vcpu_id(slot.props.socket_id.unwrap_or(online));
            qmp.execute(&DeviceAddCpu {
                driver: slot.cpu_type.clone(),
                id,
                props: slot.props,
            })
            .await
            .map_err(|e| fail(online, e))?;
            online += 1;
        }
        return Ok(online);
    }
    for slot in slots.iter().rev().filter(|s| s.qom_path.is_some()) {
        if online <= count {
            break;
        }
        let id = vcpu_id(slot.props.socket_id.unwrap_or(0));
        // Only the vCPUs this driver plugged are devices of their own.
        if slot.qom_path.as_deref() != Some(&format!("/machine/peripheral/{id}")) {
            return Err((
                online,
                Error::InvalidArg {
                    operation: OP,
                    reason: format!("vcpu '{}' can't be hotunplugged", online - 1),
                },
            ));
        }
        let mut events = qmp.events();
        qmp.execute(&DeviceDel { id: id.clone() })
            .await
            .map_err(|e| fail(online, e))?;
        let deleted = tokio::time::timeout(UNPLUG_WAIT, async {
            loop {
                match events.recv().await {
                    Ok(ev)
                        if ev.event == names::DEVICE_DELETED
                            && ev.data.get("device").and_then(|d| d.as_str()) == Some(&id) =>
                    {
                        return true
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return false,
                }
            }
        })
        .await;
        if deleted != Ok(true) {
            return Err((
                online,
                Error::OperationTimeout {
                    operation: OP,
                    millis: u64::try_from(UNPLUG_WAIT.as_millis()).unwrap_or(u64::MAX),
                },
            ));
        }
        online -= 1;
    }
    Ok(online)
}
