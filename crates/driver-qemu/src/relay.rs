//! The local ends of a tunnelled migration: the socket pairs QEMU migrates
//! into and out of (`fd:`) and the tasks that move their bytes to and from
//! the daemon-to-daemon stream.
//!
//! ```text
//! source:      QEMU ──socket pair──▶ read into pool buffers ──▶ TunnelWriter (packets)
//! destination: TunnelReader (packets) ──write──▶ socket pair ──▶ QEMU
//! ```
//!
//! Packets are never copied in user space: the source reads QEMU's bytes
//! straight into the buffer that becomes the STREAM packet, and the
//! destination writes each received packet as it is. (Lending the received
//! pages to a pipe with `vmsplice` instead was tried and measured no
//! better: docs/benchmarks.md §3, "Tunnel data path".)

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use migrated_core::migration::{TunnelReader, TunnelWriter};
use migrated_core::{Error, Result};
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio_util::task::AbortOnDropHandle;
use tracing::debug;

/// Kernel buffer asked for on each end of the source's socket pair, so
/// QEMU and the relay rarely wait on each other (the default is ~200 KiB,
/// less than one packet in flight). The kernel caps it at
/// `net.core.[rw]mem_max`.
const SOCKBUF: libc::c_int = 4 * 1024 * 1024;

/// A running relay task: the bytes it relayed, or why it stopped. Dropping
/// it aborts the task, so a relay never outlives the step that started it
/// (a relay left waiting for QEMU would hold the tunnel open).
pub(crate) type Relay = AbortOnDropHandle<io::Result<u64>>;

/// Source: a socket pair for QEMU to migrate into, and the task relaying
/// what QEMU writes to `writer` until QEMU closes its end. Returns QEMU's
/// end.
///
/// # Errors
/// [`Error::System`] when the socket pair cannot be made.
pub(crate) fn outgoing(mut writer: TunnelWriter) -> Result<(OwnedFd, Relay)> {
    let (theirs, mut ours) = socket_pair()?;
    let relay = AbortOnDropHandle::new(tokio::spawn(async move {
        let n = writer.send_from(&mut ours).await?;
        writer.shutdown().await?;
        Ok(n)
    }));
    Ok((theirs, relay))
}

/// Destination: a socket pair for QEMU to migrate from, and the task
/// writing the packets of `reader` into it until the end of the tunnel.
/// Returns QEMU's end.
///
/// # Errors
/// [`Error::System`] when the socket pair cannot be made.
pub(crate) fn incoming(mut reader: TunnelReader) -> Result<(OwnedFd, Relay)> {
    let (theirs, mut ours) = socket_pair()?;
    let relay = AbortOnDropHandle::new(tokio::spawn(async move {
        let mut total = 0u64;
        while let Some(packet) = reader.next_packet().await? {
            ours.write_all(&packet).await?;
            total += packet.len() as u64;
        }
        // Our end closes with the task: QEMU's end of data.
        Ok(total)
    }));
    Ok((theirs, relay))
}

/// A socket pair with enlarged buffers: QEMU's end as a descriptor, ours
/// registered with the runtime.
fn socket_pair() -> Result<(OwnedFd, UnixStream)> {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair()
        .map_err(|e| Error::system("create socket pair", e))?;
    enlarge_buffers(&ours);
    enlarge_buffers(&theirs);
    ours.set_nonblocking(true)
        .map_err(|e| Error::system("set socket non-blocking", e))?;
    let ours = UnixStream::from_std(ours).map_err(|e| Error::system("register socket", e))?;
    Ok((OwnedFd::from(theirs), ours))
}

/// Asks for [`SOCKBUF`] send and receive buffers on `sock`. Best effort: a
/// smaller buffer only costs throughput.
fn enlarge_buffers(sock: &impl AsRawFd) {
    for opt in [libc::SO_SNDBUF, libc::SO_RCVBUF] {
        let size = SOCKBUF;
        // SAFETY: a valid socket descriptor and a c_int option value of the
        // length passed.
        let rc = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                std::ptr::from_ref(&size).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            debug!(error = %io::Error::last_os_error(), opt, "could not enlarge a tunnel socket buffer");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use bytes::Bytes;

    use super::*;

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_packet_reaches_qemu_intact_while_it_lags() {
        let (tx, reader) = TunnelReader::channel();
        let (theirs, relay) = incoming(reader).expect("pipe");
        // QEMU's side: a slow blocking reader, so the socket fills up.
        let qemu = std::thread::spawn(move || {
            let mut file = std::os::unix::net::UnixStream::from(theirs);
            let mut out = Vec::new();
            let mut buf = vec![0u8; 100_000];
            loop {
                std::thread::sleep(std::time::Duration::from_micros(200));
                match file.read(&mut buf) {
                    Ok(0) => return out,
                    Ok(n) => out.extend_from_slice(&buf[..n]),
                    Err(e) => panic!("read: {e}"),
                }
            }
        });
        let mut expected = Vec::new();
        for seed in 0..40u8 {
            let data = pattern(256 * 1024 - usize::from(seed), seed);
            expected.extend_from_slice(&data);
            tx.send(Ok(Bytes::from(data))).await.expect("send");
        }
        drop(tx);
        let got = tokio::task::spawn_blocking(move || qemu.join().expect("reader"))
            .await
            .expect("join");
        let end = relay.await.expect("relay");
        assert_eq!(end.expect("relay result"), expected.len() as u64);
        assert!(
            got == expected,
            "the bytes QEMU read differ from those sent"
        );
    }

    #[tokio::test]
    async fn a_failed_tunnel_ends_the_relay_with_its_error_and_closes_qemus_input() {
        let (tx, reader) = TunnelReader::channel();
        let (theirs, relay) = incoming(reader).expect("pipe");
        tx.send(Ok(Bytes::from_static(b"partial")))
            .await
            .expect("send");
        tx.send(Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "gone",
        )))
        .await
        .expect("send");
        let end = relay.await.expect("relay");
        assert_eq!(
            end.expect_err("aborted").kind(),
            io::ErrorKind::ConnectionAborted
        );
        let mut file = std::os::unix::net::UnixStream::from(theirs);
        let mut out = Vec::new();
        file.read_to_end(&mut out).expect("read to the end");
        assert_eq!(out, b"partial");
    }

    #[tokio::test]
    async fn the_socket_pair_relays_until_qemu_closes_its_end() {
        let (writer, mut packets) = TunnelWriter::channel();
        let (theirs, relay) = outgoing(writer).expect("socket pair");
        let data = pattern(3 * 256 * 1024 + 11, 7);
        let sent = data.clone();
        let qemu = std::thread::spawn(move || {
            use std::io::Write;
            let mut sock = std::os::unix::net::UnixStream::from(theirs);
            sock.write_all(&sent).expect("write");
        });
        let mut got = Vec::new();
        while let Some(packet) = packets.recv().await {
            got.extend_from_slice(&packet);
        }
        qemu.join().expect("writer");
        let end = relay.await.expect("relay");
        assert_eq!(end.expect("relay result"), data.len() as u64);
        assert!(got == data);
    }
}
