//! The source end of a tunnelled migration stream (libvirt-wire.md §8.4).
//!
//! The destination's PrepareTunnel3 reply opens an RPC stream on the
//! daemon-to-daemon connection ([`TunnelSink`]). The source's data plane
//! sends packets through a [`TunnelWriter`]; a task hands each one on as a
//! STREAM CONTINUE packet without copying it (back-pressure comes from the
//! writer's bounded channel and the connection's bounded data queue), and
//! once the writer is closed the source decides how the stream ends:
//!
//! ```text
//! data plane ──TunnelWriter──▶ packet channel ──pump task──▶ STREAM CONTINUE …
//! complete(true)  → STREAM OK, wait for the destination's STREAM OK / ERROR
//! complete(false) → STREAM ERROR (empty): abort
//! destination STREAM ERROR at any time → the channel closes, the writer fails
//! ```

use bytes::Bytes;
use migrated_core::migration::TunnelWriter;
use migrated_rpc::ClientStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::error::{Error, Result};

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

    /// Starts the pump: returns the writer the data plane sends into and
    /// the pump that ends the stream.
    pub fn start(self) -> (TunnelWriter, TunnelPump) {
        let (writer, packets) = TunnelWriter::channel();
        let (verdict, verdict_rx) = oneshot::channel();
        let task = tokio::spawn(pump(self.stream, packets, verdict_rx));
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
    mut packets: mpsc::Receiver<Bytes>,
    verdict: oneshot::Receiver<bool>,
) -> Result<()> {
    while let Some(packet) = packets.recv().await {
        if let Err(e) = stream.send(packet).await {
            // Closing the channel makes the data plane's next send fail, so
            // Perform stops instead of waiting on a full channel.
            drop(packets);
            return Err(Error::from_rpc(PROCEDURE, e));
        }
    }
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
