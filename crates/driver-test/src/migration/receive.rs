//! Destination side of the data plane: fills the incoming guest's memory
//! from the stream and verifies the END checksum against what arrived.

use std::sync::Arc;

use migrated_core::job::JobHandle;
use migrated_core::{Error, Result};
use tokio::io::AsyncRead;

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
    let zero = [0u8; PAGE_SIZE];
    let mut buf = [0u8; PAGE_SIZE];
    let mut device = None;
    let mut frames: u64 = 0;
    let mut abort = job.abort_signal();
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
            Frame::Iteration { n } => job.update_stats(|s| s.memory_iteration = u64::from(n)),
            Frame::Device(state) => device = Some(state),
            Frame::End { checksum } => {
                let state =
                    device.ok_or_else(|| failed("migration stream ended without device state"))?;
                let mem = Arc::clone(&memory);
                let local = tokio::task::spawn_blocking(move || mem.checksum())
                    .await
                    .map_err(|e| Error::internal(format!("checksum task failed: {e}")))?;
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
                    s.data_total = read;
                    s.data_remaining = 0;
                });
                return Ok(state);
            }
        }
        if frames % REPORT_EVERY == 0 {
            let read = reader.read_bytes();
            job.update_stats(|s| s.data_processed = read);
        }
    }
}
