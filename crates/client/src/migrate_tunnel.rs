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

use bytes::Bytes;
use migrated_rpc::ClientStream;
use tokio::io::{AsyncReadExt, DuplexStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::error::{Error, Result};

/// Bytes read from the pipe per STREAM packet (what a stock source sends).
const PACKET: usize = 64 * 1024;
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

async fn pump(
    mut stream: ClientStream,
    mut reader: DuplexStream,
    verdict: oneshot::Receiver<bool>,
) -> Result<()> {
    let mut buf = vec![0u8; PACKET];
    loop {
        let n = match reader.read(&mut buf).await {
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
        if let Err(e) = stream.send(Bytes::copy_from_slice(&buf[..n])).await {
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
