//! The fault matrix's engine, shared by `fault_matrix_*.rs` (one file per
//! mode, so cargo runs the modes side by side) and the recovery tests.
//!
//! A case is (step, fault, mode). The engine holds the daemon that runs the
//! step at that step's pause point, injects the fault, lets the rest happen,
//! restarts dead daemons and then checks the invariant: at most one live copy
//! (running or paused) of the guest; none only when the daemon holding the
//! only running copy was killed (test-driver guests live inside their daemon,
//! like guests of a crashed host) and then its config survives; the
//! persistent config on the side the flags say (`--persistent
//! --undefinesource`: where the guest lives); no migration job left, or a job
//! held after a restart that `migration-status` reports and the documented
//! operator command settles; and a next migration that succeeds.

#![allow(dead_code)] // each test file uses its own subset

use std::time::{Duration, Instant};

use migrated_tests::clients::stderr_of;
use migrated_tests::fault::{pause, report, signals, FaultProxy};
use migrated_tests::{free_port, Daemon};

use crate::migrate_support::{ctl, ctl_ok, ctl_spawn, guest_xml, persistent, state};

/// Flags of every faulted migration: config moves with the guest.
const FLAGS: [&str; 3] = ["--live", "--persistent", "--undefinesource"];
/// Guest memory: small, so each case stays short.
const GUEST_MIB: u32 = 8;
/// How long the held daemon may take to reach the step.
const HOLD_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the faulted client may take to give up.
const CLIENT_EXIT: Duration = Duration::from_secs(60);
/// Keepalive of the daemons: a silent peer is dropped after about 2 s.
const KEEPALIVE: [&str; 4] = ["--keepalive-interval", "1", "--keepalive-count", "1"];

/// Migration mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Client-managed: the client talks to both daemons.
    Regular,
    /// The source daemon drives the destination.
    P2p,
    /// Peer-to-peer with the data inside the daemons' connection.
    Tunnelled,
}

impl Mode {
    /// The name used in the report.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Regular => "regular",
            Mode::P2p => "p2p",
            Mode::Tunnelled => "p2p+tunnelled",
        }
    }

    fn flags(self) -> &'static [&'static str] {
        match self {
            Mode::Regular => &[],
            Mode::P2p => &["--p2p"],
            Mode::Tunnelled => &["--p2p", "--tunnelled"],
        }
    }
}

/// The injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL of the source daemon.
    SourceKilled,
    /// SIGKILL of the destination daemon.
    DestinationKilled,
    /// SIGKILL of the `migratectl` process.
    ClientKilled,
    /// Every client↔source connection cut.
    CutClientSource,
    /// Every client↔destination connection cut.
    CutClientDestination,
    /// The source↔destination connection cut: the daemons' connection
    /// (p2p) or the direct data connection (regular).
    CutSourceDestination,
    /// `migratectl` frozen (SIGSTOP) until the daemons' keepalive drops it.
    ClientStalled,
    /// The source daemon frozen until the destination's keepalive drops its
    /// connection, then thawed.
    SourceStalled,
    /// The guest's process killed.
    GuestKilled,
}

impl Fault {
    /// Every fault, in report order.
    pub const ALL: [Fault; 9] = [
        Fault::SourceKilled,
        Fault::DestinationKilled,
        Fault::ClientKilled,
        Fault::CutClientSource,
        Fault::CutClientDestination,
        Fault::CutSourceDestination,
        Fault::ClientStalled,
        Fault::SourceStalled,
        Fault::GuestKilled,
    ];

    /// The name used in the report.
    pub fn name(self) -> &'static str {
        match self {
            Fault::SourceKilled => "source daemon killed",
            Fault::DestinationKilled => "destination daemon killed",
            Fault::ClientKilled => "client killed",
            Fault::CutClientSource => "cut client↔source",
            Fault::CutClientDestination => "cut client↔destination",
            Fault::CutSourceDestination => "cut source↔destination",
            Fault::ClientStalled => "client stalled past keepalive",
            Fault::SourceStalled => "source stalled past keepalive",
            Fault::GuestKilled => "guest process killed",
        }
    }

    /// Why the fault has no meaning in `mode` on the test driver, if so.
    pub fn not_applicable(self, mode: Mode) -> Option<&'static str> {
        match (self, mode) {
            (Fault::CutClientDestination, Mode::P2p | Mode::Tunnelled) => {
                Some("the client has no destination connection in peer-to-peer mode")
            }
            (Fault::SourceStalled, Mode::Regular) => Some(
                "only the client could notice, through its own keepalive (5 s × 5), beyond the matrix's time budget",
            ),
            (Fault::GuestKilled, _) => Some(
                "a test-driver guest lives inside its daemon: killing it is the daemon-killed rows (QEMU rows: driver-qemu tests)",
            ),
            _ => None,
        }
    }
}

/// Which daemon runs `step`.
fn held_by_destination(step: &str) -> bool {
    matches!(step, "prepare" | "finish")
}

/// Two daemons and the proxies between the parties.
pub struct Env {
    /// Source daemon.
    pub a: Daemon,
    /// Destination daemon.
    pub b: Daemon,
    /// client → source.
    pub to_a: FaultProxy,
    /// client → destination.
    pub to_b: FaultProxy,
    /// source daemon → destination daemon (p2p's `dconnuri`).
    pub a_to_b: FaultProxy,
    /// The destination's migration data ports.
    pub data_ports: (u16, u16),
    mode: Mode,
}

fn uri_at(port: u16) -> String {
    format!("test+tcp://127.0.0.1:{port}/default")
}

impl Env {
    /// Starts both daemons (short keepalive, a private data port range) and the proxies.
    pub fn start(mode: Mode) -> Self {
        let first = free_port();
        let data_ports = (first, first.saturating_add(7));
        let a = Daemon::builder()
            .hostname("host-a")
            .tcp()
            .args(KEEPALIVE)
            .spawn();
        let b = Daemon::builder()
            .hostname("host-b")
            .tcp()
            .args(KEEPALIVE)
            .args([
                "--migration-ports".to_owned(),
                format!("{}-{}", data_ports.0, data_ports.1),
            ])
            .spawn();
        let to_a = FaultProxy::start(a.tcp_addr());
        let to_b = FaultProxy::start(b.tcp_addr());
        let a_to_b = FaultProxy::start(b.tcp_addr());
        Self {
            a,
            b,
            to_a,
            to_b,
            a_to_b,
            data_ports,
            mode,
        }
    }

    /// Direct URIs (for inspection and repair, never faulted).
    pub fn a_uri(&self) -> String {
        self.a.uri()
    }

    /// See [`Env::a_uri`].
    pub fn b_uri(&self) -> String {
        self.b.uri()
    }

    /// The client's source URI (through the proxy).
    fn client_source(&self) -> String {
        uri_at(self.to_a.port())
    }

    /// The destination URI the migration is given: the client's (regular)
    /// or the source daemon's `dconnuri` (p2p), both through a proxy.
    fn client_destination(&self) -> String {
        match self.mode {
            Mode::Regular => uri_at(self.to_b.port()),
            Mode::P2p | Mode::Tunnelled => uri_at(self.a_to_b.port()),
        }
    }

    fn logs(&self) -> String {
        let tail = |s: String| {
            let lines: Vec<&str> = s.lines().collect();
            lines[lines.len().saturating_sub(40)..].join("\n")
        };
        format!(
            "--- source log ---\n{}\n--- destination log ---\n{}",
            tail(self.a.logs()),
            tail(self.b.logs())
        )
    }

    fn heal(&self) {
        for p in [&self.to_a, &self.to_b, &self.a_to_b] {
            p.heal();
        }
    }

    /// Resets the direct data connections of this env's port range.
    fn cut_data_connections(&self) {
        let (lo, hi) = self.data_ports;
        let filter = format!(
            "( sport >= :{lo} and sport <= :{hi} ) or ( dport >= :{lo} and dport <= :{hi} )"
        );
        let out = std::process::Command::new("ss")
            .args(["-K", "-t"])
            .args(filter.split(' '))
            .output();
        if let Ok(out) = out {
            if !out.status.success() {
                eprintln!("ss -K failed: {}", stderr_of(&out));
            }
        }
    }
}

/// Defines `name` persistent on `uri` and starts it.
pub fn define_started(uri: &str, dir: &std::path::Path, name: &str) {
    let path = dir.join(format!("{name}.xml"));
    std::fs::write(&path, guest_xml(name, GUEST_MIB, "")).expect("write guest XML");
    ctl_ok(uri, &["define", path.to_str().expect("utf-8 path")]);
    ctl_ok(uri, &["start", name]);
}

/// `migration-status` of `name` on `uri`: (role, detail), or `None` when
/// the host does not know the guest.
pub fn job_of(uri: &str, name: &str) -> Option<(String, String)> {
    let out = ctl(uri, &["migration-status", name]);
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim().to_owned())
            .unwrap_or_default()
    };
    Some((field("Role:"), field("Detail:")))
}

fn is_live(s: Option<&str>) -> bool {
    matches!(s, Some("running" | "paused"))
}

fn describe(side: &str, s: Option<&String>) -> String {
    match s {
        Some(s) => format!("{side} {s}"),
        None => format!("{side} absent"),
    }
}

/// Waits until neither host has an active (non-held) job for `name`.
fn settle(env: &Env, name: &str, killed_source: bool) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let a = job_of(&env.a_uri(), name);
        let b = job_of(&env.b_uri(), name);
        // A held job is a resting state only where nobody can ask the peer:
        // a p2p source knows its destination and settles by asking it.
        let may_hold = env.mode == Mode::Regular || !killed_source;
        let quiet = |j: &Option<(String, String)>| match j {
            None => true,
            Some((role, detail)) => role == "none" || (may_hold && detail.contains("kept paused")),
        };
        if quiet(&a) && quiet(&b) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "a migration job stays active: source {a:?}, destination {b:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs one case; returns its report row, or the reason it failed.
pub fn run_case(
    env: &mut Env,
    step: &str,
    fault: Fault,
    idx: usize,
) -> Result<report::Row, String> {
    let started = Instant::now();
    let mode = env.mode;
    let dir = tempfile::tempdir().expect("temp dir");
    let name = format!("fm{}-{idx}", mode.name().replace('+', ""));
    let (a, b) = (env.a_uri(), env.b_uri());
    define_started(&a, dir.path(), &name);

    let holder = if held_by_destination(step) {
        env.b.state_dir().to_path_buf()
    } else {
        env.a.state_dir().to_path_buf()
    };
    pause::request(&holder, step);
    let dest = env.client_destination();
    let mut args: Vec<&str> = vec!["migrate"];
    args.extend(FLAGS);
    args.extend(mode.flags());
    args.extend([name.as_str(), dest.as_str()]);
    let mut child = ctl_spawn(&env.client_source(), &args);
    if !pause::wait_held(&holder, step, HOLD_TIMEOUT) {
        let _ = child.kill();
        let _ = child.wait();
        pause::release(env.a.state_dir());
        pause::release(env.b.state_dir());
        return Err(format!("never held at {step}\n{}", env.logs()));
    }
    let mut killed = (false, false);
    match fault {
        Fault::SourceKilled => {
            env.a.kill();
            killed.0 = true;
        }
        Fault::DestinationKilled => {
            env.b.kill();
            killed.1 = true;
        }
        Fault::ClientKilled => {
            let _ = child.kill();
        }
        Fault::CutClientSource => env.to_a.cut_all(),
        Fault::CutClientDestination => env.to_b.cut_all(),
        Fault::CutSourceDestination => match mode {
            Mode::Regular => env.cut_data_connections(),
            Mode::P2p | Mode::Tunnelled => env.a_to_b.cut_all(),
        },
        Fault::ClientStalled => {
            signals::stop(child.id());
            let proxies: Vec<&FaultProxy> = match mode {
                Mode::Regular => vec![&env.to_a, &env.to_b],
                Mode::P2p | Mode::Tunnelled => vec![&env.to_a],
            };
            let dropped = wait_for(Duration::from_secs(15), || {
                proxies.iter().all(|p| p.open_connections() == 0)
            });
            signals::resume(child.id());
            if !dropped {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "keepalive never dropped the stalled client\n{}",
                    env.logs()
                ));
            }
        }
        Fault::SourceStalled => {
            signals::stop(env.a.pid());
            let dropped = wait_for(Duration::from_secs(15), || {
                env.a_to_b.open_connections() == 0
            });
            signals::resume(env.a.pid());
            if !dropped {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "keepalive never dropped the stalled source\n{}",
                    env.logs()
                ));
            }
        }
        Fault::GuestKilled => unreachable!("not applicable on the test driver"),
    }
    // The fault is in place: let the held step go on (a killed daemon's
    // request must not survive into its restart either).
    pause::release(env.a.state_dir());
    pause::release(env.b.state_dir());
    let exit = wait_for_exit(&mut child, CLIENT_EXIT);
    let migrate = match exit {
        Some(true) => "ok",
        Some(false) => "failed",
        None => {
            let _ = child.kill();
            let _ = child.wait();
            "client hung (killed)"
        }
    };
    if killed.0 {
        env.a.restart();
    }
    if killed.1 {
        env.b.restart();
    }
    env.heal();
    settle(env, &name, killed.0).map_err(|e| format!("{e}\n{}", env.logs()))?;

    let (sa, sb) = (state(&a, &name), state(&b, &name));
    let (ja, jb) = (job_of(&a, &name), job_of(&b, &name));
    let held = ja.as_ref().is_some_and(|(_, d)| d.contains("kept paused"));
    // A source copy held by its job (outcome unknown) is not resumable
    // without an operator's or the peer's decision: change protection
    // refuses to resume it, which is checked below.
    let live = usize::from(is_live(sa.as_deref()) && !held) + usize::from(is_live(sb.as_deref()));
    let guest = format!(
        "{}, {}",
        describe("source", sa.as_ref()),
        describe("destination", sb.as_ref())
    );
    if live > 1 {
        return Err(format!("two live copies: {guest}\n{}", env.logs()));
    }
    if jb.as_ref().is_some_and(|(role, _)| role != "none") {
        return Err(format!(
            "the destination keeps a job: {jb:?}\n{}",
            env.logs()
        ));
    }
    let mut recovery = Vec::new();
    let asked_peer = killed.0
        && env
            .a
            .logs()
            .lines()
            .any(|l| l.contains("settled by asking the peer") && l.contains(name.as_str()));
    if asked_peer {
        recovery.push("held after restart; settled by asking the destination");
    }
    if held {
        // Documented waiting state (operations.md §6): the source keeps the
        // job after a restart past perform-done. The status must say so.
        let (role, detail) = ja.clone().unwrap_or_default();
        if role != "source" || !detail.contains("perform3_done") {
            return Err(format!("held job misreported: role {role}, {detail}"));
        }
        if sa.as_deref() == Some("paused") && ctl(&a, &["resume", &name]).status.success() {
            return Err(format!("a held source copy could be resumed: {guest}"));
        }
        if is_live(sb.as_deref()) {
            // The destination runs it: operations.md §6 says destroy the
            // source's copy; the held job then finishes as a completed
            // migration (the source config goes, as --undefinesource asked).
            let out = ctl(&a, &["destroy", &name]);
            if !out.status.success() {
                return Err(format!(
                    "documented resolution failed: migratectl destroy: {}",
                    stderr_of(&out)
                ));
            }
            if state(&a, &name).is_some() {
                return Err("destroy settled the held job but the source kept its config".into());
            }
            recovery.push("held; operator destroy on source");
        } else {
            // Destination does not have it: the operator gives it back here.
            ctl_ok(&a, &["domjobabort", &name]);
            recovery.push("held; operator domjobabort");
        }
    } else if ja.as_ref().is_some_and(|(role, _)| role != "none") {
        return Err(format!("the source keeps a job: {ja:?}\n{}", env.logs()));
    }
    let (sa, sb) = (state(&a, &name), state(&b, &name));
    let (pa, pb) = (
        sa.is_some() && persistent(&a, &name),
        sb.is_some() && persistent(&b, &name),
    );
    let config = match (pa, pb) {
        (true, true) => "both",
        (true, false) => "source",
        (false, true) => "destination",
        (false, false) => "none",
    };
    let lost = !is_live(sa.as_deref()) && !is_live(sb.as_deref());
    if lost {
        // Only a killed daemon may take the only copy with it, and its
        // config must survive.
        if !(killed.0 || killed.1) {
            return Err(format!(
                "no live copy though no daemon died: {guest}\n{}",
                env.logs()
            ));
        }
        if config == "none" {
            return Err(format!("guest and config lost: {guest}\n{}", env.logs()));
        }
        recovery.push("lost with its killed daemon; started from its config");
    } else {
        // The live copy's host holds the config (UNDEFINE_SOURCE moves it).
        let on_a = is_live(sa.as_deref());
        if on_a && !pa || !on_a && !pb {
            return Err(format!(
                "config not with the guest: {guest}, config {config}"
            ));
        }
        if !on_a && pa {
            return Err(format!(
                "UNDEFINE_SOURCE done but the source kept its config: {guest}"
            ));
        }
    }
    let guest_after = format!(
        "{}{}",
        if is_live(sa.as_deref()) {
            format!("source {}", sa.clone().unwrap_or_default())
        } else if is_live(sb.as_deref()) {
            format!("destination {}", sb.clone().unwrap_or_default())
        } else {
            "none live".to_owned()
        },
        if held { " (held job settled)" } else { "" }
    );

    // The next migration succeeds, from wherever the guest is.
    let (from, to) = if is_live(sb.as_deref()) || (lost && pb && !pa) {
        (&b, &a)
    } else {
        (&a, &b)
    };
    if lost {
        ctl_ok(from, &["start", &name]);
    } else if state(from, &name).as_deref() == Some("paused") {
        ctl_ok(from, &["resume", &name]);
    }
    let out = ctl(
        from,
        &[&["migrate"][..], &FLAGS, &[name.as_str(), to.as_str()]].concat(),
    );
    if !out.status.success() {
        return Err(format!(
            "next migration failed: {}\n{}",
            stderr_of(&out),
            env.logs()
        ));
    }
    if state(to, &name).as_deref() != Some("running") || state(from, &name).is_some() {
        return Err(format!(
            "after the next migration: {:?} there, {:?} here",
            state(to, &name),
            state(from, &name)
        ));
    }
    let _ = ctl(to, &["destroy", &name]);
    let _ = ctl(to, &["undefine", &name]);
    Ok(report::Row {
        step: step.to_owned(),
        fault: fault.name().to_owned(),
        mode: mode.name().to_owned(),
        migrate: migrate.to_owned(),
        guest: guest_after,
        config: config.to_owned(),
        recovery: if recovery.is_empty() {
            "-".to_owned()
        } else {
            recovery.join("; ")
        },
        millis: started.elapsed().as_millis(),
    })
}

fn holder_dir(env: &Env, step: &str) -> std::path::PathBuf {
    if held_by_destination(step) {
        env.b.state_dir().to_path_buf()
    } else {
        env.a.state_dir().to_path_buf()
    }
}

fn wait_for(timeout: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn wait_for_exit(child: &mut std::process::Child, timeout: Duration) -> Option<bool> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status.success());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Runs every case of `mode` (all steps × applicable faults), one after the
/// other, writes the rows, and fails with every broken case listed.
pub fn run_mode(mode: Mode, faults: &[Fault]) {
    report::reset(mode.name());
    let mut env = Env::start(mode);
    let mut failures = Vec::new();
    let mut idx = 0;
    // Narrowing for debugging: MIGRATED_FAULT_ONLY=<substring of a fault
    // name>, MIGRATED_STEP_ONLY=<step>.
    let only_fault = std::env::var("MIGRATED_FAULT_ONLY").ok();
    let only_step = std::env::var("MIGRATED_STEP_ONLY").ok();
    for fault in faults {
        for step in pause::POINTS {
            idx += 1;
            if only_fault
                .as_ref()
                .is_some_and(|f| !fault.name().contains(f.as_str()))
                || only_step.as_ref().is_some_and(|s| s != step)
            {
                continue;
            }
            if let Some(reason) = fault.not_applicable(mode) {
                report::append(&report::Row {
                    step: step.to_owned(),
                    fault: fault.name().to_owned(),
                    mode: mode.name().to_owned(),
                    migrate: "n/a".to_owned(),
                    guest: format!("n/a: {reason}"),
                    config: "-".to_owned(),
                    recovery: "-".to_owned(),
                    millis: 0,
                });
                continue;
            }
            let t = Instant::now();
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                run_case(&mut env, step, *fault, idx)
            }))
            .unwrap_or_else(|panic| {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                Err(format!("panicked: {msg}"))
            });
            match outcome {
                Ok(row) => report::append(&row),
                Err(why) => {
                    let first = why.lines().next().unwrap_or_default().to_owned();
                    eprintln!("FAIL {} / {} / {}: {why}", mode.name(), step, fault.name());
                    report::append(&report::Row {
                        step: step.to_owned(),
                        fault: fault.name().to_owned(),
                        mode: mode.name().to_owned(),
                        migrate: "-".to_owned(),
                        guest: format!("FAILED: {first}"),
                        config: "-".to_owned(),
                        recovery: "-".to_owned(),
                        millis: t.elapsed().as_millis(),
                    });
                    failures.push(format!("{step} / {}: {first}", fault.name()));
                    // A broken case may leave a daemon down: start afresh.
                    env = Env::start(mode);
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of the {} matrix cases failed:\n{}",
        failures.len(),
        mode.name(),
        failures.join("\n")
    );
}
