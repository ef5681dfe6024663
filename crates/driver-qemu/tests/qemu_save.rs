//! Save to a file and restore, with real QEMU under TCG running the
//! workload guest. Without `qemu-system-x86_64` each test prints `SKIPPED`
//! (and fails when `CI` is set).

mod common;

use common::{qemu_available, Reaper};
use std::path::Path;
use std::time::Duration;

use migrated_core::domain::{
    paused_reason, running_reason, shutoff_reason, DomainRef, DomainState, HostIdentity,
};
use migrated_core::driver::Driver;
use migrated_core::error::ErrorCode;
use migrated_driver_qemu::migration;
use migrated_driver_qemu::savefile::MAGIC;
use migrated_driver_qemu::{workload, QemuConfig, QemuDriver};
use uuid::Uuid;

/// `VIR_DOMAIN_SAVE_PAUSED`.
const SAVE_PAUSED: u32 = 1 << 2;

async fn open(dir: &Path, zstd: bool) -> QemuDriver {
    let mut config = QemuConfig::new(dir.join("state"), dir.join("run"));
    config.save_zstd = zstd;
    let host = HostIdentity {
        hostname: "save-test.invalid".into(),
        uuid: Uuid::new_v4(),
    };
    QemuDriver::open(config, host).await.expect("open driver")
}

fn guest_xml(name: &str) -> String {
    format!(
        "<domain type='qemu'><name>{name}</name><uuid>{}</uuid>
           <memory unit='MiB'>64</memory><vcpu>1</vcpu>
           <os><type arch='x86_64' machine='pc'>hvm</type>
             <kernel>{}</kernel><cmdline>dirty_mib=8</cmdline></os>
         </domain>",
        Uuid::new_v4(),
        workload::build_path().display()
    )
}

async fn counter(driver: &QemuDriver, dom: &DomainRef) -> Option<u64> {
    let qmp = driver.qmp(dom).ok()?;
    workload::read_status(&qmp).await.ok().map(|s| s.counter)
}

async fn counter_passes(driver: &QemuDriver, dom: &DomainRef, above: u64) -> u64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(c) = counter(driver, dom).await.filter(|&c| c > above) {
            return c;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "counter stuck at {above}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn save_and_restore(zstd: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let _reaper = Reaper::new(&[dir.path()]);
    let driver = open(dir.path(), zstd).await;
    let dom = driver
        .define_xml(&guest_xml("saver"), 0)
        .await
        .expect("define");
    let dom = driver.create(&dom, 0).await.expect("start");
    let before = counter_passes(&driver, &dom, 0).await;
    let pid = driver.pid(&dom).expect("pid");
    let image = dir.path().join("saver.img");
    let image_str = image.to_str().expect("utf-8 path");
    // As a failed parallel zero-copy migration leaves it: QEMU fails a save
    // (`fd:`) with multifd on, and refuses multifd off while zero-copy-send
    // is on, unless the save turns both off.
    let qmp = driver.qmp(&dom).expect("qmp");
    migration::set_capabilities(
        &qmp,
        &[
            (migration::CAP_MULTIFD, true),
            (migration::CAP_ZERO_COPY_SEND, true),
        ],
    )
    .await
    .expect("multifd and zero-copy-send on");

    driver.save(&dom, image_str, None, 0).await.expect("save");
    let state = driver.get_state(&dom, 0).await.expect("state");
    assert_eq!(
        (state.state, state.reason),
        (DomainState::Shutoff, shutoff_reason::SAVED)
    );
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "source qemu gone"
    );
    let bytes = std::fs::read(&image).expect("image");
    assert_eq!(&bytes[..8], &MAGIC);
    if zstd {
        // The idle 64 MiB guest compresses to a small fraction.
        assert!(
            bytes.len() < 16 << 20,
            "compressed image is {} bytes",
            bytes.len()
        );
    }

    // Restore paused: the counter is exactly where the save left it.
    driver
        .restore(image_str, None, SAVE_PAUSED)
        .await
        .expect("restore");
    let dom = driver.lookup_by_uuid(&dom.uuid).await.expect("restored");
    let state = driver.get_state(&dom, 0).await.expect("state");
    assert_eq!(
        (state.state, state.reason),
        (DomainState::Paused, paused_reason::USER)
    );
    let restored = counter(&driver, &dom)
        .await
        .expect("workload state came back");
    assert!(
        restored >= before,
        "restored {restored} < saved-before {before}"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        counter(&driver, &dom).await,
        Some(restored),
        "paused after restore"
    );

    driver.resume(&dom).await.expect("resume");
    counter_passes(&driver, &dom, restored).await;
    driver.destroy(&dom, 0).await.expect("destroy");
}

#[tokio::test]
async fn save_and_restore_with_zstd_keeps_the_guest_state() {
    if qemu_available() {
        save_and_restore(true).await;
    }
}

#[tokio::test]
async fn save_and_restore_uncompressed_keeps_the_guest_state() {
    if qemu_available() {
        save_and_restore(false).await;
    }
}

#[tokio::test]
async fn a_transient_guest_comes_back_running_from_its_image() {
    if !qemu_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let _reaper = Reaper::new(&[dir.path()]);
    let driver = open(dir.path(), true).await;
    let dom = driver
        .create_xml(&guest_xml("fleeting"), 0)
        .await
        .expect("create");
    let before = counter_passes(&driver, &dom, 0).await;
    let image = dir.path().join("fleeting.img");
    let image_str = image.to_str().expect("utf-8 path");
    driver.save(&dom, image_str, None, 0).await.expect("save");
    assert!(
        driver.list_all_domains(0).await.expect("list").is_empty(),
        "transient gone"
    );

    driver.restore(image_str, None, 0).await.expect("restore");
    let dom = driver.lookup_by_name("fleeting").await.expect("back");
    let state = driver.get_state(&dom, 0).await.expect("state");
    assert_eq!(
        (state.state, state.reason),
        (DomainState::Running, running_reason::RESTORED)
    );
    counter_passes(&driver, &dom, before).await;
    // Restoring a guest that runs is refused.
    let err = driver
        .restore(image_str, None, 0)
        .await
        .expect_err("already active");
    assert_eq!(err.code(), ErrorCode::OperationInvalid);
    driver.destroy(&dom, 0).await.expect("destroy");
}

#[tokio::test]
async fn restoring_a_foreign_file_is_a_clear_error() {
    if !qemu_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let _reaper = Reaper::new(&[dir.path()]);
    let driver = open(dir.path(), true).await;
    let bogus = dir.path().join("bogus.img");
    std::fs::write(&bogus, b"LibvirtQemudSave and then some").expect("write");
    let err = driver
        .restore(bogus.to_str().expect("utf-8"), None, 0)
        .await
        .expect_err("not our image");
    assert!(
        err.to_string().contains("image magic is incorrect"),
        "{err}"
    );
    assert!(driver.list_all_domains(0).await.expect("list").is_empty());
    let err = driver
        .restore(
            dir.path().join("missing.img").to_str().expect("utf-8"),
            None,
            0,
        )
        .await
        .expect_err("missing");
    assert_eq!(err.code(), ErrorCode::SystemError);
}
