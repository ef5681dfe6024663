//! An abandoned Prepare on the destination: the client that called Prepare3
//! goes away (or never calls Finish3). As libvirt's close callback does
//! (`qemuMigrationDstPrepareCleanup`), the destination kills the incoming
//! guest, drops a transient definition and releases the job — for live and
//! for offline prepares — and does the same once a Prepare has waited for
//! Finish longer than `migration_prepare_timeout`.

mod migrate_support;

use std::time::Duration;

use migrate_support::{ctl_ok, define, exactly_one_copy, persistent, state, Hosts};
use migrated_client::{Connection, OpenFlags};
use migrated_core::flags::MigrateFlags;
use migrated_core::typed_params::{migrate_param as key, TypedParams, TypedValue};
use migrated_proto::procs;
use migrated_tests::{wait_until, Daemon};

/// libvirt's VIR_ERR_OPERATION_INVALID.
const OPERATION_INVALID: i32 = 55;

/// How long the destination may take to notice and clean up.
const CLEANUP: Duration = Duration::from_secs(30);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

async fn open(uri: &str) -> Connection {
    Connection::open(uri, OpenFlags::default())
        .await
        .expect("open")
}

fn bits(flags: MigrateFlags) -> u32 {
    u32::try_from(flags.bits()).expect("32-bit flags")
}

/// Begin3 on the source, leaving no source job behind: what is left afterwards is the destination's doing only.
/// Returns the Begin3 cookie and domain XML.
async fn begin_and_release(a: &str, name: &str, flags: MigrateFlags) -> (Vec<u8>, String) {
    let ca = open(a).await;
    let dom = ca.lookup_domain(name).await.expect("guest on the source");
    let out = ca
        .call::<procs::DomainMigrateBegin3Params>(&migrated_proto::DomainMigrateBegin3ParamsArgs {
            dom: dom.reference().clone().into(),
            params: TypedParams::new().into_wire(),
            flags: bits(flags),
        })
        .await
        .expect("begin3");
    // Without CHANGE_PROTECTION a Begin leaves no source job (as libvirt's);
    // where one is left, Confirm3(cancelled) ends it.
    let confirm = ca
        .call::<procs::DomainMigrateConfirm3Params>(
            &migrated_proto::DomainMigrateConfirm3ParamsArgs {
                dom: dom.reference().clone().into(),
                params: Vec::new(),
                cookie_in: out.cookie_out.clone(),
                flags: bits(flags),
                cancelled: 1,
            },
        )
        .await;
    if let Err(e) = confirm {
        assert_eq!(e.remote_code(), Some(OPERATION_INVALID), "{e}");
    }
    ca.close().await.expect("close");
    (out.cookie_out, out.xml)
}

async fn prepare(
    conn: &Connection,
    xml: &str,
    cookie: Vec<u8>,
    flags: MigrateFlags,
) -> migrated_client::Result<migrated_proto::DomainMigratePrepare3ParamsRet> {
    let params = TypedParams::new().with(key::DEST_XML, TypedValue::String(xml.to_owned()));
    conn.call::<procs::DomainMigratePrepare3Params>(
        &migrated_proto::DomainMigratePrepare3ParamsArgs {
            params: params.into_wire(),
            cookie_in: cookie,
            flags: bits(flags),
        },
    )
    .await
}

/// Whether `b` holds no migration job for the guest: a fresh Prepare3 of the
/// same definition is accepted (and then cancelled again with Finish3).
async fn no_job_on(b: &str, name: &str, xml: &str, flags: MigrateFlags) -> bool {
    let conn = open(b).await;
    let free = match prepare(&conn, xml, Vec::new(), flags).await {
        Ok(_) => {
            let params = TypedParams::new().with(key::DEST_NAME, TypedValue::String(name.into()));
            let cancel = conn
                .call::<procs::DomainMigrateFinish3Params>(
                    &migrated_proto::DomainMigrateFinish3ParamsArgs {
                        params: params.into_wire(),
                        cookie_in: Vec::new(),
                        flags: bits(flags),
                        cancelled: 1,
                    },
                )
                .await;
            // libvirt answers a cancelled Finish3 with an error and no domain.
            assert!(cancel.is_err(), "cancelled finish3 returned a domain");
            true
        }
        Err(e) if e.remote_code() == Some(OPERATION_INVALID) => false,
        Err(e) => panic!("unexpected prepare3 error: {e}"),
    };
    conn.close().await.expect("close");
    free
}

fn live() -> MigrateFlags {
    MigrateFlags::LIVE
}

fn offline() -> MigrateFlags {
    MigrateFlags::OFFLINE | MigrateFlags::PERSIST_DEST
}

/// Prepares on `hosts.b` over a connection that is then dropped without
/// Finish3; returns the definition it prepared with.
fn prepare_then_disconnect(hosts: &Hosts, name: &str, flags: MigrateFlags) -> String {
    let (a, b) = (hosts.a_uri(), hosts.b_uri());
    runtime().block_on(async {
        let (cookie, xml) = begin_and_release(&a, name, flags).await;
        let cb = open(&b).await;
        prepare(&cb, &xml, cookie, flags).await.expect("prepare3");
        // While the preparing client is connected, the job holds the guest.
        assert!(!no_job_on(&b, name, &xml, flags).await, "{}", hosts.logs());
        if flags.contains(MigrateFlags::LIVE) {
            assert_eq!(state(&b, name).as_deref(), Some("paused"));
        }
        // The client dies: no Finish3, no CONNECT_CLOSE.
        drop(cb);
        xml
    })
}

/// Waits (bounded) until `b` holds no job for the guest.
#[track_caller]
fn wait_released(hosts: &Hosts, name: &str, xml: &str, flags: MigrateFlags) {
    let b = hosts.b_uri();
    let rt = runtime();
    wait_until(CLEANUP, "the destination to release the job", || {
        rt.block_on(no_job_on(&b, name, xml, flags)).then_some(())
    });
}

#[test]
fn a_live_prepare_whose_client_disconnects_is_cleaned_up() {
    let hosts = Hosts::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let name = "abandoned-live";
    define(&hosts.a_uri(), dir.path(), name, "", true);
    let xml = prepare_then_disconnect(&hosts, name, live());
    migrated_tests::wait_until(CLEANUP, "the incoming guest to go", || {
        state(&hosts.b_uri(), name).is_none().then_some(())
    });
    wait_released(&hosts, name, &xml, live());
    exactly_one_copy(&hosts, name);
    ctl_ok(&hosts.a_uri(), &["migrate", "--live", name, &hosts.b_uri()]);
    assert_eq!(state(&hosts.b_uri(), name).as_deref(), Some("running"));
    assert_eq!(state(&hosts.a_uri(), name).as_deref(), Some("shut off"));
}

#[test]
fn a_v2_prepare2_whose_client_disconnects_is_cleaned_up() {
    let hosts = Hosts::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let name = "abandoned-v2";
    define(&hosts.a_uri(), dir.path(), name, "", true);
    let (a, b) = (hosts.a_uri(), hosts.b_uri());
    let xml = runtime().block_on(async {
        let (_, xml) = begin_and_release(&a, name, live()).await;
        let cb = open(&b).await;
        cb.call::<procs::DomainMigratePrepare2>(&migrated_proto::DomainMigratePrepare2Args {
            uri_in: None,
            flags: live().bits(),
            dname: None,
            resource: 0,
            dom_xml: xml.clone(),
        })
        .await
        .expect("prepare2");
        assert_eq!(state(&b, name).as_deref(), Some("paused"));
        drop(cb);
        xml
    });
    wait_until(CLEANUP, "the incoming guest to go", || {
        state(&b, name).is_none().then_some(())
    });
    wait_released(&hosts, name, &xml, live());
    ctl_ok(&a, &["migrate", "--live", name, &b]);
    assert_eq!(state(&b, name).as_deref(), Some("running"));
}

#[test]
fn an_offline_prepare_whose_client_disconnects_releases_the_job() {
    let hosts = Hosts::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let name = "abandoned-offline";
    define(&hosts.a_uri(), dir.path(), name, "", false);
    let xml = prepare_then_disconnect(&hosts, name, offline());
    wait_released(&hosts, name, &xml, offline());
    assert_eq!(state(&hosts.b_uri(), name), None, "nothing defined on B");
    ctl_ok(
        &hosts.a_uri(),
        &["migrate", "--offline", "--persistent", name, &hosts.b_uri()],
    );
    assert_eq!(state(&hosts.b_uri(), name).as_deref(), Some("shut off"));
    assert!(persistent(&hosts.b_uri(), name));
}

#[test]
fn a_persistent_definition_on_the_destination_survives_an_abandoned_prepare() {
    let hosts = Hosts::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let name = "abandoned-kept";
    define(&hosts.a_uri(), dir.path(), name, "", true);
    // The same guest (same UUID) is already defined, shut off, on the destination.
    let config = ctl_ok(&hosts.a_uri(), &["dumpxml", "--inactive", name]);
    let path = dir.path().join("on-b.xml");
    std::fs::write(&path, config).expect("write XML");
    ctl_ok(&hosts.b_uri(), &["define", path.to_str().expect("utf-8")]);
    let xml = prepare_then_disconnect(&hosts, name, live());
    wait_until(CLEANUP, "the incoming guest to stop", || {
        (state(&hosts.b_uri(), name).as_deref() == Some("shut off")).then_some(())
    });
    wait_released(&hosts, name, &xml, live());
    assert!(persistent(&hosts.b_uri(), name), "its definition is kept");
    assert_eq!(state(&hosts.a_uri(), name).as_deref(), Some("running"));
}

/// A destination whose Prepare waits at most 5 s for Finish (without data).
fn hosts_with_prepare_timeout() -> Hosts {
    Hosts {
        a: Daemon::builder().hostname("host-a").tcp().spawn(),
        b: Daemon::builder()
            .hostname("host-b")
            .tcp()
            .config_toml("migration_prepare_timeout_secs = 5\n")
            .spawn(),
    }
}

#[test]
fn a_prepare_left_without_finish_times_out_live_and_offline() {
    let hosts = hosts_with_prepare_timeout();
    let dir = tempfile::tempdir().expect("temp dir");
    define(&hosts.a_uri(), dir.path(), "stale-live", "", true);
    define(&hosts.a_uri(), dir.path(), "stale-offline", "", false);
    let (a, b) = (hosts.a_uri(), hosts.b_uri());
    let rt = runtime();
    // The preparing connection stays open the whole time: only the timeout
    // can release these jobs.
    let cb = rt.block_on(open(&b));
    let mut prepared = Vec::new();
    for (name, flags) in [("stale-live", live()), ("stale-offline", offline())] {
        let xml = rt.block_on(async {
            let (cookie, xml) = begin_and_release(&a, name, flags).await;
            prepare(&cb, &xml, cookie, flags).await.expect("prepare3");
            xml
        });
        prepared.push((name, flags, xml));
    }
    // (No check that the guest is still there: on a loaded machine the 5 s
    // may already have passed; the disconnect tests check the held state.)
    wait_until(CLEANUP, "the stale incoming guest to go", || {
        state(&b, "stale-live").is_none().then_some(())
    });
    for (name, flags, xml) in &prepared {
        wait_released(&hosts, name, xml, *flags);
    }
    // A late Finish3 on the still-open connection gets a clear error.
    let late = rt.block_on(async {
        let params =
            TypedParams::new().with(key::DEST_NAME, TypedValue::String("stale-live".into()));
        cb.call::<procs::DomainMigrateFinish3Params>(
            &migrated_proto::DomainMigrateFinish3ParamsArgs {
                params: params.into_wire(),
                cookie_in: Vec::new(),
                flags: bits(live()),
                cancelled: 0,
            },
        )
        .await
    });
    let err = late.expect_err("finish3 after the timeout");
    assert!(err.to_string().contains("stale-live"), "{err}");
    ctl_ok(&a, &["migrate", "--live", "stale-live", &b]);
    assert_eq!(state(&b, "stale-live").as_deref(), Some("running"));
    ctl_ok(
        &a,
        &["migrate", "--offline", "--persistent", "stale-offline", &b],
    );
    assert_eq!(state(&b, "stale-offline").as_deref(), Some("shut off"));
    drop(cb);
}
