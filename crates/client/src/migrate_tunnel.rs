//! The source end of a tunnelled migration stream (libvirt-wire.md §8.4).
//!
//! The destination's PrepareTunnel3 reply opens an RPC stream on the
//! daemon-to-daemon connection ([`TunnelSink`]). The source's data plane
//! writes plain bytes into a [`TunnelPump`]'s writer; a task copies them into
//! STREAM CONTINUE packets (back-pressure comes from the connection's bounded
//! data queue), and once the writer is closed the source decides how the
//! stream ends:
//!
//! ```text
//! data plane ──write──▶ duplex pipe ──pump task──▶ STREAM CONTINUE …
//! complete(true)  → STREAM OK, wait for the destination's STREAM OK / ERROR
//! complete(false) → STREAM ERROR (empty): abort
//! destination STREAM ERROR at any time → the pipe closes, the writer fails
//! ```

use std::future::Future;
use std::task::Poll;

use bytes::BytesMut;
use migrated_rpc::stream::STREAM_CHUNK;
use migrated_rpc::ClientStream;
use tokio::io::{AsyncReadExt, DuplexStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::error::{Error, Result};

/// Largest STREAM packet payload the pump sends: the most libvirtd itself
/// puts in one (receivers accept up to `VIR_NET_MESSAGE_PAYLOAD_MAX`). A
/// stock source sends 64 KiB; four times fewer packets, writes and wake-ups
/// is most of what separates tunnelled from direct throughput.
const PACKET: usize = STREAM_CHUNK;
/// Pipe capacity between the data plane and the pump.
const PIPE: usize = 1024 * 1024;
/// Procedure named in errors of the stream.
const PROCEDURE: &str = "DOMAIN_MIGRATE_PREPARE_TUNNEL3_PARAMS";

/// The stream the destination opened for a tunnelled migration.
#[derive(Debug)]
pub struct TunnelSink {
    stream: ClientStream,
}

impl TunnelSink {
    /// Wraps the stream returned with PrepareTunnel3's reply.
    pub fn new(stream: ClientStream) -> Self {
        Self { stream }
    }

    /// Starts copying: returns the writer the data plane writes into and
    /// the pump that ends the stream.
    pub fn start(self) -> (DuplexStream, TunnelPump) {
        let (writer, reader) = tokio::io::duplex(PIPE);
        let (verdict, verdict_rx) = oneshot::channel();
        let task = tokio::spawn(pump(self.stream, reader, verdict_rx));
        (writer, TunnelPump { verdict, task })
    }

    /// Aborts the stream without sending data (Perform failed before it began).
    ///
    /// # Errors
    /// [`Error::Rpc`] when the connection is gone.
    pub async fn abort(self) -> Result<()> {
        self.stream
            .abort()
            .await
            .map_err(|e| Error::from_rpc(PROCEDURE, e))
    }
}

/// The running copy task of a [`TunnelSink`].
#[derive(Debug)]
pub struct TunnelPump {
    verdict: oneshot::Sender<bool>,
    task: JoinHandle<Result<()>>,
}

impl TunnelPump {
    /// Ends the stream once the writer is closed: `success` → STREAM OK and
    /// the destination's confirmation; otherwise an abort.
    ///
    /// # Errors
    /// The destination's stream error ([`Error::Remote`]), or
    /// [`Error::Rpc`] when the connection failed.
    pub async fn complete(self, success: bool) -> Result<()> {
        // The pump may already have ended on a destination error; the
        // verdict then has no receiver, which is fine.
        let _ = self.verdict.send(success);
        match self.task.await {
            Ok(result) => result,
            Err(join) => Err(migrated_core::Error::internal(format!(
                "tunnel pump task failed: {join}"
            ))
            .into()),
        }
    }
}

/// Reads into `buf` what the pipe holds, waiting only for the first bytes,
/// up to [`PACKET`]; returns the bytes read (0 at the end of the data).
async fn fill(reader: &mut DuplexStream, buf: &mut BytesMut) -> std::io::Result<usize> {
    buf.reserve(PACKET);
    let mut total = reader.read_buf(buf).await?;
    while total > 0 && buf.len() < PACKET {
        // More only if it is already there: a packet never waits for data.
        let mut more = std::pin::pin!(reader.read_buf(buf));
        match std::future::poll_fn(|cx| Poll::Ready(more.as_mut().poll(cx))).await {
            Poll::Ready(Ok(0)) | Poll::Pending => break,
            Poll::Ready(Ok(n)) => total += n,
            Poll::Ready(Err(e)) => return Err(e),
        }
    }
    Ok(total)
}

async fn pump(
    mut stream: ClientStream,
    mut reader: DuplexStream,
    verdict: oneshot::Receiver<bool>,
) -> Result<()> {
    let mut buf = BytesMut::new();
    loop {
        let n = match fill(&mut reader, &mut buf).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "tunnel pipe failed, aborting the stream");
                let _ = stream.abort().await;
                return Err(migrated_core::Error::system("read tunnel pipe", e).into());
            }
        };
        if n == 0 {
            break;
        }
        // The packet owns the bytes read: no copy on the way to the socket.
        if let Err(e) = stream.send(buf.split().freeze()).await {
            // Closing the pipe makes the data plane's next write fail, so
            // Perform stops instead of blocking on a full pipe.
            drop(reader);
            return Err(Error::from_rpc(PROCEDURE, e));
        }
    }
    drop(reader);
    if verdict.await.unwrap_or(false) {
        stream
            .finish()
            .await
            .map_err(|e| Error::from_rpc(PROCEDURE, e))
    } else {
        stream
            .abort()
            .await
            .map_err(|e| Error::from_rpc(PROCEDURE, e))?;
        Err(migrated_core::Error::OperationAborted {
            operation: "tunnelled migration",
        }
        .into())
    }
}
