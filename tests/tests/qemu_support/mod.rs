//! Shared helpers of the `qemu_*` integration tests: two `migrated` daemons
//! serving `qemu:///system` on loopback (distinct host UUIDs, disjoint
//! migration port ranges), real QEMU guests booting the project's workload
//! kernel, and the checks every scenario ends with (which QEMU processes run
//! a guest, its workload counter, its status file).
//!
//! QEMU guests outlive their daemon by design, so [`QemuHosts`] kills, when
//! dropped, every QEMU process that runs one of its guests: a failing test
//! must not leave emulators behind.

#![allow(dead_code)] // each test file uses its own subset

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use migrated_driver_qemu::status::StatusFile;
use migrated_driver_qemu::workload;
use migrated_tests::clients::{stderr_of, stdout_of, Pki};
use migrated_tests::{free_port, random_uuid, require_binary, virsh, wait_until, Daemon};

use crate::migrate_support::{ctl, ctl_ok};

/// Memory of the guests the migrations move.
pub const GUEST_MIB: u32 = 256;
/// What the workload dirties per pass while migrating.
pub const DIRTY_MIB: u32 = 64;
/// Ports per daemon for incoming migration data.
const PORTS_PER_DAEMON: u16 = 8;
/// How long a guest may take to boot far enough to count, or a counter to move.
pub const GUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// QEMU tests in one test binary run one at a time: two cores cannot run
/// several pairs of TCG guests migrating at once without missing timeouts.
static SERIAL: Mutex<()> = Mutex::new(());

/// Two daemons (A the source, B the destination) serving only the QEMU
/// driver, and the workload kernel installed for their guests.
pub struct QemuHosts {
    /// Source daemon.
    pub a: Daemon,
    /// Destination daemon.
    pub b: Daemon,
    kernel: PathBuf,
    /// The migration TLS files, when started with [`QemuHosts::start_tls`].
    pub tls: Option<MigrationTlsDirs>,
    uuids: Mutex<Vec<String>>,
    _kernel_dir: tempfile::TempDir,
    _serial: MutexGuard<'static, ()>,
}

/// `None` (after a loud SKIPPED) when QEMU or virsh is missing locally;
/// under `CI` a missing tool fails the test.
pub fn tools_present() -> bool {
    require_binary("qemu-system-x86_64").is_some() && require_binary("virsh").is_some()
}

/// A port range of [`PORTS_PER_DAEMON`] starting at a currently free port,
/// disjoint from `other`.
fn port_range(other: Option<(u16, u16)>) -> (u16, u16) {
    wait_until(
        Duration::from_secs(5),
        "a free migration port range",
        || {
            let first = free_port();
            let last = first.checked_add(PORTS_PER_DAEMON - 1)?;
            match other {
                Some((o_first, o_last)) if first <= o_last && o_first <= last => None,
                _ => Some((first, last)),
            }
        },
    )
}

fn qemu_daemon(name: &str, ports: (u16, u16), tls_dir: Option<&Path>) -> Daemon {
    let mut builder = Daemon::builder()
        .hostname(name)
        .drivers("qemu")
        .tcp()
        .args([
            "--migration-ports".to_owned(),
            format!("{}-{}", ports.0, ports.1),
            "--migration-address".to_owned(),
            "127.0.0.1".to_owned(),
        ]);
    if let Some(dir) = tls_dir {
        builder = builder.args([
            "--migrate-tls-x509-cert-dir".to_owned(),
            dir.display().to_string(),
        ]);
    }
    builder.spawn()
}

/// Each daemon's own copy of the test PKI's QEMU migration TLS files, so a
/// test can break one side's without touching the other's.
pub struct MigrationTlsDirs {
    /// The PKI the files come from (also has the foreign client files).
    pub pki: Pki,
    /// The source's `migrate_tls_x509_cert_dir`.
    pub a: PathBuf,
    /// The destination's `migrate_tls_x509_cert_dir`.
    pub b: PathBuf,
    _root: tempfile::TempDir,
}

impl MigrationTlsDirs {
    fn generate() -> Option<Self> {
        let pki = Pki::generate()?;
        let root = tempfile::Builder::new()
            .prefix("migrated-qemu-tls-")
            .tempdir()
            .expect("TLS temp dir");
        let (a, b) = (root.path().join("a"), root.path().join("b"));
        for dir in [&a, &b] {
            copy_dir(&pki.qemu_dir(), dir);
        }
        Some(Self {
            pki,
            a,
            b,
            _root: root,
        })
    }
}

/// Copies the files of `from` into `to` (created).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create directory");
    for entry in std::fs::read_dir(from).expect("read directory") {
        let entry = entry.expect("directory entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy file");
    }
}

impl QemuHosts {
    /// Starts both daemons; `None` when the tools are missing (see
    /// [`tools_present`]).
    pub fn start() -> Option<Self> {
        Self::start_with(None)
    }

    /// As [`QemuHosts::start`], each daemon with its own migration TLS
    /// directory (a copy of the test PKI's QEMU files); `None` also when
    /// openssl is missing.
    pub fn start_tls() -> Option<Self> {
        if !tools_present() {
            return None;
        }
        Self::start_with(Some(MigrationTlsDirs::generate()?))
    }

    fn start_with(tls: Option<MigrationTlsDirs>) -> Option<Self> {
        if !tools_present() {
            return None;
        }
        let serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let a_ports = port_range(None);
        let b_ports = port_range(Some(a_ports));
        let kernel_dir = tempfile::Builder::new()
            .prefix("migrated-qemu-kernel-")
            .tempdir()
            .expect("kernel temp dir");
        let kernel = workload::install(kernel_dir.path()).expect("install the workload kernel");
        Some(Self {
            a: qemu_daemon("qemu-a", a_ports, tls.as_ref().map(|t| t.a.as_path())),
            b: qemu_daemon("qemu-b", b_ports, tls.as_ref().map(|t| t.b.as_path())),
            kernel,
            tls,
            uuids: Mutex::new(Vec::new()),
            _kernel_dir: kernel_dir,
            _serial: serial,
        })
    }

    /// `qemu+tcp://127.0.0.1:PORT/system` of the source.
    pub fn a_uri(&self) -> String {
        qemu_uri(&self.a)
    }

    /// `qemu+tcp://127.0.0.1:PORT/system` of the destination.
    pub fn b_uri(&self) -> String {
        qemu_uri(&self.b)
    }

    /// A workload guest's XML (TCG, so it runs without KVM), with a fresh
    /// UUID that the cleanup will look for.
    pub fn guest_xml(&self, name: &str, memory_mib: u32, dirty_mib: u32) -> (String, String) {
        let uuid = random_uuid();
        self.uuids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(uuid.clone());
        let xml = format!(
            "<domain type='qemu'><name>{name}</name><uuid>{uuid}</uuid>\
             <memory unit='MiB'>{memory_mib}</memory><vcpu>1</vcpu>\
             <os><type arch='x86_64' machine='pc'>hvm</type>\
             <kernel>{}</kernel><cmdline>dirty_mib={dirty_mib}</cmdline></os></domain>\n",
            self.kernel.display()
        );
        (xml, uuid)
    }

    /// Defines a persistent workload guest on `uri` with virsh; returns its UUID.
    pub fn define(&self, uri: &str, name: &str, memory_mib: u32, dirty_mib: u32) -> String {
        let (xml, uuid) = self.guest_xml(name, memory_mib, dirty_mib);
        let path = self._kernel_dir.path().join(format!("{name}.xml"));
        std::fs::write(&path, xml).expect("write guest XML");
        self.virsh_ok(uri, &["define", path.to_str().expect("utf-8 path")]);
        uuid
    }

    /// Defines `xml` (from [`QemuHosts::guest_xml`], possibly edited) on `uri`.
    pub fn define_xml(&self, uri: &str, name: &str, xml: &str) {
        let path = self._kernel_dir.path().join(format!("{name}.xml"));
        std::fs::write(&path, xml).expect("write guest XML");
        self.virsh_ok(uri, &["define", path.to_str().expect("utf-8 path")]);
    }

    /// Defines and starts a [`GUEST_MIB`] guest dirtying [`DIRTY_MIB`] on the
    /// source and waits until its workload counts; returns (uuid, counter).
    pub fn running_guest(&self, name: &str) -> (String, u64) {
        let uri = self.a_uri();
        let uuid = self.define(&uri, name, GUEST_MIB, DIRTY_MIB);
        self.virsh_ok(&uri, &["start", name]);
        let counter = counter_above(&uri, name, 0, self);
        (uuid, counter)
    }

    /// Runs virsh and insists on success; returns stdout.
    #[track_caller]
    pub fn virsh_ok(&self, uri: &str, args: &[&str]) -> String {
        let out = virsh(uri, args);
        assert!(
            out.status.success(),
            "virsh {args:?} failed: {}{}\n{}",
            stdout_of(&out),
            stderr_of(&out),
            self.logs()
        );
        stdout_of(&out)
    }

    /// Runs migratectl and insists on success; returns stdout.
    #[track_caller]
    pub fn ctl_ok(&self, uri: &str, args: &[&str]) -> String {
        let out = ctl(uri, args);
        assert!(
            out.status.success(),
            "migratectl {args:?} failed: {}{}\n{}",
            stdout_of(&out),
            stderr_of(&out),
            self.logs()
        );
        stdout_of(&out)
    }

    /// Both daemons' log tails, for failure messages.
    pub fn logs(&self) -> String {
        format!(
            "--- source log ---\n{}\n--- destination log ---\n{}",
            tail(&self.a.logs()),
            tail(&self.b.logs())
        )
    }
}

impl Drop for QemuHosts {
    fn drop(&mut self) {
        let uuids = self.uuids.lock().unwrap_or_else(|p| p.into_inner());
        for uuid in uuids.iter() {
            for pid in qemu_pids(uuid) {
                // SAFETY: kill(2) has no memory-safety preconditions; the pid
                // runs a QEMU whose command line names a UUID this test made.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// `qemu+tcp://127.0.0.1:PORT/system` of a daemon.
pub fn qemu_uri(daemon: &Daemon) -> String {
    format!("qemu+tcp://127.0.0.1:{}/system", daemon.tcp_port())
}

/// Live processes (zombies have an empty command line) of a QEMU emulator
/// whose command line names `uuid`.
pub fn qemu_pids(uuid: &str) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<i32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                return false;
            };
            let mut args = cmdline
                .split(|&b| b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned());
            args.next().is_some_and(|exe| exe.contains("qemu-system"))
                && args.any(|a| a.contains(uuid))
        })
        .collect();
    pids.sort_unstable();
    pids
}

/// Whether `pid` is gone (or a zombie nobody has reaped yet).
pub fn pid_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // "pid (comm) S ..." — the state follows the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state == "Z" || state == "X"),
    }
}

/// The command line of the only QEMU running `uuid`, arguments joined by spaces.
pub fn qemu_cmdline(uuid: &str) -> String {
    let pids = qemu_pids(uuid);
    assert_eq!(pids.len(), 1, "QEMUs of {uuid}: {pids:?}");
    let raw = std::fs::read(format!("/proc/{}/cmdline", pids[0])).expect("read cmdline");
    String::from_utf8_lossy(&raw).replace('\0', " ")
}

/// The QEMU pid recorded in `daemon`'s status file of `name`, if it runs there.
pub fn status_pid(daemon: &Daemon, name: &str) -> Option<i32> {
    StatusFile::read(&StatusFile::path(daemon.runtime_dir(), name))
        .ok()
        .map(|s| s.pid)
}

/// The workload's pass counter, as the daemon reads it through QMP
/// (`migratectl migration-status` detail), or `None`.
pub fn counter(uri: &str, name: &str) -> Option<u64> {
    let out = ctl(uri, &["migration-status", name]);
    if !out.status.success() {
        return None;
    }
    let text = stdout_of(&out);
    let rest = text.split("workload counter ").nth(1)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Waits until the counter on `uri` is above `above`; returns it.
#[track_caller]
pub fn counter_above(uri: &str, name: &str, above: u64, hosts: &QemuHosts) -> u64 {
    let deadline = std::time::Instant::now() + GUEST_TIMEOUT;
    loop {
        if let Some(c) = counter(uri, name).filter(|&c| c > above) {
            return c;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the workload counter of {name} on {uri} never passed {above}: last {:?}\n{}",
            counter(uri, name),
            hosts.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// After a migration from A to B: the source's QEMU (`src_pid`) is gone, the
/// destination's runs, it is the only QEMU running the guest, and the
/// workload counted past `before` there.
#[track_caller]
pub fn moved_and_counting(hosts: &QemuHosts, name: &str, uuid: &str, src_pid: i32, before: u64) {
    wait_until(Duration::from_secs(20), "the source QEMU to exit", || {
        pid_gone(src_pid).then_some(())
    });
    let dst_pid = status_pid(&hosts.b, name)
        .unwrap_or_else(|| panic!("no status file of {name} on B\n{}", hosts.logs()));
    assert_ne!(dst_pid, src_pid);
    assert!(
        !pid_gone(dst_pid),
        "destination QEMU {dst_pid} is not running"
    );
    assert_eq!(
        qemu_pids(uuid),
        vec![dst_pid],
        "exactly the destination's QEMU runs {name}"
    );
    assert_eq!(status_pid(&hosts.a, name), None, "source status file left");
    let after = counter_above(&hosts.b_uri(), name, before, hosts);
    assert!(after > before);
}

/// Runs virsh, insists on failure and returns its stderr.
#[track_caller]
pub fn virsh_err(uri: &str, args: &[&str]) -> String {
    let out = virsh(uri, args);
    assert!(
        !out.status.success(),
        "virsh {args:?} succeeded: {}",
        stdout_of(&out)
    );
    stderr_of(&out)
}

/// virsh/migratectl `domstate` as text, `None` when the host lacks the guest.
pub fn domstate(uri: &str, name: &str) -> Option<String> {
    let out = virsh(uri, &["domstate", name]);
    out.status
        .success()
        .then(|| stdout_of(&out).trim().to_owned())
}

/// Whether a migration job still owns the guest on `uri` (migration-status role).
pub fn job_free(uri: &str, name: &str) -> bool {
    let out = ctl_ok(uri, &["migration-status", name]);
    out.lines()
        .find_map(|l| l.strip_prefix("Role:"))
        .is_some_and(|r| r.trim() == "none")
}

/// `<state_dir>/qemu`: the QEMU migration manager's directory (journal,
/// `pause-at` requests and `paused-at-*` markers of test builds).
pub fn migration_dir(daemon: &Daemon) -> PathBuf {
    daemon.state_dir().join("qemu")
}

/// Asks `daemon` to hold its next migration at `point` (a test build's pause
/// hook); returns the marker it writes when it gets there.
pub fn pause_at(daemon: &Daemon, point: &str) -> PathBuf {
    let dir = migration_dir(daemon);
    std::fs::create_dir_all(&dir).expect("create migration dir");
    std::fs::write(dir.join("pause-at"), point).expect("write pause-at");
    dir.join(format!("paused-at-{point}"))
}

/// Stops holding migrations on `daemon` and releases a held one.
pub fn release(daemon: &Daemon, marker: &Path) {
    let _ = std::fs::remove_file(migration_dir(daemon).join("pause-at"));
    let _ = std::fs::remove_file(marker);
}

/// Runs `virsh ARGS` with a FIFO as the dump file: the dump stalls once the
/// pipe is full, `stalled` runs, then the pipe is drained. Answers virsh's
/// output and the bytes the dump wrote.
pub fn dump_into_fifo(
    uri: &str,
    fifo: &std::path::Path,
    args: &[&str],
    stalled: impl FnOnce(),
) -> (std::process::Output, Vec<u8>) {
    use std::io::Read;

    let path = std::ffi::CString::new(fifo.to_str().expect("utf-8 path")).expect("no NUL");
    // SAFETY: a valid NUL-terminated path; mkfifo touches nothing else.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0, "mkfifo");
    let (drain_tx, drain_rx) = std::sync::mpsc::channel::<()>();
    let reader_path = fifo.to_owned();
    // Opening blocks until the daemon opens the other end.
    let reader = std::thread::spawn(move || {
        let mut pipe = std::fs::File::open(reader_path).expect("open fifo");
        let _ = drain_rx.recv_timeout(Duration::from_secs(120));
        let mut all = Vec::new();
        pipe.read_to_end(&mut all).expect("drain fifo");
        all
    });
    let (uri, args): (String, Vec<String>) = (
        uri.to_owned(),
        args.iter().map(|a| (*a).to_owned()).collect(),
    );
    let dumper = std::thread::spawn(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        virsh(&uri, &args)
    });
    stalled();
    let _ = drain_tx.send(());
    let bytes = reader.join().expect("reader thread");
    let out = dumper.join().expect("virsh thread");
    let _ = std::fs::remove_file(fifo);
    (out, bytes)
}

/// `virsh domjobinfo` once it shows a dump job running.
#[track_caller]
pub fn dump_job_running(uri: &str, name: &str) -> String {
    wait_until(Duration::from_secs(30), "a running dump job", || {
        let out = virsh(uri, &["domjobinfo", name]);
        let text = stdout_of(&out);
        (text.contains("Unbounded") && text.contains("Dump")).then_some(text)
    })
}

/// A fresh 16 MiB image of `format` in `dir`, made by qemu-img.
pub fn image(dir: &Path, name: &str, format: &str) -> PathBuf {
    let path = dir.join(name);
    let out = std::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", format])
        .arg(&path)
        .arg("16M")
        .output()
        .expect("run qemu-img");
    assert!(out.status.success(), "qemu-img create: {}", stderr_of(&out));
    path
}

/// Two daemons and a temp dir (named after `prefix`) for the images of a
/// snapshot or block-job test; `None` (with the harness's SKIPPED notice)
/// when QEMU or qemu-img is missing.
pub fn hosts_with_images(prefix: &str) -> Option<(QemuHosts, tempfile::TempDir)> {
    let hosts = QemuHosts::start()?;
    require_binary("qemu-img")?;
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("temp dir");
    Some((hosts, dir))
}
