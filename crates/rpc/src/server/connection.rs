//! One client connection: reader loop, writer task, call scheduling.
//!
//! Tasks per connection: this reader (decode, classify, route), the writer
//! (`outbound.rs`), a scheduler that starts queued calls when a slot frees,
//! one task per running call that has to wait (a call that completes on its
//! first poll runs inline, see [`Calls::spawn`]), and optionally keepalive
//! (`context.rs`).

use std::future::Future;
use std::sync::Arc;
use std::task::Context;

use bytes::Bytes;
use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::context::{ConnHandle, ConnShared};
use super::dispatch::{self, Action};
use super::{ConnInfo, Dispatcher, ServerInner};
use crate::codec::MessageCodec;
use crate::header::{Header, Message};
use crate::outbound::{self, Outbound};
use crate::stream::Routed;

/// A call waiting for a slot.
struct Queued {
    header: Header,
    payload: Bytes,
}

/// Starts call tasks; each holds a `done` sender so the connection can wait
/// for all of them (the receiver sees `None` once the last one ends).
struct Calls<D: Dispatcher> {
    dispatcher: Arc<D>,
    session: Arc<D::Session>,
    handle: ConnHandle,
    done: mpsc::Sender<()>,
}

impl<D: Dispatcher> Clone for Calls<D> {
    fn clone(&self) -> Self {
        Self {
            dispatcher: self.dispatcher.clone(),
            session: self.session.clone(),
            handle: self.handle.clone(),
            done: self.done.clone(),
        }
    }
}

impl<D: Dispatcher> Calls<D> {
    /// Runs one call: polled once right here on the reader task, and only
    /// given a task of its own if it has to wait.
    ///
    /// Most calls (GET_HOSTNAME, lookups, ...) never wait: they finish on
    /// that first poll and their reply is queued without a task spawn and
    /// a hop to another worker. A call that waits returns `Pending` and
    /// goes on as before on its own task (tokio polls a new task at once,
    /// with its real waker), so a long call still never blocks the reader.
    fn spawn(&self, header: Header, payload: Bytes, slot: OwnedSemaphorePermit) {
        let this = self.clone();
        let mut call = Box::pin(
            async move {
                dispatch::run_call(this.dispatcher, this.session, this.handle, header, payload)
                    .await;
                drop(slot);
                drop(this.done);
            }
            .in_current_span(),
        );
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        if call.as_mut().poll(&mut cx).is_pending() {
            tokio::spawn(call);
        }
    }

    /// Starts queued calls as slots free up, until the queue closes.
    ///
    /// The slot is taken *before* a call leaves the queue, so a waiting call
    /// stays counted in the queue's capacity: exactly
    /// `max_queued_calls_per_client` calls wait before the reader stops.
    fn spawn_scheduler(
        &self,
        mut queue: mpsc::Receiver<Queued>,
        slots: Arc<Semaphore>,
    ) -> JoinHandle<()> {
        let calls = self.clone();
        tokio::spawn(
            async move {
                while let Ok(slot) = slots.clone().acquire_owned().await {
                    let Some(q) = queue.recv().await else {
                        break;
                    };
                    calls.spawn(q.header, q.payload, slot);
                }
            }
            .in_current_span(),
        )
    }
}

/// Serves one connection to the end. Returns when the socket is closed.
pub(crate) async fn serve<D, S>(server: Arc<ServerInner<D>>, stream: S, info: ConnInfo)
where
    D: Dispatcher,
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let span = tracing::info_span!("conn", conn_id = info.id, peer = %info.peer, transport = %info.transport);
    run(server, stream, info).instrument(span).await;
}

async fn run<D, S>(server: Arc<ServerInner<D>>, stream: S, info: ConnInfo)
where
    D: Dispatcher,
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    tracing::info!("client connected");
    let config = &server.config;
    let (rd, wr) = tokio::io::split(stream);
    let abort = CancellationToken::new();
    let graceful = server.shutdown.child_token();
    let (outbound, queues) = Outbound::new(config.max_outbound_bytes, abort.clone());
    let writer = tokio::spawn(outbound::run_writer(wr, queues, abort.clone()));
    let info = Arc::new(info);
    let shared = Arc::new(ConnShared::new(
        info.clone(),
        outbound.clone(),
        graceful.clone(),
        abort.clone(),
        config.keepalive_interval,
        config.keepalive_count,
    ));
    let handle = ConnHandle {
        shared: shared.clone(),
    };
    let dispatcher = server.dispatcher.clone();
    let session = Arc::new(dispatcher.open_session(&info, handle.clone()));

    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    let calls = Calls {
        dispatcher: dispatcher.clone(),
        session: session.clone(),
        handle,
        done: done_tx,
    };
    let slots = Arc::new(Semaphore::new(config.max_calls_per_client.max(1)));
    // Priority calls bypass `slots` but get their own equally sized pool, so a
    // client cannot start unbounded tasks by sending only priority calls.
    let priority_slots = Arc::new(Semaphore::new(config.max_calls_per_client.max(1)));
    let (queue_tx, queue_rx) = mpsc::channel::<Queued>(config.max_queued_calls_per_client.max(1));
    let scheduler = calls.spawn_scheduler(queue_rx, slots);

    let mut frames = FramedRead::new(rd, MessageCodec::new());
    loop {
        let frame = tokio::select! {
            biased;
            _ = abort.cancelled() => break,
            _ = graceful.cancelled() => break,
            f = frames.next() => f,
        };
        let frame = match frame {
            None => {
                tracing::debug!("client closed the connection");
                abort.cancel();
                break;
            }
            Some(Err(err)) => {
                tracing::warn!(error = %err, "closing connection");
                abort.cancel();
                break;
            }
            Some(Ok(frame)) => frame,
        };
        shared.activity.touch();
        let msg = match Message::from_frame(frame) {
            Ok(msg) => msg,
            Err(err) => {
                tracing::warn!(error = %err, "ignoring packet");
                continue;
            }
        };
        // Each arm that waits does so under `abort`, so a dead connection
        // never leaves the reader parked.
        match dispatch::classify(&*dispatcher, &session, &msg) {
            Action::Nothing => {}
            Action::Reply(reply) => {
                if outbound.send(reply).is_err() {
                    break;
                }
            }
            Action::Stream => {
                let routed = tokio::select! {
                    _ = abort.cancelled() => break,
                    r = shared.streams.route(&msg) => r,
                };
                if routed == Routed::NoStream {
                    tracing::debug!(
                        serial = msg.header.serial,
                        "dropping packet for unknown stream"
                    );
                }
            }
            Action::Call { priority: true } => {
                let slot = tokio::select! {
                    _ = abort.cancelled() => break,
                    p = priority_slots.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                };
                calls.spawn(msg.header, msg.payload, slot);
            }
            Action::Call { priority: false } => {
                let queued = Queued {
                    header: msg.header,
                    payload: msg.payload,
                };
                // A full queue parks the reader here: the socket is not read.
                let sent = tokio::select! {
                    _ = abort.cancelled() => break,
                    r = queue_tx.send(queued) => r,
                };
                if sent.is_err() {
                    break;
                }
            }
        }
    }

    drop(frames);
    drop(queue_tx);
    drop(calls);
    if !abort.is_cancelled() {
        // Graceful: queued and running calls finish, replies flush.
        tokio::select! {
            _ = abort.cancelled() => {}
            _ = async {
                let _ = scheduler.await;
                while done_rx.recv().await.is_some() {}
            } => {}
        }
        outbound.finish();
    } else {
        scheduler.abort();
    }
    match writer.await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => tracing::debug!(error = %err, "writer stopped"),
        Err(err) => tracing::error!(error = %err, "writer task failed"),
    }
    abort.cancel();
    shared.streams.clear();
    dispatcher.close_session(&session);
    tracing::info!("connection closed");
}
