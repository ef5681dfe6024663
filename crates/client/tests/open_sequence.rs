//! The client's wire behaviour against an in-process fake server built on
//! `migrated-rpc`'s server: the open and close sequences libvirt clients
//! send, virsh-style domain lookup, and remote errors keeping their code.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use migrated_client::{Connection, Error, OpenFlags};
use migrated_proto as proto;
use migrated_rpc::server::REMOTE_PROGRAM;
use migrated_rpc::{
    CallContext, ConnHandle, ConnInfo, Dispatcher, Header, Listener, Lookup, Server, ServerConfig,
    WireError,
};

/// What the fake answers, and what it saw.
#[derive(Default)]
struct Fake {
    /// `SUPPORTS_FEATURE` answers: feature numbers reported as supported.
    features: Vec<i32>,
    /// `AUTH_LIST` answer.
    auth_types: Vec<proto::AuthType>,
    /// Procedure numbers in arrival order.
    seen: Mutex<Vec<i32>>,
    /// Feature numbers asked, in order.
    asked: Mutex<Vec<i32>>,
    /// CONNECT_OPEN arguments received.
    opened: Mutex<Option<(Option<String>, u32)>>,
}

const GUEST_UUID: [u8; 16] = [7; 16];

fn guest(id: i32) -> proto::NonnullDomain {
    proto::NonnullDomain {
        name: "guest".into(),
        uuid: GUEST_UUID,
        id,
    }
}

fn no_domain(what: &str) -> WireError {
    WireError::new(
        42,
        10,
        format!("Domain not found: no domain with matching {what}"),
    )
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Bytes, WireError> {
    migrated_xdr::to_bytes(value)
        .map(Bytes::from)
        .map_err(|e| WireError::internal(e.to_string()))
}

fn decode<T: serde::de::DeserializeOwned>(payload: &[u8]) -> Result<T, WireError> {
    migrated_xdr::from_bytes(payload).map_err(|e| WireError::rpc(e.to_string()))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Dispatcher for Fake {
    type Session = ();

    fn open_session(&self, _info: &ConnInfo, _handle: ConnHandle) -> Self::Session {}

    fn lookup(&self, _session: &(), _header: &Header) -> Lookup {
        Lookup::Call { priority: false }
    }

    async fn call(
        &self,
        _session: Arc<()>,
        ctx: CallContext,
        payload: Bytes,
    ) -> Result<Bytes, WireError> {
        let proc_ = ctx.header.proc_;
        lock(&self.seen).push(proc_);
        match proc_ {
            66 => encode(&proto::AuthListRet {
                types: self.auth_types.clone(),
            }),
            60 => {
                let args: proto::ConnectSupportsFeatureArgs = decode(&payload)?;
                lock(&self.asked).push(args.feature);
                let supported = i32::from(self.features.contains(&args.feature));
                encode(&proto::ConnectSupportsFeatureRet { supported })
            }
            1 => {
                let args: proto::ConnectOpenArgs = decode(&payload)?;
                *lock(&self.opened) = Some((args.name, args.flags));
                Ok(Bytes::new())
            }
            2 | 360 | 361 => Ok(Bytes::new()),
            59 => encode(&proto::ConnectGetHostnameRet {
                hostname: "fakehost".into(),
            }),
            22 => {
                let args: proto::DomainLookupByIdArgs = decode(&payload)?;
                if args.id == 3 {
                    encode(&proto::DomainLookupByIdRet { dom: guest(3) })
                } else {
                    Err(no_domain("id"))
                }
            }
            24 => {
                let args: proto::DomainLookupByUuidArgs = decode(&payload)?;
                if args.uuid == GUEST_UUID {
                    encode(&proto::DomainLookupByUuidRet { dom: guest(3) })
                } else {
                    Err(no_domain("uuid"))
                }
            }
            23 => {
                let args: proto::DomainLookupByNameArgs = decode(&payload)?;
                if args.name == "guest" {
                    encode(&proto::DomainLookupByNameRet { dom: guest(3) })
                } else {
                    Err(no_domain(&format!("name '{}'", args.name)))
                }
            }
            other => Err(WireError::new(
                3,
                13,
                format!("fake does not implement procedure {other}"),
            )),
        }
    }
}

/// Serves `fake` on a loopback port; returns the server and the `test+tcp` URI.
async fn serve(fake: Fake) -> (Server<Fake>, Arc<Fake>, String) {
    let fake = Arc::new(fake);
    let listener = Listener::bind_tcp("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let port = listener
        .local_addr()
        .expect("tcp listener has an address")
        .port();
    let server = Server::new(ServerConfig::default(), fake.clone());
    let serving = server.clone();
    tokio::spawn(async move { serving.serve(listener).await });
    (server, fake, format!("test+tcp://127.0.0.1:{port}/default"))
}

fn everything() -> Fake {
    Fake {
        features: vec![10, 14, 15],
        auth_types: vec![proto::AuthType::None],
        ..Fake::default()
    }
}

#[tokio::test]
async fn open_and_close_send_virsh_sequence() {
    let (server, fake, uri) = serve(everything()).await;
    let conn = Connection::open(&uri, OpenFlags::default())
        .await
        .expect("open");
    assert_eq!(*lock(&fake.seen), vec![66, 60, 1, 60, 60, 360]);
    assert_eq!(*lock(&fake.asked), vec![10, 14, 15]);
    assert_eq!(
        *lock(&fake.opened),
        Some((Some("test:///default".to_owned()), 0))
    );
    assert!(conn.is_alive());
    conn.close().await.expect("close");
    assert!(!conn.is_alive());
    assert_eq!(lock(&fake.seen)[6..], [361, 2]);
    // a second close sends nothing, and calls after close fail cleanly
    conn.close().await.expect("second close");
    assert!(matches!(conn.get_hostname().await, Err(Error::Rpc { .. })));
    assert_eq!(lock(&fake.seen).len(), 8);
    server.shutdown();
}

#[tokio::test]
async fn without_close_callback_feature_nothing_is_registered() {
    let (server, fake, uri) = serve(Fake {
        features: vec![],
        auth_types: vec![],
        ..Fake::default()
    })
    .await;
    let conn = Connection::open(&uri, OpenFlags { readonly: true })
        .await
        .expect("open");
    assert_eq!(*lock(&fake.seen), vec![66, 60, 1, 60, 60]);
    assert_eq!(
        lock(&fake.opened).as_ref().map(|o| o.1),
        Some(1),
        "read-only flag sent"
    );
    conn.close().await.expect("close");
    assert_eq!(lock(&fake.seen)[5..], [2]);
    server.shutdown();
}

#[tokio::test]
async fn sasl_only_server_is_refused_before_connect_open() {
    let (server, fake, uri) = serve(Fake {
        auth_types: vec![proto::AuthType::Sasl],
        ..Fake::default()
    })
    .await;
    match Connection::open(&uri, OpenFlags::default()).await {
        Err(Error::UnsupportedAuth { method: 1 }) => {}
        other => panic!("expected UnsupportedAuth, got {other:?}"),
    }
    assert_eq!(*lock(&fake.seen), vec![66]);
    server.shutdown();
}

#[tokio::test]
async fn domain_lookup_tries_id_then_uuid_then_name() {
    let (server, fake, uri) = serve(everything()).await;
    let conn = Connection::open(&uri, OpenFlags::default())
        .await
        .expect("open");
    let base = lock(&fake.seen).len();

    let dom = conn.lookup_domain("3").await.expect("by id");
    assert_eq!((dom.name(), dom.id()), ("guest", Some(3)));
    assert_eq!(lock(&fake.seen)[base..], [22]);

    let uuid = uuid::Uuid::from_bytes(GUEST_UUID).to_string();
    conn.lookup_domain(&uuid).await.expect("by uuid");
    assert_eq!(lock(&fake.seen)[base + 1..], [24]);

    conn.lookup_domain("guest").await.expect("by name");
    assert_eq!(lock(&fake.seen)[base + 2..], [23]);

    // "7" is not an id here, so virsh falls back to a name lookup
    let err = conn.lookup_domain("7").await.expect_err("no such domain");
    assert_eq!(lock(&fake.seen)[base + 3..], [22, 23]);
    assert_eq!(err.remote_code(), Some(42));
    assert!(err.is_code(migrated_core::error::ErrorCode::NoDomain));
    assert_eq!(err.remote_domain(), Some(10));
    assert_eq!(
        err.to_string(),
        "Domain not found: no domain with matching name '7'"
    );
    conn.close().await.expect("close");
    server.shutdown();
}

#[tokio::test]
async fn clones_share_one_connection_across_tasks() {
    let (server, fake, uri) = serve(everything()).await;
    let conn = Connection::open(&uri, OpenFlags::default())
        .await
        .expect("open");
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let conn = conn.clone();
            tokio::spawn(async move { conn.get_hostname().await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.expect("task").expect("hostname"), "fakehost");
    }
    assert_eq!(lock(&fake.seen).iter().filter(|&&p| p == 59).count(), 8);
    conn.close().await.expect("close");
    server.shutdown();
}

#[tokio::test]
async fn unknown_procedure_error_keeps_code_and_message() {
    let (server, _fake, uri) = serve(everything()).await;
    let conn = Connection::open(&uri, OpenFlags::default())
        .await
        .expect("open");
    let err = conn
        .get_capabilities()
        .await
        .expect_err("fake has no capabilities");
    assert_eq!(err.remote_code(), Some(3));
    assert!(err.to_string().contains("procedure 7"), "{err}");
    conn.close().await.expect("close");
    server.shutdown();
}

#[tokio::test]
async fn refused_connection_names_the_address() {
    // bind and release a port so nothing listens there
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("ephemeral port")
        .port();
    let uri = format!("test+tcp://127.0.0.1:{port}/default");
    let err = Connection::open(&uri, OpenFlags::default())
        .await
        .expect_err("nothing listens");
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
}

#[test]
fn remote_program_number_matches_proto() {
    assert_eq!(REMOTE_PROGRAM, proto::REMOTE_PROGRAM);
}
