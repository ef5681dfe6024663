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
pub mod devices;
mod lines;
pub mod message;
pub mod throttle;

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    /// Held while a command without an `id` waits for its answer.
    anonymous: tokio::sync::Mutex<()>,
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
    /// Commands sent and not yet answered, with when each was sent and
    /// whether the waiter wants the reply line itself ([`Qmp::passthrough`]).
    waiting: HashMap<u64, (oneshot::Sender<Reply>, Instant, bool)>,
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
        for (_, (tx, _, _)) in waiting {
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
                anonymous: tokio::sync::Mutex::new(()),
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
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let line = encode_request(name, arguments, id)?;
        self.send_line(
            name,
            id,
            line,
            None,
            self.inner.config.command_timeout,
            false,
        )
        .await
    }

    /// Runs a command a user wrote (`virsh qemu-monitor-command`), as
    /// libvirt's qemuMonitorJSONArbitraryCommand: a JSON object naming a
    /// command in `execute` gets this connection's next `id` added, so its
    /// reply reaches only this caller; any other JSON (no `execute`, not an
    /// object) goes to QEMU as it is, and QEMU's answer to it, which has no
    /// `id`, is this caller's (one such command at a time). The answer is
    /// QEMU's whole reply line without whitespace, error replies included
    /// (`{"return":..,"id":..}`, `{"id":..,"error":..}`). Events the command
    /// causes go to every subscriber as usual.
    ///
    /// # Errors
    /// [`Error::QmpTimeout`] and [`Error::QmpClosed`] as [`Qmp::execute`]; a
    /// QEMU error is not one (it is the answer).
    pub async fn passthrough(&self, command: Value) -> Result<String> {
        let timeout = self.inner.config.command_timeout;
        let name = command
            .get("execute")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let reply = match (name, command) {
            (Some(name), Value::Object(mut object)) => {
                let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
                object.insert("id".into(), Value::from(id));
                let line = request_line(&name, &Value::Object(object))?;
                self.send_line(&name, id, line, None, timeout, true).await?
            }
            (_, other) => {
                let _one = self.inner.anonymous.lock().await;
                let line = request_line("qmp input", &other)?;
                self.send_line("qmp input", ANONYMOUS, line, None, timeout, true)
                    .await?
            }
        };
        Ok(match reply {
            Value::String(text) => text,
            other => other.to_string(),
        })
    }

    /// Subscribes to events sent from now on.
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.inner.shared.events.subscribe()
    }

    /// How long the oldest command still waiting for its reply has been in
    /// flight, `None` when none is (libvirt's "occupied" monitor).
    pub fn busy_for(&self) -> Option<Duration> {
        let pending = self.inner.shared.lock();
        pending
            .waiting
            .values()
            .map(|(_, sent, _)| sent.elapsed())
            .max()
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
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let line = encode_request(C::NAME, args, id)?;
        let value = self
            .send_line(C::NAME, id, line, fd, timeout, false)
            .await?;
        serde_json::from_value(value).map_err(|source| Error::QmpReply {
            command: C::NAME.into(),
            source,
        })
    }

    /// Sends `line` (a request carrying `id`) and waits for its reply:
    /// the `return` value, or with `raw` the reply line as a JSON string.
    async fn send_line(
        &self,
        name: &str,
        id: u64,
        line: Vec<u8>,
        fd: Option<OwnedFd>,
        timeout: Duration,
        raw: bool,
    ) -> Result<Value> {
        let shared = &self.inner.shared;
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = shared.lock();
            if let Some(reason) = &pending.closed {
                return Err(Error::QmpClosed {
                    reason: reason.clone(),
                });
            }
            pending.waiting.insert(id, (tx, Instant::now(), raw));
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

/// The waiter key of the one command in flight without an `id`: QEMU
/// answers such input (no `execute`, not an object) without an `id`. The
/// driver's own ids start at 1.
const ANONYMOUS: u64 = 0;

/// `value` as one request line.
fn request_line(name: &str, value: &Value) -> Result<Vec<u8>> {
    let mut line = serde_json::to_vec(value).map_err(|source| Error::QmpReply {
        command: name.into(),
        source,
    })?;
    line.push(b'\n');
    Ok(line)
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
            Ok(Incoming::Return { value, id }) => deliver(&shared, id, Ok(value), &line),
            Ok(Incoming::Error { error, id }) => deliver(
                &shared,
                id,
                Err(ReplyError::Qemu {
                    class: error.class,
                    desc: error.desc,
                }),
                &line,
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

fn deliver(shared: &Shared, id: Option<Value>, reply: Reply, line: &[u8]) {
    let id = match id {
        Some(id) => match id.as_u64() {
            Some(id) => id,
            None => return debug!(%id, "qmp reply with an id that is not ours"),
        },
        // QEMU answers without an id only input it could not take as a
        // command: a user's ([`Qmp::passthrough`]), or our bug.
        None => {
            if let Err(ReplyError::Qemu { class, desc }) = &reply {
                debug!(%class, %desc, "qmp error without id");
            }
            ANONYMOUS
        }
    };
    match shared.lock().waiting.remove(&id) {
        Some((tx, _, true)) => {
            let text = compact_json(&String::from_utf8_lossy(line));
            let _ = tx.send(Ok(Value::String(text)));
        }
        Some((tx, _, false)) => {
            let _ = tx.send(reply);
        }
        None => debug!(id, "qmp reply for a command nobody waits for"),
    }
}

/// `text` (one JSON document) without the whitespace between tokens, so a
/// reply reads as libvirt prints it (`{"return":{},"id":3}`) while keeping
/// QEMU's member order.
pub(crate) fn compact_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in text.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_whitespace() {
            out.push(c);
        }
    }
    out
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
mod tests;
