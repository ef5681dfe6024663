//! Real QEMU: boot the workload guest under TCG, start-up failures, and
//! re-attaching to a running QEMU. Needs `qemu-system-x86_64`; without it
//! each test prints `SKIPPED` (and fails when `CI` is set).

mod common;

use common::{qemu_available, wait_until, Reaper};
use std::path::{Path, PathBuf};
use std::time::Duration;

use migrated_driver_qemu::command::{find_emulator, Accel, Disk, LaunchSpec, Monitor, Serial};
use migrated_driver_qemu::process::{launch, LaunchPaths, Launched, ProcessExit, QemuProcess};
use migrated_driver_qemu::qmp::commands::{Cont, QueryStatus, Quit, RunState};
use migrated_driver_qemu::qmp::{Qmp, QmpConfig};
use migrated_driver_qemu::{workload, Error};
use uuid::Uuid;

fn workload_spec(emulator: PathBuf, name: &str, dir: &Path, dirty_mib: u32) -> LaunchSpec {
    let mut spec = LaunchSpec::new(emulator, name, Uuid::new_v4(), Monitor::Fd(-1));
    spec.accel = Accel::Tcg;
    spec.memory_mib = 64;
    spec.serial = Serial::File(dir.join(format!("{name}.serial")));
    spec.kernel = Some(workload::kernel(
        workload::build_path().to_owned(),
        dirty_mib,
    ));
    spec
}

fn paths(dir: &Path, name: &str) -> LaunchPaths {
    LaunchPaths::for_guest(&dir.join("run"), &dir.join("log"), name)
}

async fn counter_after_boot(qmp: &Qmp) -> workload::WorkloadStatus {
    wait_until(Duration::from_secs(30), || async {
        workload::read_status(qmp)
            .await
            .ok()
            .filter(|s| s.counter > 0)
    })
    .await
}

async fn counter_passes(qmp: &Qmp, above: u64) -> u64 {
    wait_until(Duration::from_secs(30), || async {
        workload::read_status(qmp)
            .await
            .ok()
            .map(|s| s.counter)
            .filter(|&c| c > above)
    })
    .await
}

#[tokio::test]
async fn workload_guest_boots_under_tcg_and_its_counter_advances() {
    if !qemu_available() {
        return;
    }
    let qemu = find_emulator(None).expect("emulator");
    let dir = tempfile::tempdir().expect("tempdir");
    let _reaper = Reaper::new(&[dir.path()]);
    let spec = workload_spec(qemu, "counter", dir.path(), 8);
    let Launched { process, qmp } =
        launch(spec, &paths(dir.path(), "counter"), QmpConfig::default())
            .await
            .expect("qemu starts");

    // -S: nothing runs until cont.
    let status = qmp.execute(&QueryStatus).await.expect("query-status");
    assert_eq!(status.status, RunState::Prelaunch);
    qmp.execute(&Cont).await.expect("cont");

    let first = counter_after_boot(&qmp).await;
    assert_eq!(first.dirty_mib, 8, "the guest read dirty_mib from -append");
    let later = counter_passes(&qmp, first.counter).await;
    assert!(later > first.counter);

    let serial = std::fs::read_to_string(dir.path().join("counter.serial")).expect("serial log");
    assert!(
        serial.contains("migrated-guest: running, dirty_mib=8"),
        "{serial:?}"
    );

    qmp.execute(&Quit).await.expect("quit");
    assert_eq!(process.wait().await, ProcessExit::Code(0));
}

#[tokio::test]
async fn dirty_region_is_clamped_to_guest_memory() {
    if !qemu_available() {
        return;
    }
    let qemu = find_emulator(None).expect("emulator");
    let dir = tempfile::tempdir().expect("tempdir");
    let _reaper = Reaper::new(&[dir.path()]);
    // 64 MiB of RAM cannot hold a 4096 MiB region above the 4 MiB base.
    let spec = workload_spec(qemu, "clamp", dir.path(), 4096);
    let Launched { process, qmp } = launch(spec, &paths(dir.path(), "clamp"), QmpConfig::default())
        .await
        .expect("qemu starts");
    qmp.execute(&Cont).await.expect("cont");
    let status = counter_after_boot(&qmp).await;
    assert!(status.dirty_mib > 0 && status.dirty_mib < 64, "{status:?}");
    process.kill().await.expect("kill");
}

#[tokio::test]
async fn unknown_machine_type_reports_qemu_stderr() {
    if !qemu_available() {
        return;
    }
    let qemu = find_emulator(None).expect("emulator");
    let dir = tempfile::tempdir().expect("tempdir");
    let _reaper = Reaper::new(&[dir.path()]);
    let mut spec = workload_spec(qemu, "badmachine", dir.path(), 1);
    spec.machine = "no-such-machine-type".into();
    let err = launch(spec, &paths(dir.path(), "badmachine"), QmpConfig::default())
        .await
        .expect_err("qemu refuses the machine");
    match err {
        Error::EmulatorExited { status, stderr } => {
            assert_eq!(status, "exit code 1");
            assert!(stderr.contains("unsupported machine type"), "{stderr}");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn qemu_dying_at_start_reports_its_stderr() {
    if !qemu_available() {
        return;
    }
    let qemu = find_emulator(None).expect("emulator");
    let dir = tempfile::tempdir().expect("tempdir");
    let _reaper = Reaper::new(&[dir.path()]);
    let mut spec = workload_spec(qemu, "nodisk", dir.path(), 1);
    let missing = dir.path().join("missing-disk.img");
    spec.disks.push(Disk {
        source: missing.clone(),
        format: "raw".into(),
        target: "vda".into(),
        bus: "virtio".into(),
        readonly: false,
        pci: Vec::new(),
    });
    let err = launch(spec, &paths(dir.path(), "nodisk"), QmpConfig::default())
        .await
        .expect_err("qemu cannot open the disk");
    let text = err.to_string();
    assert!(matches!(err, Error::EmulatorExited { .. }), "{err:?}");
    assert!(text.contains("missing-disk.img"), "{text}");
    assert!(text.contains("No such file"), "{text}");
}

#[tokio::test]
async fn missing_emulator_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _reaper = Reaper::new(&[dir.path()]);
    let bogus = dir.path().join("qemu-system-x86_64");
    let err = find_emulator(Some(&bogus)).expect_err("no such binary");
    assert!(
        err.to_string().contains("is not an executable file"),
        "{err}"
    );

    // Launching a spec whose emulator vanished fails at spawn, naming it.
    let spec = workload_spec(bogus.clone(), "noemu", dir.path(), 1);
    let err = launch(spec, &paths(dir.path(), "noemu"), QmpConfig::default())
        .await
        .expect_err("spawn fails");
    assert!(
        matches!(err, Error::Spawn { ref emulator, .. } if *emulator == bogus),
        "{err:?}"
    );
}

#[tokio::test]
async fn reattach_finds_the_guest_still_running() {
    if !qemu_available() {
        return;
    }
    let qemu = find_emulator(None).expect("emulator");
    let dir = tempfile::tempdir().expect("tempdir");
    let _reaper = Reaper::new(&[dir.path()]);
    let spec = workload_spec(qemu, "survivor", dir.path(), 4);
    let uuid = spec.uuid;
    let p = paths(dir.path(), "survivor");
    let Launched { process, qmp } = launch(spec, &p, QmpConfig::default())
        .await
        .expect("starts");
    qmp.execute(&Cont).await.expect("cont");
    let before = counter_after_boot(&qmp).await.counter;
    let pid = process.pid();

    // What a daemon restart does to its handles.
    drop(qmp);
    drop(process);

    let process = QemuProcess::attach(pid, "survivor", &uuid.to_string())
        .expect("attach")
        .expect("still alive");
    assert_eq!(process.exit_status(), None);
    let qmp = Qmp::connect(&p.qmp_socket, QmpConfig::default())
        .await
        .expect("monitor accepts a new connection");
    assert!(counter_passes(&qmp, before).await > before);

    // A guest that is gone is seen as gone.
    let exit = process.kill().await.expect("kill");
    assert!(
        matches!(exit, ProcessExit::Signal(9) | ProcessExit::Unknown),
        "{exit:?}"
    );
    let reason = qmp.closed().await;
    assert!(
        reason.contains("closed") || reason.contains("reset"),
        "{reason}"
    );
    assert!(QemuProcess::attach(pid, "survivor", &uuid.to_string())
        .expect("no error")
        .is_none());
}
