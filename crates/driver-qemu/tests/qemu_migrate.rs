//! The driver's building blocks for live migration, driven by hand between
//! two drivers (two "hosts" on one machine): a destination started with
//! `-incoming defer`, QMP `migrate` over loopback TCP, then finish on the
//! destination and stop on the source. The workload counter proves the
//! guest kept its state and kept running. The migration engine (Begin3 …
//! Confirm3) will drive these same calls.

mod common;

use common::{qemu_available, Reaper};
use std::path::Path;
use std::time::Duration;

use migrated_core::domain::{running_reason, shutoff_reason, DomainRef, DomainState, HostIdentity};
use migrated_core::driver::Driver;
use migrated_driver_qemu::migration::{enable_events, wait_for_completion};
use migrated_driver_qemu::qmp::commands::{Migrate, MigrateIncoming, MigrationStatus};
use migrated_driver_qemu::{workload, QemuConfig, QemuDriver};
use uuid::Uuid;

async fn open(dir: &Path) -> QemuDriver {
    let host = HostIdentity {
        hostname: "migrate-test.invalid".into(),
        uuid: Uuid::new_v4(),
    };
    QemuDriver::open(QemuConfig::new(dir.join("state"), dir.join("run")), host)
        .await
        .expect("open driver")
}

async fn counter_passes(driver: &QemuDriver, dom: &DomainRef, above: u64) -> u64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(qmp) = driver.qmp(dom) {
            if let Ok(s) = workload::read_status(&qmp).await {
                if s.counter > above {
                    return s.counter;
                }
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "counter stuck at {above}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

#[tokio::test]
async fn a_dirtying_guest_moves_between_two_drivers_and_keeps_counting() {
    if !qemu_available() {
        return;
    }
    let (a_dir, b_dir) = (
        tempfile::tempdir().expect("a"),
        tempfile::tempdir().expect("b"),
    );
    let _reaper = Reaper::new(&[a_dir.path(), b_dir.path()]);
    let (a, b) = (open(a_dir.path()).await, open(b_dir.path()).await);
    let xml = format!(
        "<domain type='qemu'><name>mover</name><uuid>{}</uuid>
           <memory unit='MiB'>64</memory><vcpu>1</vcpu>
           <os><type arch='x86_64' machine='pc'>hvm</type>
             <kernel>{}</kernel><cmdline>dirty_mib=16</cmdline></os>
         </domain>",
        Uuid::new_v4(),
        workload::build_path().display()
    );
    let src = a.define_xml(&xml, 0).await.expect("define on source");
    let src = a.create(&src, 0).await.expect("source runs");
    let before = counter_passes(&a, &src, 0).await;

    let (dst, dst_qmp) = b.start_incoming(&xml).await.expect("destination waits");
    assert_eq!(
        b.get_state(&dst, 0).await.expect("state").state,
        DomainState::Paused
    );
    let src_qmp = a.qmp(&src).expect("source qmp");
    enable_events(&src_qmp).await.expect("events on source");
    enable_events(&dst_qmp)
        .await
        .expect("events on destination");
    let uri = format!("tcp:127.0.0.1:{}", free_port());
    dst_qmp
        .execute(&MigrateIncoming { uri: uri.clone() })
        .await
        .expect("migrate-incoming");
    let mut src_events = src_qmp.events();
    let mut dst_events = dst_qmp.events();
    src_qmp.execute(&Migrate { uri }).await.expect("migrate");
    let info = wait_for_completion(&src_qmp, &mut src_events)
        .await
        .expect("source completes");
    assert_eq!(info.status, Some(MigrationStatus::Completed));
    assert!(info.ram.expect("ram stats").transferred > 0);
    wait_for_completion(&dst_qmp, &mut dst_events)
        .await
        .expect("destination completes");

    let dst = b.finish_incoming(&dst, false).await.expect("finish");
    a.stop_migrated(&src).await.expect("confirm");
    let state = b.get_state(&dst, 0).await.expect("state");
    assert_eq!(
        (state.state, state.reason),
        (DomainState::Running, running_reason::MIGRATED)
    );
    let src_state = a.get_state(&src, 0).await.expect("source state");
    assert_eq!(
        (src_state.state, src_state.reason),
        (DomainState::Shutoff, shutoff_reason::MIGRATED)
    );
    let after = counter_passes(&b, &dst, before).await;
    assert!(after > before);
    b.destroy(&dst, 0).await.expect("destroy");
}
