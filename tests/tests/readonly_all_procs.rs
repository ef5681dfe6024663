//! A read-only connection can never call a state-changing procedure: every
//! non-event procedure of the generated tables that is not `@readonly` is
//! sent, with an empty payload, over a read-only connection — the RO flag of
//! CONNECT_OPEN over TCP, and the read-only UNIX socket. The read-only gate
//! runs before the arguments are decoded, so each must come back as
//! `VIR_ERR_OPERATION_DENIED` (29), never a success and never an argument
//! error; and the guests are untouched afterwards.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use migrated_proto::{ProcedureInfo, MIGRATED_PROCEDURES, MIGRATED_PROGRAM, PROCEDURES};
use migrated_tests::raw::{self, proc_, xdr, Header, WireError};
use migrated_tests::{virsh, Daemon};

/// `VIR_ERR_OPERATION_DENIED`.
const OPERATION_DENIED: i32 = 29;
/// `VIR_CONNECT_RO`.
const CONNECT_RO: u32 = 1;

/// Minimal framing over any byte stream (TCP or UNIX), independent of the
/// project's codec.
struct Wire<S> {
    stream: S,
    serial: u32,
}

impl<S: Read + Write> Wire<S> {
    fn call(&mut self, prog: u32, proc_: i32, payload: &[u8]) -> io::Result<raw::Reply> {
        self.serial += 1;
        let mut header = Header::call(proc_, self.serial);
        header.prog = prog;
        self.stream.write_all(&raw::message(header, payload))?;
        loop {
            let mut len = [0u8; 4];
            self.stream.read_exact(&mut len)?;
            let len = u32::from_be_bytes(len) as usize;
            if !(28..=(8 << 20)).contains(&len) {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "bad length"));
            }
            let mut rest = vec![0u8; len - 4];
            self.stream.read_exact(&mut rest)?;
            let word =
                |i: usize| u32::from_be_bytes([rest[i], rest[i + 1], rest[i + 2], rest[i + 3]]);
            let reply = raw::Reply {
                header: Header {
                    prog: word(0),
                    vers: word(4),
                    proc_: word(8) as i32,
                    type_: word(12) as i32,
                    serial: word(16),
                    status: word(20) as i32,
                },
                payload: rest[24..].to_vec(),
            };
            if reply.header.type_ == raw::REPLY && reply.header.serial == self.serial {
                return Ok(reply);
            }
        }
    }
}

fn state_changing(table: &'static [ProcedureInfo]) -> impl Iterator<Item = &'static ProcedureInfo> {
    table.iter().filter(|p| !p.event && !p.readonly)
}

/// Sends every state-changing procedure over `wire` and collects the ones
/// not refused with OPERATION_DENIED.
fn sweep<S: Read + Write>(wire: &mut Wire<S>, how: &str) -> usize {
    let mut failures = Vec::new();
    let mut count = 0;
    let tables = [
        (raw::REMOTE_PROGRAM, PROCEDURES),
        (MIGRATED_PROGRAM, MIGRATED_PROCEDURES),
    ];
    for (prog, table) in tables {
        for info in state_changing(table) {
            count += 1;
            let reply = match wire.call(prog, info.number, &[]) {
                Ok(reply) => reply,
                Err(e) => panic!(
                    "{how}: {} ({}) lost the connection: {e}",
                    info.name, info.number
                ),
            };
            let err = (reply.header.status == raw::ERROR)
                .then(|| WireError::decode(&reply.payload))
                .flatten();
            match err {
                Some(e) if e.code == OPERATION_DENIED => {
                    let msg = e.message.unwrap_or_default();
                    assert!(msg.contains("read only"), "{how}: {}: {msg}", info.name);
                }
                other => failures.push(format!("{} ({}): {other:?}", info.name, info.number)),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{how}: {} of {count} state-changing procedures were not refused with OPERATION_DENIED:\n{}",
        failures.len(),
        failures.join("\n")
    );
    count
}

fn open(wire: &mut Wire<impl Read + Write>, flags: u32) {
    let reply = wire
        .call(
            raw::REMOTE_PROGRAM,
            proc_::CONNECT_OPEN,
            &[xdr::some_string("test:///default"), xdr::u32(flags)].concat(),
        )
        .expect("CONNECT_OPEN reply");
    assert_eq!(reply.header.status, raw::OK, "{:?}", reply.error());
}

fn prepared() -> Daemon {
    let daemon = Daemon::builder().tcp().unix().spawn();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("ro-sweep.xml");
    std::fs::write(
        &path,
        "<domain type='test'><name>ro-sweep</name><memory unit='MiB'>4</memory>\
         <vcpu>1</vcpu><os><type>hvm</type></os></domain>",
    )
    .expect("write xml");
    let mut wire = Wire {
        stream: std::net::TcpStream::connect(daemon.tcp_addr()).expect("connect"),
        serial: 0,
    };
    open(&mut wire, 0);
    let xml = std::fs::read_to_string(&path).expect("read xml");
    let define = wire
        .call(
            raw::REMOTE_PROGRAM,
            proc_::DOMAIN_DEFINE_XML,
            &xdr::string(&xml),
        )
        .expect("define reply");
    assert_eq!(define.header.status, raw::OK, "{:?}", define.error());
    daemon
}

/// The guest is still defined and shut off: nothing behind the refusals ran.
fn untouched(daemon: &Daemon) {
    if migrated_tests::require_binary("virsh").is_none() {
        return;
    }
    let out = virsh(&daemon.uri(), &["list", "--all"]);
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(
        list.lines()
            .any(|l| l.contains("ro-sweep") && l.contains("shut off")),
        "{list}"
    );
    assert_eq!(list.matches("ro-sweep").count(), 1, "{list}");
}

#[test]
fn every_state_changing_procedure_is_denied_with_the_ro_open_flag() {
    let daemon = prepared();
    let stream = std::net::TcpStream::connect(daemon.tcp_addr()).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut wire = Wire { stream, serial: 0 };
    open(&mut wire, CONNECT_RO);
    let n = sweep(&mut wire, "CONNECT_OPEN with VIR_CONNECT_RO");
    assert!(n > 20, "only {n} state-changing procedures in the tables");
    untouched(&daemon);
}

#[test]
fn every_state_changing_procedure_is_denied_on_the_read_only_socket() {
    let daemon = prepared();
    let stream = UnixStream::connect(daemon.unix_ro_socket()).expect("connect ro socket");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut wire = Wire { stream, serial: 0 };
    // Even before CONNECT_OPEN the gate answers OPERATION_DENIED on this socket.
    let n_before = sweep(&mut wire, "read-only socket, before CONNECT_OPEN");
    open(&mut wire, 0);
    let n = sweep(&mut wire, "read-only socket, opened without the RO flag");
    assert_eq!(n, n_before);
    untouched(&daemon);
}
