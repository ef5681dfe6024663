//! The destination end of a tunnelled migration stream (libvirt-wire.md §8.4):
//! STREAM packets of the PrepareTunnel3 call become the byte source the
//! driver's data plane reads ([`TunnelReader`]).
//!
//! ```text
//! STREAM CONTINUE … ──▶ pump task ──channel──▶ ChannelReader (AsyncRead) ──▶ data plane
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
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use migrated_core::migration::TunnelReader;
use migrated_rpc::stream::StreamEvent;
use migrated_rpc::ServerStream;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::mpsc;

use crate::wire::to_wire_error;

/// Chunks buffered between the stream and the data plane.
const QUEUE: usize = 16;

/// Turns `stream` into the reader Prepare hands to the data plane, and
/// starts the task that feeds it.
pub fn reader(stream: ServerStream) -> TunnelReader {
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(pump(stream, tx));
    Box::new(ChannelReader {
        rx,
        current: Bytes::new(),
        done: false,
    })
}

async fn pump(mut stream: ServerStream, tx: mpsc::Sender<io::Result<Bytes>>) {
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

/// An [`AsyncRead`] over chunks from a channel; an `Err` chunk fails the read,
/// a closed channel is end of data.
struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
    done: bool,
}

impl AsyncRead for ChannelReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        while self.current.is_empty() {
            if self.done {
                return Poll::Ready(Ok(()));
            }
            match self.rx.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => self.current = chunk,
                Poll::Ready(Some(Err(e))) => {
                    self.done = true;
                    return Poll::Ready(Err(e));
                }
                Poll::Ready(None) => self.done = true,
            }
        }
        let n = self.current.len().min(buf.remaining());
        let chunk = self.current.split_to(n);
        buf.put_slice(&chunk);
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    fn channel_reader() -> (mpsc::Sender<io::Result<Bytes>>, ChannelReader) {
        let (tx, rx) = mpsc::channel(4);
        (
            tx,
            ChannelReader {
                rx,
                current: Bytes::new(),
                done: false,
            },
        )
    }

    #[tokio::test]
    async fn chunks_read_back_in_order_until_the_channel_closes() {
        let (tx, mut reader) = channel_reader();
        tokio::spawn(async move {
            for part in [&b"hello "[..], b"tunnel", b""] {
                tx.send(Ok(Bytes::copy_from_slice(part))).await.ok();
            }
        });
        let mut out = Vec::new();
        reader.read_to_end(&mut out).await.expect("clean end");
        assert_eq!(out, b"hello tunnel");
    }

    #[tokio::test]
    async fn an_error_chunk_fails_the_read_after_the_data_before_it() {
        let (tx, mut reader) = channel_reader();
        tx.send(Ok(Bytes::from_static(b"abc"))).await.ok();
        tx.send(Err(io::Error::new(io::ErrorKind::ConnectionAborted, "x")))
            .await
            .ok();
        let mut out = Vec::new();
        let err = reader.read_to_end(&mut out).await.expect_err("abort");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted);
        assert_eq!(out, b"abc");
    }
}
