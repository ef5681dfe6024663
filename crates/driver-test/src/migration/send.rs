//! Source side of the data plane: pre-copy iterations with dirty tracking,
//! then the final pass with the guest paused.
//!
//! Pass 1 sends every page holding data (the destination starts zeroed; the
//! allocation bitmap lists them, so untouched memory costs nothing). Each
//! later pass sends the pages dirtied meanwhile. When what is left fits in
//! `rate × max downtime` (QEMU's rule; the rate is the measured one, capped by
//! the bandwidth limit), or after [`MAX_ITERATIONS`] passes, or when the
//! completion timeout asks for it, the guest is paused and the last dirty
//! pages, the device state and the END marker with the memory checksum go out.
//! With AUTO_CONVERGE a pass that does not halve the dirty set raises the
//! workload throttle.
//!
//! The END checksum (`digest` module) is kept up to date on a blocking
//! thread: each pass starts a refresh of the pages written since the last
//! one, and with the guest paused only the last pages are hashed, alongside
//! their sending.

use std::sync::Arc;
use std::time::{Duration, Instant};

use migrated_core::domain::DomainRef;
use migrated_core::driver::Driver;
use migrated_core::flags::{self, MigrateFlags};
use migrated_core::job::JobHandle;
use migrated_core::migration::MigrateRequest;
use migrated_core::{Error, Result};
use tokio::io::AsyncWrite;

use super::digest::BackgroundDigests;
use super::stream::{failed, DeviceState, FrameWriter};
use super::throttle::TokenBucket;
use crate::memory::{GuestMemory, PageContent, PAGE_SIZE};
use crate::TestDriver;

/// Passes before the guest is paused whatever is left (a test guest dirtying
/// faster than the link would otherwise never finish).
pub const MAX_ITERATIONS: u32 = 30;

/// Auto-converge defaults (QEMU's `cpu-throttle-initial` / `-increment`).
const THROTTLE_INITIAL: i32 = 20;
const THROTTLE_INCREMENT: i32 = 10;

/// Pages between progress reports.
const REPORT_EVERY: u64 = 256;

/// Sends the guest; on error the caller resumes it.
pub(crate) struct Sender<'a, W: AsyncWrite + Unpin> {
    pub driver: &'a TestDriver,
    pub dom: &'a DomainRef,
    pub req: &'a MigrateRequest,
    pub job: &'a JobHandle,
    pub memory: Arc<GuestMemory>,
    /// The END checksum, kept up to date while pages are sent.
    pub digests: BackgroundDigests,
    pub writer: FrameWriter<W>,
    /// Fail (fault injection) once this many bytes are sent.
    pub fail_after: Option<u64>,
    pub bucket: TokenBucket,
    pub normal: u64,
    pub constant: u64,
    /// When the guest was paused during the transfer (not live, or a
    /// SUSPEND while it was being sent): the start of the downtime.
    pub paused_at: Option<Instant>,
}

impl<W: AsyncWrite + Unpin> Sender<'_, W> {
    fn check(&self) -> Result<()> {
        if self.job.is_aborted() {
            return Err(Error::OperationAborted {
                operation: "migration out",
            });
        }
        if let Some(limit) = self.fail_after {
            if self.writer.written() >= limit {
                return Err(failed(format!(
                    "injected fault: perform failed after {} bytes",
                    self.writer.written()
                )));
            }
        }
        Ok(())
    }

    /// Sends `pages`; on the first pass zero pages are skipped.
    async fn pass(&mut self, pages: &[u64], first: bool) -> Result<u64> {
        let mut buf = [0u8; PAGE_SIZE];
        let start = self.writer.written();
        let started = Instant::now();
        for (i, &page) in pages.iter().enumerate() {
            self.check()?;
            self.pause_if_requested().await?;
            let bytes = match self.memory.read_page(page, &mut buf)? {
                PageContent::Zero if first => continue,
                PageContent::Zero => {
                    self.constant += 1;
                    self.writer.zero(page).await?
                }
                PageContent::Data => {
                    self.normal += 1;
                    self.writer.page(page, &buf).await?
                }
            };
            let wait = self.bucket.take(bytes, self.job.max_bytes_per_sec());
            if !wait.is_zero() {
                self.writer.flush().await?;
                tokio::time::sleep(wait).await;
            }
            if i as u64 % REPORT_EVERY == 0 {
                let left = (pages.len() - i) as u64 * PAGE_SIZE as u64;
                self.report(left);
                // The pass's rate so far, as QEMU's `mbps` moves during a pass.
                let secs = started.elapsed().as_secs_f64();
                if secs > 0.1 {
                    let rate = ((self.writer.written() - start) as f64 / secs) as u64;
                    self.job.update_stats(|s| s.memory_bps = rate);
                }
            }
        }
        self.check()?;
        Ok(self.writer.written() - start)
    }

    /// A SUSPEND while the guest is being sent pauses it at once, as
    /// libvirt's QEMU driver does (state paused "migrating"); the pass goes
    /// on and the transfer completes after it.
    async fn pause_if_requested(&mut self) -> Result<()> {
        if self.paused_at.is_none() && self.job.pause_requested() {
            self.driver.outgoing_pause(self.dom).await?;
            self.paused_at = Some(Instant::now());
        }
        Ok(())
    }

    fn report(&self, remaining: u64) {
        let processed = self.writer.written();
        let ram = self.memory.page_count() * PAGE_SIZE as u64;
        let (cpages, cbytes) = self.writer.compression();
        let (normal, constant) = (self.normal, self.constant);
        let throttle = self.memory.throttle_percent();
        self.job.update_stats(|s| {
            s.data_processed = processed;
            s.data_remaining = remaining;
            // As QEMU's `ram.total`: the guest's memory, whatever is sent
            // again (clients show progress as 1 - remaining / total).
            s.data_total = ram;
            s.memory_normal = normal;
            s.memory_normal_bytes = normal * PAGE_SIZE as u64;
            s.memory_constant = constant;
            s.memory_page_size = PAGE_SIZE as u64;
            s.compression_pages = cpages;
            s.compression_bytes = cbytes;
            s.auto_converge_throttle = i32::from(throttle);
        });
    }

    /// Pre-copy passes until convergence; returns with the guest still running.
    async fn precopy(&mut self) -> Result<()> {
        // Tracking starts now: every write from here on is re-sent, so the
        // first pass needs only the pages holding data at this point (the
        // destination starts zeroed; a page allocated later is dirty).
        self.memory.take_dirty_pages();
        let mut pages = self.memory.allocated_page_indices();
        // Pages that never held data are zero on both sides and are not
        // sent; QEMU counts such pages of its first pass as constant
        // (`duplicate`), so they are counted here too.
        self.constant += self.memory.page_count().saturating_sub(pages.len() as u64);
        let mut first = true;
        let mut iteration: u32 = 1;
        let mut prev_dirty = u64::MAX;
        let auto_converge = self.req.has(MigrateFlags::AUTO_CONVERGE);
        let mut throttle: i32 = 0;
        loop {
            self.job.report_iteration(u64::from(iteration));
            // Hash what was written since the last pass while this one sends
            // it (the first hashes every page holding data).
            self.digests.start().await?;
            let started = Instant::now();
            let sent = self.pass(&pages, first).await?;
            self.writer.iteration(iteration).await?;
            self.writer.flush().await?;
            first = false;
            let elapsed = started.elapsed().as_secs_f64().max(1e-6);
            let dirty = self.memory.dirty_count();
            let remaining = dirty * PAGE_SIZE as u64;
            let measured = (sent as f64 / elapsed) as u64;
            let rate = match self.job.max_bytes_per_sec() {
                Some(limit) if measured == 0 => limit,
                Some(limit) => measured.min(limit),
                None => measured,
            };
            let budget = (rate as f64 * self.job.max_downtime().as_secs_f64()) as u64;
            let expected_downtime = remaining
                .saturating_mul(1000)
                .checked_div(rate)
                .unwrap_or(0);
            self.report(remaining);
            self.job.update_stats(|s| {
                s.memory_bps = measured;
                s.memory_dirty_rate = (dirty as f64 / elapsed) as u64;
                s.downtime_ms = expected_downtime;
                s.time_remaining_ms = expected_downtime;
            });
            tracing::debug!(iteration, sent, dirty, rate, budget, "pre-copy pass done");
            if remaining <= budget || iteration >= MAX_ITERATIONS || self.job.pause_requested() {
                return Ok(());
            }
            if auto_converge && iteration >= 2 && dirty.saturating_mul(2) > prev_dirty {
                throttle = if throttle == 0 {
                    self.req.auto_converge_initial.unwrap_or(THROTTLE_INITIAL)
                } else {
                    throttle
                        + self
                            .req
                            .auto_converge_increment
                            .unwrap_or(THROTTLE_INCREMENT)
                }
                .clamp(0, 99);
                self.memory.set_throttle_percent(throttle as u8);
                tracing::debug!(throttle, "auto-converge throttles the guest");
            }
            prev_dirty = dirty;
            pages = self.memory.take_dirty_pages();
            iteration += 1;
        }
    }

    /// Pauses the guest and sends the rest; returns the measured downtime
    /// (from the earlier pause when there was one: not live, or a SUSPEND).
    async fn complete(mut self) -> Result<Duration> {
        // The pre-copy hashing ends before the pause: only pages written
        // since its start are hashed with the guest paused.
        self.digests.settle().await?;
        self.driver.outgoing_pause(self.dom).await?;
        let paused_at = self.paused_at.unwrap_or_else(Instant::now);
        let pages = self.memory.take_dirty_pages();
        // Nothing writes any more: the last pages are hashed on another core
        // while they are sent.
        self.digests.start().await?;
        self.pass(&pages, false).await?;
        let info = self.driver.get_info(self.dom).await?;
        let xml = self
            .driver
            .get_xml_desc(self.dom, flags::xml::SECURE | flags::xml::MIGRATABLE)
            .await?;
        self.writer
            .device(&DeviceState {
                vcpus: u32::from(info.nr_virt_cpu),
                cpu_time_ns: info.cpu_time_ns,
                xml,
            })
            .await?;
        let checksum = self.digests.finish().await?;
        self.check()?;
        self.report(0);
        let total = self.writer.end(checksum).await?;
        let downtime = paused_at.elapsed();
        self.job.update_stats(|s| {
            s.data_processed = total;
            s.data_total = self.memory.page_count() * PAGE_SIZE as u64;
            s.data_remaining = 0;
            s.downtime_ms = downtime.as_millis() as u64;
            s.time_remaining_ms = 0;
        });
        Ok(downtime)
    }

    /// The whole transfer. The guest is paused here on success; the caller
    /// resumes it on error.
    pub async fn run(mut self) -> Result<Duration> {
        self.job.update_stats(|s| {
            s.setup_time_ms = self.job.elapsed().as_millis() as u64;
            s.memory_page_size = PAGE_SIZE as u64;
        });
        if !self.req.has(MigrateFlags::LIVE) {
            // Not live: the guest is paused for the whole transfer, so one pass suffices.
            self.driver.outgoing_pause(self.dom).await?;
            self.paused_at = Some(Instant::now());
        }
        self.precopy().await?;
        self.complete().await
    }
}
