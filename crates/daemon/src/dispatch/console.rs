//! DOMAIN_OPEN_CONSOLE (`virsh console`): the driver's [`Console`] relayed
//! over the call's stream, in both directions (libvirt-wire.md §8.4).
//!
//! ```text
//! console output ──▶ STREAM CONTINUE … to the client
//! STREAM CONTINUE ──▶ console input (what the user types; up to 64 KiB
//!                     waits for a guest that is not reading, more is dropped)
//! STREAM OK / ERROR from the client → acknowledged, session ends
//! connection gone                   → session ends
//! console EOF or error (the guest stopped)
//!                                   → empty CONTINUE (end of data), then
//!                                     the client's STREAM OK is answered
//! taken over by a FORCE open        → STREAM ERROR (VIR_ERR_RPC, "stream
//!                                     had unexpected termination"), as
//!                                     libvirtd's stream of an aborted device
//! ```
//!
//! Dropping the [`Console`] at the end releases the device for the next
//! client, before the client's STREAM OK is answered.

use bytes::{Buf, Bytes, BytesMut};
use migrated_core::console::Console;
use migrated_proto::DomainOpenConsoleArgs;
use migrated_rpc::stream::StreamEvent;
use migrated_rpc::{CallContext, ServerStream, WireError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::from_wire_dom;
use crate::handler::Session;
use crate::wire::to_wire_error;

/// Largest read from the console per STREAM packet.
const CHUNK: usize = 64 * 1024;
/// Most typed input held for a guest that does not read it yet.
const INPUT_MAX: usize = 64 * 1024;

/// DOMAIN_OPEN_CONSOLE.
///
/// # Errors
/// The driver's error: NO_DOMAIN, OPERATION_INVALID when the guest is not
/// running, INTERNAL_ERROR for an unknown device or one that is not a pty,
/// OPERATION_FAILED when another client holds it (without FORCE).
pub async fn open_console(
    session: &Session,
    ctx: &CallContext,
    args: DomainOpenConsoleArgs,
) -> Result<(), WireError> {
    let console = session
        .driver()?
        .driver
        .open_console(
            &from_wire_dom(&args.dom),
            args.dev_name.as_deref(),
            args.flags,
        )
        .await
        .map_err(|e| to_wire_error(&e))?;
    tokio::spawn(relay(ctx.open_stream(), console));
    Ok(())
}

async fn relay(mut stream: ServerStream, mut console: Console) {
    let mut buf = BytesMut::with_capacity(CHUNK);
    // Typed input the guest has not taken yet: the stream is read on
    // regardless (a guest that stops reading its serial port must not stall
    // the client's connection or a takeover), and input beyond the bound
    // is dropped, as a terminal drops what overflows its input buffer.
    let mut pending = BytesMut::new();
    let mut output_open = true;
    let mut acknowledge = false;
    let outcome = loop {
        tokio::select! {
            // A takeover wins over pending data in either direction.
            biased;
            () = console.claim.ended() => {
                let err = WireError::new(
                    migrated_rpc::error::VIR_ERR_RPC,
                    migrated_rpc::error::VIR_FROM_STREAMS,
                    "stream had unexpected termination",
                );
                break stream.finish_error(err).await;
            }
            event = stream.recv() => match event {
                Some(StreamEvent::Data(data)) => {
                    let room = INPUT_MAX.saturating_sub(pending.len());
                    if data.len() > room {
                        tracing::debug!(dropped = data.len() - room, "console input buffer full");
                    }
                    pending.extend_from_slice(&data[..data.len().min(room)]);
                }
                // Both are acknowledged, as the tunnelled migration's are.
                Some(StreamEvent::Finish | StreamEvent::Abort(_)) => {
                    acknowledge = true;
                    break Ok(());
                }
                None => break Ok(()),
            },
            // Cancel-safe: a write that loses the race wrote nothing.
            written = console.input.write(&pending), if !pending.is_empty() => match written {
                Ok(n) => pending.advance(n),
                // The guest is gone: the output side reports the end.
                Err(_) => pending.clear(),
            },
            read = console.output.read_buf(&mut buf), if output_open => match read {
                Ok(n) if n > 0 => {
                    let data: Bytes = buf.split().freeze();
                    if let Err(e) = stream.send_data(data).await {
                        break Err(e);
                    }
                    buf.reserve(CHUNK);
                }
                // EOF, or EIO from a pty whose other end closed (the guest
                // stopped): end of data, then the client's STREAM OK.
                _ => {
                    output_open = false;
                    if let Err(e) = stream.send_eof().await {
                        break Err(e);
                    }
                }
            },
        }
    };
    // The device is released before the client hears that its session is
    // over: a client that opens the console again right after its finish
    // returns must find it free (as libvirtd, which closes the device first).
    drop(console);
    let outcome = if acknowledge {
        stream.finish_ok().await
    } else {
        outcome
    };
    if let Err(e) = outcome {
        tracing::debug!(error = %e, "console stream ended with an error");
    }
}
