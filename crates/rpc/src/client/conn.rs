//! The client's reader task.

use std::sync::{Arc, PoisonError};

use futures::StreamExt;
use tokio::io::AsyncRead;
use tokio_util::codec::FramedRead;

use super::Inner;
use crate::codec::MessageCodec;
use crate::header::{Message, MessageType};
use crate::keepalive;
use crate::stream::Routed;

/// Reads packets until EOF, a framing error, or `abort`; then fails every
/// pending call and drops every stream.
pub(crate) async fn read_loop<R: AsyncRead + Send + Unpin>(inner: Arc<Inner>, rd: R) {
    let mut frames = FramedRead::new(rd, MessageCodec::new());
    loop {
        let frame = tokio::select! {
            _ = inner.abort.cancelled() => break,
            f = frames.next() => f,
        };
        let frame = match frame {
            None => {
                inner.set_close_reason("connection closed by the server".into());
                break;
            }
            Some(Err(err)) => {
                tracing::warn!(error = %err, "closing connection");
                inner.set_close_reason(err.to_string());
                break;
            }
            Some(Ok(f)) => f,
        };
        inner.activity.touch();
        let msg = match Message::from_frame(frame) {
            Ok(m) => m,
            Err(err) => {
                tracing::warn!(error = %err, "ignoring packet");
                continue;
            }
        };
        handle(&inner, msg).await;
    }
    inner.abort.cancel();
    inner.pending.close();
    inner.streams.clear();
    inner
        .events
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
}

async fn handle(inner: &Inner, msg: Message) {
    let h = msg.header;
    if h.prog == keepalive::KEEPALIVE_PROGRAM && h.type_ == MessageType::Message {
        if h.proc_ == keepalive::PROC_PING {
            let _ = inner
                .outbound
                .send(keepalive::message(keepalive::PROC_PONG));
        }
        return;
    }
    match h.type_ {
        MessageType::Reply | MessageType::ReplyWithFds => {
            if !inner.pending.complete(msg) {
                tracing::debug!(serial = h.serial, "reply for no pending call, dropped");
            }
        }
        MessageType::Message => {
            let tx = inner
                .events
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            match tx {
                Some(tx) => {
                    if tx.try_send(msg).is_err() {
                        tracing::warn!(proc = h.proc_, "event queue full or closed, event dropped");
                    }
                }
                None => tracing::debug!(proc = h.proc_, "event without subscriber, dropped"),
            }
        }
        MessageType::Stream => {
            let routed = tokio::select! {
                _ = inner.abort.cancelled() => return,
                r = inner.streams.route(&msg) => r,
            };
            if routed == Routed::NoStream {
                tracing::debug!(serial = h.serial, "packet for unknown stream, dropped");
            }
        }
        other => {
            tracing::warn!(type_ = ?other, serial = h.serial, "unexpected message type from server, ignored")
        }
    }
}
