//! Stock clients: `virsh`, python3-libvirt, and the test PKI they use for TLS.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long one stock-client command may run before the test fails.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

fn skip_or_fail(what: &str) {
    assert!(
        !in_ci(),
        "{what} not found, and CI is set: the stock-client tests must run in CI"
    );
    eprintln!("\n==================== SKIPPED: {what} not found ====================\n");
}

/// Finds `name` on PATH. Locally a missing binary prints a loud
/// `SKIPPED: <name> not found` and returns `None`.
///
/// # Panics
/// When the binary is missing and the `CI` environment variable is set.
pub fn require_binary(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        skip_or_fail(name);
    }
    found
}

/// Finds a Python 3 interpreter that can `import libvirt` (the Debian
/// package installs into the system interpreter, which may not be the first
/// `python3` on PATH, e.g. under pyenv).
///
/// # Panics
/// When none is found and `CI` is set.
pub fn require_python_libvirt() -> Option<PathBuf> {
    let found = python_with_libvirt();
    if found.is_none() {
        skip_or_fail("python3-libvirt");
    }
    found.map(Path::to_path_buf)
}

fn python_with_libvirt() -> Option<&'static Path> {
    static FOUND: OnceLock<Option<PathBuf>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            ["/usr/bin/python3", "python3"]
                .into_iter()
                .map(PathBuf::from)
                .find(|python| {
                    Command::new(python)
                        .args(["-c", "import libvirt"])
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status()
                        .is_ok_and(|s| s.success())
                })
        })
        .as_deref()
}

/// Runs `cmd` with stdout/stderr captured, killing it after `timeout`.
///
/// # Panics
/// When it cannot be spawned or runs past the timeout.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    // Drain both pipes on threads so a chatty child cannot block on a full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut buf);
            }
            buf
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{cmd:?} did not finish within {timeout:?}");
            }
        }
    };
    Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// Runs `virsh -c URI ARGS...` (C locale, no user config) and returns its output.
///
/// # Panics
/// When virsh is not installed (call [`require_binary`] first) or hangs.
pub fn virsh(uri: &str, args: &[&str]) -> Output {
    run_with_timeout(&mut virsh_command(uri, args), CLIENT_TIMEOUT)
}

/// `virsh -c URI ARGS...` in the C locale without the user's config.
fn virsh_command(uri: &str, args: &[&str]) -> Command {
    let home = std::env::temp_dir().join("migrated-tests-home");
    let _ = std::fs::create_dir_all(&home);
    let mut cmd = Command::new("virsh");
    cmd.arg("-c")
        .arg(uri)
        .args(args)
        .env("LC_ALL", "C")
        .env("HOME", &home)
        .env_remove("LIBVIRT_DEFAULT_URI");
    cmd
}

/// A `virsh -c URI event ...` listener in the background. virsh prints and
/// flushes each event as it arrives; its output (stdout and stderr) is
/// collected as it comes. Killed when dropped.
pub struct VirshEvents {
    child: Child,
    text: Arc<Mutex<String>>,
}

impl VirshEvents {
    /// Starts `virsh -c URI event ARGS...` (e.g. `--loop --all`).
    ///
    /// # Panics
    /// When virsh cannot be started (call [`require_binary`] first).
    pub fn spawn(uri: &str, args: &[&str]) -> Self {
        Self::spawn_command(uri, "event", args)
    }

    /// Starts `virsh -c URI COMMAND ARGS...` for another listening command
    /// (e.g. `qemu-monitor-event`), collected as [`VirshEvents::spawn`].
    ///
    /// # Panics
    /// When virsh cannot be started (call [`require_binary`] first).
    pub fn spawn_command(uri: &str, command: &str, args: &[&str]) -> Self {
        let mut child = virsh_command(uri, &[&[command], args].concat())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn virsh event: {e}"));
        let text = Arc::new(Mutex::new(String::new()));
        let collect = |pipe: Box<dyn Read + Send>| {
            let text = text.clone();
            // Ends at EOF, when virsh exits or is killed.
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let mut text = text.lock().unwrap_or_else(|p| p.into_inner());
                    text.push_str(&line);
                    text.push('\n');
                }
            });
        };
        if let Some(out) = child.stdout.take() {
            collect(Box::new(out));
        }
        if let Some(err) = child.stderr.take() {
            collect(Box::new(err));
        }
        Self { child, text }
    }

    /// Everything virsh printed so far.
    pub fn text(&self) -> String {
        self.text.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits until the output contains `needle`; returns all of it.
    ///
    /// # Panics
    /// After `timeout`, with the output so far.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.text();
            if text.contains(needle) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "virsh event did not print {needle:?} within {timeout:?}; it printed:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Returns once virsh listens for lifecycle events of `name` on `uri`:
    /// redefines the guest from its own inactive XML (a harmless "Defined
    /// Updated" event) until virsh prints that event, at most 40 times.
    ///
    /// # Panics
    /// When virsh never prints it.
    pub fn sync_on_redefine(&self, uri: &str, name: &str) {
        let xml = virsh(uri, &["dumpxml", "--inactive", name]);
        assert!(xml.status.success(), "dumpxml: {}", stderr_of(&xml));
        let file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(file.path(), &xml.stdout).expect("write XML");
        let path = file.path().to_str().expect("utf-8 path");
        let needle = format!("for domain '{name}': Defined Updated");
        for _ in 0..40 {
            let out = virsh(uri, &["define", path]);
            assert!(out.status.success(), "define: {}", stderr_of(&out));
            let deadline = Instant::now() + Duration::from_millis(500);
            while Instant::now() < deadline {
                if self.text().contains(&needle) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("virsh event never printed {needle:?}:\n{}", self.text());
    }
}

impl Drop for VirshEvents {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The start of a python3-libvirt script that receives domain events:
/// libvirt's default event loop, run by a daemon thread, registered before
/// any connection opens (as libvirt requires); `import sys, threading, time,
/// libvirt` done.
pub const PYTHON_EVENT_LOOP: &str = r#"
import sys, threading, time
import libvirt

libvirt.virEventRegisterDefaultImpl()
def loop():
    while True:
        libvirt.virEventRunDefaultImpl()
threading.Thread(target=loop, daemon=True).start()
"#;

/// Runs a Python 3 script with python3-libvirt available.
///
/// # Panics
/// When python3-libvirt is missing (call [`require_python_libvirt`] first) or
/// the script hangs.
pub fn python(script: &str) -> Output {
    let python = python_with_libvirt().unwrap_or(Path::new("python3"));
    run_with_timeout(
        Command::new(python)
            .arg("-c")
            .arg(script)
            .env("LC_ALL", "C"),
        CLIENT_TIMEOUT,
    )
}

/// A test PKI in libvirt's file layout, made by `deploy/pki.sh` in a
/// temporary directory (removed when the last clone is dropped).
///
/// Server files: `CA/cacert.pem`, `libvirt/servercert.pem`,
/// `libvirt/private/serverkey.pem`; `client/` is what `?pkipath=` names;
/// `other/` holds a client certificate from an unrelated CA; `qemu/` and
/// `qemu-foreign/` are QEMU's migration TLS layout.
#[derive(Debug, Clone)]
pub struct Pki {
    dir: Arc<tempfile::TempDir>,
}

impl Pki {
    /// Runs `deploy/pki.sh --second-ca` into a fresh temporary directory.
    /// Returns `None` (after a loud SKIPPED) when openssl is missing locally.
    ///
    /// # Panics
    /// When the script fails, or openssl is missing and `CI` is set.
    pub fn generate() -> Option<Self> {
        require_binary("openssl")?;
        let dir = tempfile::Builder::new()
            .prefix("migrated-pki-")
            .tempdir()
            .expect("create PKI temp dir");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/pki.sh");
        let out = run_with_timeout(
            Command::new("bash")
                .arg(&script)
                .arg("--second-ca")
                .arg(dir.path()),
            CLIENT_TIMEOUT,
        );
        assert!(
            out.status.success(),
            "deploy/pki.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(Pki { dir: Arc::new(dir) })
    }

    /// The CA certificate.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.path().join("CA/cacert.pem")
    }

    /// The server certificate.
    pub fn server_cert(&self) -> PathBuf {
        self.dir.path().join("libvirt/servercert.pem")
    }

    /// The server key.
    pub fn server_key(&self) -> PathBuf {
        self.dir.path().join("libvirt/private/serverkey.pem")
    }

    /// The directory `?pkipath=` names for a good client.
    pub fn client_dir(&self) -> PathBuf {
        self.dir.path().join("client")
    }

    /// A `?pkipath=` directory whose client certificate comes from another CA
    /// (its `cacert.pem` is still our CA, so the server itself verifies).
    pub fn foreign_client_dir(&self) -> PathBuf {
        let mixed = self.dir.path().join("foreign");
        if !mixed.exists() {
            std::fs::create_dir_all(&mixed).expect("create foreign client dir");
            for (from, to) in [
                ("CA/cacert.pem", "cacert.pem"),
                ("other/clientcert.pem", "clientcert.pem"),
                ("other/clientkey.pem", "clientkey.pem"),
            ] {
                std::fs::copy(self.dir.path().join(from), mixed.join(to))
                    .expect("copy foreign client file");
            }
        }
        mixed
    }

    /// QEMU's migration TLS layout (a daemon's `migrate_tls_x509_cert_dir`):
    /// `ca-cert.pem`, `server-cert.pem`, `server-key.pem`, `client-cert.pem`,
    /// `client-key.pem`, all from our CA.
    pub fn qemu_dir(&self) -> PathBuf {
        self.dir.path().join("qemu")
    }

    /// [`Pki::qemu_dir`] whose client certificate and key come from the
    /// unrelated CA (so a destination verifying peers refuses it).
    pub fn foreign_qemu_dir(&self) -> PathBuf {
        self.dir.path().join("qemu-foreign")
    }

    /// A `?pkipath=` directory with the CA but no client certificate.
    pub fn certless_client_dir(&self) -> PathBuf {
        let dir = self.dir.path().join("certless");
        if !dir.exists() {
            std::fs::create_dir_all(&dir).expect("create certless client dir");
            std::fs::copy(self.ca_cert(), dir.join("cacert.pem")).expect("copy CA");
        }
        dir
    }
}

/// Text of a process's stdout, for assertions.
pub fn stdout_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Text of a process's stderr, for assertions.
pub fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts that a command succeeded (showing its output when it did not)
/// and returns its stdout.
///
/// # Panics
/// When the command failed.
pub fn assert_ok(output: &Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what} failed: {}{}",
        stdout_of(output),
        stderr_of(output)
    );
    stdout_of(output)
}
