//! The migration transitions of the test driver, exercised the way a migration
//! engine uses them: two drivers, memory copied page by page with dirty
//! tracking, then Finish and Confirm.

use std::time::Duration;

use migrated_core::domain::{
    event_detail, paused_reason, running_reason, shutoff_reason, DomainEvent, DomainRef,
    DomainState, HostIdentity, LifecycleEvent,
};
use migrated_core::driver::Driver;
use migrated_core::error::ErrorCode;
use migrated_core::flags;
use migrated_core::xml::DomainDef;
use migrated_driver_test::{GuestMemory, TestDriver, PAGE_SIZE};
use tokio::sync::broadcast;
use uuid::Uuid;

const GUEST: &str = "<domain type='test'><name>mover</name><memory unit='MiB'>4</memory>\
    <metadata><migrated:workload xmlns:migrated='https://migrated.dev/xmlns/test/1' \
    dirty_pages_per_sec='20000' working_set_mib='2'/></metadata>\
    <os><type>hvm</type></os></domain>";

fn open(dir: &std::path::Path, n: u128) -> TestDriver {
    TestDriver::new(
        dir,
        HostIdentity {
            hostname: format!("host{n}"),
            uuid: Uuid::from_u128(n),
        },
    )
    .expect("driver opens")
}

fn copy_pages(from: &GuestMemory, to: &GuestMemory, pages: impl IntoIterator<Item = u64>) {
    let mut buf = [0u8; PAGE_SIZE];
    for page in pages {
        // A zero page is sent too: the destination page may hold older data.
        from.read_page(page, &mut buf).expect("source page");
        to.write_page(page, &buf).expect("destination page");
    }
}

fn drain(rx: &mut broadcast::Receiver<DomainEvent>) -> Vec<(LifecycleEvent, i32)> {
    std::iter::from_fn(|| rx.try_recv().ok())
        .filter_map(|e| e.as_lifecycle())
        .collect()
}

async fn state(drv: &TestDriver, dom: &DomainRef) -> (DomainState, i32) {
    let s = drv.get_state(dom, 0).await.expect("state");
    (s.state, s.reason)
}

/// Starts the source guest and a paused incoming copy on the destination.
async fn prepare(src: &TestDriver, dst: &TestDriver) -> (DomainRef, DomainRef) {
    let dom = src.define_xml(GUEST, 0).await.expect("define");
    let dom = src.create(&dom, 0).await.expect("start");
    let xml = src
        .get_xml_desc(&dom, flags::xml::MIGRATABLE)
        .await
        .expect("migratable xml");
    let def = DomainDef::parse(&xml).expect("own xml parses");
    let (incoming, _) = dst.incoming_prepare(def).await.expect("prepare");
    (dom, incoming)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_copy_with_dirty_tracking_ends_with_identical_memory() {
    let (a, b) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let (src, dst) = (open(a.path(), 1), open(b.path(), 2));
    let mut src_events = src.subscribe_events().expect("events");
    let mut dst_events = dst.subscribe_events().expect("events");
    let (dom, incoming) = prepare(&src, &dst).await;
    assert_eq!(
        state(&dst, &incoming).await,
        (DomainState::Paused, paused_reason::MIGRATION)
    );
    assert!(!dst
        .is_persistent(&incoming)
        .await
        .expect("transient until finish"));

    let from = src.memory(&dom.uuid).expect("source memory");
    let to = dst.memory(&incoming.uuid).expect("destination memory");
    assert_eq!(from.page_count(), to.page_count());

    // Pre-copy: everything once, then a few rounds of what the workload dirtied.
    from.take_dirty_pages();
    copy_pages(&from, &to, 0..from.page_count());
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        copy_pages(&from, &to, from.take_dirty_pages());
    }
    src.outgoing_pause(&dom)
        .await
        .expect("pause for final copy");
    assert_eq!(
        state(&src, &dom).await,
        (DomainState::Paused, paused_reason::MIGRATION)
    );
    copy_pages(&from, &to, from.take_dirty_pages());
    assert_eq!(from.checksum(), to.checksum(), "memory arrived intact");
    assert!(
        from.allocated_pages() > 0,
        "the workload really wrote memory"
    );

    let persist = DomainDef::parse(
        &src.get_xml_desc(&dom, flags::xml::INACTIVE)
            .await
            .expect("config"),
    )
    .expect("parses");
    let finished = dst
        .incoming_finish(&incoming, Some(persist), false)
        .await
        .expect("finish");
    assert_eq!(
        state(&dst, &finished).await,
        (DomainState::Running, running_reason::MIGRATED)
    );
    assert!(dst.is_persistent(&finished).await.expect("persisted"));
    src.outgoing_complete(&dom, true).await.expect("confirm");
    let err = src
        .lookup_by_uuid(&dom.uuid)
        .await
        .expect_err("undefined on source");
    assert_eq!(err.code(), ErrorCode::NoDomain);

    assert_eq!(
        drain(&mut src_events),
        vec![
            (LifecycleEvent::Defined, event_detail::DEFINED_ADDED),
            (LifecycleEvent::Started, event_detail::STARTED_BOOTED),
            (LifecycleEvent::Suspended, event_detail::SUSPENDED_MIGRATED),
            (LifecycleEvent::Stopped, event_detail::STOPPED_MIGRATED),
            (LifecycleEvent::Undefined, event_detail::UNDEFINED_REMOVED),
        ]
    );
    assert_eq!(
        drain(&mut dst_events),
        vec![
            (LifecycleEvent::Started, event_detail::STARTED_MIGRATED),
            (LifecycleEvent::Defined, event_detail::DEFINED_ADDED),
            (LifecycleEvent::Resumed, event_detail::RESUMED_MIGRATED),
        ]
    );

    // The destination's config survives a restart of its driver.
    drop(dst);
    let dst = open(b.path(), 2);
    assert!(dst.lookup_by_name("mover").await.is_ok());
}

#[tokio::test]
async fn cancelled_migration_kills_the_copy_and_resumes_the_source() {
    let (a, b) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let (src, dst) = (open(a.path(), 1), open(b.path(), 2));
    let (dom, incoming) = prepare(&src, &dst).await;
    src.outgoing_pause(&dom).await.expect("pause");
    src.memory(&dom.uuid)
        .expect("memory")
        .set_throttle_percent(50);

    dst.incoming_abort(&incoming)
        .await
        .expect("finish cancelled");
    let err = dst.lookup_by_uuid(&incoming.uuid).await.expect_err("gone");
    assert_eq!(err.code(), ErrorCode::NoDomain);

    src.outgoing_resume(&dom).await.expect("confirm cancelled");
    assert_eq!(
        state(&src, &dom).await,
        (DomainState::Running, running_reason::MIGRATION_CANCELED)
    );
    assert_eq!(src.memory(&dom.uuid).expect("memory").throttle_percent(), 0);
    src.outgoing_resume(&dom).await.expect("idempotent");
    src.destroy(&dom, 0).await.expect("destroy");
}

#[tokio::test]
async fn paused_flag_leaves_the_destination_paused_and_user_pause_survives() {
    let (a, b) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let (src, dst) = (open(a.path(), 1), open(b.path(), 2));
    let (dom, incoming) = prepare(&src, &dst).await;
    src.suspend(&dom).await.expect("user pause");
    src.outgoing_pause(&dom)
        .await
        .expect("already paused is fine");
    assert_eq!(
        state(&src, &dom).await,
        (DomainState::Paused, paused_reason::USER)
    );
    src.outgoing_resume(&dom)
        .await
        .expect("resume after cancel");
    assert_eq!(
        state(&src, &dom).await,
        (DomainState::Paused, paused_reason::USER),
        "a guest the user paused is not resumed by a cancelled migration"
    );

    let done = dst
        .incoming_finish(&incoming, None, true)
        .await
        .expect("finish");
    assert_eq!(
        state(&dst, &done).await,
        (DomainState::Paused, paused_reason::USER)
    );
    assert!(!dst.is_persistent(&done).await.expect("not persisted"));
    let err = dst
        .incoming_finish(&done, None, false)
        .await
        .expect_err("finish twice");
    assert_eq!(err.code(), ErrorCode::OperationInvalid);

    src.outgoing_complete(&dom, false).await.expect("confirm");
    assert_eq!(
        state(&src, &dom).await,
        (DomainState::Shutoff, shutoff_reason::MIGRATED)
    );
    assert!(src
        .is_persistent(&dom)
        .await
        .expect("config kept without UNDEFINE_SOURCE"));
}

#[tokio::test]
async fn incoming_guest_clashing_with_a_local_one_is_refused() {
    let (a, b) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let (src, dst) = (open(a.path(), 1), open(b.path(), 2));
    let (_, incoming) = prepare(&src, &dst).await;
    let def =
        DomainDef::parse(&dst.get_xml_desc(&incoming, 0).await.expect("xml")).expect("parses");
    let err = dst
        .incoming_prepare(def.clone())
        .await
        .expect_err("already here");
    assert_eq!(err.code(), ErrorCode::OperationInvalid);

    let mut renamed = def;
    renamed.name = "other".into();
    let err = dst.incoming_prepare(renamed).await.expect_err("uuid clash");
    assert_eq!(err.code(), ErrorCode::OperationFailed);
}
