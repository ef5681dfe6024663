//! Properties of the generated code that the captures cannot show: the
//! procedure metadata, bounds, unknown enum/union values, events.

use migrated_proto::{
    procs, AuthListRet, AuthType, Call, DomainEventCallbackLifecycleMsg, DomainEventLifecycleMsg,
    DomainGetMessagesRet, DomainMigrateBegin3ParamsRet, KeepaliveProcedure, MessageType,
    MigratedCall, MigratedProcedure, MigrationStatusArgs, NodeGetInfoRet, NodeGetSecurityModelRet,
    NonnullDomain, Procedure, ProcedureVisitor, RemoteProcedure, TypedParam, TypedParamValue,
    KEEPALIVE_PROCEDURES, MIGRATED_PROGRAM, PROCEDURES, REMOTE_AUTH_TYPE_LIST_MAX,
    REMOTE_DOMAIN_MESSAGES_MAX, REMOTE_MIGRATE_COOKIE_MAX, REMOTE_PROGRAM,
    REMOTE_SECURITY_MODEL_MAX,
};
use migrated_xdr::{from_bytes, to_bytes, Error};

fn dom() -> NonnullDomain {
    NonnullDomain {
        name: "g".into(),
        uuid: [7; 16],
        id: -1,
    }
}

#[test]
fn procedure_table_matches_the_enum() {
    assert_eq!(PROCEDURES.len(), Procedure::ALL.len());
    for (p, info) in Procedure::ALL.iter().zip(PROCEDURES) {
        assert_eq!(p.info(), info);
        assert_eq!(info.number, *p as i32);
        assert_eq!(Procedure::from_i32(info.number), Some(*p));
        assert!(info.name.starts_with("REMOTE_PROC_"), "{}", info.name);
        assert!(!(info.event && info.stream), "{}", info.name);
    }
    assert_eq!(Procedure::from_i32(0), None);
    assert_eq!(Procedure::from_i32(100_000), None);
    assert_eq!(Procedure::DomainMigratePerform3Params as i32, 305);
    assert_eq!(
        Procedure::DomainMigratePerform3Params.name(),
        "REMOTE_PROC_DOMAIN_MIGRATE_PERFORM3_PARAMS"
    );
    assert_eq!(
        Procedure::ConnectOpen.to_string(),
        "REMOTE_PROC_CONNECT_OPEN"
    );
    assert_eq!(REMOTE_PROGRAM, 0x2000_8086);
    assert_eq!(MIGRATED_PROGRAM, 0x4d49_4752);
}

#[test]
fn annotations() {
    let with = |f: fn(&migrated_proto::ProcedureInfo) -> bool| -> Vec<i32> {
        PROCEDURES
            .iter()
            .filter(|i| f(i))
            .map(|i| i.number)
            .collect()
    };
    assert_eq!(
        with(|i| i.event),
        vec![
            107, 169, 311, 318, 319, 320, 321, 322, 323, 324, 328, 329, 330, 331, 332, 333, 346,
            348, 354, 359, 362, 363, 367, 379, 423
        ]
    );
    assert_eq!(with(|i| i.stream), vec![148, 201, 211, 215, 304]);
    for p in [
        Procedure::DomainDestroy,
        Procedure::DomainUndefineFlags,
        Procedure::DomainDefineXml,
        Procedure::DomainMigratePerform3Params,
        Procedure::DomainMigratePrepare3Params,
        Procedure::DomainSave,
        Procedure::DomainAbortJob,
        Procedure::DomainMigrateSetMaxSpeed,
        Procedure::DomainAttachDeviceFlags,
        Procedure::DomainDetachDevice,
        Procedure::DomainUpdateDeviceFlags,
    ] {
        assert!(
            !p.info().readonly,
            "{} must not be allowed read-only",
            p.name()
        );
    }
    for p in [
        Procedure::ConnectOpen,
        Procedure::AuthList,
        Procedure::ConnectListAllDomains,
        Procedure::DomainGetXmlDesc,
        Procedure::DomainGetJobStats,
        Procedure::ConnectDomainEventCallbackRegisterAny,
    ] {
        assert!(p.info().readonly, "{} must be allowed read-only", p.name());
    }
    for p in [
        Procedure::DomainAbortJob,
        Procedure::DomainGetJobInfo,
        Procedure::DomainGetJobStats,
        Procedure::ConnectClose,
        Procedure::AuthList,
    ] {
        assert!(p.info().priority, "{} must be a priority call", p.name());
    }
    assert!(!Procedure::DomainMigratePerform3Params.info().priority);
    assert!(KEEPALIVE_PROCEDURES.iter().all(|i| i.event));
    assert_eq!(
        KeepaliveProcedure::from_i32(1),
        Some(KeepaliveProcedure::Ping)
    );
    assert_eq!(KeepaliveProcedure::Pong as i32, 2);
}

#[test]
fn call_decode_refuses_events_trailing_bytes_and_payload_on_void() {
    let lifecycle = to_bytes(&DomainEventLifecycleMsg {
        dom: dom(),
        event: 2,
        detail: 1,
    })
    .unwrap_or_default();
    assert!(matches!(
        Call::decode(Procedure::DomainEventLifecycle, &lifecycle),
        Err(Error::Custom(m)) if m.contains("event")
    ));
    assert_eq!(
        Call::decode(Procedure::ConnectClose, &[0, 0, 0, 0]),
        Err(Error::TrailingBytes(4))
    );
    assert_eq!(
        Call::decode(Procedure::ConnectClose, &[]),
        Ok(Call::ConnectClose)
    );
    let mut args = to_bytes(&migrated_proto::DomainGetStateArgs {
        dom: dom(),
        flags: 0,
    })
    .unwrap_or_default();
    let call = Call::decode(Procedure::DomainGetState, &args);
    assert!(
        matches!(&call, Ok(Call::DomainGetState(a)) if a.dom == dom()),
        "{call:?}"
    );
    args.push(0);
    assert!(Call::decode(Procedure::DomainGetState, &args).is_err());
    args.truncate(args.len() - 5);
    assert!(Call::decode(Procedure::DomainGetState, &args).is_err());
}

#[test]
fn migrated_program_calls() {
    let args = MigrationStatusArgs { name: "vm1".into() };
    let bytes = to_bytes(&args).unwrap_or_default();
    let call = MigratedCall::decode(MigratedProcedure::MigrationStatus, &bytes);
    assert_eq!(call, Ok(MigratedCall::MigrationStatus(args)));
    assert!(MigratedProcedure::MigrationStatus.info().readonly);
}

#[test]
fn typed_param_union_encoding() {
    let p = TypedParam {
        field: "migrate_uri".into(),
        value: TypedParamValue::String("tcp:h:1".into()),
    };
    let bytes = to_bytes(&p).unwrap_or_default();
    let mut want = vec![0, 0, 0, 11];
    want.extend_from_slice(b"migrate_uri\0");
    want.extend_from_slice(&[0, 0, 0, 7, 0, 0, 0, 7]);
    want.extend_from_slice(b"tcp:h:1\0");
    assert_eq!(bytes, want);
    assert_eq!(from_bytes::<TypedParam>(&bytes), Ok(p));

    let v = TypedParamValue::Ullong(u64::MAX);
    let bytes = to_bytes(&v).unwrap_or_default();
    assert_eq!(bytes, [0, 0, 0, 4, 255, 255, 255, 255, 255, 255, 255, 255]);
    assert_eq!(v.discriminant(), 4);
    assert_eq!(from_bytes::<TypedParamValue>(&bytes), Ok(v));

    // No default arm: 8 is refused, and so is 0.
    assert_eq!(
        from_bytes::<TypedParamValue>(&[0, 0, 0, 8, 0, 0, 0, 1]),
        Err(Error::UnknownDiscriminant(8))
    );
    assert_eq!(
        from_bytes::<TypedParamValue>(&[0, 0, 0, 0]),
        Err(Error::UnknownDiscriminant(0))
    );
    // A string arm over its maximum is refused before allocation.
    assert!(from_bytes::<TypedParamValue>(&[0, 0, 0, 7, 0xff, 0xff, 0xff, 0xff]).is_err());
}

#[test]
fn enums_refuse_unknown_values() {
    assert_eq!(from_bytes::<AuthType>(&[0, 0, 0, 2]), Ok(AuthType::Polkit));
    assert_eq!(
        from_bytes::<AuthType>(&[0, 0, 0, 3]),
        Err(Error::UnknownDiscriminant(3))
    );
    assert_eq!(
        from_bytes::<MessageType>(&[0, 0, 0, 6]),
        Ok(MessageType::StreamHole)
    );
    assert_eq!(MessageType::from_i32(7), None);
    assert_eq!(to_bytes(&MessageType::Reply), Ok(vec![0, 0, 0, 1]));
    assert_eq!(MessageType::Reply.xdr_name(), "VIR_NET_REPLY");
}

#[test]
fn bounds_are_enforced_both_ways() {
    let too_many = AuthListRet {
        types: vec![AuthType::None; REMOTE_AUTH_TYPE_LIST_MAX + 1],
    };
    assert!(to_bytes(&too_many).is_err());
    let mut wire = vec![0, 0, 0, 21];
    wire.extend(vec![0u8; 21 * 4]);
    assert!(matches!(
        from_bytes::<AuthListRet>(&wire),
        Err(Error::LengthOverMax { len: 21, max: 20 })
    ));

    let msgs = DomainGetMessagesRet {
        msgs: vec![String::new(); REMOTE_DOMAIN_MESSAGES_MAX + 1],
    };
    assert!(to_bytes(&msgs).is_err());
    let mut wire = vec![0, 0, 0x08, 0x01]; // 2049 empty strings
    wire.extend(vec![0u8; 2049 * 4]);
    assert!(matches!(
        from_bytes::<DomainGetMessagesRet>(&wire),
        Err(Error::LengthOverMax { .. })
    ));

    let model = NodeGetSecurityModelRet {
        model: vec![b'x' as i8; REMOTE_SECURITY_MODEL_MAX + 1],
        doi: vec![],
    };
    assert!(to_bytes(&model).is_err());

    let cookie = DomainMigrateBegin3ParamsRet {
        cookie_out: vec![0; REMOTE_MIGRATE_COOKIE_MAX + 1],
        xml: String::new(),
    };
    assert!(to_bytes(&cookie).is_err());
}

#[test]
fn char_arrays_take_one_word_per_char() {
    let mut model = [0i8; 32];
    model[0] = b'x' as i8;
    let info = NodeGetInfoRet {
        model,
        memory: 1,
        cpus: 2,
        mhz: 3,
        nodes: 1,
        sockets: 1,
        cores: 2,
        threads: 1,
    };
    let bytes = to_bytes(&info).unwrap_or_default();
    assert_eq!(bytes.len(), 32 * 4 + 8 + 6 * 4);
    assert_eq!(&bytes[..8], &[0, 0, 0, b'x', 0, 0, 0, 0]);
    assert_eq!(from_bytes::<NodeGetInfoRet>(&bytes), Ok(info));
}

#[test]
fn nested_event_structs_are_inline() {
    let ev = DomainEventCallbackLifecycleMsg {
        callback_id: 5,
        msg: DomainEventLifecycleMsg {
            dom: dom(),
            event: 5,
            detail: 3,
        },
    };
    let bytes = to_bytes(&ev).unwrap_or_default();
    let mut want = vec![0, 0, 0, 5, 0, 0, 0, 1, b'g', 0, 0, 0];
    want.extend_from_slice(&[7; 16]);
    want.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 5, 0, 0, 0, 3]);
    assert_eq!(bytes, want);
    assert_eq!(
        <procs::DomainEventCallbackLifecycle as RemoteProcedure>::PROC,
        Procedure::DomainEventCallbackLifecycle
    );
}

#[test]
fn visitor_reaches_every_procedure() {
    struct Number;
    impl ProcedureVisitor for Number {
        type Output = i32;
        fn visit<P: RemoteProcedure>(self) -> i32 {
            P::PROC as i32
        }
    }
    for p in Procedure::ALL {
        assert_eq!(p.visit(Number), *p as i32);
    }
}

#[test]
fn qemu_program_round_trips_in_libvirts_layout() {
    use migrated_proto::{
        QemuCall, QemuConnectDomainMonitorEventRegisterArgs, QemuDomainAgentCommandArgs,
        QemuDomainMonitorCommandArgs, QemuDomainMonitorEventMsg, QemuProcedure, QEMU_PROGRAM,
    };
    assert_eq!(QEMU_PROGRAM, 0x2000_8087);
    let numbers: Vec<i32> = QemuProcedure::ALL.iter().map(|p| *p as i32).collect();
    assert_eq!(numbers, [1, 2, 3, 4, 5, 6]);
    assert!(QemuProcedure::DomainMonitorEvent.info().event);
    assert!(!QemuProcedure::DomainMonitorCommand.info().readonly);

    // dom, cmd, flags: the domain, the string, then the flag word.
    let args = QemuDomainMonitorCommandArgs {
        dom: dom(),
        cmd: "info pci".into(),
        flags: 1,
    };
    let bytes = to_bytes(&args).unwrap_or_default();
    assert_eq!(&bytes[bytes.len() - 4..], &1u32.to_be_bytes());
    assert_eq!(
        QemuCall::decode(QemuProcedure::DomainMonitorCommand, &bytes),
        Ok(QemuCall::DomainMonitorCommand(args))
    );
    let agent = QemuDomainAgentCommandArgs {
        dom: dom(),
        cmd: "{}".into(),
        timeout: -2,
        flags: 0,
    };
    let bytes = to_bytes(&agent).unwrap_or_default();
    assert_eq!(
        &bytes[bytes.len() - 8..bytes.len() - 4],
        &(-2i32).to_be_bytes()
    );
    assert_eq!(
        QemuCall::decode(QemuProcedure::DomainAgentCommand, &bytes),
        Ok(QemuCall::DomainAgentCommand(agent))
    );
    // Optional domain and event name: absent ones are a single 0 word each.
    let register = QemuConnectDomainMonitorEventRegisterArgs {
        dom: None,
        event: None,
        flags: 3,
    };
    let bytes = to_bytes(&register).unwrap_or_default();
    assert_eq!(bytes, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3]);
    // The event message is no call.
    assert!(QemuCall::decode(QemuProcedure::DomainMonitorEvent, &[]).is_err());
    let msg = QemuDomainMonitorEventMsg {
        callback_id: 5,
        dom: dom(),
        event: "STOP".into(),
        seconds: 1_700_000_000,
        micros: 42,
        details: None,
    };
    let bytes = to_bytes(&msg).unwrap_or_default();
    assert_eq!(from_bytes::<QemuDomainMonitorEventMsg>(&bytes), Ok(msg));
    assert_eq!(&bytes[..4], &5i32.to_be_bytes());
    // hyper seconds, unsigned micros, then the absent details.
    assert_eq!(
        &bytes[bytes.len() - 16..],
        &[0, 0, 0, 0, 0x65, 0x53, 0xf1, 0x00, 0, 0, 0, 42, 0, 0, 0, 0]
    );
}
