//! From a domain definition to a [`LaunchSpec`].
//!
//! The domain XML model (`migrated_core::xml`) can describe more than this
//! driver runs; everything it cannot honour is refused here with
//! [`Error::InvalidConfig`] naming the construct, never silently dropped.
//! The platform and the devices beyond disks, NICs, displays and the serial
//! port are in the `devices` submodule.

use std::path::PathBuf;

use migrated_core::xml::{
    CharDevice, CharTarget, CharType, DeviceInfo, DiskDevice, DomainDef, DomainType, GraphicsType,
    InterfaceType,
};
use tracing::warn;

use crate::command::{
    find_emulator, Accel, Disk, Graphics, Kernel, LaunchSpec, Monitor, Nic, NicBackend, Serial,
    DEFAULT_MACHINE,
};
use crate::error::{Error, Result};

mod devices;
pub(crate) mod pci;

pub(crate) use pci::Chipset;

/// Where the first VNC/SPICE listens when the XML names no address.
const DEFAULT_LISTEN: &str = "127.0.0.1";

/// Builds the launch spec for `def`. The monitor and pidfile are placeholders
/// that [`crate::process::launch`] replaces.
///
/// # Errors
/// [`Error::InvalidConfig`] for constructs this driver cannot run, the
/// emulator errors of [`find_emulator`].
pub fn launch_spec(def: &DomainDef) -> Result<LaunchSpec> {
    let accel = match def.domain_type {
        DomainType::Kvm => match Accel::detect() {
            Accel::Kvm => Accel::Kvm,
            Accel::Tcg => {
                warn!(name = %def.name, "/dev/kvm is not usable; running the kvm domain under tcg");
                Accel::Tcg
            }
        },
        DomainType::Qemu => Accel::Tcg,
        other => {
            return Err(invalid(format!(
                "domain type '{other}' is not run by the qemu driver"
            )))
        }
    };
    let emulator = find_emulator(def.devices.emulator.as_deref().map(std::path::Path::new))?;
    let mut spec = LaunchSpec::new(emulator, def.name.clone(), def.uuid, Monitor::Fd(-1));
    spec.accel = accel;
    check_os(def)?;
    spec.machine = def
        .os
        .machine
        .clone()
        .unwrap_or_else(|| DEFAULT_MACHINE.into());
    spec.memory_mib = def.memory_kib.div_ceil(1024);
    // vCPUs plugged after boot are plugged again once QEMU is up.
    spec.vcpus = def.boot_vcpus();
    spec.max_vcpus = def.vcpus;
    spec.cpu = cpu_model(def, accel)?;
    let chipset = chipset(def);
    spec.disks = def
        .devices
        .disks
        .iter()
        .map(|d| disk(d, chipset))
        .collect::<Result<_>>()?;
    spec.nics = def
        .devices
        .interfaces
        .iter()
        .map(|i| nic(i, chipset))
        .collect::<Result<_>>()?;
    spec.graphics = def
        .devices
        .graphics
        .iter()
        .map(graphics)
        .collect::<Result<_>>()?;
    spec.serial = serial(def)?;
    devices::realise(def, &mut spec)?;
    spec.balloon = has_balloon(def);
    if let Some(balloon) = def.devices.memballoon.as_ref().filter(|_| spec.balloon) {
        spec.balloon_pci = pci::placement(&balloon.info, chipset)?;
    }
    spec.kernel = def.os.kernel.as_ref().map(|path| Kernel {
        path: PathBuf::from(path),
        cmdline: def.os.cmdline.clone(),
        initrd: def.os.initrd.as_ref().map(PathBuf::from),
    });
    Ok(spec)
}

/// Puts each device's QEMU id into the live definition `def` of a started
/// guest as its `<alias>`, as libvirt's live XML has them.
pub fn set_aliases(def: &mut DomainDef) {
    devices::set_aliases(def);
}

/// The chipset of `def`'s machine type.
fn chipset(def: &DomainDef) -> Chipset {
    Chipset::of(def.os.machine.as_deref().unwrap_or(DEFAULT_MACHINE))
}

fn check_os(def: &DomainDef) -> Result<()> {
    if def.os.os_type != "hvm" {
        return Err(invalid(format!("os type '{}' (only hvm)", def.os.os_type)));
    }
    if let Some(arch) = def.os.arch.as_deref() {
        if arch != "x86_64" && arch != "i686" {
            return Err(invalid(format!("architecture '{arch}' (only x86_64)")));
        }
    }
    if def.os.loader.is_some() || def.os.nvram.is_some() {
        return Err(invalid("custom firmware (<loader>, <nvram>)"));
    }
    Ok(())
}

fn cpu_model(def: &DomainDef, accel: Accel) -> Result<Option<String>> {
    let Some(cpu) = &def.cpu else { return Ok(None) };
    match cpu.mode.as_deref() {
        Some("host-passthrough") | Some("host-model") => match accel {
            Accel::Kvm => Ok(Some("host".into())),
            // TCG has no host CPU to pass through; "max" is its closest.
            Accel::Tcg => Ok(Some("max".into())),
        },
        Some("custom") | None => Ok(cpu.model.as_ref().map(|m| m.name.clone())),
        Some(other) => Err(invalid(format!("cpu mode '{other}'"))),
    }
}

/// The command-line disk of `d`.
///
/// # Errors
/// [`Error::InvalidConfig`] for a disk this driver cannot run.
pub(crate) fn disk(d: &migrated_core::xml::Disk, chipset: Chipset) -> Result<Disk> {
    if d.device != DiskDevice::Disk {
        return Err(invalid(format!("disk device '{}' (only disk)", d.device)));
    }
    let source = d
        .source
        .as_ref()
        .filter(|s| !s.path.is_empty())
        .ok_or_else(|| invalid(format!("disk {} has no source", d.target.dev)))?;
    let bus = match d.target.bus.as_deref() {
        Some(bus) => bus.to_owned(),
        None if d.target.dev.starts_with("vd") => "virtio".into(),
        None => "ide".into(),
    };
    Ok(Disk {
        source: PathBuf::from(&source.path),
        format: d
            .driver
            .as_ref()
            .and_then(|drv| drv.format.clone())
            .unwrap_or_else(|| "raw".into()),
        target: d.target.dev.clone(),
        bus,
        readonly: d.readonly,
        pci: pci::placement(&d.info, chipset)?,
    })
}

/// The command-line NIC of `i`.
///
/// # Errors
/// [`Error::InvalidConfig`] for an interface this driver cannot run.
pub(crate) fn nic(i: &migrated_core::xml::Interface, chipset: Chipset) -> Result<Nic> {
    let backend = match i.kind {
        InterfaceType::User => NicBackend::User,
        InterfaceType::Bridge => NicBackend::Bridge {
            bridge: i
                .source
                .as_ref()
                .and_then(|s| s.bridge.clone())
                .ok_or_else(|| invalid("bridge interface without <source bridge=…>"))?,
        },
        other => return Err(invalid(format!("interface type '{other}'"))),
    };
    let model = match i.model.as_deref() {
        None | Some("virtio") => "virtio-net-pci".to_owned(),
        Some(m @ ("e1000" | "e1000e" | "rtl8139" | "virtio-net-pci")) => m.to_owned(),
        Some(other) => return Err(invalid(format!("interface model '{other}'"))),
    };
    Ok(Nic {
        backend,
        mac: i.mac.clone(),
        model,
        pci: pci::placement(&i.info, chipset)?,
    })
}

fn graphics(g: &migrated_core::xml::Graphics) -> Result<Graphics> {
    let listen = g
        .listen
        .clone()
        .or_else(|| g.listens.iter().find_map(|l| l.address.clone()))
        .unwrap_or_else(|| DEFAULT_LISTEN.into());
    let auto = g.autoport == Some(true) || g.port.map_or(true, |p| p < 0);
    match g.kind {
        GraphicsType::Vnc => Ok(Graphics::Vnc {
            listen,
            port: if auto {
                None
            } else {
                g.port.and_then(|p| u16::try_from(p).ok())
            },
        }),
        GraphicsType::Spice => {
            let port = if auto {
                free_graphics_port(&listen)?
            } else {
                g.port
                    .and_then(|p| u16::try_from(p).ok())
                    .ok_or_else(|| invalid("spice graphics need a port"))?
            };
            Ok(Graphics::Spice { listen, port })
        }
    }
}

/// Ports tried for automatic SPICE ports (libvirt's `remote_display_port_min`
/// to `_max`); QEMU's SPICE server cannot pick a port itself.
const GRAPHICS_PORTS: std::ops::RangeInclusive<u16> = 5900..=65535;

/// The first port of [`GRAPHICS_PORTS`] nothing listens on at `listen` (the
/// guest's QEMU binds it right after; as with libvirt's port allocator, a
/// process racing for the same port makes that start fail cleanly).
fn free_graphics_port(listen: &str) -> Result<u16> {
    let host = listen.trim_start_matches('[').trim_end_matches(']');
    GRAPHICS_PORTS
        .into_iter()
        .find(|&port| std::net::TcpListener::bind((host, port)).is_ok())
        .ok_or_else(|| invalid(format!("no free graphics port on {listen}")))
}

/// Whether the guest gets a balloon device (`<memballoon model='virtio'/>`).
pub(crate) fn has_balloon(def: &DomainDef) -> bool {
    def.devices
        .memballoon
        .as_ref()
        .is_some_and(|b| b.model == "virtio")
}

fn serial(def: &DomainDef) -> Result<Serial> {
    check_consoles(def)?;
    // A console with no serial port stands for serial port 0 (libvirt adds it).
    let Some(first) = def
        .devices
        .serials
        .first()
        .or_else(|| def.devices.consoles.first())
    else {
        return Ok(Serial::None);
    };
    if def.devices.serials.len() > 1 {
        return Err(invalid("more than one serial port"));
    }
    match first.kind {
        CharType::Pty => Ok(Serial::Pty),
        CharType::Null => Ok(Serial::None),
        CharType::File => first
            .source
            .as_ref()
            .and_then(|s| s.path.clone())
            .map(|p| Serial::File(PathBuf::from(p)))
            .ok_or_else(|| invalid("file serial port without a path")),
        other => Err(invalid(format!("serial port type '{other}'"))),
    }
}

/// libvirt's `virDomainDefAddConsoleCompat` for a started guest: a guest
/// with a serial port and no console gets the console that mirrors port 0,
/// so the live XML has the `<console tty=…>` that `virsh ttyconsole` and
/// other tools read.
pub(crate) fn add_console_compat(def: &mut DomainDef) {
    let devices = &mut def.devices;
    if !devices.consoles.is_empty() {
        return;
    }
    let Some(port) = devices.serials.first() else {
        return;
    };
    devices.consoles.push(CharDevice {
        kind: port.kind,
        tty: None,
        source: port.source.clone(),
        target: Some(CharTarget {
            kind: Some("serial".into()),
            port: Some(0),
            ..CharTarget::default()
        }),
        log: Vec::new(),
        info: DeviceInfo::default(),
    });
}

/// Consoles must mirror serial port 0 (`<target type='serial'/>`, libvirt's
/// default for x86): like libvirt, the port's own definition wins over the
/// console's. A virtio console is not realised.
fn check_consoles(def: &DomainDef) -> Result<()> {
    for console in &def.devices.consoles {
        let target = console.target.as_ref();
        match target.and_then(|t| t.kind.as_deref()) {
            None | Some("serial") if target.and_then(|t| t.port).unwrap_or(0) == 0 => {}
            None | Some("serial") => return Err(invalid("console on a serial port other than 0")),
            Some(other) => return Err(invalid(format!("console target type '{other}'"))),
        }
    }
    if def.devices.consoles.len() > 1 {
        return Err(invalid("more than one console"));
    }
    Ok(())
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::InvalidConfig {
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "<domain type='qemu'>
      <name>web1</name>
      <uuid>c7a5fdbd-cdaf-9455-926a-d65c16db1809</uuid>
      <memory unit='KiB'>262144</memory>
      <vcpu>2</vcpu>
      <os><type arch='x86_64' machine='pc-i440fx-7.2'>hvm</type>
        <kernel>/k/guest.elf</kernel><cmdline>dirty_mib=16</cmdline></os>
      <devices>
        <emulator>/bin/sh</emulator>
        DEVICES
      </devices>
    </domain>";

    fn def(devices: &str) -> DomainDef {
        DomainDef::parse(&BASE.replace("DEVICES", devices)).expect("test xml parses")
    }

    #[test]
    fn maps_the_basics() {
        let spec = launch_spec(&def("")).expect("spec");
        assert_eq!(spec.name, "web1");
        assert_eq!(spec.accel, Accel::Tcg);
        assert_eq!(spec.machine, "pc-i440fx-7.2");
        assert_eq!(spec.memory_mib, 256);
        assert_eq!(spec.vcpus, 2);
        assert_eq!(spec.emulator, PathBuf::from("/bin/sh"));
        let kernel = spec.kernel.expect("kernel");
        assert_eq!(kernel.path, PathBuf::from("/k/guest.elf"));
        assert_eq!(kernel.cmdline.as_deref(), Some("dirty_mib=16"));
        assert_eq!(spec.serial, Serial::None);
    }

    #[test]
    fn maps_devices() {
        let spec = launch_spec(&def(
            "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
               <source file='/img/a.qcow2'/><target dev='vda' bus='virtio'/></disk>
             <interface type='user'><mac address='52:54:00:00:00:01'/><model type='virtio'/></interface>
             <interface type='bridge'><source bridge='br0'/><model type='e1000'/></interface>
             <graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1'/>
             <serial type='pty'><target port='0'/></serial>
             <memballoon model='virtio'/>",
        ))
        .expect("spec");
        assert_eq!(spec.disks[0].format, "qcow2");
        assert_eq!(spec.disks[0].source, PathBuf::from("/img/a.qcow2"));
        assert_eq!(spec.nics[0].model, "virtio-net-pci");
        assert_eq!(spec.nics[0].mac.as_deref(), Some("52:54:00:00:00:01"));
        assert_eq!(
            spec.nics[1].backend,
            NicBackend::Bridge {
                bridge: "br0".into()
            }
        );
        assert_eq!(
            spec.graphics,
            vec![Graphics::Vnc {
                listen: "127.0.0.1".into(),
                port: None
            }]
        );
        assert_eq!(spec.serial, Serial::Pty);
        assert!(spec.balloon);
    }

    #[test]
    fn refuses_what_it_cannot_run() {
        for devices in [
            "<interface type='network'><source network='default'/></interface>",
            "<disk type='file' device='cdrom'><target dev='hdc' bus='ide'/></disk>",
            "<graphics type='spice' autoport='no' port='70000'/>",
            "<serial type='unix'><source mode='bind' path='/tmp/s'/></serial>",
        ] {
            let err = launch_spec(&def(devices)).expect_err(devices);
            assert!(
                matches!(err, Error::InvalidConfig { .. }),
                "{devices}: {err:?}"
            );
        }
    }

    #[test]
    fn automatic_spice_port_is_a_free_one() {
        let spec = launch_spec(&def(
            "<graphics type='spice' autoport='yes' listen='127.0.0.1'/>",
        ))
        .expect("spec");
        let [Graphics::Spice { listen, port }] = spec.graphics.as_slice() else {
            panic!("{:?}", spec.graphics);
        };
        assert_eq!(listen, "127.0.0.1");
        assert!(GRAPHICS_PORTS.contains(port));
        // Free when chosen: binding it now works (nothing else took it since).
        let taken = std::net::TcpListener::bind(("127.0.0.1", *port));
        assert!(taken.is_ok(), "port {port} was not free");
        // And a port in use is skipped.
        let spec = launch_spec(&def(
            "<graphics type='spice' autoport='yes' listen='127.0.0.1'/>",
        ))
        .expect("spec");
        assert!(
            !matches!(spec.graphics.as_slice(), [Graphics::Spice { port: p, .. }] if p == port),
            "chose port {port} again while it is bound"
        );
    }

    #[test]
    fn missing_emulator_in_the_xml_is_reported() {
        let mut d = def("");
        d.devices.emulator = Some("/nonexistent/qemu".into());
        assert!(matches!(
            launch_spec(&d),
            Err(Error::EmulatorNotExecutable { .. })
        ));
    }
}
