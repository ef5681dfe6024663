//! Stock libvirtd "hosts" on this machine, started by the embedded
//! `scripts/libvirt-hosts.sh` (private mount/UTS namespaces and directories,
//! TCP on 127.0.0.1:16509 for host A and :16510 for host B).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::pki::Pki;

/// The set-up script, shipped inside the binary so it runs from anywhere.
const SCRIPT: &str = include_str!("../scripts/libvirt-hosts.sh");

/// How long the script may take to report READY (it may install packages).
const READY_TIMEOUT: Duration = Duration::from_secs(600);
/// How long a clean stop may take before the script is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// One stock libvirtd host.
#[allow(dead_code)] // host B and the migration address serve the migration benches
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    /// 127.0.0.1:16509 (TLS 16514), migration address 127.0.0.2.
    A,
    /// 127.0.0.1:16510 (TLS 16515), migration address 127.0.0.3.
    B,
}

impl Host {
    fn letter(self) -> &'static str {
        match self {
            Host::A => "a",
            Host::B => "b",
        }
    }

    /// `qemu+tcp://127.0.0.1:PORT/system`.
    pub fn uri(self) -> String {
        let port = match self {
            Host::A => 16509,
            Host::B => 16510,
        };
        format!("qemu+tcp://127.0.0.1:{port}/system")
    }

    /// `qemu+tls://127.0.0.1:PORT/system?pkipath=DIR`.
    pub fn tls_uri(self, pki: &Pki) -> String {
        let port = match self {
            Host::A => 16514,
            Host::B => 16515,
        };
        format!(
            "qemu+tls://127.0.0.1:{port}/system?pkipath={}",
            pki.client_dir().display()
        )
    }

    /// The address libvirt binds for incoming migration data on this host.
    #[allow(dead_code)]
    pub fn migration_address(self) -> &'static str {
        match self {
            Host::A => "127.0.0.2",
            Host::B => "127.0.0.3",
        }
    }
}

/// Running libvirtd hosts; stopped (and their directories removed) on drop.
#[derive(Debug)]
pub struct LibvirtHosts {
    child: Child,
    stdin: Option<ChildStdin>,
    _dir: tempfile::TempDir,
}

impl LibvirtHosts {
    /// Starts `hosts`, listening on TLS too when `pki` is given, and waits
    /// until each answers `virsh version`.
    ///
    /// # Errors
    /// Not root, libvirt not installable, a port taken, or a daemon that does
    /// not come up (the script's messages are in the error).
    pub fn start(hosts: &[Host], pki: Option<&Pki>) -> Result<Self> {
        if !is_root() {
            bail!("starting a stock libvirtd needs root (namespaces, bind mounts)");
        }
        let dir = tempfile::Builder::new()
            .prefix("migrated-bench-libvirt-")
            .tempdir()
            .context("cannot create a temporary directory")?;
        let script = dir.path().join("libvirt-hosts.sh");
        std::fs::write(&script, SCRIPT).context("cannot write the set-up script")?;
        let work = dir.path().join("work");
        let mut cmd = Command::new("bash");
        cmd.arg(&script).arg(&work);
        for h in hosts {
            cmd.arg(h.letter());
        }
        if let Some(pki) = pki {
            cmd.env("LVH_TLS_DIR", pki.root());
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot run bash")?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().context("no stdout pipe")?;
        let mut hosts = Self {
            child,
            stdin,
            _dir: dir,
        };
        hosts.wait_ready(stdout)?;
        Ok(hosts)
    }

    fn wait_ready(&mut self, stdout: std::process::ChildStdout) -> Result<()> {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.trim() == "READY" {
                    let _ = tx.send(());
                    break;
                }
            }
        });
        match rx.recv_timeout(READY_TIMEOUT) {
            Ok(()) => Ok(()),
            Err(_) => bail!("libvirtd did not come up (see the messages above)"),
        }
    }
}

impl Drop for LibvirtHosts {
    fn drop(&mut self) {
        // End of file on its stdin is the script's signal to clean up.
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.flush();
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Whether `path` exists (e.g. `/usr/sbin/libvirtd`).
pub fn installed(path: &str) -> bool {
    Path::new(path).exists()
}
