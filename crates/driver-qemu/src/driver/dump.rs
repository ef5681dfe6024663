//! `virsh dump` and `virsh screenshot` of QEMU guests, as libvirt's
//! `qemuDomainCoreDumpWithFormat` / `doCoreDump` and `qemuDomainScreenshot`.
//!
//! A dump runs under the domain's job lock and as a [`LocalJob`] that
//! GET_JOB_INFO reports (operation "dump") and ABORT_JOB reaches:
//!
//! ```text
//! check flags, running? ──▶ pause unless LIVE (paused, reason dump)
//!   MEMORY_ONLY: dump-guest-memory fd: detach ──▶ query-dump progress
//!                until DUMP_COMPLETED (not abortable: "cannot abort
//!                memory-only dump")
//!   otherwise:   migrate fd: (the migration stream, raw format only)
//!                ──▶ query-migrate progress until MIGRATION completed;
//!                ABORT_JOB ──▶ migrate_cancel ("dump job: canceled by client")
//! success: CRASH ──▶ QEMU stopped (shut off, reason crashed)
//!          RESET ──▶ system_reset;  a guest that ran runs again
//! failure: a file the dump created removed, a guest that ran runs again
//! ```
//!
//! A screenshot is QEMU's `screendump` into a temporary file, as PNG when
//! this QEMU writes PNG (else PPM, libvirt's fallback), read back whole.

use std::fs::OpenOptions;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use migrated_core::domain::{
    event_detail, paused_reason, shutoff_reason, DomainRef, DomainState, Screenshot,
};
use migrated_core::flags::{check_flags, dump};
use migrated_core::job::{Abort, LocalJob};
use migrated_core::typed_params::job_stats::operation;
use migrated_core::xml::DomainDef;
use migrated_core::{Error, Result};
use tokio::sync::broadcast;
use tracing::{info, warn};

use super::registry::{Runtime, StopIntent};
use super::QemuDriver;
use crate::migration;
use crate::qmp::commands::{
    DumpGuestMemory, DumpStatus, Getfd, Migrate, MigrateCancel, QueryDump,
    QueryDumpGuestMemoryCapability, QueryMigrate, Screendump, SystemReset,
};
use crate::qmp::message::names;
use crate::qmp::{Event, Qmp};

const OP: &str = "virDomainCoreDumpWithFormat";
/// The call libvirt's job-lock error names while a dump holds the job.
const JOB_HOLDER: &str = "remoteDispatchDomainCoreDumpWithFormat";
const DUMP_FD: &str = "migrated-dump";
/// How often a running dump's progress is read from QEMU.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);
/// Temporary screendump files of this process, numbered.
static SCREENDUMPS: AtomicU64 = AtomicU64::new(0);

impl QemuDriver {
    /// `DOMAIN_CORE_DUMP(_WITH_FORMAT)`.
    pub(super) async fn core_dump_impl(
        &self,
        dom: &DomainRef,
        to: &str,
        format: dump::Format,
        flags: u32,
    ) -> Result<()> {
        use dump::{BYPASS_CACHE, CRASH, LIVE, MEMORY_ONLY, RESET};
        check_flags(
            OP,
            u64::from(flags),
            u64::from(LIVE | CRASH | BYPASS_CACHE | RESET | MEMORY_ONLY),
        )?;
        let lock = self.job(dom)?;
        let _lock = lock.acquire(JOB_HOLDER).await?;
        let abort = if flags & MEMORY_ONLY != 0 {
            Abort::Refused("cannot abort memory-only dump")
        } else {
            Abort::Allowed
        };
        let job = self
            .shared
            .jobs
            .begin(dom.uuid, operation::DUMP, JOB_HOLDER, abort)?;
        let (runtime, id, state) = self.read(|r| {
            let live = r
                .get(dom)?
                .live
                .as_ref()
                .ok_or_else(|| Error::invalid("domain is not running"))?;
            Ok((Arc::clone(&live.runtime), live.id, live.state))
        })?;
        let qmp = runtime.qmp.clone();
        let resume = state.state == DomainState::Running;
        if flags & LIVE == 0 && resume {
            if let Err(e) = self
                .shared
                .pause_for(&qmp, &dom.uuid, id, state, paused_reason::DUMP)
                .await
            {
                let e = e.into_core(OP);
                job.finish::<()>(&Err(Error::internal("cannot pause the guest for the dump")));
                return Err(e);
            }
        }
        let path = PathBuf::from(to);
        // As libvirt, a failed dump removes only a file it created.
        let existed = path.symlink_metadata().is_ok();
        let mut outcome = write_dump(&qmp, &job, &path, format, flags).await;
        if outcome.is_err() && !existed {
            let _ = std::fs::remove_file(&path);
        }
        if outcome.is_ok() && flags & CRASH != 0 {
            let intent = StopIntent {
                reason: shutoff_reason::CRASHED,
                detail: event_detail::STOPPED_CRASHED,
            };
            outcome = self.stop_locked(dom, intent, false).await;
        } else {
            if outcome.is_ok() && flags & RESET != 0 {
                outcome = qmp
                    .execute(&SystemReset)
                    .await
                    .map(drop)
                    .map_err(|e| e.into_core(OP));
            }
            // The migration stream and a non-live dump leave it paused.
            if resume {
                if let Err(e) = self.shared.unpause(&qmp, &dom.uuid, id).await {
                    warn!(error = %e.chain(), "cannot resume the guest after its dump");
                }
            }
        }
        if outcome.is_ok() {
            info!(name = %dom.name, path = %path.display(), "guest dumped");
        }
        job.finish(&outcome);
        outcome
    }

    /// `DOMAIN_SCREENSHOT`.
    pub(super) async fn screenshot_impl(
        &self,
        dom: &DomainRef,
        screen: u32,
        flags: u32,
    ) -> Result<Screenshot> {
        check_flags("virDomainScreenshot", u64::from(flags), 0)?;
        let (runtime, def) = self.read(|r| {
            let live = r
                .get(dom)?
                .live
                .as_ref()
                .ok_or_else(|| Error::invalid("domain is not running"))?;
            Ok((Arc::clone(&live.runtime), live.def.clone()))
        })?;
        let target = screen_target(&def, screen)?;
        let file = self.shared.config.runtime_dir.join(format!(
            "screendump-{}-{}",
            dom.uuid.simple(),
            SCREENDUMPS.fetch_add(1, Ordering::Relaxed)
        ));
        let shot = take_screenshot(&runtime, &file, target).await;
        let _ = std::fs::remove_file(&file);
        shot
    }
}

/// The video device and head QEMU's `screendump` is given for `screen`
/// (none for screen 0: the primary console), as libvirt's
/// `qemuDomainScreenshot` counts heads over the video devices.
fn screen_target(def: &DomainDef, screen: u32) -> Result<Option<(String, u32)>> {
    let mut heads: Vec<(String, u32)> = def
        .devices
        .videos
        .iter()
        .enumerate()
        .filter(|(_, v)| v.model.as_ref().map_or(true, |m| m.kind != "none"))
        .map(|(i, v)| {
            let alias = v.info.alias.clone().unwrap_or_else(|| format!("video{i}"));
            (alias, v.model.as_ref().and_then(|m| m.heads).unwrap_or(1))
        })
        .collect();
    // A display without a <video> gets the default adapter (video0).
    if def.devices.videos.is_empty() && !def.devices.graphics.is_empty() {
        heads.push(("video0".into(), 1));
    }
    if heads.is_empty() {
        return Err(Error::invalid("no screens to take screenshot from"));
    }
    if screen == 0 {
        return Ok(None);
    }
    let mut left = screen;
    for (alias, count) in heads {
        if left < count {
            return Ok(Some((alias, left)));
        }
        left -= count;
    }
    Err(Error::InvalidArg {
        operation: "virDomainScreenshot",
        reason: "no such screen ID".into(),
    })
}

async fn take_screenshot(
    runtime: &Runtime,
    file: &Path,
    target: Option<(String, u32)>,
) -> Result<Screenshot> {
    let (device, head) = target.map_or((None, None), |(d, h)| (Some(d), Some(h)));
    let command = |format| Screendump {
        filename: file.display().to_string(),
        device: device.clone(),
        head,
        format,
    };
    // PNG where this QEMU writes it (7.1+ built with libpng), else PPM.
    let mime = match runtime.qmp.execute(&command(Some("png"))).await {
        Ok(_) => "image/png",
        Err(png) => {
            tracing::debug!(error = %png.chain(), "screendump as png refused; trying ppm");
            runtime
                .qmp
                .execute(&command(None))
                .await
                .map_err(|e| e.into_core("virDomainScreenshot"))?;
            "image/x-portable-pixmap"
        }
    };
    let data = tokio::fs::read(file)
        .await
        .map_err(|e| Error::system(format!("read {}", file.display()), e))?;
    Ok(Screenshot {
        mime: mime.into(),
        data,
    })
}

/// Writes the dump into `path` (created, mode 0600): QEMU's memory dump or
/// the migration stream.
async fn write_dump(
    qmp: &Qmp,
    job: &LocalJob,
    path: &Path,
    format: dump::Format,
    flags: u32,
) -> Result<()> {
    let memory_only = flags & dump::MEMORY_ONLY != 0;
    if !memory_only && format != dump::Format::Raw {
        return Err(Error::OperationUnsupported {
            reason: "kdump-compressed format is only supported with memory-only dump".into(),
        });
    }
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::system(format!("failed to create file '{}'", path.display()), e))?;
    let mut events = qmp.events();
    if memory_only {
        let format = match format {
            dump::Format::Raw => None,
            other => Some(check_format(qmp, other).await?),
        };
        give_fd(qmp, &file).await?;
        qmp.execute(&DumpGuestMemory {
            paging: false,
            protocol: format!("fd:{DUMP_FD}"),
            detach: true,
            format,
        })
        .await
        .map_err(|e| e.into_core(OP))?;
        wait_memory_dump(qmp, job, &mut events).await?;
    } else {
        // A file takes one stream (see save.rs).
        migration::set_capabilities(
            qmp,
            &[
                (migration::CAP_EVENTS, true),
                (migration::CAP_MULTIFD, false),
                (migration::CAP_ZERO_COPY_SEND, false),
            ],
        )
        .await
        .map_err(|e| e.into_core(OP))?;
        give_fd(qmp, &file).await?;
        qmp.execute(&Migrate {
            uri: format!("fd:{DUMP_FD}"),
            resume: false,
        })
        .await
        .map_err(|e| e.into_core(OP))?;
        wait_migration_dump(qmp, job, &mut events).await?;
    }
    // A pipe or a device has nothing to sync (fsync fails on a FIFO).
    if file.metadata().is_ok_and(|m| m.is_file()) {
        file.sync_all()
            .map_err(|e| Error::system(format!("sync {}", path.display()), e))?;
    }
    Ok(())
}

async fn give_fd(qmp: &Qmp, file: &std::fs::File) -> Result<()> {
    qmp.execute_with_fd(
        &Getfd {
            fdname: DUMP_FD.into(),
        },
        file.as_fd(),
    )
    .await
    .map(drop)
    .map_err(|e| e.into_core(OP))
}

/// QEMU's name of `format`, when this QEMU writes it.
async fn check_format(qmp: &Qmp, format: dump::Format) -> Result<String> {
    let name = format.qemu_name();
    let caps = qmp
        .execute(&QueryDumpGuestMemoryCapability)
        .await
        .map_err(|e| e.into_core(OP))?;
    if caps.formats.iter().any(|f| f == name) {
        Ok(name.to_owned())
    } else {
        Err(Error::InvalidArg {
            operation: OP,
            reason: format!("unsupported dumpformat '{name}' for this QEMU binary"),
        })
    }
}

/// Follows a detached `dump-guest-memory` to its `DUMP_COMPLETED`, feeding
/// `query-dump`'s progress into the job.
async fn wait_memory_dump(
    qmp: &Qmp,
    job: &LocalJob,
    events: &mut broadcast::Receiver<Event>,
) -> Result<()> {
    let failed = |reason: Option<String>| Error::OperationFailed {
        operation: OP,
        reason: match reason {
            Some(r) => format!("memory-only dump failed: {r}"),
            None => "memory-only dump failed for unknown reason".into(),
        },
    };
    let mut tick = tokio::time::interval(PROGRESS_EVERY);
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(e) if e.event == names::DUMP_COMPLETED => {
                    let error = e.data.get("error").and_then(|v| v.as_str()).map(str::to_owned);
                    let status = e.data.get("result").and_then(|r| r.get("status")).and_then(|s| s.as_str());
                    return match (status, error) {
                        (Some("completed"), None) => {
                            update_dump_progress(qmp, job).await;
                            Ok(())
                        }
                        (_, error) => Err(failed(error)),
                    };
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => {
                    return Err(Error::OperationFailed {
                        operation: OP,
                        reason: "qemu exited during the dump".into(),
                    })
                }
            },
            _ = tick.tick() => {
                // The event may have been missed (lagged): query-dump knows.
                match update_dump_progress(qmp, job).await {
                    Some(DumpStatus::Completed) => return Ok(()),
                    Some(DumpStatus::Failed) => return Err(failed(None)),
                    _ => {}
                }
            }
        }
    }
}

async fn update_dump_progress(qmp: &Qmp, job: &LocalJob) -> Option<DumpStatus> {
    let progress = qmp.execute(&QueryDump).await.ok()?;
    job.update(|s| {
        s.data_total = progress.total;
        s.data_processed = progress.completed;
        s.data_remaining = progress.total.saturating_sub(progress.completed);
    });
    Some(progress.status)
}

/// Follows the migration stream into the file to its end, feeding
/// `query-migrate`'s progress into the job; ABORT_JOB cancels it.
async fn wait_migration_dump(
    qmp: &Qmp,
    job: &LocalJob,
    events: &mut broadcast::Receiver<Event>,
) -> Result<()> {
    let mut tick = tokio::time::interval(PROGRESS_EVERY);
    let mut cancelled = false;
    loop {
        let check = tokio::select! {
            () = job.aborted(), if !cancelled => {
                cancelled = true;
                qmp.execute(&MigrateCancel).await.map_err(|e| e.into_core(OP))?;
                true
            }
            event = events.recv() => match event {
                Ok(e) => e.event == names::MIGRATION,
                Err(broadcast::error::RecvError::Lagged(_)) => true,
                Err(broadcast::error::RecvError::Closed) => {
                    return Err(Error::OperationFailed {
                        operation: OP,
                        reason: "qemu exited during the dump".into(),
                    })
                }
            },
            _ = tick.tick() => true,
        };
        if !check {
            continue;
        }
        let info = qmp
            .execute(&QueryMigrate)
            .await
            .map_err(|e| e.into_core(OP))?;
        job.update(|s| migration::fill_stats(s, &info));
        match migration::finished(info) {
            Ok(Some(_)) => return Ok(()),
            Ok(None) => {}
            Err(_) if cancelled || job.abort_requested() => {
                return Err(Error::OperationAborted { operation: "dump" })
            }
            Err(e) => return Err(e.into_core(OP)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(devices: &str) -> DomainDef {
        DomainDef::parse(&format!(
            "<domain type='qemu'><name>g</name><memory>65536</memory>\
             <os><type>hvm</type></os><devices>{devices}</devices></domain>"
        ))
        .expect("domain xml")
    }

    #[test]
    fn screens_count_heads_over_the_video_devices() {
        let err = screen_target(&def(""), 0).expect_err("no screens");
        assert_eq!(
            err.to_string(),
            "Requested operation is not valid: no screens to take screenshot from"
        );
        let none = def("<video><model type='none'/></video>");
        assert!(screen_target(&none, 0).is_err());
        // A display alone gets the default adapter.
        let vnc = def("<graphics type='vnc'/>");
        assert_eq!(screen_target(&vnc, 0).expect("primary"), None);
        let qxl = def("<video><model type='qxl' heads='2'/></video>");
        assert_eq!(
            screen_target(&qxl, 1).expect("second head"),
            Some(("video0".to_owned(), 1))
        );
        let err = screen_target(&qxl, 2).expect_err("beyond the heads");
        assert!(err.to_string().contains("no such screen ID"), "{err}");
        assert_eq!(err.code(), migrated_core::error::ErrorCode::InvalidArg);
    }
}
