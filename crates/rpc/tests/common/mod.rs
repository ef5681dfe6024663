//! Shared test fixtures: a toy dispatcher, an in-process server on
//! 127.0.0.1:0, a raw-byte client, and a bounded `wait_until`.
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use migrated_rpc::server::REMOTE_PROGRAM;
use migrated_rpc::{
    CallContext, ConnHandle, ConnInfo, Dispatcher, Header, Listener, Lookup, Message,
    MessageStatus, MessageType, Server, ServerConfig, StreamEvent, WireError,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

pub const ECHO: i32 = 1;
/// Payload: u32 milliseconds to sleep, then echo.
pub const SLEEP: i32 = 2;
/// Always fails with code 42 domain 10.
pub const FAIL: i32 = 3;
/// Waits for a permit of `Toy::gate`.
pub const BLOCK: i32 = 4;
/// Payload: u32 count, u32 size: pushes `count` events of `size` bytes.
pub const EVENTS: i32 = 5;
/// Opens an upload stream consumed by a task into `Toy::upload`.
pub const UPLOAD: i32 = 6;
/// Payload: u32 size: opens a download stream of `size` pattern bytes.
pub const DOWNLOAD: i32 = 7;
/// Starts server keepalive on this connection.
pub const KEEPALIVE: i32 = 8;
/// Priority echo (bypasses the call limit).
pub const PRIORITY: i32 = 9;
/// Closes the connection gracefully from inside the handler.
pub const CLOSE: i32 = 10;
/// Panics.
pub const PANIC: i32 = 11;
/// Returns the connection's TLS subject (empty when none).
pub const WHOAMI: i32 = 12;
/// Opens an upload stream and fails it with code 9 at its end.
pub const UPLOAD_FAIL: i32 = 13;
/// Priority call that waits for a permit of `Toy::gate`.
pub const PRIORITY_BLOCK: i32 = 14;
/// Opens an upload stream whose consumer drops it after the first packet.
pub const UPLOAD_DROP: i32 = 15;
/// Opens a stream, then fails the call.
pub const STREAM_THEN_FAIL: i32 = 16;

/// What the upload consumer saw.
#[derive(Debug, Default, Clone)]
pub struct UploadState {
    pub bytes: u64,
    pub checksum: u64,
    pub finished: bool,
    pub aborted: bool,
}

pub struct Toy {
    pub opened: AtomicUsize,
    pub closed: AtomicUsize,
    pub running: AtomicUsize,
    pub max_running: AtomicUsize,
    pub gate: Arc<Semaphore>,
    /// Permits the upload consumer needs per chunk (0 = free running).
    pub upload_gate: Arc<Semaphore>,
    pub upload_gated: std::sync::atomic::AtomicBool,
    pub upload_received: Arc<AtomicU64>,
    pub upload: Arc<Mutex<UploadState>>,
    pub serials: Mutex<Vec<u32>>,
    pub infos: Mutex<Vec<ConnInfo>>,
}

impl Default for Toy {
    fn default() -> Self {
        Self {
            opened: AtomicUsize::new(0),
            closed: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            max_running: AtomicUsize::new(0),
            gate: Arc::new(Semaphore::new(0)),
            upload_gate: Arc::new(Semaphore::new(0)),
            upload_gated: std::sync::atomic::AtomicBool::new(false),
            upload_received: Arc::new(AtomicU64::new(0)),
            upload: Arc::default(),
            serials: Mutex::default(),
            infos: Mutex::default(),
        }
    }
}

pub struct Session {
    pub info: ConnInfo,
    pub handle: ConnHandle,
}

/// Order-sensitive checksum so reordered or lost chunks are noticed.
pub fn checksum(mut acc: u64, data: &[u8]) -> u64 {
    for &b in data {
        acc = acc.rotate_left(5) ^ u64::from(b);
        acc = acc.wrapping_mul(0x100_0000_01b3);
    }
    acc
}

/// Deterministic test data.
pub fn pattern(offset: u64, len: usize) -> Bytes {
    (0..len as u64)
        .map(|i| ((offset + i) * 7 % 251) as u8)
        .collect::<Vec<u8>>()
        .into()
}

fn be_u32(payload: &[u8], at: usize) -> u32 {
    payload
        .get(at..at + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .unwrap_or(0)
}

impl Dispatcher for Toy {
    type Session = Session;

    fn open_session(&self, info: &ConnInfo, handle: ConnHandle) -> Session {
        self.opened.fetch_add(1, Ordering::SeqCst);
        self.infos.lock().expect("lock").push(info.clone());
        Session {
            info: info.clone(),
            handle,
        }
    }

    fn lookup(&self, _session: &Session, header: &Header) -> Lookup {
        match header.proc_ {
            PRIORITY | PRIORITY_BLOCK => Lookup::Call { priority: true },
            ECHO..=STREAM_THEN_FAIL => Lookup::Call { priority: false },
            other => Lookup::Reject(WireError::rpc(format!("unknown procedure: {other}"))),
        }
    }

    async fn call(
        &self,
        session: Arc<Session>,
        ctx: CallContext,
        payload: Bytes,
    ) -> Result<Bytes, WireError> {
        self.serials.lock().expect("lock").push(ctx.header.serial);
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(now, Ordering::SeqCst);
        let result = self.run(session, ctx, payload).await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        result
    }

    fn close_session(&self, _session: &Session) {
        self.closed.fetch_add(1, Ordering::SeqCst);
    }
}

impl Toy {
    async fn run(
        &self,
        session: Arc<Session>,
        ctx: CallContext,
        payload: Bytes,
    ) -> Result<Bytes, WireError> {
        match ctx.header.proc_ {
            ECHO | PRIORITY => Ok(payload),
            SLEEP => {
                tokio::time::sleep(Duration::from_millis(u64::from(be_u32(&payload, 0)))).await;
                Ok(payload)
            }
            FAIL => Err(WireError::new(42, 10, "no domain with matching name 'x'")),
            BLOCK | PRIORITY_BLOCK => {
                let permit = self
                    .gate
                    .acquire()
                    .await
                    .map_err(|_| WireError::internal("gate closed"))?;
                permit.forget();
                Ok(payload)
            }
            EVENTS => {
                let (count, size) = (be_u32(&payload, 0), be_u32(&payload, 4) as usize);
                for i in 0..count {
                    let body = Bytes::from(vec![(i % 256) as u8; size]);
                    if session
                        .handle
                        .send_event(REMOTE_PROGRAM, 100, body)
                        .is_err()
                    {
                        break;
                    }
                }
                Ok(Bytes::new())
            }
            UPLOAD | UPLOAD_FAIL => {
                let mut stream = ctx.open_stream();
                let fail = ctx.header.proc_ == UPLOAD_FAIL;
                let state = self.upload.clone();
                let received = self.upload_received.clone();
                let gate = self
                    .upload_gated
                    .load(Ordering::SeqCst)
                    .then(|| self.upload_gate.clone());
                *state.lock().expect("lock") = UploadState::default();
                tokio::spawn(async move {
                    while let Some(ev) = stream.recv().await {
                        match ev {
                            StreamEvent::Data(b) => {
                                if let Some(g) = &gate {
                                    if let Ok(p) = g.acquire().await {
                                        p.forget();
                                    }
                                }
                                received.fetch_add(b.len() as u64, Ordering::SeqCst);
                                let mut s = state.lock().expect("lock");
                                s.bytes += b.len() as u64;
                                s.checksum = checksum(s.checksum, &b);
                            }
                            StreamEvent::Finish => {
                                state.lock().expect("lock").finished = true;
                                let _ = if fail {
                                    stream
                                        .finish_error(WireError::new(9, 10, "sink failed"))
                                        .await
                                } else {
                                    stream.finish_ok().await
                                };
                                return;
                            }
                            StreamEvent::Abort(_) => {
                                state.lock().expect("lock").aborted = true;
                                let _ = stream.finish_ok().await;
                                return;
                            }
                        }
                    }
                });
                Ok(Bytes::new())
            }
            UPLOAD_DROP => {
                let mut stream = ctx.open_stream();
                tokio::spawn(async move {
                    let _ = stream.recv().await;
                    drop(stream);
                });
                Ok(Bytes::new())
            }
            STREAM_THEN_FAIL => {
                let _stream = ctx.open_stream();
                Err(WireError::new(9, 10, "prepare failed"))
            }
            DOWNLOAD => {
                let size = u64::from(be_u32(&payload, 0));
                let mut stream = ctx.open_stream();
                tokio::spawn(async move {
                    let mut off = 0u64;
                    while off < size {
                        let n = (size - off).min(1 << 20) as usize;
                        if stream.send_data(pattern(off, n)).await.is_err() {
                            return;
                        }
                        off += n as u64;
                    }
                    // libvirtd's order: empty CONTINUE, client's OK, our OK
                    if stream.send_eof().await.is_err() {
                        return;
                    }
                    while let Some(ev) = stream.recv().await {
                        if ev == StreamEvent::Finish {
                            let _ = stream.finish_ok().await;
                            return;
                        }
                    }
                });
                Ok(Bytes::new())
            }
            KEEPALIVE => {
                ctx.handle.start_keepalive();
                Ok(Bytes::new())
            }
            CLOSE => {
                ctx.handle.close();
                Ok(Bytes::from_static(b"bye!"))
            }
            PANIC => panic!("toy handler panics on purpose"),
            WHOAMI => Ok(Bytes::from(
                session.info.tls_subject.clone().unwrap_or_default(),
            )),
            other => Err(WireError::rpc(format!("unknown procedure: {other}"))),
        }
    }
}

pub struct Running {
    pub server: Server<Toy>,
    pub addr: SocketAddr,
    pub task: tokio::task::JoinHandle<()>,
}

impl Running {
    pub fn toy(&self) -> &Arc<Toy> {
        self.server.dispatcher()
    }
}

pub async fn spawn_server(config: ServerConfig) -> Running {
    spawn_server_with(config, Toy::default()).await
}

pub async fn spawn_server_with(config: ServerConfig, toy: Toy) -> Running {
    let listener = Listener::bind_tcp("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("tcp address");
    let server = Server::new(config, Arc::new(toy));
    let s = server.clone();
    let task = tokio::spawn(async move { s.serve(listener).await });
    Running { server, addr, task }
}

pub async fn client(addr: SocketAddr) -> migrated_rpc::RpcClient {
    let tcp = migrated_rpc::transport::tcp::connect(&addr.to_string())
        .await
        .expect("connect");
    migrated_rpc::RpcClient::new(tcp, migrated_rpc::ClientConfig::default())
}

/// Polls `cond` every 10 ms for at most `limit`.
pub async fn wait_until<F: FnMut() -> bool>(limit: Duration, mut cond: F) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub async fn within<T>(limit: Duration, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, fut).await.expect("timed out")
}

pub fn header(prog: u32, proc_: i32, type_: i32, serial: u32, status: i32) -> [u8; 24] {
    let mut h = [0u8; 24];
    h[0..4].copy_from_slice(&prog.to_be_bytes());
    h[4..8].copy_from_slice(&1u32.to_be_bytes());
    h[8..12].copy_from_slice(&proc_.to_be_bytes());
    h[12..16].copy_from_slice(&type_.to_be_bytes());
    h[16..20].copy_from_slice(&serial.to_be_bytes());
    h[20..24].copy_from_slice(&status.to_be_bytes());
    h
}

/// A client that speaks raw bytes.
pub struct Raw {
    pub stream: TcpStream,
}

impl Raw {
    pub async fn connect(addr: SocketAddr) -> Self {
        Self {
            stream: TcpStream::connect(addr).await.expect("connect"),
        }
    }

    pub async fn send_frame(&mut self, header: [u8; 24], payload: &[u8]) {
        let mut buf = BytesMut::new();
        buf.put_u32((28 + payload.len()) as u32);
        buf.extend_from_slice(&header);
        buf.extend_from_slice(payload);
        self.stream.write_all(&buf).await.expect("write");
    }

    pub async fn call(&mut self, proc_: i32, serial: u32, payload: &[u8]) {
        self.send_frame(header(REMOTE_PROGRAM, proc_, 0, serial, 0), payload)
            .await;
    }

    /// Next message, or `None` on EOF/reset.
    pub async fn read(&mut self) -> Option<Message> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).await.ok()?;
        let len = u32::from_be_bytes(len) as usize;
        let mut body = vec![0u8; len.checked_sub(4)?];
        self.stream.read_exact(&mut body).await.ok()?;
        Message::from_frame(Bytes::from(body)).ok()
    }

    pub async fn read_within(&mut self, limit: Duration) -> Option<Message> {
        tokio::time::timeout(limit, self.read())
            .await
            .expect("no message in time")
    }

    /// True when the server closes the connection within `limit`.
    pub async fn closed_within(&mut self, limit: Duration) -> bool {
        let mut buf = [0u8; 4096];
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut buf)).await {
                Err(_) => return false,
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
            }
        }
    }
}

pub fn is_reply(msg: &Message, serial: u32, status: MessageStatus) -> bool {
    msg.header.type_ == MessageType::Reply
        && msg.header.serial == serial
        && msg.header.status == status
}

/// A short, fast server configuration for tests.
pub fn config() -> ServerConfig {
    ServerConfig::default()
}
