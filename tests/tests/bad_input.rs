//! Hostile or broken input against a running daemon: malformed frames and
//! headers, undecodable arguments, connection floods, and bad domain XML.
//! After each case a well-behaved client must still be served, stored
//! configs must be unchanged, and the daemon's memory must stay flat.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::path::Path;

use migrated_tests::raw::{self, assert_serves, proc_, xdr, Header, RawConn, ERROR, OK, REPLY};
use migrated_tests::Daemon;

/// Allowed RSS growth over all cases (the task's "flat": within 20 MiB).
const RSS_SLACK_KIB: u64 = 20 * 1024;
/// VIR_NET_MESSAGE_MAX + the length word.
const MAX_FRAME: u32 = 32 * 1024 * 1024 + 4;

fn daemon() -> Daemon {
    Daemon::builder().tcp().drivers("test").spawn()
}

fn opened(daemon: &Daemon) -> RawConn {
    let mut conn = RawConn::connect(daemon.tcp_addr()).expect("connect");
    let open = conn
        .call(
            proc_::CONNECT_OPEN,
            &[xdr::some_string("test:///default"), xdr::u32(0)].concat(),
        )
        .expect("CONNECT_OPEN reply");
    assert_eq!(open.header.status, OK);
    conn
}

/// Sends raw bytes on a fresh connection and expects the daemon to hang up.
fn expect_hangup(daemon: &Daemon, bytes: &[u8], case: &str) {
    let mut conn = RawConn::connect(daemon.tcp_addr()).expect("connect");
    conn.send(bytes).expect("send");
    assert!(conn.is_closed_by_peer(), "{case}: connection not closed");
}

/// Sends one message and returns the error of its reply (same serial).
fn expect_error(conn: &mut RawConn, header: Header, payload: &[u8], case: &str) -> raw::WireError {
    conn.send(&raw::message(header, payload)).expect("send");
    let reply = conn.read_reply_to(header.serial).expect("reply");
    assert_eq!(
        (reply.header.type_, reply.header.status),
        (REPLY, ERROR),
        "{case}"
    );
    reply
        .error()
        .unwrap_or_else(|| panic!("{case}: undecodable remote_error"))
}

fn still_served_on(conn: &mut RawConn, case: &str) {
    let reply = conn
        .call(proc_::CONNECT_GET_HOSTNAME, &[])
        .expect("hostname reply");
    assert_eq!(
        reply.header.status, OK,
        "{case}: connection no longer served"
    );
}

#[test]
fn malformed_frames_close_only_their_connection_and_memory_stays_flat() {
    let daemon = daemon();
    let addr = daemon.tcp_addr();
    assert_serves(addr);
    let rss_before = daemon.rss_kib();

    // Length word below the 28-byte minimum (and the degenerate ones).
    for len in [0u32, 4, 27] {
        let mut bytes = len.to_be_bytes().to_vec();
        bytes.extend([0u8; 24]);
        expect_hangup(&daemon, &bytes, &format!("length {len}"));
        assert_serves(addr);
    }
    // Length word above 32 MiB: refused from the length word alone.
    for len in [MAX_FRAME + 1, u32::MAX] {
        let mut bytes = len.to_be_bytes().to_vec();
        bytes.extend([0u8; 24]);
        expect_hangup(&daemon, &bytes, &format!("length {len}"));
        assert_serves(addr);
    }
    // Truncated: announce a large message, send a little, close. Many at once,
    // so an allocation proportional to the claim would show in RSS.
    let mut held = Vec::new();
    for _ in 0..20 {
        let mut stream = TcpStream::connect(addr).expect("connect");
        let mut bytes = MAX_FRAME.to_be_bytes().to_vec();
        bytes.extend(raw::message(
            Header::call(proc_::CONNECT_GET_HOSTNAME, 0),
            &[0u8; 1000],
        ));
        stream.write_all(&bytes).expect("send partial");
        held.push(stream);
    }
    assert_serves(addr);
    let rss_held = daemon.rss_kib();
    for stream in &held {
        let _ = stream.shutdown(Shutdown::Write);
    }
    drop(held);
    assert_serves(addr);

    // 1000 connections opened and dropped without a byte, 100 at a time.
    for _ in 0..10 {
        let batch: Vec<TcpStream> = (0..100)
            .map(|_| TcpStream::connect(addr).expect("connect"))
            .collect();
        drop(batch);
    }
    assert_serves(addr);

    let rss_after = daemon.rss_kib();
    assert!(
        rss_held.max(rss_after) < rss_before + RSS_SLACK_KIB,
        "RSS grew from {rss_before} KiB to {rss_held} KiB (held) / {rss_after} KiB"
    );
}

#[test]
fn bad_headers_get_rpc_errors_and_keep_the_connection() {
    let daemon = daemon();
    let mut conn = opened(&daemon);
    let base = Header::call(proc_::CONNECT_GET_HOSTNAME, 1000);

    let err = expect_error(
        &mut conn,
        Header {
            prog: 0x1234_5678,
            ..base
        },
        &[],
        "unknown program",
    );
    assert_eq!((err.code, err.domain), (39, 7));
    assert!(err.message.unwrap_or_default().contains("program"));
    still_served_on(&mut conn, "unknown program");

    // libvirt's QEMU program is served beside the remote one: a procedure
    // it lacks (7, MONITOR_COMMAND_WITH_FILES) and its event message sent
    // as a call are unknown procedures; the test driver has no monitor
    // (VIR_ERR_NO_SUPPORT, as libvirt's test driver).
    for (number, serial) in [(7, 1010), (6, 1011)] {
        let err = expect_error(
            &mut conn,
            Header {
                prog: migrated_proto::QEMU_PROGRAM,
                proc_: number,
                serial,
                ..base
            },
            &[],
            "qemu program procedure",
        );
        assert_eq!((err.code, err.domain), (39, 7), "procedure {number}");
        assert_eq!(
            err.message.as_deref(),
            Some(format!("unknown procedure: {number}").as_str())
        );
    }
    // qemu_domain_monitor_command_args: domain (name, uuid, id), cmd, flags.
    let payload = [
        xdr::string("test"),
        vec![0; 16],
        xdr::i32(1),
        xdr::string(r#"{"execute":"query-status"}"#),
        xdr::u32(0),
    ]
    .concat();
    let err = expect_error(
        &mut conn,
        Header {
            prog: migrated_proto::QEMU_PROGRAM,
            proc_: migrated_proto::QemuProcedure::DomainMonitorCommand as i32,
            serial: 1012,
            ..base
        },
        &payload,
        "monitor command on the test driver",
    );
    assert_eq!(err.code, 3, "{:?}", err.message);
    assert!(
        err.message
            .as_deref()
            .is_some_and(|m| m.contains("virDomainQemuMonitorCommand")),
        "{:?}",
        err.message
    );
    still_served_on(&mut conn, "qemu program");

    let err = expect_error(
        &mut conn,
        Header {
            vers: 2,
            serial: 1001,
            ..base
        },
        &[],
        "wrong version",
    );
    assert_eq!((err.code, err.domain), (39, 7));
    still_served_on(&mut conn, "wrong version");

    let err = expect_error(
        &mut conn,
        Header {
            proc_: 9999,
            serial: 1002,
            ..base
        },
        &[],
        "unknown proc",
    );
    assert_eq!(err.message.as_deref(), Some("unknown procedure: 9999"));
    still_served_on(&mut conn, "unknown procedure");

    let err = expect_error(
        &mut conn,
        Header {
            status: ERROR,
            serial: 1003,
            ..base
        },
        &[],
        "status",
    );
    assert_eq!(err.code, 39);
    still_served_on(&mut conn, "CALL with status ERROR");

    // Types a client must not send are ignored; the connection carries on and
    // the next call's reply is the next thing the client reads.
    for type_ in [REPLY, 3, 4, 5, 99] {
        conn.send(&raw::message(
            Header {
                type_,
                serial: 2000,
                ..base
            },
            &[],
        ))
        .expect("send");
        let reply = conn.call(proc_::CONNECT_GET_HOSTNAME, &[]).expect("reply");
        assert_eq!(reply.header.status, OK, "after type {type_}");
    }
    assert_serves(daemon.tcp_addr());
}

#[test]
fn undecodable_arguments_are_rpc_errors_and_keep_the_connection() {
    let daemon = daemon();
    let mut conn = opened(&daemon);
    let lookup = |serial| Header::call(proc_::DOMAIN_LOOKUP_BY_NAME, serial);
    let cases: Vec<(&str, Header, Vec<u8>)> = vec![
        (
            "string length 0xFFFFFFF0",
            lookup(3000),
            xdr::u32(0xFFFF_FFF0),
        ),
        (
            "string over REMOTE_STRING_MAX",
            lookup(3001),
            [xdr::u32(4_194_305), vec![0; 64]].concat(),
        ),
        (
            "invalid UTF-8",
            lookup(3002),
            xdr::opaque(&[0x61, 0xff, 0xfe, 0x62]),
        ),
        (
            "non-zero padding",
            lookup(3003),
            [xdr::u32(3), b"abc\x01".to_vec()].concat(),
        ),
        (
            "trailing bytes",
            lookup(3004),
            [xdr::string("x"), xdr::u32(7)].concat(),
        ),
        ("truncated arguments", lookup(3005), vec![0, 0]),
        (
            // CONNECT_SET_IDENTITY's params<20>: a count of 21 is over the maximum.
            "array count over max",
            Header::call(419, 3006),
            [xdr::u32(21), vec![0; 32]].concat(),
        ),
        (
            "array count over remaining bytes",
            Header::call(proc_::CONNECT_LIST_ALL_DOMAINS, 3007),
            xdr::u32(5),
        ),
    ];
    for (case, header, payload) in cases {
        let err = expect_error(&mut conn, header, &payload, case);
        assert_eq!((err.code, err.domain), (39, 7), "{case}: {err:?}");
        still_served_on(&mut conn, case);
    }
    assert_serves(daemon.tcp_addr());
}

/// Every stored file under `dir` with its contents.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(
                    path.display().to_string(),
                    std::fs::read(&path).unwrap_or_default(),
                );
            }
        }
    }
    out
}

fn define(conn: &mut RawConn, xml: &str) -> raw::Reply {
    conn.call(proc_::DOMAIN_DEFINE_XML, &xdr::string(xml))
        .expect("define reply")
}

fn guest(name: &str, uuid: &str, memory: &str) -> String {
    format!(
        "<domain type='test'><name>{name}</name><uuid>{uuid}</uuid>{memory}\
         <vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os></domain>"
    )
}

const UUID_A: &str = "6c1f2e3d-4a5b-4c6d-8e7f-8091a2b3c4d5";
const UUID_B: &str = "0b2e4f60-1a2b-4c3d-8e4f-5a6b7c8d9e0f";
const MEM: &str = "<memory unit='MiB'>4</memory>";

#[test]
fn bad_domain_xml_is_refused_clearly_and_changes_nothing() {
    let daemon = daemon();
    let mut conn = opened(&daemon);
    let good = define(&mut conn, &guest("existing", UUID_A, MEM));
    assert_eq!(good.header.status, OK, "{:?}", good.error());
    let stored = snapshot(daemon.state_dir());
    assert!(!stored.is_empty(), "define stored nothing");

    let nested = {
        let depth = 580_000;
        let mut xml = String::with_capacity(depth * 7 + 64);
        xml.push_str("<domain type='test'>");
        xml.push_str(&"<x>".repeat(depth));
        xml.push_str(&"</x>".repeat(depth));
        xml.push_str("</domain>");
        assert!(xml.len() < 4_194_304 && xml.len() > 4_000_000);
        xml
    };
    // (case, xml, expected code, words the message must contain)
    let cases: Vec<(&str, String, i32, Vec<&str>)> = vec![
        (
            "malformed",
            "<domain type='test'><name>x</name>".to_owned(),
            27,
            vec![],
        ),
        (
            "unknown element",
            guest("new1", UUID_B, &format!("{MEM}<frobnicate/>")),
            27,
            vec!["frobnicate"],
        ),
        (
            "duplicate name",
            guest("existing", UUID_B, MEM),
            9,
            vec!["existing"],
        ),
        (
            "duplicate uuid",
            guest("other-name", UUID_A, MEM),
            9,
            vec![UUID_A],
        ),
        (
            "negative memory",
            guest("new2", UUID_B, "<memory unit='KiB'>-1</memory>"),
            27,
            vec!["memory"],
        ),
        (
            "overflowing memory",
            guest(
                "new3",
                UUID_B,
                "<memory unit='TiB'>18446744073709551615</memory>",
            ),
            27,
            vec!["memory"],
        ),
        (
            "entity expansion",
            format!(
                "<?xml version='1.0'?><!DOCTYPE domain [<!ENTITY a 'aaaaaaaaaa'>\
                 <!ENTITY b '&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;'>]>{}",
                guest("&b;", UUID_B, MEM)
            ),
            27,
            vec![],
        ),
        ("4 MiB of nested elements", nested, 27, vec![]),
    ];
    for (case, xml, code, words) in cases {
        let reply = define(&mut conn, &xml);
        let err = reply.error().unwrap_or_else(|| panic!("{case}: accepted"));
        let message = err.message.clone().unwrap_or_default();
        assert_eq!(err.code, code, "{case}: {err:?}");
        for word in words {
            assert!(message.contains(word), "{case}: {message:?} lacks {word:?}");
        }
        assert!(!message.is_empty(), "{case}: empty message");
        assert_serves(daemon.tcp_addr());
        assert_eq!(
            snapshot(daemon.state_dir()),
            stored,
            "{case} changed stored configs"
        );
    }
    let list = conn
        .call(
            proc_::CONNECT_LIST_ALL_DOMAINS,
            &[xdr::i32(1), xdr::u32(0)].concat(),
        )
        .expect("list");
    // one domain: count word after the (single-entry) array
    assert_eq!(&list.payload[list.payload.len() - 4..], &1u32.to_be_bytes());
}
