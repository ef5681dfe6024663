//! The RPC server: accepts connections, frames packets, answers the
//! keepalive program and protocol errors itself, and hands every CALL to a
//! [`Dispatcher`] supplied by the daemon.
//!
//! Per connection (`connection.rs`): one reader task (this one decodes and
//! routes), one writer task fed by queues (`outbound.rs`), one task per
//! running call, and optionally a keepalive task. Calls run concurrently:
//! at most [`ServerConfig::max_calls_per_client`] at once, further calls
//! wait in a bounded queue, and once that queue is full the reader stops
//! reading the socket (TCP back-pressure). Calls whose [`Lookup`] says
//! `priority` bypass the limit, as libvirt's priority workers do; they have
//! their own pool of the same size, so they cannot be used to start
//! unbounded work either.
//!
//! Packets a client should not send are handled as libvirtd does, with one
//! documented choice:
//! * CALL with an unknown program/version → ERROR reply `VIR_ERR_RPC`/`VIR_FROM_RPC`.
//! * CALL with status ≠ OK → ERROR reply `VIR_ERR_RPC`.
//! * CALL_WITH_FDS → ERROR reply `VIR_ERR_RPC` (no descriptor passing).
//! * REPLY, MESSAGE (other than keepalive), REPLY_WITH_FDS, STREAM_HOLE or a header
//!   with undefined type/status → logged at warn and ignored; the
//!   connection is kept (one confused packet does not cost the client its
//!   other calls).
//! * STREAM packets for no open stream → dropped silently (libvirt-wire §8.4).
//! * A bad length word (frame boundary lost) → that connection is closed.

mod connection;
mod context;
mod dispatch;
mod limits;
pub mod listener;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

pub use self::context::{CallContext, ConnHandle};
use self::limits::Limits;
pub use self::listener::Listener;
use crate::error::WireError;
use crate::header::Header;

pub use migrated_proto::{REMOTE_PROGRAM, REMOTE_PROTOCOL_VERSION};

/// Limits and timers of a [`Server`].
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Connections served at once; beyond it new ones are accepted and closed.
    pub max_clients: usize,
    /// Connections still in their TLS handshake at once.
    pub max_anonymous_clients: usize,
    /// Non-priority calls running at once per connection.
    pub max_calls_per_client: usize,
    /// Calls waiting for a slot per connection; when full the socket is not read.
    pub max_queued_calls_per_client: usize,
    /// Unwritten reply/event bytes per connection before it is disconnected.
    pub max_outbound_bytes: usize,
    /// Silence before the server pings (once [`ConnHandle::start_keepalive`] ran).
    pub keepalive_interval: Duration,
    /// Unanswered pings before the connection is closed.
    pub keepalive_count: u32,
    /// Time allowed for a TLS handshake (and the 0x01 byte) to complete.
    pub handshake_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_clients: 5000,
            max_anonymous_clients: 20,
            max_calls_per_client: 5,
            max_queued_calls_per_client: 32,
            max_outbound_bytes: 64 * 1024 * 1024,
            keepalive_interval: Duration::from_secs(5),
            keepalive_count: 5,
            handshake_timeout: Duration::from_secs(30),
        }
    }
}

/// Transport a connection arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Plain TCP.
    Tcp,
    /// TLS over TCP.
    Tls,
    /// UNIX stream socket.
    Unix,
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Tcp => "tcp",
            Self::Tls => "tls",
            Self::Unix => "unix",
        })
    }
}

/// What the server knows about a client connection.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// Server-unique connection number.
    pub id: u64,
    /// How the client connected.
    pub transport: Transport,
    /// Peer address (`ip:port`, or the socket path for UNIX).
    pub peer: String,
    /// Came from a read-only socket.
    pub readonly: bool,
    /// Subject DN of the verified client certificate (TLS only).
    pub tls_subject: Option<String>,
}

/// How the server should treat an incoming CALL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Run it; `priority` calls bypass the per-client call limit.
    Call {
        /// Bypass [`ServerConfig::max_calls_per_client`].
        priority: bool,
    },
    /// Answer with this error without running anything.
    Reject(WireError),
}

/// The daemon side of the server: knows the procedures.
///
/// The server calls `open_session` once per connection, then `lookup` (on
/// the reader task, keep it cheap) and `call` (on its own task) for each
/// CALL, and `close_session` when the connection ends.
pub trait Dispatcher: Send + Sync + 'static {
    /// Per-connection state (the daemon's "client private data").
    type Session: Send + Sync + 'static;

    /// `(program, version)` pairs served; a CALL for any other gets
    /// "cannot find program" (`VIR_ERR_RPC`). Defaults to the remote program.
    fn programs(&self) -> &[(u32, u32)] {
        &[(REMOTE_PROGRAM, REMOTE_PROTOCOL_VERSION)]
    }

    /// A new connection was accepted (after TLS verification).
    fn open_session(&self, info: &ConnInfo, handle: ConnHandle) -> Self::Session;

    /// Decides whether and how a CALL runs (unknown procedure, read-only
    /// refusals, ... are `Reject`s).
    fn lookup(&self, session: &Self::Session, header: &Header) -> Lookup;

    /// Runs one call; `Ok` bytes become the REPLY payload, `Err` an ERROR reply.
    fn call(
        &self,
        session: Arc<Self::Session>,
        ctx: CallContext,
        payload: Bytes,
    ) -> impl Future<Output = Result<Bytes, WireError>> + Send;

    /// The connection is gone (all of its calls have finished or been detached).
    fn close_session(&self, _session: &Self::Session) {}
}

/// Accepts and serves connections for one [`Dispatcher`].
pub struct Server<D: Dispatcher> {
    inner: Arc<ServerInner<D>>,
}

impl<D: Dispatcher> Clone for Server<D> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

pub(crate) struct ServerInner<D: Dispatcher> {
    pub(crate) config: ServerConfig,
    pub(crate) dispatcher: Arc<D>,
    pub(crate) shutdown: CancellationToken,
    pub(crate) limits: Limits,
    next_id: AtomicU64,
}

impl<D: Dispatcher> Server<D> {
    /// A server with the given limits and dispatcher; nothing runs until [`serve`](Self::serve).
    pub fn new(config: ServerConfig, dispatcher: Arc<D>) -> Self {
        let limits = Limits::new(config.max_clients, config.max_anonymous_clients);
        Self {
            inner: Arc::new(ServerInner {
                config,
                dispatcher,
                shutdown: CancellationToken::new(),
                limits,
                next_id: AtomicU64::new(1),
            }),
        }
    }

    /// Accepts connections on `listener` until [`shutdown`](Self::shutdown),
    /// then waits for this listener's connections to drain. May run
    /// concurrently for several listeners.
    ///
    /// # Cancel safety
    /// Dropping the future stops accepting; connections already accepted
    /// keep running on their own tasks.
    pub async fn serve(&self, listener: Listener) {
        listener::accept_loop(self.inner.clone(), listener).await;
    }

    /// Graceful stop: no new connections, no new calls; running calls finish
    /// and their replies are flushed, then every connection closes and
    /// [`serve`](Self::serve) returns. A call that never ends keeps its
    /// connection (and `serve`) waiting: bound it with a timeout around
    /// `serve` if needed.
    pub fn shutdown(&self) {
        self.inner.shutdown.cancel();
    }

    /// Connections currently open (including TLS handshakes in progress).
    pub fn connection_count(&self) -> usize {
        self.inner.limits.clients()
    }

    /// The dispatcher given to [`new`](Self::new).
    pub fn dispatcher(&self) -> &Arc<D> {
        &self.inner.dispatcher
    }
}

impl<D: Dispatcher> ServerInner<D> {
    pub(crate) fn next_conn_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }
}
