//! The tunnelled data stream as the data planes see it: packets of bytes.
//!
//! A tunnelled migration crosses the daemon-to-daemon connection in STREAM
//! packets (libvirt-wire.md §8.4). Both ends hand whole packets along as
//! [`Bytes`] so that no byte is copied between the socket a driver reads
//! (QEMU's end of a socket pair, say) and the socket the packet is written
//! to:
//!
//! ```text
//! source:      driver ──TunnelWriter::send(Bytes)──▶ channel ──▶ STREAM CONTINUE
//! destination: STREAM CONTINUE ──▶ channel ──TunnelReader::next_packet()──▶ driver
//! ```
//!
//! Drivers that produce or consume a byte stream instead (the `test`
//! driver's framed pages) use the [`AsyncWrite`] / [`AsyncRead`] side of the
//! same types, which packs and unpacks packets for them.
//!
//! Packet buffers come from a [`PacketPool`]: a fresh 256 KiB allocation per
//! packet costs a page fault per 4 KiB on every packet, more than the copy
//! it carries.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;
use tokio_util::sync::PollSender;

/// Largest payload of one tunnel packet: the most libvirtd itself puts in a
/// STREAM packet (receivers accept up to `VIR_NET_MESSAGE_PAYLOAD_MAX`).
pub const TUNNEL_PACKET: usize = 256 * 1024;

/// Packets buffered between a data plane and the connection, each way.
pub const TUNNEL_QUEUE: usize = 8;

/// Buffers in a [`PacketPool`]: enough for every packet that can be in
/// flight at once (this queue, the connection's data queue, one being
/// written and one being filled), so the pool's own buffers are free again
/// by the time it comes back to them.
const POOL_BUFFERS: usize = 2 * TUNNEL_QUEUE + 4;

/// A ring of reusable packet buffers.
///
/// [`take`](Self::take) hands out a buffer with room for one packet; the
/// packet split off it travels as [`Bytes`] and, once dropped, leaves the
/// allocation to be reclaimed on the ring's next turn. A buffer still in
/// flight then is replaced by a new allocation, so the pool never waits.
#[derive(Debug)]
pub struct PacketPool {
    buffers: Vec<BytesMut>,
    turn: usize,
    size: usize,
}

impl PacketPool {
    /// A pool of buffers of `size` bytes each, allocated when first used.
    pub fn new(size: usize) -> Self {
        Self {
            buffers: (0..POOL_BUFFERS).map(|_| BytesMut::new()).collect(),
            turn: 0,
            size,
        }
    }

    /// An empty buffer with room for `size` bytes: a reclaimed one when its
    /// last packet is gone, else a new allocation.
    pub fn take(&mut self) -> &mut BytesMut {
        self.turn = (self.turn + 1) % self.buffers.len();
        let size = self.size;
        let buf = &mut self.buffers[self.turn];
        buf.clear();
        if !buf.try_reclaim(size) {
            *buf = BytesMut::with_capacity(size);
        }
        buf
    }
}

fn closed() -> io::Error {
    io::Error::new(
        io::ErrorKind::BrokenPipe,
        "the tunnelled migration stream is closed",
    )
}

/// The source's end of the tunnel: whole packets with
/// [`send`](Self::send), or bytes through [`AsyncWrite`] (packed into
/// packets of at most [`TUNNEL_PACKET`] bytes).
///
/// Sending waits while [`TUNNEL_QUEUE`] packets are queued; it fails with
/// [`io::ErrorKind::BrokenPipe`] once the other end is gone (the stream
/// failed or the destination aborted). Shutting the writer down (or
/// dropping it) is the end of the data.
#[derive(Debug)]
pub struct TunnelWriter {
    tx: PollSender<Bytes>,
    pool: PacketPool,
    /// Bytes written through `AsyncWrite` and not sent yet (a pool buffer).
    pending: BytesMut,
}

impl TunnelWriter {
    /// A writer and the receiver of the packets it sends.
    pub fn channel() -> (Self, mpsc::Receiver<Bytes>) {
        let (tx, rx) = mpsc::channel(TUNNEL_QUEUE);
        let writer = Self {
            tx: PollSender::new(tx),
            pool: PacketPool::new(TUNNEL_PACKET),
            pending: BytesMut::new(),
        };
        (writer, rx)
    }

    /// Sends `packet` as one packet (bytes written before it go first).
    /// An empty packet is skipped: an empty STREAM packet means end of data.
    ///
    /// # Errors
    /// [`io::ErrorKind::BrokenPipe`] when the stream is gone.
    pub async fn send(&mut self, packet: Bytes) -> io::Result<()> {
        std::future::poll_fn(|cx| self.poll_send_pending(cx)).await?;
        if packet.is_empty() {
            return Ok(());
        }
        std::future::poll_fn(|cx| self.tx.poll_reserve(cx))
            .await
            .map_err(|_| closed())?;
        self.tx.send_item(packet).map_err(|_| closed())
    }

    /// Reads from `from` until its end and sends what it reads as packets,
    /// each as large as what one read returns (at most [`TUNNEL_PACKET`]),
    /// read straight into pool buffers; returns the bytes sent.
    ///
    /// # Errors
    /// A read error of `from`, or [`io::ErrorKind::BrokenPipe`].
    pub async fn send_from<R>(&mut self, from: &mut R) -> io::Result<u64>
    where
        R: AsyncRead + Unpin + ?Sized,
    {
        let mut total = 0u64;
        loop {
            let buf = self.pool.take();
            if from.read_buf(buf).await? == 0 {
                return Ok(total);
            }
            let packet = buf.split().freeze();
            total += packet.len() as u64;
            self.send(packet).await?;
        }
    }

    /// Sends the bytes written through `AsyncWrite` and not sent yet.
    fn poll_send_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.pending.is_empty() {
            return Poll::Ready(Ok(()));
        }
        ready!(self.tx.poll_reserve(cx)).map_err(|_| closed())?;
        let packet = self.pending.split().freeze();
        self.tx.send_item(packet).map_err(|_| closed())?;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for TunnelWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        // Fail as soon as the stream is gone, not only when a packet is due.
        if this.tx.get_ref().map_or(true, mpsc::Sender::is_closed) {
            return Poll::Ready(Err(closed()));
        }
        let len = this.pending.len();
        if len >= TUNNEL_PACKET || len == this.pending.capacity() {
            ready!(this.poll_send_pending(cx))?;
            // The whole buffer, so the pool can reclaim it once its packets are gone.
            this.pending = this.pool.take().split_off(0);
        }
        let room =
            (this.pending.capacity() - this.pending.len()).min(TUNNEL_PACKET - this.pending.len());
        let n = data.len().min(room);
        this.pending.extend_from_slice(&data[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_send_pending(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_send_pending(cx))?;
        self.tx.close();
        Poll::Ready(Ok(()))
    }
}

/// What the connection side feeds a [`TunnelReader`]: a packet, or the
/// error that ends the data (the source aborted, the connection closed).
pub type TunnelChunk = io::Result<Bytes>;

/// The destination's end of the tunnel: whole packets with
/// [`next_packet`](Self::next_packet), or bytes through [`AsyncRead`].
///
/// A closed channel is the end of the data; an `Err` chunk fails the read.
#[derive(Debug)]
pub struct TunnelReader {
    rx: mpsc::Receiver<TunnelChunk>,
    /// What is left of the packet `AsyncRead` is reading from.
    current: Bytes,
    done: bool,
}

impl TunnelReader {
    /// A reader and the sender the connection side feeds it with.
    pub fn channel() -> (mpsc::Sender<TunnelChunk>, Self) {
        let (tx, rx) = mpsc::channel(TUNNEL_QUEUE);
        let reader = Self {
            rx,
            current: Bytes::new(),
            done: false,
        };
        (tx, reader)
    }

    /// The next packet, `Ok(None)` at the end of the data.
    ///
    /// # Errors
    /// The error that ended the stream (source aborted, connection lost).
    pub async fn next_packet(&mut self) -> io::Result<Option<Bytes>> {
        if !self.current.is_empty() {
            return Ok(Some(std::mem::take(&mut self.current)));
        }
        std::future::poll_fn(|cx| self.poll_packet(cx)).await
    }

    fn poll_packet(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<Bytes>>> {
        loop {
            if self.done {
                return Poll::Ready(Ok(None));
            }
            match ready!(self.rx.poll_recv(cx)) {
                Some(Ok(packet)) if packet.is_empty() => {}
                Some(Ok(packet)) => return Poll::Ready(Ok(Some(packet))),
                Some(Err(e)) => {
                    self.done = true;
                    return Poll::Ready(Err(e));
                }
                None => self.done = true,
            }
        }
    }
}

impl AsyncRead for TunnelReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.current.is_empty() {
            match ready!(self.poll_packet(cx))? {
                Some(packet) => self.current = packet,
                None => return Poll::Ready(Ok(())),
            }
        }
        let n = self.current.len().min(buf.remaining());
        let part = self.current.split_to(n);
        buf.put_slice(&part);
        Poll::Ready(Ok(()))
    }
}

/// A writer connected to a reader in the same process (both ends of one
/// daemon, and tests): a task forwards the packets until the writer is
/// closed. Needs a tokio runtime.
pub fn loopback() -> (TunnelWriter, TunnelReader) {
    let (writer, mut packets) = TunnelWriter::channel();
    let (tx, reader) = TunnelReader::channel();
    tokio::spawn(async move {
        while let Some(packet) = packets.recv().await {
            if tx.send(Ok(packet)).await.is_err() {
                return;
            }
        }
    });
    (writer, reader)
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn written_bytes_arrive_in_packets_of_at_most_the_packet_size() {
        let (mut writer, mut rx) = TunnelWriter::channel();
        let data: Vec<u8> = (0..TUNNEL_PACKET * 2 + 100).map(|i| i as u8).collect();
        let expected = data.clone();
        let write = tokio::spawn(async move {
            writer.write_all(&data).await?;
            writer.shutdown().await
        });
        let mut got = Vec::new();
        while let Some(packet) = rx.recv().await {
            assert!(!packet.is_empty() && packet.len() <= TUNNEL_PACKET);
            got.extend_from_slice(&packet);
        }
        write.await.expect("task").expect("write");
        assert_eq!(got, expected);
    }

    #[tokio::test]
    async fn whole_packets_keep_their_order_after_written_bytes() {
        let (mut writer, mut rx) = TunnelWriter::channel();
        writer.write_all(b"head").await.expect("write");
        writer
            .send(Bytes::from_static(b"body"))
            .await
            .expect("send");
        writer.send(Bytes::new()).await.expect("empty is skipped");
        drop(writer);
        let mut got = Vec::new();
        while let Some(packet) = rx.recv().await {
            got.push(packet);
        }
        assert_eq!(got, [&b"head"[..], b"body"]);
    }

    #[tokio::test]
    async fn send_from_moves_a_reader_in_pool_buffers() {
        let (mut writer, mut rx) = TunnelWriter::channel();
        let data: Vec<u8> = (0..3 * TUNNEL_PACKET + 7)
            .map(|i| (i % 251) as u8)
            .collect();
        let expected = data.clone();
        let collect = tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(packet) = rx.recv().await {
                got.extend_from_slice(&packet);
            }
            got
        });
        let n = writer.send_from(&mut &data[..]).await.expect("send");
        drop(writer);
        assert_eq!(n, expected.len() as u64);
        assert_eq!(collect.await.expect("task"), expected);
    }

    #[tokio::test]
    async fn loopback_carries_bytes_from_writer_to_reader() {
        let (mut writer, mut reader) = loopback();
        let data: Vec<u8> = (0..TUNNEL_PACKET + 3).map(|i| (i % 13) as u8).collect();
        let sent = data.clone();
        tokio::spawn(async move {
            writer.write_all(&sent).await?;
            writer.shutdown().await
        });
        let mut got = Vec::new();
        reader.read_to_end(&mut got).await.expect("read");
        assert!(got == data);
    }

    #[tokio::test]
    async fn a_gone_receiver_fails_the_writer() {
        let (mut writer, rx) = TunnelWriter::channel();
        drop(rx);
        let err = writer.write_all(b"x").await.expect_err("closed");
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
        let err = writer
            .send(Bytes::from_static(b"y"))
            .await
            .expect_err("closed");
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }

    #[test]
    fn the_pool_reuses_a_buffer_whose_packet_is_gone() {
        let mut pool = PacketPool::new(1024);
        let first = pool.take();
        first.extend_from_slice(b"abc");
        let packet = first.split().freeze();
        let addr = packet.as_ptr();
        drop(packet);
        for _ in 1..POOL_BUFFERS {
            let _ = pool.take();
        }
        let again = pool.take();
        assert_eq!(again.as_ptr(), addr, "same allocation on the next turn");
        assert!(again.capacity() >= 1024 && again.is_empty());
    }

    #[test]
    fn the_pool_never_hands_out_a_buffer_still_in_flight() {
        let mut pool = PacketPool::new(16);
        let first = pool.take();
        first.extend_from_slice(b"in flight");
        let packet = first.split().freeze();
        for _ in 0..POOL_BUFFERS {
            let buf = pool.take();
            buf.extend_from_slice(b"overwrite!");
            let _ = buf.split();
        }
        assert_eq!(&packet[..], b"in flight");
    }

    #[tokio::test]
    async fn packets_read_back_in_order_until_the_channel_closes() {
        let (tx, mut reader) = TunnelReader::channel();
        tokio::spawn(async move {
            for part in [&b"hello "[..], b"", b"tunnel"] {
                tx.send(Ok(Bytes::copy_from_slice(part))).await.ok();
            }
        });
        let mut out = Vec::new();
        reader.read_to_end(&mut out).await.expect("clean end");
        assert_eq!(out, b"hello tunnel");
    }

    #[tokio::test]
    async fn next_packet_returns_what_a_partial_read_left() {
        let (tx, mut reader) = TunnelReader::channel();
        tx.send(Ok(Bytes::from_static(b"abcdef"))).await.ok();
        drop(tx);
        let mut two = [0u8; 2];
        reader.read_exact(&mut two).await.expect("read");
        assert_eq!(&two, b"ab");
        let rest = reader.next_packet().await.expect("ok");
        assert_eq!(rest.as_deref(), Some(&b"cdef"[..]));
        assert_eq!(reader.next_packet().await.expect("end"), None);
    }

    #[tokio::test]
    async fn an_error_chunk_fails_the_read_after_the_data_before_it() {
        let (tx, mut reader) = TunnelReader::channel();
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
