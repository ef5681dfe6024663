//! The fault proxy itself: byte and message triggers, each action, against a
//! loopback echo server speaking libvirt's framing.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use migrated_tests::fault::{Action, Direction, FaultProxy, Rule, Trigger, REMOTE_PROGRAM};

/// An echo server: every byte comes back.
fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind echo");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for conn in listener.incoming().take(16) {
            let Ok(mut conn) = conn else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 || conn.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// A framed message of `procedure` with `body` bytes after the 24-byte header.
fn message(procedure: u32, body: usize) -> Vec<u8> {
    let len = u32::try_from(28 + body).expect("small");
    let mut m = Vec::new();
    for w in [len, REMOTE_PROGRAM, 1, procedure, 0, 1, 0] {
        m.extend_from_slice(&w.to_be_bytes());
    }
    m.resize(28 + body, 0xab);
    m
}

fn connect(proxy: &FaultProxy) -> TcpStream {
    let s = TcpStream::connect(proxy.addr()).expect("connect proxy");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s
}

/// Reads until `want` bytes or the end; returns what came.
fn read_up_to(s: &mut TcpStream, want: usize) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while got.len() < want {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got
}

#[test]
fn unarmed_proxy_forwards_everything() {
    let proxy = FaultProxy::start(echo_server());
    let mut s = connect(&proxy);
    let m = message(1, 5000);
    s.write_all(&m).expect("write");
    assert_eq!(read_up_to(&mut s, m.len()), m);
    assert_eq!(proxy.accepted(), 1);
}

#[test]
fn the_nth_message_of_a_procedure_is_cut_before_any_of_its_bytes_pass() {
    let proxy = FaultProxy::start(echo_server());
    proxy.arm(Rule {
        trigger: Trigger::AtMessage {
            dir: Direction::ToServer,
            program: REMOTE_PROGRAM,
            procedure: 216,
            nth: 2,
        },
        action: Action::Cut,
    });
    let mut s = connect(&proxy);
    let first = [message(216, 10), message(7, 3)].concat();
    s.write_all(&first).expect("write");
    assert_eq!(read_up_to(&mut s, first.len()), first, "first 216 passes");
    s.write_all(&message(216, 10)).expect("write second");
    assert!(
        read_up_to(&mut s, 1).is_empty(),
        "the second 216 is not echoed: the connection is gone"
    );
    assert_eq!(proxy.fired(), 1);
}

#[test]
fn a_byte_trigger_half_closes_exactly_at_its_offset() {
    let proxy = FaultProxy::start(echo_server());
    proxy.arm(Rule {
        trigger: Trigger::AtByte {
            dir: Direction::ToClient,
            offset: 100,
        },
        action: Action::HalfClose,
    });
    let mut s = connect(&proxy);
    s.write_all(&message(1, 300)).expect("write");
    let got = read_up_to(&mut s, 328);
    assert_eq!(got.len(), 100, "exactly the first 100 bytes come back");
    // The other direction still works: writing does not fail.
    s.write_all(&message(1, 10))
        .expect("client→server still open");
}

#[test]
fn delay_and_stall_hold_traffic_back() {
    let proxy = FaultProxy::start(echo_server());
    proxy.arm(Rule {
        trigger: Trigger::AtByte {
            dir: Direction::ToServer,
            offset: 0,
        },
        action: Action::Delay(Duration::from_millis(300)),
    });
    let mut s = connect(&proxy);
    let t = Instant::now();
    s.write_all(&message(1, 10)).expect("write");
    assert_eq!(read_up_to(&mut s, 38).len(), 38);
    assert!(t.elapsed() >= Duration::from_millis(300), "delayed");

    proxy.disarm();
    let mut s = connect(&proxy);
    // One round trip first, so the connection is registered before the stall.
    s.write_all(&message(1, 0)).expect("write");
    assert_eq!(read_up_to(&mut s, 28).len(), 28);
    proxy.stall_all();
    s.write_all(&message(1, 10)).expect("write");
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let mut buf = [0u8; 64];
    assert!(s.read(&mut buf).is_err(), "nothing passes while stalled");
    proxy.resume_all();
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    assert_eq!(read_up_to(&mut s, 38).len(), 38, "flows again");

    proxy.cut_all();
    assert!(read_up_to(&mut s, 1).is_empty(), "cut");
}
