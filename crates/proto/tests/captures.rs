//! Wire identity with libvirt 9.0: every REMOTE-program CALL, REPLY and
//! event captured between stock virsh/python3-libvirt and stock libvirtd
//! (the shared captures) decodes with the generated types and re-encodes to
//! exactly the captured bytes. Keepalive messages must be known procedures
//! with empty payloads.
//!
//! The captures live outside the repository; without them the tests print a
//! loud SKIPPED line (and fail when `CI` is set).

use std::path::{Path, PathBuf};

use migrated_proto::{
    Call, KeepaliveProcedure, MessageHeader, MessageStatus, MessageType, NetMessageError,
    Procedure, ProcedureVisitor, RemoteProcedure, KEEPALIVE_PROGRAM, REMOTE_PROGRAM,
    REMOTE_PROTOCOL_VERSION,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// One captured message.
struct Captured {
    /// `scenario/file.bin`, for messages.
    name: String,
    header: MessageHeader,
    payload: Vec<u8>,
}

fn captures_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("MIGRATED_CAPTURES") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/captures"),
    };
    if dir.is_dir() {
        return Some(dir);
    }
    let msg = format!(
        "SKIPPED: libvirt captures not found at {} (wire-identity tests not run; set MIGRATED_CAPTURES)",
        dir.display()
    );
    assert!(std::env::var_os("CI").is_none(), "{msg}");
    eprintln!("{msg}");
    None
}

/// Every `.bin` message of every scenario, header decoded with the generated type.
fn load(dir: &Path) -> Vec<Captured> {
    let mut out = Vec::new();
    let mut scenarios: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    scenarios.sort();
    for scenario in scenarios {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&scenario)
            .unwrap_or_else(|e| panic!("{}: {e}", scenario.display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "bin"))
            .collect();
        files.sort();
        for file in files {
            let name = format!(
                "{}/{}",
                scenario.file_name().unwrap_or_default().to_string_lossy(),
                file.file_name().unwrap_or_default().to_string_lossy()
            );
            let bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("{name}: {e}"));
            let ((len, header), payload) =
                migrated_xdr::from_bytes_prefix::<(u32, MessageHeader)>(&bytes)
                    .unwrap_or_else(|e| panic!("{name}: header: {e}"));
            assert_eq!(len as usize, bytes.len(), "{name}: length word");
            out.push(Captured {
                name,
                header,
                payload: payload.to_vec(),
            });
        }
    }
    assert!(!out.is_empty(), "no captures found in {}", dir.display());
    out
}

fn remote(msgs: &[Captured], ty: MessageType, status: MessageStatus) -> Vec<&Captured> {
    msgs.iter()
        .filter(|m| {
            m.header.prog == REMOTE_PROGRAM && m.header.r#type == ty && m.header.status == status
        })
        .collect()
}

fn procedure(m: &Captured) -> Procedure {
    assert_eq!(m.header.vers, REMOTE_PROTOCOL_VERSION, "{}", m.name);
    Procedure::from_i32(m.header.proc)
        .unwrap_or_else(|| panic!("{}: procedure {} is not in remote.x", m.name, m.header.proc))
}

/// Decodes `payload` as `T` and checks that encoding it gives the same bytes.
fn round_trip<T: Serialize + DeserializeOwned + std::fmt::Debug>(
    payload: &[u8],
) -> Result<T, String> {
    let value: T = migrated_xdr::from_bytes(payload).map_err(|e| format!("decode: {e}"))?;
    let again = migrated_xdr::to_bytes(&value).map_err(|e| format!("encode: {e}"))?;
    if again != payload {
        return Err(format!("re-encoding differs for {value:?}"));
    }
    Ok(value)
}

/// Round-trips a payload through a procedure's `Ret` (or `Args`) type.
struct RetRoundTrip<'a>(&'a [u8]);

impl ProcedureVisitor for RetRoundTrip<'_> {
    type Output = Result<(), String>;
    fn visit<P: RemoteProcedure>(self) -> Self::Output {
        round_trip::<P::Ret>(self.0).map(drop)
    }
}

struct ArgsRoundTrip<'a>(&'a [u8]);

impl ProcedureVisitor for ArgsRoundTrip<'_> {
    type Output = Result<(), String>;
    fn visit<P: RemoteProcedure>(self) -> Self::Output {
        round_trip::<P::Args>(self.0).map(drop)
    }
}

#[test]
fn every_call_decodes_and_reencodes_identically() {
    let Some(dir) = captures_dir() else { return };
    let msgs = load(&dir);
    let calls = remote(&msgs, MessageType::Call, MessageStatus::Ok);
    assert!(
        calls.len() > 100,
        "only {} calls in the corpus",
        calls.len()
    );
    let mut failures = Vec::new();
    for m in &calls {
        let proc_ = procedure(m);
        match Call::decode(proc_, &m.payload) {
            Ok(call) => {
                assert_eq!(call.procedure(), proc_, "{}", m.name);
                match call.encode() {
                    Ok(bytes) if bytes == m.payload => {}
                    Ok(_) => failures.push(format!("{}: re-encoding differs: {call:?}", m.name)),
                    Err(e) => failures.push(format!("{}: encode: {e}", m.name)),
                }
            }
            Err(e) => failures.push(format!("{} ({}): {e}", m.name, proc_.name())),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_ok_reply_decodes_as_its_ret_type_and_reencodes_identically() {
    let Some(dir) = captures_dir() else { return };
    let msgs = load(&dir);
    let replies = remote(&msgs, MessageType::Reply, MessageStatus::Ok);
    assert!(
        replies.len() > 100,
        "only {} replies in the corpus",
        replies.len()
    );
    let failures: Vec<String> = replies
        .iter()
        .filter_map(|m| {
            let proc_ = procedure(m);
            proc_
                .visit(RetRoundTrip(&m.payload))
                .err()
                .map(|e| format!("{} ({}): {e}", m.name, proc_.name()))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_error_reply_decodes_as_net_message_error() {
    let Some(dir) = captures_dir() else { return };
    let msgs = load(&dir);
    let errors = remote(&msgs, MessageType::Reply, MessageStatus::Error);
    assert!(!errors.is_empty(), "no ERROR replies in the corpus");
    for m in errors {
        let err: NetMessageError =
            round_trip(&m.payload).unwrap_or_else(|e| panic!("{}: {e}", m.name));
        assert_ne!(err.code, 0, "{}: an error with code OK", m.name);
        assert!(err.message.is_some(), "{}: error without a message", m.name);
    }
}

#[test]
fn events_and_keepalive_messages_are_known() {
    let Some(dir) = captures_dir() else { return };
    let msgs = load(&dir);
    for m in msgs
        .iter()
        .filter(|m| m.header.r#type == MessageType::Message)
    {
        if m.header.prog == KEEPALIVE_PROGRAM {
            let p = KeepaliveProcedure::from_i32(m.header.proc)
                .unwrap_or_else(|| panic!("{}: unknown keepalive procedure", m.name));
            assert!(p.info().event, "{}", m.name);
            assert!(m.payload.is_empty(), "{}: keepalive payload", m.name);
        } else {
            let p = procedure(m);
            assert!(
                p.info().event,
                "{}: {} is not marked @event",
                m.name,
                p.name()
            );
            p.visit(ArgsRoundTrip(&m.payload))
                .unwrap_or_else(|e| panic!("{} ({}): {e}", m.name, p.name()));
        }
    }
}

#[test]
fn known_answers() {
    let Some(dir) = captures_dir() else { return };
    let msgs = load(&dir);
    let first = |proc_: Procedure, ty: MessageType| {
        msgs.iter()
            .find(|m| {
                m.header.prog == REMOTE_PROGRAM
                    && m.header.proc == proc_ as i32
                    && m.header.r#type == ty
                    && m.header.status == MessageStatus::Ok
            })
            .unwrap_or_else(|| panic!("no {ty:?} of {} in the corpus", proc_.name()))
    };

    let open = first(Procedure::ConnectOpen, MessageType::Call);
    match Call::decode(Procedure::ConnectOpen, &open.payload) {
        Ok(Call::ConnectOpen(a)) => assert_eq!(a.name.as_deref(), Some("qemu:///system")),
        other => panic!("{other:?}"),
    }

    let auth = first(Procedure::AuthList, MessageType::Reply);
    let ret: <migrated_proto::procs::AuthList as RemoteProcedure>::Ret =
        migrated_xdr::from_bytes(&auth.payload).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ret.types, vec![migrated_proto::AuthType::None]);

    let model = first(Procedure::NodeGetSecurityModel, MessageType::Reply);
    let ret: migrated_proto::NodeGetSecurityModelRet =
        migrated_xdr::from_bytes(&model.payload).unwrap_or_else(|e| panic!("{e}"));
    let text: Vec<u8> = ret.model.iter().map(|c| *c as u8).collect();
    assert_eq!(text, b"none\0");

    let messages = first(Procedure::DomainGetMessages, MessageType::Reply);
    let ret: migrated_proto::DomainGetMessagesRet =
        migrated_xdr::from_bytes(&messages.payload).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ret.msgs.len(), 1);
    assert!(ret.msgs[0].starts_with("tainted"), "{:?}", ret.msgs);

    let begin = first(Procedure::DomainMigrateBegin3Params, MessageType::Reply);
    let ret: migrated_proto::DomainMigrateBegin3ParamsRet =
        migrated_xdr::from_bytes(&begin.payload).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ret.cookie_out.last(), Some(&0), "cookies end with a NUL");
    assert!(ret.xml.contains("<domain"), "begin3 xml");
}
