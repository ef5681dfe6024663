//! Daemon limits against the real `migrated` binary, each with a small
//! configured value: the client over the bound gets an error or a clean
//! disconnect, every other client keeps being served.
//!
//! `max_clients` and the keepalive drop of a silent client are covered in
//! `protocol.rs`; this file adds the TLS handshake bound and timeout, calls
//! in flight per client and the queue behind them, the outbound queue of a
//! slow reader, concurrent migration jobs, and a keepalive drop next to a
//! client that stays.

mod migrate_support;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use migrated_client::{Connection, OpenFlags};
use migrated_core::flags::MigrateFlags;
use migrated_core::typed_params::{migrate_param, TypedParams, TypedValue};
use migrated_proto::Procedure;
use migrated_tests::raw::{self, proc_, xdr, Header, RawConn};
use migrated_tests::{wait_until, Daemon, Pki};

use migrate_support::{ctl, ctl_ok, ctl_spawn, finish, state, wait_job_running, Hosts};

/// A raw connection that went through AUTH_LIST and CONNECT_OPEN.
fn opened(daemon: &Daemon) -> RawConn {
    let mut conn = RawConn::connect(daemon.tcp_addr()).expect("connect");
    let open = conn
        .call(
            proc_::CONNECT_OPEN,
            &[xdr::some_string("test:///default"), xdr::u32(0)].concat(),
        )
        .expect("CONNECT_OPEN reply");
    assert_eq!(open.header.status, raw::OK, "{:?}", open.error());
    conn
}

/// A test guest; with `busy` it dirties an 8 MiB working set at ~20 MiB/s,
/// so a migration limited to 1 MiB/s never converges and runs until aborted.
fn guest(name: &str, busy: bool) -> String {
    let workload = if busy {
        "<metadata><migrated:workload xmlns:migrated='https://migrated.dev/xmlns/test/1' \
         dirty_pages_per_sec='5000' working_set_mib='8'/></metadata>"
    } else {
        ""
    };
    format!(
        "<domain type='test'><name>{name}</name><memory unit='MiB'>16</memory>\
         <vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os>{workload}</domain>\n"
    )
}

fn define_running(uri: &str, dir: &std::path::Path, name: &str, busy: bool) {
    let path = dir.join(format!("{name}.xml"));
    std::fs::write(&path, guest(name, busy)).expect("write guest XML");
    ctl_ok(uri, &["define", path.to_str().expect("utf-8 path")]);
    ctl_ok(uri, &["start", name]);
}

#[test]
fn tls_handshakes_beyond_max_anonymous_clients_are_closed() {
    let Some(pki) = Pki::generate() else { return };
    let daemon = Daemon::builder()
        .tcp()
        .tls(&pki)
        .args(["--max-anonymous-clients", "1"])
        .spawn();
    let port = daemon.tls_port().expect("TLS port");
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    // The first connection never sends its ClientHello: it holds the one
    // handshake slot until the handshake timeout.
    let _holder = TcpStream::connect(addr).expect("connect TLS port");
    std::thread::sleep(Duration::from_millis(200));
    let mut over = TcpStream::connect(addr).expect("second connect");
    over.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let _ = over.write_all(b"\x16\x03\x01\x00\x05hello");
    let mut buf = [0u8; 64];
    let closed = matches!(std::io::Read::read(&mut over, &mut buf), Ok(0) | Err(_));
    assert!(closed, "the handshake over the bound was not closed");
    // Plain-TCP clients do not count as anonymous and are still served.
    raw::assert_serves(daemon.tcp_addr());
    // Once the holder leaves, a real TLS client gets in.
    drop(_holder);
    let uri = daemon.tls_uri(&pki);
    wait_until(Duration::from_secs(10), "a TLS client to be served", || {
        ctl(&uri, &["hostname"]).status.success().then_some(())
    });
}

/// Host A whose first client has its only call slot held by a peer-to-peer
/// migration to B that cannot converge (1 MiB/s against a guest dirtying
/// faster) and so runs until aborted, plus a second client on A.
struct BusySource {
    _hosts: Hosts,
    _dir: tempfile::TempDir,
    a: String,
    name: &'static str,
    conn: Connection,
    other: Connection,
    migration: tokio::task::JoinHandle<Result<(), migrated_client::Error>>,
}

impl BusySource {
    async fn start(name: &'static str, a_args: &[&str]) -> Self {
        let hosts = Hosts {
            a: Daemon::builder()
                .hostname("host-a")
                .tcp()
                .args(a_args.iter().copied())
                .spawn(),
            b: Daemon::builder().hostname("host-b").tcp().spawn(),
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let (a, b) = (hosts.a_uri(), hosts.b_uri());
        define_running(&a, dir.path(), name, true);
        // Let the workload touch its working set first: the first pass sends
        // only pages that hold data, and a guest that has not started
        // dirtying yet would converge at once (seen in CI).
        tokio::time::sleep(Duration::from_millis(500)).await;
        let conn = Connection::open(&a, OpenFlags::default())
            .await
            .expect("open source");
        let other = Connection::open(&a, OpenFlags::default())
            .await
            .expect("open second client");
        let dom = conn.lookup_domain(name).await.expect("lookup");
        let params = TypedParams::new().with(migrate_param::BANDWIDTH, TypedValue::ULLong(1));
        let migration = tokio::spawn(async move {
            dom.migrate_to_uri(&b, &params, MigrateFlags::LIVE.bits())
                .await
                .map(drop)
        });
        wait_job_running(&a, name);
        Self {
            _hosts: hosts,
            _dir: dir,
            a,
            name,
            conn,
            other,
            migration,
        }
    }

    /// The second client is answered while every call in `held` is still
    /// waiting: this client's busy slot does not hold anybody else up.
    async fn other_client_is_served_first<T>(&self, held: &[&tokio::task::JoinHandle<T>]) {
        let caps = tokio::time::timeout(Duration::from_secs(30), self.other.get_capabilities())
            .await
            .expect("the other client was answered")
            .expect("other client served");
        assert!(caps.contains("<capabilities>"), "{caps}");
        assert!(
            held.iter().all(|t| !t.is_finished()),
            "a held call was answered before the other client's"
        );
    }

    /// Aborts the long migration; the guest keeps running on A.
    async fn abort(self) {
        ctl_ok(&self.a, &["domjobabort", self.name]);
        let migrated = tokio::time::timeout(Duration::from_secs(30), self.migration)
            .await
            .expect("aborted migration returned")
            .expect("migration task");
        assert!(migrated.is_err(), "the migration was aborted");
        assert_eq!(state(&self.a, self.name).as_deref(), Some("running"));
    }
}

async fn answered<T>(
    task: tokio::task::JoinHandle<Result<T, migrated_client::Error>>,
    what: &str,
) -> T {
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap_or_else(|_| panic!("{what} answered once the slot was freed"))
        .expect("task")
        .unwrap_or_else(|e| panic!("{what} failed: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_beyond_max_client_requests_wait_while_other_clients_are_served() {
    let busy = BusySource::start("inflight", &["--max-client-requests", "1"]).await;
    // A non-priority call on the busy connection waits in the queue...
    let queued = {
        let conn = busy.conn.clone();
        tokio::spawn(async move { conn.get_capabilities().await })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !queued.is_finished(),
        "a call over max_client_requests=1 ran alongside the migration"
    );
    // ...while another client is not held up by this one's busy slot.
    busy.other_client_is_served_first(&[&queued]).await;
    // Ending the long call frees the slot and the queued call runs.
    busy.abort().await;
    let caps = answered(queued, "the queued call").await;
    assert!(caps.contains("<capabilities>"), "{caps}");
}

/// `max_client_queued_requests`: behind the calls in flight, a client gets
/// that many queued calls; past them the daemon stops reading its socket
/// (libvirt's back-pressure: the calls wait in the client's own buffers, no
/// error), so even a priority call, which would bypass a full slot, is not
/// read. Other clients are served; once the long call ends everything the
/// client sent is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_beyond_max_client_queued_requests_are_not_read_while_others_are_served() {
    let busy = BusySource::start(
        "queued",
        &[
            "--max-client-requests",
            "1",
            "--max-client-queued-requests",
            "1",
        ],
    )
    .await;
    // One call fills the queue, the next one parks the reader on it; the
    // pauses keep the three calls in this order on the wire.
    let mut waiting = Vec::new();
    for _ in 0..2 {
        let conn = busy.conn.clone();
        waiting.push(tokio::spawn(async move { conn.get_capabilities().await }));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // GET_HOSTNAME is a priority call: with room in the queue it would be
    // answered at once (it does not need the busy slot).
    let priority = {
        let conn = busy.conn.clone();
        tokio::spawn(async move { conn.get_hostname().await })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !priority.is_finished(),
        "a call past max_client_queued_requests=1 was read and answered"
    );
    assert!(
        waiting.iter().all(|t| !t.is_finished()),
        "a queued call ran alongside the migration"
    );
    // Another client is served meanwhile.
    let mut held: Vec<_> = waiting.iter().collect();
    held.push(&priority);
    busy.other_client_is_served_first(&held).await;
    // Ending the long call drains the queue and the socket.
    busy.abort().await;
    assert_eq!(
        answered(priority, "the unread priority call").await,
        "host-a"
    );
    for task in waiting {
        let caps = answered(task, "a queued call").await;
        assert!(caps.contains("<capabilities>"), "{caps}");
    }
}

/// `handshake_timeout`: a TLS connection that never completes its
/// handshake is closed after the timeout, which also gives its
/// `max_anonymous_clients` slot back; plain-TCP and later TLS clients are
/// served.
#[test]
fn a_tls_handshake_past_handshake_timeout_is_closed_and_frees_its_slot() {
    let Some(pki) = Pki::generate() else { return };
    let daemon = Daemon::builder()
        .tcp()
        .tls(&pki)
        .args(["--max-anonymous-clients", "1", "--handshake-timeout", "1"])
        .spawn();
    let port = daemon.tls_port().expect("TLS port");
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    // Never sends a ClientHello; kept open by this side the whole test.
    let mut holder = TcpStream::connect(addr).expect("connect TLS port");
    // Well under the 30 s default, well over the configured 1 s.
    holder
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    raw::assert_serves(daemon.tcp_addr());
    let mut buf = [0u8; 64];
    let read = std::io::Read::read(&mut holder, &mut buf);
    let closed = match &read {
        Ok(n) => *n == 0,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    };
    assert!(
        closed,
        "the stalled handshake was not closed by the daemon: {read:?}"
    );
    // Its slot is free although this side never closed: a TLS client gets in.
    let uri = daemon.tls_uri(&pki);
    let out = ctl(&uri, &["hostname"]);
    assert!(
        out.status.success(),
        "TLS client refused after the timeout: {}",
        migrated_tests::clients::stderr_of(&out)
    );
    drop(holder);
}

#[test]
fn a_slow_reader_is_disconnected_and_others_are_served() {
    let daemon = Daemon::builder()
        .tcp()
        .args(["--max-client-outbound-bytes", "65536"])
        .spawn();
    let mut slow = opened(&daemon);
    // Small kernel buffers so the daemon's own queue fills quickly.
    let fd = std::os::fd::AsRawFd::as_raw_fd(slow.stream());
    let small: libc::c_int = 4096;
    // SAFETY: setsockopt on a socket we own with a valid int option value.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            std::ptr::from_ref(&small).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    slow.stream()
        .set_write_timeout(Some(Duration::from_secs(2)))
        .expect("write timeout");
    let caps = Procedure::ConnectGetCapabilities as i32;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut sent = 0u32;
    // Capabilities replies are a few KiB each; 20000 of them never fit in
    // 64 KiB plus the socket buffers, and the client never reads one.
    while sent < 20_000 && Instant::now() < deadline {
        let msg = raw::message(Header::call(caps, 1000 + sent), &[]);
        if slow.send(&msg).is_err() {
            break;
        }
        sent += 1;
    }
    assert!(
        slow.is_closed_by_peer(),
        "a client that never reads was kept after {sent} calls"
    );
    raw::assert_serves(daemon.tcp_addr());
    let logs = daemon.logs();
    assert!(
        logs.contains("not reading its messages"),
        "the daemon log does not say why the client was dropped:\n{logs}"
    );
}

#[test]
fn migration_jobs_beyond_max_jobs_are_refused_and_others_finish() {
    let hosts = Hosts {
        a: Daemon::builder()
            .hostname("host-a")
            .tcp()
            .args(["--max-jobs", "1"])
            .spawn(),
        b: Daemon::builder().hostname("host-b").tcp().spawn(),
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = (hosts.a_uri(), hosts.b_uri());
    define_running(&a, dir.path(), "jobs-slow", true);
    define_running(&a, dir.path(), "jobs-over", false);
    // As in BusySource: let the workload dirty its working set first.
    std::thread::sleep(Duration::from_millis(500));
    let slow = ctl_spawn(
        &a,
        &["migrate", "--live", "--bandwidth", "1", "jobs-slow", &b],
    );
    wait_job_running(&a, "jobs-slow");
    let over = ctl(&a, &["migrate", "--live", "jobs-over", &b]);
    let err = migrated_tests::clients::stderr_of(&over);
    assert!(!over.status.success(), "a second job ran with max_jobs=1");
    assert!(
        err.to_lowercase()
            .contains("requested operation is not valid")
            && err.contains("max_jobs"),
        "not a clear OPERATION_INVALID: {err}"
    );
    // The job within the limit was not disturbed: it still runs until aborted.
    assert_ne!(
        migrate_support::job_role(&a, "jobs-slow"),
        "none",
        "{}",
        hosts.logs()
    );
    ctl_ok(&a, &["domjobabort", "jobs-slow"]);
    let (ok, _) = finish(slow);
    assert!(!ok, "the aborted migration reported success");
    assert_eq!(state(&a, "jobs-slow").as_deref(), Some("running"));
    assert_eq!(state(&a, "jobs-over").as_deref(), Some("running"));
    // The slot is free again.
    ctl_ok(&a, &["migrate", "--live", "jobs-over", &b]);
    assert_eq!(state(&b, "jobs-over").as_deref(), Some("running"));
}

#[test]
fn a_silent_keepalive_client_is_dropped_while_a_quiet_one_stays() {
    let daemon = Daemon::builder()
        .tcp()
        .args(["--keepalive-interval", "1", "--keepalive-count", "2"])
        .spawn();
    let mut silent = opened(&daemon);
    let feature = silent
        .call(proc_::CONNECT_SUPPORTS_FEATURE, &xdr::i32(10))
        .expect("reply");
    assert_eq!(feature.payload, xdr::i32(1), "keepalive supported");
    // This client never asked for keepalive: it is never pinged or dropped.
    let mut quiet = opened(&daemon);
    let started = Instant::now();
    assert!(silent.is_closed_by_peer(), "silent client was kept");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1500),
        "dropped after {took:?}, before interval × count"
    );
    let hostname = quiet
        .call(proc_::CONNECT_GET_HOSTNAME, &[])
        .expect("the quiet client is still served");
    assert_eq!(hostname.header.status, raw::OK, "{:?}", hostname.error());
}
