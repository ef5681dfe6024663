//! A minimal, blocking QMP client and the two floors a migration manager is
//! measured against: a bare QMP migration between two running QEMU
//! processes, and the minimal cycle (spawn the destination, migrate, stop the
//! source). No libvirt and no `migrated` are involved.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

/// Longest a QMP reply or a polled state may take.
const QMP_TIMEOUT: Duration = Duration::from_secs(30);
/// Ports tried for the floor's incoming migration, from the first one.
const PORT_TRIES: u16 = 16;
/// Pause before each floor cycle (see [`Floor::cycle`]).
const SETTLE: Duration = Duration::from_millis(300);
/// Longest line accepted from QMP (a reply to anything used here is small).
const MAX_LINE: usize = 1 << 20;

/// A QMP connection.
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Connects to `path` (retrying until it exists, up to 30 s), reads the
    /// greeting and leaves capabilities negotiation mode.
    ///
    /// # Errors
    /// Socket errors, a closed connection, or an error reply.
    pub fn connect(path: &Path) -> Result<Self> {
        let deadline = Instant::now() + QMP_TIMEOUT;
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_micros(500));
                }
                Err(e) => return Err(e).context("cannot connect to QMP"),
            }
        };
        stream.set_read_timeout(Some(QMP_TIMEOUT))?;
        let writer = stream.try_clone()?;
        let mut qmp = Self {
            reader: BufReader::new(stream),
            writer,
        };
        let greeting = qmp.read_message()?;
        if greeting.get("QMP").is_none() {
            bail!("no QMP greeting: {greeting}");
        }
        qmp.execute("qmp_capabilities", json!({}))?;
        Ok(qmp)
    }

    fn read_message(&mut self) -> Result<Value> {
        let mut line = String::new();
        let n = Read::take(&mut self.reader, MAX_LINE as u64)
            .read_line(&mut line)
            .context("QMP read failed")?;
        if n == 0 {
            bail!("QMP connection closed");
        }
        serde_json::from_str(&line).with_context(|| format!("bad QMP line: {line}"))
    }

    /// Runs `command` with `arguments` and returns its `return` value
    /// (events that arrive meanwhile are skipped).
    ///
    /// # Errors
    /// An `error` reply, I/O errors, or no reply within 30 s.
    pub fn execute(&mut self, command: &str, arguments: Value) -> Result<Value> {
        let msg = json!({"execute": command, "arguments": arguments});
        let mut text = msg.to_string();
        text.push('\n');
        self.writer.write_all(text.as_bytes())?;
        loop {
            let v = self.read_message()?;
            if let Some(r) = v.get("return") {
                return Ok(r.clone());
            }
            if let Some(e) = v.get("error") {
                bail!("QMP {command} failed: {e}");
            }
        }
    }
}

/// A QEMU process started for the floors; killed on drop.
pub struct QemuProc {
    child: Child,
    qmp_path: PathBuf,
}

impl QemuProc {
    /// Starts an idle guest with `mib` of memory (`incoming`: `-incoming defer`).
    ///
    /// # Errors
    /// When QEMU cannot be started.
    pub fn spawn(dir: &Path, name: &str, accel: &str, mib: u64, incoming: bool) -> Result<Self> {
        let qmp_path = dir.join(format!("{name}.qmp"));
        let _ = std::fs::remove_file(&qmp_path);
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args(["-name", &format!("guest={name}")])
            .args(["-machine", "pc,usb=off,dump-guest-core=off"])
            .args(["-accel", accel, "-cpu", "qemu64"])
            .args(["-m", &mib.to_string(), "-smp", "1"])
            .args(["-display", "none", "-no-user-config", "-nodefaults"])
            .arg("-chardev")
            .arg(format!(
                "socket,id=charmonitor,path={},server=on,wait=off",
                qmp_path.display()
            ))
            .args(["-mon", "chardev=charmonitor,id=monitor,mode=control"])
            .args(["-rtc", "base=utc", "-no-shutdown", "-boot", "strict=on"]);
        if incoming {
            cmd.args(["-incoming", "defer"]);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start qemu-system-x86_64")?;
        Ok(Self { child, qmp_path })
    }

    /// Connects to its QMP socket.
    ///
    /// # Errors
    /// As [`Qmp::connect`].
    pub fn qmp(&self) -> Result<Qmp> {
        Qmp::connect(&self.qmp_path)
    }

    /// Waits (bounded) for the process to exit after `quit`.
    fn wait_exit(&mut self) -> Result<()> {
        let deadline = Instant::now() + QMP_TIMEOUT;
        loop {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("QEMU did not exit after quit");
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

impl Drop for QemuProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One floor measurement.
#[derive(Debug, Clone, Copy)]
pub struct FloorSample {
    /// Spawn of the destination to its QMP handshake, `migrate-incoming`
    /// and the source's `migrate-set-parameters` done.
    pub start: Duration,
    /// From `migrate` to `completed`.
    pub migrate: Duration,
    /// `completed` to the destination reporting `running`.
    pub resume: Duration,
    /// The source's `quit` to its exit.
    pub stop: Duration,
    /// Spawn destination → migrate → destination running → source exited.
    pub cycle: Duration,
    /// QEMU's `total-time`, ms.
    pub qemu_total_ms: u64,
    /// QEMU's `downtime`, ms.
    pub qemu_downtime_ms: u64,
}

/// Polls `f` every `every` until it returns `Some`, for at most 30 s.
fn poll<T>(every: Duration, mut f: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    let deadline = Instant::now() + QMP_TIMEOUT;
    loop {
        if let Some(v) = f()? {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out waiting for QEMU");
        }
        std::thread::sleep(every);
    }
}

/// A running source guest that floors migrate back and forth.
pub struct Floor {
    dir: tempfile::TempDir,
    accel: String,
    mib: u64,
    src: QemuProc,
    src_qmp: Qmp,
    serial: u32,
    port: u16,
}

impl Floor {
    /// Starts the first source guest.
    ///
    /// # Errors
    /// When QEMU does not start.
    pub fn start(accel: &str, mib: u64, port: u16) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("migrated-bench-qmp-")
            .tempdir()?;
        let src = QemuProc::spawn(dir.path(), "floor0", accel, mib, false)?;
        let src_qmp = src.qmp()?;
        Ok(Self {
            dir,
            accel: accel.to_owned(),
            mib,
            src,
            src_qmp,
            serial: 0,
            port,
        })
    }

    /// One full cycle; the destination becomes the next source.
    ///
    /// # Errors
    /// Any QMP failure or a migration that does not complete.
    pub fn cycle(&mut self) -> Result<FloorSample> {
        // A guest that has only just resumed is still faulting its memory
        // back in, which slows the next migration several times over; let
        // it settle so every cycle starts from the same state.
        std::thread::sleep(SETTLE);
        self.serial += 1;
        let name = format!("floor{}", self.serial);
        let t0 = Instant::now();
        let dst = QemuProc::spawn(self.dir.path(), &name, &self.accel, self.mib, true)?;
        let mut dq = dst.qmp()?;
        // Other programs on the machine may hold a port of the range for a
        // while: take the first free one of a few, as a manager would.
        let mut uri = String::new();
        let mut last_err = None;
        for port in self.port..self.port.saturating_add(PORT_TRIES) {
            uri = format!("tcp:127.0.0.1:{port}");
            match dq.execute("migrate-incoming", json!({"uri": uri})) {
                Ok(_) => {
                    last_err = None;
                    break;
                }
                Err(e) => last_err = Some(e),
            }
        }
        if let Some(e) = last_err {
            return Err(e);
        }
        // libvirt lifts QEMU's default 32 MiB/s cap the same way.
        self.src_qmp.execute(
            "migrate-set-parameters",
            json!({"max-bandwidth": 1u64 << 40}),
        )?;
        let t1 = Instant::now();
        let start = t1 - t0;
        self.src_qmp.execute("migrate", json!({"uri": uri}))?;
        let info = poll(Duration::from_millis(1), || {
            let v = self.src_qmp.execute("query-migrate", json!({}))?;
            match v.get("status").and_then(Value::as_str) {
                Some("completed") => Ok(Some(v)),
                Some("failed") | Some("cancelled") => bail!("migration failed: {v}"),
                _ => Ok(None),
            }
        })?;
        let migrate = t1.elapsed();
        let t2 = Instant::now();
        poll(Duration::from_millis(1), || {
            let v = dq.execute("query-status", json!({}))?;
            Ok((v.get("status").and_then(Value::as_str) == Some("running")).then_some(()))
        })?;
        let t3 = Instant::now();
        // The source is paused now; stop it and wait for it to be gone.
        let _ = self.src_qmp.execute("quit", json!({}));
        self.src.wait_exit()?;
        let stop = t3.elapsed();
        let cycle = t0.elapsed();
        let get = |k: &str| info.get(k).and_then(Value::as_u64).unwrap_or(0);
        let sample = FloorSample {
            start,
            migrate,
            resume: t3 - t2,
            stop,
            cycle,
            qemu_total_ms: get("total-time"),
            qemu_downtime_ms: get("downtime"),
        };
        self.src = dst;
        self.src_qmp = dq;
        Ok(sample)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    /// A scripted QMP peer: greeting, then one canned answer per command.
    fn fake_qmp(dir: &Path, answers: Vec<&'static str>) -> std::thread::JoinHandle<Vec<String>> {
        let path = dir.join("fake.qmp");
        let listener = UnixListener::bind(&path).expect("bind fake QMP socket");
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().expect("accept");
            let mut w = stream.try_clone().expect("clone");
            let mut r = BufReader::new(stream);
            w.write_all(b"{\"QMP\": {\"version\": {}, \"capabilities\": []}}\n")
                .expect("greet");
            let mut seen = Vec::new();
            for answer in answers {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                seen.push(line.trim().to_owned());
                w.write_all(answer.as_bytes()).expect("answer");
            }
            seen
        })
    }

    #[test]
    fn executes_commands_skipping_events_and_reports_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let peer = fake_qmp(
            dir.path(),
            vec![
                "{\"return\": {}}\n",
                "{\"event\": \"RESUME\"}\n{\"return\": {\"status\": \"completed\", \"downtime\": 3}}\n",
                "{\"error\": {\"class\": \"GenericError\", \"desc\": \"nope\"}}\n",
            ],
        );
        let mut q = Qmp::connect(&dir.path().join("fake.qmp")).expect("connect");
        let v = q
            .execute("query-migrate", json!({}))
            .expect("query-migrate");
        assert_eq!(v["status"], "completed");
        assert_eq!(v["downtime"], 3);
        let err = q.execute("migrate", json!({"uri": "tcp:127.0.0.1:1"}));
        let msg = format!("{:#}", err.expect_err("an error reply is an error"));
        assert!(msg.contains("nope"), "{msg}");
        let seen = peer.join().expect("peer thread");
        assert!(seen[0].contains("qmp_capabilities"));
        assert!(seen[1].contains("query-migrate"));
        assert!(seen[2].contains("tcp:127.0.0.1:1"));
    }

    #[test]
    fn a_peer_without_a_greeting_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bad.qmp");
        let listener = UnixListener::bind(&path).expect("bind");
        let t = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().expect("accept");
            s.write_all(b"{\"hello\": 1}\n").expect("write");
        });
        assert!(Qmp::connect(&path).is_err());
        t.join().expect("peer thread");
    }
}
