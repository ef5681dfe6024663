//! The QEMU driver through core's `Driver` trait, with real QEMU under TCG
//! running the project's workload guest. Without `qemu-system-x86_64` each
//! test prints `SKIPPED` (and fails when `CI` is set).

mod common;

use common::{qemu_available, wait_until, Reaper};
use std::path::Path;
use std::time::Duration;

use migrated_core::domain::{
    event_detail, paused_reason, running_reason, shutoff_reason, DomainEvent, DomainEventKind,
    DomainRef, DomainState, HostIdentity, LifecycleEvent,
};
use migrated_core::driver::Driver;
use migrated_core::error::ErrorCode;
use migrated_core::flags;
use migrated_driver_qemu::qmp::commands::{
    QueryStatus, RunState, SetAction, ShutdownAction, SystemPowerdown,
};
use migrated_driver_qemu::qmp::{Qmp, QmpConfig};
use migrated_driver_qemu::{workload, QemuConfig, QemuDriver};
use tokio::sync::broadcast;
use uuid::Uuid;

fn host() -> HostIdentity {
    HostIdentity {
        hostname: "qemu-test.invalid".into(),
        uuid: Uuid::new_v4(),
    }
}

fn config(dir: &Path) -> QemuConfig {
    QemuConfig::new(dir.join("state"), dir.join("run"))
}

fn guest_xml(name: &str, uuid: Uuid, machine: &str, dirty_mib: u32, dir: &Path) -> String {
    format!(
        "<domain type='qemu'>
           <name>{name}</name>
           <uuid>{uuid}</uuid>
           <memory unit='MiB'>64</memory>
           <vcpu>1</vcpu>
           <os><type arch='x86_64' machine='{machine}'>hvm</type>
             <kernel>{kernel}</kernel><cmdline>dirty_mib={dirty_mib}</cmdline></os>
           <devices>
             <serial type='file'><source path='{serial}'/><target port='0'/></serial>
           </devices>
         </domain>",
        kernel = workload::build_path().display(),
        serial = dir.join(format!("{name}.serial")).display(),
    )
}

async fn counter(driver: &QemuDriver, dom: &DomainRef) -> Option<u64> {
    let qmp = driver.qmp(dom).ok()?;
    workload::read_status(&qmp).await.ok().map(|s| s.counter)
}

async fn counter_passes(driver: &QemuDriver, dom: &DomainRef, above: u64) -> u64 {
    wait_until(Duration::from_secs(30), || async {
        counter(driver, dom).await.filter(|&c| c > above)
    })
    .await
}

async fn next_event(rx: &mut broadcast::Receiver<DomainEvent>) -> DomainEvent {
    tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("an event within 30 s")
        .expect("event channel open")
}

/// The next lifecycle event, past reboot events.
async fn next_lifecycle(rx: &mut broadcast::Receiver<DomainEvent>) -> DomainEvent {
    loop {
        let ev = next_event(rx).await;
        if !matches!(ev.kind, DomainEventKind::Reboot) {
            return ev;
        }
    }
}

fn process_exists(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[tokio::test]
async fn lifecycle_through_the_driver_api() {
    if !qemu_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let _reaper = Reaper::new(&[dir.path()]);
    let driver = QemuDriver::open(config(dir.path()), host())
        .await
        .expect("open");
    let mut events = driver.subscribe_events().expect("events");
    let uuid = Uuid::new_v4();
    let dom = driver
        .define_xml(&guest_xml("life", uuid, "pc", 4, dir.path()), 0)
        .await
        .expect("define");
    assert_eq!(
        next_event(&mut events).await.as_lifecycle().map(|(e, _)| e),
        Some(LifecycleEvent::Defined)
    );
    assert!(!driver.is_active(&dom).await.expect("is_active"));
    assert!(driver.is_persistent(&dom).await.expect("is_persistent"));

    let dom = driver.create(&dom, 0).await.expect("start");
    assert!(dom.id > 0);
    let ev = next_event(&mut events).await;
    assert_eq!(
        ev.as_lifecycle().expect("a lifecycle event"),
        (LifecycleEvent::Started, event_detail::STARTED_BOOTED)
    );
    assert_eq!(driver.lookup_by_id(dom.id).await.expect("by id").uuid, uuid);
    let first = counter_passes(&driver, &dom, 0).await;
    counter_passes(&driver, &dom, first).await;

    let info = driver.get_info(&dom).await.expect("info");
    assert_eq!(info.state, DomainState::Running);
    assert_eq!(info.nr_virt_cpu, 1);
    assert_eq!(info.max_mem_kib, 64 * 1024);
    assert!(info.cpu_time_ns > 0);
    let xml = driver.get_xml_desc(&dom, 0).await.expect("xml");
    assert!(xml.contains(&format!("id='{}'", dom.id)), "{xml}");

    driver.suspend(&dom).await.expect("suspend");
    let ev = next_event(&mut events).await;
    assert_eq!(
        ev.as_lifecycle().expect("a lifecycle event"),
        (LifecycleEvent::Suspended, event_detail::SUSPENDED_PAUSED)
    );
    let state = driver.get_state(&dom, 0).await.expect("state");
    assert_eq!(
        (state.state, state.reason),
        (DomainState::Paused, paused_reason::USER)
    );
    let frozen = counter(&driver, &dom).await.expect("counter while paused");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        counter(&driver, &dom).await,
        Some(frozen),
        "a paused guest does not count"
    );
    // As libvirt's QEMU driver: a paused guest's suspend succeeds, changes
    // nothing and sends no event (the next one is the resume's).
    driver.suspend(&dom).await.expect("suspend while paused");

    driver.resume(&dom).await.expect("resume");
    assert_eq!(
        next_event(&mut events).await.as_lifecycle().map(|(e, _)| e),
        Some(LifecycleEvent::Resumed)
    );
    let err = driver.resume(&dom).await.expect_err("already running");
    assert_eq!(err.code(), ErrorCode::OperationInvalid);
    counter_passes(&driver, &dom, frozen).await;

    // A reboot by the power button: the workload powers off and the same
    // QEMU boots it again (libvirt's fake reboot), its counter from zero.
    // Reboot events (the reset, and the firmware's own), no shutdown or
    // pause on the way, and it runs (booted) throughout.
    let pid = driver.pid(&dom).expect("pid");
    let before = counter_passes(&driver, &dom, 200).await;
    driver.reboot(&dom, 0).await.expect("reboot");
    let ev = next_event(&mut events).await;
    assert!(matches!(ev.kind, DomainEventKind::Reboot), "{ev:?}");
    wait_until(Duration::from_secs(30), || async {
        counter(&driver, &dom)
            .await
            .filter(|&c| c > 0 && c < before)
    })
    .await;
    let state = driver.get_state(&dom, 0).await.expect("state");
    assert_eq!(
        (state.state, state.reason),
        (DomainState::Running, running_reason::BOOTED)
    );
    assert_eq!(driver.pid(&dom).expect("pid"), pid, "the same QEMU");
    let err = driver
        .reboot(&dom, flags::reboot::INITCTL)
        .await
        .expect_err("initctl");
    assert_eq!(err.code(), ErrorCode::InvalidArg);

    driver.destroy(&dom, 0).await.expect("destroy");
    let ev = next_lifecycle(&mut events).await;
    assert_eq!(
        ev.as_lifecycle().expect("a lifecycle event"),
        (LifecycleEvent::Stopped, event_detail::STOPPED_DESTROYED)
    );
    let state = driver.get_state(&dom, 0).await.expect("state");
    assert_eq!(
        (state.state, state.reason),
        (DomainState::Shutoff, shutoff_reason::DESTROYED)
    );
    assert!(!process_exists(pid), "qemu {pid} is gone");
    assert!(
        !dir.path().join("run/qemu/life.json").exists(),
        "status file removed"
    );
    let err = driver.destroy(&dom, 0).await.expect_err("not running");
    assert_eq!(err.code(), ErrorCode::OperationInvalid);

    driver.undefine(&dom, 0).await.expect("undefine");
    assert!(driver.list_all_domains(0).await.expect("list").is_empty());
    let err = driver.lookup_by_uuid(&uuid).await.expect_err("gone");
    assert_eq!(err.code(), ErrorCode::NoDomain);
}

#[tokio::test]
async fn start_paused_and_a_transient_guest_disappears_when_destroyed() {
    if !qemu_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let _reaper = Reaper::new(&[dir.path()]);
    let driver = QemuDriver::open(config(dir.path()), host())
        .await
        .expect("open");
    let dom = driver
        .create_xml(
            &guest_xml("transient", Uuid::new_v4(), "pc", 1, dir.path()),
            flags::create::START_PAUSED,
        )
        .await
        .expect("create paused");
    assert_eq!(
        driver.get_state(&dom, 0).await.expect("state").state,
        DomainState::Paused
    );
    assert!(!driver.is_persistent(&dom).await.expect("persistent?"));
    assert_eq!(
        driver
            .list_all_domains(flags::list::TRANSIENT | flags::list::PAUSED)
            .await
            .expect("list"),
        vec![dom.clone()]
    );
    driver.destroy(&dom, 0).await.expect("destroy");
    assert!(driver.list_all_domains(0).await.expect("list").is_empty());
}

#[tokio::test]
async fn a_guest_killed_behind_our_back_is_shut_off_as_crashed() {
    if !qemu_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let _reaper = Reaper::new(&[dir.path()]);
    let driver = QemuDriver::open(config(dir.path()), host())
        .await
        .expect("open");
    let dom = driver
        .define_xml(&guest_xml("victim", Uuid::new_v4(), "pc", 1, dir.path()), 0)
        .await
        .expect("define");
    let dom = driver.create(&dom, 0).await.expect("start");
    let mut events = driver.subscribe_events().expect("events");
    let pid = driver.pid(&dom).expect("pid");
    // SAFETY: plain kill(2) on the QEMU this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let ev = next_event(&mut events).await;
    assert_eq!(
        ev.as_lifecycle().map(|(e, _)| e),
        Some(LifecycleEvent::Stopped)
    );
    let state = driver.get_state(&dom, 0).await.expect("state");
    assert_eq!(
        (state.state, state.reason),
        (DomainState::Shutoff, shutoff_reason::CRASHED)
    );
    // Still defined and startable again.
    let dom = driver.create(&dom, 0).await.expect("restart");
    driver.destroy(&dom, 0).await.expect("destroy");
}

#[tokio::test]
async fn start_failures_carry_qemu_stderr_and_leave_no_guest_behind() {
    if !qemu_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let _reaper = Reaper::new(&[dir.path()]);
    let driver = QemuDriver::open(config(dir.path()), host())
        .await
        .expect("open");
    // An unknown machine type is refused at define, as libvirt does.
    let err = driver
        .define_xml(
            &guest_xml(
                "badmachine",
                Uuid::new_v4(),
                "no-such-machine",
                1,
                dir.path(),
            ),
            0,
        )
        .await
        .expect_err("unknown machine");
    assert_eq!(err.code(), ErrorCode::ConfigUnsupported);
    assert!(
        err.to_string()
            .contains("does not support machine type 'no-such-machine'"),
        "{err}"
    );
    // A CPU model QEMU does not know fails the start, in QEMU's words.
    let bad_cpu = |name: &str| {
        guest_xml(name, Uuid::new_v4(), "pc", 1, dir.path()).replace(
            "</os>",
            "</os><cpu mode='custom'><model>no-such-cpu</model></cpu>",
        )
    };
    let dom = driver
        .define_xml(&bad_cpu("badcpu"), 0)
        .await
        .expect("define");
    let err = driver.create(&dom, 0).await.expect_err("qemu refuses");
    assert_eq!(err.code(), ErrorCode::OperationFailed);
    assert!(err.to_string().contains("no-such-cpu"), "{err}");
    let state = driver.get_state(&dom, 0).await.expect("state");
    assert_eq!(state.state, DomainState::Shutoff);

    let err = driver
        .create_xml(&bad_cpu("gone"), 0)
        .await
        .expect_err("qemu refuses");
    assert!(err.to_string().contains("no-such-cpu"), "{err}");
    assert!(
        driver.lookup_by_name("gone").await.is_err(),
        "failed transient guest removed"
    );

    let xml = guest_xml("noemu", Uuid::new_v4(), "pc", 1, dir.path()).replace(
        "<devices>",
        "<devices><emulator>/nonexistent/qemu-system-x86_64</emulator>",
    );
    let err = driver.define_xml(&xml, 0).await.expect_err("no emulator");
    assert!(
        err.to_string().contains("/nonexistent/qemu-system-x86_64"),
        "{err}"
    );

    let xml = guest_xml("testtype", Uuid::new_v4(), "pc", 1, dir.path())
        .replace("type='qemu'", "type='test'");
    let err = driver.define_xml(&xml, 0).await.expect_err("wrong type");
    assert_eq!(err.code(), ErrorCode::ConfigUnsupported);
}

#[tokio::test]
async fn guests_survive_the_driver_and_are_reattached() {
    if !qemu_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let _reaper = Reaper::new(&[dir.path()]);
    let driver = QemuDriver::open(config(dir.path()), host())
        .await
        .expect("open");
    let persistent = driver
        .define_xml(&guest_xml("keeper", Uuid::new_v4(), "pc", 2, dir.path()), 0)
        .await
        .expect("define");
    let persistent = driver.create(&persistent, 0).await.expect("start");
    let transient = driver
        .create_xml(&guest_xml("passer", Uuid::new_v4(), "pc", 2, dir.path()), 0)
        .await
        .expect("create transient");
    let doomed = driver
        .define_xml(&guest_xml("doomed", Uuid::new_v4(), "pc", 1, dir.path()), 0)
        .await
        .expect("define");
    let doomed = driver.create(&doomed, 0).await.expect("start");
    let rebooter = driver
        .define_xml(
            &guest_xml("rebooter", Uuid::new_v4(), "pc", 1, dir.path()),
            0,
        )
        .await
        .expect("define");
    let rebooter = driver.create(&rebooter, 0).await.expect("start");
    driver.suspend(&transient).await.expect("pause transient");
    let before = counter_passes(&driver, &persistent, 0).await;
    // The workload runs: its power button is armed.
    counter_passes(&driver, &rebooter, 0).await;
    let pids = [
        driver.pid(&persistent).expect("pid"),
        driver.pid(&transient).expect("pid"),
        driver.pid(&doomed).expect("pid"),
    ];

    // The daemon goes away; one guest dies while nobody watches.
    drop(driver);
    // SAFETY: plain kill(2) on a QEMU this test started.
    assert_eq!(unsafe { libc::kill(pids[2], libc::SIGKILL) }, 0);
    assert!(process_exists(pids[0]) && process_exists(pids[1]));
    // A reboot asked for before the daemon went away, the guest's power-off
    // after it: QEMU waits, paused in run state `shutdown`.
    let monitor = dir.path().join("run/qemu/rebooter.monitor");
    let qmp = Qmp::connect(&monitor, QmpConfig::default())
        .await
        .expect("qmp of the rebooter");
    qmp.execute(&SetAction {
        shutdown: ShutdownAction::Pause,
    })
    .await
    .expect("set-action");
    qmp.execute(&SystemPowerdown).await.expect("power button");
    wait_until(Duration::from_secs(30), || async {
        let status = qmp.execute(&QueryStatus).await.ok()?;
        (status.status == RunState::Shutdown).then_some(())
    })
    .await;
    let frozen = workload::read_status(&qmp)
        .await
        .expect("counter at the power-off")
        .counter;
    drop(qmp);

    let driver = QemuDriver::open(config(dir.path()), host())
        .await
        .expect("reopen");
    // The re-attach finishes that reboot: the workload runs (and counts) again.
    let r = driver.lookup_by_name("rebooter").await.expect("rebooter");
    assert_eq!(
        driver.get_state(&r, 0).await.expect("state").state,
        DomainState::Running
    );
    wait_until(Duration::from_secs(30), || async {
        counter(&driver, &r).await.filter(|&c| c != frozen)
    })
    .await;
    let p = driver.lookup_by_name("keeper").await.expect("keeper");
    assert_eq!(p.id, persistent.id, "same domain id after re-attach");
    assert_eq!(driver.pid(&p).expect("pid"), pids[0]);
    assert_eq!(
        driver.get_state(&p, 0).await.expect("state").state,
        DomainState::Running
    );
    counter_passes(&driver, &p, before).await;

    let t = driver
        .lookup_by_name("passer")
        .await
        .expect("transient kept");
    assert_eq!(
        driver.get_state(&t, 0).await.expect("state").state,
        DomainState::Paused
    );
    assert!(!driver.is_persistent(&t).await.expect("persistent?"));
    driver.resume(&t).await.expect("still manageable");

    let d = driver
        .lookup_by_name("doomed")
        .await
        .expect("doomed still defined");
    let state = driver.get_state(&d, 0).await.expect("state");
    assert_eq!(
        (state.state, state.reason),
        (DomainState::Shutoff, shutoff_reason::CRASHED)
    );

    // The next id does not collide with a re-attached one.
    let d = driver.create(&d, 0).await.expect("restart doomed");
    assert!(d.id > persistent.id.max(transient.id));
    for dom in [&p, &t, &d, &r] {
        driver.destroy(dom, 0).await.expect("destroy");
    }
}

#[tokio::test]
async fn autostart_guests_boot_when_the_driver_opens() {
    if !qemu_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let _reaper = Reaper::new(&[dir.path()]);
    let dom = {
        let driver = QemuDriver::open(config(dir.path()), host())
            .await
            .expect("open");
        let dom = driver
            .define_xml(&guest_xml("auto", Uuid::new_v4(), "pc", 1, dir.path()), 0)
            .await
            .expect("define");
        driver.set_autostart(&dom, true).await.expect("autostart");
        dom
    };
    let driver = QemuDriver::open(config(dir.path()), host())
        .await
        .expect("reopen");
    assert!(driver.get_autostart(&dom).await.expect("autostart"));
    let dom = driver.lookup_by_uuid(&dom.uuid).await.expect("lookup");
    assert!(dom.is_active(), "booted by autostart");
    driver.destroy(&dom, 0).await.expect("destroy");
}

#[tokio::test]
async fn a_kvm_domain_uses_kvm_when_the_device_works_and_tcg_otherwise() {
    if !qemu_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let _reaper = Reaper::new(&[dir.path()]);
    let driver = QemuDriver::open(config(dir.path()), host())
        .await
        .expect("open");
    let xml = guest_xml("accel", Uuid::new_v4(), "pc", 4, dir.path())
        .replace("type='qemu'", "type='kvm'");
    let dom = driver.create_xml(&xml, 0).await.expect("start");
    let pid = driver.pid(&dom).expect("pid");
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("cmdline");
    let expected = match migrated_driver_qemu::command::Accel::detect() {
        migrated_driver_qemu::command::Accel::Kvm => &b"-accel\0kvm\0"[..],
        migrated_driver_qemu::command::Accel::Tcg => &b"-accel\0tcg\0"[..],
    };
    assert!(
        cmdline.windows(expected.len()).any(|w| w == expected),
        "{}",
        String::from_utf8_lossy(&cmdline)
    );
    let first = counter_passes(&driver, &dom, 0).await;
    counter_passes(&driver, &dom, first).await;
    driver.destroy(&dom, 0).await.expect("destroy");
}

#[tokio::test]
async fn an_automatic_vnc_port_shows_in_the_live_xml_and_serves_rfb() {
    if !qemu_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let _reaper = Reaper::new(&[dir.path()]);
    let driver = QemuDriver::open(config(dir.path()), host())
        .await
        .expect("open");
    let xml = guest_xml("viewer", Uuid::new_v4(), "pc", 1, dir.path()).replace(
        "<devices>",
        "<devices><graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1'/>",
    );
    let dom = driver.create_xml(&xml, 0).await.expect("start");
    let live =
        migrated_core::xml::DomainDef::parse(&driver.get_xml_desc(&dom, 0).await.expect("xml"))
            .expect("live xml parses");
    let port = live.devices.graphics[0].port.expect("port");
    assert!((5900..6000).contains(&port), "{port}");
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port as u16))
        .await
        .expect("vnc listens");
    let mut banner = [0u8; 12];
    tokio::io::AsyncReadExt::read_exact(&mut stream, &mut banner)
        .await
        .expect("banner");
    assert!(banner.starts_with(b"RFB "), "{banner:?}");
    driver.destroy(&dom, 0).await.expect("destroy");
}

#[tokio::test]
async fn a_guest_that_shuts_down_is_shut_off_with_reason_shutdown() {
    if !qemu_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let _reaper = Reaper::new(&[dir.path()]);
    let driver = QemuDriver::open(config(dir.path()), host())
        .await
        .expect("open");
    let dom = driver
        .define_xml(&guest_xml("leaver", Uuid::new_v4(), "pc", 1, dir.path()), 0)
        .await
        .expect("define");
    let dom = driver.create(&dom, 0).await.expect("start");
    let mut events = driver.subscribe_events().expect("events");
    let pid = driver.pid(&dom).expect("pid");
    // The power button: the workload powers off, QEMU reports SHUTDOWN
    // and exits.
    counter_passes(&driver, &dom, 0).await;
    driver.shutdown(&dom, 0).await.expect("shutdown");
    let ev = next_event(&mut events).await;
    assert_eq!(
        ev.as_lifecycle().expect("a lifecycle event"),
        (LifecycleEvent::Shutdown, event_detail::SHUTDOWN_GUEST)
    );
    let ev = next_event(&mut events).await;
    assert_eq!(
        ev.as_lifecycle().expect("a lifecycle event"),
        (LifecycleEvent::Stopped, event_detail::STOPPED_SHUTDOWN)
    );
    let state = driver.get_state(&dom, 0).await.expect("state");
    assert_eq!(
        (state.state, state.reason),
        (DomainState::Shutoff, shutoff_reason::SHUTDOWN)
    );
    // QEMU exits on the guest's shutdown, as it always did.
    wait_until(Duration::from_secs(10), || async {
        (!process_exists(pid)).then_some(())
    })
    .await;
}
