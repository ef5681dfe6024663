//! Calls through `RpcClient`: serials, errors, concurrency, limits, shutdown.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use migrated_rpc::server::REMOTE_PROGRAM;
use migrated_rpc::{ClientConfig, Error, RpcClient, ServerConfig};

const T: Duration = Duration::from_secs(5);

fn ms(n: u32) -> Vec<u8> {
    n.to_be_bytes().to_vec()
}

#[tokio::test]
async fn client_serials_start_at_zero_and_increase_by_one() {
    let srv = spawn_server(config()).await;
    let c = client(srv.addr).await;
    for i in 0..3u8 {
        let ret = c
            .call(REMOTE_PROGRAM, 1, ECHO, vec![i])
            .await
            .expect("echo");
        assert_eq!(&ret[..], &[i]);
    }
    assert_eq!(*srv.toy().serials.lock().expect("lock"), vec![0, 1, 2]);
}

#[tokio::test]
async fn error_reply_becomes_remote_error() {
    let srv = spawn_server(config()).await;
    let c = client(srv.addr).await;
    match c.call(REMOTE_PROGRAM, 1, FAIL, vec![]).await {
        Err(Error::Remote(e)) => {
            assert_eq!((e.code, e.domain), (42, 10));
            assert_eq!(
                e.message.as_deref(),
                Some("no domain with matching name 'x'")
            );
        }
        other => panic!("expected a remote error, got {other:?}"),
    }
    // the connection is still usable
    assert!(c.call(REMOTE_PROGRAM, 1, ECHO, vec![]).await.is_ok());
}

#[tokio::test]
async fn slow_call_does_not_block_a_fast_one_on_the_same_connection() {
    let srv = spawn_server(config()).await;
    let c = client(srv.addr).await;
    let slow = {
        let c = c.clone();
        tokio::spawn(async move { c.call(REMOTE_PROGRAM, 1, SLEEP, ms(1500)).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    c.call(REMOTE_PROGRAM, 1, ECHO, b"quick".to_vec())
        .await
        .expect("echo");
    // Answered while the slow call still runs: order, not a time bound.
    assert!(!slow.is_finished(), "the fast call waited for the slow one");
    within(T, slow).await.expect("join").expect("slow call");
}

#[tokio::test]
async fn in_flight_limit_holds_and_priority_calls_bypass_it() {
    let cfg = ServerConfig {
        max_calls_per_client: 2,
        ..config()
    };
    let srv = spawn_server(cfg).await;
    let c = client(srv.addr).await;
    let mut blocked = Vec::new();
    for _ in 0..5 {
        let c = c.clone();
        blocked.push(tokio::spawn(async move {
            c.call(REMOTE_PROGRAM, 1, BLOCK, vec![]).await
        }));
    }
    let toy = srv.toy().clone();
    assert!(wait_until(T, || toy.running.load(Ordering::SeqCst) == 2).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(toy.running.load(Ordering::SeqCst), 2, "limit of 2 exceeded");
    // a priority call runs although both slots are taken
    within(T, c.call(REMOTE_PROGRAM, 1, PRIORITY, b"p".to_vec()))
        .await
        .expect("priority call");
    toy.gate.add_permits(5);
    for b in blocked {
        within(T, b).await.expect("join").expect("blocked call");
    }
    // 2 slots plus the priority call at most
    assert!(toy.max_running.load(Ordering::SeqCst) <= 3);
}

#[tokio::test]
async fn priority_calls_have_their_own_bounded_pool() {
    let cfg = ServerConfig {
        max_calls_per_client: 1,
        ..config()
    };
    let srv = spawn_server(cfg).await;
    let c = client(srv.addr).await;
    let toy = srv.toy().clone();
    let mut calls = Vec::new();
    let normal = c.clone();
    calls.push(tokio::spawn(async move {
        normal.call(REMOTE_PROGRAM, 1, BLOCK, vec![]).await
    }));
    assert!(wait_until(T, || toy.running.load(Ordering::SeqCst) == 1).await);
    for _ in 0..3 {
        let c = c.clone();
        calls.push(tokio::spawn(async move {
            c.call(REMOTE_PROGRAM, 1, PRIORITY_BLOCK, vec![]).await
        }));
    }
    // one normal slot + one priority slot, however many priority calls wait
    assert!(wait_until(T, || toy.running.load(Ordering::SeqCst) == 2).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(toy.running.load(Ordering::SeqCst), 2);
    toy.gate.add_permits(4);
    for call in calls {
        within(T, call).await.expect("join").expect("call");
    }
    assert_eq!(toy.max_running.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn full_call_queue_stops_reading_but_loses_nothing() {
    let cfg = ServerConfig {
        max_calls_per_client: 1,
        max_queued_calls_per_client: 2,
        ..config()
    };
    let srv = spawn_server(cfg).await;
    let c = client(srv.addr).await;
    let mut calls = Vec::new();
    for _ in 0..8 {
        let c = c.clone();
        calls.push(tokio::spawn(async move {
            c.call(REMOTE_PROGRAM, 1, BLOCK, vec![]).await
        }));
    }
    let toy = srv.toy().clone();
    assert!(wait_until(T, || toy.running.load(Ordering::SeqCst) == 1).await);
    toy.gate.add_permits(8);
    for call in calls {
        within(T, call).await.expect("join").expect("call");
    }
    assert_eq!(toy.max_running.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn handler_panic_becomes_an_error_reply() {
    let srv = spawn_server(config()).await;
    let c = client(srv.addr).await;
    match c.call(REMOTE_PROGRAM, 1, PANIC, vec![]).await {
        Err(Error::Remote(e)) => assert_eq!(e.code, migrated_rpc::error::VIR_ERR_INTERNAL_ERROR),
        other => panic!("expected internal error, got {other:?}"),
    }
    assert!(c.call(REMOTE_PROGRAM, 1, ECHO, vec![]).await.is_ok());
}

#[tokio::test]
async fn close_from_a_handler_still_sends_its_reply() {
    let srv = spawn_server(config()).await;
    let c = client(srv.addr).await;
    let ret = c
        .call(REMOTE_PROGRAM, 1, CLOSE, vec![])
        .await
        .expect("close reply");
    assert_eq!(&ret[..], b"bye!");
    within(T, c.closed()).await;
    assert!(matches!(
        c.call(REMOTE_PROGRAM, 1, ECHO, vec![]).await,
        Err(Error::Closed)
    ));
    assert!(wait_until(T, || srv.server.connection_count() == 0).await);
}

#[tokio::test]
async fn call_timeout_fails_only_that_call() {
    let srv = spawn_server(config()).await;
    let tcp = migrated_rpc::transport::tcp::connect(&srv.addr.to_string())
        .await
        .expect("connect");
    let c = RpcClient::new(
        tcp,
        ClientConfig {
            call_timeout: Some(Duration::from_millis(200)),
            ..Default::default()
        },
    );
    assert!(matches!(
        c.call(REMOTE_PROGRAM, 1, SLEEP, ms(1000)).await,
        Err(Error::Timeout(_))
    ));
    assert!(c.call(REMOTE_PROGRAM, 1, ECHO, vec![]).await.is_ok());
}

#[tokio::test]
async fn server_shutdown_lets_running_calls_finish() {
    let srv = spawn_server(config()).await;
    let c = client(srv.addr).await;
    let slow = {
        let c = c.clone();
        tokio::spawn(async move { c.call(REMOTE_PROGRAM, 1, SLEEP, ms(300)).await })
    };
    let toy = srv.toy().clone();
    assert!(wait_until(T, || toy.running.load(Ordering::SeqCst) == 1).await);
    srv.server.shutdown();
    let ret = within(T, slow)
        .await
        .expect("join")
        .expect("reply flushed before close");
    assert_eq!(&ret[..], &ms(300)[..]);
    within(T, c.closed()).await;
    within(T, srv.task).await.expect("serve returns");
    assert!(
        tokio::net::TcpStream::connect(srv.addr).await.is_err(),
        "listener still open"
    );
    assert_eq!(
        toy.opened.load(Ordering::SeqCst),
        toy.closed.load(Ordering::SeqCst)
    );
}

#[tokio::test]
async fn events_reach_the_subscriber() {
    let srv = spawn_server(config()).await;
    let c = client(srv.addr).await;
    let mut events = c.subscribe_events();
    let mut args = 3u32.to_be_bytes().to_vec();
    args.extend_from_slice(&16u32.to_be_bytes());
    c.call(REMOTE_PROGRAM, 1, EVENTS, args)
        .await
        .expect("events call");
    for i in 0..3u8 {
        let ev = within(T, events.recv()).await.expect("event");
        assert_eq!(ev.header.proc_, 100);
        assert_eq!(ev.header.serial, 1);
        assert_eq!(&ev.payload[..], &[i; 16]);
    }
}

#[tokio::test]
async fn unix_socket_serves_calls_and_marks_readonly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ro-sock");
    let listener = migrated_rpc::Listener::bind_unix(&path, 0o666, true).expect("bind");
    let server = migrated_rpc::Server::new(config(), std::sync::Arc::new(Toy::default()));
    let s = server.clone();
    tokio::spawn(async move { s.serve(listener).await });
    let stream = migrated_rpc::transport::unix::connect(&path)
        .await
        .expect("connect");
    let c = RpcClient::new(stream, ClientConfig::default());
    c.call(REMOTE_PROGRAM, 1, ECHO, vec![1])
        .await
        .expect("echo over unix");
    let info = server.dispatcher().infos.lock().expect("lock")[0].clone();
    assert_eq!(info.transport, migrated_rpc::Transport::Unix);
    assert!(info.readonly);
    assert_eq!(info.peer, path.display().to_string());
    server.shutdown();
}

#[tokio::test]
async fn dropping_the_last_client_clone_closes_the_connection() {
    let srv = spawn_server(config()).await;
    let c = client(srv.addr).await;
    let clone = c.clone();
    c.call(REMOTE_PROGRAM, 1, ECHO, vec![]).await.expect("echo");
    drop(c);
    clone
        .call(REMOTE_PROGRAM, 1, ECHO, vec![])
        .await
        .expect("clone still works");
    assert_eq!(srv.server.connection_count(), 1);
    drop(clone);
    assert!(wait_until(T, || srv.server.connection_count() == 0).await);
}

#[tokio::test]
async fn inherited_std_listener_is_served() {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = std_listener.local_addr().expect("addr");
    let listener = migrated_rpc::Listener::from_std_tcp(std_listener).expect("wrap");
    let server = migrated_rpc::Server::new(config(), std::sync::Arc::new(Toy::default()));
    let s = server.clone();
    let task = tokio::spawn(async move { s.serve(listener).await });
    client(addr)
        .await
        .call(REMOTE_PROGRAM, 1, ECHO, vec![7])
        .await
        .expect("echo");
    server.shutdown();
    within(T, task).await.expect("serve returns after shutdown");
}
