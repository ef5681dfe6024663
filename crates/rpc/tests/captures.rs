//! Wire identity against real libvirt 9.0 traffic (the shared captures):
//! every captured message frames and re-encodes byte for byte, every
//! captured `remote_error` round-trips, our keepalive packets equal
//! libvirtd's, and a captured tunnelled-migration stream replayed into our
//! server is answered with libvirtd's exact bytes, and our client replaying
//! virsh's calls sends virsh's exact bytes (serials included).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use migrated_rpc::codec::encode_message;
use migrated_rpc::keepalive::{self, PROC_PING, PROC_PONG};
use migrated_rpc::{
    CallContext, ConnHandle, ConnInfo, Dispatcher, Header, Listener, Lookup, Message, MessageCodec,
    MessageStatus, MessageType, Server, ServerConfig, StreamEvent, WireError,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::codec::Decoder;

fn captures_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("MIGRATED_CAPTURES") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/captures"),
    };
    if dir.is_dir() {
        return Some(dir);
    }
    let msg = format!(
        "SKIPPED: libvirt captures not found at {} (set MIGRATED_CAPTURES)",
        dir.display()
    );
    assert!(std::env::var_os("CI").is_none(), "{msg}");
    eprintln!("{msg}");
    None
}

fn all_bins(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for scenario in std::fs::read_dir(dir).expect("captures dir").flatten() {
        if !scenario.path().is_dir() {
            continue;
        }
        for f in std::fs::read_dir(scenario.path())
            .expect("scenario dir")
            .flatten()
        {
            if f.path().extension().is_some_and(|e| e == "bin") {
                out.push(f.path());
            }
        }
    }
    out.sort();
    out
}

fn decode_one(bytes: &[u8]) -> Message {
    let mut buf = BytesMut::from(bytes);
    let frame = MessageCodec::new()
        .decode(&mut buf)
        .expect("valid frame")
        .expect("complete frame");
    assert!(buf.is_empty(), "one message per file");
    Message::from_frame(frame).expect("valid header")
}

#[test]
fn every_captured_message_frames_and_reencodes_identically() {
    let Some(dir) = captures_dir() else { return };
    let bins = all_bins(&dir);
    assert!(
        bins.len() > 100,
        "expected the capture set, found {} files",
        bins.len()
    );
    let mut errors = 0;
    for path in bins {
        let bytes = std::fs::read(&path).expect("read capture");
        let msg = decode_one(&bytes);
        if msg.header.status == MessageStatus::Error && !msg.payload.is_empty() {
            let err = WireError::decode(&msg.payload)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(
                err.encode(),
                msg.payload,
                "{}: remote_error re-encoding differs",
                path.display()
            );
            errors += 1;
        }
        let again = encode_message(msg).expect("encode");
        assert_eq!(&again[..], &bytes[..], "{}", path.display());
    }
    assert!(errors > 0, "no captured ERROR reply was checked");
}

#[test]
fn our_keepalive_packets_equal_libvirtds() {
    let Some(dir) = captures_dir() else { return };
    let ka = dir.join("keepalive");
    let ping =
        std::fs::read(ka.join("021-hostB-hostA-p6b656570-1-t2-s0.bin")).expect("captured ping");
    let pong =
        std::fs::read(ka.join("022-hostA-hostB-p6b656570-2-t2-s0.bin")).expect("captured pong");
    assert_eq!(
        &encode_message(keepalive::message(PROC_PING)).expect("encode")[..],
        &ping[..]
    );
    assert_eq!(
        &encode_message(keepalive::message(PROC_PONG)).expect("encode")[..],
        &pong[..]
    );
}

/// Plays hostB for PREPARE_TUNNEL3_PARAMS: replies with the captured cookie
/// and confirms the end of the stream.
struct TunnelSink {
    reply: Bytes,
    received: Arc<AtomicU64>,
}

impl Dispatcher for TunnelSink {
    type Session = ();

    fn open_session(&self, _info: &ConnInfo, _handle: ConnHandle) {}

    fn lookup(&self, _session: &(), header: &Header) -> Lookup {
        if header.proc_ == 304 {
            Lookup::Call { priority: false }
        } else {
            Lookup::Reject(WireError::rpc(format!(
                "unknown procedure: {}",
                header.proc_
            )))
        }
    }

    async fn call(
        &self,
        _session: Arc<()>,
        ctx: CallContext,
        _payload: Bytes,
    ) -> Result<Bytes, WireError> {
        let mut stream = ctx.open_stream();
        let received = self.received.clone();
        tokio::spawn(async move {
            while let Some(ev) = stream.recv().await {
                match ev {
                    StreamEvent::Data(b) => {
                        received.fetch_add(b.len() as u64, Ordering::SeqCst);
                    }
                    StreamEvent::Finish => {
                        let _ = stream.finish_ok().await;
                        return;
                    }
                    StreamEvent::Abort(_) => return,
                }
            }
        });
        Ok(self.reply.clone())
    }
}

async fn read_message(sock: &mut tokio::net::TcpStream) -> Vec<u8> {
    let mut len = [0u8; 4];
    sock.read_exact(&mut len).await.expect("length word");
    let mut rest = vec![0u8; u32::from_be_bytes(len) as usize - 4];
    sock.read_exact(&mut rest).await.expect("message body");
    [len.to_vec(), rest].concat()
}

#[tokio::test]
async fn replayed_tunnelled_migration_stream_gets_libvirtds_answers() {
    let Some(dir) = captures_dir() else { return };
    let d = dir.join("migrate-p2p-tunnelled");
    let read = |name: &str| std::fs::read(d.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let captured_reply = read("020-hostB-hostA-p20008086-304-t1-s0.bin");
    let captured_end = read("040-hostB-hostA-p20008086-304-t3-s0.bin");
    let reply_payload = decode_one(&captured_reply).payload;

    let received = Arc::new(AtomicU64::new(0));
    let sink = TunnelSink {
        reply: reply_payload,
        received: received.clone(),
    };
    let listener = Listener::bind_tcp("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = Server::new(ServerConfig::default(), Arc::new(sink));
    let s = server.clone();
    tokio::spawn(async move { s.serve(listener).await });

    let mut sock = tokio::net::TcpStream::connect(addr).await.expect("connect");
    sock.write_all(&read("019-hostA-hostB-p20008086-304-t0-s0.bin"))
        .await
        .expect("call");
    let reply = tokio::time::timeout(Duration::from_secs(5), read_message(&mut sock))
        .await
        .expect("reply");
    assert_eq!(reply, captured_reply, "REPLY differs from libvirtd's");

    let mut data = 0u64;
    for name in [
        "021-hostA-hostB-p20008086-304-t3-s2.bin",
        "022-hostA-hostB-p20008086-304-t3-s2.bin",
        "023-hostA-hostB-p20008086-304-t3-s2.bin",
        "037-hostA-hostB-p20008086-304-t3-s2.bin",
        "038-hostA-hostB-p20008086-304-t3-s2.bin",
    ] {
        let bytes = read(name);
        data += decode_one(&bytes).payload.len() as u64;
        sock.write_all(&bytes).await.expect("stream data");
    }
    sock.write_all(&read("039-hostA-hostB-p20008086-304-t3-s0.bin"))
        .await
        .expect("stream end");
    let end = tokio::time::timeout(Duration::from_secs(5), read_message(&mut sock))
        .await
        .expect("stream end");
    assert_eq!(
        end, captured_end,
        "stream confirmation differs from libvirtd's"
    );
    assert_eq!(received.load(Ordering::SeqCst), data);
    let end_msg = decode_one(&end);
    assert_eq!(
        (end_msg.header.type_, end_msg.header.serial),
        (MessageType::Stream, 9)
    );
}

#[tokio::test]
async fn our_client_sends_virshs_exact_bytes() {
    let Some(dir) = captures_dir() else { return };
    let d = dir.join("handshake-version");
    let mut names: Vec<String> = std::fs::read_dir(&d)
        .expect("scenario dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".bin"))
        .collect();
    names.sort();
    let read = |name: &str| std::fs::read(d.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let calls: Vec<Vec<u8>> = names
        .iter()
        .filter(|n| n.contains("-client-hostA-"))
        .map(|n| read(n))
        .collect();
    let replies: Vec<Vec<u8>> = names
        .iter()
        .filter(|n| n.contains("-hostA-client-"))
        .map(|n| read(n))
        .collect();
    assert_eq!(calls.len(), replies.len());

    // plays libvirtd: checks each call byte for byte, answers with the captured reply
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (expected, answers) = (calls.clone(), replies.clone());
    let fake = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.expect("accept");
        for (want, answer) in expected.iter().zip(&answers) {
            let got = read_message(&mut sock).await;
            assert_eq!(&got, want, "call differs from virsh's");
            sock.write_all(answer).await.expect("reply");
        }
    });

    let tcp = migrated_rpc::transport::tcp::connect(&addr.to_string())
        .await
        .expect("connect");
    let client = migrated_rpc::RpcClient::new(tcp, migrated_rpc::ClientConfig::default());
    for (call, reply) in calls.iter().zip(&replies) {
        let call = decode_one(call);
        let ret = client
            .call(
                call.header.prog,
                call.header.vers,
                call.header.proc_,
                call.payload.to_vec(),
            )
            .await
            .expect("captured reply");
        assert_eq!(ret, decode_one(reply).payload);
    }
    tokio::time::timeout(Duration::from_secs(5), fake)
        .await
        .expect("fake server done")
        .expect("join");
}
