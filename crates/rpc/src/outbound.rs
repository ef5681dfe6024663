//! The single writer task of a connection and the queues that feed it.
//!
//! Two queues: a *control* queue (replies, events, keepalive, stream end
//! markers of the server) that never blocks the sender but is bounded in
//! bytes — a peer that does not read lets it grow and is disconnected — and
//! a small *data* queue for stream payload whose bounded capacity gives
//! producers back-pressure. The writer prefers control messages, so a
//! stream of many MiB/s never starves replies on the same connection.

use std::io::IoSlice;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use futures::SinkExt;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::codec::FramedWrite;
use tokio_util::sync::CancellationToken;

use crate::codec::{MessageCodec, LEN_WORD, MESSAGE_MAX, PAYLOAD_MAX};
use crate::error::{Error, Result};
use crate::header::{Message, HEADER_LEN};

/// Stream packets queued ahead of the writer before producers wait.
const DATA_QUEUE: usize = 8;

/// What travels on the control queue.
#[derive(Debug)]
pub(crate) enum Out {
    /// A packet to write.
    Msg(Message),
    /// Write everything queued before this marker, then close the socket.
    Finish,
}

/// Sending side of a connection's queues; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Outbound {
    ctrl: mpsc::UnboundedSender<Out>,
    data: mpsc::Sender<Message>,
    queued: Arc<AtomicUsize>,
    max_queued: usize,
    abort: CancellationToken,
}

/// Receiving side, owned by [`run_writer`].
#[derive(Debug)]
pub(crate) struct WriterQueues {
    ctrl: mpsc::UnboundedReceiver<Out>,
    data: mpsc::Receiver<Message>,
    queued: Arc<AtomicUsize>,
}

impl Outbound {
    /// New queues; exceeding `max_queued` control bytes cancels `abort`.
    pub(crate) fn new(max_queued: usize, abort: CancellationToken) -> (Self, WriterQueues) {
        let (ctrl_tx, ctrl_rx) = mpsc::unbounded_channel();
        let (data_tx, data_rx) = mpsc::channel(DATA_QUEUE);
        let queued = Arc::new(AtomicUsize::new(0));
        (
            Self {
                ctrl: ctrl_tx,
                data: data_tx,
                queued: queued.clone(),
                max_queued,
                abort,
            },
            WriterQueues {
                ctrl: ctrl_rx,
                data: data_rx,
                queued,
            },
        )
    }

    /// Queues a control message without waiting.
    ///
    /// # Errors
    /// [`Error::Closed`] when the connection is gone, [`Error::FrameTooLong`]
    /// for an oversized payload, and [`Error::Closed`] after disconnecting a
    /// peer whose unread output exceeds the byte limit.
    pub(crate) fn send(&self, msg: Message) -> Result<()> {
        if msg.payload.len() > PAYLOAD_MAX {
            return Err(Error::FrameTooLong {
                len: msg.wire_len(),
            });
        }
        if self.abort.is_cancelled() {
            return Err(Error::Closed);
        }
        let len = msg.wire_len();
        let before = self.queued.fetch_add(len, Ordering::AcqRel);
        if before.saturating_add(len) > self.max_queued {
            tracing::warn!(
                queued = before + len,
                limit = self.max_queued,
                "peer is not reading its messages, disconnecting"
            );
            self.abort.cancel();
            return Err(Error::Closed);
        }
        self.ctrl.send(Out::Msg(msg)).map_err(|_| Error::Closed)
    }

    /// Asks the writer to close the socket after what is already queued.
    pub(crate) fn finish(&self) {
        let _ = self.ctrl.send(Out::Finish);
    }

    /// Queues a stream packet, waiting while the data queue is full.
    ///
    /// # Errors
    /// [`Error::Closed`] when the connection is gone; [`Error::FrameTooLong`].
    pub(crate) async fn send_data(&self, msg: Message) -> Result<()> {
        if msg.payload.len() > PAYLOAD_MAX {
            return Err(Error::FrameTooLong {
                len: msg.wire_len(),
            });
        }
        tokio::select! {
            _ = self.abort.cancelled() => Err(Error::Closed),
            r = self.data.send(msg) => r.map_err(|_| Error::Closed),
        }
    }
}

/// Stream payloads at least this large skip the codec's buffer: header and
/// payload go to the socket in one vectored write, without copying the
/// payload (a 256 KiB memmove per tunnelled-migration packet otherwise).
const DIRECT_MIN: usize = 64 * 1024;

/// Writes `msg` straight to the socket after what the codec holds: the
/// length word and header from a small buffer, the payload from its own
/// bytes, with vectored writes.
async fn write_direct<W>(framed: &mut FramedWrite<W, MessageCodec>, msg: Message) -> Result<()>
where
    W: AsyncWrite + Send + Unpin,
{
    let len = msg.wire_len();
    if len - LEN_WORD > MESSAGE_MAX {
        return Err(Error::FrameTooLong { len });
    }
    framed.flush().await?;
    let mut head = BytesMut::with_capacity(LEN_WORD + HEADER_LEN);
    // Bounded by MESSAGE_MAX just above, so it fits in a u32.
    head.put_u32(len as u32);
    msg.header.encode(&mut head);
    let (mut head, mut payload) = (&head[..], &msg.payload[..]);
    let writer = framed.get_mut();
    while !head.is_empty() || !payload.is_empty() {
        let slices = [IoSlice::new(head), IoSlice::new(payload)];
        let n = writer.write_vectored(&slices).await?;
        if n == 0 {
            return Err(Error::Io(std::io::ErrorKind::WriteZero.into()));
        }
        let from_head = n.min(head.len());
        head = &head[from_head..];
        payload = &payload[n - from_head..];
    }
    Ok(())
}

/// Writes queued messages until [`Out::Finish`], an error, or `abort`.
///
/// Cancels `abort` on exit in every case, so the reader side stops too.
pub(crate) async fn run_writer<W>(
    writer: W,
    mut q: WriterQueues,
    abort: CancellationToken,
) -> Result<()>
where
    W: AsyncWrite + Send + Unpin,
{
    let mut framed = FramedWrite::new(writer, MessageCodec::new());
    let result = async {
        let mut data_open = true;
        loop {
            let (next, from_ctrl) = tokio::select! {
                biased;
                _ = abort.cancelled() => return Ok(()),
                out = q.ctrl.recv() => (out.unwrap_or(Out::Finish), true),
                msg = q.data.recv(), if data_open => match msg {
                    Some(m) => (Out::Msg(m), false),
                    None => { data_open = false; continue; }
                },
            };
            let (msg, counted) = match next {
                Out::Msg(m) => (m, from_ctrl),
                Out::Finish => {
                    tokio::select! {
                        _ = abort.cancelled() => {}
                        r = async {
                            framed.flush().await?;
                            framed.get_mut().shutdown().await.map_err(Error::from)
                        } => r?,
                    }
                    return Ok(());
                }
            };
            let len = msg.wire_len();
            let direct = !from_ctrl
                && msg.payload.len() >= DIRECT_MIN
                && framed.get_ref().is_write_vectored();
            tokio::select! {
                _ = abort.cancelled() => return Ok(()),
                r = async {
                    if direct {
                        write_direct(&mut framed, msg).await
                    } else {
                        framed.feed(msg).await
                    }
                } => r?,
            }
            if counted {
                q.queued.fetch_sub(len, Ordering::AcqRel);
            }
            // Flush only when nothing else is ready, to batch small packets.
            if q.ctrl.is_empty() && q.data.is_empty() {
                tokio::select! {
                    _ = abort.cancelled() => return Ok(()),
                    r = framed.flush() => r?,
                }
            }
        }
    }
    .await;
    abort.cancel();
    result
}
