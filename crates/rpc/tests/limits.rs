//! Connection limits: slow readers, max clients, idle connection churn.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use migrated_rpc::server::REMOTE_PROGRAM;
use migrated_rpc::ServerConfig;

const T: Duration = Duration::from_secs(10);

#[tokio::test]
async fn slow_reader_is_disconnected_when_its_output_exceeds_the_limit() {
    let cfg = ServerConfig {
        max_outbound_bytes: 1 << 20,
        ..config()
    };
    let srv = spawn_server(cfg).await;
    let mut bystander = Raw::connect(srv.addr).await;
    let mut slow = Raw::connect(srv.addr).await;
    // ask for 200 events of 256 KiB (50 MiB) and never read them
    let mut args = 200u32.to_be_bytes().to_vec();
    args.extend_from_slice(&(256u32 * 1024).to_be_bytes());
    slow.call(EVENTS, 1, &args).await;
    assert!(
        wait_until(T, || srv.server.connection_count() == 1).await,
        "slow reader not dropped"
    );
    assert!(slow.closed_within(T).await);
    bystander.call(ECHO, 2, b"ok").await;
    assert!(is_reply(
        &bystander.read_within(T).await.expect("reply"),
        2,
        migrated_rpc::MessageStatus::Ok
    ));
}

#[tokio::test]
async fn a_reader_that_keeps_up_is_not_disconnected() {
    let cfg = ServerConfig {
        max_outbound_bytes: 1 << 20,
        ..config()
    };
    let srv = spawn_server(cfg).await;
    let c = client(srv.addr).await;
    let mut events = c.subscribe_events();
    let mut args = 64u32.to_be_bytes().to_vec();
    args.extend_from_slice(&(8u32 * 1024).to_be_bytes());
    c.call(REMOTE_PROGRAM, 1, EVENTS, args)
        .await
        .expect("events");
    for _ in 0..64 {
        within(T, events.recv()).await.expect("event");
    }
    assert!(!c.is_closed());
}

#[tokio::test]
async fn clients_over_the_limit_are_accepted_and_closed() {
    let cfg = ServerConfig {
        max_clients: 2,
        ..config()
    };
    let srv = spawn_server(cfg).await;
    let a = client(srv.addr).await;
    let b = client(srv.addr).await;
    a.call(REMOTE_PROGRAM, 1, ECHO, vec![])
        .await
        .expect("a served");
    b.call(REMOTE_PROGRAM, 1, ECHO, vec![])
        .await
        .expect("b served");
    let mut third = Raw::connect(srv.addr).await;
    assert!(third.closed_within(T).await, "third client was not closed");
    assert_eq!(srv.toy().opened.load(Ordering::SeqCst), 2);
    // the first two are unaffected; after one leaves, a newcomer is served
    a.call(REMOTE_PROGRAM, 1, ECHO, vec![])
        .await
        .expect("a still served");
    b.close();
    assert!(wait_until(T, || srv.server.connection_count() == 1).await);
    let c = client(srv.addr).await;
    c.call(REMOTE_PROGRAM, 1, ECHO, vec![])
        .await
        .expect("newcomer served");
}

#[tokio::test]
async fn a_thousand_idle_connections_leave_nothing_behind() {
    let srv = spawn_server(config()).await;
    for _ in 0..1000 {
        let s = tokio::net::TcpStream::connect(srv.addr)
            .await
            .expect("connect");
        drop(s);
    }
    let toy = srv.toy().clone();
    assert!(
        wait_until(T, || srv.server.connection_count() == 0
            && toy.opened.load(Ordering::SeqCst) == 1000
            && toy.closed.load(Ordering::SeqCst) == 1000)
        .await,
        "left behind: {} connections, {} opened, {} closed",
        srv.server.connection_count(),
        toy.opened.load(Ordering::SeqCst),
        toy.closed.load(Ordering::SeqCst)
    );
    let c = client(srv.addr).await;
    c.call(REMOTE_PROGRAM, 1, ECHO, vec![])
        .await
        .expect("served afterwards");
}
