//! Destination side of the data plane: fills the incoming guest's memory
//! from the stream and verifies the END checksum against the memory it now
//! holds. The digest is refreshed in the background while pages arrive
//! (every few hundred frames and at every ITERATION frame), so at END only
//! the pages written since the last refresh are hashed.

use std::sync::Arc;

use migrated_core::job::JobHandle;
use migrated_core::{Error, Result};
use tokio::io::AsyncRead;

use super::digest::BackgroundDigests;
use super::stream::{failed, DeviceState, Frame, FrameReader};
use crate::memory::{GuestMemory, PAGE_SIZE};

/// Frames between progress reports.
const REPORT_EVERY: u64 = 256;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Receives a complete stream into `memory`; returns the device state once
/// the checksum matched.
pub(crate) async fn receive<R: AsyncRead + Unpin>(
    input: R,
    memory: Arc<GuestMemory>,
    job: JobHandle,
) -> Result<DeviceState> {
    let mut reader = FrameReader::start(input, memory.page_count()).await?;
    let ram = memory.page_count() * PAGE_SIZE as u64;
    job.update_stats(|s| {
        s.data_total = ram;
        s.memory_page_size = PAGE_SIZE as u64;
    });
    let zero = [0u8; PAGE_SIZE];
    let mut buf = [0u8; PAGE_SIZE];
    let mut device = None;
    let mut frames: u64 = 0;
    let mut abort = job.abort_signal();
    let mut digests = BackgroundDigests::new(Arc::clone(&memory));
    loop {
        let frame = tokio::select! {
            f = reader.next(&mut buf) => f?,
            () = abort.aborted() => {
                return Err(Error::OperationAborted {
                    operation: "migration in",
                })
            }
        };
        frames += 1;
        match frame {
            Frame::Page { index, .. } => memory.write_page(index, &buf)?,
            Frame::Zero { index } => memory.write_page(index, &zero)?,
            Frame::Iteration { n } => {
                job.update_stats(|s| s.memory_iteration = u64::from(n));
                digests.start_if_idle().await?;
            }
            Frame::Device(state) => device = Some(state),
            Frame::End { checksum } => {
                let state =
                    device.ok_or_else(|| failed("migration stream ended without device state"))?;
                reader.expect_eof().await?;
                let local = digests.finish().await?;
                if local != checksum {
                    return Err(failed(format!(
                        "memory checksum mismatch: source {} destination {}",
                        hex(&checksum),
                        hex(&local)
                    )));
                }
                let read = reader.read_bytes();
                job.update_stats(|s| {
                    s.data_processed = read;
                    s.data_remaining = 0;
                });
                return Ok(state);
            }
        }
        if frames % REPORT_EVERY == 0 {
            let read = reader.read_bytes();
            job.update_stats(|s| s.data_processed = read);
            // Hash what arrived while more arrives, so that END finds little
            // left to hash.
            digests.start_if_idle().await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migration::digest::memory_digest;
    use crate::migration::stream::FrameWriter;
    use migrated_core::domain::DomainRef;
    use migrated_core::job::{DestinationPhase, JobRegistry, Phase};
    use uuid::Uuid;

    fn job() -> JobHandle {
        JobRegistry::new()
            .start(
                Uuid::new_v4(),
                &DomainRef {
                    name: "r".into(),
                    uuid: Uuid::new_v4(),
                    id: 1,
                },
                Phase::Destination(DestinationPhase::Prepare3 { offline: false }),
            )
            .expect("job")
    }

    fn state() -> DeviceState {
        DeviceState {
            vcpus: 1,
            cpu_time_ns: 0,
            xml: "<domain/>".into(),
        }
    }

    /// Streams `source` with the END checksum `checksum` (its real one if `None`).
    async fn transfer(
        source: &GuestMemory,
        checksum: Option<[u8; 32]>,
    ) -> Result<Arc<GuestMemory>> {
        let (a, b) = tokio::io::duplex(1 << 16);
        let dest = Arc::new(GuestMemory::new(source.size_bytes()).expect("memory"));
        let receiver = tokio::spawn(receive(b, Arc::clone(&dest), job()));
        let mut w = FrameWriter::start(a, source.page_count(), false)
            .await
            .expect("header");
        let mut buf = [0u8; PAGE_SIZE];
        for page in 0..source.page_count() {
            source.read_page(page, &mut buf).expect("read");
            w.page(page, &buf).await.expect("page");
        }
        w.device(&state()).await.expect("device");
        w.end(checksum.unwrap_or_else(|| memory_digest(source)))
            .await
            .expect("end");
        receiver.await.expect("receiver task").map(|s| {
            assert_eq!(s, state());
            dest
        })
    }

    #[tokio::test]
    async fn a_faithful_stream_reproduces_the_memory() {
        let source = GuestMemory::new(8 * PAGE_SIZE as u64).expect("memory");
        source.write_page(2, &[5u8; PAGE_SIZE]).expect("write");
        let dest = transfer(&source, None).await.expect("accepted");
        assert_eq!(dest.checksum(), source.checksum());
    }

    #[tokio::test]
    async fn a_checksum_mismatch_fails_the_transfer() {
        let source = GuestMemory::new(8 * PAGE_SIZE as u64).expect("memory");
        source.write_page(2, &[5u8; PAGE_SIZE]).expect("write");
        let err = transfer(&source, Some([0; 32]))
            .await
            .expect_err("wrong checksum");
        assert_eq!(err.code(), migrated_core::error::ErrorCode::OperationFailed);
        assert!(err.to_string().contains("checksum mismatch"), "{err}");
    }

    #[tokio::test]
    async fn end_without_device_state_is_refused() {
        let (a, b) = tokio::io::duplex(1 << 16);
        let dest = Arc::new(GuestMemory::new(PAGE_SIZE as u64).expect("memory"));
        let receiver = tokio::spawn(receive(b, Arc::clone(&dest), job()));
        let w = FrameWriter::start(a, 1, false).await.expect("header");
        w.end(memory_digest(&dest)).await.expect("end");
        let err = receiver.await.expect("task").expect_err("no device state");
        assert!(err.to_string().contains("device state"), "{err}");
    }

    /// A pre-copy as the sender does it: pass 1 sends every page holding
    /// data, then `passes` rounds each change `per_pass` pages on the source
    /// and send the dirty ones, except that `skip` (a page index) is never
    /// re-sent once dirty. The END checksum is the source's incremental one.
    /// Returns the destination memory when accepted.
    async fn precopy(
        source: &GuestMemory,
        passes: u32,
        per_pass: u64,
        skip: Option<u64>,
        before_end: impl FnOnce(&GuestMemory),
    ) -> Result<Arc<GuestMemory>> {
        let (a, b) = tokio::io::duplex(1 << 16);
        let dest = Arc::new(GuestMemory::new(source.size_bytes()).expect("memory"));
        let receiver = tokio::spawn(receive(b, Arc::clone(&dest), job()));
        let mut w = FrameWriter::start(a, source.page_count(), false)
            .await
            .expect("header");
        let mut digests = super::super::digest::PageDigests::new(source);
        source.take_dirty_pages();
        let mut pages = source.allocated_page_indices();
        let mut buf = [0u8; PAGE_SIZE];
        for pass in 1..=passes + 1 {
            digests.refresh(source);
            for &page in &pages {
                if Some(page) == skip && pass > 1 {
                    continue;
                }
                source.read_page(page, &mut buf).expect("read");
                w.page(page, &buf).await.expect("page");
            }
            w.iteration(pass).await.expect("iteration");
            if pass <= passes {
                for i in 0..per_pass {
                    let page = (u64::from(pass) * 7 + i * 3) % source.page_count();
                    source.modify_page(page as usize, |p| p[pass as usize] ^= 0x5a);
                }
            }
            pages = source.take_dirty_pages();
        }
        w.device(&state()).await.expect("device");
        digests.refresh(source);
        assert_eq!(digests.digest(), memory_digest(source), "source digest");
        w.flush().await.expect("flush");
        // Let the receiver drain what was sent before `before_end` looks.
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        before_end(&dest);
        w.end(digests.digest()).await.expect("end");
        receiver.await.expect("receiver task").map(|_| dest)
    }

    #[tokio::test]
    async fn pages_resent_over_several_passes_are_verified_incrementally() {
        let source = GuestMemory::new(64 * PAGE_SIZE as u64).expect("memory");
        for page in 0..20 {
            source
                .write_page(page, &[page as u8 + 1; PAGE_SIZE])
                .expect("write");
        }
        let dest = precopy(&source, 5, 9, None, |_| {})
            .await
            .expect("accepted");
        assert_eq!(dest.checksum(), source.checksum());
    }

    #[tokio::test]
    async fn a_dirty_page_the_source_did_not_resend_fails_the_transfer() {
        let source = GuestMemory::new(64 * PAGE_SIZE as u64).expect("memory");
        for page in 0..20 {
            source
                .write_page(page, &[page as u8 + 1; PAGE_SIZE])
                .expect("write");
        }
        // Pass 1 dirties pages 7, 10, …, 31; page 10's new content never goes out.
        let err = precopy(&source, 3, 9, Some(10), |_| {})
            .await
            .expect_err("a dropped dirty page must be detected");
        assert!(err.to_string().contains("checksum mismatch"), "{err}");
    }

    #[tokio::test]
    async fn a_page_corrupted_on_the_destination_fails_the_transfer() {
        let source = GuestMemory::new(64 * PAGE_SIZE as u64).expect("memory");
        for page in 0..20 {
            source
                .write_page(page, &[page as u8 + 1; PAGE_SIZE])
                .expect("write");
        }
        // Page 63 is never sent (zero on the source), so nothing the stream
        // writes later can repair the corruption, whatever the timing.
        let err = precopy(&source, 2, 5, None, |dest| {
            dest.modify_page(63, |p| p[100] = 1);
        })
        .await
        .expect_err("a corrupted page must be detected");
        assert!(err.to_string().contains("checksum mismatch"), "{err}");
    }
}
