//! An async QMP (QEMU Machine Protocol) client over a Unix socket.
//!
//! One [`Qmp`] handle per connection; it is cheap to clone and every clone
//! talks over the same socket. Inside, one reader task routes replies to the
//! waiting command by `id` and broadcasts events; one writer task sends
//! command lines (with a file descriptor attached when asked). Every line
//! QEMU sends is bounded ([`QmpConfig::max_line`]); a longer line, bytes that
//! are not JSON, or a JSON shape that is not QMP close the connection, and
//! every waiting and later command fails with [`Error::QmpClosed`] carrying
//! the reason.
//!
//! # Why not the `qapi` crate
//! `qapi`/`qapi-qmp` 0.15 (types generated from QEMU's schema) was evaluated
//! first. It is marked passively maintained, its tokio line codec buffers a
//! line without any size bound (an endless line grows memory until OOM), it
//! cannot attach a descriptor (SCM_RIGHTS) to a command, which `getfd` and
//! `add-fd` need, and it generates the whole schema at build time for the
//! dozen commands the driver uses. The types here are written by hand from
//! QEMU's `qapi/*.json` instead ([`commands`]).

pub mod commands;
mod lines;
pub mod message;

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{debug, trace, warn};

pub use commands::Command;
pub use lines::DEFAULT_MAX_LINE;
pub use message::{Event, Greeting};

use crate::error::{Error, Result};
use lines::{LineError, LineReader};
use message::{Incoming, Request};

/// Limits and timeouts of a QMP connection.
#[derive(Debug, Clone, Copy)]
pub struct QmpConfig {
    /// Longest line accepted from QEMU, newline included.
    pub max_line: usize,
    /// Time allowed for the greeting and `qmp_capabilities`.
    pub connect_timeout: Duration,
    /// Time allowed for one command unless the caller gives its own.
    pub command_timeout: Duration,
    /// Events buffered per subscriber before the slowest one lags.
    pub event_capacity: usize,
}

impl Default for QmpConfig {
    fn default() -> Self {
        Self {
            max_line: DEFAULT_MAX_LINE,
            connect_timeout: Duration::from_secs(30),
            command_timeout: Duration::from_secs(30),
            event_capacity: 1024,
        }
    }
}

/// A connected QMP monitor. Clones share the connection; it closes when the
/// last clone is dropped.
#[derive(Clone)]
pub struct Qmp {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Qmp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Qmp")
            .field("qemu", &self.inner.greeting.qmp.version.qemu)
            .field("closed", &*self.inner.shared.closed_rx.borrow())
            .finish()
    }
}

struct Inner {
    shared: Arc<Shared>,
    outgoing: mpsc::Sender<Outgoing>,
    next_id: AtomicU64,
    greeting: Greeting,
    config: QmpConfig,
    tasks: [JoinHandle<()>; 2],
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Both tasks hold a socket half; ending them closes the socket.
        for task in &self.tasks {
            task.abort();
        }
    }
}

type Reply = std::result::Result<Value, ReplyError>;

enum ReplyError {
    Qemu { class: String, desc: String },
    Closed(String),
}

/// State shared by the handle and the two tasks.
struct Shared {
    pending: Mutex<Pending>,
    events: broadcast::Sender<Event>,
    closed_tx: watch::Sender<Option<String>>,
    closed_rx: watch::Receiver<Option<String>>,
}

#[derive(Default)]
struct Pending {
    waiting: HashMap<u64, oneshot::Sender<Reply>>,
    /// Set once; registration checks it under the same lock, so no command
    /// can slip in after the waiters were failed and then wait forever.
    closed: Option<String>,
}

struct Outgoing {
    line: Vec<u8>,
    fd: Option<OwnedFd>,
}

impl Shared {
    fn close(&self, reason: String) {
        let waiting = {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            if pending.closed.is_some() {
                return;
            }
            pending.closed = Some(reason.clone());
            std::mem::take(&mut pending.waiting)
        };
        debug!(%reason, "qmp connection closed");
        for (_, tx) in waiting {
            let _ = tx.send(Err(ReplyError::Closed(reason.clone())));
        }
        self.closed_tx.send_replace(Some(reason));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Removes a command's waiter if the command future is dropped early.
struct PendingGuard<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.shared.lock().waiting.remove(&self.id);
    }
}

impl Qmp {
    /// Connects to the QMP socket at `path`, reads the greeting and leaves
    /// capabilities negotiation.
    ///
    /// # Errors
    /// [`Error::QmpConnect`] when the socket cannot be reached, the
    /// [`Error::QmpClosed`] family when the greeting is missing or malformed,
    /// [`Error::QmpTimeout`] when QEMU does not answer in time.
    pub async fn connect(path: &Path, config: QmpConfig) -> Result<Self> {
        let stream = UnixStream::connect(path)
            .await
            .map_err(|source| Error::QmpConnect {
                path: path.to_owned(),
                source,
            })?;
        Self::handshake(stream, config).await
    }

    /// Runs the QMP handshake on an already connected stream.
    ///
    /// # Errors
    /// As [`Qmp::connect`].
    pub async fn handshake(stream: UnixStream, config: QmpConfig) -> Result<Self> {
        let (read, write) = stream.into_split();
        let mut reader = LineReader::new(read, config.max_line);
        let greeting = tokio::time::timeout(config.connect_timeout, read_greeting(&mut reader))
            .await
            .map_err(|_| Error::QmpTimeout {
                command: "greeting".into(),
                after: config.connect_timeout,
            })??;
        debug!(qemu = ?greeting.qmp.version.qemu, "qmp greeting");

        let (closed_tx, closed_rx) = watch::channel(None);
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            events: broadcast::channel(config.event_capacity.max(1)).0,
            closed_tx,
            closed_rx,
        });
        let (out_tx, out_rx) = mpsc::channel(64);
        let reader_task = tokio::spawn(read_loop(reader, Arc::clone(&shared)));
        let writer_task = tokio::spawn(write_loop(write, out_rx, Arc::clone(&shared)));
        let qmp = Qmp {
            inner: Arc::new(Inner {
                shared,
                outgoing: out_tx,
                next_id: AtomicU64::new(1),
                greeting,
                config,
                tasks: [reader_task, writer_task],
            }),
        };
        qmp.execute_timeout(&commands::QmpCapabilities, config.connect_timeout)
            .await?;
        Ok(qmp)
    }

    /// The greeting QEMU sent (its version).
    pub fn greeting(&self) -> &Greeting {
        &self.inner.greeting
    }

    /// Runs `cmd` with the default timeout.
    ///
    /// # Errors
    /// [`Error::QmpCommand`] when QEMU refuses it, [`Error::QmpTimeout`],
    /// [`Error::QmpClosed`], [`Error::QmpReply`] when the reply has the wrong shape.
    ///
    /// # Cancel safety
    /// Cancel safe: a dropped call leaves the connection usable; QEMU may
    /// still run the command, and its late reply is discarded.
    pub async fn execute<C: Command>(&self, cmd: &C) -> Result<C::Reply> {
        self.execute_timeout(cmd, self.inner.config.command_timeout)
            .await
    }

    /// Runs `cmd`, waiting at most `timeout` for the reply.
    ///
    /// # Errors
    /// As [`Qmp::execute`].
    pub async fn execute_timeout<C: Command>(
        &self,
        cmd: &C,
        timeout: Duration,
    ) -> Result<C::Reply> {
        self.run(cmd, None, timeout).await
    }

    /// Runs `cmd` with `fd` attached (SCM_RIGHTS) to the bytes of the
    /// command, as `getfd` and `add-fd` require. QEMU gets its own copy;
    /// the caller keeps `fd`.
    ///
    /// # Errors
    /// As [`Qmp::execute`], plus [`Error::QmpIo`] when `fd` cannot be duplicated.
    pub async fn execute_with_fd<C: Command>(
        &self,
        cmd: &C,
        fd: BorrowedFd<'_>,
    ) -> Result<C::Reply> {
        let owned = fd.try_clone_to_owned().map_err(Error::QmpIo)?;
        self.run(cmd, Some(owned), self.inner.config.command_timeout)
            .await
    }

    /// Runs a command given by name with raw JSON arguments, for commands
    /// without a type in [`commands`].
    ///
    /// # Errors
    /// As [`Qmp::execute`].
    pub async fn execute_raw(&self, name: &str, arguments: Option<Value>) -> Result<Value> {
        self.send(name, arguments, None, self.inner.config.command_timeout)
            .await
    }

    /// Subscribes to events sent from now on.
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.inner.shared.events.subscribe()
    }

    /// Why the connection closed, or `None` while it is open.
    pub fn closed_reason(&self) -> Option<String> {
        self.inner.shared.closed_rx.borrow().clone()
    }

    /// Resolves when the connection closes, with the reason.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn closed(&self) -> String {
        let mut rx = self.inner.shared.closed_rx.clone();
        loop {
            if let Some(reason) = rx.borrow_and_update().clone() {
                return reason;
            }
            if rx.changed().await.is_err() {
                return "qmp connection dropped".into();
            }
        }
    }

    async fn run<C: Command>(
        &self,
        cmd: &C,
        fd: Option<OwnedFd>,
        timeout: Duration,
    ) -> Result<C::Reply> {
        let args = serde_json::to_value(cmd).map_err(|source| Error::QmpReply {
            command: C::NAME.into(),
            source,
        })?;
        let args = match args {
            Value::Null => None,
            Value::Object(ref m) if m.is_empty() => None,
            other => Some(other),
        };
        let value = self.send(C::NAME, args, fd, timeout).await?;
        serde_json::from_value(value).map_err(|source| Error::QmpReply {
            command: C::NAME.into(),
            source,
        })
    }

    async fn send(
        &self,
        name: &str,
        arguments: Option<Value>,
        fd: Option<OwnedFd>,
        timeout: Duration,
    ) -> Result<Value> {
        let shared = &self.inner.shared;
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let line = encode_request(name, arguments, id)?;
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = shared.lock();
            if let Some(reason) = &pending.closed {
                return Err(Error::QmpClosed {
                    reason: reason.clone(),
                });
            }
            pending.waiting.insert(id, tx);
        }
        let _guard = PendingGuard { shared, id };
        trace!(command = name, id, "qmp send");
        let outcome = tokio::time::timeout(timeout, async {
            self.inner
                .outgoing
                .send(Outgoing { line, fd })
                .await
                .map_err(|_| ReplyError::Closed("qmp writer stopped".into()))?;
            rx.await
                .unwrap_or_else(|_| Err(ReplyError::Closed("qmp connection dropped".into())))
        })
        .await;
        match outcome {
            Err(_) => Err(Error::QmpTimeout {
                command: name.into(),
                after: timeout,
            }),
            Ok(Ok(value)) => Ok(value),
            Ok(Err(ReplyError::Qemu { class, desc })) => Err(Error::QmpCommand {
                command: name.into(),
                class,
                desc,
            }),
            Ok(Err(ReplyError::Closed(reason))) => Err(Error::QmpClosed { reason }),
        }
    }
}

fn encode_request(name: &str, arguments: Option<Value>, id: u64) -> Result<Vec<u8>> {
    let mut line = serde_json::to_vec(&Request {
        execute: name,
        arguments,
        id,
    })
    .map_err(|source| Error::QmpReply {
        command: name.into(),
        source,
    })?;
    line.push(b'\n');
    Ok(line)
}

fn line_error(e: LineError, max: usize) -> Error {
    match e {
        LineError::TooLong => Error::QmpLineTooLong { limit: max },
        LineError::Truncated => Error::QmpProtocol {
            reason: "connection closed in the middle of a line".into(),
        },
        LineError::Io(e) => Error::QmpIo(e),
    }
}

async fn read_greeting(reader: &mut LineReader<OwnedReadHalf>) -> Result<Greeting> {
    let max = reader.max();
    let line = reader
        .next_line()
        .await
        .map_err(|e| line_error(e, max))?
        .ok_or_else(|| Error::QmpClosed {
            reason: "closed before the greeting".into(),
        })?;
    serde_json::from_slice(&line).map_err(|e| Error::QmpProtocol {
        reason: format!("bad greeting: {e}"),
    })
}

async fn read_loop(mut reader: LineReader<OwnedReadHalf>, shared: Arc<Shared>) {
    let max = reader.max();
    let reason = loop {
        let line = match reader.next_line().await {
            Ok(Some(line)) => line,
            Ok(None) => break "qemu closed the monitor socket".to_owned(),
            Err(e) => {
                let err = line_error(e, max);
                warn!(error = %err, "dropping qmp connection");
                break flatten(&err);
            }
        };
        trace!(line = %String::from_utf8_lossy(&line), "qmp recv");
        match serde_json::from_slice::<Incoming>(&line) {
            Ok(Incoming::Event(event)) => {
                debug!(event = %event.event, "qmp event");
                // No subscriber is fine: nobody is interested yet.
                let _ = shared.events.send(event);
            }
            Ok(Incoming::Return { value, id }) => deliver(&shared, id, Ok(value)),
            Ok(Incoming::Error { error, id }) => deliver(
                &shared,
                id,
                Err(ReplyError::Qemu {
                    class: error.class,
                    desc: error.desc,
                }),
            ),
            Err(e) => {
                let err = Error::QmpProtocol {
                    reason: format!("not a qmp message: {e}"),
                };
                warn!(error = %err, "dropping qmp connection");
                break err.to_string();
            }
        }
    };
    shared.close(reason);
}

/// The error and its causes on one line, for the close reason.
fn flatten(err: &Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn deliver(shared: &Shared, id: Option<Value>, reply: Reply) {
    let Some(id) = id.as_ref().and_then(Value::as_u64) else {
        // QEMU answers without an id only when it could not parse our
        // request; that is our bug, and no waiter can be matched.
        if let Err(ReplyError::Qemu { class, desc }) = &reply {
            warn!(%class, %desc, "qmp error without id");
        }
        return;
    };
    match shared.lock().waiting.remove(&id) {
        Some(tx) => {
            let _ = tx.send(reply);
        }
        None => debug!(id, "qmp reply for a command nobody waits for"),
    }
}

async fn write_loop(
    mut write: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Outgoing>,
    shared: Arc<Shared>,
) {
    let mut closed = shared.closed_rx.clone();
    loop {
        let msg = tokio::select! {
            msg = rx.recv() => match msg {
                Some(msg) => msg,
                None => return,
            },
            _ = closed.wait_for(Option::is_some) => return,
        };
        if let Err(e) = write_message(&mut write, &msg).await {
            shared.close(flatten(&Error::QmpIo(e)));
            return;
        }
    }
}

async fn write_message(write: &mut OwnedWriteHalf, msg: &Outgoing) -> std::io::Result<()> {
    let mut rest: &[u8] = &msg.line;
    if let Some(fd) = &msg.fd {
        let sent = send_with_fd(write.as_ref(), rest, fd.as_fd()).await?;
        rest = &rest[sent..];
    }
    write.write_all(rest).await
}

/// Sends the start of `bytes` with `fd` as SCM_RIGHTS ancillary data; the
/// kernel attaches the descriptor to the first byte, which is how QEMU's
/// monitor associates it with the command being parsed.
async fn send_with_fd(
    stream: &UnixStream,
    bytes: &[u8],
    fd: BorrowedFd<'_>,
) -> std::io::Result<usize> {
    use rustix::net::{sendmsg, SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    use std::io::IoSlice;
    loop {
        stream.writable().await?;
        let result = stream.try_io(tokio::io::Interest::WRITABLE, || {
            let fds = [fd];
            let mut space = [0u8; rustix::cmsg_space!(ScmRights(1))];
            let mut control = SendAncillaryBuffer::new(&mut space);
            if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
                return Err(std::io::Error::other("ancillary buffer too small"));
            }
            sendmsg(
                stream,
                &[IoSlice::new(bytes)],
                &mut control,
                SendFlags::NOSIGNAL | SendFlags::DONTWAIT,
            )
            .map_err(std::io::Error::from)
        });
        match result {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use commands::{Empty, QueryStatus, RunState, Stop};
    use tokio::io::{AsyncBufReadExt, BufReader};

    const GREETING: &str = r#"{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": ""}, "capabilities": ["oob"]}}"#;

    /// The QEMU end of a socket pair, driven line by line by the test.
    struct FakeQemu {
        lines: tokio::io::Lines<BufReader<OwnedReadHalf>>,
        write: OwnedWriteHalf,
    }

    impl FakeQemu {
        async fn send(&mut self, line: &str) {
            self.write
                .write_all(format!("{line}\n").as_bytes())
                .await
                .expect("fake qemu write");
        }

        /// Reads one command; returns (name, id, arguments).
        async fn recv(&mut self) -> (String, u64, Value) {
            let line = self
                .lines
                .next_line()
                .await
                .expect("fake qemu read")
                .expect("a command");
            let v: Value = serde_json::from_str(&line).expect("client sends json");
            (
                v["execute"].as_str().expect("execute").to_owned(),
                v["id"].as_u64().expect("numeric id"),
                v.get("arguments").cloned().unwrap_or(Value::Null),
            )
        }
    }

    fn fake_pair() -> (UnixStream, FakeQemu) {
        let (client, server) = UnixStream::pair().expect("socketpair");
        let (read, write) = server.into_split();
        (
            client,
            FakeQemu {
                lines: BufReader::new(read).lines(),
                write,
            },
        )
    }

    /// A connected client and the fake QEMU, past the handshake.
    async fn connected(config: QmpConfig) -> (Qmp, FakeQemu) {
        let (client, mut qemu) = fake_pair();
        let server = async {
            qemu.send(GREETING).await;
            let (name, id, _) = qemu.recv().await;
            assert_eq!(name, "qmp_capabilities");
            qemu.send(&format!(r#"{{"return": {{}}, "id": {id}}}"#))
                .await;
        };
        let (qmp, ()) = tokio::join!(Qmp::handshake(client, config), server);
        (qmp.expect("handshake"), qemu)
    }

    #[tokio::test]
    async fn handshake_reads_the_greeting_and_negotiates() {
        let (qmp, _qemu) = connected(QmpConfig::default()).await;
        assert_eq!(qmp.greeting().qmp.version.qemu.minor, 2);
        assert_eq!(qmp.closed_reason(), None);
    }

    #[tokio::test]
    async fn replies_are_matched_by_id_and_events_are_broadcast() {
        let (qmp, mut qemu) = connected(QmpConfig::default()).await;
        let mut events = qmp.events();
        let client = async {
            let (status, stop) = tokio::join!(qmp.execute(&QueryStatus), qmp.execute(&Stop));
            (status.expect("query-status"), stop.expect("stop"))
        };
        let server = async {
            let a = qemu.recv().await;
            let b = qemu.recv().await;
            let (status_id, stop_id) = if a.0 == "query-status" {
                (a.1, b.1)
            } else {
                (b.1, a.1)
            };
            // Answer in the opposite order, with an event in between.
            qemu.send(&format!(r#"{{"return": {{}}, "id": {stop_id}}}"#))
                .await;
            qemu.send(
                r#"{"event": "STOP", "data": {}, "timestamp": {"seconds": 5, "microseconds": 6}}"#,
            )
            .await;
            qemu.send(&format!(
                r#"{{"return": {{"running": false, "status": "paused"}}, "id": {status_id}}}"#
            ))
            .await;
        };
        let ((status, stop), ()) = tokio::join!(client, server);
        assert_eq!(status.status, RunState::Paused);
        assert!(!status.running);
        assert_eq!(stop, Empty {});
        let event = events.recv().await.expect("event");
        assert_eq!(event.event, message::names::STOP);
        assert_eq!(event.timestamp.seconds, 5);
    }

    #[tokio::test]
    async fn qemu_errors_name_the_command_and_class() {
        let (qmp, mut qemu) = connected(QmpConfig::default()).await;
        let server = async {
            let (_, id, _) = qemu.recv().await;
            qemu.send(&format!(
                r#"{{"error": {{"class": "DeviceNotActive", "desc": "No balloon device has been activated"}}, "id": {id}}}"#
            ))
            .await;
        };
        let (result, ()) = tokio::join!(qmp.execute(&commands::QueryBalloon), server);
        match result {
            Err(Error::QmpCommand {
                command,
                class,
                desc,
            }) => {
                assert_eq!(command, "query-balloon");
                assert_eq!(class, "DeviceNotActive");
                assert!(desc.contains("balloon"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn garbage_closes_the_connection_with_a_clear_error() {
        let (qmp, mut qemu) = connected(QmpConfig::default()).await;
        let server = async {
            let _ = qemu.recv().await;
            qemu.send("\u{1}\u{2} this is not json").await;
        };
        let (result, ()) = tokio::join!(qmp.execute(&Stop), server);
        match result {
            Err(Error::QmpClosed { reason }) => {
                assert!(reason.contains("not a qmp message"), "{reason}")
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(qmp.closed().await.contains("not a qmp message"));
        // Later commands fail at once, without waiting for a timeout.
        assert!(matches!(
            qmp.execute(&Stop).await,
            Err(Error::QmpClosed { .. })
        ));
        // And the socket was really dropped: the fake sees end of stream.
        assert!(qemu.lines.next_line().await.expect("read").is_none());
    }

    #[tokio::test]
    async fn json_that_is_not_qmp_closes_the_connection() {
        let (qmp, mut qemu) = connected(QmpConfig::default()).await;
        qemu.send(r#"{"surprise": true}"#).await;
        assert!(qmp.closed().await.contains("not a qmp message"));
    }

    #[tokio::test]
    async fn an_endless_line_is_cut_at_the_bound_and_the_connection_dropped() {
        let config = QmpConfig {
            max_line: 64 * 1024,
            ..QmpConfig::default()
        };
        let (qmp, mut qemu) = connected(config).await;
        let flood = async {
            let chunk = vec![b'x'; 16 * 1024];
            let mut sent = 0usize;
            // Bounded: far more than the limit, stops when the client hangs up.
            while sent < 64 * 1024 * 1024 {
                if qemu.write.write_all(&chunk).await.is_err() {
                    return sent;
                }
                sent += chunk.len();
            }
            sent
        };
        let (result, sent) = tokio::join!(qmp.execute(&Stop), flood);
        match result {
            Err(Error::QmpClosed { reason }) => {
                assert!(reason.contains("longer than 65536"), "{reason}")
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            sent < 64 * 1024 * 1024,
            "client hung up before the flood ended"
        );
    }

    #[tokio::test]
    async fn a_command_without_reply_times_out_and_the_connection_survives() {
        let config = QmpConfig {
            command_timeout: Duration::from_millis(100),
            ..QmpConfig::default()
        };
        let (qmp, mut qemu) = connected(config).await;
        let (first, _) = tokio::join!(qmp.execute(&Stop), qemu.recv());
        assert!(matches!(first, Err(Error::QmpTimeout { ref command, .. }) if command == "stop"));
        let server = async {
            let (name, id, _) = qemu.recv().await;
            qemu.send(&format!(r#"{{"return": {{}}, "id": {id}}}"#))
                .await;
            name
        };
        let (second, name) = tokio::join!(qmp.execute(&commands::Cont), server);
        assert_eq!(name, "cont");
        second.expect("later command works");
    }

    #[tokio::test]
    async fn a_bad_greeting_is_refused() {
        let (client, mut qemu) = fake_pair();
        qemu.send(r#"{"hello": "world"}"#).await;
        let err = Qmp::handshake(client, QmpConfig::default())
            .await
            .expect_err("bad greeting");
        assert!(matches!(err, Error::QmpProtocol { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn a_silent_peer_times_out_the_greeting() {
        let (client, _qemu) = fake_pair();
        let config = QmpConfig {
            connect_timeout: Duration::from_millis(50),
            ..QmpConfig::default()
        };
        let err = Qmp::handshake(client, config)
            .await
            .expect_err("no greeting");
        assert!(matches!(err, Error::QmpTimeout { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn arguments_are_sent_and_a_raw_command_works() {
        let (qmp, mut qemu) = connected(QmpConfig::default()).await;
        let server = async {
            let (name, id, args) = qemu.recv().await;
            qemu.send(&format!(r#"{{"return": "ok\r\n", "id": {id}}}"#))
                .await;
            (name, args)
        };
        let cmd = commands::HumanMonitorCommand {
            command_line: "info status".into(),
        };
        let (reply, (name, args)) = tokio::join!(qmp.execute(&cmd), server);
        assert_eq!(reply.expect("reply"), "ok\r\n");
        assert_eq!(name, "human-monitor-command");
        assert_eq!(args["command-line"], "info status");

        let server = async {
            let (name, id, args) = qemu.recv().await;
            qemu.send(&format!(r#"{{"return": [1], "id": {id}}}"#))
                .await;
            (name, args)
        };
        let (reply, (name, args)) = tokio::join!(
            qmp.execute_raw("x-test", Some(serde_json::json!({"a": 1}))),
            server
        );
        assert_eq!(reply.expect("raw reply"), serde_json::json!([1]));
        assert_eq!(
            (name.as_str(), args),
            ("x-test", serde_json::json!({"a": 1}))
        );
    }

    #[tokio::test]
    async fn a_descriptor_travels_with_its_command() {
        use rustix::net::{recvmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
        use std::io::{IoSliceMut, Read, Seek, Write};

        let (client, server) = std::os::unix::net::UnixStream::pair().expect("socketpair");
        client.set_nonblocking(true).expect("nonblocking");
        let client = UnixStream::from_std(client).expect("tokio stream");
        // The fake QEMU runs on a thread with blocking I/O and reads the
        // descriptor the way QEMU does, with recvmsg.
        let fake = std::thread::spawn(move || -> (String, Option<OwnedFd>) {
            let mut server = server;
            server
                .write_all(format!("{GREETING}\n").as_bytes())
                .expect("greeting");
            let mut fd = None;
            let mut text = Vec::new();
            let mut replied_caps = false;
            loop {
                let mut buf = [0u8; 4096];
                let mut space = [0u8; rustix::cmsg_space!(ScmRights(1))];
                let mut control = RecvAncillaryBuffer::new(&mut space);
                let got = recvmsg(
                    &server,
                    &mut [IoSliceMut::new(&mut buf)],
                    &mut control,
                    RecvFlags::empty(),
                )
                .expect("recvmsg");
                for msg in control.drain() {
                    if let RecvAncillaryMessage::ScmRights(mut fds) = msg {
                        fd = fds.next();
                    }
                }
                if got.bytes == 0 {
                    return (String::from_utf8_lossy(&text).into_owned(), fd);
                }
                text.extend_from_slice(&buf[..got.bytes]);
                // Answer every complete line with an empty return.
                while let Some(pos) = text.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = text.drain(..=pos).collect();
                    let v: Value = serde_json::from_slice(&line).expect("json");
                    let id = v["id"].as_u64().expect("id");
                    let reply = if v["execute"] == "add-fd" {
                        format!("{{\"return\": {{\"fdset-id\": 1, \"fd\": 42}}, \"id\": {id}}}\n")
                    } else {
                        format!("{{\"return\": {{}}, \"id\": {id}}}\n")
                    };
                    server.write_all(reply.as_bytes()).expect("reply");
                    if replied_caps && v["execute"] == "add-fd" {
                        return (String::from_utf8_lossy(&line).into_owned(), fd);
                    }
                    replied_caps = true;
                }
            }
        });
        let qmp = Qmp::handshake(client, QmpConfig::default())
            .await
            .expect("handshake");
        let mut file = tempfile::tempfile().expect("tempfile");
        let info = qmp
            .execute_with_fd(
                &commands::AddFd {
                    fdset_id: Some(1),
                    opaque: None,
                },
                file.as_fd(),
            )
            .await
            .expect("add-fd");
        assert_eq!(info.fd, 42);
        let (line, fd) = fake.join().expect("fake thread");
        assert!(line.contains("\"add-fd\""), "{line}");
        // Same open file: what is written through the passed copy shows up here.
        let mut passed = std::fs::File::from(fd.expect("descriptor received"));
        passed.write_all(b"through the socket").expect("write");
        let mut content = String::new();
        file.rewind().expect("rewind");
        file.read_to_string(&mut content).expect("read");
        assert_eq!(content, "through the socket");
    }
}
