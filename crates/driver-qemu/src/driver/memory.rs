//! `virsh setmem` / `virsh setmaxmem`: the balloon of a running guest and
//! the sizes in its persistent config, with the rules and words of
//! libvirt's `qemuDomainSetMemoryFlags`.
//!
//! The maximum can only change in the config (QEMU's memory size is fixed
//! at start); the current size of a running guest changes through the
//! balloon device (`balloon`), which only a guest with a `<memballoon
//! model='virtio'/>` has. QEMU applies the target as the guest's balloon
//! driver inflates, so `dominfo` shows the size the guest reached.

use migrated_core::domain::DomainRef;
use migrated_core::flags::{affect, check_flags, memory};
use migrated_core::{Error, Result};

use super::QemuDriver;
use crate::qmp::commands::Balloon;
use crate::spec::has_balloon;

const OP: &str = "virDomainSetMemoryFlags";

impl QemuDriver {
    pub(super) async fn set_memory_impl(
        &self,
        dom: &DomainRef,
        kib: u64,
        flags: u32,
    ) -> Result<()> {
        check_flags(
            OP,
            u64::from(flags),
            u64::from(affect::LIVE | affect::CONFIG | memory::MAXIMUM),
        )?;
        let job = self.job(dom)?;
        let _job = job.acquire("remoteDispatchDomainSetMemoryFlags").await?;
        let (config, runtime) = self.read(|r| {
            let d = r.get(dom)?;
            let (live, config) = affect::resolve(flags, d.live.is_some(), d.persistent)?;
            if flags & memory::MAXIMUM != 0 && live {
                return Err(Error::invalid(
                    "cannot resize the maximum memory on an active domain",
                ));
            }
            let mut max = u64::MAX;
            // Set only when the running guest changes.
            let mut runtime = None;
            if let (true, Some(l)) = (live, &d.live) {
                max = l.def.memory_kib;
                if flags & memory::MAXIMUM == 0 && !has_balloon(&l.def) {
                    return Err(Error::invalid(
                        "Unable to change memory of active domain without the balloon \
                         device and guest OS balloon driver",
                    ));
                }
                runtime = Some(std::sync::Arc::clone(&l.runtime));
            }
            if config {
                max = max.min(d.config.memory_kib);
            }
            if flags & memory::MAXIMUM == 0 && kib > max {
                return Err(Error::InvalidArg {
                    operation: OP,
                    reason: "cannot set memory higher than max memory".into(),
                });
            }
            Ok((config, runtime))
        })?;
        if let Some(runtime) = runtime {
            runtime
                .qmp
                .execute(&Balloon {
                    value: kib.saturating_mul(1024),
                })
                .await
                .map_err(|e| e.into_core(OP))?;
        }
        if config {
            let mut reg = self.shared.lock()?;
            let d = reg.get_mut(dom)?;
            let mut def = d.config.clone();
            if flags & memory::MAXIMUM != 0 {
                def.memory_kib = kib;
                def.current_memory_kib = def.current_memory_kib.min(kib);
            } else {
                def.current_memory_kib = kib;
            }
            self.shared.store.save(&def).map_err(|e| e.into_core(OP))?;
            d.config = def;
        }
        Ok(())
    }
}
