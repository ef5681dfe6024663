//! Starting `migrated` daemons for a benchmark: each in its own temporary
//! directory, on free loopback ports, killed when dropped.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::pki::Pki;

/// How long a daemon may take to accept its first connection.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// What a daemon should look like.
#[derive(Debug, Clone)]
pub struct DaemonSpec<'a> {
    /// Host name it reports (distinct per daemon, migration checks it).
    pub hostname: &'a str,
    /// Host UUID (distinct per daemon).
    pub host_uuid: &'a str,
    /// `test` or `qemu`.
    pub driver: &'a str,
    /// Also listen on TLS with these files.
    pub tls: Option<&'a Pki>,
    /// Extra command-line arguments.
    pub extra_args: Vec<String>,
}

/// A running `migrated`; killed and its directory removed on drop.
#[derive(Debug)]
pub struct Migrated {
    child: Child,
    tcp_port: u16,
    tls_port: Option<u16>,
    driver: String,
    log: PathBuf,
    // Last: removed after the child is gone.
    _dir: tempfile::TempDir,
}

impl Migrated {
    /// Starts `bin` as described by `spec` and waits until it accepts TCP
    /// connections.
    ///
    /// # Errors
    /// When it cannot be started or does not listen within 30 s (its log
    /// is in the error).
    pub fn spawn(bin: &Path, spec: &DaemonSpec<'_>) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("migrated-bench-")
            .tempdir()
            .context("cannot create a temporary directory")?;
        let tcp_port = free_port()?;
        let tls_port = spec.tls.map(|_| free_port()).transpose()?;
        let log = dir.path().join("migrated.log");
        let logfile = std::fs::File::create(&log).context("cannot create the daemon log")?;
        // An empty config file keeps /etc/migrated/migrated.toml out of it.
        let config = dir.path().join("migrated.toml");
        std::fs::write(&config, "").context("cannot write the daemon config")?;
        let mut cmd = Command::new(bin);
        cmd.arg("--config")
            .arg(&config)
            .arg("--listen")
            .arg(format!("tcp://127.0.0.1:{tcp_port}"))
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .arg("--runtime-dir")
            .arg(dir.path().join("run"))
            .args(["--host-uuid", spec.host_uuid])
            .args(["--hostname", spec.hostname])
            .args(["--drivers", spec.driver])
            // libvirtd logs warnings only (log_filters 3:*); so does this.
            .args(["--log-filter", "warn"]);
        if let (Some(pki), Some(port)) = (spec.tls, tls_port) {
            cmd.arg("--listen")
                .arg(format!("tls://127.0.0.1:{port}"))
                .arg("--tls-cert")
                .arg(pki.server_cert())
                .arg("--tls-key")
                .arg(pki.server_key())
                .arg("--tls-ca")
                .arg(pki.ca_cert());
        }
        cmd.args(&spec.extra_args);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(
                logfile
                    .try_clone()
                    .context("cannot reopen the daemon log")?,
            )
            .stderr(logfile)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let mut daemon = Self {
            child,
            tcp_port,
            tls_port,
            driver: spec.driver.to_owned(),
            log,
            _dir: dir,
        };
        daemon.wait_listening()?;
        Ok(daemon)
    }

    fn wait_listening(&mut self) -> Result<()> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.tcp_port));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                bail!(
                    "migrated exited at start with {status}:\n{}",
                    self.log_text()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "migrated did not listen on {addr} within {START_TIMEOUT:?}:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The daemon's process id (for RSS samples).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The daemon's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn scheme(&self) -> (&str, &str) {
        if self.driver == "qemu" {
            ("qemu", "system")
        } else {
            ("test", "default")
        }
    }

    /// `DRIVER+tcp://127.0.0.1:PORT/PATH`.
    pub fn uri(&self) -> String {
        let (drv, path) = self.scheme();
        format!("{drv}+tcp://127.0.0.1:{}/{path}", self.tcp_port)
    }

    /// `DRIVER+tls://127.0.0.1:PORT/PATH?pkipath=DIR`, when listening on TLS.
    pub fn tls_uri(&self, pki: &Pki) -> Option<String> {
        let (drv, path) = self.scheme();
        self.tls_port.map(|port| {
            format!(
                "{drv}+tls://127.0.0.1:{port}/{path}?pkipath={}",
                pki.client_dir().display()
            )
        })
    }
}

impl Drop for Migrated {
    fn drop(&mut self) {
        // A benchmark daemon holds nothing worth a graceful stop.
        let _ = self.child.kill();
        let _ = self.child.wait();
        // QEMU guests outlive their daemon by design (it re-attaches after a
        // restart); this one will not come back, so stop what it started.
        for pid in qemu_pids(&self._dir.path().join("run")) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

/// PIDs from `*.pid` files under `dir` (two levels deep) that still name a
/// running QEMU process.
fn qemu_pids(dir: &Path) -> Vec<u32> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(
                std::fs::read_dir(&path)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| e.path()),
            );
        } else {
            files.push(path);
        }
    }
    files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "pid"))
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .filter_map(|text| text.trim().parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains("qemu-system"))
                .unwrap_or(false)
        })
        .collect()
}

/// A loopback TCP port that is free right now.
///
/// # Errors
/// When no port can be bound.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("cannot bind a port")?;
    Ok(listener.local_addr()?.port())
}

/// Where `migrated` and friends are: `--bin-dir`, else next to this binary.
pub fn bin_dir(given: Option<&Path>) -> Result<PathBuf> {
    if let Some(dir) = given {
        return Ok(dir.to_path_buf());
    }
    let exe = std::env::current_exe().context("cannot find this executable")?;
    exe.parent()
        .map(Path::to_path_buf)
        .context("this executable has no parent directory")
}

/// `dir/name`, checked to exist.
pub fn binary(dir: &Path, name: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    if !path.exists() {
        bail!(
            "{} not found (build it first: cargo build --release -p migrated-daemon -p migrated-cli)",
            path.display()
        );
    }
    Ok(path)
}
