use std::path::{Path, PathBuf};

use migrated_core::xml::DomainDef;
use serde_json::Value;

use crate::command::tests::values;
use crate::command::{Accel, ChannelSource, LaunchSpec};
use crate::error::Error;
use crate::spec::launch_spec;

fn domain(machine: &str, body: &str) -> DomainDef {
    let xml = format!(
        "<domain type='qemu'><name>web1</name>
           <uuid>c7a5fdbd-cdaf-9455-926a-d65c16db1809</uuid>
           <memory unit='KiB'>262144</memory><vcpu>1</vcpu>
           <os><type arch='x86_64' machine='{machine}'>hvm</type><kernel>/k/guest.elf</kernel></os>
           {body}
         </domain>"
    );
    DomainDef::parse(&xml).expect("test xml parses")
}

fn spec(machine: &str, body: &str) -> LaunchSpec {
    launch_spec(&domain(machine, body)).expect("spec")
}

/// `spec` with `<devices>` holding `devices` (and `/bin/sh` as emulator).
fn devices(machine: &str, devices: &str) -> LaunchSpec {
    spec(
        machine,
        &format!("<devices><emulator>/bin/sh</emulator>{devices}</devices>"),
    )
}

/// The arguments, channels placed in `/run/ch`.
fn argv(spec: &mut LaunchSpec) -> Vec<String> {
    spec.place_channels(Path::new("/run/ch"));
    crate::command::tests::argv(spec)
}

/// The `-device` JSON objects.
fn device_json(args: &[String]) -> Vec<Value> {
    values(args, "-device")
        .into_iter()
        .filter(|d| d.starts_with('{'))
        .map(|d| serde_json::from_str(d).expect("json device"))
        .collect()
}

fn by_id<'a>(devices: &'a [Value], id: &str) -> &'a Value {
    devices
        .iter()
        .find(|d| d["id"] == id)
        .unwrap_or_else(|| panic!("no device {id} in {devices:?}"))
}

/// Insists that the domain with `body` is refused with a reason naming `words`.
#[track_caller]
fn refused(machine: &str, body: &str, words: &str) {
    match launch_spec(&domain(machine, body)) {
        Err(Error::InvalidConfig { reason }) => assert!(reason.contains(words), "{body}: {reason}"),
        other => panic!("{body}: {other:?}"),
    }
}

/// What virt-install writes for a Linux guest on i440fx.
const VIRT_INSTALL: &str = "
  <controller type='usb' index='0' model='piix3-uhci'/>
  <controller type='pci' index='0' model='pci-root'/>
  <controller type='virtio-serial' index='0'/>
  <serial type='pty'><target type='isa-serial' port='0'><model name='isa-serial'/></target></serial>
  <console type='pty'><target type='serial' port='0'/></console>
  <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/>
    <address type='virtio-serial' controller='0' bus='0' port='1'/></channel>
  <input type='tablet' bus='usb'><address type='usb' bus='0' port='1'/></input>
  <input type='mouse' bus='ps2'/>
  <input type='keyboard' bus='ps2'/>
  <graphics type='vnc' port='-1' autoport='yes'/>
  <video><model type='virtio' heads='1' primary='yes'/></video>
  <memballoon model='virtio'/>
  <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>";

#[test]
fn a_virt_install_guest_gets_libvirts_devices() {
    let mut s = devices("pc-i440fx-7.2", VIRT_INSTALL);
    let a = argv(&mut s);
    let d = device_json(&a);
    let usb = by_id(&d, "usb");
    assert_eq!(usb["driver"], "piix3-usb-uhci");
    assert_eq!(usb["addr"], "0x1.0x2");
    assert_eq!(by_id(&d, "virtio-serial0")["driver"], "virtio-serial-pci");
    let tablet = by_id(&d, "input0");
    assert_eq!(tablet["driver"], "usb-tablet");
    assert_eq!(tablet["bus"], "usb.0");
    assert_eq!(tablet["port"], "1");
    // The PS/2 mouse and keyboard are the machine's own.
    assert!(d.iter().all(|x| x["id"] != "input1" && x["id"] != "input2"));
    let video = by_id(&d, "video0");
    assert_eq!(video["driver"], "virtio-vga");
    assert_eq!(video["max_outputs"], 1);
    let channel = by_id(&d, "channel0");
    assert_eq!(channel["driver"], "virtserialport");
    assert_eq!(channel["bus"], "virtio-serial0.0");
    assert_eq!(channel["nr"], 1);
    assert_eq!(channel["chardev"], "charchannel0");
    assert_eq!(channel["name"], "org.qemu.guest_agent.0");
    assert!(values(&a, "-chardev").contains(
        &"socket,id=charchannel0,path=/run/ch/org.qemu.guest_agent.0,server=on,wait=off"
    ));
    let rng = by_id(&d, "rng0");
    assert_eq!(rng["driver"], "virtio-rng-pci");
    assert_eq!(rng["rng"], "objrng0");
    let object: Value = serde_json::from_str(values(&a, "-object")[0]).expect("json object");
    assert_eq!(object["qom-type"], "rng-random");
    assert_eq!(object["filename"], "/dev/urandom");
    // The console mirrors the serial port: one isa-serial.
    assert_eq!(
        values(&a, "-device")
            .iter()
            .filter(|d| d.contains("isa-serial"))
            .count(),
        1
    );
}

#[test]
fn live_aliases_are_the_qemu_ids() {
    let mut def = domain(
        "pc-i440fx-7.2",
        &format!(
            "<devices><emulator>/bin/sh</emulator>
               <disk type='file' device='disk'><source file='/img/a'/><target dev='vda' bus='virtio'/></disk>
               <interface type='user'><model type='virtio'/></interface>
               <sound model='ich9'/><watchdog model='i6300esb'/>
               {VIRT_INSTALL}</devices>"
        ),
    );
    let mut s = launch_spec(&def).expect("spec");
    let a = argv(&mut s);
    crate::spec::set_aliases(&mut def);
    let d = &def.devices;
    let aliases: Vec<&str> = d
        .controllers
        .iter()
        .map(|c| &c.info)
        .chain(d.disks.iter().map(|x| &x.info))
        .chain(d.interfaces.iter().map(|x| &x.info))
        .chain(
            d.serials
                .iter()
                .chain(&d.consoles)
                .chain(&d.channels)
                .map(|x| &x.info),
        )
        .chain(d.inputs.iter().map(|x| &x.info))
        .chain(d.videos.iter().map(|x| &x.info))
        .chain(d.sounds.iter().map(|x| &x.info))
        .chain(d.watchdogs.iter().map(|x| &x.info))
        .chain(d.memballoon.iter().map(|x| &x.info))
        .chain(d.rngs.iter().map(|x| &x.info))
        .filter_map(|info| info.alias.as_deref())
        .collect();
    // The -device ids; an HDA codec has no element of its own.
    let ids: Vec<String> = values(&a, "-device")
        .into_iter()
        .filter_map(|device| match serde_json::from_str::<Value>(device) {
            Ok(json) => json["id"].as_str().map(str::to_owned),
            Err(_) => device
                .split(',')
                .find_map(|p| p.strip_prefix("id=").map(str::to_owned)),
        })
        .filter(|id| !id.contains("-codec"))
        .collect();
    // Every device QEMU got is named by an alias, and every alias is a QEMU
    // id (the PS/2 inputs and pci-root are the machine's own).
    for id in &ids {
        assert!(
            aliases.contains(&id.as_str()),
            "no alias for {id}: {aliases:?}"
        );
    }
    for alias in &aliases {
        assert!(
            ids.iter().any(|id| id == alias) || ["input1", "input2", "pci.0"].contains(alias),
            "alias {alias} is no QEMU id: {ids:?}"
        );
    }
    // A user's alias stays (it is part of the definition).
    let mut def = domain(
        "pc",
        "<devices><emulator>/bin/sh</emulator>
           <rng model='virtio'><backend model='random'/><alias name='ua-entropy'/></rng>
         </devices>",
    );
    crate::spec::set_aliases(&mut def);
    assert_eq!(
        def.devices.rngs[0].info.alias.as_deref(),
        Some("ua-entropy")
    );
}

#[test]
fn q35_gets_xhci_root_ports_and_its_own_controllers() {
    let s = devices(
        "pc-q35-7.2",
        "<controller type='usb' index='0' model='qemu-xhci' ports='15'/>
         <controller type='sata' index='0'/>
         <controller type='pci' index='0' model='pcie-root'/>
         <controller type='pci' index='1' model='pcie-root-port'>
           <model name='pcie-root-port'/><target chassis='1' port='0x10'/></controller>
         <input type='tablet' bus='usb'/>",
    );
    let usb = s
        .controllers
        .iter()
        .find(|c| c.id() == Some("usb"))
        .expect("usb");
    assert_eq!(usb.0["driver"], "qemu-xhci");
    assert_eq!(usb.0["p2"], 15);
    assert!(usb.0.get("addr").is_none());
    let port = s
        .controllers
        .iter()
        .find(|c| c.id() == Some("pci.1"))
        .expect("port");
    assert_eq!(port.0["driver"], "pcie-root-port");
    assert_eq!(port.0["bus"], "pcie.0");
    assert_eq!(port.0["chassis"], 1);
    assert_eq!(port.0["port"], 16);
    assert_eq!(s.controllers.len(), 2, "sata and pcie-root are built in");
}

#[test]
fn implicit_controllers_for_usb_inputs_and_channels() {
    let s = devices(
        "pc",
        "<input type='tablet'/>
         <input type='keyboard' bus='virtio'/>
         <channel type='unix'><source mode='bind' path='/tmp/ga,x'/>
           <target type='virtio' name='org.qemu.guest_agent.0'/></channel>",
    );
    let ids: Vec<_> = s.controllers.iter().filter_map(|c| c.id()).collect();
    assert_eq!(ids, ["usb", "virtio-serial0"]);
    assert_eq!(s.inputs[0].0["driver"], "usb-tablet");
    assert_eq!(s.inputs[1].0["driver"], "virtio-keyboard-pci");
    assert_eq!(s.inputs[1].id(), Some("input1"));
    // Automatic USB ports skip the ones addresses name.
    let usb = devices(
        "pc",
        "<input type='mouse' bus='usb'/>
         <input type='tablet' bus='usb'><address type='usb' bus='0' port='1'/></input>",
    );
    assert_eq!(usb.inputs[0].0["port"], "2");
    assert_eq!(usb.inputs[1].0["port"], "1");
    let serial = devices(
        "pc",
        "<channel type='unix'><target type='virtio' name='a'/></channel>
         <channel type='unix'><target type='virtio' name='b'/>
           <address type='virtio-serial' controller='0' bus='0' port='1'/></channel>",
    );
    let ports: Vec<u32> = serial.channels.iter().map(|c| c.port).collect();
    assert_eq!(ports, [2, 1]);
    assert_eq!(
        s.channels[0].source,
        ChannelSource::Unix(Some(PathBuf::from("/tmp/ga,x")))
    );
    let mut s = s;
    let a = argv(&mut s);
    // A user's path keeps its commas literal.
    assert!(values(&a, "-chardev")
        .contains(&"socket,id=charchannel0,path=/tmp/ga,,x,server=on,wait=off"));
}

#[test]
fn video_models() {
    for (model, driver) in [
        ("vga", "VGA"),
        ("cirrus", "cirrus-vga"),
        ("qxl", "qxl-vga"),
        ("virtio", "virtio-vga"),
        ("bochs", "bochs-display"),
        ("vmvga", "vmware-svga"),
    ] {
        let s = devices("pc", &format!("<video><model type='{model}'/></video>"));
        let video = s.video.expect(model);
        assert_eq!(video.0["driver"], driver);
        assert_eq!(video.id(), Some("video0"));
    }
    assert!(devices("pc", "<video><model type='none'/></video>")
        .video
        .is_none());
    let qxl = devices(
        "pc",
        "<video><model type='qxl' ram='65536' vram='65536' vgamem='16384' heads='2'/></video>",
    )
    .video
    .expect("qxl");
    assert_eq!(qxl.0["ram_size"], 67_108_864);
    assert_eq!(qxl.0["vgamem_mb"], 16);
    assert_eq!(qxl.0["max_outputs"], 2);
    // A display without <video> gets libvirt's default adapter.
    let s = devices("pc", "<graphics type='vnc' port='-1' autoport='yes'/>");
    assert_eq!(s.video.expect("default").0["driver"], "VGA");
    assert!(devices("pc", "").video.is_none());
}

#[test]
fn features_clock_and_pm() {
    let mut s = spec(
        "pc",
        "<features><acpi/><apic/><vmport state='off'/><vmcoreinfo state='on'/></features>
         <clock offset='localtime'>
           <timer name='rtc' tickpolicy='catchup'/>
           <timer name='pit' tickpolicy='delay'/>
           <timer name='hpet' present='no'/>
         </clock>
         <pm><suspend-to-mem enabled='no'/><suspend-to-disk enabled='no'/></pm>
         <devices><emulator>/bin/sh</emulator></devices>",
    );
    let a = argv(&mut s);
    assert_eq!(values(&a, "-machine"), ["pc,hpet=off,vmport=off"]);
    assert_eq!(values(&a, "-rtc"), ["base=localtime,driftfix=slew"]);
    // TCG has no in-kernel PIT, so no lost-tick policy for it.
    assert_eq!(
        values(&a, "-global"),
        ["PIIX4_PM.disable_s3=1", "PIIX4_PM.disable_s4=1"]
    );
    assert!(values(&a, "-device").contains(&r#"{"driver":"vmcoreinfo"}"#));

    let mut def = domain(
        "pc-q35-7.2",
        "<clock offset='utc'><timer name='pit' tickpolicy='delay'/></clock>
         <pm><suspend-to-mem enabled='yes'/></pm>
         <devices><emulator>/bin/sh</emulator></devices>",
    );
    def.domain_type = migrated_core::xml::DomainType::Kvm;
    let mut s = launch_spec(&def).expect("spec");
    if s.accel == Accel::Kvm {
        assert!(s
            .globals
            .contains(&"kvm-pit.lost_tick_policy=delay".to_owned()));
    }
    s.accel = Accel::Tcg;
    let a = argv(&mut s);
    assert_eq!(values(&a, "-rtc"), ["base=utc"]);
    assert!(values(&a, "-global").contains(&"ICH9-LPC.disable_s3=0"));
}

#[test]
fn sound_watchdog_and_rng_details() {
    let mut s = devices(
        "pc",
        "<sound model='ich9'/><sound model='ac97'/>
         <watchdog model='i6300esb' action='poweroff'/>
         <rng model='virtio'><rate bytes='1024'/><backend model='builtin'/></rng>",
    );
    let a = argv(&mut s);
    assert_eq!(
        values(&a, "-audiodev"),
        [r#"{"driver":"none","id":"audio1"}"#]
    );
    let d = device_json(&a);
    assert_eq!(by_id(&d, "sound0")["driver"], "ich9-intel-hda");
    let codec = by_id(&d, "sound0-codec0");
    assert_eq!(codec["driver"], "hda-duplex");
    assert_eq!(codec["bus"], "sound0.0");
    assert_eq!(codec["audiodev"], "audio1");
    assert_eq!(by_id(&d, "sound1")["driver"], "AC97");
    assert_eq!(by_id(&d, "sound1")["audiodev"], "audio1");
    assert_eq!(by_id(&d, "watchdog0")["driver"], "i6300esb");
    assert_eq!(values(&a, "-watchdog-action"), ["poweroff"]);
    let rng = by_id(&d, "rng0");
    assert_eq!(rng["max-bytes"], 1024);
    assert_eq!(rng["period"], 1000);
    assert!(values(&a, "-object")[0].contains("rng-builtin"));

    let s = devices("pc-q35-7.2", "<watchdog model='itco'/>");
    assert!(s.globals.contains(&"ICH9-LPC.noreboot=off".to_owned()));
    assert_eq!(s.watchdog.expect("watchdog").action, "reset");
}

#[test]
fn what_is_not_realised_is_refused_by_name() {
    for (xml, words) in [
        (
            "<video><model type='ramfb'/></video>",
            "video model 'ramfb'",
        ),
        (
            "<video><model type='vga'/></video><video><model type='qxl'/></video>",
            "more than one video",
        ),
        (
            "<input type='passthrough' bus='virtio'/>",
            "input type 'passthrough'",
        ),
        (
            "<input type='tablet' bus='ps2'/>",
            "input type 'tablet' on bus 'ps2'",
        ),
        (
            "<controller type='usb' model='none'/><input type='tablet' bus='usb'/>",
            "without a USB controller",
        ),
        (
            "<controller type='usb' model='ich9-ehci1'/>",
            "USB controller model 'ich9-ehci1'",
        ),
        (
            "<controller type='scsi' model='virtio-scsi'/>",
            "scsi controller model",
        ),
        (
            "<controller type='pci' index='1' model='pci-bridge'/>",
            "pci-bridge",
        ),
        (
            "<channel type='pty'><target type='virtio' name='x'/></channel>",
            "channel x: type 'pty'",
        ),
        (
            "<channel type='spicevmc'><target type='virtio' name='com.redhat.spice.0'/></channel>",
            "spicevmc without SPICE",
        ),
        (
            "<channel type='unix'><target type='guestfwd' port='4600'/></channel>",
            "channel target type 'guestfwd'",
        ),
        (
            "<console type='pty'><target type='virtio'/></console>",
            "console target type 'virtio'",
        ),
        (
            "<channel type='unix'><target type='virtio' name='../../x'/></channel>",
            "channel name '../../x' without a source path",
        ),
        ("<sound model='usb'/>", "sound model 'usb'"),
        (
            "<audio id='1' type='pulseaudio'/>",
            "audio type 'pulseaudio'",
        ),
        ("<watchdog model='diag288'/>", "watchdog model 'diag288'"),
        ("<watchdog model='itco'/>", "watchdog model 'itco'"),
        (
            "<watchdog model='ib700' action='dump'/>",
            "watchdog action 'dump'",
        ),
        (
            "<rng model='virtio'><backend model='egd'/></rng>",
            "rng backend 'egd'",
        ),
        (
            "<rng model='virtio-transitional'><backend model='random'/></rng>",
            "rng model",
        ),
        (
            "<tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm>",
            "TPM",
        ),
        ("<redirdev bus='usb' type='spicevmc'/>", "USB redirection"),
        ("<memballoon model='xen'/>", "memballoon model 'xen'"),
    ] {
        refused(
            "pc",
            &format!("<devices><emulator>/bin/sh</emulator>{xml}</devices>"),
            words,
        );
    }
    for (body, words) in [
        ("<features><hyperv/></features>", "feature 'hyperv'"),
        (
            "<features><apic eoi='on'/></features>",
            "feature 'apic' with eoi='on'",
        ),
        (
            "<clock offset='variable' adjustment='10'/>",
            "clock attribute 'adjustment'",
        ),
        ("<clock offset='timezone'/>", "clock offset 'timezone'"),
        (
            "<clock><timer name='tsc' frequency='1'/></clock>",
            "timer 'tsc'",
        ),
        (
            "<clock><timer name='rtc' tickpolicy='merge'/></clock>",
            "timer 'rtc' with tickpolicy='merge'",
        ),
        (
            "<clock><timer name='pit' tickpolicy='catchup'/></clock>",
            "timer 'pit'",
        ),
        (
            "<clock><timer name='kvmclock' present='no'/></clock>",
            "timer 'kvmclock'",
        ),
    ] {
        refused(
            "pc",
            &format!("{body}<devices><emulator>/bin/sh</emulator></devices>"),
            words,
        );
    }
}

#[test]
fn common_harmless_elements_are_accepted() {
    let s = devices(
        "pc",
        "<controller type='pci' index='0' model='pci-root'/>
         <controller type='ide' index='0'/>
         <input type='mouse' bus='ps2'/><input type='keyboard'/>
         <memballoon model='none'/>
         <console type='pty'/>",
    );
    assert!(s.controllers.is_empty());
    assert!(s.inputs.is_empty());
    assert!(!s.balloon);
    // A console alone stands for the serial port.
    assert_eq!(s.serial, crate::command::Serial::Pty);
    spec("pc", "<features><acpi/><apic/><pae/></features><pm/><devices><emulator>/bin/sh</emulator></devices>");
}
