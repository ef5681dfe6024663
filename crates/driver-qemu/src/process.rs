//! QEMU as a process: spawn it, watch it exit, re-attach to it.
//!
//! QEMU runs as the daemon's child in its own process group (a Ctrl-C or a
//! `systemctl stop` aimed at the daemon's group does not reach guests), with
//! stdin closed and stdout/stderr appended to a per-guest log file, so a
//! QEMU that dies while starting reports what it printed in
//! [`Error::EmulatorExited`].
//!
//! Exit is observed through a pidfd registered with tokio (no polling, no
//! SIGCHLD handler): the pidfd turns readable when the process ends, and
//! `waitid(P_PIDFD)` then reaps it when it is our child. After a daemon
//! restart the guest is no longer our child; [`QemuProcess::attach`] opens a
//! pidfd on its pid and the kernel still reports the exit, without a status.
//!
//! The QMP socket is created by the daemon and inherited by QEMU
//! (`-chardev socket,fd=N`), as libvirt does: the socket exists before QEMU
//! runs, so connecting cannot race QEMU's start, and a QEMU that dies before
//! its monitor is up closes our connection at once.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustix::process::{
    pidfd_open, pidfd_send_signal, Pid, PidfdFlags, Signal, WaitId, WaitidOptions,
};
use tokio::io::unix::AsyncFd;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::command::{LaunchSpec, Monitor};
use crate::error::{Error, Result};
use crate::qmp::{Qmp, QmpConfig};

/// How much of QEMU's log an error message quotes.
const STDERR_TAIL: u64 = 4096;

/// How long to wait for QEMU to finish exiting once its monitor closed
/// during start-up, before giving up on its exit status.
const EXIT_GRACE: Duration = Duration::from_secs(5);

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessExit {
    /// It exited with this code.
    Code(i32),
    /// A signal killed it.
    Signal(i32),
    /// It ended, but it was not our child (re-attached), so the status is gone.
    Unknown,
}

impl std::fmt::Display for ProcessExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Code(c) => write!(f, "exit code {c}"),
            Self::Signal(s) => write!(f, "signal {s}"),
            Self::Unknown => f.write_str("exit status unknown"),
        }
    }
}

/// A running (or just ended) QEMU process, watched through a pidfd.
///
/// Dropping it stops watching; the process keeps running.
#[derive(Debug)]
pub struct QemuProcess {
    pid: i32,
    pidfd: Arc<AsyncFd<OwnedFd>>,
    exit: watch::Receiver<Option<ProcessExit>>,
    watcher: JoinHandle<()>,
}

impl Drop for QemuProcess {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

impl QemuProcess {
    /// Starts watching `pid` through a new pidfd.
    fn watch(pid: i32) -> Result<Self> {
        let raw = Pid::from_raw(pid).ok_or_else(|| Error::Process {
            action: "watch",
            pid,
            source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
        })?;
        let fd = pidfd_open(raw, PidfdFlags::empty()).map_err(|e| Error::Process {
            action: "watch",
            pid,
            source: e.into(),
        })?;
        // SAFETY: the OwnedFd is moved into the AsyncFd and owned by it, so the
        // descriptor stays open and the same until the AsyncFd is dropped.
        let registered =
            unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) };
        let pidfd = Arc::new(registered.map_err(|e| Error::Process {
            action: "watch",
            pid,
            source: e.into(),
        })?);
        let (tx, exit) = watch::channel(None);
        let watcher = tokio::spawn(wait_exit(Arc::clone(&pidfd), pid, tx));
        Ok(Self {
            pid,
            pidfd,
            exit,
            watcher,
        })
    }

    /// Re-attaches to a QEMU started earlier (by this daemon or a previous
    /// one). `marker` must appear in the process's command line (the guest's
    /// UUID), so a recycled pid is not mistaken for the guest.
    ///
    /// Returns `Ok(None)` when no process has that pid any more.
    ///
    /// # Errors
    /// [`Error::NotOurProcess`] when the pid runs something else,
    /// [`Error::Process`] when the pidfd cannot be opened.
    pub fn attach(pid: i32, name: &str, marker: &str) -> Result<Option<Self>> {
        let process = match Self::watch(pid) {
            Ok(p) => p,
            Err(Error::Process { source, .. }) if source.raw_os_error() == Some(libc::ESRCH) => {
                return Ok(None)
            }
            Err(e) => return Err(e),
        };
        // Read after the pidfd exists: from here on the pid cannot be
        // recycled under us while the process is unreaped.
        // An empty command line means a zombie (or a process inside exec,
        // which a guest started earlier cannot be): treated as gone.
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let ours = cmdline
            .split(|&b| b == 0)
            .any(|arg| contains(arg, marker.as_bytes()));
        if !ours {
            if process.exit_status().is_some() || cmdline.is_empty() {
                // A zombie that is still our child (the driver was re-created
                // inside the same daemon) must be reaped, or it stays forever.
                let _ = reap(&process.pidfd, pid);
                return Ok(None);
            }
            return Err(Error::NotOurProcess {
                pid,
                name: name.into(),
            });
        }
        Ok(Some(process))
    }

    /// The process id.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// How it ended, or `None` while it runs.
    pub fn exit_status(&self) -> Option<ProcessExit> {
        *self.exit.borrow()
    }

    /// Waits until the process has ended.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn wait(&self) -> ProcessExit {
        let mut rx = self.exit.clone();
        let status = match rx.wait_for(Option::is_some).await {
            Ok(status) => *status,
            // The watcher only stops early when this handle is dropped.
            Err(_) => None,
        };
        status.unwrap_or(ProcessExit::Unknown)
    }

    /// Sends `signal` through the pidfd (never to a recycled pid). A process
    /// that already ended is not an error.
    ///
    /// # Errors
    /// [`Error::Process`] when the kernel refuses.
    pub fn signal(&self, signal: Signal) -> Result<()> {
        match pidfd_send_signal(self.pidfd.get_ref().as_fd(), signal) {
            Ok(()) => Ok(()),
            Err(e) if e == rustix::io::Errno::SRCH => Ok(()),
            Err(e) => Err(Error::Process {
                action: "signal",
                pid: self.pid,
                source: e.into(),
            }),
        }
    }

    /// SIGKILL, then wait for the end.
    ///
    /// # Errors
    /// As [`QemuProcess::signal`].
    pub async fn kill(&self) -> Result<ProcessExit> {
        let sent = Instant::now();
        self.signal(Signal::Kill)?;
        let status = self.wait().await;
        // Mostly the kernel freeing the guest's memory.
        debug!(
            pid = self.pid,
            exit_ms = ms(sent.elapsed()),
            "qemu killed and reaped"
        );
        Ok(status)
    }
}

async fn wait_exit(pidfd: Arc<AsyncFd<OwnedFd>>, pid: i32, tx: watch::Sender<Option<ProcessExit>>) {
    let status = match pidfd.readable().await {
        Ok(mut guard) => {
            guard.retain_ready();
            reap(&pidfd, pid)
        }
        Err(e) => {
            warn!(pid, error = %e, "cannot watch qemu pidfd");
            return;
        }
    };
    debug!(pid, %status, "qemu exited");
    tx.send_replace(Some(status));
}

fn reap(pidfd: &AsyncFd<OwnedFd>, pid: i32) -> ProcessExit {
    match rustix::process::waitid(
        WaitId::PidFd(pidfd.get_ref().as_fd()),
        WaitidOptions::EXITED | WaitidOptions::NOHANG,
    ) {
        Ok(Some(status)) => {
            if let Some(code) = status.exit_status() {
                ProcessExit::Code(code as i32)
            } else if let Some(sig) = status.terminating_signal() {
                ProcessExit::Signal(sig as i32)
            } else {
                ProcessExit::Unknown
            }
        }
        // ECHILD: not our child (re-attached); someone else reaps it.
        Ok(None) | Err(_) => {
            debug!(pid, "qemu ended; not our child, no exit status");
            ProcessExit::Unknown
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Held while a monitor listener is inheritable (see [`launch`]).
static SPAWN_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Files of one QEMU instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchPaths {
    /// The QMP socket (created by [`launch`]).
    pub qmp_socket: PathBuf,
    /// QEMU's pidfile.
    pub pidfile: PathBuf,
    /// QEMU's stdout and stderr, appended.
    pub log: PathBuf,
    /// Where channels without a path get their sockets (libvirt's
    /// per-domain channel directory).
    pub channel_dir: PathBuf,
}

impl LaunchPaths {
    /// The conventional layout: `<runtime_dir>/qemu/<name>.{monitor,pid}`,
    /// `<runtime_dir>/qemu/channel/<name>/` and `<log_dir>/<name>.log`.
    pub fn for_guest(runtime_dir: &Path, log_dir: &Path, name: &str) -> Self {
        let qemu = runtime_dir.join("qemu");
        Self {
            qmp_socket: qemu.join(format!("{name}.monitor")),
            pidfile: qemu.join(format!("{name}.pid")),
            log: log_dir.join(format!("{name}.log")),
            channel_dir: Self::channel_dir(runtime_dir, name),
        }
    }

    /// `<runtime_dir>/qemu/channel/<name>`.
    pub fn channel_dir(runtime_dir: &Path, name: &str) -> PathBuf {
        runtime_dir.join("qemu").join("channel").join(name)
    }
}

/// A started QEMU with its monitor connected; vCPUs are still stopped (`-S`).
#[derive(Debug)]
pub struct Launched {
    /// The process.
    pub process: QemuProcess,
    /// Its monitor.
    pub qmp: Qmp,
}

/// Starts QEMU for `spec` and connects to its monitor. The spec's monitor
/// and pidfile are replaced by the ones in `paths`.
///
/// # Errors
/// [`Error::Spawn`] when the binary cannot run, [`Error::EmulatorExited`]
/// (with QEMU's stderr) when it dies before its monitor answers,
/// [`Error::File`] for the runtime files, QMP errors otherwise (QEMU is
/// killed before they are returned).
pub async fn launch(
    mut spec: LaunchSpec,
    paths: &LaunchPaths,
    qmp_config: QmpConfig,
) -> Result<Launched> {
    let started = Instant::now();
    for dir in [
        paths.qmp_socket.parent(),
        paths.log.parent(),
        paths.pidfile.parent(),
    ]
    .into_iter()
    .flatten()
    {
        std::fs::create_dir_all(dir).map_err(|e| Error::file("create", dir, e))?;
    }
    // The monitor socket gives full control of the guest: only the daemon's
    // user may reach it.
    if let Some(dir) = paths.qmp_socket.parent() {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::file("restrict", dir, e))?;
    }
    match std::fs::remove_file(&paths.qmp_socket) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::file("remove", &paths.qmp_socket, e)),
    }
    let listener = UnixListener::bind(&paths.qmp_socket)
        .map_err(|e| Error::file("bind", &paths.qmp_socket, e))?;
    let monitor_fd = listener.as_raw_fd();
    spec.monitor = Monitor::Fd(monitor_fd);
    spec.pidfile = Some(paths.pidfile.clone());
    if !spec.place_channels(&paths.channel_dir).is_empty() {
        // The guest agent's socket controls the guest too: daemon user only.
        std::fs::create_dir_all(&paths.channel_dir)
            .and_then(|()| {
                std::fs::set_permissions(&paths.channel_dir, std::fs::Permissions::from_mode(0o700))
            })
            .map_err(|e| Error::file("create", &paths.channel_dir, e))?;
    }
    let argv = spec.argv()?;

    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&paths.log)
        .map_err(|e| Error::file("open", &paths.log, e))?;
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let line = std::iter::once(spec.emulator.as_os_str())
        .chain(argv.iter().map(|a| a.as_os_str()))
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    writeln!(log, "{stamp}: starting up\n{line}")
        .map_err(|e| Error::file("write", &paths.log, e))?;
    let start_offset = log
        .seek(SeekFrom::End(0))
        .map_err(|e| Error::file("write", &paths.log, e))?;
    let stdout = log
        .try_clone()
        .map_err(|e| Error::file("open", &paths.log, e))?;

    let mut command = std::process::Command::new(&spec.emulator);
    command
        .args(&argv)
        .stdin(Stdio::null())
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(log))
        .process_group(0);
    // No pre_exec closure: without one std starts QEMU with posix_spawn
    // (vfork), not a fork of the whole daemon, which cost 2-10 ms per start
    // on a loaded machine. QEMU must inherit the listener, so it is made
    // inheritable just for the spawn; the lock keeps a concurrent QEMU start
    // from inheriting it too (a copy in another QEMU would keep the socket
    // listening after this QEMU is gone).
    let child = {
        let _spawning = SPAWN_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        rustix::io::fcntl_setfd(&listener, rustix::io::FdFlags::empty())
            .map_err(|e| Error::file("pass", &paths.qmp_socket, e.into()))?;
        let child = command.spawn().map_err(|source| Error::Spawn {
            emulator: spec.emulator.clone(),
            source,
        });
        // Our copy must go (also on failure): QEMU's exit has to close the
        // socket for our reader.
        drop(listener);
        child?
    };
    let pid = child.id() as i32;
    // std's Child neither kills nor reaps on drop; the pidfd watcher reaps.
    drop(child);
    let spawned = started.elapsed();
    info!(pid, name = %spec.name, "qemu spawned");
    let process = match QemuProcess::watch(pid) {
        Ok(p) => p,
        Err(e) => {
            // Without a pidfd we cannot supervise it; do not leave it behind.
            if let Some(p) = Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(p, Signal::Kill);
            }
            return Err(e);
        }
    };

    let connected = tokio::select! {
        qmp = Qmp::connect(&paths.qmp_socket, qmp_config) => qmp,
        status = process.wait() => {
            return Err(exited(status, &paths.log, start_offset));
        }
    };
    match connected {
        Ok(qmp) => {
            // The timeline of a start, for `--log-filter migrated_driver_qemu=debug`:
            // files and fork/exec, then QEMU's own start-up up to its
            // greeting and the capabilities negotiation.
            debug!(
                pid,
                spawn_ms = ms(spawned),
                monitor_ready_ms = ms(started.elapsed() - spawned),
                "qemu monitor ready"
            );
            Ok(Launched { process, qmp })
        }
        Err(err) => {
            // The usual cause is QEMU exiting; its pidfd says so shortly after
            // the socket closed.
            if let Ok(status) = tokio::time::timeout(EXIT_GRACE, process.wait()).await {
                return Err(exited(status, &paths.log, start_offset));
            }
            warn!(pid, error = %err, "qemu monitor unusable; killing qemu");
            let _ = process.kill().await;
            Err(err)
        }
    }
}

/// Milliseconds with a fraction, for timeline log fields.
pub(crate) fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e5).round() / 100.0
}

fn exited(status: ProcessExit, log: &Path, offset: u64) -> Error {
    Error::EmulatorExited {
        status: status.to_string(),
        stderr: read_tail(log, offset),
    }
}

/// The end of what QEMU wrote to its log since `offset`.
fn read_tail(log: &Path, offset: u64) -> String {
    let read = || -> std::io::Result<String> {
        let mut f = File::open(log)?;
        let len = f.metadata()?.len();
        let from = offset.max(len.saturating_sub(STDERR_TAIL));
        f.seek(SeekFrom::Start(from))?;
        let mut buf = Vec::new();
        f.take(STDERR_TAIL).read_to_end(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf).trim().to_owned())
    };
    match read() {
        Ok(text) if text.is_empty() => "(no output)".into(),
        Ok(text) => text,
        Err(e) => format!("(cannot read {}: {e})", log.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_reads_only_this_start_and_at_most_the_bound() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("g.log");
        std::fs::write(&log, "old run error\n").expect("write");
        let offset = std::fs::metadata(&log).expect("meta").len();
        let mut f = OpenOptions::new().append(true).open(&log).expect("open");
        writeln!(f, "qemu-system-x86_64: unsupported machine type").expect("write");
        assert_eq!(
            read_tail(&log, offset),
            "qemu-system-x86_64: unsupported machine type"
        );

        let big = "x".repeat(10_000);
        writeln!(f, "{big}").expect("write");
        assert!(read_tail(&log, offset).len() <= STDERR_TAIL as usize);
        assert!(read_tail(&dir.path().join("missing"), 0).starts_with("(cannot read"));
    }

    #[tokio::test]
    async fn pidfd_reports_exit_code_of_a_child() {
        let child = std::process::Command::new("sh")
            .args(["-c", "exit 3"])
            .spawn()
            .expect("spawn sh");
        let process = QemuProcess::watch(child.id() as i32).expect("pidfd");
        drop(child);
        assert_eq!(process.wait().await, ProcessExit::Code(3));
    }

    #[tokio::test]
    async fn kill_goes_through_the_pidfd() {
        let child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let process = QemuProcess::watch(child.id() as i32).expect("pidfd");
        drop(child);
        assert_eq!(process.exit_status(), None);
        assert_eq!(
            process.kill().await.expect("kill"),
            ProcessExit::Signal(libc::SIGKILL)
        );
        // Signalling an ended process is not an error.
        process.signal(Signal::Term).expect("no error after exit");
    }

    #[tokio::test]
    async fn attach_checks_the_marker_in_the_command_line() {
        // This test process: alive for the whole test, command line known.
        let pid = std::process::id() as i32;
        let argv0 = std::env::args().next().expect("argv[0]");
        let other = QemuProcess::attach(pid, "g", "c7a5fdbd-cdaf-9455-926a-d65c16db1809");
        assert!(
            matches!(other, Err(Error::NotOurProcess { .. })),
            "{other:?}"
        );
        let attached = QemuProcess::attach(pid, "g", &argv0)
            .expect("attach")
            .expect("alive");
        assert_eq!(attached.pid(), pid);
        assert_eq!(attached.exit_status(), None);
    }

    #[tokio::test]
    async fn attach_to_a_gone_pid_is_none() {
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let pid = child.id() as i32;
        child.wait().expect("reap");
        assert!(QemuProcess::attach(pid, "g", "true")
            .expect("no error")
            .is_none());
    }
}
