//! The guest's own memory statistics through its balloon driver, as
//! libvirt's QEMU driver gets them: `virsh dommemstat --period N` sets the
//! balloon device's `guest-stats-polling-interval` (and the definition's
//! `<memballoon><stats period=…/>`), a guest starts with the period of its
//! definition (so a migration's destination keeps it), and `dommemstat`
//! adds what the guest reported (`qom-get guest-stats`) between the
//! balloon's size and QEMU's resident size. A guest without a balloon
//! driver never reports; QEMU then says so and only the host's figures are
//! given, as libvirt gives them.

use migrated_core::domain::{memory_stat, DomainRef, MemoryStat};
use migrated_core::flags::affect;
use migrated_core::tune::{memory_stats_period, SET_MEMORY_STATS_PERIOD as OP};
use migrated_core::xml::DomainDef;
use migrated_core::{Error, Result};
use serde_json::Value;
use tracing::warn;

use super::{status_of, QemuDriver};
use crate::qmp::commands::{QomGet, QomSet};
use crate::qmp::Qmp;
use crate::spec::has_balloon;

/// The balloon device's QOM path (its `-device` id is `balloon0`).
const BALLOON_PATH: &str = "/machine/peripheral/balloon0";
/// The balloon's property holding the period, seconds.
const POLL_INTERVAL: &str = "guest-stats-polling-interval";

/// QEMU's names of the guest's statistics, libvirt's tags, and the divisor
/// that turns QEMU's bytes into KiB (1 for counts).
const GUEST_STATS: [(&str, i32, u64); 10] = [
    ("stat-swap-in", memory_stat::SWAP_IN, 1024),
    ("stat-swap-out", memory_stat::SWAP_OUT, 1024),
    ("stat-major-faults", memory_stat::MAJOR_FAULT, 1),
    ("stat-minor-faults", memory_stat::MINOR_FAULT, 1),
    ("stat-free-memory", memory_stat::UNUSED, 1024),
    ("stat-total-memory", memory_stat::AVAILABLE, 1024),
    ("stat-available-memory", memory_stat::USABLE, 1024),
    ("stat-disk-caches", memory_stat::DISK_CACHES, 1024),
    ("stat-htlb-pgalloc", memory_stat::HUGETLB_PGALLOC, 1),
    ("stat-htlb-pgfail", memory_stat::HUGETLB_PGFAIL, 1),
];

fn no_balloon() -> Error {
    Error::invalid("No memory balloon device configured, can not set the collection period")
}

/// The period of `def`'s balloon, seconds (0: none asked).
fn period_of(def: &DomainDef) -> u32 {
    def.devices
        .memballoon
        .as_ref()
        .and_then(|b| b.stats_period)
        .unwrap_or(0)
}

/// Starts the guest's statistics at its definition's period in the QEMU
/// just launched (libvirt's `qemuProcessSetupBalloon`; a refusal is only
/// logged there too: the guest runs without them).
pub(super) async fn apply_period(qmp: &Qmp, def: &DomainDef) {
    let period = period_of(def);
    if period == 0 || !has_balloon(def) {
        return;
    }
    if let Err(e) = set_interval(qmp, period).await {
        warn!(error = %e, period, "cannot start the guest's memory statistics");
    }
}

async fn set_interval(qmp: &Qmp, period: u32) -> crate::error::Result<()> {
    qmp.execute(&QomSet {
        path: BALLOON_PATH,
        property: POLL_INTERVAL,
        value: Value::from(period),
    })
    .await
    .map(|_| ())
}

/// What the guest last reported, for `dommemstat`: nothing when its period
/// is 0 or it never reported.
pub(super) async fn guest_stats(qmp: &Qmp, def: &DomainDef) -> Vec<MemoryStat> {
    if period_of(def) == 0 || !has_balloon(def) {
        return Vec::new();
    }
    match qmp
        .execute(&QomGet {
            path: BALLOON_PATH,
            property: "guest-stats",
        })
        .await
    {
        Ok(reply) => parse_guest_stats(&reply),
        // "guest hasn't updated any stats yet": libvirt also answers the
        // host's figures only.
        Err(_) => Vec::new(),
    }
}

/// The statistics of a `guest-stats` reply; a figure the guest did not
/// give (QEMU's -1) is left out, as libvirt leaves it out.
fn parse_guest_stats(reply: &Value) -> Vec<MemoryStat> {
    let mut out: Vec<MemoryStat> = GUEST_STATS
        .iter()
        .filter_map(|&(name, tag, unit)| {
            let value = reply.get("stats")?.get(name)?.as_u64()?;
            Some(MemoryStat {
                tag,
                value: value / unit,
            })
        })
        .collect();
    if let Some(value) = reply.get("last-update").and_then(Value::as_u64) {
        out.push(MemoryStat {
            tag: memory_stat::LAST_UPDATE,
            value,
        });
    }
    out
}

impl QemuDriver {
    /// `virsh dommemstat --period` (`qemuDomainSetMemoryStatsPeriod`): the
    /// running QEMU's polling interval and/or the config's period.
    pub(super) async fn set_memory_stats_period_impl(
        &self,
        dom: &DomainRef,
        period: i32,
        flags: u32,
    ) -> Result<()> {
        let period = memory_stats_period(period, flags)?;
        let job = self.job(dom)?;
        let _job = job
            .acquire("remoteDispatchDomainSetMemoryStatsPeriod")
            .await?;
        let (live, config) = self.read(|r| {
            let d = r.get(dom)?;
            let (live, config) = affect::resolve(flags, d.live.is_some(), d.persistent)?;
            if live && !d.live.as_ref().is_some_and(|l| has_balloon(&l.def)) {
                return Err(no_balloon());
            }
            let config_balloon = d.config.devices.memballoon.as_ref();
            if config && !config_balloon.is_some_and(|b| b.model != "none") {
                return Err(no_balloon());
            }
            Ok((live, config))
        })?;
        if live {
            set_interval(&self.qmp(dom)?, period.unwrap_or(0))
                .await
                .map_err(|e| e.into_core(OP))?;
            let mut reg = self.shared.lock()?;
            let d = reg.get_mut(dom)?;
            let persistent = d.persistent;
            if let Some(l) = d.live.as_mut() {
                if let Some(b) = l.def.devices.balloon_mut() {
                    b.stats_period = period;
                }
                if let Err(e) = status_of(l, persistent).write(&self.shared.config.runtime_dir) {
                    warn!(error = %e.chain(), "cannot update status file");
                }
            }
        }
        if config {
            let mut reg = self.shared.lock()?;
            let d = reg.get_mut(dom)?;
            let mut def = d.config.clone();
            if let Some(b) = def.devices.balloon_mut() {
                b.stats_period = period;
            }
            self.shared.store.save(&def).map_err(|e| e.into_core(OP))?;
            d.config = def;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn guest_stats_are_libvirts_tags_in_kib_without_the_missing_ones() {
        let reply = json!({
            "last-update": 1_700_000_000u64,
            "stats": {
                "stat-swap-in": 4096, "stat-swap-out": -1, "stat-major-faults": 7,
                "stat-minor-faults": 70, "stat-free-memory": 1_048_576,
                "stat-total-memory": 2_097_152, "stat-available-memory": -1,
                "stat-disk-caches": 8192, "stat-htlb-pgalloc": 0, "stat-htlb-pgfail": 0
            }
        });
        let stats = parse_guest_stats(&reply);
        let get = |tag| stats.iter().find(|s| s.tag == tag).map(|s| s.value);
        assert_eq!(get(memory_stat::SWAP_IN), Some(4));
        assert_eq!(get(memory_stat::SWAP_OUT), None);
        assert_eq!(get(memory_stat::MAJOR_FAULT), Some(7));
        assert_eq!(get(memory_stat::UNUSED), Some(1024));
        assert_eq!(get(memory_stat::AVAILABLE), Some(2048));
        assert_eq!(get(memory_stat::USABLE), None);
        assert_eq!(get(memory_stat::DISK_CACHES), Some(8));
        assert_eq!(get(memory_stat::LAST_UPDATE), Some(1_700_000_000));
        assert_eq!(stats.len(), 9);
        assert!(parse_guest_stats(&json!({})).is_empty());
    }
}
