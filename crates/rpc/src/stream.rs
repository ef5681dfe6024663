//! Server side of libvirt streams (libvirt-wire §8.4, `remote_daemon_stream.c`).
//!
//! A handler opens a stream with
//! [`CallContext::open_stream`](crate::server::CallContext::open_stream)
//! *before* its reply is sent, so STREAM packets the client sends right
//! after the reply find it. Incoming packets reach the [`ServerStream`]
//! through a bounded channel: a handler that reads slowly makes the
//! connection's reader wait, which stops reading the socket (TCP
//! back-pressure). STREAM packets for no registered stream are dropped.
//!
//! Upload (client → server, e.g. tunnelled migration): the client sends
//! CONTINUE packets, then OK; the handler sees `Data…, Finish` and answers
//! [`ServerStream::finish_ok`] or [`ServerStream::finish_error`].
//! Download (server → client): the handler sends data, then
//! [`ServerStream::send_eof`] (an empty CONTINUE, as libvirtd does), waits
//! for the client's `Finish` and answers `finish_ok`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::error::{Error, Result, WireError, VIR_ERR_OPERATION_ABORTED, VIR_FROM_STREAMS};
use crate::header::{Header, Message, MessageStatus, MessageType};
use crate::outbound::Outbound;

/// Incoming packets buffered per stream before the reader waits.
const STREAM_QUEUE: usize = 16;
/// Largest payload put in one outgoing STREAM packet; small enough that
/// replies interleave with a busy stream, as libvirtd's own chunking does.
pub const STREAM_CHUNK: usize = 256 * 1024;

/// One packet received on a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// STREAM / CONTINUE: raw data.
    Data(Bytes),
    /// STREAM / OK: the peer finished sending and waits for our confirmation.
    Finish,
    /// STREAM / ERROR: the peer aborted (with its error when it sent one).
    Abort(Option<WireError>),
}

impl StreamEvent {
    fn from_message(msg: &Message) -> Self {
        match msg.header.status {
            MessageStatus::Continue => Self::Data(msg.payload.clone()),
            MessageStatus::Ok => Self::Finish,
            MessageStatus::Error => Self::Abort(if msg.payload.is_empty() {
                None
            } else {
                WireError::decode(&msg.payload).ok()
            }),
        }
    }

    fn is_terminal(&self) -> bool {
        !matches!(self, Self::Data(_))
    }
}

/// `(prog, proc, serial)` of the call that opened a stream.
pub(crate) type StreamKey = (u32, i32, u32);

/// Open streams of one connection.
#[derive(Debug, Default)]
pub(crate) struct StreamRegistry {
    map: Mutex<HashMap<StreamKey, mpsc::Sender<StreamEvent>>>,
}

/// What [`StreamRegistry::route`] did with a packet.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Routed {
    Delivered,
    NoStream,
}

impl StreamRegistry {
    pub(crate) fn key(header: &Header) -> StreamKey {
        (header.prog, header.proc_, header.serial)
    }

    pub(crate) fn register(&self, key: StreamKey) -> mpsc::Receiver<StreamEvent> {
        let (tx, rx) = mpsc::channel(STREAM_QUEUE);
        self.lock().insert(key, tx);
        rx
    }

    pub(crate) fn remove(&self, key: &StreamKey) {
        self.lock().remove(key);
    }

    pub(crate) fn clear(&self) {
        self.lock().clear();
    }

    /// Hands a STREAM packet to its stream, waiting while the stream's queue
    /// is full. A terminal packet unregisters the stream so that late
    /// packets are dropped instead of blocking the reader.
    pub(crate) async fn route(&self, msg: &Message) -> Routed {
        let key = Self::key(&msg.header);
        let event = StreamEvent::from_message(msg);
        let terminal = event.is_terminal();
        let tx = {
            let mut map = self.lock();
            if terminal {
                map.remove(&key)
            } else {
                map.get(&key).cloned()
            }
        };
        let Some(tx) = tx else {
            return Routed::NoStream;
        };
        if tx.send(event).await.is_err() {
            // Receiver dropped between lookup and send: behave as if unknown.
            self.remove(&key);
            return Routed::NoStream;
        }
        Routed::Delivered
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<StreamKey, mpsc::Sender<StreamEvent>>> {
        // The map holds no invariant a panicking holder could break.
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A stream opened by a call handler; see the module docs.
///
/// Dropping it before `finish_ok`/`finish_error` (once the call's OK reply
/// went out) sends the client a STREAM ERROR (`VIR_ERR_OPERATION_ABORTED`),
/// so its `finish`/`recv` does not wait forever.
#[derive(Debug)]
pub struct ServerStream {
    header: Header,
    outbound: Outbound,
    registry: Arc<StreamRegistry>,
    rx: mpsc::Receiver<StreamEvent>,
    done: bool,
    replied: Arc<AtomicBool>,
}

impl ServerStream {
    pub(crate) fn new(
        header: Header,
        outbound: Outbound,
        registry: Arc<StreamRegistry>,
        replied: Arc<AtomicBool>,
    ) -> Self {
        let rx = registry.register(StreamRegistry::key(&header));
        Self {
            header,
            outbound,
            registry,
            rx,
            done: false,
            replied,
        }
    }

    /// Next packet from the client; `None` when the connection closed.
    ///
    /// # Cancel safety
    /// Cancel-safe (a channel receive).
    pub async fn recv(&mut self) -> Option<StreamEvent> {
        self.rx.recv().await
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

    /// Sends data to the client in STREAM CONTINUE packets of at most
    /// [`STREAM_CHUNK`] bytes, waiting while the writer's data queue is full.
    ///
    /// # Errors
    /// [`Error::Closed`] when the connection is gone, [`Error::StreamFinished`]
    /// after `finish_*`.
    pub async fn send_data(&mut self, mut data: Bytes) -> Result<()> {
        if self.done {
            return Err(Error::StreamFinished);
        }
        while !data.is_empty() {
            let chunk = data.split_to(data.len().min(STREAM_CHUNK));
            self.outbound
                .send_data(self.packet(MessageStatus::Continue, chunk))
                .await?;
        }
        Ok(())
    }

    /// Signals end of data the way libvirtd does for server→client streams:
    /// an empty STREAM CONTINUE packet. The client then sends STREAM OK
    /// (seen as [`StreamEvent::Finish`]), answered with [`finish_ok`](Self::finish_ok).
    ///
    /// # Errors
    /// [`Error::Closed`], [`Error::StreamFinished`].
    pub async fn send_eof(&mut self) -> Result<()> {
        if self.done {
            return Err(Error::StreamFinished);
        }
        self.outbound
            .send_data(self.packet(MessageStatus::Continue, Bytes::new()))
            .await
    }

    /// Ends the stream successfully: STREAM OK with an empty payload (the
    /// confirmation a client waits for after its own STREAM OK).
    ///
    /// # Errors
    /// [`Error::Closed`], [`Error::StreamFinished`].
    pub async fn finish_ok(&mut self) -> Result<()> {
        self.finish(MessageStatus::Ok, Bytes::new()).await
    }

    /// Ends the stream with an error: STREAM ERROR carrying `error`.
    ///
    /// # Errors
    /// [`Error::Closed`], [`Error::StreamFinished`].
    pub async fn finish_error(&mut self, error: WireError) -> Result<()> {
        self.finish(MessageStatus::Error, error.encode()).await
    }

    async fn finish(&mut self, status: MessageStatus, payload: Bytes) -> Result<()> {
        if self.done {
            return Err(Error::StreamFinished);
        }
        self.done = true;
        self.registry.remove(&StreamRegistry::key(&self.header));
        // Through the data queue so it is written after every data packet.
        self.outbound.send_data(self.packet(status, payload)).await
    }

    /// The header of the call that opened this stream.
    pub fn header(&self) -> &Header {
        &self.header
    }
}

impl Drop for ServerStream {
    fn drop(&mut self) {
        self.registry.remove(&StreamRegistry::key(&self.header));
        // A client that knows this stream would otherwise wait forever for
        // its end; before the OK reply it does not know it yet.
        if !self.done && self.replied.load(Ordering::Acquire) {
            let err = WireError::new(
                VIR_ERR_OPERATION_ABORTED,
                VIR_FROM_STREAMS,
                "stream closed by the server before it finished",
            );
            let _ = self
                .outbound
                .send(self.packet(MessageStatus::Error, err.encode()));
        }
    }
}
