//! The RPC client: many calls in flight on one connection.
//!
//! Structure (STYLE.md, instead of libvirt's "pass the buck" loop): one
//! reader task (`conn.rs`) completes calls through the `serial → oneshot`
//! map (`pending.rs`), routes stream packets and events, and answers
//! keepalive PINGs; one writer task drains the outbound queues. Serials
//! start at 0 and increase by one per call, as libvirt's client does.

mod conn;
mod pending;
mod stream;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use self::pending::Pending;
pub use self::stream::ClientStream;
use crate::error::{Error, Result, WireError};
use crate::header::{Header, Message, MessageStatus, MessageType};
use crate::keepalive::{self, Activity};
use crate::outbound::{self, Outbound};
use crate::stream::StreamRegistry;

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Give up on a call after this long (`None` = wait forever; a
    /// migration's Perform can legitimately take hours).
    pub call_timeout: Option<Duration>,
    /// Events buffered for [`RpcClient::subscribe_events`] before new ones are dropped.
    pub event_queue: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            call_timeout: None,
            event_queue: 1024,
        }
    }
}

/// A libvirt RPC connection; cheap to clone, all clones share it.
///
/// Dropping the last clone closes the connection (streams obtained from it
/// then fail with [`Error::Closed`]).
#[derive(Debug, Clone)]
pub struct RpcClient {
    inner: Arc<Inner>,
    // The reader and writer tasks hold `inner`; this guard is what ends them
    // once the user lets go of every clone.
    _close_on_drop: Arc<tokio_util::sync::DropGuard>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    config: ClientConfig,
    outbound: Outbound,
    pending: Arc<Pending>,
    streams: Arc<StreamRegistry>,
    events: Mutex<Option<mpsc::Sender<Message>>>,
    next_serial: AtomicU32,
    abort: CancellationToken,
    activity: Arc<Activity>,
    keepalive_started: AtomicBool,
    close_reason: Mutex<Option<String>>,
}

impl RpcClient {
    /// Starts the connection's tasks over an established stream (TCP,
    /// UNIX, or TLS after [`TlsConnector::connect`](crate::transport::tls::TlsConnector::connect)).
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn new<S>(stream: S, config: ClientConfig) -> Self
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (rd, wr) = tokio::io::split(stream);
        let abort = CancellationToken::new();
        // A client never disconnects itself for its own unsent output.
        let (outbound, queues) = Outbound::new(usize::MAX, abort.clone());
        let inner = Arc::new(Inner {
            config,
            outbound,
            pending: Arc::new(Pending::default()),
            streams: Arc::new(StreamRegistry::default()),
            events: Mutex::new(None),
            next_serial: AtomicU32::new(0),
            abort: abort.clone(),
            activity: Arc::new(Activity::default()),
            keepalive_started: AtomicBool::new(false),
            close_reason: Mutex::new(None),
        });
        tokio::spawn(outbound::run_writer(wr, queues, abort.clone()));
        tokio::spawn(conn::read_loop(inner.clone(), rd));
        Self {
            inner,
            _close_on_drop: Arc::new(abort.drop_guard()),
        }
    }

    fn call_header(&self, prog: u32, vers: u32, proc_: i32) -> Header {
        Header {
            prog,
            vers,
            proc_,
            type_: MessageType::Call,
            serial: self.inner.next_serial.fetch_add(1, Ordering::Relaxed),
            status: MessageStatus::Ok,
        }
    }

    /// Calls `proc_` with XDR-encoded `args` and returns the reply payload.
    ///
    /// # Errors
    /// [`Error::Remote`] for an ERROR reply, [`Error::Timeout`] after
    /// `call_timeout`, [`Error::Closed`], [`Error::FrameTooLong`],
    /// [`Error::Protocol`] for a malformed error payload.
    ///
    /// # Cancel safety
    /// Cancel-safe in the sense that nothing leaks: a dropped call forgets
    /// its serial and a late reply is discarded.
    pub async fn call(&self, prog: u32, vers: u32, proc_: i32, args: Vec<u8>) -> Result<Bytes> {
        let header = self.call_header(prog, vers, proc_);
        let waiter = self.inner.pending.register(header.serial)?;
        self.inner.outbound.send(Message::new(header, args))?;
        let reply = match self.inner.config.call_timeout {
            Some(limit) => tokio::time::timeout(limit, waiter.wait())
                .await
                .map_err(|_| Error::Timeout(limit))??,
            None => waiter.wait().await?,
        };
        reply_payload(reply)
    }

    /// Calls a procedure that opens a stream (libvirt-wire §8.4). The
    /// stream is registered before the call is sent, so data the server
    /// sends right after its reply is not lost.
    ///
    /// # Errors
    /// As [`call`](Self::call); on an ERROR reply no stream exists.
    pub async fn call_with_stream(
        &self,
        prog: u32,
        vers: u32,
        proc_: i32,
        args: Vec<u8>,
    ) -> Result<(Bytes, ClientStream)> {
        let header = self.call_header(prog, vers, proc_);
        let key = StreamRegistry::key(&header);
        let rx = self.inner.streams.register(key);
        let stream_header = Header {
            type_: MessageType::Stream,
            status: MessageStatus::Continue,
            ..header
        };
        let stream = ClientStream::new(
            stream_header,
            self.inner.outbound.clone(),
            self.inner.streams.clone(),
            rx,
        );
        let waiter = self.inner.pending.register(header.serial)?;
        self.inner.outbound.send(Message::new(header, args))?;
        let reply = match self.inner.config.call_timeout {
            Some(limit) => tokio::time::timeout(limit, waiter.wait())
                .await
                .map_err(|_| Error::Timeout(limit))??,
            None => waiter.wait().await?,
        };
        // On error `stream` is dropped here, which unregisters it.
        Ok((reply_payload(reply)?, stream))
    }

    /// Receives MESSAGE packets other than keepalive (events). Only the
    /// latest subscriber gets them; when its queue is full, events are
    /// dropped with a warning rather than stalling the connection.
    pub fn subscribe_events(&self) -> mpsc::Receiver<Message> {
        let (tx, rx) = mpsc::channel(self.inner.config.event_queue.max(1));
        *self
            .inner
            .events
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(tx);
        rx
    }

    /// Starts client keepalive: PING after `interval` of silence, close
    /// the connection after `count` unanswered PINGs. Idempotent; a zero
    /// interval leaves keepalive off (libvirt's `virConnectSetKeepAlive`
    /// with interval ≤ 0).
    pub fn start_keepalive(&self, interval: Duration, count: u32) {
        if interval.is_zero() || self.inner.keepalive_started.swap(true, Ordering::AcqRel) {
            return;
        }
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let outbound = inner.outbound.clone();
            let dead = tokio::select! {
                n = keepalive::run(&inner.activity, interval, count, || {
                    outbound.send(keepalive::message(keepalive::PROC_PING)).is_ok()
                }) => match n {
                    Some(n) => n,
                    None => return,
                },
                _ = inner.abort.cancelled() => return,
            };
            tracing::warn!(
                unanswered = dead,
                "no keepalive response from server, closing connection"
            );
            inner.set_close_reason(Error::KeepaliveTimeout { count: dead }.to_string());
            inner.abort.cancel();
        });
    }

    /// Resolves once the connection is closed, with the reason if known.
    ///
    /// # Cancel safety
    /// Cancel-safe.
    pub async fn closed(&self) -> Option<String> {
        self.inner.abort.cancelled().await;
        self.inner
            .close_reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Whether the connection is closed.
    pub fn is_closed(&self) -> bool {
        self.inner.abort.is_cancelled()
    }

    /// Closes the connection now; calls in flight fail with [`Error::Closed`].
    pub fn close(&self) {
        self.inner.set_close_reason("closed by the client".into());
        self.inner.abort.cancel();
    }
}

impl Inner {
    fn set_close_reason(&self, reason: String) {
        let mut slot = self
            .close_reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        slot.get_or_insert(reason);
    }
}

fn reply_payload(reply: Message) -> Result<Bytes> {
    match reply.header.status {
        MessageStatus::Ok => Ok(reply.payload),
        MessageStatus::Error => Err(Error::Remote(WireError::decode(&reply.payload)?)),
        MessageStatus::Continue => Err(Error::Protocol {
            reason: "REPLY with status CONTINUE".into(),
        }),
    }
}
