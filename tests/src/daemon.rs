//! Spawning the real `migrated` binary for a test.
//!
//! Each [`Daemon`] gets its own temporary root with `state/` and `run/`, free
//! loopback ports (picked by binding port 0 and releasing it; the daemon is
//! an external process, so it cannot be handed a bound socket), and its own
//! host UUID, so several can run side by side. Readiness is the daemon's own
//! sd_notify `READY=1`, received on a datagram socket the harness owns.

use std::fs::File;
use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::clients::Pki;

/// How long a daemon may take to report READY=1.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How often spawning is retried when a picked port was taken meanwhile.
const PORT_RETRIES: usize = 5;

/// Path of the `migrated` binary, built once per test process.
///
/// `MIGRATED_BIN` overrides it. Otherwise the binary sits next to the test
/// executable's `deps/` directory (same target dir and profile), and
/// `cargo build -p migrated-daemon` is run once to make sure it is fresh.
///
/// # Panics
/// When the build fails.
pub fn migrated_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| workspace_binary("MIGRATED_BIN", "migrated-daemon", "migrated"))
}

/// Path of `migratectl`, built once per test process like [`migrated_binary`]
/// (`MIGRATECTL_BIN` overrides it).
///
/// # Panics
/// When the build fails.
pub fn migratectl_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| workspace_binary("MIGRATECTL_BIN", "migrated-cli", "migratectl"))
}

/// `$env` if set; otherwise `cargo build -p package --bin bin` in the test
/// executable's target dir and profile, and the binary's path there.
fn workspace_binary(env: &str, package: &str, bin: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(env) {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable lives in <target>/<profile>/deps")
        .to_path_buf();
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["build", "--quiet", "-p", package, "--bin", bin])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("run cargo build");
    assert!(status.success(), "cargo build -p {package} failed");
    let path = profile_dir.join(bin);
    assert!(path.exists(), "{} missing after build", path.display());
    path
}

/// Picks a loopback TCP port that is free right now.
///
/// # Panics
/// When no port can be bound at all.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral loopback port")
}

/// A fresh random-looking UUID (no dependency on a UUID crate: 16 bytes from
/// the kernel, version 4 bits set).
pub fn random_uuid() -> String {
    let mut bytes = [0u8; 16];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("read /dev/urandom");
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Configures a daemon before [`DaemonBuilder::spawn`].
#[derive(Debug, Default)]
pub struct DaemonBuilder {
    host_uuid: Option<String>,
    hostname: Option<String>,
    tcp: bool,
    unix: bool,
    tls: Option<Pki>,
    extra_args: Vec<String>,
    config_toml: String,
}

impl DaemonBuilder {
    /// Sets the host UUID (default: a random one).
    pub fn host_uuid(mut self, uuid: impl Into<String>) -> Self {
        self.host_uuid = Some(uuid.into());
        self
    }

    /// Sets the host name the daemon reports.
    pub fn hostname(mut self, name: impl Into<String>) -> Self {
        self.hostname = Some(name.into());
        self
    }

    /// Listens on plain TCP on a free loopback port.
    pub fn tcp(mut self) -> Self {
        self.tcp = true;
        self
    }

    /// Listens on a read-write and a read-only local socket in the runtime dir.
    pub fn unix(mut self) -> Self {
        self.unix = true;
        self
    }

    /// Listens on TLS on a free loopback port with the server files of `pki`.
    pub fn tls(mut self, pki: &Pki) -> Self {
        self.tls = Some(pki.clone());
        self
    }

    /// Enables only these drivers (`--drivers`, e.g. `"test"` or `"qemu,test"`).
    pub fn drivers(self, list: &str) -> Self {
        self.args(["--drivers", list])
    }

    /// Passes several extra command-line arguments to `migrated`.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.extra_args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets the contents of the daemon's TOML config file (default: empty).
    pub fn config_toml(mut self, text: impl Into<String>) -> Self {
        self.config_toml = text.into();
        self
    }

    /// Passes an extra command-line argument to `migrated`.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.extra_args.push(arg.into());
        self
    }

    /// Starts the daemon and waits until it reports ready.
    ///
    /// # Panics
    /// When the binary cannot be built or started, or does not become ready
    /// within 30 s (the daemon's log is included in the message).
    pub fn spawn(self) -> Daemon {
        let root = tempfile::Builder::new()
            .prefix("migrated-test-")
            .tempdir()
            .expect("create daemon temp dir");
        let state_dir = root.path().join("state");
        let runtime_dir = root.path().join("run");
        for dir in [&state_dir, &runtime_dir] {
            std::fs::create_dir_all(dir).expect("create daemon dir");
        }
        // An explicit (possibly empty) file keeps the host's
        // /etc/migrated/migrated.toml out of the test.
        std::fs::write(root.path().join("migrated.toml"), &self.config_toml)
            .expect("write daemon config file");
        let mut daemon = Daemon {
            child: None,
            args: Vec::new(),
            host_uuid: self.host_uuid.clone().unwrap_or_else(random_uuid),
            tcp_port: None,
            tls_port: None,
            unix: self.unix,
            state_dir,
            runtime_dir,
            log_path: root.path().join("migrated.log"),
            root,
        };
        let mut last_log = String::new();
        for _ in 0..PORT_RETRIES {
            daemon.tcp_port = self.tcp.then(free_port);
            daemon.tls_port = self.tls.is_some().then(free_port);
            daemon.args = self.args_for(&daemon);
            match daemon.start() {
                Ok(()) => return daemon,
                Err(log) if log.contains("Address already in use") => last_log = log,
                Err(log) => panic!("migrated did not start:\n{log}"),
            }
        }
        panic!("migrated could not get free ports after {PORT_RETRIES} tries:\n{last_log}");
    }

    fn args_for(&self, daemon: &Daemon) -> Vec<String> {
        let mut args = vec![
            "--config".to_owned(),
            daemon
                .root
                .path()
                .join("migrated.toml")
                .display()
                .to_string(),
            "--state-dir".to_owned(),
            daemon.state_dir.display().to_string(),
            "--runtime-dir".to_owned(),
            daemon.runtime_dir.display().to_string(),
            "--host-uuid".to_owned(),
            daemon.host_uuid.clone(),
        ];
        // A flag would beat the file, so leave the filter to a file that sets one.
        if !self.config_toml.contains("log_filter") {
            args.extend(["--log-filter".to_owned(), "info,migrated=debug".to_owned()]);
        }
        if let Some(name) = &self.hostname {
            args.extend(["--hostname".to_owned(), name.clone()]);
        }
        if let Some(port) = daemon.tcp_port {
            args.extend(["--listen".to_owned(), format!("tcp://127.0.0.1:{port}")]);
        }
        if let Some(port) = daemon.tls_port {
            args.extend(["--listen".to_owned(), format!("tls://127.0.0.1:{port}")]);
        }
        if let Some(pki) = &self.tls {
            for (flag, path) in [
                ("--tls-cert", pki.server_cert()),
                ("--tls-key", pki.server_key()),
                ("--tls-ca", pki.ca_cert()),
            ] {
                args.extend([flag.to_owned(), path.display().to_string()]);
            }
        }
        if self.unix {
            args.extend([
                "--listen".to_owned(),
                format!("unix:{}", daemon.unix_socket().display()),
                "--listen".to_owned(),
                format!("unix-ro:{}", daemon.unix_ro_socket().display()),
            ]);
        }
        args.extend(self.extra_args.iter().cloned());
        args
    }
}

/// A running `migrated` process; killed when dropped.
#[derive(Debug)]
pub struct Daemon {
    child: Option<Child>,
    args: Vec<String>,
    host_uuid: String,
    tcp_port: Option<u16>,
    tls_port: Option<u16>,
    unix: bool,
    state_dir: PathBuf,
    runtime_dir: PathBuf,
    log_path: PathBuf,
    // Last field: dropped after the child is killed.
    root: tempfile::TempDir,
}

impl Daemon {
    /// Starts configuring a daemon.
    pub fn builder() -> DaemonBuilder {
        DaemonBuilder::default()
    }

    /// `test+tcp://127.0.0.1:PORT/default`.
    ///
    /// # Panics
    /// When the daemon has no TCP listener.
    pub fn uri(&self) -> String {
        format!("test+tcp://127.0.0.1:{}/default", self.tcp_port())
    }

    /// `test+unix:///default?socket=PATH` for the read-write socket.
    pub fn unix_uri(&self) -> String {
        assert!(self.unix, "daemon was built without .unix()");
        format!(
            "test+unix:///default?socket={}",
            self.unix_socket().display()
        )
    }

    /// `test+unix:///default?socket=PATH` for the read-only socket.
    pub fn unix_ro_uri(&self) -> String {
        assert!(self.unix, "daemon was built without .unix()");
        format!(
            "test+unix:///default?socket={}",
            self.unix_ro_socket().display()
        )
    }

    /// `test+tls://127.0.0.1:PORT/default?pkipath=DIR` with the client files of `pki`.
    pub fn tls_uri(&self, pki: &Pki) -> String {
        format!(
            "test+tls://127.0.0.1:{}/default?pkipath={}",
            self.tls_port.expect("daemon was built without .tls()"),
            pki.client_dir().display()
        )
    }

    /// Like [`Daemon::tls_uri`] with any `?pkipath=` directory.
    pub fn tls_uri_with(&self, pkipath: &Path) -> String {
        format!(
            "test+tls://127.0.0.1:{}/default?pkipath={}",
            self.tls_port.expect("daemon was built without .tls()"),
            pkipath.display()
        )
    }

    /// The TCP port.
    ///
    /// # Panics
    /// When the daemon has no TCP listener.
    pub fn tcp_port(&self) -> u16 {
        self.tcp_port.expect("daemon was built without .tcp()")
    }

    /// The TCP address.
    pub fn tcp_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.tcp_port()))
    }

    /// The TLS port, if any.
    pub fn tls_port(&self) -> Option<u16> {
        self.tls_port
    }

    /// The read-write local socket path.
    pub fn unix_socket(&self) -> PathBuf {
        self.runtime_dir.join("migrated-sock")
    }

    /// The read-only local socket path.
    pub fn unix_ro_socket(&self) -> PathBuf {
        self.runtime_dir.join("migrated-sock-ro")
    }

    /// The state directory (persistent configs live here).
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The domain configs stored under the state dir (every `*.xml` file,
    /// at any depth).
    pub fn stored_configs(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, out);
                } else if path.extension().is_some_and(|x| x == "xml") {
                    out.push(path);
                }
            }
        }
        let mut out = Vec::new();
        walk(self.state_dir(), &mut out);
        out
    }

    /// The runtime directory.
    pub fn runtime_dir(&self) -> &Path {
        &self.runtime_dir
    }

    /// The daemon's TOML config file (rewrite it, then send SIGHUP to reload).
    pub fn config_path(&self) -> PathBuf {
        self.root.path().join("migrated.toml")
    }

    /// The host UUID the daemon was given.
    pub fn host_uuid(&self) -> &str {
        &self.host_uuid
    }

    /// The daemon's process id.
    ///
    /// # Panics
    /// When the daemon is not running.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("daemon is running").id()
    }

    /// The daemon's resident set size in KiB (VmRSS).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/PID/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// Everything the daemon logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Whether the process is still alive.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Sends SIGTERM and waits (10 s at most) for a graceful exit.
    ///
    /// # Panics
    /// When the daemon does not exit in time.
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("daemon is running");
        signal(&child, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("migrated ignored SIGTERM for 10 s:\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends a signal (e.g. SIGHUP) to the daemon.
    pub fn signal(&self, sig: i32) {
        signal(self.child.as_ref().expect("daemon is running"), sig);
    }

    /// Kills the daemon hard (SIGKILL), like a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the daemon gracefully and starts it again with the same ports,
    /// directories and host UUID.
    ///
    /// # Panics
    /// When it does not come back.
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
        if let Err(log) = self.start() {
            panic!("migrated did not restart:\n{log}");
        }
    }

    /// Spawns the process and waits for READY=1; on failure returns the log.
    fn start(&mut self) -> Result<(), String> {
        let notify_path = self.root.path().join("notify.sock");
        let _ = std::fs::remove_file(&notify_path);
        let notify = UnixDatagram::bind(&notify_path).expect("bind notify socket");
        notify
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("set notify timeout");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open daemon log");
        let child = Command::new(migrated_binary())
            .args(&self.args)
            .env("NOTIFY_SOCKET", &notify_path)
            .env_remove("MIGRATED_LOG")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .expect("spawn migrated");
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        let mut buf = [0u8; 4096];
        loop {
            if let Ok(n) = notify.recv(&mut buf) {
                let message = String::from_utf8_lossy(&buf[..n]);
                if message.lines().any(|l| l == "READY=1") {
                    break;
                }
            }
            if !self.is_running() {
                self.child = None;
                return Err(self.logs());
            }
            if Instant::now() > deadline {
                self.kill();
                return Err(format!(
                    "no READY=1 within {START_TIMEOUT:?}\n{}",
                    self.logs()
                ));
            }
        }
        // READY=1 comes after the listeners are bound, so no probe connection
        // is made: one would hold a client slot until the daemon noticed its
        // close, which made tests of `--max-clients` racy.
        Ok(())
    }
}

fn signal(child: &Child, sig: i32) {
    let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
    // SAFETY: kill(2) only sends a signal to the process we spawned; no memory
    // is involved.
    unsafe {
        libc::kill(pid, sig);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let logs = self.logs();
            let tail: Vec<&str> = logs.lines().rev().take(80).collect();
            eprintln!("---- migrated log (last {} lines) ----", tail.len());
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}
