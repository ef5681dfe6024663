//! The destination end of a tunnelled migration stream (libvirt-wire.md §8.4):
//! STREAM packets of the PrepareTunnel3 call become the packets the driver's
//! data plane reads ([`TunnelReader`]), passed on without a copy.
//!
//! ```text
//! STREAM CONTINUE … ──▶ pump task ──channel──▶ TunnelReader ──▶ data plane
//! STREAM OK            → end of data, answered STREAM OK
//! STREAM ERROR         → the reader fails ("source aborted"), answered STREAM OK
//! connection gone      → the reader fails
//! data plane stopped   → STREAM ERROR with a remote_error to the source
//! ```
//!
//! The pump waits while the channel is full, so a slow data plane stops the
//! connection's reader for this stream (TCP back-pressure) while other calls
//! on the connection keep being served by their own tasks.

use std::io;

use migrated_core::migration::{TunnelChunk, TunnelReader};
use migrated_rpc::stream::StreamEvent;
use migrated_rpc::ServerStream;
use tokio::sync::mpsc;

use crate::wire::to_wire_error;

/// Turns `stream` into the reader Prepare hands to the data plane, and
/// starts the task that feeds it.
pub fn reader(stream: ServerStream) -> TunnelReader {
    let (tx, reader) = TunnelReader::channel();
    tokio::spawn(pump(stream, tx));
    reader
}

async fn pump(mut stream: ServerStream, tx: mpsc::Sender<TunnelChunk>) {
    loop {
        match stream.recv().await {
            Some(StreamEvent::Data(data)) if data.is_empty() => {}
            Some(StreamEvent::Data(data)) => {
                if tx.send(Ok(data)).await.is_err() {
                    // The data plane stopped reading: it failed or was killed.
                    let err = migrated_core::Error::OperationFailed {
                        operation: "migration",
                        reason: "the destination stopped receiving the tunnelled data".into(),
                    };
                    if let Err(e) = stream.finish_error(to_wire_error(&err)).await {
                        tracing::debug!(error = %e, "could not send the stream error");
                    }
                    return;
                }
            }
            Some(StreamEvent::Finish) => {
                drop(tx);
                if let Err(e) = stream.finish_ok().await {
                    tracing::debug!(error = %e, "could not confirm the end of the stream");
                }
                return;
            }
            Some(StreamEvent::Abort(err)) => {
                let reason = err
                    .and_then(|e| e.message)
                    .unwrap_or_else(|| "the source aborted the tunnelled migration".into());
                let _ = tx
                    .send(Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        reason,
                    )))
                    .await;
                if let Err(e) = stream.finish_ok().await {
                    tracing::debug!(error = %e, "could not acknowledge the abort");
                }
                return;
            }
            None => {
                let _ = tx
                    .send(Err(io::Error::new(
                        io::ErrorKind::ConnectionReset,
                        "the connection carrying the tunnelled migration closed",
                    )))
                    .await;
                return;
            }
        }
    }
}
