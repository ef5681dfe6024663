//! The daemon as a process: persistent configs across restarts and crashes,
//! graceful stop, SIGHUP reload, configuration errors, socket activation,
//! and two daemons side by side.

use std::net::TcpStream;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use migrated_tests::clients::{stderr_of, stdout_of, CLIENT_TIMEOUT};
use migrated_tests::raw::assert_serves;
use migrated_tests::{
    migrated_binary, random_uuid, require_binary, run_with_timeout, virsh, wait_until, Daemon,
};

fn ok(output: &Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what} failed: {}",
        stderr_of(output)
    );
    stdout_of(output)
}

fn define(uri: &str, dir: &std::path::Path, name: &str) {
    let path = dir.join(format!("{name}.xml"));
    std::fs::write(
        &path,
        format!(
            "<domain type='test'><name>{name}</name><memory unit='MiB'>4</memory>\
             <vcpu>2</vcpu><os><type arch='x86_64'>hvm</type></os></domain>"
        ),
    )
    .expect("write xml");
    ok(
        &virsh(uri, &["define", &path.display().to_string()]),
        "define",
    );
}

fn uuid_of(uri: &str, name: &str) -> String {
    ok(&virsh(uri, &["domuuid", name]), "domuuid")
        .trim()
        .to_owned()
}

#[test]
fn persistent_configs_survive_a_graceful_restart_and_come_back_shut_off() {
    if require_binary("virsh").is_none() {
        return;
    }
    let mut daemon = Daemon::builder().tcp().spawn();
    let dir = tempfile::tempdir().expect("temp dir");
    let uri = daemon.uri();
    define(&uri, dir.path(), "keep-a");
    define(&uri, dir.path(), "keep-b");
    ok(&virsh(&uri, &["start", "keep-b"]), "start");
    let before = (uuid_of(&uri, "keep-a"), uuid_of(&uri, "keep-b"));

    let status = daemon.stop();
    assert!(status.success(), "SIGTERM exit status {status:?}");
    assert!(daemon.logs().contains("stopped"), "{}", daemon.logs());
    daemon.restart();

    let list = ok(&virsh(&uri, &["list", "--all"]), "list --all");
    for name in ["keep-a", "keep-b"] {
        let row = list.lines().find(|l| l.contains(name)).unwrap_or_default();
        assert!(row.contains("shut off"), "{name} after restart: {list}");
    }
    assert_eq!((uuid_of(&uri, "keep-a"), uuid_of(&uri, "keep-b")), before);
    let info = ok(&virsh(&uri, &["dominfo", "keep-b"]), "dominfo");
    assert!(info.contains("CPU(s):         2"), "{info}");
}

#[test]
fn persistent_configs_survive_a_crash() {
    if require_binary("virsh").is_none() {
        return;
    }
    let mut daemon = Daemon::builder().tcp().spawn();
    let dir = tempfile::tempdir().expect("temp dir");
    let uri = daemon.uri();
    define(&uri, dir.path(), "crash-a");
    ok(&virsh(&uri, &["start", "crash-a"]), "start");
    daemon.kill();
    daemon.restart();
    let list = ok(&virsh(&uri, &["list", "--all"]), "list --all");
    assert!(
        list.lines()
            .any(|l| l.contains("crash-a") && l.contains("shut off")),
        "{list}"
    );
    // The restarted daemon starts it again like any other.
    ok(&virsh(&uri, &["start", "crash-a"]), "start after crash");
}

#[test]
fn sigterm_closes_listeners_and_exits_zero() {
    let mut daemon = Daemon::builder().tcp().unix().spawn();
    let addr = daemon.tcp_addr();
    assert_serves(addr);
    let status = daemon.stop();
    assert_eq!(status.code(), Some(0), "{}", daemon.logs());
    assert!(
        TcpStream::connect(addr).is_err(),
        "port still accepts after stop"
    );
}

#[test]
fn sighup_reloads_the_log_filter_from_the_config_file() {
    let daemon = Daemon::builder()
        .tcp()
        .config_toml("log_filter = \"info\"\n")
        .spawn();
    std::fs::write(daemon.config_path(), "log_filter = \"debug\"\n").expect("rewrite config");
    daemon.signal(libc::SIGHUP);
    wait_until(Duration::from_secs(10), "log filter reload", || {
        daemon.logs().contains("log filter reloaded").then_some(())
    });
    assert!(
        daemon.logs().contains("log_filter=debug"),
        "{}",
        daemon.logs()
    );
    assert_serves(daemon.tcp_addr());
    // A broken file keeps the running settings and the daemon.
    std::fs::write(daemon.config_path(), "log_filter = [").expect("rewrite config");
    daemon.signal(libc::SIGHUP);
    wait_until(Duration::from_secs(10), "reload refusal", || {
        daemon.logs().contains("config not reloaded").then_some(())
    });
    assert_serves(daemon.tcp_addr());
}

#[test]
fn two_daemons_run_side_by_side_with_their_own_identity_and_state() {
    if require_binary("virsh").is_none() {
        return;
    }
    let a = Daemon::builder().tcp().host_uuid(random_uuid()).spawn();
    let b = Daemon::builder().tcp().host_uuid(random_uuid()).spawn();
    assert_ne!(a.tcp_port(), b.tcp_port());
    assert_ne!(a.state_dir(), b.state_dir());
    let caps_a = ok(&virsh(&a.uri(), &["capabilities"]), "caps a");
    let caps_b = ok(&virsh(&b.uri(), &["capabilities"]), "caps b");
    assert!(caps_a.contains(a.host_uuid()) && !caps_a.contains(b.host_uuid()));
    assert!(caps_b.contains(b.host_uuid()) && !caps_b.contains(a.host_uuid()));
    let dir = tempfile::tempdir().expect("temp dir");
    define(&a.uri(), dir.path(), "only-on-a");
    let list_b = ok(&virsh(&b.uri(), &["list", "--all", "--name"]), "list b");
    assert!(!list_b.contains("only-on-a"), "{list_b}");
}

#[test]
fn explicit_missing_config_file_and_bad_flags_are_errors() {
    let out = run_with_timeout(
        Command::new(migrated_binary()).args(["--config", "/nonexistent/migrated.toml"]),
        CLIENT_TIMEOUT,
    );
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("/nonexistent/migrated.toml"),
        "{}",
        stderr_of(&out)
    );

    let out = run_with_timeout(
        Command::new(migrated_binary()).args(["--listen", "http://127.0.0.1:1"]),
        CLIENT_TIMEOUT,
    );
    assert!(!out.status.success());
    assert!(stderr_of(&out).contains("--listen"), "{}", stderr_of(&out));

    let out = run_with_timeout(
        Command::new(migrated_binary()).arg("--help"),
        CLIENT_TIMEOUT,
    );
    let help = stdout_of(&out);
    for flag in [
        "--listen",
        "--state-dir",
        "--runtime-dir",
        "--host-uuid",
        "--hostname",
        "--drivers",
        "--max-clients",
        "--max-anonymous-clients",
        "--max-client-requests",
        "--max-jobs",
        "--keepalive-interval",
        "--keepalive-count",
        "--tls-cert",
        "--tls-key",
        "--tls-ca",
        "--tls-allowed-dn",
        "--log-filter",
        "--migration-ports",
        "--migration-address",
        "Examples:",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
}

/// Runs `migrated` the way systemd does for socket activation: the sockets
/// as fds 3 and 4, `LISTEN_FDS`, `LISTEN_FDNAMES` and `LISTEN_PID` = the
/// daemon's own pid (`sh` sets it to `$$`, then `exec`s, keeping the pid).
#[test]
fn socket_activation_serves_the_sockets_systemd_passes() {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;

    let dir = tempfile::tempdir().expect("temp dir");
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").expect("bind tcp");
    let addr = tcp.local_addr().expect("tcp addr");
    let sock = dir.path().join("activated-sock");
    let unix = std::os::unix::net::UnixListener::bind(&sock).expect("bind unix");
    let (tcp_fd, unix_fd) = (tcp.as_raw_fd(), unix.as_raw_fd());
    let log = std::fs::File::create(dir.path().join("log")).expect("log file");
    let config = dir.path().join("empty.toml");
    std::fs::write(&config, "").expect("config");
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("LISTEN_PID=$$ LISTEN_FDS=2 LISTEN_FDNAMES=tcp:rw exec \"$0\" \"$@\"")
        .arg(migrated_binary())
        .arg("--config")
        .arg(&config)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .arg("--runtime-dir")
        .arg(dir.path().join("run"))
        .arg("--host-uuid")
        .arg(random_uuid())
        .arg("--drivers")
        .arg("test")
        .stdout(Stdio::null())
        .stderr(log);
    // SAFETY: between fork and exec the closure only calls fcntl(F_DUPFD) and
    // dup2, both async-signal-safe, on descriptors this process owns; it
    // allocates nothing and takes no lock.
    unsafe {
        cmd.pre_exec(move || {
            // Move both out of the way first: either may already be fd 3 or 4.
            let high_tcp = libc::fcntl(tcp_fd, libc::F_DUPFD, 10);
            let high_unix = libc::fcntl(unix_fd, libc::F_DUPFD, 10);
            if high_tcp < 0
                || high_unix < 0
                || libc::dup2(high_tcp, 3) < 0
                || libc::dup2(high_unix, 4) < 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawn migrated with inherited sockets");
    // The sockets already listen, so a client may connect before the daemon is up.
    let served = std::panic::catch_unwind(|| assert_serves(addr));
    let unix_ok = require_binary("virsh").map(|_| {
        virsh(
            &format!("test+unix:///default?socket={}", sock.display()),
            &["hostname"],
        )
    });
    let _ = child.kill();
    let _ = child.wait();
    let logs = std::fs::read_to_string(dir.path().join("log")).unwrap_or_default();
    assert!(served.is_ok(), "tcp socket not served\n{logs}");
    if let Some(out) = unix_ok {
        assert!(out.status.success(), "{}\n{logs}", stderr_of(&out));
    }
    assert!(
        logs.contains("adopted socket from systemd fd=3 name=tcp"),
        "{logs}"
    );
    assert!(logs.contains("fd=4 name=rw"), "{logs}");
    drop((tcp, unix));
}

#[test]
fn sighup_reloads_the_tls_allowed_dn_list() {
    if require_binary("virsh").is_none() {
        return;
    }
    let Some(pki) = migrated_tests::Pki::generate() else {
        return;
    };
    let daemon = Daemon::builder()
        .tls(&pki)
        .config_toml("tls_allowed_dn = [\"C=GB,O=Example,CN=nobody\"]\n")
        .spawn();
    let uri = daemon.tls_uri(&pki);
    let reload = |dn: &str, round: usize| {
        std::fs::write(
            daemon.config_path(),
            format!("tls_allowed_dn = [\"{dn}\"]\n"),
        )
        .expect("rewrite config");
        daemon.signal(libc::SIGHUP);
        wait_until(Duration::from_secs(10), "TLS reload", || {
            (daemon.logs().matches("allowed DN list reloaded").count() >= round).then_some(())
        });
    };
    let refused = virsh(&uri, &["hostname"]);
    assert!(
        !refused.status.success(),
        "client accepted despite the DN list"
    );
    assert!(
        daemon.logs().contains("not in the allowed DN list"),
        "{}",
        daemon.logs()
    );

    reload("C=GB,O=Example,CN=cli*", 1);
    ok(
        &virsh(&uri, &["hostname"]),
        "virsh after widening the DN list",
    );

    reload("C=GB,O=Example,CN=nobody", 2);
    assert!(
        !virsh(&uri, &["hostname"]).status.success(),
        "accepted after narrowing"
    );
}
