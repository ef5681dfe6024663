//! Streams: upload with back-pressure, download, finish errors, abort.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use migrated_rpc::server::REMOTE_PROGRAM;
use migrated_rpc::Error;

const T: Duration = Duration::from_secs(30);
const MIB: u64 = 1 << 20;

#[tokio::test]
async fn upload_of_many_mib_arrives_intact_with_back_pressure() {
    let toy = Toy::default();
    toy.upload_gated.store(true, Ordering::SeqCst);
    let srv = spawn_server_with(config(), toy).await;
    let toy = srv.toy().clone();
    let c = client(srv.addr).await;
    let (_, mut stream) = c
        .call_with_stream(REMOTE_PROGRAM, 1, UPLOAD, vec![])
        .await
        .expect("open");

    let total = 64 * MIB;
    let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let producer = {
        let sent = sent.clone();
        tokio::spawn(async move {
            let mut sum = 0u64;
            let mut off = 0u64;
            while off < total {
                let chunk = pattern(off, MIB as usize);
                sum = checksum(sum, &chunk);
                stream.send(chunk).await?;
                off += MIB;
                sent.store(off, Ordering::SeqCst);
            }
            stream.finish().await.map(|()| sum)
        })
    };
    // The consumer reads nothing yet: the producer must come to a stop
    // (buffers full, the server no longer reads the socket, as libvirtd)
    // well short of the total.
    let mut stalled_at = sent.load(Ordering::SeqCst);
    let mut stable = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = sent.load(Ordering::SeqCst);
        if now == stalled_at && now > 0 {
            stable = true;
            break;
        }
        stalled_at = now;
    }
    assert!(stable, "producer never stalled (at {stalled_at} bytes)");
    assert!(
        stalled_at < 40 * MIB,
        "no back-pressure: {stalled_at} bytes accepted"
    );
    assert!(!producer.is_finished());

    toy.upload_gate.add_permits(usize::MAX >> 4);
    let sum = within(T, producer)
        .await
        .expect("join")
        .expect("upload finished ok");
    let state = toy.upload.lock().expect("lock").clone();
    assert!(state.finished);
    assert_eq!(state.bytes, total);
    assert_eq!(state.checksum, sum);
}

#[tokio::test]
async fn calls_interleave_with_a_running_upload() {
    let srv = spawn_server(config()).await;
    let c = client(srv.addr).await;
    let (_, mut stream) = c
        .call_with_stream(REMOTE_PROGRAM, 1, UPLOAD, vec![])
        .await
        .expect("open");
    let producer = tokio::spawn(async move {
        for i in 0..48u64 {
            stream.send(pattern(i * MIB, MIB as usize)).await?;
        }
        stream.finish().await
    });
    // Calls complete while the stream is running: they are not queued
    // behind the whole stream, only behind what TCP already buffered.
    let mut served_during_upload = 0;
    while !producer.is_finished() {
        c.call(REMOTE_PROGRAM, 1, ECHO, vec![0; 64])
            .await
            .expect("echo");
        if !producer.is_finished() {
            served_during_upload += 1;
        }
    }
    within(T, producer).await.expect("join").expect("upload ok");
    assert!(
        served_during_upload >= 2,
        "calls starved by the stream ({served_during_upload} served)"
    );
    assert_eq!(srv.toy().upload.lock().expect("lock").bytes, 48 * MIB);
}

#[tokio::test]
async fn server_error_at_finish_reaches_the_client() {
    let srv = spawn_server(config()).await;
    let c = client(srv.addr).await;
    let (_, mut stream) = c
        .call_with_stream(REMOTE_PROGRAM, 1, UPLOAD_FAIL, vec![])
        .await
        .expect("open");
    stream.send(pattern(0, 1000).clone()).await.expect("send");
    match within(T, stream.finish()).await {
        Err(Error::Remote(e)) => {
            assert_eq!((e.code, e.message.as_deref()), (9, Some("sink failed")))
        }
        other => panic!("expected remote error, got {other:?}"),
    }
    // connection still fine
    c.call(REMOTE_PROGRAM, 1, ECHO, vec![]).await.expect("echo");
}

#[tokio::test]
async fn client_abort_is_seen_by_the_server_and_confirmed() {
    let srv = spawn_server(config()).await;
    let c = client(srv.addr).await;
    let (_, mut stream) = c
        .call_with_stream(REMOTE_PROGRAM, 1, UPLOAD, vec![])
        .await
        .expect("open");
    stream.send(pattern(0, 4096)).await.expect("send");
    within(T, stream.abort()).await.expect("abort confirmed");
    let state = srv.toy().upload.lock().expect("lock").clone();
    assert!(state.aborted && !state.finished);
    assert_eq!(state.bytes, 4096);
}

#[tokio::test]
async fn download_stream_delivers_server_data_in_order() {
    let srv = spawn_server(config()).await;
    let c = client(srv.addr).await;
    let size = 10 * MIB + 123;
    let (_, mut stream) = c
        .call_with_stream(
            REMOTE_PROGRAM,
            1,
            DOWNLOAD,
            (size as u32).to_be_bytes().to_vec(),
        )
        .await
        .expect("open");
    let mut got = Vec::new();
    while let Some(chunk) = within(T, stream.recv()).await.expect("recv") {
        assert!(chunk.len() <= migrated_rpc::stream::STREAM_CHUNK);
        got.extend_from_slice(&chunk);
    }
    assert_eq!(got.len() as u64, size);
    assert_eq!(&got[..], &pattern(0, size as usize)[..]);
    within(T, stream.finish())
        .await
        .expect("finish handshake confirmed");
}

#[tokio::test]
async fn failed_stream_call_opens_no_stream() {
    let srv = spawn_server(config()).await;
    let c = client(srv.addr).await;
    assert!(matches!(
        c.call_with_stream(REMOTE_PROGRAM, 1, FAIL, vec![]).await,
        Err(Error::Remote(_))
    ));
    c.call(REMOTE_PROGRAM, 1, ECHO, vec![]).await.expect("echo");
}

#[tokio::test]
async fn a_stream_dropped_by_the_server_fails_the_clients_finish() {
    let srv = spawn_server(config()).await;
    let c = client(srv.addr).await;
    let (_, mut stream) = c
        .call_with_stream(REMOTE_PROGRAM, 1, UPLOAD_DROP, vec![])
        .await
        .expect("open");
    stream.send(pattern(0, 100)).await.expect("send");
    match within(T, stream.finish()).await {
        Err(Error::Remote(e)) => assert_eq!(e.code, migrated_rpc::error::VIR_ERR_OPERATION_ABORTED),
        other => panic!("expected the server's abort, got {other:?}"),
    }
}

#[tokio::test]
async fn a_failed_call_sends_no_stream_packet() {
    let srv = spawn_server(config()).await;
    let mut raw = Raw::connect(srv.addr).await;
    raw.call(STREAM_THEN_FAIL, 4, b"").await;
    let reply = raw.read_within(T).await.expect("reply");
    assert!(is_reply(&reply, 4, migrated_rpc::MessageStatus::Error));
    raw.call(ECHO, 5, b"").await;
    let next = raw.read_within(T).await.expect("echo reply");
    assert!(
        is_reply(&next, 5, migrated_rpc::MessageStatus::Ok),
        "unexpected {next:?}"
    );
}
