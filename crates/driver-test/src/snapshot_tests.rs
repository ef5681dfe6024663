//! Snapshot tests of the test driver: revert transitions with libvirt's
//! states and events, HALT, transient guests, and metadata surviving a
//! reopen of the driver.

use migrated_core::domain::{
    event_detail, paused_reason, running_reason, shutoff_reason, DomainState, LifecycleEvent,
};
use migrated_core::error::ErrorCode;
use migrated_core::flags::snapshot::{create, revert};

use super::*;

fn host() -> HostIdentity {
    HostIdentity {
        hostname: "test-host".into(),
        uuid: Uuid::from_u128(0x5678),
    }
}

const XML: &str = "<domain type='test'><name>vm</name><memory unit='MiB'>4</memory>\
                   <os><type>hvm</type></os></domain>";

fn snap(name: &str) -> String {
    format!("<domainsnapshot><name>{name}</name></domainsnapshot>")
}

fn drain(rx: &mut broadcast::Receiver<DomainEvent>) -> Vec<(LifecycleEvent, i32)> {
    let mut out = Vec::new();
    while let Ok(ev) = rx.try_recv() {
        if let Some(l) = ev.as_lifecycle() {
            out.push(l);
        }
    }
    out
}

async fn state(drv: &TestDriver, dom: &DomainRef) -> (DomainState, i32) {
    let s = drv.get_state(dom, 0).await.expect("state");
    (s.state, s.reason)
}

#[tokio::test]
async fn reverts_move_between_states_with_libvirts_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let drv = TestDriver::new(dir.path(), host()).expect("driver");
    let dom = drv.define_xml(XML, 0).await.expect("define");
    drv.snapshot_create(&dom, &snap("off"), 0)
        .await
        .expect("off");
    drv.create(&dom, 0).await.expect("start");
    drv.snapshot_create(&dom, &snap("on"), 0).await.expect("on");
    drv.suspend(&dom).await.expect("suspend");
    drv.snapshot_create(&dom, &snap("held"), 0)
        .await
        .expect("held");
    drv.resume(&dom).await.expect("resume");
    let mut events = drv.subscribe_events().expect("events");

    // running → paused snapshot: suspended/from-snapshot.
    drv.snapshot_revert(&dom, "held", 0)
        .await
        .expect("revert held");
    assert_eq!(
        state(&drv, &dom).await,
        (DomainState::Paused, paused_reason::FROM_SNAPSHOT)
    );
    assert_eq!(
        drain(&mut events),
        [(
            LifecycleEvent::Suspended,
            event_detail::SUSPENDED_FROM_SNAPSHOT
        )]
    );
    // paused → running snapshot: resumed.
    drv.snapshot_revert(&dom, "on", 0).await.expect("revert on");
    assert_eq!(
        state(&drv, &dom).await,
        (DomainState::Running, running_reason::FROM_SNAPSHOT)
    );
    assert_eq!(drain(&mut events), [(LifecycleEvent::Resumed, 2)]);
    // running → inactive snapshot: stopped/from-snapshot.
    drv.snapshot_revert(&dom, "off", 0)
        .await
        .expect("revert off");
    assert_eq!(
        state(&drv, &dom).await,
        (DomainState::Shutoff, shutoff_reason::FROM_SNAPSHOT)
    );
    assert_eq!(
        drain(&mut events),
        [(LifecycleEvent::Stopped, event_detail::STOPPED_FROM_SNAPSHOT)]
    );
    // inactive → inactive snapshot started paused: started, then suspended.
    drv.snapshot_revert(&dom, "off", revert::PAUSED)
        .await
        .expect("revert off paused");
    assert_eq!(
        state(&drv, &dom).await,
        (DomainState::Paused, paused_reason::FROM_SNAPSHOT)
    );
    assert_eq!(
        drain(&mut events),
        [
            (LifecycleEvent::Started, event_detail::STARTED_FROM_SNAPSHOT),
            (
                LifecycleEvent::Suspended,
                event_detail::SUSPENDED_FROM_SNAPSHOT
            )
        ]
    );
    assert_eq!(
        drv.snapshot_current(&dom, 0)
            .await
            .expect("current")
            .as_deref(),
        Some("off")
    );
    let both = drv
        .snapshot_revert(&dom, "on", revert::RUNNING | revert::PAUSED)
        .await
        .expect_err("exclusive flags");
    assert_eq!(both.code(), ErrorCode::InvalidArg);
}

#[tokio::test]
async fn halt_stops_the_guest_and_transient_guests_cannot_halt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let drv = TestDriver::new(dir.path(), host()).expect("driver");
    let dom = drv.define_xml(XML, 0).await.expect("define");
    drv.create(&dom, 0).await.expect("start");
    drv.snapshot_create(&dom, &snap("h"), create::HALT)
        .await
        .expect("halt");
    assert_eq!(
        state(&drv, &dom).await,
        (DomainState::Shutoff, shutoff_reason::FROM_SNAPSHOT)
    );
    let xml = drv.snapshot_xml(&dom, "h", 0).await.expect("xml");
    assert!(xml.contains("<state>running</state>"), "{xml}");

    let transient = drv
        .create_xml(&XML.replace("<name>vm</name>", "<name>tr</name>"), 0)
        .await
        .expect("transient");
    let err = drv
        .snapshot_create(&transient, &snap("t"), create::HALT)
        .await
        .expect_err("halt of a transient guest");
    assert_eq!(err.code(), ErrorCode::OperationInvalid);
    drv.snapshot_create(&transient, &snap("t"), 0)
        .await
        .expect("snapshot");
    drv.destroy(&transient, 0).await.expect("destroy");
    // Nothing of a transient guest is stored.
    assert!(std::fs::read_dir(dir.path().join("test/snapshots"))
        .expect("dir")
        .flatten()
        .all(|e| e
            .file_name()
            .to_string_lossy()
            .starts_with(&dom.uuid.to_string())));
}

#[tokio::test]
async fn metadata_survives_a_reopen_and_undefine_needs_the_flag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dom = {
        let drv = TestDriver::new(dir.path(), host()).expect("driver");
        let dom = drv.define_xml(XML, 0).await.expect("define");
        drv.snapshot_create(&dom, &snap("a"), 0).await.expect("a");
        drv.snapshot_create(&dom, &snap("b"), 0).await.expect("b");
        drv.snapshot_revert(&dom, "a", 0).await.expect("revert");
        dom
    };
    let drv = TestDriver::new(dir.path(), host()).expect("reopen");
    assert_eq!(
        drv.snapshot_list(&dom, None, 0).await.expect("list"),
        ["a", "b"]
    );
    assert_eq!(
        drv.snapshot_current(&dom, 0)
            .await
            .expect("current")
            .as_deref(),
        Some("a")
    );
    assert_eq!(
        drv.snapshot_parent(&dom, "b", 0).await.expect("parent"),
        "a"
    );
    let refused = drv.undefine(&dom, 0).await.expect_err("undefine");
    assert!(refused
        .to_string()
        .contains("cannot delete inactive domain with 2 snapshots"));
    drv.undefine(&dom, migrated_core::flags::undefine::SNAPSHOTS_METADATA)
        .await
        .expect("undefine with metadata");
    assert!(!dir
        .path()
        .join(format!("test/snapshots/{}.xml", dom.uuid))
        .exists());
}
