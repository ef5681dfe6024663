//! Handles given to the daemon: [`ConnHandle`] (per connection) and
//! [`CallContext`] (per call).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use super::ConnInfo;
use crate::error::Result;
use crate::header::{Header, Message, MessageStatus, MessageType};
use crate::keepalive::{self, Activity};
use crate::outbound::Outbound;
use crate::stream::{ServerStream, StreamRegistry};

/// Serial libvirtd puts on remote-program event MESSAGEs.
const EVENT_SERIAL: u32 = 1;

#[derive(Debug)]
pub(crate) struct ConnShared {
    pub(crate) info: Arc<ConnInfo>,
    pub(crate) outbound: Outbound,
    pub(crate) streams: Arc<StreamRegistry>,
    /// Stop reading, finish running calls, flush, close.
    pub(crate) graceful: CancellationToken,
    /// Close now.
    pub(crate) abort: CancellationToken,
    pub(crate) activity: Arc<Activity>,
    pub(crate) keepalive_interval: Duration,
    pub(crate) keepalive_count: u32,
    keepalive_started: AtomicBool,
}

impl ConnShared {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        info: Arc<ConnInfo>,
        outbound: Outbound,
        graceful: CancellationToken,
        abort: CancellationToken,
        keepalive_interval: Duration,
        keepalive_count: u32,
    ) -> Self {
        Self {
            info,
            outbound,
            streams: Arc::new(StreamRegistry::default()),
            graceful,
            abort,
            activity: Arc::new(Activity::default()),
            keepalive_interval,
            keepalive_count,
            keepalive_started: AtomicBool::new(false),
        }
    }
}

/// A clone-able handle on one client connection.
#[derive(Debug, Clone)]
pub struct ConnHandle {
    pub(crate) shared: Arc<ConnShared>,
}

impl ConnHandle {
    /// The connection's identity.
    pub fn info(&self) -> &ConnInfo {
        &self.shared.info
    }

    /// Pushes an event: a MESSAGE (status OK, version 1, serial 1 as
    /// libvirtd uses for remote events) with `payload` as its body.
    ///
    /// # Errors
    /// [`Error::Closed`](crate::Error::Closed) when the connection is gone or
    /// was just disconnected for not reading; [`Error::FrameTooLong`](crate::Error::FrameTooLong).
    pub fn send_event(&self, prog: u32, proc_: i32, payload: Bytes) -> Result<()> {
        self.shared.outbound.send(Message::new(
            Header {
                prog,
                vers: 1,
                proc_,
                type_: MessageType::Message,
                serial: EVENT_SERIAL,
                status: MessageStatus::Ok,
            },
            payload,
        ))
    }

    /// Closes gracefully: stop reading, let running calls finish and their
    /// replies flush, then close the socket. Safe to call from a handler
    /// (e.g. CONNECT_CLOSE): that call's own reply is still sent.
    pub fn close(&self) {
        self.shared.graceful.cancel();
    }

    /// Closes immediately, dropping queued output.
    pub fn abort(&self) {
        self.shared.abort.cancel();
    }

    /// Whether the connection is closing or closed.
    pub fn is_closed(&self) -> bool {
        self.shared.abort.is_cancelled() || self.shared.graceful.is_cancelled()
    }

    /// Resolves once the connection is being torn down.
    ///
    /// # Cancel safety
    /// Cancel-safe.
    pub async fn closed(&self) {
        tokio::select! {
            _ = self.shared.abort.cancelled() => {}
            _ = self.shared.graceful.cancelled() => {}
        }
    }

    /// Starts server-side keepalive with the server's interval and count:
    /// PING after `interval` of silence, close after `count` unanswered.
    /// libvirtd does this when the client asked feature 10 (keepalive);
    /// the decision is the dispatcher's. Idempotent. A zero interval means
    /// keepalive is off; a zero count closes the connection after one
    /// interval of silence without pinging (libvirtd's `keepalive_count = 0`).
    pub fn start_keepalive(&self) {
        if self.shared.keepalive_interval.is_zero()
            || self.shared.keepalive_started.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let outbound = shared.outbound.clone();
            let dead = tokio::select! {
                n = keepalive::run(&shared.activity, shared.keepalive_interval, shared.keepalive_count, || {
                    outbound.send(keepalive::message(keepalive::PROC_PING)).is_ok()
                }) => match n {
                    Some(n) => n,
                    None => return,
                },
                _ = shared.abort.cancelled() => return,
            };
            tracing::warn!(
                conn_id = shared.info.id,
                peer = %shared.info.peer,
                unanswered = dead,
                "no keepalive response from client, closing connection"
            );
            shared.abort.cancel();
        });
    }
}

/// Everything a call handler gets besides its payload.
#[derive(Debug, Clone)]
pub struct CallContext {
    /// The CALL's header (program, procedure, serial).
    pub header: Header,
    /// The connection's identity.
    pub info: Arc<ConnInfo>,
    /// The connection, for events and closing.
    pub handle: ConnHandle,
    /// Set once the call's OK reply is queued: from then on the client
    /// knows the stream, so dropping it unfinished must tell the client.
    pub(crate) replied: Arc<AtomicBool>,
}

impl CallContext {
    /// Opens a stream bound to this call's (prog, proc, serial). Do it before
    /// returning the reply, so the client's first STREAM packet finds it.
    pub fn open_stream(&self) -> ServerStream {
        ServerStream::new(
            self.header,
            self.handle.shared.outbound.clone(),
            self.handle.shared.streams.clone(),
            self.replied.clone(),
        )
    }
}
