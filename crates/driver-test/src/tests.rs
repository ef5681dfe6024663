//! Lifecycle, persistence, concurrency and memory tests of the test driver.

use std::time::Duration;

use migrated_core::domain::{
    event_detail, paused_reason, running_reason, shutoff_reason, DomainState, LifecycleEvent,
};
use migrated_core::error::ErrorCode;
use migrated_core::flags;

use super::*;

mod devtune;
mod tune;

fn host() -> HostIdentity {
    HostIdentity {
        hostname: "test-host".into(),
        uuid: Uuid::from_u128(0x1234),
    }
}

fn driver(dir: &Path) -> TestDriver {
    TestDriver::new(dir, host()).expect("driver opens")
}

fn xml(name: &str, uuid: Uuid) -> String {
    format!(
        "<domain type='test'><name>{name}</name><uuid>{uuid}</uuid>\
         <memory unit='MiB'>4</memory><vcpu>2</vcpu><os><type>hvm</type></os></domain>"
    )
}

fn workload_xml(name: &str, rate: u64) -> String {
    format!(
        "<domain type='test'><name>{name}</name><memory unit='MiB'>4</memory>\
         <metadata><migrated:workload xmlns:migrated='https://migrated.dev/xmlns/test/1' \
         dirty_pages_per_sec='{rate}' working_set_mib='1'/></metadata>\
         <os><type>hvm</type></os></domain>"
    )
}

async fn state(drv: &TestDriver, dom: &DomainRef) -> (DomainState, i32) {
    let s = drv.get_state(dom, 0).await.expect("state");
    (s.state, s.reason)
}

fn assert_invalid(err: Error, text: &str) {
    assert_eq!(err.code(), ErrorCode::OperationInvalid, "{err}");
    assert!(err.to_string().contains(text), "{err}");
}

fn assert_internal(err: Error, text: &str) {
    assert_eq!(err.code(), ErrorCode::InternalError, "{err}");
    assert_eq!(err.to_string(), format!("internal error: {text}"));
}

fn next_event(rx: &mut broadcast::Receiver<DomainEvent>) -> (LifecycleEvent, i32) {
    let ev = rx.try_recv().expect("an event was emitted");
    ev.as_lifecycle().expect("a lifecycle event")
}

#[tokio::test]
async fn define_start_suspend_resume_destroy_undefine_with_states_and_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let drv = driver(dir.path());
    let mut events = drv.subscribe_events().expect("events");
    let uuid = Uuid::new_v4();

    let dom = drv.define_xml(&xml("vm1", uuid), 0).await.expect("define");
    assert_eq!((dom.uuid, dom.id), (uuid, -1));
    assert_eq!(
        next_event(&mut events),
        (LifecycleEvent::Defined, event_detail::DEFINED_ADDED)
    );
    assert_eq!(
        state(&drv, &dom).await,
        (DomainState::Shutoff, shutoff_reason::UNKNOWN)
    );
    assert!(drv.is_persistent(&dom).await.expect("persistent"));
    assert!(!drv.is_active(&dom).await.expect("inactive"));

    let running = drv.create(&dom, 0).await.expect("start");
    assert_eq!(running.id, 1, "ids start at 1");
    assert_eq!(
        next_event(&mut events),
        (LifecycleEvent::Started, event_detail::STARTED_BOOTED)
    );
    assert_eq!(
        state(&drv, &dom).await,
        (DomainState::Running, running_reason::BOOTED)
    );
    assert_eq!(drv.lookup_by_id(1).await.expect("by id").uuid, uuid);

    drv.suspend(&dom).await.expect("suspend");
    assert_eq!(
        next_event(&mut events),
        (LifecycleEvent::Suspended, event_detail::SUSPENDED_PAUSED)
    );
    assert_eq!(
        state(&drv, &dom).await,
        (DomainState::Paused, paused_reason::USER)
    );

    drv.resume(&dom).await.expect("resume");
    assert_eq!(
        next_event(&mut events),
        (LifecycleEvent::Resumed, event_detail::RESUMED_UNPAUSED)
    );
    assert_eq!(
        state(&drv, &dom).await,
        (DomainState::Running, running_reason::UNPAUSED)
    );

    drv.destroy(&dom, 0).await.expect("destroy");
    let ev = events.try_recv().expect("stopped event");
    assert_eq!(
        ev.as_lifecycle().expect("a lifecycle event"),
        (LifecycleEvent::Stopped, event_detail::STOPPED_DESTROYED)
    );
    assert_eq!(ev.dom.id, -1);
    assert_eq!(
        state(&drv, &dom).await,
        (DomainState::Shutoff, shutoff_reason::DESTROYED)
    );
    assert!(
        drv.memory(&uuid).is_none(),
        "memory is released when stopped"
    );

    let again = drv.create(&dom, 0).await.expect("second start");
    assert_eq!(again.id, 2, "every start takes a new id");
    drv.shutdown(&dom, 0).await.expect("shutdown");
    assert_eq!(
        state(&drv, &dom).await,
        (DomainState::Shutoff, shutoff_reason::SHUTDOWN)
    );

    drv.undefine(&dom, 0).await.expect("undefine");
    let err = drv.lookup_by_uuid(&uuid).await.expect_err("gone");
    assert_eq!(err.code(), ErrorCode::NoDomain);
    assert!(!dir.path().join(format!("test/domains/{uuid}.xml")).exists());
}

#[tokio::test]
async fn invalid_transitions_answer_as_libvirts_test_driver() {
    let dir = tempfile::tempdir().expect("tempdir");
    let drv = driver(dir.path());
    let dom = drv
        .define_xml(&xml("vm", Uuid::new_v4()), 0)
        .await
        .expect("define");

    // src/conf's check (OPERATION_INVALID) where libvirt's test driver uses it...
    assert_invalid(
        drv.destroy(&dom, 0).await.expect_err("not running"),
        "domain is not running",
    );
    assert_invalid(
        drv.reset(&dom).await.expect_err("not running"),
        "domain is not running",
    );
    // ...and its own internal errors naming the guest elsewhere.
    assert_internal(
        drv.suspend(&dom).await.expect_err("not running"),
        "domain 'vm' not running",
    );
    assert_internal(
        drv.resume(&dom).await.expect_err("not running"),
        "domain 'vm' not paused",
    );
    assert_internal(
        drv.shutdown(&dom, 0).await.expect_err("not running"),
        "domain 'vm' not running",
    );

    drv.create(&dom, 0).await.expect("start");
    assert_internal(
        drv.create(&dom, 0).await.expect_err("running"),
        "Domain 'vm' is already running",
    );
    assert_internal(
        drv.resume(&dom).await.expect_err("running"),
        "domain 'vm' not paused",
    );
    drv.reset(&dom).await.expect("reset a running guest");
    drv.suspend(&dom).await.expect("suspend");
    assert_internal(
        drv.suspend(&dom).await.expect_err("paused"),
        "domain 'vm' not running",
    );
    drv.reset(&dom).await.expect("reset a paused guest");
    // A failed call changes nothing.
    assert_eq!(
        state(&drv, &dom).await,
        (DomainState::Paused, paused_reason::USER)
    );
}

#[tokio::test]
async fn transient_domain_disappears_when_destroyed_and_cannot_be_undefined() {
    let dir = tempfile::tempdir().expect("tempdir");
    let drv = driver(dir.path());
    let uuid = Uuid::new_v4();
    let dom = drv
        .create_xml(&xml("tmp", uuid), 0)
        .await
        .expect("create xml");
    assert!(dom.id > 0);
    assert!(!drv.is_persistent(&dom).await.expect("transient"));
    assert!(drv.memory(&uuid).is_some());

    assert_invalid(
        drv.undefine(&dom, 0).await.expect_err("transient"),
        "cannot undefine transient domain",
    );
    assert_invalid(
        drv.set_autostart(&dom, true).await.expect_err("transient"),
        "cannot set autostart for transient domain",
    );
    drv.destroy(&dom, 0).await.expect("destroy");
    let err = drv
        .lookup_by_uuid(&uuid)
        .await
        .expect_err("transient is gone");
    assert_eq!(err.code(), ErrorCode::NoDomain);
    assert!(!dir.path().join(format!("test/domains/{uuid}.xml")).exists());
}

#[tokio::test]
async fn undefining_a_running_domain_makes_it_transient() {
    let dir = tempfile::tempdir().expect("tempdir");
    let drv = driver(dir.path());
    let uuid = Uuid::new_v4();
    let dom = drv.define_xml(&xml("vm", uuid), 0).await.expect("define");
    drv.create(&dom, 0).await.expect("start");
    drv.undefine(&dom, 0).await.expect("undefine running");
    assert!(drv.is_active(&dom).await.expect("still running"));
    assert!(!drv.is_persistent(&dom).await.expect("now transient"));
    drv.destroy(&dom, 0).await.expect("destroy");
    assert!(drv.lookup_by_uuid(&uuid).await.is_err());
}

#[tokio::test]
async fn start_paused_and_create_xml_paused_emit_started_then_suspended() {
    let dir = tempfile::tempdir().expect("tempdir");
    let drv = driver(dir.path());
    let mut events = drv.subscribe_events().expect("events");
    let dom = drv
        .define_xml(&xml("p", Uuid::new_v4()), 0)
        .await
        .expect("define");
    let _ = next_event(&mut events);
    drv.create(&dom, flags::create::START_PAUSED)
        .await
        .expect("start paused");
    assert_eq!(next_event(&mut events).0, LifecycleEvent::Started);
    assert_eq!(next_event(&mut events).0, LifecycleEvent::Suspended);
    assert_eq!(state(&drv, &dom).await.0, DomainState::Paused);

    let t = drv
        .create_xml(&xml("t", Uuid::new_v4()), flags::create::START_PAUSED)
        .await
        .expect("create paused");
    assert_eq!(state(&drv, &t).await.0, DomainState::Paused);
}

#[tokio::test]
async fn unknown_flag_bits_are_invalid_arg() {
    let dir = tempfile::tempdir().expect("tempdir");
    let drv = driver(dir.path());
    let dom = drv
        .define_xml(&xml("f", Uuid::new_v4()), 0)
        .await
        .expect("define");
    for err in [
        drv.create(&dom, 1 << 20).await.expect_err("create"),
        drv.get_xml_desc(&dom, 1 << 9)
            .await
            .map(|_| ())
            .expect_err("xml"),
        drv.define_xml(&xml("g", Uuid::new_v4()), 2)
            .await
            .map(|_| ())
            .expect_err("define"),
        drv.list_all_domains(1 << 16)
            .await
            .map(|_| ())
            .expect_err("list"),
    ] {
        assert_eq!(err.code(), ErrorCode::InvalidArg, "{err}");
    }
    assert!(
        drv.lookup_by_name("g").await.is_err(),
        "refused define left nothing"
    );
}

#[tokio::test]
async fn duplicate_name_or_uuid_is_refused_and_same_pair_updates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let drv = driver(dir.path());
    let uuid = Uuid::new_v4();
    let mut events = drv.subscribe_events().expect("events");
    drv.define_xml(&xml("a", uuid), 0).await.expect("define");
    let _ = next_event(&mut events);

    let err = drv
        .define_xml(&xml("a", Uuid::new_v4()), 0)
        .await
        .expect_err("same name, other uuid");
    assert_eq!(err.code(), ErrorCode::OperationFailed);
    assert!(
        err.to_string().contains("already exists with uuid"),
        "{err}"
    );

    let err = drv
        .define_xml(&xml("b", uuid), 0)
        .await
        .expect_err("same uuid, other name");
    assert_eq!(err.code(), ErrorCode::OperationFailed);
    assert!(err.to_string().contains("'a' is already defined"), "{err}");

    let err = drv
        .create_xml(&xml("a", Uuid::new_v4()), 0)
        .await
        .expect_err("create with taken name");
    assert_eq!(err.code(), ErrorCode::OperationFailed);

    let updated = xml("a", uuid).replace("<vcpu>2</vcpu>", "<vcpu>4</vcpu>");
    drv.define_xml(&updated, 0).await.expect("update");
    assert_eq!(
        next_event(&mut events),
        (LifecycleEvent::Defined, event_detail::DEFINED_UPDATED)
    );
    let dom = drv.lookup_by_name("a").await.expect("a");
    assert_eq!(drv.get_info(&dom).await.expect("info").nr_virt_cpu, 4);
    assert_eq!(drv.list_all_domains(0).await.expect("list").len(), 1);
}

#[tokio::test]
async fn redefining_a_running_domain_changes_only_the_inactive_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let drv = driver(dir.path());
    let uuid = Uuid::new_v4();
    let dom = drv.define_xml(&xml("r", uuid), 0).await.expect("define");
    drv.create(&dom, 0).await.expect("start");
    let updated = xml("r", uuid).replace("<vcpu>2</vcpu>", "<vcpu>3</vcpu>");
    drv.define_xml(&updated, 0).await.expect("redefine");
    assert_eq!(drv.get_info(&dom).await.expect("info").nr_virt_cpu, 2);
    let inactive = drv
        .get_xml_desc(&dom, flags::xml::INACTIVE)
        .await
        .expect("inactive xml");
    assert!(inactive.contains(">3</vcpu>"), "{inactive}");
    let live = drv.get_xml_desc(&dom, 0).await.expect("live xml");
    assert!(live.contains(">2</vcpu>") && live.contains("id="), "{live}");
    drv.destroy(&dom, 0).await.expect("destroy");
    drv.create(&dom, 0).await.expect("restart");
    assert_eq!(drv.get_info(&dom).await.expect("info").nr_virt_cpu, 3);
}

#[tokio::test]
async fn defining_xml_dumped_from_a_running_guest_does_not_keep_its_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let drv = driver(dir.path());
    let uuid = Uuid::new_v4();
    let dom = drv.define_xml(&xml("d", uuid), 0).await.expect("define");
    drv.create(&dom, 0).await.expect("start");
    let live = drv.get_xml_desc(&dom, 0).await.expect("live xml");
    assert!(
        live.contains("id='1'") || live.contains("id=\"1\""),
        "{live}"
    );
    drv.destroy(&dom, 0).await.expect("destroy");
    drv.define_xml(&live, 0).await.expect("redefine from dump");
    let shut_off = drv.get_xml_desc(&dom, 0).await.expect("xml");
    assert!(!shut_off.contains("id="), "{shut_off}");
}

#[tokio::test]
async fn bad_xml_is_an_xml_error_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let drv = driver(dir.path());
    for bad in [
        "<domain type='test'><name>x</name>",
        "<domain type='test'><name>x</name><memory>1</memory><bogus/><os><type>hvm</type></os></domain>",
    ] {
        let err = drv.define_xml(bad, 0).await.expect_err("bad xml");
        assert_eq!(err.code(), ErrorCode::XmlError, "{err}");
    }
    let huge = "<domain type='test'><name>big</name><memory unit='TiB'>1</memory>\
                <os><type>hvm</type></os></domain>";
    let err = drv.define_xml(huge, 0).await.expect_err("too much memory");
    assert_eq!(err.code(), ErrorCode::ConfigUnsupported);
    assert!(drv.list_all_domains(0).await.expect("list").is_empty());
    let stored = std::fs::read_dir(dir.path().join("test/domains"))
        .expect("dir")
        .count();
    assert_eq!(stored, 0);
}

#[tokio::test]
async fn persistent_configs_survive_recreation_shut_off() {
    let dir = tempfile::tempdir().expect("tempdir");
    let uuid = Uuid::new_v4();
    let auto = Uuid::new_v4();
    {
        let drv = driver(dir.path());
        let dom = drv.define_xml(&xml("keep", uuid), 0).await.expect("define");
        drv.create(&dom, 0).await.expect("start");
        let a = drv.define_xml(&xml("auto", auto), 0).await.expect("define");
        drv.set_autostart(&a, true).await.expect("autostart");
        drv.create_xml(&xml("transient", Uuid::new_v4()), 0)
            .await
            .expect("transient");
    }
    let drv = driver(dir.path());
    let all = drv.list_all_domains(0).await.expect("list");
    let names: Vec<_> = all.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(
        names,
        vec!["auto", "keep"],
        "transient guests do not come back"
    );
    let keep = drv.lookup_by_uuid(&uuid).await.expect("keep");
    assert_eq!(state(&drv, &keep).await.0, DomainState::Shutoff);
    let a = drv.lookup_by_uuid(&auto).await.expect("auto");
    assert!(drv.get_autostart(&a).await.expect("autostart"));
    assert_eq!(
        state(&drv, &a).await.0,
        DomainState::Running,
        "autostart boots it"
    );
    assert!(!drv.get_autostart(&keep).await.expect("autostart"));
}

#[tokio::test]
async fn list_filters_follow_libvirt_semantics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let drv = driver(dir.path());
    let off = drv
        .define_xml(&xml("off", Uuid::new_v4()), 0)
        .await
        .expect("define");
    let on = drv
        .define_xml(&xml("on", Uuid::new_v4()), 0)
        .await
        .expect("define");
    drv.create(&on, 0).await.expect("start");
    drv.create_xml(&xml("tr", Uuid::new_v4()), flags::create::START_PAUSED)
        .await
        .expect("transient");
    drv.set_autostart(&off, true).await.expect("autostart");
    let names = |v: Vec<DomainRef>| v.into_iter().map(|d| d.name).collect::<Vec<_>>();
    use flags::list::*;
    assert_eq!(
        names(drv.list_all_domains(0).await.expect("all")),
        ["off", "on", "tr"]
    );
    assert_eq!(
        names(drv.list_all_domains(ACTIVE).await.expect("a")),
        ["on", "tr"]
    );
    assert_eq!(
        names(drv.list_all_domains(INACTIVE).await.expect("i")),
        ["off"]
    );
    assert_eq!(
        names(drv.list_all_domains(TRANSIENT).await.expect("t")),
        ["tr"]
    );
    assert_eq!(
        names(drv.list_all_domains(PAUSED | SHUTOFF).await.expect("s")),
        ["off", "tr"]
    );
    assert_eq!(
        names(drv.list_all_domains(AUTOSTART).await.expect("au")),
        ["off"]
    );
    assert_eq!(
        names(drv.list_all_domains(ACTIVE | INACTIVE).await.expect("both")),
        ["off", "on", "tr"]
    );
    assert!(drv
        .list_all_domains(HAS_SNAPSHOT)
        .await
        .expect("snap")
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_concurrent_guests_leave_a_consistent_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let drv = driver(dir.path());
    let mut tasks = Vec::new();
    for i in 0..16 {
        let drv = drv.clone();
        tasks.push(tokio::spawn(async move {
            let dom = drv
                .define_xml(&xml(&format!("g{i:02}"), Uuid::new_v4()), 0)
                .await?;
            for _ in 0..3 {
                drv.create(&dom, 0).await?;
                drv.suspend(&dom).await?;
                drv.resume(&dom).await?;
                drv.destroy(&dom, 0).await?;
            }
            // Leave the even ones running.
            if i % 2 == 0 {
                drv.create(&dom, 0).await?;
            }
            Ok::<_, Error>(dom)
        }));
    }
    for task in tasks {
        task.await.expect("task ran").expect("lifecycle succeeded");
    }
    let all = drv.list_all_domains(0).await.expect("list");
    assert_eq!(all.len(), 16);
    let active = drv
        .list_all_domains(flags::list::ACTIVE)
        .await
        .expect("active");
    assert_eq!(active.len(), 8);
    let mut ids: Vec<_> = active.iter().map(|d| d.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 8, "running guests have distinct ids");
    assert!(ids.iter().all(|&id| (1..=56).contains(&id)), "{ids:?}");
    let stored = std::fs::read_dir(dir.path().join("test/domains"))
        .expect("dir")
        .count();
    assert_eq!(stored, 16);
}

#[tokio::test]
async fn running_guest_has_memory_of_its_xml_size_and_cpu_time_advances() {
    let dir = tempfile::tempdir().expect("tempdir");
    let drv = driver(dir.path());
    let uuid = Uuid::new_v4();
    let dom = drv.define_xml(&xml("m", uuid), 0).await.expect("define");
    drv.create(&dom, 0).await.expect("start");
    let mem = drv.memory(&uuid).expect("running guest has memory");
    assert_eq!(mem.size_bytes(), 4 << 20);
    let info = drv.get_info(&dom).await.expect("info");
    assert_eq!((info.max_mem_kib, info.nr_virt_cpu), (4096, 2));
    tokio::time::sleep(Duration::from_millis(20)).await;
    let later = drv.get_info(&dom).await.expect("info");
    assert!(
        later.cpu_time_ns > info.cpu_time_ns,
        "cpu time advances while running"
    );
    drv.suspend(&dom).await.expect("suspend");
    let paused = drv.get_info(&dom).await.expect("info").cpu_time_ns;
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(drv.get_info(&dom).await.expect("info").cpu_time_ns, paused);
}

#[tokio::test]
async fn workload_runs_only_while_the_guest_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let drv = driver(dir.path());
    let dom = drv
        .create_xml(&workload_xml("busy", 20_000), 0)
        .await
        .expect("create");
    let mem = drv.memory(&dom.uuid).expect("memory");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while mem.dirty_count() == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(mem.dirty_count() > 0, "the workload dirties pages");

    drv.suspend(&dom).await.expect("suspend");
    let dirty = mem.take_dirty_pages();
    assert!(dirty.iter().all(|&p| p < 256), "1 MiB working set");
    let sum = mem.checksum();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        mem.checksum(),
        sum,
        "a paused guest's memory does not change"
    );
    assert!(mem.take_dirty_pages().is_empty());

    drv.resume(&dom).await.expect("resume");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while mem.dirty_count() == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(mem.dirty_count() > 0, "resuming restarts the workload");
    // The dirty bit may be visible a moment before the page's new contents
    // are: wait (bounded) for the memory itself to change.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while mem.checksum() == sum && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_ne!(mem.checksum(), sum, "resumed workload changes memory");
    drv.destroy(&dom, 0).await.expect("destroy");
}

#[tokio::test]
async fn idle_guest_memory_stays_clean() {
    let dir = tempfile::tempdir().expect("tempdir");
    let drv = driver(dir.path());
    let dom = drv
        .create_xml(&xml("idle", Uuid::new_v4()), 0)
        .await
        .expect("create");
    let mem = drv.memory(&dom.uuid).expect("memory");
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(mem.dirty_count(), 0);
    assert_eq!(mem.allocated_pages(), 0);
}

#[tokio::test]
async fn node_and_connection_answers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let drv = driver(dir.path());
    assert_eq!(drv.get_type().await.expect("type"), "TEST");
    assert_eq!(drv.uri().await.expect("uri"), "test:///default");
    let caps = drv.capabilities().await.expect("caps");
    assert!(caps.contains(&host().uuid.to_string()) && caps.contains("<domain type='test'/>"));
    assert!(drv.node_info().await.expect("node").cpus > 0);
    assert_eq!(
        drv.node_security_model().await.expect("model"),
        SecurityModel::default()
    );
    let unknown = DomainRef {
        name: "nope".into(),
        uuid: Uuid::new_v4(),
        id: -1,
    };
    let err = drv.get_info(&unknown).await.expect_err("unknown");
    assert_eq!(err.code(), ErrorCode::NoDomain);
    let err = drv.lookup_by_name("nope").await.expect_err("unknown");
    assert!(err.to_string().contains("name 'nope'"), "{err}");
}

#[tokio::test]
async fn managed_save_keeps_the_pages_for_the_next_start_as_libvirts_test_driver() {
    let dir = tempfile::tempdir().expect("tempdir");
    let drv = driver(dir.path());
    let dom = drv
        .define_xml(&xml("saved", Uuid::new_v4()), 0)
        .await
        .expect("define");
    assert_invalid(
        drv.managed_save(&dom, 0).await.expect_err("shut off"),
        "domain is not running",
    );
    let dom = drv.create(&dom, 0).await.expect("start");
    let mut data = [0u8; PAGE_SIZE];
    data[..24].copy_from_slice(b"kept across managed save");
    drv.memory(&dom.uuid)
        .expect("memory")
        .write_page(3, &data)
        .expect("write");
    let mut events = drv.subscribe_events().expect("events");
    drv.managed_save(&dom, 0).await.expect("managed save");
    assert_eq!(
        next_event(&mut events),
        (LifecycleEvent::Stopped, event_detail::STOPPED_SAVED)
    );
    assert_eq!(
        state(&drv, &dom).await,
        (DomainState::Shutoff, shutoff_reason::SAVED)
    );
    assert!(drv.has_managed_save(&dom, 0).await.expect("has image"));
    assert_eq!(
        drv.list_all_domains(flags::list::MANAGEDSAVE)
            .await
            .expect("list")
            .len(),
        1
    );
    assert_invalid(
        drv.undefine(&dom, 0).await.expect_err("image exists"),
        "managed save image exists",
    );

    let dom = drv.create(&dom, 0).await.expect("start from the image");
    assert_eq!(
        next_event(&mut events),
        (LifecycleEvent::Started, event_detail::STARTED_RESTORED)
    );
    assert_eq!(
        state(&drv, &dom).await,
        (DomainState::Running, running_reason::RESTORED)
    );
    assert!(!drv.has_managed_save(&dom, 0).await.expect("image used"));
    let mut page = [0u8; PAGE_SIZE];
    drv.memory(&dom.uuid)
        .expect("memory")
        .read_page(3, &mut page)
        .expect("read");
    assert!(page.starts_with(b"kept across managed save"));

    // FORCE_BOOT discards the image: fresh memory.
    drv.managed_save(&dom, 0).await.expect("managed save again");
    let dom = drv
        .create(&dom, flags::create::START_FORCE_BOOT)
        .await
        .expect("force boot");
    assert_eq!(drv.memory(&dom.uuid).expect("memory").allocated_pages(), 0);
    drv.destroy(&dom, 0).await.expect("destroy");

    // A transient guest has no managed save.
    let transient = drv
        .create_xml(&xml("transient", Uuid::new_v4()), 0)
        .await
        .expect("create");
    assert_invalid(
        drv.managed_save(&transient, 0)
            .await
            .expect_err("transient"),
        "cannot do managed save for transient domain",
    );
}

#[tokio::test]
async fn save_and_restore_bring_back_the_pages_and_the_definition() {
    let dir = tempfile::tempdir().expect("tempdir");
    let drv = driver(dir.path());
    let image = dir.path().join("guest.save");
    let image_str = image.to_str().expect("utf-8 path");
    let uuid = Uuid::new_v4();
    let dom = drv
        .define_xml(&xml("saved", uuid), 0)
        .await
        .expect("define");
    assert_invalid(
        drv.save(&dom, image_str, None, 0)
            .await
            .expect_err("shut off"),
        "domain is not running",
    );
    let dom = drv.create(&dom, 0).await.expect("start");
    let mut data = [0u8; PAGE_SIZE];
    data[..17].copy_from_slice(b"kept across save!");
    let memory = drv.memory(&dom.uuid).expect("memory");
    memory.write_page(5, &data).expect("write");
    let checksum = memory.checksum();
    drop(memory);
    let mut events = drv.subscribe_events().expect("events");
    drv.save(&dom, image_str, None, 0).await.expect("save");
    assert_eq!(
        next_event(&mut events),
        (LifecycleEvent::Stopped, event_detail::STOPPED_SAVED)
    );
    assert_eq!(
        state(&drv, &dom).await,
        (DomainState::Shutoff, shutoff_reason::SAVED)
    );
    let bytes = std::fs::read(&image).expect("image");
    assert_eq!(&bytes[..8], b"MGRDTSV1");

    // Restored paused on request, with the same memory.
    drv.restore(image_str, None, flags::save::PAUSED)
        .await
        .expect("restore");
    assert_eq!(
        next_event(&mut events),
        (LifecycleEvent::Started, event_detail::STARTED_RESTORED)
    );
    assert_eq!(
        next_event(&mut events),
        (LifecycleEvent::Suspended, event_detail::SUSPENDED_PAUSED)
    );
    let dom = drv.lookup_by_uuid(&uuid).await.expect("restored");
    assert!(drv.is_persistent(&dom).await.expect("still defined"));
    assert_eq!(state(&drv, &dom).await.0, DomainState::Paused);
    assert_eq!(
        drv.memory(&uuid).expect("memory").checksum(),
        checksum,
        "restored memory differs"
    );
    assert_invalid(
        drv.restore(image_str, None, 0)
            .await
            .expect_err("already running"),
        "is already active",
    );
    drv.destroy(&dom, 0).await.expect("destroy");

    // A replacement XML must keep the guest ABI.
    let bigger = xml("saved", uuid).replace("4</memory>", "8</memory>");
    let err = drv
        .restore(image_str, Some(&bigger), 0)
        .await
        .expect_err("other ABI");
    assert_eq!(err.code(), ErrorCode::ConfigUnsupported, "{err}");
    let described = xml("saved", uuid).replace("</name>", "</name><description>d</description>");
    drv.restore(image_str, Some(&described), flags::save::RUNNING)
        .await
        .expect("restore with a described XML");
    assert_eq!(
        state(&drv, &dom).await,
        (DomainState::Running, running_reason::RESTORED)
    );
    let live = drv.get_xml_desc(&dom, 0).await.expect("xml");
    assert!(live.contains("<description>d</description>"), "{live}");

    // Not an image of this driver, or damaged.
    let foreign = dir.path().join("foreign");
    std::fs::write(&foreign, b"MGRDQSV1 and the rest of a qemu image").expect("write");
    let truncated = dir.path().join("truncated");
    std::fs::write(&truncated, &bytes[..bytes.len() - 4]).expect("write");
    drv.destroy(&dom, 0).await.expect("destroy");
    for (path, words) in [
        (&foreign, "image magic is incorrect"),
        (&truncated, "truncated guest memory"),
    ] {
        let err = drv
            .restore(path.to_str().expect("utf-8"), None, 0)
            .await
            .expect_err("refused");
        assert_eq!(err.code(), ErrorCode::OperationFailed, "{err}");
        assert!(err.to_string().contains(words), "{err}");
    }
    assert_eq!(state(&drv, &dom).await.0, DomainState::Shutoff);
}

#[tokio::test]
async fn a_restored_unknown_guest_is_transient_and_a_saved_transient_one_is_gone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let drv = driver(dir.path());
    let image = dir.path().join("transient.save");
    let image = image.to_str().expect("utf-8 path");
    let dom = drv
        .create_xml(&xml("transient", Uuid::new_v4()), 0)
        .await
        .expect("create");
    drv.save(&dom, image, None, 0).await.expect("save");
    assert_eq!(
        drv.lookup_by_uuid(&dom.uuid)
            .await
            .expect_err("gone")
            .code(),
        ErrorCode::NoDomain
    );
    drv.restore(image, None, 0).await.expect("restore");
    let dom = drv.lookup_by_uuid(&dom.uuid).await.expect("back");
    assert!(!drv.is_persistent(&dom).await.expect("transient"));
    assert_eq!(
        state(&drv, &dom).await,
        (DomainState::Running, running_reason::RESTORED)
    );
}

#[tokio::test]
async fn setvcpus_changes_the_live_count_and_the_config_as_libvirts_test_driver() {
    let dir = tempfile::tempdir().expect("tempdir");
    let drv = driver(dir.path());
    let four = xml("vcpus", Uuid::new_v4()).replace("<vcpu>2</vcpu>", "<vcpu current='2'>4</vcpu>");
    let dom = drv.define_xml(&four, 0).await.expect("define");
    use flags::affect::{CONFIG, LIVE};
    use flags::vcpu::MAXIMUM;
    drv.set_vcpus(&dom, 3, 0)
        .await
        .expect("config of a shut-off guest");
    let inactive = drv.get_xml_desc(&dom, 0).await.expect("xml");
    assert!(inactive.contains("current='3'>4</vcpu>"), "{inactive}");
    drv.set_vcpus(&dom, 2, MAXIMUM | CONFIG)
        .await
        .expect("maximum");
    let inactive = drv.get_xml_desc(&dom, 0).await.expect("xml");
    assert!(inactive.contains("<vcpu>2</vcpu>"), "{inactive}");
    drv.set_vcpus(&dom, 4, MAXIMUM | CONFIG)
        .await
        .expect("maximum back");

    let dom = drv.create(&dom, 0).await.expect("start");
    assert_eq!(drv.get_info(&dom).await.expect("info").nr_virt_cpu, 2);
    drv.set_vcpus(&dom, 4, LIVE).await.expect("live");
    assert_eq!(drv.get_info(&dom).await.expect("info").nr_virt_cpu, 4);
    assert_eq!(drv.vcpu_info(&dom).await.expect("vcpus").len(), 4);
    let config = drv
        .get_xml_desc(&dom, flags::xml::INACTIVE)
        .await
        .expect("config");
    assert!(config.contains("current='2'>4</vcpu>"), "{config}");

    for (count, flags, code, words) in [
        (5, LIVE, ErrorCode::InvalidArg, "exceeds maximum (5 > 4)"),
        (
            33,
            CONFIG,
            ErrorCode::InvalidArg,
            "maximum supported amount (33 > 32)",
        ),
        (
            2,
            MAXIMUM | LIVE | CONFIG,
            ErrorCode::OperationUnsupported,
            "live domain",
        ),
        (2, 1 << 4, ErrorCode::InvalidArg, "unsupported flags"),
    ] {
        let err = drv.set_vcpus(&dom, count, flags).await.expect_err(words);
        assert_eq!(err.code(), code, "{err}");
        assert!(err.to_string().contains(words), "{err}");
    }
}

#[tokio::test]
async fn rename_rewrites_the_config_and_emits_undefined_then_defined() {
    let dir = tempfile::tempdir().expect("tempdir");
    let uuid = Uuid::new_v4();
    {
        let drv = driver(dir.path());
        let dom = drv.define_xml(&xml("old", uuid), 0).await.expect("define");
        drv.define_xml(&xml("taken", Uuid::new_v4()), 0)
            .await
            .expect("define another");
        assert_invalid(
            drv.rename(&dom, "taken", 0).await.expect_err("taken"),
            "domain with name 'taken' already exists",
        );
        assert_invalid(
            drv.rename(&dom, "old", 0).await.expect_err("same"),
            "Can't rename domain to itself",
        );
        let running = drv.create(&dom, 0).await.expect("start");
        assert_invalid(
            drv.rename(&running, "new", 0).await.expect_err("running"),
            "cannot rename active domain",
        );
        drv.destroy(&running, 0).await.expect("destroy");
        let mut events = drv.subscribe_events().expect("events");
        let renamed = drv.rename(&dom, "new", 0).await.expect("rename");
        assert_eq!((renamed.name.as_str(), renamed.uuid), ("new", uuid));
        let ev = events.try_recv().expect("undefined");
        assert_eq!(ev.dom.name, "old");
        assert_eq!(
            ev.as_lifecycle(),
            Some((LifecycleEvent::Undefined, event_detail::UNDEFINED_RENAMED))
        );
        let ev = events.try_recv().expect("defined");
        assert_eq!(ev.dom.name, "new");
        assert_eq!(
            ev.as_lifecycle(),
            Some((LifecycleEvent::Defined, event_detail::DEFINED_RENAMED))
        );
        assert_eq!(
            drv.lookup_by_name("old")
                .await
                .expect_err("old name")
                .code(),
            ErrorCode::NoDomain
        );
    }
    // The rename is on disk.
    let drv = driver(dir.path());
    assert_eq!(
        drv.lookup_by_name("new").await.expect("new name").uuid,
        uuid
    );
}

#[tokio::test]
async fn block_info_is_libvirts_fixed_terabyte_for_a_disk_running_or_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let drv = driver(dir.path());
    let with_disk = xml("disky", Uuid::new_v4()).replace(
        "</domain>",
        "<devices><disk type='file' device='disk'><source file='/img/disky.img'/>\
         <target dev='vda' bus='virtio'/></disk></devices></domain>",
    );
    let dom = drv.define_xml(&with_disk, 0).await.expect("define");
    let expected = migrated_core::domain::BlockInfo {
        capacity: 1_099_506_450_432,
        allocation: 1_099_511_627_776,
        physical: 1_099_511_627_776,
    };
    assert_eq!(
        drv.block_info(&dom, "vda").await.expect("shut off"),
        expected
    );
    let dom = drv.create(&dom, 0).await.expect("start");
    assert_eq!(
        drv.block_info(&dom, "/img/disky.img")
            .await
            .expect("by path"),
        expected
    );
    let err = drv.block_info(&dom, "vdb").await.expect_err("no such disk");
    assert_eq!(err.code(), ErrorCode::InvalidArg);
    assert_eq!(
        err.to_string(),
        "invalid argument: invalid path vdb not assigned to domain"
    );
}
