//! What the server does with one decoded packet, and running one call
//! (libvirt `virnetserverprogram.c`'s checks, in our own shape).

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::FutureExt;
use tracing::Instrument;

use super::context::ConnHandle;
use super::{CallContext, Dispatcher, Lookup};
use crate::error::WireError;
use crate::header::{Header, Message, MessageStatus, MessageType};
use crate::keepalive;

/// Decision for one incoming packet.
#[derive(Debug)]
pub(crate) enum Action {
    /// Queue this reply (keepalive PONG, protocol error).
    Reply(Message),
    /// Run the call; `priority` bypasses the call limit.
    Call { priority: bool },
    /// Route to a stream.
    Stream,
    /// Nothing to do (keepalive PONG received, ignored packet).
    Nothing,
}

/// The ERROR reply for `call` carrying `err`.
pub(crate) fn error_reply(call: &Header, err: &WireError) -> Message {
    Message::new(call.reply(MessageStatus::Error), err.encode())
}

/// Classifies a packet from a client.
pub(crate) fn classify<D: Dispatcher>(
    dispatcher: &D,
    session: &D::Session,
    msg: &Message,
) -> Action {
    let h = &msg.header;
    if h.prog == keepalive::KEEPALIVE_PROGRAM && h.type_ == MessageType::Message {
        return match h.proc_ {
            keepalive::PROC_PING => Action::Reply(keepalive::message(keepalive::PROC_PONG)),
            keepalive::PROC_PONG => Action::Nothing,
            other => {
                tracing::warn!(proc = other, "unknown keepalive procedure, ignored");
                Action::Nothing
            }
        };
    }
    match h.type_ {
        MessageType::Call => {}
        MessageType::Stream => return Action::Stream,
        // A caller waits for an answer; we never offer descriptor passing.
        MessageType::CallWithFds => {
            return Action::Reply(error_reply(
                h,
                &WireError::rpc("file descriptor passing is not supported"),
            ))
        }
        other => {
            // Documented choice: ignore, keep the connection.
            tracing::warn!(
                prog = h.prog,
                proc = h.proc_,
                serial = h.serial,
                type_ = ?other,
                "unexpected message type from client, ignored"
            );
            return Action::Nothing;
        }
    }
    if !dispatcher
        .programs()
        .iter()
        .any(|&(p, v)| p == h.prog && v == h.vers)
    {
        return Action::Reply(error_reply(
            h,
            &WireError::rpc(format!(
                "cannot find program {:#010x} version {}",
                h.prog, h.vers
            )),
        ));
    }
    if h.status != MessageStatus::Ok {
        return Action::Reply(error_reply(
            h,
            &WireError::rpc(format!("unexpected message status {}", h.status as i32)),
        ));
    }
    match dispatcher.lookup(session, h) {
        Lookup::Call { priority } => Action::Call { priority },
        Lookup::Reject(err) => Action::Reply(error_reply(h, &err)),
    }
}

/// Runs one call and queues its reply under the call's serial.
pub(crate) async fn run_call<D: Dispatcher>(
    dispatcher: Arc<D>,
    session: Arc<D::Session>,
    handle: ConnHandle,
    header: Header,
    payload: Bytes,
) {
    let span = tracing::debug_span!(
        "call",
        prog = header.prog,
        proc = header.proc_,
        serial = header.serial
    );
    let replied = Arc::new(AtomicBool::new(false));
    let ctx = CallContext {
        header,
        info: handle.shared.info.clone(),
        handle: handle.clone(),
        replied: replied.clone(),
    };
    let outcome = AssertUnwindSafe(dispatcher.call(session, ctx, payload))
        .catch_unwind()
        .instrument(span)
        .await;
    let reply = match outcome {
        Ok(Ok(ret)) if ret.len() <= crate::codec::PAYLOAD_MAX => {
            Message::new(header.reply(MessageStatus::Ok), ret)
        }
        Ok(Ok(ret)) => {
            tracing::error!(
                proc = header.proc_,
                len = ret.len(),
                "reply exceeds the message limit"
            );
            error_reply(
                &header,
                &WireError::rpc("reply exceeds the maximum message size"),
            )
        }
        Ok(Err(err)) => error_reply(&header, &err),
        Err(_) => {
            tracing::error!(
                proc = header.proc_,
                serial = header.serial,
                "call handler panicked"
            );
            error_reply(
                &header,
                &WireError::internal("internal error while handling the call"),
            )
        }
    };
    let ok = reply.header.status == MessageStatus::Ok;
    if handle.shared.outbound.send(reply).is_err() {
        tracing::debug!(serial = header.serial, "reply dropped: connection closed");
    } else if ok {
        replied.store(true, Ordering::Release);
    }
}
