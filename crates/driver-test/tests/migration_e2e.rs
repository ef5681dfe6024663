//! In-process end-to-end migrations: two TestDriver + Manager pairs (distinct
//! host UUIDs and state dirs) run begin3 → prepare3 → perform3 → finish3 →
//! confirm3 over real loopback TCP or a tokio duplex "tunnel", with the
//! failure rule of libvirt-wire.md §8.6, as the client sequencer applies it.

use std::sync::Arc;
use std::time::Duration;

use migrated_core::domain::{DomainRef, DomainState, HostIdentity};
use migrated_core::driver::Driver;
use migrated_core::error::ErrorCode;
use migrated_core::flags::MigrateFlags;
use migrated_core::job::JobType;
use migrated_core::migration::{
    tunnel, Manager, ManagerConfig, MigrateRequest, TunnelReader, TunnelWriter,
};
use migrated_core::{Error, Result};
use migrated_driver_test::{TestBackend, TestDriver};
use tempfile::TempDir;
use uuid::Uuid;

struct Host {
    driver: TestDriver,
    mgr: Manager,
    _dir: TempDir,
}

fn host(n: u128) -> Host {
    let dir = tempfile::tempdir().expect("tempdir");
    let id = HostIdentity {
        hostname: format!("host{n}"),
        uuid: Uuid::from_u128(n),
    };
    let driver = TestDriver::new(dir.path(), id.clone()).expect("driver");
    let backend = Arc::new(TestBackend::new(driver.clone()));
    let mgr = Manager::new(ManagerConfig::new(dir.path(), id), backend).expect("manager");
    Host {
        driver,
        mgr,
        _dir: dir,
    }
}

fn guest_xml(name: &str, extra_metadata: &str) -> String {
    format!(
        "<domain type='test'><name>{name}</name><memory unit='MiB'>16</memory><vcpu>2</vcpu>\
         <metadata><migrated:workload xmlns:migrated='https://migrated.dev/xmlns/test/1' \
         dirty_pages_per_sec='20000' working_set_mib='4'/>{extra_metadata}</metadata>\
         <os><type>hvm</type></os></domain>"
    )
}

/// Defines and starts a guest whose memory already holds data.
async fn running_guest(h: &Host, name: &str, extra_metadata: &str) -> DomainRef {
    let dom = h
        .driver
        .define_xml(&guest_xml(name, extra_metadata), 0)
        .await
        .expect("define");
    let dom = h.driver.create(&dom, 0).await.expect("start");
    let mem = h
        .driver
        .memory(&dom.uuid)
        .expect("running guest has memory");
    for page in (0..mem.page_count()).step_by(3) {
        mem.write_page(page, &[page as u8 | 1; 4096]).expect("fill");
    }
    // Let the workload dirty pages for a moment.
    tokio::time::sleep(Duration::from_millis(50)).await;
    dom
}

async fn state_of(h: &Host, uuid: &Uuid) -> Option<DomainState> {
    let dom = h.driver.lookup_by_uuid(uuid).await.ok()?;
    Some(h.driver.get_state(&dom, 0).await.expect("state").state)
}

/// The five steps with the failure rule of §8.6; returns the guest on the
/// destination.
async fn migrate(
    src: &Host,
    dst: &Host,
    dom: &DomainRef,
    req: MigrateRequest,
    tunnel: bool,
) -> Result<DomainRef> {
    let protect = req.has(MigrateFlags::CHANGE_PROTECTION);
    let begin = src.mgr.begin3(dom, req.clone()).await?;
    let mut dreq = req.clone();
    dreq.flags = req.destination_flags();
    dreq.dest_xml = Some(begin.xml.clone());
    let (reader, writer): (Option<TunnelReader>, Option<TunnelWriter>) = if tunnel {
        let (w, r) = tunnel::loopback();
        (Some(r), Some(w))
    } else {
        (None, None)
    };
    let prep = match dst.mgr.prepare3(dreq.clone(), &begin.cookie, reader).await {
        Ok(p) => p,
        Err(err) => {
            if protect {
                src.mgr.confirm3(dom, req, &[], true).await?;
            }
            return Err(err);
        }
    };
    let mut preq = req.clone();
    if let Some(uri) = &prep.uri_out {
        preq.uri = Some(uri.clone());
    }
    let dname = req.dname.clone().unwrap_or_else(|| dom.name.clone());
    let cookie = match src.mgr.perform3(dom, preq, &prep.cookie, writer).await {
        Ok(c) => c,
        Err(err) => {
            let fin = dst.mgr.finish3(&dname, dreq, &[], true).await;
            assert!(
                matches!(fin, Err(Error::MigrateFinishOk)),
                "cancelled finish answers MIGRATE_FINISH_OK: {fin:?}"
            );
            return Err(err);
        }
    };
    match dst.mgr.finish3(&dname, dreq, &cookie, false).await {
        Ok(fin) => {
            src.mgr.confirm3(dom, req, &fin.cookie, false).await?;
            Ok(fin.dom)
        }
        Err(err) => {
            src.mgr.confirm3(dom, req, &[], true).await?;
            Err(err)
        }
    }
}

fn live(extra: MigrateFlags) -> MigrateRequest {
    MigrateRequest {
        flags: MigrateFlags::LIVE | MigrateFlags::CHANGE_PROTECTION | extra,
        ..MigrateRequest::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_migration_over_tcp_moves_a_dirtying_guest() {
    let (a, b) = (host(1), host(2));
    let dom = running_guest(&a, "web1", "").await;
    let moved = migrate(&a, &b, &dom, live(MigrateFlags::empty()), false)
        .await
        .expect("migration succeeds");
    assert_eq!(moved.uuid, dom.uuid);
    assert_eq!(state_of(&b, &dom.uuid).await, Some(DomainState::Running));
    assert_eq!(
        state_of(&a, &dom.uuid).await,
        Some(DomainState::Shutoff),
        "the persistent config stays on the source without UNDEFINE_SOURCE"
    );
    assert!(
        !b.driver.is_persistent(&moved).await.expect("persistent?"),
        "no PERSIST_DEST"
    );
    let stats = a.mgr.registry().stats(&dom.uuid, true);
    assert_eq!(stats.job_type, JobType::Completed);
    assert!(stats.memory_iteration >= 1);
    assert!(stats.data_processed > 4 << 20, "{stats:?}");
    let phases: Vec<_> = stats.timeline.iter().map(|t| t.phase).collect();
    assert_eq!(phases, vec!["begin3", "perform3", "perform3_done"]);
    assert!(!a.mgr.registry().is_locked(&dom.uuid));
    assert!(!b.mgr.registry().is_locked(&dom.uuid));

    // And back again, this time transient on arrival.
    migrate(&b, &a, &moved, live(MigrateFlags::empty()), false)
        .await
        .expect("migrating back");
    assert_eq!(state_of(&a, &dom.uuid).await, Some(DomainState::Running));
    assert_eq!(
        state_of(&b, &dom.uuid).await,
        None,
        "transient guest is gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_arrives_identical_and_paused_with_the_paused_flag() {
    let (a, b) = (host(1), host(2));
    let dom = running_guest(&a, "web2", "").await;
    let mut req = live(
        MigrateFlags::PAUSED
            | MigrateFlags::PERSIST_DEST
            | MigrateFlags::UNDEFINE_SOURCE
            | MigrateFlags::COMPRESSED,
    );
    req.dname = Some("web2-moved".into());
    let moved = migrate(&a, &b, &dom, req, false).await.expect("migration");
    assert_eq!(moved.name, "web2-moved");
    assert_eq!(state_of(&b, &dom.uuid).await, Some(DomainState::Paused));
    assert!(b.driver.is_persistent(&moved).await.expect("persistent"));
    assert_eq!(
        state_of(&a, &dom.uuid).await,
        None,
        "undefined on the source"
    );
    let src_stats = a.mgr.registry().stats(&dom.uuid, true);
    assert!(src_stats.compression_pages > 0, "{src_stats:?}");
    // The destination verified the source's checksum; check it independently:
    // the paused copy's memory must hash to what the receiver accepted, and a
    // second look must not change it.
    let mem = b.driver.memory(&dom.uuid).expect("paused guest has memory");
    assert_eq!(mem.checksum(), mem.checksum());
    assert!(mem.allocated_pages() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnelled_migration_moves_the_same_bytes_over_a_duplex() {
    let (a, b) = (host(1), host(2));
    let dom = running_guest(&a, "web3", "").await;
    let src_mem = a.driver.memory(&dom.uuid).expect("memory");
    let req = live(MigrateFlags::PEER2PEER | MigrateFlags::TUNNELLED | MigrateFlags::PAUSED);
    // Capture the source memory at the moment it is paused: the source stops
    // the guest at Confirm, so compare right after the migration ends with the
    // destination still paused (PAUSED).
    let moved = migrate(&a, &b, &dom, req, true)
        .await
        .expect("tunnelled migration");
    assert_eq!(state_of(&b, &moved.uuid).await, Some(DomainState::Paused));
    let dst_mem = b.driver.memory(&dom.uuid).expect("memory");
    assert_eq!(src_mem.checksum(), dst_mem.checksum(), "identical memory");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnelled_without_peer2peer_is_refused_naming_both() {
    let (a, b) = (host(1), host(2));
    let dom = running_guest(&a, "web4", "").await;
    let err = migrate(&a, &b, &dom, live(MigrateFlags::TUNNELLED), true)
        .await
        .expect_err("refused");
    assert_eq!(err.code(), ErrorCode::ArgumentUnsupported);
    let msg = err.to_string();
    assert!(
        msg.contains("TUNNELLED") && msg.contains("PEER2PEER"),
        "{msg}"
    );
    assert!(!a.mgr.registry().is_locked(&dom.uuid));
}

/// Hypervisor TLS is the QEMU driver's; the test driver names the flag it
/// cannot honour, and the guest stays where it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_is_refused_by_the_test_driver() {
    let (a, b) = (host(1), host(2));
    let dom = running_guest(&a, "web-tls", "").await;
    let err = migrate(&a, &b, &dom, live(MigrateFlags::TLS), true)
        .await
        .expect_err("refused");
    assert_eq!(err.code(), ErrorCode::ArgumentUnsupported);
    let msg = err.to_string();
    assert!(msg.contains("TLS") && msg.contains("Test"), "{msg}");
    assert_eq!(state_of(&a, &dom.uuid).await, Some(DomainState::Running));
    assert!(!a.mgr.registry().is_locked(&dom.uuid));
}

async fn check_one_copy_then_retry(a: &Host, b: &Host, dom: &DomainRef) {
    assert_eq!(
        state_of(a, &dom.uuid).await,
        Some(DomainState::Running),
        "the source runs the guest again"
    );
    assert_eq!(
        state_of(b, &dom.uuid).await,
        None,
        "nothing left on the destination"
    );
    assert!(
        !a.mgr.registry().is_locked(&dom.uuid),
        "source job unlocked"
    );
    assert!(
        !b.mgr.registry().is_locked(&dom.uuid),
        "destination job unlocked"
    );
    migrate(a, b, dom, live(MigrateFlags::empty()), false)
        .await
        .expect("a second attempt succeeds");
    assert_eq!(state_of(b, &dom.uuid).await, Some(DomainState::Running));
}

const FAULT: &str = "<migrated:fault xmlns:migrated='https://migrated.dev/xmlns/test/1' at='{AT}' after_bytes='65536'/>";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepare_failure_leaves_the_source_running_and_unlocked() {
    let (a, b) = (host(1), host(2));
    let dom = running_guest(&a, "fp", &FAULT.replace("{AT}", "prepare")).await;
    let err = migrate(&a, &b, &dom, live(MigrateFlags::empty()), false)
        .await
        .expect_err("prepare fails");
    assert!(err.to_string().contains("injected fault"), "{err}");
    check_one_copy_then_retry(&a, &b, &dom).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn perform_failure_midway_resumes_the_source() {
    let (a, b) = (host(1), host(2));
    let dom = running_guest(&a, "fperf", &FAULT.replace("{AT}", "perform")).await;
    let err = migrate(&a, &b, &dom, live(MigrateFlags::empty()), false)
        .await
        .expect_err("perform fails");
    assert_eq!(err.code(), ErrorCode::OperationFailed, "{err}");
    assert_eq!(
        a.mgr.registry().stats(&dom.uuid, true).job_type,
        JobType::Failed
    );
    check_one_copy_then_retry(&a, &b, &dom).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finish_failure_resumes_source() {
    let (a, b) = (host(1), host(2));
    let dom = running_guest(&a, "ffin", &FAULT.replace("{AT}", "finish")).await;
    let err = migrate(&a, &b, &dom, live(MigrateFlags::empty()), false)
        .await
        .expect_err("finish fails");
    assert!(err.to_string().contains("injected fault"), "{err}");
    check_one_copy_then_retry(&a, &b, &dom).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_during_perform_resumes_the_source() {
    let (a, b) = (Arc::new(host(3)), Arc::new(host(4)));
    let dom = running_guest(&a, "slow2", "").await;
    let mut req = live(MigrateFlags::empty());
    req.bandwidth_mib_s = Some(1);
    let task = {
        let (a, b, dom) = (Arc::clone(&a), Arc::clone(&b), dom.clone());
        tokio::spawn(async move { migrate(&a, &b, &dom, req, false).await })
    };
    // 16 MiB at 1 MiB/s leaves plenty of time: wait until data flows, then abort.
    for _ in 0..200 {
        if a.mgr.registry().stats(&dom.uuid, false).data_processed > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    a.mgr.abort_job(&dom).expect("abort accepted");
    let err = task.await.expect("task").expect_err("aborted");
    assert_eq!(err.code(), ErrorCode::OperationAborted, "{err}");
    assert_eq!(
        a.mgr.registry().stats(&dom.uuid, true).job_type,
        JobType::Cancelled
    );
    assert_eq!(state_of(&b, &dom.uuid).await, None);
    assert_eq!(state_of(&a, &dom.uuid).await, Some(DomainState::Running));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_migration_moves_only_the_config() {
    let (a, b) = (host(1), host(2));
    let dom = a
        .driver
        .define_xml(&guest_xml("cold", ""), 0)
        .await
        .expect("define");
    let flags = MigrateFlags::OFFLINE | MigrateFlags::PERSIST_DEST | MigrateFlags::UNDEFINE_SOURCE;
    // The sequencer skips Perform for offline migrations (§8.5).
    let r = req_of(flags);
    let begin = a.mgr.begin3(&dom, r.clone()).await.expect("begin");
    let mut dreq = r.clone();
    dreq.dest_xml = Some(begin.xml);
    let prep = b
        .mgr
        .prepare3(dreq.clone(), &begin.cookie, None)
        .await
        .expect("prepare");
    assert_eq!(prep.uri_out, None);
    let fin = b
        .mgr
        .finish3("cold", dreq, &prep.cookie, false)
        .await
        .expect("finish");
    a.mgr
        .confirm3(&dom, r, &fin.cookie, false)
        .await
        .expect("confirm");
    assert_eq!(state_of(&b, &dom.uuid).await, Some(DomainState::Shutoff));
    assert!(b.driver.is_persistent(&fin.dom).await.expect("persistent"));
    assert_eq!(
        state_of(&a, &dom.uuid).await,
        None,
        "undefined on the source"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_with_live_on_a_running_guest_is_refused() {
    let (a, b) = (host(1), host(2));
    let dom = running_guest(&a, "hot", "").await;
    let err = migrate(
        &a,
        &b,
        &dom,
        live(MigrateFlags::OFFLINE | MigrateFlags::PERSIST_DEST),
        false,
    )
    .await
    .expect_err("contradiction");
    let msg = err.to_string();
    assert!(msg.contains("OFFLINE") && msg.contains("LIVE"), "{msg}");
    assert_eq!(state_of(&a, &dom.uuid).await, Some(DomainState::Running));
}

fn req_of(flags: MigrateFlags) -> MigrateRequest {
    MigrateRequest {
        flags,
        ..MigrateRequest::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_migrate_without_flags_is_live_by_driver_default() {
    let (a, b) = (host(1), host(2));
    let dom = running_guest(&a, "plain", "").await;
    migrate(&a, &b, &dom, req_of(MigrateFlags::empty()), false)
        .await
        .expect("plain migrate works");
    assert_eq!(state_of(&b, &dom.uuid).await, Some(DomainState::Running));
    let stats = a.mgr.registry().stats(&dom.uuid, true);
    assert!(
        stats.downtime_ms < stats.time_elapsed_ms || stats.time_elapsed_ms == 0,
        "live: the guest ran during most of the transfer ({stats:?})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destination_xml_with_a_memory_change_is_refused_and_nothing_moves() {
    let (a, b) = (host(1), host(2));
    let dom = running_guest(&a, "abi", "").await;
    let xml = a
        .driver
        .get_xml_desc(&dom, migrated_core::flags::xml::MIGRATABLE)
        .await
        .expect("xml");
    let mut r = live(MigrateFlags::empty());
    r.dest_xml = Some(xml.replace("16384", "32768"));
    let err = migrate(&a, &b, &dom, r, false)
        .await
        .expect_err("memory change");
    assert_eq!(err.code(), ErrorCode::ConfigUnsupported);
    assert!(err.to_string().contains("memory"), "{err}");
    assert_eq!(state_of(&a, &dom.uuid).await, Some(DomainState::Running));
    assert_eq!(state_of(&b, &dom.uuid).await, None);
    assert!(!a.mgr.registry().is_locked(&dom.uuid));

    let mut r = live(MigrateFlags::empty());
    r.dest_xml = Some(xml.replace("<name>abi</name>", "<name>abi</name><title>moved</title>"));
    let moved = migrate(&a, &b, &dom, r, false)
        .await
        .expect("host-side change");
    let dst_xml = b.driver.get_xml_desc(&moved, 0).await.expect("xml");
    assert!(dst_xml.contains("<title>moved</title>"), "{dst_xml}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_stats_show_progress_while_perform_runs_under_a_bandwidth_limit() {
    let (a, b) = (Arc::new(host(1)), Arc::new(host(2)));
    let dom = running_guest(&a, "watched", "").await;
    let mut r = live(MigrateFlags::empty());
    r.bandwidth_mib_s = Some(8);
    let started = std::time::Instant::now();
    let task = {
        let (a, b, dom) = (Arc::clone(&a), Arc::clone(&b), dom.clone());
        tokio::spawn(async move { migrate(&a, &b, &dom, r, false).await })
    };
    let mut seen = Vec::new();
    while !task.is_finished() {
        let s = a.mgr.registry().stats(&dom.uuid, false);
        if s.job_type == JobType::Unbounded && s.data_processed > 0 {
            seen.push((s.data_processed, s.data_remaining));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    task.await.expect("task").expect("migration");
    let elapsed = started.elapsed();
    // About 6 MiB of data pages at 8 MiB/s: well over half a second.
    assert!(elapsed > Duration::from_millis(500), "{elapsed:?}");
    assert!(seen.len() >= 3, "progress was visible: {seen:?}");
    assert!(
        seen.windows(2).all(|w| w[0].0 <= w[1].0),
        "monotonic: {seen:?}"
    );
    assert!(seen.iter().any(|&(_, remaining)| remaining > 0));
    let info = a.mgr.registry().stats(&dom.uuid, true).to_job_info();
    assert_eq!(info.job_type, JobType::Completed as i32);
    assert_eq!(info.data_remaining, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_converge_throttles_a_guest_that_outruns_the_link() {
    let (a, b) = (host(1), host(2));
    let dom = a
        .driver
        .define_xml(
            "<domain type='test'><name>busy</name><memory unit='MiB'>16</memory>\
              <metadata><migrated:workload xmlns:migrated='https://migrated.dev/xmlns/test/1' \
              dirty_pages_per_sec='40000' working_set_mib='12'/></metadata>\
              <os><type>hvm</type></os></domain>",
            0,
        )
        .await
        .expect("define");
    let dom = a.driver.create(&dom, 0).await.expect("start");
    let mem = a.driver.memory(&dom.uuid).expect("memory");
    for _ in 0..500 {
        if mem.dirty_count() > 1000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // 1 ms at 64 MiB/s is 16 pages: this guest cannot converge on its own,
    // however slowly a loaded machine runs its workload thread.
    a.mgr
        .registry()
        .set_max_downtime(&dom.uuid, 1)
        .expect("downtime");
    let mut r = live(MigrateFlags::AUTO_CONVERGE);
    r.bandwidth_mib_s = Some(64);
    r.auto_converge_initial = Some(50);
    r.auto_converge_increment = Some(25);
    migrate(&a, &b, &dom, r, false).await.expect("converges");
    let stats = a.mgr.registry().stats(&dom.uuid, true);
    assert!(stats.auto_converge_throttle >= 50, "{stats:?}");
    assert!(stats.memory_iteration >= 2, "{stats:?}");
    let mem = b.driver.memory(&dom.uuid).expect("moved");
    assert_eq!(
        mem.throttle_percent(),
        0,
        "the destination runs unthrottled"
    );
}

/// A tunnel whose destination end fails after `limit` bytes, as a cut
/// daemon-to-daemon connection does.
fn cut_tunnel(limit: usize) -> (TunnelWriter, TunnelReader) {
    let (writer, mut packets) = TunnelWriter::channel();
    let (tx, reader) = TunnelReader::channel();
    tokio::spawn(async move {
        let mut left = limit;
        while let Some(mut packet) = packets.recv().await {
            let n = packet.len().min(left);
            left -= n;
            if tx.send(Ok(packet.split_to(n))).await.is_err() {
                return;
            }
            if left == 0 {
                let cut =
                    std::io::Error::new(std::io::ErrorKind::ConnectionReset, "connection cut");
                let _ = tx.send(Err(cut)).await;
                return;
            }
        }
    });
    (writer, reader)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_tunnel_leaves_one_running_copy_and_a_retry_works() {
    let (a, b) = (host(1), host(2));
    let dom = running_guest(&a, "cut", "").await;
    let r = live(MigrateFlags::PEER2PEER | MigrateFlags::TUNNELLED);
    let begin = a.mgr.begin3(&dom, r.clone()).await.expect("begin");
    let mut dreq = r.clone();
    dreq.dest_xml = Some(begin.xml);
    let (writer, reader) = cut_tunnel(1 << 20);
    let prep = b
        .mgr
        .prepare3(dreq.clone(), &begin.cookie, Some(reader))
        .await
        .expect("prepare");
    let err = a
        .mgr
        .perform3(&dom, r.clone(), &prep.cookie, Some(writer))
        .await
        .expect_err("the tunnel broke");
    assert_eq!(err.code(), ErrorCode::OperationFailed, "{err}");
    let fin = b.mgr.finish3("cut", dreq, &[], true).await;
    assert!(matches!(fin, Err(Error::MigrateFinishOk)), "{fin:?}");
    check_one_copy_then_retry(&a, &b, &dom).await;
}

/// Timing probe for large guests (run with `--ignored --nocapture`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "timing probe, several seconds"]
async fn large_guest_timing_probe() {
    for (mib, fill) in [(1024u64, false), (256, true)] {
        let (a, b) = (host(1), host(2));
        let xml = format!(
            "<domain type='test'><name>big{mib}</name><memory unit='MiB'>{mib}</memory>\
             <os><type>hvm</type></os></domain>"
        );
        let dom = a.driver.define_xml(&xml, 0).await.expect("define");
        let dom = a.driver.create(&dom, 0).await.expect("start");
        if fill {
            let mem = a.driver.memory(&dom.uuid).expect("memory");
            for page in 0..mem.page_count() {
                mem.write_page(page, &[page as u8 | 1; 4096]).expect("fill");
            }
        }
        let started = std::time::Instant::now();
        migrate(&a, &b, &dom, live(MigrateFlags::empty()), false)
            .await
            .expect("migration");
        let stats = a.mgr.registry().stats(&dom.uuid, true);
        println!(
            "{mib} MiB (filled: {fill}): {:?}, downtime {} ms, {} bytes",
            started.elapsed(),
            stats.downtime_ms,
            stats.data_processed
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_whose_stream_dies_cleans_up_without_waiting_for_finish() {
    let (a, b) = (host(1), host(2));
    let dom = running_guest(&a, "orphan", "").await;
    let r = live(MigrateFlags::PEER2PEER | MigrateFlags::TUNNELLED);
    let begin = a.mgr.begin3(&dom, r.clone()).await.expect("begin");
    let mut dreq = r.clone();
    dreq.dest_xml = Some(begin.xml);
    let (w, rd) = tunnel::loopback();
    b.mgr
        .prepare3(dreq.clone(), &begin.cookie, Some(rd))
        .await
        .expect("prepare");
    assert_eq!(state_of(&b, &dom.uuid).await, Some(DomainState::Paused));
    // The source side of the tunnel goes away (its daemon died) and nobody
    // will ever send Finish.
    drop(w);
    let mut cleaned = false;
    for _ in 0..500 {
        if !b.mgr.registry().is_locked(&dom.uuid) {
            cleaned = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(cleaned, "the destination job ended on its own");
    assert_eq!(
        state_of(&b, &dom.uuid).await,
        None,
        "incoming guest removed"
    );
    assert_eq!(
        b.mgr.registry().stats(&dom.uuid, true).job_type,
        JobType::Failed
    );
    // A late Finish gets the answers a stock client expects.
    let late = b.mgr.finish3("orphan", dreq.clone(), &[], true).await;
    assert!(matches!(late, Err(Error::MigrateFinishOk)), "{late:?}");
    a.mgr
        .confirm3(&dom, r, &[], true)
        .await
        .expect("source job released");
    check_one_copy_then_retry(&a, &b, &dom).await;
}
