//! The driver's building blocks for live migration, driven by hand between
//! two drivers (two "hosts" on one machine): a destination started with
//! `-incoming defer`, QMP `migrate` over loopback TCP, then finish on the
//! destination and stop on the source. The workload counter proves the
//! guest kept its state and kept running. The migration engine (Begin3 …
//! Confirm3) will drive these same calls.
//!
//! The guest is defined the way virt-install writes a Linux guest (USB
//! tablet, guest-agent channel, virtio video and RNG, hpet off, clock
//! timers): QEMU must have each of those devices on both sides, and they
//! must migrate; the live XML names them by their QEMU ids (`<alias>`).

mod common;

use common::{qemu_available, Reaper};
use std::path::Path;
use std::time::Duration;

use migrated_core::domain::{running_reason, shutoff_reason, DomainRef, DomainState, HostIdentity};
use migrated_core::driver::Driver;
use migrated_driver_qemu::migration::{enable_events, wait_for_completion};
use migrated_driver_qemu::qmp::commands::{
    HumanMonitorCommand, Migrate, MigrateIncoming, MigrationStatus,
};
use migrated_driver_qemu::qmp::Qmp;
use migrated_driver_qemu::{workload, QemuConfig, QemuDriver};
use uuid::Uuid;

/// The devices of a virt-install Linux guest, and the QEMU ids libvirt
/// gives them (`qom-list /machine/peripheral`).
const VIRT_INSTALL_DEVICES: &str = "
  <features><acpi/><apic/><vmport state='off'/></features>
  <clock offset='utc'>
    <timer name='rtc' tickpolicy='catchup'/>
    <timer name='pit' tickpolicy='delay'/>
    <timer name='hpet' present='no'/>
  </clock>
  <pm><suspend-to-mem enabled='no'/><suspend-to-disk enabled='no'/></pm>
  <devices>
    <controller type='usb' index='0' model='qemu-xhci' ports='15'/>
    <controller type='pci' index='0' model='pci-root'/>
    <controller type='virtio-serial' index='0'/>
    <serial type='pty'><target type='isa-serial' port='0'><model name='isa-serial'/></target></serial>
    <console type='pty'><target type='serial' port='0'/></console>
    <channel type='unix'>
      <target type='virtio' name='org.qemu.guest_agent.0'/>
      <address type='virtio-serial' controller='0' bus='0' port='1'/>
    </channel>
    <input type='tablet' bus='usb'><address type='usb' bus='0' port='1'/></input>
    <input type='mouse' bus='ps2'/>
    <input type='keyboard' bus='ps2'/>
    <video><model type='virtio' heads='1' primary='yes'/></video>
    <memballoon model='virtio'/>
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
  </devices>";

/// Ids QEMU must have under `/machine/peripheral` for [`VIRT_INSTALL_DEVICES`].
const PERIPHERALS: [(&str, &str); 8] = [
    ("usb", "qemu-xhci"),
    ("virtio-serial0", "virtio-serial-pci"),
    ("channel0", "virtserialport"),
    ("input0", "usb-tablet"),
    ("video0", "virtio-vga"),
    ("rng0", "virtio-rng-pci"),
    ("serial0", "isa-serial"),
    ("balloon0", "virtio-balloon-pci"),
];

/// Fails unless the guest's QEMU has every device of [`PERIPHERALS`] and
/// the machine settings of [`VIRT_INSTALL_DEVICES`].
async fn assert_virt_install_devices(qmp: &Qmp, side: &str) {
    let listed = qmp
        .execute_raw(
            "qom-list",
            Some(serde_json::json!({"path": "/machine/peripheral"})),
        )
        .await
        .expect("qom-list");
    for (id, driver) in PERIPHERALS {
        let child = format!("child<{driver}>");
        assert!(
            listed
                .as_array()
                .expect("qom-list answers a list")
                .iter()
                .any(|p| p["name"] == id && p["type"] == child.as_str()),
            "{side}: no {driver} with id {id} in {listed}"
        );
    }
    for (property, expected) in [("hpet", serde_json::json!(false)), ("vmport", "off".into())] {
        let value = qmp
            .execute_raw(
                "qom-get",
                Some(serde_json::json!({"path": "/machine", "property": property})),
            )
            .await
            .expect("qom-get");
        assert_eq!(value, expected, "{side}: machine property {property}");
    }
    let qtree = qmp
        .execute(&HumanMonitorCommand {
            command_line: "info qtree".into(),
        })
        .await
        .expect("info qtree");
    for line in [
        "lost_tick_policy = \"slew\"",
        "disable_s3 = 1",
        "disable_s4 = 1",
    ] {
        assert!(qtree.contains(line), "{side}: no `{line}` in info qtree");
    }
}

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
           {VIRT_INSTALL_DEVICES}
         </domain>",
        Uuid::new_v4(),
        workload::build_path().display()
    );
    let src = a.define_xml(&xml, 0).await.expect("define on source");
    let src = a.create(&src, 0).await.expect("source runs");
    let before = counter_passes(&a, &src, 0).await;
    assert_virt_install_devices(&a.qmp(&src).expect("source qmp"), "source").await;
    // The guest agent's socket is in the guest's channel directory, and the
    // live XML shows the serial port's pty, as libvirt's do.
    let agent = a_dir
        .path()
        .join("run/qemu/channel/mover/org.qemu.guest_agent.0");
    assert!(
        agent.exists(),
        "no guest agent socket at {}",
        agent.display()
    );
    let live = a.get_xml_desc(&src, 0).await.expect("live xml");
    assert!(
        live.contains("<console type='pty' tty='/dev/pts/"),
        "no pty in the live XML:\n{live}"
    );
    for (id, _) in PERIPHERALS {
        assert!(
            live.contains(&format!("<alias name='{id}'/>")),
            "no alias {id} in the live XML:\n{live}"
        );
    }

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
    src_qmp
        .execute(&Migrate { uri, resume: false })
        .await
        .expect("migrate");
    let info = wait_for_completion(&src_qmp, &mut src_events)
        .await
        .expect("source completes");
    assert_eq!(info.status, Some(MigrationStatus::Completed));
    assert!(info.ram.expect("ram stats").transferred > 0);
    wait_for_completion(&dst_qmp, &mut dst_events)
        .await
        .expect("destination completes");

    let dst = b.finish_incoming(&dst, false, false).await.expect("finish");
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
    assert_virt_install_devices(&b.qmp(&dst).expect("destination qmp"), "destination").await;
    // The source's QEMU and its channel sockets are gone.
    assert!(a.qmp(&src).is_err(), "the source still has a monitor");
    assert!(!a_dir.path().join("run/qemu/mover.pid").exists());
    assert!(!a_dir.path().join("run/qemu/channel/mover").exists());
    assert!(b_dir
        .path()
        .join("run/qemu/channel/mover/org.qemu.guest_agent.0")
        .exists());
    b.destroy(&dst, 0).await.expect("destroy");
}
