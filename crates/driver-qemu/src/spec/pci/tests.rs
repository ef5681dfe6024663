use super::*;

fn def(machine: &str, devices: &str) -> DomainDef {
    DomainDef::parse(&format!(
        "<domain type='qemu'><name>g</name><memory>65536</memory>\
         <os><type arch='x86_64' machine='{machine}'>hvm</type></os>\
         <devices>{devices}</devices></domain>"
    ))
    .expect("test xml parses")
}

fn at(info: &DeviceInfo) -> String {
    PciAddress::of(info)
        .expect("parses")
        .map_or_else(|| "none".into(), |a| a.to_string())
}

const DEVICES: &str =
    "<disk type='file'><source file='/a'/><target dev='vda' bus='virtio'/></disk>\
    <disk type='file'><source file='/b'/><target dev='hda' bus='ide'/></disk>\
    <controller type='ide' index='0'/>\
    <controller type='usb' index='0' model='piix3-uhci'/>\
    <interface type='user'><model type='virtio'/></interface>\
    <graphics type='vnc'/><video><model type='vga'/></video>\
    <memballoon model='virtio'/><rng model='virtio'><backend model='random'/></rng>";

#[test]
fn i440fx_has_libvirts_layout() {
    let mut d = def("pc-i440fx-7.2", DEVICES);
    assign(&mut d).expect("assigns");
    let dev = &d.devices;
    assert_eq!(dev.controllers[0].model.as_deref(), Some("pci-root"));
    let ctl = |kind: &str| {
        dev.controllers
            .iter()
            .find(|c| c.kind == kind)
            .expect("controller")
    };
    assert_eq!(at(&ctl("ide").info), "0000:00:01.1");
    assert_eq!(at(&ctl("usb").info), "0000:00:01.2");
    assert_eq!(at(&dev.videos[0].info), "0000:00:02.0", "primary video");
    // Then NICs, disks, balloon, RNG in libvirt's order.
    assert_eq!(at(&dev.interfaces[0].info), "0000:00:03.0");
    assert_eq!(at(&dev.disks[0].info), "0000:00:04.0");
    assert_eq!(at(&dev.disks[1].info), "none", "IDE disks are not PCI");
    assert_eq!(
        at(&dev.memballoon.as_ref().expect("balloon").info),
        "0000:00:05.0"
    );
    assert_eq!(at(&dev.rngs[0].info), "0000:00:06.0");
    // Assigning again changes nothing.
    let again = {
        let mut again = d.clone();
        assign(&mut again).expect("assigns");
        again
    };
    assert_eq!(again, d);
}

#[test]
fn given_addresses_are_kept_and_the_others_fill_the_gaps() {
    // The state a hot-unplug leaves: slot 3 free between 2 and 4.
    let mut d = def(
        "pc-i440fx-7.2",
        "<disk type='file'><source file='/a'/><target dev='vda' bus='virtio'/>\
         <address type='pci' domain='0x0000' bus='0x00' slot='0x04' function='0x0'/></disk>\
         <interface type='user'>\
         <address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x0'/></interface>\
         <memballoon model='virtio'/><rng model='virtio'><backend model='random'/></rng>",
    );
    assign(&mut d).expect("assigns");
    assert_eq!(at(&d.devices.disks[0].info), "0000:00:04.0");
    assert_eq!(at(&d.devices.interfaces[0].info), "0000:00:02.0");
    assert_eq!(
        at(&d.devices.memballoon.as_ref().expect("balloon").info),
        "0000:00:03.0"
    );
    assert_eq!(at(&d.devices.rngs[0].info), "0000:00:05.0");
}

#[test]
fn conflicts_and_invalid_addresses_are_refused_in_libvirts_words() {
    let pci = |slot: &str, function: &str| {
        format!(
            "<address type='pci' domain='0x0000' bus='0x00' slot='{slot}' function='{function}'/>"
        )
    };
    for (devices, want) in [
        (
            format!(
                "<interface type='user'>{}</interface><interface type='user'>{}</interface>",
                pci("0x05", "0x0"),
                pci("0x05", "0x0")
            ),
            "Attempted double use of PCI Address 0000:00:05.0",
        ),
        (
            format!("<interface type='user'>{}</interface>", pci("0x01", "0x0")),
            "Attempted double use of PCI Address 0000:00:01.0",
        ),
        (
            format!("<interface type='user'>{}</interface>", pci("0x00", "0x0")),
            "Invalid PCI address 0000:00:00.0. slot must be >= 1",
        ),
        (
            format!("<interface type='user'>{}</interface>", pci("0x20", "0x0")),
            "Invalid PCI address 0000:00:20.0. slot must be <= 31",
        ),
        (
            "<interface type='user'><address type='pci' domain='0x0000' bus='0x02' slot='0x01' function='0x0'/></interface>".into(),
            "Invalid PCI address 0000:02:01.0. Only PCI buses up to 0 are available",
        ),
        (
            format!("<controller type='ide' index='0'>{}</controller>", pci("0x05", "0x0")),
            "Primary IDE controller must have PCI address 0:0:1.1",
        ),
    ] {
        let mut d = def("pc-i440fx-7.2", &devices);
        let before = d.clone();
        let err = assign(&mut d).expect_err(&devices);
        assert_eq!(err.to_string(), want, "{devices}");
        assert_eq!(d, before, "nothing changed on a refusal");
    }
    let err = assign(&mut def(
        "pc",
        &format!(
            "<interface type='user'>{}</interface><interface type='user'>{}</interface>",
            pci("0x05", "0x0"),
            pci("0x05", "0x0")
        ),
    ))
    .expect_err("double use");
    let core = err.into_core("virDomainDefineXML");
    assert_eq!(core.code(), migrated_core::error::ErrorCode::XmlError);
}

#[test]
fn slots_run_out_cleanly() {
    let nics = "<interface type='user'/>".repeat(31);
    let err = assign(&mut def("pc", &nics)).expect_err("30 free slots");
    assert_eq!(err.to_string(), "No more available PCI slots");
    let nics = "<interface type='user'/>".repeat(30);
    assign(&mut def("pc", &nics)).expect("30 fit");
}

#[test]
fn q35_puts_pcie_devices_behind_root_ports() {
    let mut d = def(
        "pc-q35-7.2",
        "<controller type='sata' index='0'/>\
         <interface type='user'><model type='virtio'/></interface>\
         <graphics type='vnc'/><video><model type='vga'/></video>\
         <sound model='ich9'/>\
         <disk type='file'><source file='/a'/><target dev='vda' bus='virtio'/></disk>\
         <memballoon model='virtio'/>",
    );
    assign(&mut d).expect("assigns");
    let dev = &d.devices;
    let ports: Vec<_> = dev
        .controllers
        .iter()
        .filter(|c| c.model.as_deref() == Some("pcie-root-port"))
        .collect();
    assert_eq!(ports.len(), 3, "one per PCIe device");
    assert_eq!(dev.controllers[0].model.as_deref(), Some("pcie-root"));
    // The ports share slot 2 (function 0 multifunction), chassis = index,
    // port = slot * 8 + function.
    assert_eq!(at(&ports[0].info), "0000:00:02.0");
    assert_eq!(
        ports[0]
            .info
            .address
            .as_ref()
            .and_then(|a| a.field("multifunction")),
        Some("on")
    );
    assert_eq!(at(&ports[1].info), "0000:00:02.1");
    assert_eq!(at(&ports[2].info), "0000:00:02.2");
    assert_eq!(
        ports[1].target,
        vec![
            ("chassis".to_owned(), "2".to_owned()),
            ("port".to_owned(), "0x11".to_owned())
        ]
    );
    let sata = dev
        .controllers
        .iter()
        .find(|c| c.kind == "sata")
        .expect("sata");
    assert_eq!(at(&sata.info), "0000:00:1f.2");
    assert_eq!(at(&dev.videos[0].info), "0000:00:01.0");
    assert_eq!(at(&dev.sounds[0].info), "0000:00:1b.0");
    assert_eq!(at(&dev.interfaces[0].info), "0000:01:00.0");
    assert_eq!(at(&dev.disks[0].info), "0000:02:00.0");
    assert_eq!(
        at(&dev.memballoon.as_ref().expect("balloon").info),
        "0000:03:00.0"
    );
    // The command line names the buses.
    let props = PciAddress::of(&dev.disks[0].info)
        .expect("parses")
        .expect("address")
        .props(Chipset::Q35);
    assert_eq!(props[0], ("bus", "pci.2".into()));
    assert_eq!(props[1], ("addr", "0x0".into()));
    // A hot-plug finds no free root port on a running guest.
    let mut nic = DeviceInfo::default();
    let err = assign_hotplug(&d, &mut nic, true).expect_err("no port");
    assert_eq!(err.to_string(), "No more available PCI slots");
}

#[test]
fn hotplug_takes_the_first_free_slot_or_the_one_asked() {
    let mut d = def(
        "pc-i440fx-7.2",
        "<interface type='user'/><interface type='user'/><interface type='user'/>",
    );
    assign(&mut d).expect("assigns");
    // Slots 2, 3, 4; unplugging the second leaves 3 free.
    d.devices.interfaces.remove(1);
    let mut info = DeviceInfo::default();
    assign_hotplug(&d, &mut info, true).expect("free slot");
    assert_eq!(at(&info), "0000:00:03.0");
    let mut asked = DeviceInfo {
        address: Some(PciAddress::at(0, 9, 0).to_xml()),
        ..DeviceInfo::default()
    };
    assign_hotplug(&d, &mut asked, true).expect("asked slot");
    assert_eq!(at(&asked), "0000:00:09.0");
}

#[test]
fn implicit_devices_become_explicit() {
    let mut d = def(
        "pc",
        "<graphics type='vnc'/><input type='tablet' bus='usb'/>\
         <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>",
    );
    add_implicit_devices(&mut d);
    assign(&mut d).expect("assigns");
    let dev = &d.devices;
    assert_eq!(dev.videos.len(), 1);
    assert_eq!(at(&dev.videos[0].info), "0000:00:02.0");
    let usb = dev
        .controllers
        .iter()
        .find(|c| c.kind == "usb")
        .expect("usb");
    assert_eq!(usb.model.as_deref(), Some("piix3-uhci"));
    assert_eq!(at(&usb.info), "0000:00:01.2");
    let serial = dev
        .controllers
        .iter()
        .find(|c| c.kind == "virtio-serial")
        .expect("virtio-serial");
    assert_eq!(at(&serial.info), "0000:00:03.0");
}
