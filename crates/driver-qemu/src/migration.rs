//! QEMU-side migration steps over QMP, shared by save/restore and (later)
//! live migration: turning on MIGRATION events and waiting for a migration
//! to finish by those events rather than by polling `query-migrate`.

use migrated_core::job::JobStats;
use tokio::sync::broadcast;

use crate::error::{Error, Result};
use crate::qmp::commands::{
    MigrateSetCapabilities, MigrationCapability, MigrationInfo, MigrationStatus, QueryMigrate,
};
use crate::qmp::message::names;
use crate::qmp::{Event, Qmp};

/// Capability without which QEMU sends no `MIGRATION` event.
pub const CAP_EVENTS: &str = "events";
/// Capability sending RAM over several connections (`VIR_MIGRATE_PARALLEL`).
pub const CAP_MULTIFD: &str = "multifd";
/// Capability sending changed pages as deltas (`VIR_MIGRATE_COMPRESSED`).
pub const CAP_XBZRLE: &str = "xbzrle";
/// Capability compressing pages with zlib in several threads (the
/// `mt` compression method).
pub const CAP_COMPRESS: &str = "compress";
/// Capability sending multifd pages without copying them (`MSG_ZEROCOPY`,
/// `VIR_MIGRATE_ZEROCOPY`; source only, QEMU 7.1+ on Linux).
pub const CAP_ZERO_COPY_SEND: &str = "zero-copy-send";
/// Capability throttling vCPUs that dirty too fast (`VIR_MIGRATE_AUTO_CONVERGE`).
pub const CAP_AUTO_CONVERGE: &str = "auto-converge";
/// Capability allowing a switch to post-copy (`VIR_MIGRATE_POSTCOPY`); both
/// ends need it.
pub const CAP_POSTCOPY_RAM: &str = "postcopy-ram";
/// Capability stopping an outgoing migration at `pre-switchover`, the guest
/// paused and its disks still active, until `migrate-continue` (a storage
/// migration ends its mirrors there, as libvirt does).
pub const CAP_PAUSE_BEFORE_SWITCHOVER: &str = "pause-before-switchover";

/// Sets each named migration capability on or off in one
/// `migrate-set-capabilities`.
///
/// # Errors
/// QMP errors (QEMU refuses some combinations, and any change while a
/// migration runs).
pub async fn set_capabilities(qmp: &Qmp, caps: &[(&str, bool)]) -> Result<()> {
    qmp.execute(&MigrateSetCapabilities {
        capabilities: caps
            .iter()
            .map(|&(capability, state)| MigrationCapability {
                capability: capability.into(),
                state,
            })
            .collect(),
    })
    .await?;
    Ok(())
}

/// Turns on the `events` capability, without which QEMU sends no
/// `MIGRATION` event.
///
/// # Errors
/// QMP errors.
pub async fn enable_events(qmp: &Qmp) -> Result<()> {
    set_capabilities(qmp, &[(CAP_EVENTS, true)]).await
}

/// Waits until the migration (outgoing or incoming) on `qmp` completes and
/// returns QEMU's final statistics (a post-copy migration that pauses on a
/// broken stream fails). `events` must have been subscribed
/// before the migration started, so no status change is missed.
///
/// # Errors
/// [`Error::MigrationFailed`] when QEMU reports `failed` or `cancelled`
/// (with its `error-desc`), [`Error::QmpClosed`] when QEMU goes away.
///
/// # Cancel safety
/// Cancel safe; the migration itself goes on.
pub async fn wait_for_completion(
    qmp: &Qmp,
    events: &mut broadcast::Receiver<Event>,
) -> Result<MigrationInfo> {
    // The migration may already be over if it was quick.
    if let Some(done) = finished(qmp.execute(&QueryMigrate).await?)? {
        return Ok(done);
    }
    loop {
        match events.recv().await {
            Ok(event) if event.event == names::MIGRATION => {
                let status = event.data.get("status").and_then(|s| s.as_str());
                if matches!(
                    status,
                    Some("completed" | "failed" | "cancelled" | "postcopy-paused")
                ) {
                    if let Some(done) = finished(qmp.execute(&QueryMigrate).await?)? {
                        return Ok(done);
                    }
                }
            }
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(_)) => {
                if let Some(done) = finished(qmp.execute(&QueryMigrate).await?)? {
                    return Ok(done);
                }
            }
            Err(broadcast::error::RecvError::Closed) => {
                return Err(Error::QmpClosed {
                    reason: qmp
                        .closed_reason()
                        .unwrap_or_else(|| "qemu exited during the migration".into()),
                })
            }
        }
    }
}

/// Copies `query-migrate`'s RAM statistics into a job's statistics (as
/// libvirt's `qemuMigrationAnyFetchStats`); nothing before QEMU has any.
pub fn fill_stats(s: &mut JobStats, info: &MigrationInfo) {
    let Some(ram) = info.ram else { return };
    s.data_total = ram.total;
    s.data_processed = ram.transferred;
    s.data_remaining = ram.remaining;
    s.memory_constant = ram.duplicate;
    s.memory_normal = ram.normal;
    s.memory_normal_bytes = ram.normal_bytes;
    s.memory_bps = (ram.mbps * 1_000_000.0 / 8.0) as u64;
    s.memory_dirty_rate = ram.dirty_pages_rate;
    s.memory_page_size = ram.page_size;
    s.memory_iteration = ram.dirty_sync_count;
    s.memory_postcopy_requests = ram.postcopy_requests;
    s.downtime_ms = info.downtime.or(info.expected_downtime).unwrap_or(0);
    s.setup_time_ms = info.setup_time.unwrap_or(0);
    // libvirt's compression_* statistics are XBZRLE's.
    if let Some(x) = info.xbzrle_cache {
        s.compression_bytes = x.bytes;
        s.compression_pages = x.pages;
    }
}

/// `Some(info)` once the migration is over, an error when it failed.
pub(crate) fn finished(info: MigrationInfo) -> Result<Option<MigrationInfo>> {
    match info.status {
        Some(MigrationStatus::Completed) => Ok(Some(info)),
        Some(MigrationStatus::PostcopyPaused) => Err(Error::MigrationFailed {
            reason: format!(
                "post-copy migration failed: {}",
                info.error_desc
                    .unwrap_or_else(|| "the migration stream broke".into())
            ),
        }),
        Some(status @ (MigrationStatus::Failed | MigrationStatus::Cancelled)) => {
            Err(Error::MigrationFailed {
                reason: info
                    .error_desc
                    .unwrap_or_else(|| format!("migration {status:?}").to_lowercase()),
            })
        }
        _ => Ok(None),
    }
}
