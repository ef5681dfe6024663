//! Tests of the QMP client against a fake QEMU on a socket pair.

use super::*;
use commands::{Empty, QueryStatus, RunState, Stop};
use tokio::io::{AsyncBufReadExt, BufReader};

const GREETING: &str = r#"{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": ""}, "capabilities": ["oob"]}}"#;

/// The QEMU end of a socket pair, driven line by line by the test.
struct FakeQemu {
    lines: tokio::io::Lines<BufReader<OwnedReadHalf>>,
    write: OwnedWriteHalf,
}

impl FakeQemu {
    async fn send(&mut self, line: &str) {
        self.write
            .write_all(format!("{line}\n").as_bytes())
            .await
            .expect("fake qemu write");
    }

    /// Reads one command; returns (name, id, arguments).
    async fn recv(&mut self) -> (String, u64, Value) {
        let line = self
            .lines
            .next_line()
            .await
            .expect("fake qemu read")
            .expect("a command");
        let v: Value = serde_json::from_str(&line).expect("client sends json");
        (
            v["execute"].as_str().expect("execute").to_owned(),
            v["id"].as_u64().expect("numeric id"),
            v.get("arguments").cloned().unwrap_or(Value::Null),
        )
    }
}

fn fake_pair() -> (UnixStream, FakeQemu) {
    let (client, server) = UnixStream::pair().expect("socketpair");
    let (read, write) = server.into_split();
    (
        client,
        FakeQemu {
            lines: BufReader::new(read).lines(),
            write,
        },
    )
}

/// A connected client and the fake QEMU, past the handshake.
async fn connected(config: QmpConfig) -> (Qmp, FakeQemu) {
    let (client, mut qemu) = fake_pair();
    let server = async {
        qemu.send(GREETING).await;
        let (name, id, _) = qemu.recv().await;
        assert_eq!(name, "qmp_capabilities");
        qemu.send(&format!(r#"{{"return": {{}}, "id": {id}}}"#))
            .await;
    };
    let (qmp, ()) = tokio::join!(Qmp::handshake(client, config), server);
    (qmp.expect("handshake"), qemu)
}

#[tokio::test]
async fn handshake_reads_the_greeting_and_negotiates() {
    let (qmp, _qemu) = connected(QmpConfig::default()).await;
    assert_eq!(qmp.greeting().qmp.version.qemu.minor, 2);
    assert_eq!(qmp.closed_reason(), None);
}

#[tokio::test]
async fn replies_are_matched_by_id_and_events_are_broadcast() {
    let (qmp, mut qemu) = connected(QmpConfig::default()).await;
    let mut events = qmp.events();
    let client = async {
        let (status, stop) = tokio::join!(qmp.execute(&QueryStatus), qmp.execute(&Stop));
        (status.expect("query-status"), stop.expect("stop"))
    };
    let server = async {
        let a = qemu.recv().await;
        let b = qemu.recv().await;
        let (status_id, stop_id) = if a.0 == "query-status" {
            (a.1, b.1)
        } else {
            (b.1, a.1)
        };
        // Answer in the opposite order, with an event in between.
        qemu.send(&format!(r#"{{"return": {{}}, "id": {stop_id}}}"#))
            .await;
        qemu.send(
            r#"{"event": "STOP", "data": {}, "timestamp": {"seconds": 5, "microseconds": 6}}"#,
        )
        .await;
        qemu.send(&format!(
            r#"{{"return": {{"running": false, "status": "paused"}}, "id": {status_id}}}"#
        ))
        .await;
    };
    let ((status, stop), ()) = tokio::join!(client, server);
    assert_eq!(status.status, RunState::Paused);
    assert!(!status.running);
    assert_eq!(stop, Empty {});
    let event = events.recv().await.expect("event");
    assert_eq!(event.event, message::names::STOP);
    assert_eq!(event.timestamp.seconds, 5);
}

#[tokio::test]
async fn qemu_errors_name_the_command_and_class() {
    let (qmp, mut qemu) = connected(QmpConfig::default()).await;
    let server = async {
        let (_, id, _) = qemu.recv().await;
        qemu.send(&format!(
            r#"{{"error": {{"class": "DeviceNotActive", "desc": "No balloon device has been activated"}}, "id": {id}}}"#
        ))
        .await;
    };
    let (result, ()) = tokio::join!(qmp.execute(&commands::QueryBalloon), server);
    match result {
        Err(Error::QmpCommand {
            command,
            class,
            desc,
        }) => {
            assert_eq!(command, "query-balloon");
            assert_eq!(class, "DeviceNotActive");
            assert!(desc.contains("balloon"));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn garbage_closes_the_connection_with_a_clear_error() {
    let (qmp, mut qemu) = connected(QmpConfig::default()).await;
    let server = async {
        let _ = qemu.recv().await;
        qemu.send("\u{1}\u{2} this is not json").await;
    };
    let (result, ()) = tokio::join!(qmp.execute(&Stop), server);
    match result {
        Err(Error::QmpClosed { reason }) => {
            assert!(reason.contains("not a qmp message"), "{reason}")
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(qmp.closed().await.contains("not a qmp message"));
    // Later commands fail at once, without waiting for a timeout.
    assert!(matches!(
        qmp.execute(&Stop).await,
        Err(Error::QmpClosed { .. })
    ));
    // And the socket was really dropped: the fake sees end of stream.
    assert!(qemu.lines.next_line().await.expect("read").is_none());
}

#[tokio::test]
async fn json_that_is_not_qmp_closes_the_connection() {
    let (qmp, mut qemu) = connected(QmpConfig::default()).await;
    qemu.send(r#"{"surprise": true}"#).await;
    assert!(qmp.closed().await.contains("not a qmp message"));
}

#[tokio::test]
async fn an_endless_line_is_cut_at_the_bound_and_the_connection_dropped() {
    let config = QmpConfig {
        max_line: 64 * 1024,
        ..QmpConfig::default()
    };
    let (qmp, mut qemu) = connected(config).await;
    let flood = async {
        let chunk = vec![b'x'; 16 * 1024];
        let mut sent = 0usize;
        // Bounded: far more than the limit, stops when the client hangs up.
        while sent < 64 * 1024 * 1024 {
            if qemu.write.write_all(&chunk).await.is_err() {
                return sent;
            }
            sent += chunk.len();
        }
        sent
    };
    let (result, sent) = tokio::join!(qmp.execute(&Stop), flood);
    match result {
        Err(Error::QmpClosed { reason }) => {
            assert!(reason.contains("longer than 65536"), "{reason}")
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(
        sent < 64 * 1024 * 1024,
        "client hung up before the flood ended"
    );
}

#[tokio::test]
async fn a_command_without_reply_times_out_and_the_connection_survives() {
    let config = QmpConfig {
        command_timeout: Duration::from_millis(100),
        ..QmpConfig::default()
    };
    let (qmp, mut qemu) = connected(config).await;
    let (first, _) = tokio::join!(qmp.execute(&Stop), qemu.recv());
    assert!(matches!(first, Err(Error::QmpTimeout { ref command, .. }) if command == "stop"));
    let server = async {
        let (name, id, _) = qemu.recv().await;
        qemu.send(&format!(r#"{{"return": {{}}, "id": {id}}}"#))
            .await;
        name
    };
    let (second, name) = tokio::join!(qmp.execute(&commands::Cont), server);
    assert_eq!(name, "cont");
    second.expect("later command works");
}

#[tokio::test]
async fn a_bad_greeting_is_refused() {
    let (client, mut qemu) = fake_pair();
    qemu.send(r#"{"hello": "world"}"#).await;
    let err = Qmp::handshake(client, QmpConfig::default())
        .await
        .expect_err("bad greeting");
    assert!(matches!(err, Error::QmpProtocol { .. }), "{err:?}");
}

#[tokio::test]
async fn a_silent_peer_times_out_the_greeting() {
    let (client, _qemu) = fake_pair();
    let config = QmpConfig {
        connect_timeout: Duration::from_millis(50),
        ..QmpConfig::default()
    };
    let err = Qmp::handshake(client, config)
        .await
        .expect_err("no greeting");
    assert!(matches!(err, Error::QmpTimeout { .. }), "{err:?}");
}

#[tokio::test]
async fn arguments_are_sent_and_a_raw_command_works() {
    let (qmp, mut qemu) = connected(QmpConfig::default()).await;
    let server = async {
        let (name, id, args) = qemu.recv().await;
        qemu.send(&format!(r#"{{"return": "ok\r\n", "id": {id}}}"#))
            .await;
        (name, args)
    };
    let cmd = commands::HumanMonitorCommand {
        command_line: "info status".into(),
    };
    let (reply, (name, args)) = tokio::join!(qmp.execute(&cmd), server);
    assert_eq!(reply.expect("reply"), "ok\r\n");
    assert_eq!(name, "human-monitor-command");
    assert_eq!(args["command-line"], "info status");

    let server = async {
        let (name, id, args) = qemu.recv().await;
        qemu.send(&format!(r#"{{"return": [1], "id": {id}}}"#))
            .await;
        (name, args)
    };
    let (reply, (name, args)) = tokio::join!(
        qmp.execute_raw("x-test", Some(serde_json::json!({"a": 1}))),
        server
    );
    assert_eq!(reply.expect("raw reply"), serde_json::json!([1]));
    assert_eq!(
        (name.as_str(), args),
        ("x-test", serde_json::json!({"a": 1}))
    );
}

#[tokio::test]
async fn a_descriptor_travels_with_its_command() {
    use rustix::net::{recvmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    use std::io::{IoSliceMut, Read, Seek, Write};

    let (client, server) = std::os::unix::net::UnixStream::pair().expect("socketpair");
    client.set_nonblocking(true).expect("nonblocking");
    let client = UnixStream::from_std(client).expect("tokio stream");
    // The fake QEMU runs on a thread with blocking I/O and reads the
    // descriptor the way QEMU does, with recvmsg.
    let fake = std::thread::spawn(move || -> (String, Option<OwnedFd>) {
        let mut server = server;
        server
            .write_all(format!("{GREETING}\n").as_bytes())
            .expect("greeting");
        let mut fd = None;
        let mut text = Vec::new();
        let mut replied_caps = false;
        loop {
            let mut buf = [0u8; 4096];
            let mut space = [0u8; rustix::cmsg_space!(ScmRights(1))];
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let got = recvmsg(
                &server,
                &mut [IoSliceMut::new(&mut buf)],
                &mut control,
                RecvFlags::empty(),
            )
            .expect("recvmsg");
            for msg in control.drain() {
                if let RecvAncillaryMessage::ScmRights(mut fds) = msg {
                    fd = fds.next();
                }
            }
            if got.bytes == 0 {
                return (String::from_utf8_lossy(&text).into_owned(), fd);
            }
            text.extend_from_slice(&buf[..got.bytes]);
            // Answer every complete line with an empty return.
            while let Some(pos) = text.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = text.drain(..=pos).collect();
                let v: Value = serde_json::from_slice(&line).expect("json");
                let id = v["id"].as_u64().expect("id");
                let reply = if v["execute"] == "add-fd" {
                    format!("{{\"return\": {{\"fdset-id\": 1, \"fd\": 42}}, \"id\": {id}}}\n")
                } else {
                    format!("{{\"return\": {{}}, \"id\": {id}}}\n")
                };
                server.write_all(reply.as_bytes()).expect("reply");
                if replied_caps && v["execute"] == "add-fd" {
                    return (String::from_utf8_lossy(&line).into_owned(), fd);
                }
                replied_caps = true;
            }
        }
    });
    let qmp = Qmp::handshake(client, QmpConfig::default())
        .await
        .expect("handshake");
    let mut file = tempfile::tempfile().expect("tempfile");
    let info = qmp
        .execute_with_fd(
            &commands::AddFd {
                fdset_id: Some(1),
                opaque: None,
            },
            file.as_fd(),
        )
        .await
        .expect("add-fd");
    assert_eq!(info.fd, 42);
    let (line, fd) = fake.join().expect("fake thread");
    assert!(line.contains("\"add-fd\""), "{line}");
    // Same open file: what is written through the passed copy shows up here.
    let mut passed = std::fs::File::from(fd.expect("descriptor received"));
    passed.write_all(b"through the socket").expect("write");
    let mut content = String::new();
    file.rewind().expect("rewind");
    file.read_to_string(&mut content).expect("read");
    assert_eq!(content, "through the socket");
}

#[tokio::test]
async fn connect_by_path_to_a_fake_server_that_sends_an_endless_greeting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("qmp.sock");
    let listener = tokio::net::UnixListener::bind(&path).expect("bind");
    let server = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.expect("accept");
        let chunk = vec![b'{'; 8192];
        let mut sent = 0usize;
        while sent < 16 * 1024 * 1024 {
            if sock.write_all(&chunk).await.is_err() {
                break;
            }
            sent += chunk.len();
        }
        sent
    });
    let config = QmpConfig {
        max_line: 32 * 1024,
        ..QmpConfig::default()
    };
    let err = Qmp::connect(&path, config).await.expect_err("bounded");
    assert!(
        matches!(err, Error::QmpLineTooLong { limit: 32768 }),
        "{err:?}"
    );
    assert!(err.to_string().contains("connection dropped"));
    let sent = server.await.expect("server task");
    assert!(sent < 16 * 1024 * 1024, "the client hung up early");
}

#[tokio::test]
async fn connect_to_a_missing_socket_names_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("absent.sock");
    let err = Qmp::connect(&path, QmpConfig::default())
        .await
        .expect_err("no socket");
    assert!(matches!(err, Error::QmpConnect { .. }), "{err:?}");
    assert!(err.to_string().contains("absent.sock"));
}

#[tokio::test]
async fn a_command_in_flight_makes_the_monitor_busy_until_its_reply() {
    let (qmp, mut qemu) = connected(QmpConfig::default()).await;
    assert_eq!(qmp.busy_for(), None);
    let server = async {
        let (_, id, _) = qemu.recv().await;
        // The command is registered before it is written, so QEMU holding
        // it means the client sees the monitor busy.
        let busy = qmp.busy_for();
        qemu.send(&format!(r#"{{"return": {{}}, "id": {id}}}"#))
            .await;
        busy
    };
    let (reply, busy) = tokio::join!(qmp.execute(&Stop), server);
    reply.expect("stop");
    assert!(busy.is_some(), "no command in flight while QEMU held one");
    assert_eq!(qmp.busy_for(), None);
}

#[tokio::test]
async fn passthrough_answers_the_whole_reply_line_errors_included() {
    let (qmp, mut qemu) = connected(QmpConfig::default()).await;
    let server = async {
        let (name, id, _) = qemu.recv().await;
        assert_eq!(name, "query-status");
        qemu.send(&format!(
            r#"{{"return": {{"status": "running", "running": true, "note": "a b"}}, "id": {id}}}"#
        ))
        .await;
        let (name, id, _) = qemu.recv().await;
        assert_eq!(name, "no-such");
        qemu.send(&format!(
            r#"{{"id": {id}, "error": {{"class": "CommandNotFound", "desc": "The command no-such has not been found"}}}}"#
        ))
        .await;
        // Input that is no command goes as it is; QEMU answers without id.
        let line = qemu
            .lines
            .next_line()
            .await
            .expect("fake qemu read")
            .expect("a line");
        assert_eq!(line, r#"{"arguments":{}}"#);
        qemu.send(
            r#"{"error": {"class": "GenericError", "desc": "QMP input lacks member 'execute'"}}"#,
        )
        .await;
    };
    let client = async {
        let ok = qmp
            .passthrough(serde_json::json!({"execute": "query-status"}))
            .await;
        let bad = qmp
            .passthrough(serde_json::json!({"execute": "no-such"}))
            .await;
        let anonymous = qmp.passthrough(serde_json::json!({"arguments": {}})).await;
        (ok, bad, anonymous)
    };
    let ((ok, bad, anonymous), ()) = tokio::join!(client, server);
    let ok = ok.expect("a reply");
    assert!(
        ok.starts_with(r#"{"return":{"status":"running","running":true,"note":"a b"},"id":"#),
        "{ok}"
    );
    let bad = bad.expect("an error reply is an answer");
    assert!(
        bad.contains(r#""error":{"class":"CommandNotFound""#),
        "{bad}"
    );
    assert_eq!(
        anonymous.expect("answered"),
        r#"{"error":{"class":"GenericError","desc":"QMP input lacks member 'execute'"}}"#
    );
    // The connection keeps working for the driver's own commands.
    assert_eq!(qmp.closed_reason(), None);
}

#[test]
fn compact_json_keeps_strings_and_order() {
    assert_eq!(
        compact_json("{\"b\": [1, 2], \"a\": \"x y\\\" z\"}\n"),
        "{\"b\":[1,2],\"a\":\"x y\\\" z\"}"
    );
}
