//! Live migration of the workload guest through the migration engine's
//! [`Manager`] on both sides (what the daemons run), with
//! [`QemuBackend`]: direct TCP, tunnelled through an in-process stream,
//! compressed and auto-converge, parallel (multifd). After each, exactly
//! one QEMU runs the guest and its counter has moved past its value before
//! the migration; the way back leaves the guest paused
//! (`VIR_MIGRATE_PAUSED`).

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{qemu_available, wait_until, Reaper};
use migrated_core::domain::{
    paused_reason, running_reason, shutoff_reason, DomainRef, DomainState, HostIdentity,
};
use migrated_core::driver::Driver;
use migrated_core::flags::MigrateFlags;
use migrated_core::migration::{tunnel, Manager, ManagerConfig, MigrateRequest};
use migrated_driver_qemu::backend::QemuBackend;
use migrated_driver_qemu::{workload, QemuConfig, QemuDriver};
use uuid::Uuid;

struct Host {
    driver: QemuDriver,
    manager: Manager,
}

async fn host(dir: &Path, ports: std::ops::RangeInclusive<u16>) -> Host {
    host_with(dir, ports, |_| {}).await
}

/// [`host`] with `tune` applied to the manager's configuration.
async fn host_with(
    dir: &Path,
    ports: std::ops::RangeInclusive<u16>,
    tune: impl FnOnce(&mut ManagerConfig),
) -> Host {
    let identity = HostIdentity {
        hostname: format!("host-{}", Uuid::new_v4()),
        uuid: Uuid::new_v4(),
    };
    let driver = QemuDriver::open(
        QemuConfig::new(dir.join("state"), dir.join("run")),
        identity.clone(),
    )
    .await
    .expect("open driver");
    let mut mc = ManagerConfig::new(dir.join("state"), identity);
    mc.listen_address = "127.0.0.1".into();
    mc.port_range = ports;
    tune(&mut mc);
    let manager = Manager::new(mc, Arc::new(QemuBackend::new(driver.clone()))).expect("manager");
    Host { driver, manager }
}

/// Two hosts in temporary directories; their QEMUs are killed when this is
/// dropped (fields drop in order: hosts, reaper, then the directories).
struct Pair {
    a: Host,
    b: Host,
    _reaper: Reaper,
    a_dir: tempfile::TempDir,
    b_dir: tempfile::TempDir,
}

/// Hosts `a` and `b` on `ports.0..=ports.0 + span` and `ports.1..=ports.1 +
/// span`, `b`'s manager configuration `tune`d.
async fn pair(ports: (u16, u16), span: u16, tune: impl FnOnce(&mut ManagerConfig)) -> Pair {
    let (a_dir, b_dir) = (
        tempfile::tempdir().expect("a"),
        tempfile::tempdir().expect("b"),
    );
    let _reaper = Reaper::new(&[a_dir.path(), b_dir.path()]);
    let a = host(a_dir.path(), ports.0..=ports.0 + span).await;
    let b = host_with(b_dir.path(), ports.1..=ports.1 + span, tune).await;
    Pair {
        a,
        b,
        _reaper,
        a_dir,
        b_dir,
    }
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

/// Runs Begin3 … Confirm3 from `a` to `b` for `dom` with `flags`.
async fn migrate(a: &Host, b: &Host, dom: &DomainRef, flags: MigrateFlags) -> DomainRef {
    let req = MigrateRequest {
        flags,
        ..MigrateRequest::default()
    };
    let begin = a.manager.begin3(dom, req.clone()).await.expect("begin3");
    let mut dreq = req.clone();
    dreq.flags = req.destination_flags();
    dreq.dest_xml = Some(begin.xml);
    let tunnelled = flags.contains(MigrateFlags::TUNNELLED);
    let (writer, reader) = if tunnelled {
        let (w, r) = tunnel::loopback();
        (Some(w), Some(r))
    } else {
        (None, None)
    };
    let prep = b
        .manager
        .prepare3(dreq.clone(), &begin.cookie, reader)
        .await
        .expect("prepare3");
    assert_eq!(prep.uri_out.is_some(), !tunnelled);
    let mut preq = req.clone();
    preq.uri = prep.uri_out;
    let cookie = a
        .manager
        .perform3(dom, preq, &prep.cookie, writer)
        .await
        .expect("perform3");
    let fin = b
        .manager
        .finish3(&dom.name, dreq, &cookie, false)
        .await
        .expect("finish3");
    a.manager
        .confirm3(dom, req, &fin.cookie, false)
        .await
        .expect("confirm3");
    fin.dom
}

async fn round_trip(flags: MigrateFlags, ports: (u16, u16)) {
    let hosts = pair(ports, 20, |_| {}).await;
    let (a, b) = (&hosts.a, &hosts.b);
    // The first port of the destination's range is taken: Prepare moves on.
    // (When the bind fails, another process holds it: busy all the same —
    // these fixed ports lie in the kernel's ephemeral range.)
    let _busy = std::net::TcpListener::bind(("127.0.0.1", ports.1)).ok();
    let xml = format!(
        "<domain type='qemu'><name>traveller</name><uuid>{}</uuid>
           <memory unit='MiB'>64</memory><vcpu>1</vcpu>
           <os><type arch='x86_64' machine='pc'>hvm</type>
             <kernel>{}</kernel><cmdline>dirty_mib=32</cmdline></os>
         </domain>",
        Uuid::new_v4(),
        workload::build_path().display()
    );
    let src = a.driver.define_xml(&xml, 0).await.expect("define");
    let src = a.driver.create(&src, 0).await.expect("start");
    let before = counter_passes(&a.driver, &src, 0).await;
    let src_pid = a.driver.pid(&src).expect("pid");

    let dst = migrate(a, b, &src, flags).await;

    let state = b.driver.get_state(&dst, 0).await.expect("dest state");
    assert_eq!(
        (state.state, state.reason),
        (DomainState::Running, running_reason::MIGRATED)
    );
    assert!(counter_passes(&b.driver, &dst, before).await > before);
    let src_state = a.driver.get_state(&src, 0).await.expect("source state");
    assert_eq!(
        (src_state.state, src_state.reason),
        (DomainState::Shutoff, shutoff_reason::MIGRATED)
    );
    assert!(
        !Path::new(&format!("/proc/{src_pid}")).exists(),
        "source qemu gone"
    );
    assert!(
        a.manager.registry().get(&src.uuid).is_none(),
        "no source job left"
    );
    assert!(
        b.manager.registry().get(&dst.uuid).is_none(),
        "no destination job left"
    );

    // And back again, so both directions are exercised; left paused this
    // time (`--suspend`), which makes it the user's pause, as in libvirt.
    let back = migrate(b, a, &dst, flags | MigrateFlags::PAUSED).await;
    let state = a.driver.get_state(&back, 0).await.expect("state");
    assert_eq!(
        (state.state, state.reason),
        (DomainState::Paused, paused_reason::USER)
    );
    a.driver.resume(&back).await.expect("resume");
    assert_eq!(
        a.driver.get_state(&back, 0).await.expect("state").state,
        DomainState::Running
    );
    a.driver.destroy(&back, 0).await.expect("destroy");
}

#[tokio::test]
async fn live_migration_over_tcp() {
    if qemu_available() {
        round_trip(MigrateFlags::LIVE, (49300, 49330)).await;
    }
}

#[tokio::test]
async fn live_migration_tunnelled_through_the_daemon_stream() {
    if qemu_available() {
        round_trip(
            MigrateFlags::LIVE | MigrateFlags::PEER2PEER | MigrateFlags::TUNNELLED,
            (49360, 49390),
        )
        .await;
    }
}

#[tokio::test]
async fn live_migration_compressed_with_auto_converge() {
    if qemu_available() {
        round_trip(
            MigrateFlags::LIVE | MigrateFlags::COMPRESSED | MigrateFlags::AUTO_CONVERGE,
            (49420, 49450),
        )
        .await;
    }
}

#[tokio::test]
async fn live_migration_parallel_with_default_connections() {
    if qemu_available() {
        round_trip(MigrateFlags::LIVE | MigrateFlags::PARALLEL, (49580, 49610)).await;
    }
}

fn traveller_xml() -> String {
    format!(
        "<domain type='qemu'><name>faulty</name><uuid>{}</uuid>
           <memory unit='MiB'>64</memory><vcpu>1</vcpu>
           <os><type arch='x86_64' machine='pc'>hvm</type>
             <kernel>{}</kernel><cmdline>dirty_mib=32</cmdline></os>
         </domain>",
        Uuid::new_v4(),
        workload::build_path().display()
    )
}

/// Begin3 + Prepare3 with `req`; returns (cookie, destination request, uri).
async fn begin_prepare(
    a: &Host,
    b: &Host,
    dom: &DomainRef,
    req: &MigrateRequest,
) -> (Vec<u8>, MigrateRequest, Option<String>) {
    begin_prepare_with(a, b, dom, req, |xml| xml).await
}

/// [`begin_prepare`], the destination's definition being `edit` of the
/// source's.
async fn begin_prepare_with(
    a: &Host,
    b: &Host,
    dom: &DomainRef,
    req: &MigrateRequest,
    edit: impl FnOnce(String) -> String,
) -> (Vec<u8>, MigrateRequest, Option<String>) {
    let begin = a.manager.begin3(dom, req.clone()).await.expect("begin3");
    let mut dreq = req.clone();
    dreq.flags = req.destination_flags();
    dreq.dest_xml = Some(edit(begin.xml));
    let prep = b
        .manager
        .prepare3(dreq.clone(), &begin.cookie, None)
        .await
        .expect("prepare3");
    (prep.cookie, dreq, prep.uri_out)
}

/// Perform's `result` is the abort's error; then [`cancel_and_check`].
async fn aborted_then_check(
    result: migrated_core::Result<Vec<u8>>,
    a: &Host,
    b: &Host,
    src: &DomainRef,
    dreq: MigrateRequest,
    req: MigrateRequest,
) {
    let err = result.expect_err("aborted");
    assert_eq!(
        err.code(),
        migrated_core::error::ErrorCode::OperationAborted,
        "{err}"
    );
    cancel_and_check(a, b, src, dreq, req).await;
}

/// After a failed Perform: the cancel calls of the sequencer, then the
/// checks every fault test shares.
async fn cancel_and_check(
    a: &Host,
    b: &Host,
    src: &DomainRef,
    dreq: MigrateRequest,
    req: MigrateRequest,
) {
    let _ = b.manager.finish3(&src.name, dreq, &[], true).await;
    // Without change protection a failed Perform already ended the source
    // job, and Confirm has nothing left to do: either answer is fine.
    let _ = a.manager.confirm3(src, req, &[], true).await;
    let state = a.driver.get_state(src, 0).await.expect("source state");
    assert_eq!(state.state, DomainState::Running, "source runs again");
    let now = counter(&a.driver, src).await.expect("counter");
    counter_passes(&a.driver, src, now).await;
    let dest_running = b
        .driver
        .lookup_by_uuid(&src.uuid)
        .await
        .map(|d| d.is_active())
        .unwrap_or(false);
    assert!(!dest_running, "no destination copy runs");
    assert!(
        a.manager.registry().get(&src.uuid).is_none(),
        "no source job left"
    );
    assert!(
        b.manager.registry().get(&src.uuid).is_none(),
        "no destination job left"
    );
}

#[tokio::test]
async fn killing_the_destination_qemu_during_prepare_keeps_the_source_running() {
    if !qemu_available() {
        return;
    }
    let hosts = pair((49500, 49520), 10, |_| {}).await;
    let (a, b) = (&hosts.a, &hosts.b);
    let src = a
        .driver
        .create_xml(&traveller_xml(), 0)
        .await
        .expect("start");
    counter_passes(&a.driver, &src, 0).await;
    // Change protection: the job, and the guest's pre-migration state
    // (running), date from Begin.
    let req = MigrateRequest {
        flags: MigrateFlags::LIVE | MigrateFlags::CHANGE_PROTECTION,
        ..MigrateRequest::default()
    };
    let (cookie, dreq, uri) = begin_prepare(a, b, &src, &req).await;
    // The operator pauses the guest before Perform: the failed migration
    // resumes it anyway, as libvirt restores the pre-migration state.
    a.driver.suspend(&src).await.expect("suspend during Begin3");
    let dest = b
        .driver
        .lookup_by_uuid(&src.uuid)
        .await
        .expect("incoming guest");
    let pid = b.driver.pid(&dest).expect("dest pid");
    // SAFETY: kill(2) on the destination QEMU this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);

    let mut preq = req.clone();
    preq.uri = uri;
    let err = a
        .manager
        .perform3(&src, preq, &cookie, None)
        .await
        .expect_err("nobody receives");
    assert!(!err.to_string().is_empty());
    cancel_and_check(a, b, &src, dreq, req).await;
    let state = a.driver.get_state(&src, 0).await.expect("source state");
    assert_eq!(state.reason, running_reason::MIGRATION_CANCELED);
    a.driver.destroy(&src, 0).await.expect("destroy");
}

#[tokio::test]
async fn aborting_a_slow_migration_keeps_the_source_running() {
    if qemu_available() {
        abort_slow_migration(MigrateFlags::LIVE, (49540, 49560)).await;
    }
}

#[tokio::test]
async fn aborting_a_slow_parallel_migration_keeps_the_source_running() {
    if qemu_available() {
        abort_slow_migration(MigrateFlags::LIVE | MigrateFlags::PARALLEL, (49640, 49660)).await;
    }
}

/// Aborts a migration in `flags` throttled to 1 MiB/s three seconds in. The
/// destination's abandoned-Prepare timeout is 1 s: QEMU receives without
/// the manager counting bytes, yet the flowing stream must keep the
/// incoming guest (it was killed after the timeout before).
async fn abort_slow_migration(flags: MigrateFlags, ports: (u16, u16)) {
    let hosts = pair(ports, 10, |mc| {
        mc.prepare_timeout = Some(Duration::from_secs(1));
    })
    .await;
    let (a, b) = (&hosts.a, &hosts.b);
    let src = a
        .driver
        .create_xml(&traveller_xml(), 0)
        .await
        .expect("start");
    counter_passes(&a.driver, &src, 0).await;
    // 1 MiB/s for a guest dirtying 32 MiB: it would never finish on its own.
    let req = MigrateRequest {
        flags,
        bandwidth_mib_s: Some(1),
        ..MigrateRequest::default()
    };
    let (cookie, dreq, uri) = begin_prepare(a, b, &src, &req).await;
    let mut preq = req.clone();
    preq.uri = uri;
    let perform = a.manager.perform3(&src, preq, &cookie, None);
    let abort = async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let incoming = b.driver.lookup_by_uuid(&src.uuid).await;
        assert!(
            incoming.is_ok_and(|d| d.is_active()),
            "the receiving guest outlived the prepare timeout"
        );
        a.manager.abort_job(&src).expect("abort");
    };
    let (result, ()) = tokio::join!(perform, abort);
    aborted_then_check(result, a, b, &src, dreq, req).await;
    a.driver.destroy(&src, 0).await.expect("destroy");
}

/// Returns once `src`'s outgoing job reports disk data copied.
async fn mirror_copying(a: &Host, src: &DomainRef) {
    wait_until(Duration::from_secs(30), || async {
        let stats = a.manager.registry().get(&src.uuid)?.stats();
        (stats.disk_processed > 0).then_some(())
    })
    .await;
}

/// Size of the data disk of the storage migration tests.
const DISK_BYTES: usize = 8 << 20;

/// A byte pattern no fresh image holds: every 4 KiB block names its index.
fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((i / 4096) as u8) ^ (i as u8).wrapping_mul(31) | 1)
        .collect()
}

/// The workload guest with a raw data disk `vdb` at `image`.
fn guest_with_disk(name: &str, image: &Path) -> String {
    format!(
        "<domain type='qemu'><name>{name}</name><uuid>{}</uuid>
           <memory unit='MiB'>64</memory><vcpu>1</vcpu>
           <os><type arch='x86_64' machine='pc'>hvm</type>
             <kernel>{}</kernel><cmdline>dirty_mib=8</cmdline></os>
           <devices>
             <disk type='file' device='disk'><driver name='qemu' type='raw'/>
               <source file='{}'/><target dev='vdb' bus='virtio'/></disk>
           </devices>
         </domain>",
        Uuid::new_v4(),
        workload::build_path().display(),
        image.display()
    )
}

/// [`begin_prepare`] with the destination's definition naming `dst_img`
/// where the source's names `src_img`.
async fn begin_prepare_to(
    a: &Host,
    b: &Host,
    dom: &DomainRef,
    req: &MigrateRequest,
    src_img: &Path,
    dst_img: &Path,
) -> (Vec<u8>, MigrateRequest, Option<String>) {
    begin_prepare_with(a, b, dom, req, |xml| {
        xml.replace(
            src_img.to_str().expect("utf-8"),
            dst_img.to_str().expect("utf-8"),
        )
    })
    .await
}

/// The source's block jobs and the names of its block nodes.
async fn block_state(driver: &QemuDriver, dom: &DomainRef) -> (usize, Vec<String>) {
    use migrated_driver_qemu::qmp::commands::{QueryBlockJobs, QueryNamedBlockNodes};
    let qmp = driver.qmp(dom).expect("qmp");
    let jobs = qmp
        .execute(&QueryBlockJobs)
        .await
        .expect("query-block-jobs");
    let nodes = qmp
        .execute(&QueryNamedBlockNodes { flat: true })
        .await
        .expect("query-named-block-nodes");
    (
        jobs.len(),
        nodes.into_iter().filter_map(|n| n.node_name).collect(),
    )
}

/// NON_SHARED_DISK between two managers: the destination's image (same
/// size, zeros) ends up with the source's bytes, and the job reported the
/// disk figures. Then a second migration of another guest, throttled to
/// 1 MiB/s, loses its destination QEMU in the middle of the mirror, and a
/// third one is aborted there: each time the source runs on with no block
/// job and no NBD node left, its image intact.
#[tokio::test]
async fn storage_copy_and_a_destination_killed_during_the_mirror() {
    if !qemu_available() {
        return;
    }
    let hosts = pair((49700, 49720), 15, |_| {}).await;
    let (a, b) = (&hosts.a, &hosts.b);
    let (a_dir, b_dir) = (&hosts.a_dir, &hosts.b_dir);
    let data = pattern(DISK_BYTES);
    let (src_img, dst_img) = (a_dir.path().join("data.raw"), b_dir.path().join("data.raw"));
    std::fs::write(&src_img, &data).expect("source image");
    std::fs::write(&dst_img, vec![0u8; DISK_BYTES]).expect("destination image");

    let src = a
        .driver
        .create_xml(&guest_with_disk("copied", &src_img), 0)
        .await
        .expect("start");
    counter_passes(&a.driver, &src, 0).await;
    let req = MigrateRequest {
        flags: MigrateFlags::LIVE | MigrateFlags::NON_SHARED_DISK,
        ..MigrateRequest::default()
    };
    let (cookie, dreq, uri) = begin_prepare_to(a, b, &src, &req, &src_img, &dst_img).await;
    let mut preq = req.clone();
    preq.uri = uri;
    let cookie = a
        .manager
        .perform3(&src, preq, &cookie, None)
        .await
        .expect("perform3");
    // The job lives on until Confirm.
    let stats = a
        .manager
        .registry()
        .get(&src.uuid)
        .expect("source job")
        .stats();
    assert_eq!(stats.disk_total, DISK_BYTES as u64, "{stats:?}");
    assert_eq!(stats.disk_remaining, 0, "{stats:?}");
    let fin = b
        .manager
        .finish3(&src.name, dreq, &cookie, false)
        .await
        .expect("finish3");
    a.manager
        .confirm3(&src, req.clone(), &fin.cookie, false)
        .await
        .expect("confirm3");
    counter_passes(&b.driver, &fin.dom, 0).await;
    b.driver.destroy(&fin.dom, 0).await.expect("destroy");
    assert!(
        std::fs::read(&dst_img).expect("destination image") == data,
        "the destination image holds the source's bytes"
    );

    // The second guest: its destination QEMU dies while the mirror copies.
    let data = pattern(DISK_BYTES / 2);
    std::fs::write(&src_img, &data).expect("source image");
    std::fs::write(&dst_img, vec![0u8; DISK_BYTES / 2]).expect("destination image");
    let src = a
        .driver
        .create_xml(&guest_with_disk("orphaned", &src_img), 0)
        .await
        .expect("start");
    counter_passes(&a.driver, &src, 0).await;
    let req = MigrateRequest {
        bandwidth_mib_s: Some(1),
        ..req
    };
    let (cookie, dreq, uri) = begin_prepare_to(a, b, &src, &req, &src_img, &dst_img).await;
    let dest_pid = b
        .driver
        .pid(&b.driver.lookup_by_uuid(&src.uuid).await.expect("incoming"))
        .expect("dest pid");
    let mut preq = req.clone();
    preq.uri = uri;
    let perform = a.manager.perform3(&src, preq, &cookie, None);
    let kill = async {
        // Killed once the mirror has copied something (4 MiB at 1 MiB/s
        // takes seconds).
        mirror_copying(a, &src).await;
        // SAFETY: kill(2) on the destination QEMU this test started.
        assert_eq!(unsafe { libc::kill(dest_pid, libc::SIGKILL) }, 0);
    };
    let (result, ()) = tokio::join!(perform, kill);
    let err = result.expect_err("the destination died");
    eprintln!("perform failed as it must: {err}");
    assert_eq!(
        err.code(),
        migrated_core::error::ErrorCode::OperationFailed,
        "{err}"
    );
    cancel_and_check(a, b, &src, dreq, req.clone()).await;
    let (jobs, nodes) = block_state(&a.driver, &src).await;
    assert_eq!(jobs, 0, "no block job left");
    assert!(
        nodes.iter().all(|n| !n.starts_with("migration-")),
        "no NBD node left: {nodes:?}"
    );

    // The same guest again, aborted (domjobabort) during the mirror.
    let (cookie, dreq, uri) = begin_prepare_to(a, b, &src, &req, &src_img, &dst_img).await;
    let mut preq = req.clone();
    preq.uri = uri;
    let perform = a.manager.perform3(&src, preq, &cookie, None);
    let abort = async {
        mirror_copying(a, &src).await;
        a.manager.abort_job(&src).expect("abort");
    };
    let (result, ()) = tokio::join!(perform, abort);
    aborted_then_check(result, a, b, &src, dreq, req).await;
    let (jobs, nodes) = block_state(&a.driver, &src).await;
    assert_eq!(jobs, 0, "no block job left after the abort");
    assert!(
        nodes.iter().all(|n| !n.starts_with("migration-")),
        "no NBD node left after the abort: {nodes:?}"
    );
    a.driver.destroy(&src, 0).await.expect("destroy");
    assert!(
        std::fs::read(&src_img).expect("source image") == data,
        "the source image is intact"
    );
}
