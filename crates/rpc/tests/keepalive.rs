//! Keepalive on both sides, with short intervals.

mod common;

use std::time::{Duration, Instant};

use common::*;
use migrated_rpc::keepalive::{KEEPALIVE_PROGRAM, PROC_PING, PROC_PONG};
use migrated_rpc::server::REMOTE_PROGRAM;
use migrated_rpc::{ClientConfig, MessageStatus, RpcClient, ServerConfig};
use tokio::net::TcpListener;

const T: Duration = Duration::from_secs(5);

fn fast_keepalive() -> ServerConfig {
    ServerConfig {
        keepalive_interval: Duration::from_millis(100),
        keepalive_count: 3,
        ..config()
    }
}

#[tokio::test]
async fn server_pings_after_silence_and_closes_a_dead_peer() {
    let srv = spawn_server(fast_keepalive()).await;
    let mut raw = Raw::connect(srv.addr).await;
    raw.call(KEEPALIVE, 1, b"").await;
    let started = Instant::now();
    let reply = raw.read_within(T).await.expect("reply");
    assert!(is_reply(&reply, 1, MessageStatus::Ok));
    let mut pings = 0;
    while let Some(msg) = tokio::time::timeout(T, raw.read())
        .await
        .expect("server never closed")
    {
        assert_eq!(
            (msg.header.prog, msg.header.proc_),
            (KEEPALIVE_PROGRAM, PROC_PING)
        );
        pings += 1;
    }
    let elapsed = started.elapsed();
    assert_eq!(pings, 3);
    // 1 interval of silence + 3 unanswered intervals
    assert!(
        elapsed >= Duration::from_millis(350),
        "closed too early: {elapsed:?}"
    );
    assert!(wait_until(T, || srv.server.connection_count() == 0).await);
}

#[tokio::test]
async fn server_does_not_ping_a_busy_client() {
    // a generous interval so that a loaded machine cannot fake silence
    let cfg = ServerConfig {
        keepalive_interval: Duration::from_millis(500),
        keepalive_count: 3,
        ..config()
    };
    let srv = spawn_server(cfg).await;
    let mut raw = Raw::connect(srv.addr).await;
    raw.call(KEEPALIVE, 1, b"").await;
    assert!(raw.read_within(T).await.is_some());
    for serial in 2..30 {
        tokio::time::sleep(Duration::from_millis(30)).await;
        raw.call(ECHO, serial, b"").await;
        let msg = raw.read_within(T).await.expect("open");
        assert!(
            is_reply(&msg, serial, MessageStatus::Ok),
            "unexpected {msg:?}"
        );
    }
}

#[tokio::test]
async fn answering_pings_keeps_the_connection_alive() {
    let srv = spawn_server(fast_keepalive()).await;
    let c = client(srv.addr).await;
    c.call(REMOTE_PROGRAM, 1, KEEPALIVE, vec![])
        .await
        .expect("start keepalive");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(!c.is_closed());
    c.call(REMOTE_PROGRAM, 1, ECHO, vec![])
        .await
        .expect("still served");
}

#[tokio::test]
async fn a_long_call_does_not_block_keepalive() {
    let srv = spawn_server(fast_keepalive()).await;
    let c = client(srv.addr).await;
    c.call(REMOTE_PROGRAM, 1, KEEPALIVE, vec![])
        .await
        .expect("start keepalive");
    // runs for many keepalive intervals; pings and pongs flow meanwhile
    c.call(REMOTE_PROGRAM, 1, SLEEP, 900u32.to_be_bytes().to_vec())
        .await
        .expect("long call");
    assert!(!c.is_closed());
}

#[tokio::test]
async fn client_closes_when_the_server_stops_answering() {
    // a "server" that accepts and never says anything
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let hold = tokio::spawn(async move {
        let (sock, _) = listener.accept().await.expect("accept");
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(sock);
    });
    let tcp = migrated_rpc::transport::tcp::connect(&addr.to_string())
        .await
        .expect("connect");
    let c = RpcClient::new(tcp, ClientConfig::default());
    let pending = {
        let c = c.clone();
        tokio::spawn(async move { c.call(REMOTE_PROGRAM, 1, ECHO, vec![]).await })
    };
    c.start_keepalive(Duration::from_millis(50), 3);
    let reason = within(T, c.closed()).await.unwrap_or_default();
    assert!(reason.contains("keepalive"), "{reason}");
    assert!(matches!(
        within(T, pending).await.expect("join"),
        Err(migrated_rpc::Error::Closed)
    ));
    hold.abort();
}

#[tokio::test]
async fn client_answers_server_pings() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let tcp = migrated_rpc::transport::tcp::connect(&addr.to_string())
        .await
        .expect("connect");
    let _c = RpcClient::new(tcp, ClientConfig::default());
    let (sock, _) = listener.accept().await.expect("accept");
    let mut raw = Raw { stream: sock };
    raw.send_frame(header(KEEPALIVE_PROGRAM, PROC_PING, 2, 0, 0), b"")
        .await;
    let pong = raw.read_within(T).await.expect("pong");
    assert_eq!(
        (pong.header.prog, pong.header.proc_),
        (KEEPALIVE_PROGRAM, PROC_PONG)
    );
}
