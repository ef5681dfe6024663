//! Client side of a libvirt stream (e.g. tunnelled migration data).

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::header::{Header, Message, MessageStatus, MessageType};
use crate::outbound::Outbound;
use crate::stream::{StreamEvent, StreamRegistry, STREAM_CHUNK};

/// A stream opened by [`RpcClient::call_with_stream`](super::RpcClient::call_with_stream).
///
/// Sending goes through the connection's bounded data queue, so a fast
/// producer waits for the socket instead of buffering without limit, and
/// replies to other calls on the same connection are written in between.
#[derive(Debug)]
pub struct ClientStream {
    header: Header,
    outbound: Outbound,
    registry: Arc<StreamRegistry>,
    rx: mpsc::Receiver<StreamEvent>,
    done: bool,
    /// The server sent STREAM OK: nothing more will come.
    peer_finished: bool,
    /// The server sent an empty CONTINUE (end of data); its OK follows ours.
    peer_eof: bool,
}

impl ClientStream {
    pub(crate) fn new(
        header: Header,
        outbound: Outbound,
        registry: Arc<StreamRegistry>,
        rx: mpsc::Receiver<StreamEvent>,
    ) -> Self {
        Self {
            header,
            outbound,
            registry,
            rx,
            done: false,
            peer_finished: false,
            peer_eof: false,
        }
    }

    fn packet(&self, status: MessageStatus, payload: Bytes) -> Message {
        Message::new(
            Header {
                type_: MessageType::Stream,
                status,
                ..self.header
            },
            payload,
        )
    }

    /// Fails if the server already aborted the stream.
    fn check_peer(&mut self) -> Result<()> {
        while let Ok(ev) = self.rx.try_recv() {
            match ev {
                StreamEvent::Abort(err) => {
                    self.done = true;
                    return Err(remote_abort(err));
                }
                StreamEvent::Finish => self.peer_finished = true,
                StreamEvent::Data(_) => {
                    tracing::debug!(
                        serial = self.header.serial,
                        "dropping data on an upload stream"
                    )
                }
            }
        }
        Ok(())
    }

    /// Sends data in STREAM CONTINUE packets of at most 256 KiB.
    ///
    /// # Errors
    /// [`Error::Remote`] when the server aborted the stream,
    /// [`Error::Closed`], [`Error::StreamFinished`].
    ///
    /// # Cancel safety
    /// Not cancel-safe: a cancelled send may have sent part of `data`.
    pub async fn send(&mut self, mut data: Bytes) -> Result<()> {
        if self.done {
            return Err(Error::StreamFinished);
        }
        self.check_peer()?;
        while !data.is_empty() {
            let chunk = data.split_to(data.len().min(STREAM_CHUNK));
            self.outbound
                .send_data(self.packet(MessageStatus::Continue, chunk))
                .await?;
        }
        Ok(())
    }

    /// Next data from the server; `Ok(None)` at end of data (libvirtd's
    /// empty CONTINUE packet, or the server's STREAM OK). After `None`, call
    /// [`finish`](Self::finish) to complete the handshake.
    ///
    /// # Errors
    /// [`Error::Remote`] when the server aborted, [`Error::Closed`].
    pub async fn recv(&mut self) -> Result<Option<Bytes>> {
        if self.peer_finished || self.peer_eof {
            return Ok(None);
        }
        match self.rx.recv().await {
            Some(StreamEvent::Data(b)) if b.is_empty() => {
                self.peer_eof = true;
                Ok(None)
            }
            Some(StreamEvent::Data(b)) => Ok(Some(b)),
            Some(StreamEvent::Finish) => {
                self.peer_finished = true;
                Ok(None)
            }
            Some(StreamEvent::Abort(err)) => {
                self.done = true;
                Err(remote_abort(err))
            }
            None => Err(Error::Closed),
        }
    }

    /// Ends the stream: sends STREAM OK (empty) and waits for the server's
    /// STREAM OK (success) or STREAM ERROR (its error). If the server had
    /// already finished, only our OK is sent.
    ///
    /// # Errors
    /// [`Error::Remote`], [`Error::Closed`], [`Error::StreamFinished`].
    pub async fn finish(mut self) -> Result<()> {
        self.end(MessageStatus::Ok).await
    }

    /// Aborts: sends STREAM ERROR (empty) and waits for the server's answer.
    ///
    /// # Errors
    /// [`Error::Closed`], [`Error::StreamFinished`].
    pub async fn abort(mut self) -> Result<()> {
        match self.end(MessageStatus::Error).await {
            Ok(()) | Err(Error::Remote(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn end(&mut self, status: MessageStatus) -> Result<()> {
        if self.done {
            return Err(Error::StreamFinished);
        }
        self.check_peer()?;
        self.done = true;
        self.outbound
            .send_data(self.packet(status, Bytes::new()))
            .await?;
        if self.peer_finished {
            return Ok(());
        }
        loop {
            match self.rx.recv().await {
                Some(StreamEvent::Finish) => return Ok(()),
                Some(StreamEvent::Abort(err)) => return Err(remote_abort(err)),
                Some(StreamEvent::Data(_)) => {}
                None => return Err(Error::Closed),
            }
        }
    }

    /// Serial of the call that opened the stream.
    pub fn serial(&self) -> u32 {
        self.header.serial
    }
}

fn remote_abort(err: Option<crate::error::WireError>) -> Error {
    match err {
        Some(e) => Error::Remote(e),
        None => Error::Protocol {
            reason: "peer aborted the stream without an error".into(),
        },
    }
}

impl Drop for ClientStream {
    fn drop(&mut self) {
        self.registry.remove(&StreamRegistry::key(&self.header));
    }
}
