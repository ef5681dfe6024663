//! Framing and protocol-violation handling, with raw-byte clients.

mod common;

use std::time::Duration;

use bytes::BufMut;
use common::*;
use migrated_rpc::error::{VIR_ERR_RPC, VIR_FROM_RPC};
use migrated_rpc::keepalive::{KEEPALIVE_PROGRAM, PROC_PING, PROC_PONG};
use migrated_rpc::server::REMOTE_PROGRAM;
use migrated_rpc::{MessageStatus, MessageType, WireError};
use tokio::io::AsyncWriteExt;

const T: Duration = Duration::from_secs(5);

async fn good_client_is_served(addr: std::net::SocketAddr) {
    let mut raw = Raw::connect(addr).await;
    raw.call(ECHO, 77, b"ping").await;
    let reply = raw.read_within(T).await.expect("echo reply");
    assert!(is_reply(&reply, 77, MessageStatus::Ok));
    assert_eq!(&reply.payload[..], b"ping");
}

#[tokio::test]
async fn length_below_header_size_closes_only_that_connection() {
    let srv = spawn_server(config()).await;
    let mut bystander = Raw::connect(srv.addr).await;
    let mut bad = Raw::connect(srv.addr).await;
    bad.stream
        .write_all(&20u32.to_be_bytes())
        .await
        .expect("write");
    bad.stream.write_all(&[0u8; 20]).await.expect("write");
    assert!(bad.closed_within(T).await);
    bystander.call(ECHO, 1, b"").await;
    assert!(is_reply(
        &bystander.read_within(T).await.expect("reply"),
        1,
        MessageStatus::Ok
    ));
    good_client_is_served(srv.addr).await;
}

#[tokio::test]
async fn length_above_32_mib_closes_connection_without_buffering() {
    let srv = spawn_server(config()).await;
    let mut bad = Raw::connect(srv.addr).await;
    let too_long = 33_554_432u32 + 4 + 1;
    bad.stream
        .write_all(&too_long.to_be_bytes())
        .await
        .expect("write");
    assert!(bad.closed_within(T).await);
    good_client_is_served(srv.addr).await;
}

#[tokio::test]
async fn largest_legal_frame_is_accepted() {
    let srv = spawn_server(config()).await;
    let mut raw = Raw::connect(srv.addr).await;
    let payload = vec![0x5au8; 33_554_432 - 24];
    raw.call(ECHO, 3, &payload).await;
    let reply = raw
        .read_within(Duration::from_secs(30))
        .await
        .expect("reply");
    assert!(is_reply(&reply, 3, MessageStatus::Ok));
    assert_eq!(reply.payload.len(), payload.len());
}

#[tokio::test]
async fn truncated_frame_then_close_releases_the_connection() {
    let srv = spawn_server(config()).await;
    {
        let mut bad = Raw::connect(srv.addr).await;
        bad.stream
            .write_all(&100u32.to_be_bytes())
            .await
            .expect("write");
        bad.stream.write_all(&[1u8; 30]).await.expect("write");
        bad.stream.shutdown().await.expect("shutdown");
        assert!(bad.closed_within(T).await);
    }
    assert!(wait_until(T, || srv.server.connection_count() == 0).await);
    assert!(
        wait_until(T, || srv
            .toy()
            .closed
            .load(std::sync::atomic::Ordering::SeqCst)
            == 1)
        .await
    );
    good_client_is_served(srv.addr).await;
}

#[tokio::test]
async fn unknown_program_gets_rpc_error_with_the_call_serial() {
    let srv = spawn_server(config()).await;
    let mut raw = Raw::connect(srv.addr).await;
    raw.send_frame(header(0x1234_5678, 1, 0, 42, 0), b"").await;
    let reply = raw.read_within(T).await.expect("reply");
    assert!(is_reply(&reply, 42, MessageStatus::Error));
    let err = WireError::decode(&reply.payload).expect("remote_error");
    assert_eq!((err.code, err.domain), (VIR_ERR_RPC, VIR_FROM_RPC));
    let text = err.message.unwrap_or_default();
    assert!(
        text.contains("cannot find program 0x12345678 version 1"),
        "{text}"
    );
    good_client_is_served(srv.addr).await;
}

#[tokio::test]
async fn unknown_procedure_is_rejected_by_the_dispatcher() {
    let srv = spawn_server(config()).await;
    let mut raw = Raw::connect(srv.addr).await;
    raw.call(999, 5, b"").await;
    let reply = raw.read_within(T).await.expect("reply");
    assert!(is_reply(&reply, 5, MessageStatus::Error));
    let err = WireError::decode(&reply.payload).expect("remote_error");
    assert_eq!(err.code, VIR_ERR_RPC);
    assert_eq!(err.message.as_deref(), Some("unknown procedure: 999"));
}

#[tokio::test]
async fn call_with_non_ok_status_gets_rpc_error() {
    let srv = spawn_server(config()).await;
    let mut raw = Raw::connect(srv.addr).await;
    raw.send_frame(header(REMOTE_PROGRAM, ECHO, 0, 9, 2), b"")
        .await;
    let reply = raw.read_within(T).await.expect("reply");
    assert!(is_reply(&reply, 9, MessageStatus::Error));
    let err = WireError::decode(&reply.payload).expect("remote_error");
    assert_eq!((err.code, err.domain), (VIR_ERR_RPC, VIR_FROM_RPC));
    // the call was not run
    assert_eq!(srv.toy().serials.lock().expect("lock").len(), 0);
}

#[tokio::test]
async fn non_call_packets_are_ignored_and_the_connection_kept() {
    let srv = spawn_server(config()).await;
    let mut raw = Raw::connect(srv.addr).await;
    // REPLY, MESSAGE, REPLY_WITH_FDS, STREAM_HOLE and an undefined type 9
    for (i, ty) in [1, 2, 5, 6, 9].into_iter().enumerate() {
        raw.send_frame(header(REMOTE_PROGRAM, ECHO, ty, 100 + i as u32, 0), b"xxxx")
            .await;
    }
    // undefined status word
    raw.send_frame(header(REMOTE_PROGRAM, ECHO, 0, 200, 7), b"")
        .await;
    raw.call(ECHO, 1, b"after").await;
    let reply = raw.read_within(T).await.expect("reply");
    assert!(
        is_reply(&reply, 1, MessageStatus::Ok),
        "first answer must be the echo: {reply:?}"
    );
    assert_eq!(&reply.payload[..], b"after");
    assert_eq!(*srv.toy().serials.lock().expect("lock"), vec![1]);
}

#[tokio::test]
async fn keepalive_ping_is_answered_with_pong() {
    let srv = spawn_server(config()).await;
    let mut raw = Raw::connect(srv.addr).await;
    raw.send_frame(header(KEEPALIVE_PROGRAM, PROC_PING, 2, 0, 0), b"")
        .await;
    let pong = raw.read_within(T).await.expect("pong");
    assert_eq!(pong.header.prog, KEEPALIVE_PROGRAM);
    assert_eq!(pong.header.proc_, PROC_PONG);
    assert_eq!(pong.header.type_, MessageType::Message);
    assert!(pong.payload.is_empty());
}

#[tokio::test]
async fn stream_packets_for_unknown_streams_are_dropped() {
    let srv = spawn_server(config()).await;
    let mut raw = Raw::connect(srv.addr).await;
    raw.send_frame(header(REMOTE_PROGRAM, UPLOAD, 3, 55, 2), &[0u8; 1000])
        .await;
    raw.send_frame(header(REMOTE_PROGRAM, UPLOAD, 3, 55, 0), b"")
        .await;
    raw.call(ECHO, 2, b"still here").await;
    let reply = raw.read_within(T).await.expect("reply");
    assert!(is_reply(&reply, 2, MessageStatus::Ok));
}

#[tokio::test]
async fn replies_carry_each_calls_serial_even_out_of_order() {
    let srv = spawn_server(config()).await;
    let mut raw = Raw::connect(srv.addr).await;
    let mut slow = bytes::BytesMut::new();
    slow.put_u32(300);
    raw.call(SLEEP, 1000, &slow).await;
    raw.call(ECHO, 1001, b"fast").await;
    let first = raw.read_within(T).await.expect("reply");
    let second = raw.read_within(T).await.expect("reply");
    assert!(is_reply(&first, 1001, MessageStatus::Ok));
    assert!(is_reply(&second, 1000, MessageStatus::Ok));
}

#[tokio::test]
async fn call_with_fds_gets_an_error_instead_of_silence() {
    let srv = spawn_server(config()).await;
    let mut raw = Raw::connect(srv.addr).await;
    raw.send_frame(header(REMOTE_PROGRAM, ECHO, 4, 31, 0), &0u32.to_be_bytes())
        .await;
    let reply = raw.read_within(T).await.expect("reply");
    assert!(is_reply(&reply, 31, MessageStatus::Error));
    let err = WireError::decode(&reply.payload).expect("remote_error");
    assert_eq!((err.code, err.domain), (VIR_ERR_RPC, VIR_FROM_RPC));
    assert_eq!(srv.toy().serials.lock().expect("lock").len(), 0);
}
