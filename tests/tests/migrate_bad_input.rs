//! Migration calls no stock client would send, straight over the wire:
//! each gets a clear libvirt error, and nothing is lost or left locked — the
//! guest keeps running on the source and a real migration still succeeds.
//! An operator's pause during a cancelled migration ends with it, as
//! libvirt restores the guest's pre-migration state.

mod migrate_support;

use std::time::Duration;

use migrate_support::{ctl_ok, define, exactly_one_copy, job_role, state, Hosts};
use migrated_client::{Connection, Domain, OpenFlags};
use migrated_core::flags::MigrateFlags;
use migrated_core::typed_params::{migrate_param as key, TypedParams, TypedValue};
use migrated_proto::procs;
use migrated_tests::raw::{xdr, RawConn};
use migrated_tests::{require_binary, VirshEvents};

/// libvirt error numbers the tests expect.
const NO_SUPPORT: i32 = 3;
const INVALID_ARG: i32 = 8;
const RPC: i32 = 39;
const OPERATION_INVALID: i32 = 55;
const ARGUMENT_UNSUPPORTED: i32 = 74;
const INTERNAL_ERROR: i32 = 1;

const GUEST: &str = "bad-in";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

struct Setup {
    hosts: Hosts,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let hosts = Hosts::start();
    let dir = tempfile::tempdir().expect("temp dir");
    define(&hosts.a_uri(), dir.path(), GUEST, "", true);
    Setup { hosts, _dir: dir }
}

async fn open(uri: &str) -> (Connection, Option<Domain>) {
    let conn = Connection::open(uri, OpenFlags::default())
        .await
        .expect("open");
    // the destination side has no such guest; callers there use only conn
    let dom = conn.lookup_domain(GUEST).await.ok();
    (conn, dom)
}

async fn open_source(uri: &str) -> (Connection, Domain) {
    let (conn, dom) = open(uri).await;
    (conn, dom.expect("the guest is defined on the source"))
}

#[track_caller]
fn expect_code<T: std::fmt::Debug>(r: migrated_client::Result<T>, code: i32, words: &[&str]) {
    let err = r.expect_err("the daemon must refuse this");
    assert_eq!(err.remote_code(), Some(code), "{err}");
    let text = err.to_string();
    for w in words {
        assert!(text.contains(w), "error should mention {w:?}: {text}");
    }
}

/// The source still runs the guest, no job is left, and a real migration works.
#[track_caller]
fn nothing_lost(s: &Setup) {
    let (a, b) = (s.hosts.a_uri(), s.hosts.b_uri());
    assert_eq!(
        state(&a, GUEST).as_deref(),
        Some("running"),
        "{}",
        s.hosts.logs()
    );
    assert_eq!(job_role(&a, GUEST), "none");
    exactly_one_copy(&s.hosts, GUEST);
    ctl_ok(&a, &["migrate", "--live", GUEST, &b]);
    assert_eq!(state(&b, GUEST).as_deref(), Some("running"));
}

fn begin_args(
    dom: &Domain,
    params: TypedParams,
    flags: MigrateFlags,
) -> migrated_proto::DomainMigrateBegin3ParamsArgs {
    migrated_proto::DomainMigrateBegin3ParamsArgs {
        dom: dom.reference().clone().into(),
        params: params.into_wire(),
        flags: u32::try_from(flags.bits()).expect("32-bit flags"),
    }
}

async fn begin(
    conn: &Connection,
    dom: &Domain,
    flags: MigrateFlags,
) -> migrated_client::Result<migrated_proto::DomainMigrateBegin3ParamsRet> {
    conn.call::<procs::DomainMigrateBegin3Params>(&begin_args(dom, TypedParams::new(), flags))
        .await
}

async fn prepare(
    conn: &Connection,
    xml: &str,
    cookie: Vec<u8>,
) -> migrated_client::Result<migrated_proto::DomainMigratePrepare3ParamsRet> {
    let params = TypedParams::new().with(key::DEST_XML, TypedValue::String(xml.to_owned()));
    conn.call::<procs::DomainMigratePrepare3Params>(
        &migrated_proto::DomainMigratePrepare3ParamsArgs {
            params: params.into_wire(),
            cookie_in: cookie,
            flags: 1,
        },
    )
    .await
}

#[test]
fn oversized_and_garbage_cookies_are_refused() {
    let s = setup();
    runtime().block_on(async {
        let (ca, dom) = open_source(&s.hosts.a_uri()).await;
        let xml = begin(&ca, &dom, MigrateFlags::LIVE)
            .await
            .expect("begin")
            .xml;
        let (cb, _) = open(&s.hosts.b_uri()).await;
        let big = vec![b'x'; 16385];
        expect_code(
            prepare(&cb, &xml, big).await,
            ARGUMENT_UNSUPPORTED,
            &["16385", "16384"],
        );
        expect_code(
            prepare(&cb, &xml, b"\x01\x02garbage\0".to_vec()).await,
            INTERNAL_ERROR,
            &["cookie"],
        );
    });
    assert_eq!(
        state(&s.hosts.b_uri(), GUEST),
        None,
        "nothing created on the destination"
    );
    nothing_lost(&s);
}

#[test]
fn a_cookie_from_this_very_host_is_the_same_host_error() {
    let s = setup();
    runtime().block_on(async {
        let (ca, dom) = open_source(&s.hosts.a_uri()).await;
        let out = begin(&ca, &dom, MigrateFlags::LIVE).await.expect("begin");
        expect_code(
            prepare(&ca, &out.xml, out.cookie_out).await,
            INTERNAL_ERROR,
            &["same host", s.hosts.a.host_uuid()],
        );
    });
    nothing_lost(&s);
}

#[test]
fn flag_and_parameter_mistakes_are_named() {
    let s = setup();
    runtime().block_on(async {
        let (ca, dom) = open_source(&s.hosts.a_uri()).await;
        expect_code(
            begin(&ca, &dom, MigrateFlags(1 << 30)).await,
            INVALID_ARG,
            &["0x40000000"],
        );
        expect_code(
            begin(&ca, &dom, MigrateFlags::LIVE | MigrateFlags::TUNNELLED).await,
            ARGUMENT_UNSUPPORTED,
            &["TUNNELLED", "PEER2PEER"],
        );
        expect_code(
            begin(&ca, &dom, MigrateFlags::OFFLINE).await,
            OPERATION_INVALID,
            &["offline migration must be specified with the persistent flag set"],
        );
        // Parallel connections are QEMU's multifd; the test driver has no
        // data connections to multiply.
        expect_code(
            begin(&ca, &dom, MigrateFlags::LIVE | MigrateFlags::PARALLEL).await,
            ARGUMENT_UNSUPPORTED,
            &["PARALLEL", "Test"],
        );
        // Post-copy is QEMU's; the test driver refuses it as libvirt's does
        // (no flag, no MIGRATE_START_POST_COPY, no post-copy speed).
        expect_code(
            begin(&ca, &dom, MigrateFlags::LIVE | MigrateFlags::POSTCOPY).await,
            ARGUMENT_UNSUPPORTED,
            &["POSTCOPY", "Test"],
        );
        expect_code(
            ca.call::<procs::DomainMigrateStartPostCopy>(
                &migrated_proto::DomainMigrateStartPostCopyArgs {
                    dom: dom.reference().clone().into(),
                    flags: 0,
                },
            )
            .await,
            NO_SUPPORT,
            &["virDomainMigrateStartPostCopy"],
        );
        expect_code(
            ca.call::<procs::DomainMigrateSetMaxSpeed>(
                &migrated_proto::DomainMigrateSetMaxSpeedArgs {
                    dom: dom.reference().clone().into(),
                    bandwidth: 10,
                    flags: 1,
                },
            )
            .await,
            INVALID_ARG,
            &["testDomainMigrateSetMaxSpeed"],
        );
        let dup = TypedParams::new()
            .with(key::DEST_NAME, TypedValue::String("x".into()))
            .with(key::DEST_NAME, TypedValue::String("y".into()));
        expect_code(
            ca.call::<procs::DomainMigrateBegin3Params>(&begin_args(&dom, dup, MigrateFlags::LIVE))
                .await,
            INVALID_ARG,
            &["destination_name"],
        );
        let wrong = TypedParams::new().with(key::BANDWIDTH, TypedValue::String("fast".into()));
        expect_code(
            ca.call::<procs::DomainMigrateBegin3Params>(&begin_args(
                &dom,
                wrong,
                MigrateFlags::LIVE,
            ))
            .await,
            INVALID_ARG,
            &["bandwidth"],
        );
    });
    nothing_lost(&s);
}

#[test]
fn sixty_five_typed_params_are_an_rpc_error() {
    let s = setup();
    let uuid = runtime().block_on(async { open_source(&s.hosts.a_uri()).await.1.uuid() });
    let mut raw = RawConn::connect(s.hosts.a.tcp_addr()).expect("connect");
    let mut open_args = xdr::some_string("test:///default");
    open_args.extend(xdr::u32(0));
    assert!(raw.call(1, &open_args).expect("open").error().is_none());
    // BEGIN3_PARAMS: dom, params<64> (65 here), flags
    let mut payload = xdr::string(GUEST);
    payload.extend_from_slice(uuid.as_bytes());
    payload.extend(xdr::i32(-1));
    payload.extend(xdr::u32(65));
    for i in 0..65 {
        payload.extend(xdr::string(&format!("p{i}")));
        payload.extend(xdr::i32(4)); // ULLONG
        payload.extend(xdr::u32(0));
        payload.extend(xdr::u32(1));
    }
    payload.extend(xdr::u32(1));
    let reply = raw.call(302, &payload).expect("reply");
    let err = reply.error().expect("an ERROR reply");
    assert_eq!(err.code, RPC, "{err:?}");
    // the connection stays usable
    assert!(raw
        .call(60, &xdr::i32(10))
        .expect("feature")
        .error()
        .is_none());
    nothing_lost(&s);
}

#[test]
fn out_of_order_steps_are_operation_invalid() {
    let s = setup();
    runtime().block_on(async {
        let (cb, _) = open(&s.hosts.b_uri()).await;
        let params = TypedParams::new().with(key::DEST_NAME, TypedValue::String(GUEST.into()));
        expect_code(
            cb.call::<procs::DomainMigrateFinish3Params>(
                &migrated_proto::DomainMigrateFinish3ParamsArgs {
                    params: params.into_wire(),
                    cookie_in: Vec::new(),
                    flags: 1,
                    cancelled: 0,
                },
            )
            .await,
            OPERATION_INVALID,
            &["no incoming migration job"],
        );
        let (ca, dom) = open_source(&s.hosts.a_uri()).await;
        let protected = MigrateFlags::LIVE | MigrateFlags::CHANGE_PROTECTION;
        let out = begin(&ca, &dom, protected).await.expect("begin");
        let confirm = |cookie: Vec<u8>| migrated_proto::DomainMigrateConfirm3ParamsArgs {
            dom: dom.reference().clone().into(),
            params: Vec::new(),
            cookie_in: cookie,
            flags: u32::try_from(protected.bits()).expect("32 bits"),
            cancelled: 1,
        };
        ca.call::<procs::DomainMigrateConfirm3Params>(&confirm(out.cookie_out.clone()))
            .await
            .expect("first confirm releases the job");
        expect_code(
            ca.call::<procs::DomainMigrateConfirm3Params>(&confirm(out.cookie_out))
                .await,
            OPERATION_INVALID,
            &[],
        );
    });
    nothing_lost(&s);
}

/// Two Begins race (one wins), and the operator pauses the guest while the
/// winner's job lives: cancelling that migration runs the guest again, as
/// libvirt restores the pre-migration state (running "migration canceled",
/// event resumed / migrated); a guest already paused at Begin stays paused.
#[test]
fn two_concurrent_begins_on_one_guest_one_wins() {
    let s = setup();
    let a = s.hosts.a_uri();
    // With virsh, its event loop checks libvirt's lifecycle event too.
    let events = require_binary("virsh").map(|_| {
        let events = VirshEvents::spawn(&a, &["--loop", "--event", "lifecycle", "--domain", GUEST]);
        events.sync_on_redefine(&a, GUEST);
        events
    });
    runtime().block_on(async {
        let (ca, dom) = open_source(&a).await;
        let (ca2, dom2) = open_source(&a).await;
        let protected = MigrateFlags::LIVE | MigrateFlags::CHANGE_PROTECTION;
        let (r1, r2) = tokio::join!(begin(&ca, &dom, protected), begin(&ca2, &dom2, protected));
        let (ok, err) = match (r1, r2) {
            (Ok(o), Err(e)) | (Err(e), Ok(o)) => (o, e),
            (a, b) => panic!("exactly one Begin3 must win: {a:?} / {b:?}"),
        };
        assert_eq!(err.remote_code(), Some(OPERATION_INVALID), "{err}");
        let suspend = migrated_proto::DomainSuspendArgs {
            dom: dom2.reference().clone().into(),
        };
        let cancel = |cookie: Vec<u8>| migrated_proto::DomainMigrateConfirm3ParamsArgs {
            dom: dom.reference().clone().into(),
            params: Vec::new(),
            cookie_in: cookie,
            flags: u32::try_from(protected.bits()).expect("32 bits"),
            cancelled: 1,
        };
        // SUSPEND is allowed while the winner's job lives, as libvirt's
        // outgoing jobs allow it (other state changes wait for the job)
        ca2.call::<procs::DomainSuspend>(&suspend)
            .await
            .expect("suspend during Begin3 pauses the guest");
        assert_eq!(state(&a, GUEST).as_deref(), Some("paused"));
        ca.call::<procs::DomainMigrateConfirm3Params>(&cancel(ok.cookie_out))
            .await
            .expect("cancel releases the guest");
        // it ran when the job began: the cancelled migration resumes it
        assert_eq!(
            ctl_ok(&a, &["domstate", "--reason", GUEST]).trim(),
            "running (migration canceled)"
        );
        if let Some(events) = &events {
            events.wait_for(
                &format!("event 'lifecycle' for domain '{GUEST}': Resumed Migrated"),
                Duration::from_secs(10),
            );
        }
        // paused before Begin: the operator's pause outlives the cancel
        ca2.call::<procs::DomainSuspend>(&suspend)
            .await
            .expect("suspend");
        let out = begin(&ca, &dom, protected)
            .await
            .expect("begin a paused guest");
        ca.call::<procs::DomainMigrateConfirm3Params>(&cancel(out.cookie_out))
            .await
            .expect("cancel");
        assert_eq!(
            ctl_ok(&a, &["domstate", "--reason", GUEST]).trim(),
            "paused (user)"
        );
        ca2.call::<procs::DomainResume>(&migrated_proto::DomainResumeArgs {
            dom: dom2.reference().clone().into(),
        })
        .await
        .expect("resume after the job");
    });
    nothing_lost(&s);
}
