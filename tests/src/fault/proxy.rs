//! A loopback TCP proxy that injects network faults.
//!
//! [`FaultProxy::start`] listens on `127.0.0.1:0` and forwards every accepted
//! connection to one target. A [`Rule`] arms a fault for the connections
//! (existing and new): delay, stall, cut or half-close, fired when a
//! direction reaches a byte count or when the Nth message of a procedure
//! starts. Messages are found from libvirt's framing: a 4-byte big-endian
//! length word counting itself, then `program`, `version`, `procedure`, … —
//! the proxy reads the first 16 bytes of each message before forwarding them,
//! so a message-triggered fault fires before any byte of that message passes.
//! Faults can also be injected right away ([`FaultProxy::cut_all`],
//! [`FaultProxy::stall_all`]).
//!
//! The proxy runs on its own thread with a single-threaded tokio runtime, so
//! blocking test code can drive it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// libvirt's remote program number.
pub const REMOTE_PROGRAM: u32 = 0x2000_8086;

/// Bytes of a message read before it is forwarded: length, program, version, procedure.
const PEEK: usize = 16;

/// Which way bytes flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the connecting side (client) to the target (server).
    ToServer,
    /// From the target back to the client.
    ToClient,
}

/// When a rule fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// After `offset` bytes have passed in `dir` on one connection.
    AtByte {
        /// Direction counted.
        dir: Direction,
        /// Bytes forwarded before the fault.
        offset: u64,
    },
    /// When the `nth` (1-based) message of `procedure` in `program` starts in
    /// `dir`, counted over all connections of the proxy.
    AtMessage {
        /// Direction watched.
        dir: Direction,
        /// RPC program ([`REMOTE_PROGRAM`] for libvirt's calls).
        program: u32,
        /// Procedure number.
        procedure: u32,
        /// Which occurrence, from 1.
        nth: usize,
    },
}

/// What a rule does to the connection it fires on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Every later chunk in the rule's direction waits this long.
    Delay(Duration),
    /// Nothing more passes either way (the sockets stay open) until
    /// [`FaultProxy::resume_all`].
    Stall,
    /// Both sockets are reset (RST): both ends see the connection drop.
    Cut,
    /// The rule's direction ends (FIN to its receiver); the other keeps going.
    HalfClose,
}

/// An armed fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// When.
    pub trigger: Trigger,
    /// What.
    pub action: Action,
}

/// Per-connection controls shared by its two pumps.
struct Conn {
    /// Duplicates of both sockets, so a cut reaches them from outside the pumps.
    socks: [std::net::TcpStream; 2],
    /// True while stalled.
    stalled: watch::Sender<bool>,
}

impl Conn {
    /// Shuts both sockets: each end sees its connection end at once.
    fn cut(&self) {
        for s in &self.socks {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        // Wake stalled pumps so they notice.
        let _ = self.stalled.send(false);
    }
}

/// (direction, program, procedure) of a message.
type MessageKey = (Direction, u32, u32);

#[derive(Default)]
struct Shared {
    rule: Mutex<Option<Rule>>,
    conns: Mutex<Vec<Arc<Conn>>>,
    refuse: AtomicBool,
    fired: AtomicUsize,
    /// Messages seen per (dir, program, procedure), for `AtMessage`.
    seen: Mutex<Vec<(MessageKey, usize)>>,
    accepted: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    /// Counts a message start; true when it is the one the rule waits for.
    fn message_fires(&self, dir: Direction, program: u32, procedure: u32) -> Option<Action> {
        let count = {
            let mut seen = lock(&self.seen);
            let key = (dir, program, procedure);
            match seen.iter_mut().find(|(k, _)| *k == key) {
                Some((_, n)) => {
                    *n += 1;
                    *n
                }
                None => {
                    seen.push((key, 1));
                    1
                }
            }
        };
        let rule = (*lock(&self.rule))?;
        match rule.trigger {
            Trigger::AtMessage {
                dir: d,
                program: p,
                procedure: q,
                nth,
            } if d == dir && p == program && q == procedure && nth == count => {
                self.fired.fetch_add(1, Ordering::SeqCst);
                Some(rule.action)
            }
            _ => None,
        }
    }

    /// Bytes of `len` that may pass before the byte trigger of `dir` fires,
    /// given `passed` so far; `None` when no byte rule applies.
    fn byte_limit(&self, dir: Direction, passed: u64) -> Option<(u64, Action)> {
        let rule = (*lock(&self.rule))?;
        match rule.trigger {
            Trigger::AtByte { dir: d, offset } if d == dir && passed <= offset => {
                Some((offset - passed, rule.action))
            }
            _ => None,
        }
    }
}

/// A running proxy; stops when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl FaultProxy {
    /// Forwards a fresh `127.0.0.1` port to `target`.
    ///
    /// # Panics
    /// When no loopback port can be bound or the runtime cannot be built.
    pub fn start(target: SocketAddr) -> Self {
        let shared = Arc::new(Shared::default());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let s = Arc::clone(&shared);
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("proxy runtime");
            rt.block_on(async move {
                let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
                let _ = addr_tx.send(listener.local_addr().expect("proxy address"));
                let accept = async {
                    while let Ok((client, _)) = listener.accept().await {
                        if s.refuse.load(Ordering::SeqCst) {
                            // Dropping it closes the connection at once.
                            drop(client);
                            continue;
                        }
                        s.accepted.fetch_add(1, Ordering::SeqCst);
                        tokio::spawn(serve(client, target, Arc::clone(&s)));
                    }
                };
                tokio::select! {
                    () = accept => {}
                    _ = stopped => {}
                }
            });
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("proxy started");
        Self {
            addr,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The proxy's address (`127.0.0.1:port`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Arms `rule` (replacing any other) and resets the message counts.
    pub fn arm(&self, rule: Rule) {
        lock(&self.shared.seen).clear();
        self.shared.fired.store(0, Ordering::SeqCst);
        *lock(&self.shared.rule) = Some(rule);
    }

    /// Disarms the rule.
    pub fn disarm(&self) {
        *lock(&self.shared.rule) = None;
    }

    /// How many times the armed rule fired.
    pub fn fired(&self) -> usize {
        self.shared.fired.load(Ordering::SeqCst)
    }

    /// How many connections were accepted and forwarded so far.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Connections open right now.
    pub fn open_connections(&self) -> usize {
        lock(&self.shared.conns).len()
    }

    /// Resets every open connection now.
    pub fn cut_all(&self) {
        for c in lock(&self.shared.conns).drain(..) {
            c.cut();
        }
    }

    /// Stops forwarding on every open connection (sockets stay open).
    pub fn stall_all(&self) {
        for c in lock(&self.shared.conns).iter() {
            let _ = c.stalled.send(true);
        }
    }

    /// Lets stalled connections flow again.
    pub fn resume_all(&self) {
        for c in lock(&self.shared.conns).iter() {
            let _ = c.stalled.send(false);
        }
    }

    /// Refuses (resets) new connections while `refuse` is true.
    pub fn refuse_new(&self, refuse: bool) {
        self.shared.refuse.store(refuse, Ordering::SeqCst);
    }

    /// Heals the proxy: no rule, no stall, new connections accepted.
    pub fn heal(&self) {
        self.disarm();
        self.resume_all();
        self.refuse_new(false);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.cut_all();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve(client: TcpStream, target: SocketAddr, shared: Arc<Shared>) {
    let Ok(server) = TcpStream::connect(target).await else {
        return;
    };
    let dup = |s: TcpStream| -> Option<(TcpStream, std::net::TcpStream)> {
        let std = s.into_std().ok()?;
        let clone = std.try_clone().ok()?;
        Some((TcpStream::from_std(std).ok()?, clone))
    };
    let (Some((client, c2)), Some((server, s2))) = (dup(client), dup(server)) else {
        return;
    };
    for s in [&client, &server] {
        let _ = s.set_nodelay(true);
    }
    let (stalled, stall_rx) = watch::channel(false);
    let conn = Arc::new(Conn {
        socks: [c2, s2],
        stalled,
    });
    lock(&shared.conns).push(Arc::clone(&conn));
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let up = pump(
        cr,
        sw,
        Direction::ToServer,
        Arc::clone(&shared),
        Arc::clone(&conn),
        stall_rx.clone(),
    );
    let down = pump(
        sr,
        cw,
        Direction::ToClient,
        Arc::clone(&shared),
        Arc::clone(&conn),
        stall_rx,
    );
    tokio::join!(up, down);
    lock(&shared.conns).retain(|c| !Arc::ptr_eq(c, &conn));
    conn.cut();
}

/// Copies one direction, applying the rule.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    dir: Direction,
    shared: Arc<Shared>,
    conn: Arc<Conn>,
    mut stalled: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut passed: u64 = 0;
    let mut header: Vec<u8> = Vec::with_capacity(PEEK);
    let mut left_in_message: u64 = 0;
    let mut delay: Option<Duration> = None;
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => {
                // libvirt's RPC never half-closes: one side gone ends the
                // connection, so a peer frozen by SIGSTOP is disconnected too.
                let _ = to.shutdown().await;
                conn.cut();
                return;
            }
            Ok(n) => n,
        };
        let mut chunk = &buf[..n];
        while !chunk.is_empty() {
            // Message framing: hold a message's first bytes until its
            // procedure is known.
            let mut out: Vec<u8> = Vec::new();
            let mut action = None;
            if left_in_message == 0 {
                let take = (PEEK - header.len()).min(chunk.len());
                header.extend_from_slice(&chunk[..take]);
                chunk = &chunk[take..];
                if header.len() < PEEK {
                    continue;
                }
                let word = |i: usize| {
                    u32::from_be_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]])
                };
                let len = u64::from(word(0));
                action = shared.message_fires(dir, word(4), word(12));
                left_in_message = len.saturating_sub(PEEK as u64);
                out.append(&mut header);
            } else {
                let take = usize::try_from(left_in_message)
                    .unwrap_or(usize::MAX)
                    .min(chunk.len());
                out.extend_from_slice(&chunk[..take]);
                chunk = &chunk[take..];
                left_in_message -= take as u64;
            }
            // Byte trigger: pass exactly up to the offset.
            if action.is_none() {
                if let Some((room, a)) = shared.byte_limit(dir, passed) {
                    if (out.len() as u64) >= room {
                        let room = usize::try_from(room).unwrap_or(usize::MAX);
                        if to.write_all(&out[..room]).await.is_err() {
                            return;
                        }
                        passed += room as u64;
                        out.drain(..room);
                        shared.fired.fetch_add(1, Ordering::SeqCst);
                        // The byte rule fires once.
                        shared.disarm_byte_rule();
                        action = Some(a);
                    }
                }
            }
            match action {
                Some(Action::Cut) => {
                    conn.cut();
                    return;
                }
                Some(Action::HalfClose) => {
                    let _ = to.shutdown().await;
                    // Keep reading (and dropping) so the sender is not blocked.
                    while matches!(from.read(&mut buf).await, Ok(n) if n > 0) {}
                    return;
                }
                Some(Action::Stall) => {
                    let _ = conn.stalled.send(true);
                }
                Some(Action::Delay(d)) => delay = Some(d),
                None => {}
            }
            while *stalled.borrow() {
                if stalled.changed().await.is_err() {
                    return;
                }
            }
            if let Some(d) = delay {
                tokio::time::sleep(d).await;
            }
            if to.write_all(&out).await.is_err() {
                return;
            }
            passed += out.len() as u64;
        }
    }
}

impl Shared {
    fn disarm_byte_rule(&self) {
        let mut rule = lock(&self.rule);
        if matches!(
            *rule,
            Some(Rule {
                trigger: Trigger::AtByte { .. },
                ..
            })
        ) {
            *rule = None;
        }
    }
}
