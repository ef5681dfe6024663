//! Shared helpers of the `migrate_*` integration tests: two daemons with
//! distinct host UUIDs on loopback, guests defined and inspected through
//! `migratectl`, memory checksums through `migratectl migration-status`.

#![allow(dead_code)] // each test file uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use migrated_tests::clients::{stderr_of, stdout_of};
pub use migrated_tests::migratectl_binary;
use migrated_tests::{run_with_timeout, wait_until, Daemon};

/// How long one client command may take.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(90);

/// Runs `migratectl -c URI ARGS...`.
pub fn ctl(uri: &str, args: &[&str]) -> Output {
    run_with_timeout(
        Command::new(migratectl_binary())
            .arg("-c")
            .arg(uri)
            .args(args)
            .env_remove("MIGRATED_DEFAULT_URI"),
        CLIENT_TIMEOUT,
    )
}

/// Runs migratectl and insists on success; returns stdout.
#[track_caller]
pub fn ctl_ok(uri: &str, args: &[&str]) -> String {
    let out = ctl(uri, args);
    assert!(
        out.status.success(),
        "migratectl {args:?} failed: {}{}",
        stdout_of(&out),
        stderr_of(&out)
    );
    stdout_of(&out)
}

/// Runs migratectl and insists on failure; returns stderr.
#[track_caller]
pub fn ctl_fails(uri: &str, args: &[&str]) -> String {
    let out = ctl(uri, args);
    assert!(
        !out.status.success(),
        "migratectl {args:?} unexpectedly succeeded: {}",
        stdout_of(&out)
    );
    stderr_of(&out)
}

/// Two daemons (source A, destination B) with distinct host UUIDs.
pub struct Hosts {
    pub a: Daemon,
    pub b: Daemon,
}

impl Hosts {
    pub fn start() -> Self {
        Self {
            a: Daemon::builder().hostname("host-a").tcp().spawn(),
            b: Daemon::builder().hostname("host-b").tcp().spawn(),
        }
    }

    pub fn a_uri(&self) -> String {
        self.a.uri()
    }

    pub fn b_uri(&self) -> String {
        self.b.uri()
    }

    /// Both daemons' logs, for failure messages.
    pub fn logs(&self) -> String {
        format!(
            "--- source log ---\n{}\n--- destination log ---\n{}",
            tail(&self.a.logs()),
            tail(&self.b.logs())
        )
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// A test-driver guest with a dirtying workload; `extra` goes into `<metadata>`.
pub fn guest_xml(name: &str, memory_mib: u32, extra: &str) -> String {
    format!(
        "<domain type='test'><name>{name}</name><memory unit='MiB'>{memory_mib}</memory>\
         <vcpu>2</vcpu><os><type arch='x86_64'>hvm</type></os>\
         <metadata><migrated:workload xmlns:migrated='https://migrated.dev/xmlns/test/1' \
         dirty_pages_per_sec='20000' working_set_mib='4'/>{extra}</metadata></domain>\n"
    )
}

/// Defines `name` on `uri` from [`guest_xml`] (kept in `dir`) and, with
/// `start`, starts it.
pub fn define(uri: &str, dir: &Path, name: &str, extra: &str, start: bool) -> PathBuf {
    let path = dir.join(format!("{name}.xml"));
    std::fs::write(&path, guest_xml(name, 16, extra)).expect("write guest XML");
    ctl_ok(uri, &["define", path.to_str().expect("utf-8 path")]);
    if start {
        ctl_ok(uri, &["start", name]);
    }
    path
}

/// `migratectl domstate`: "running", "paused", "shut off", or `None` when
/// the host does not know the guest.
pub fn state(uri: &str, name: &str) -> Option<String> {
    let out = ctl(uri, &["domstate", name]);
    out.status
        .success()
        .then(|| stdout_of(&out).trim().to_owned())
}

/// Whether the guest has a persistent definition on `uri`.
pub fn persistent(uri: &str, name: &str) -> bool {
    ctl_ok(uri, &["dominfo", name])
        .lines()
        .any(|l| l.starts_with("Persistent:") && l.ends_with("yes"))
}

/// The memory checksum of a running guest (`migration-status` detail).
pub fn checksum(uri: &str, name: &str) -> String {
    let out = ctl_ok(uri, &["migration-status", name]);
    out.split("memory sha256 ")
        .nth(1)
        .and_then(|rest| rest.get(..64))
        .unwrap_or_else(|| panic!("no checksum in migration-status: {out}"))
        .to_owned()
}

/// Whether a migration job still owns the guest on `uri`.
pub fn job_role(uri: &str, name: &str) -> String {
    let out = ctl_ok(uri, &["migration-status", name]);
    out.lines()
        .find_map(|l| l.strip_prefix("Role:"))
        .map(|r| r.trim().to_owned())
        .unwrap_or_default()
}

/// Waits until `name` has the `want` state on `uri` (or is absent for `None`).
#[track_caller]
pub fn wait_state(uri: &str, name: &str, want: Option<&str>) {
    wait_until(
        Duration::from_secs(20),
        &format!("{name} to be {want:?} on {uri}"),
        || (state(uri, name).as_deref() == want).then_some(()),
    );
}

/// Exactly one running-or-resumable copy: checks that `name` runs (or is
/// paused) on exactly one host, its config is still somewhere, and neither
/// host keeps a migration job for it.
#[track_caller]
pub fn exactly_one_copy(hosts: &Hosts, name: &str) -> (bool, bool) {
    let a = state(&hosts.a_uri(), name);
    let b = state(&hosts.b_uri(), name);
    let live = |s: &Option<String>| matches!(s.as_deref(), Some("running" | "paused"));
    assert!(
        live(&a) ^ live(&b),
        "expected exactly one live copy of {name}: source {a:?}, destination {b:?}\n{}",
        hosts.logs()
    );
    for (uri, s) in [(hosts.a_uri(), &a), (hosts.b_uri(), &b)] {
        if s.is_some() {
            assert_eq!(
                job_role(&uri, name),
                "none",
                "a job still owns {name} on {uri}"
            );
        }
    }
    (live(&a), live(&b))
}

/// Starts `migratectl -c URI ARGS...` without waiting for it.
pub fn ctl_spawn(uri: &str, args: &[&str]) -> std::process::Child {
    Command::new(migratectl_binary())
        .arg("-c")
        .arg(uri)
        .args(args)
        .env_remove("MIGRATED_DEFAULT_URI")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn migratectl")
}

/// Waits (bounded) for a spawned client; returns (success, stderr).
pub fn finish(mut child: std::process::Child) -> (bool, String) {
    let status = wait_until(CLIENT_TIMEOUT, "migratectl to exit", || {
        child.try_wait().ok().flatten()
    });
    let out = child.wait_with_output().expect("collect migratectl output");
    (status.success(), stderr_of(&out))
}

/// Waits until the source reports an active outgoing migration of `name`
/// (`domjobinfo` shows a running job).
pub fn wait_job_running(uri: &str, name: &str) {
    wait_until(
        Duration::from_secs(30),
        &format!("a migration job of {name} on {uri}"),
        || {
            let out = ctl(uri, &["domjobinfo", name]);
            stdout_of(&out).contains("Unbounded").then_some(())
        },
    );
}

/// Starts `migratectl migrate --live --bandwidth 1 NAME TO` on `from` and
/// waits until its job runs: at 1 MiB/s the guest's 4 MiB working set takes
/// seconds, time for a second client to act mid-migration.
pub fn spawn_slow_migration(from: &str, to: &str, name: &str) -> std::process::Child {
    let child = ctl_spawn(from, &["migrate", "--live", "--bandwidth", "1", name, to]);
    wait_job_running(from, name);
    child
}

/// What `virsh event` printed about one migration of `name` (from its
/// `text`): the MIGRATION_ITERATION numbers in order, and the statistics of
/// the JOB_COMPLETED event (`key: value` lines after its header). Checks
/// what holds for every completed outgoing migration: iterations counted
/// from 1 without gaps, one JOB_COMPLETED after the guest stopped here,
/// for a migration out (operation 5), its `memory_iteration` the last pass.
#[track_caller]
pub fn job_events(text: &str, name: &str) -> (Vec<u64>, std::collections::HashMap<String, String>) {
    let prefix = format!("event 'migration-iteration' for domain '{name}': iteration: '");
    let iterations: Vec<u64> = text
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix)?.strip_suffix('\''))
        .map(|n| {
            n.parse()
                .unwrap_or_else(|_| panic!("iteration {n:?} in:\n{text}"))
        })
        .collect();
    let n = iterations.len() as u64;
    assert!(n >= 1, "no migration-iteration event in:\n{text}");
    assert_eq!(iterations, (1..=n).collect::<Vec<_>>(), "{text}");
    let header = format!("event 'job-completed' for domain '{name}':");
    assert_eq!(text.matches(&header).count(), 1, "{text}");
    let at = text.find(&header).unwrap_or_default();
    let stopped = text.find(&format!("for domain '{name}': Stopped Migrated"));
    assert!(
        stopped.is_some_and(|s| s < at),
        "job-completed comes after the guest stopped here, as in libvirt:\n{text}"
    );
    let stats: std::collections::HashMap<String, String> = text[at..]
        .lines()
        .skip(1)
        .map_while(|l| l.strip_prefix('\t')?.split_once(": "))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert_eq!(
        stats.get("operation").map(String::as_str),
        Some("5"),
        "{text}"
    );
    assert_eq!(
        stats.get("memory_iteration"),
        Some(&n.to_string()),
        "the last pass:\n{text}"
    );
    (iterations, stats)
}

/// A loopback TCP proxy whose connections can be cut mid-stream.
pub struct Proxy {
    pub port: u16,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    sockets: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl Proxy {
    /// Forwards 127.0.0.1:`port` to `target`.
    pub fn start(target: std::net::SocketAddr) -> Self {
        use std::net::{TcpListener, TcpStream};
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sockets = std::sync::Arc::new(std::sync::Mutex::new(Vec::<TcpStream>::new()));
        let (c, s) = (cut.clone(), sockets.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                if c.load(std::sync::atomic::Ordering::SeqCst) {
                    continue;
                }
                let Ok(server) = TcpStream::connect(target) else {
                    continue;
                };
                for sock in [&client, &server] {
                    if let Ok(clone) = sock.try_clone() {
                        s.lock().expect("proxy sockets").push(clone);
                    }
                }
                for (mut from, mut to) in [
                    (client.try_clone(), server.try_clone()),
                    (server.try_clone(), client.try_clone()),
                ]
                .into_iter()
                .filter_map(|(a, b)| Some((a.ok()?, b.ok()?)))
                {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Self { port, cut, sockets }
    }

    /// Cuts every proxied connection and refuses new ones.
    pub fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for s in self.sockets.lock().expect("proxy sockets").iter() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// Runs `virsh -c FROM ARGS` (a migration) on a thread and, once
/// `under_way` returns (its job runs), `virsh -c FROM resume NAME` from a
/// second client; answers both outputs, the migration's first.
pub fn migrate_with_resume(
    from: &str,
    args: &[&str],
    name: &str,
    under_way: impl FnOnce(),
) -> (Output, Output) {
    let migrate = std::thread::spawn({
        let from = from.to_owned();
        let args: Vec<String> = args.iter().map(|&a| a.to_owned()).collect();
        move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            migrated_tests::virsh(&from, &args)
        }
    });
    under_way();
    let resume = migrated_tests::virsh(from, &["resume", name]);
    let out = migrate.join().expect("virsh migrate thread");
    (out, resume)
}
