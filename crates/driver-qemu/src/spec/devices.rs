//! The guest-visible platform beyond disks, NICs and displays: `<features>`,
//! `<clock>`, `<pm>`, controllers, inputs, channels, video, sound, the
//! watchdog and RNGs, realised the way libvirt 9.0 does for QEMU 7.2
//! (`src/qemu/qemu_command.c`): the same QEMU device types and ids, so a
//! guest gets the device set libvirt would give it.
//!
//! What is not realised is refused with [`Error::InvalidConfig`] (libvirt's
//! "unsupported configuration"), except what is harmless and common: the
//! root PCI controller, the built-in IDE/SATA controller, PS/2 inputs (the
//! machine's i8042), `<acpi/>`/`<apic/>`/`<pae/>` (QEMU's defaults), a
//! console that mirrors the serial port. Every PCI device is placed at its
//! `<address type='pci'/>` (see [`super::pci`], which assigns them when the
//! domain is defined); a device without one (a definition from before
//! addresses were assigned) takes QEMU's next free slot in `-device` order.

use migrated_core::xml::{CharDevice, CharType, DomainDef, GraphicsType};

use super::invalid;
use super::pci::{placement, Chipset, PciAddress};
use crate::command::{
    Accel, Audiodev, Channel, ChannelSource, Device, LaunchSpec, MachineOptions, Rng, RngBackend,
    Rtc, RtcBase, Watchdog,
};
use crate::error::Result;

/// The device that carries ACPI power management (`-global` target).
fn pm_device(chipset: Chipset) -> &'static str {
    match chipset {
        Chipset::I440fx => "PIIX4_PM",
        Chipset::Q35 => "ICH9-LPC",
    }
}

/// Fills the platform and device parts of `spec` from `def`.
pub(super) fn realise(def: &DomainDef, spec: &mut LaunchSpec) -> Result<()> {
    let chipset = Chipset::of(&spec.machine);
    features(def, spec)?;
    clock(def, spec)?;
    power_management(def, chipset, spec);
    controllers(def, chipset, spec)?;
    inputs(def, chipset, spec)?;
    channels(def, spec)?;
    spec.video = match video(def)? {
        Some(device) => {
            let at = match def.devices.videos.first() {
                Some(v) => placement(&v.info, chipset)?,
                None => Vec::new(),
            };
            Some(device.placed(&at))
        }
        None => None,
    };
    sound(def, chipset, spec)?;
    watchdog(def, chipset, spec)?;
    spec.rngs = def
        .devices
        .rngs
        .iter()
        .map(|r| rng(r, chipset))
        .collect::<Result<_>>()?;
    refuse_unrealised(def)
}

fn features(def: &DomainDef, spec: &mut LaunchSpec) -> Result<()> {
    let mut options = MachineOptions::default();
    for feature in &def.features {
        let state = || -> Result<bool> {
            match feature.attrs.iter().find(|(k, _)| k == "state") {
                None => Ok(true),
                Some((_, v)) if v == "on" => Ok(true),
                Some((_, v)) if v == "off" => Ok(false),
                Some((_, v)) => Err(invalid(format!("feature {} state '{v}'", feature.name))),
            }
        };
        match feature.name.as_str() {
            // On in QEMU by default, and a plain <pae/> changes nothing on x86_64.
            "acpi" | "apic" | "pae" if feature.attrs.is_empty() => {}
            "vmport" => options.vmport = Some(state()?),
            "smm" if feature.attrs.iter().all(|(k, _)| k == "state") => {
                options.smm = Some(state()?);
            }
            "vmcoreinfo" => spec.vmcoreinfo = state()?,
            other if feature.attrs.is_empty() => {
                return Err(invalid(format!("feature '{other}'")));
            }
            other => {
                return Err(invalid(format!(
                    "feature '{other}' with {}",
                    attrs_text(&feature.attrs)
                )))
            }
        }
    }
    spec.machine_options = options;
    Ok(())
}

fn clock(def: &DomainDef, spec: &mut LaunchSpec) -> Result<()> {
    let Some(clock) = &def.clock else {
        return Ok(());
    };
    if let Some((key, _)) = clock.attrs.first() {
        return Err(invalid(format!("clock attribute '{key}'")));
    }
    let base = match clock.offset.as_deref() {
        None | Some("utc") => RtcBase::Utc,
        Some("localtime") => RtcBase::Localtime,
        Some(other) => return Err(invalid(format!("clock offset '{other}'"))),
    };
    let mut rtc = Rtc {
        base,
        clock: None,
        driftfix_slew: false,
    };
    for timer in &clock.timers {
        let attr = |name: &str| {
            timer
                .attrs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let unsupported = || {
            invalid(format!(
                "timer '{}' with {}",
                timer.name,
                attrs_text(&timer.attrs)
            ))
        };
        let known = |names: &[&str]| timer.attrs.iter().all(|(k, _)| names.contains(&k.as_str()));
        match timer.name.as_str() {
            "rtc" if known(&["tickpolicy", "track", "present"]) => {
                match attr("tickpolicy") {
                    None | Some("delay") => {}
                    Some("catchup") => rtc.driftfix_slew = true,
                    Some(_) => return Err(unsupported()),
                }
                rtc.clock = match attr("track") {
                    None => None,
                    Some("guest") => Some("vm"),
                    Some("wall") => Some("host"),
                    Some("realtime") => Some("rt"),
                    Some(_) => return Err(unsupported()),
                };
                if attr("present").is_some_and(|p| p != "yes") {
                    return Err(unsupported());
                }
            }
            "pit" if known(&["tickpolicy", "present"]) => {
                if attr("present").is_some_and(|p| p != "yes") {
                    return Err(unsupported());
                }
                // The policy applies to the in-kernel PIT only; TCG's PIT
                // has none.
                let policy = match attr("tickpolicy") {
                    None | Some("delay") => "delay",
                    Some("discard") => "discard",
                    Some(_) => return Err(unsupported()),
                };
                if spec.accel == Accel::Kvm {
                    spec.globals
                        .push(format!("kvm-pit.lost_tick_policy={policy}"));
                }
            }
            "hpet" if known(&["present"]) => match attr("present") {
                Some("no") => spec.machine_options.hpet = Some(false),
                None | Some("yes") => {}
                Some(_) => return Err(unsupported()),
            },
            _ => return Err(unsupported()),
        }
    }
    spec.rtc = Some(rtc);
    Ok(())
}

/// `a='1' b='2'`, for naming an element in an error.
fn attrs_text(attrs: &[(String, String)]) -> String {
    attrs
        .iter()
        .map(|(k, v)| format!("{k}='{v}'"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn power_management(def: &DomainDef, chipset: Chipset, spec: &mut LaunchSpec) {
    let Some(pm) = &def.pm else { return };
    for (state, enabled) in [("s3", pm.suspend_to_mem), ("s4", pm.suspend_to_disk)] {
        if let Some(enabled) = enabled {
            spec.globals.push(format!(
                "{}.disable_{state}={}",
                pm_device(chipset),
                u8::from(!enabled)
            ));
        }
    }
}

/// The USB controller (id `usb`) of `model` (`None`: libvirt's default for
/// the machine), with `ports` on an XHCI; `None` for model `none`.
fn usb_controller(
    model: Option<&str>,
    ports: Option<u32>,
    chipset: Chipset,
    info: Option<&migrated_core::xml::DeviceInfo>,
) -> Result<Option<Device>> {
    let driver = match model {
        None => match chipset {
            Chipset::I440fx => "piix3-usb-uhci",
            Chipset::Q35 => "qemu-xhci",
        },
        Some("piix3-uhci") => "piix3-usb-uhci",
        Some("piix4-uhci") => "piix4-usb-uhci",
        Some("ehci") => "usb-ehci",
        Some("pci-ohci") => "pci-ohci",
        Some("nec-xhci") => "nec-usb-xhci",
        Some("qemu-xhci") => "qemu-xhci",
        Some("none") => return Ok(None),
        Some(other) => return Err(invalid(format!("USB controller model '{other}'"))),
    };
    let mut device = Device::new(driver, "usb");
    let at = match info {
        Some(info) => placement(info, chipset)?,
        None => Vec::new(),
    };
    if !at.is_empty() {
        device = device.placed(&at);
    } else if driver == "piix3-usb-uhci" && chipset == Chipset::I440fx {
        // Function 2 of the PIIX3 slot, where libvirt (and real hardware) has it.
        let piix3 = PciAddress {
            slot: 1,
            function: 2,
            ..PciAddress::default()
        };
        device = device.placed(&piix3.props(chipset));
    }
    if let Some(ports) = ports.filter(|_| driver.ends_with("xhci")) {
        device = device.with("p2", ports).with("p3", ports);
    }
    Ok(Some(device))
}

/// `0x10` or `16`.
fn parse_number(value: &str) -> Option<u32> {
    match value.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => value.parse().ok(),
    }
}

fn controllers(def: &DomainDef, chipset: Chipset, spec: &mut LaunchSpec) -> Result<()> {
    let mut usb = None;
    let mut serial = Vec::new();
    let mut root_ports = Vec::new();
    for ctl in &def.devices.controllers {
        let index = ctl.index.unwrap_or(0);
        match (ctl.kind.as_str(), ctl.model.as_deref()) {
            ("usb", _) if usb.is_some() || index != 0 || ctl.master_startport.is_some() => {
                return Err(invalid(
                    "more than one USB controller (only index 0, without companions)",
                ));
            }
            ("usb", model) => {
                usb = Some(usb_controller(model, ctl.ports, chipset, Some(&ctl.info))?);
            }
            ("virtio-serial", None | Some("virtio")) => {
                let mut device = Device::new("virtio-serial-pci", format!("virtio-serial{index}"));
                if let Some(ports) = ctl.ports {
                    device = device.with("max_ports", ports);
                }
                if let Some(vectors) = ctl.vectors {
                    device = device.with("vectors", vectors);
                }
                serial.push(device.placed(&placement(&ctl.info, chipset)?));
            }
            // Built into the machine.
            ("pci", Some("pci-root")) if chipset == Chipset::I440fx && index == 0 => {}
            ("pci", Some("pcie-root")) if chipset == Chipset::Q35 && index == 0 => {}
            ("ide", _) if chipset == Chipset::I440fx && index == 0 => {}
            ("sata", _) if chipset == Chipset::Q35 && index == 0 => {}
            ("pci", Some("pcie-root-port")) if chipset == Chipset::Q35 => {
                let target = |name: &str| -> Result<Option<u32>> {
                    ctl.target
                        .iter()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| {
                            parse_number(v).ok_or_else(|| {
                                invalid(format!("pcie-root-port {index} {name} '{v}'"))
                            })
                        })
                        .transpose()
                };
                let mut device = Device::new("pcie-root-port", format!("pci.{index}"))
                    .with("bus", "pcie.0")
                    .with("chassis", target("chassis")?.unwrap_or(index));
                if let Some(port) = target("port")? {
                    device = device.with("port", port);
                }
                root_ports.push(device.placed(&placement(&ctl.info, chipset)?));
            }
            (kind, model) => {
                return Err(invalid(match model {
                    Some(model) => format!("{kind} controller model '{model}'"),
                    None => format!("{kind} controller index {index}"),
                }))
            }
        }
    }
    // A USB input with no <controller type='usb'> gets libvirt's implicit one.
    let usb = match usb {
        Some(usb) => usb,
        None if def.devices.inputs.iter().any(|i| input_bus(i) == "usb") => {
            usb_controller(None, None, chipset, None)?
        }
        None => None,
    };
    // Channels with no <controller type='virtio-serial'> get the implicit one.
    if serial.is_empty() && def.devices.channels.iter().any(is_virtio_channel) {
        serial.push(Device::new("virtio-serial-pci", "virtio-serial0"));
    }
    spec.controllers = root_ports.into_iter().chain(usb).chain(serial).collect();
    Ok(())
}

/// An input's bus, with libvirt's defaults (a tablet is USB, the rest PS/2).
fn input_bus(input: &migrated_core::xml::Input) -> &str {
    match input.bus.as_deref() {
        Some(bus) => bus,
        None if input.kind == "tablet" => "usb",
        None => "ps2",
    }
}

fn inputs(def: &DomainDef, chipset: Chipset, spec: &mut LaunchSpec) -> Result<()> {
    let has_usb = spec.controllers.iter().any(|c| c.id() == Some("usb"));
    // Ports named by <address type='usb'>; the others take the next free ones.
    let taken: Vec<&str> = def
        .devices
        .inputs
        .iter()
        .filter_map(|i| i.info.address.as_ref().filter(|a| a.kind == "usb"))
        .filter_map(|a| a.field("port"))
        .collect();
    let mut free_ports = (1u32..)
        .map(|p| p.to_string())
        .filter(|p| !taken.contains(&p.as_str()));
    for (i, input) in def.devices.inputs.iter().enumerate() {
        let id = format!("input{i}");
        let bus = input_bus(input);
        let device = match (input.kind.as_str(), bus) {
            // The machine's i8042 is the PS/2 mouse and keyboard.
            ("mouse" | "keyboard", "ps2") => continue,
            (kind @ ("mouse" | "tablet" | "keyboard"), "usb") => {
                if !has_usb {
                    return Err(invalid(format!(
                        "USB input '{kind}' without a USB controller"
                    )));
                }
                let driver = match kind {
                    "mouse" => "usb-mouse",
                    "tablet" => "usb-tablet",
                    _ => "usb-kbd",
                };
                let port = match input.info.address.as_ref().filter(|a| a.kind == "usb") {
                    Some(address) => {
                        if address.field("bus").is_some_and(|b| b != "0") {
                            return Err(invalid("USB input on a USB bus other than 0"));
                        }
                        address
                            .field("port")
                            .ok_or_else(|| invalid("USB address without a port"))?
                            .to_owned()
                    }
                    None => free_ports.next().unwrap_or_default(),
                };
                Device::new(driver, id)
                    .with("bus", "usb.0")
                    .with("port", port)
            }
            (kind @ ("mouse" | "tablet" | "keyboard"), "virtio") => {
                Device::new(&format!("virtio-{kind}-pci"), id)
                    .placed(&placement(&input.info, chipset)?)
            }
            (kind, bus) => return Err(invalid(format!("input type '{kind}' on bus '{bus}'"))),
        };
        spec.inputs.push(device);
    }
    Ok(())
}

/// Whether the guest has a SPICE display (needed by spicevmc and spice audio).
fn has_spice(def: &DomainDef) -> bool {
    def.devices
        .graphics
        .iter()
        .any(|g| g.kind == GraphicsType::Spice)
}

fn is_virtio_channel(channel: &CharDevice) -> bool {
    channel
        .target
        .as_ref()
        .is_some_and(|t| t.kind.as_deref() == Some("virtio"))
}

fn channels(def: &DomainDef, spec: &mut LaunchSpec) -> Result<()> {
    let has_spice = has_spice(def);
    // Port 0 of each bus is reserved for a console, as libvirt does; ports
    // that addresses name are not given to the others.
    let taken: Vec<&str> = def
        .devices
        .channels
        .iter()
        .filter_map(|c| {
            c.info
                .address
                .as_ref()
                .filter(|a| a.kind == "virtio-serial")
        })
        .filter_map(|a| a.field("port"))
        .collect();
    let mut free_ports = (1u32..).filter(|p| !taken.contains(&p.to_string().as_str()));
    for (index, channel) in def.devices.channels.iter().enumerate() {
        let target = channel
            .target
            .as_ref()
            .filter(|_| is_virtio_channel(channel))
            .ok_or_else(|| {
                invalid(format!(
                    "channel target type '{}' (only virtio)",
                    channel
                        .target
                        .as_ref()
                        .and_then(|t| t.kind.as_deref())
                        .unwrap_or("none")
                ))
            })?;
        let name = target
            .name
            .clone()
            .ok_or_else(|| invalid("virtio channel without a target name"))?;
        let source = match channel.kind {
            CharType::Unix => {
                let source = channel.source.as_ref();
                if source
                    .and_then(|s| s.mode.as_deref())
                    .is_some_and(|m| m != "bind")
                {
                    return Err(invalid(format!(
                        "channel {name}: unix mode other than bind"
                    )));
                }
                let path = source.and_then(|s| s.path.as_ref());
                // The name becomes a file name in the channel directory.
                if path.is_none() && (name.contains('/') || name.starts_with('.')) {
                    return Err(invalid(format!(
                        "channel name '{name}' without a source path"
                    )));
                }
                ChannelSource::Unix(path.map(std::path::PathBuf::from))
            }
            CharType::Spicevmc if has_spice => ChannelSource::SpiceVmc,
            CharType::Spicevmc => {
                return Err(invalid(format!(
                    "channel {name}: spicevmc without SPICE graphics"
                )))
            }
            other => return Err(invalid(format!("channel {name}: type '{other}'"))),
        };
        let (controller, bus, port) = match channel.info.address.as_ref() {
            Some(a) if a.kind == "virtio-serial" => {
                let number = |field: &str, default: u32| -> Result<u32> {
                    a.field(field).map_or(Ok(default), |v| {
                        v.parse()
                            .map_err(|_| invalid(format!("channel {name}: {field} '{v}'")))
                    })
                };
                let port = match a.field("port") {
                    Some(_) => number("port", 0)?,
                    None => free_ports.next().unwrap_or_default(),
                };
                (number("controller", 0)?, number("bus", 0)?, port)
            }
            _ => (0, 0, free_ports.next().unwrap_or_default()),
        };
        let bus = format!("virtio-serial{controller}.{bus}");
        if !spec
            .controllers
            .iter()
            .any(|c| c.id() == Some(&format!("virtio-serial{controller}")))
        {
            return Err(invalid(format!(
                "channel {name} on virtio-serial controller {controller}, which is not defined"
            )));
        }
        spec.channels.push(Channel {
            source,
            name,
            index,
            bus,
            port,
        });
    }
    Ok(())
}

fn video(def: &DomainDef) -> Result<Option<Device>> {
    let Some(first) = def.devices.videos.first() else {
        // libvirt adds a default adapter for a display.
        return Ok((!def.devices.graphics.is_empty()).then(|| Device::new("VGA", "video0")));
    };
    if def.devices.videos.len() > 1 {
        return Err(invalid("more than one video device"));
    }
    let Some(model) = &first.model else {
        return Ok(Some(Device::new("VGA", "video0")));
    };
    let device = |driver: &str| Device::new(driver, "video0");
    let heads = model.heads.unwrap_or(1);
    Ok(Some(match model.kind.as_str() {
        "none" => return Ok(None),
        "vga" => match model.vram {
            Some(vram) => device("VGA").with("vgamem_mb", vram / 1024),
            None => device("VGA"),
        },
        "cirrus" => device("cirrus-vga"),
        "vmvga" => device("vmware-svga"),
        "bochs" => match model.vram {
            Some(vram) => device("bochs-display").with("vgamem", u64::from(vram) * 1024),
            None => device("bochs-display"),
        },
        "virtio" => device("virtio-vga").with("max_outputs", heads),
        "qxl" => {
            let mut d = device("qxl-vga").with("max_outputs", heads);
            if let Some(ram) = model.ram {
                d = d.with("ram_size", u64::from(ram) * 1024);
            }
            if let Some(vram) = model.vram {
                d = d.with("vram_size", u64::from(vram) * 1024);
            }
            if let Some(vram64) = model.vram64 {
                d = d.with("vram64_size_mb", vram64 / 1024);
            }
            if let Some(vgamem) = model.vgamem {
                d = d.with("vgamem_mb", vgamem / 1024);
            }
            d
        }
        other => return Err(invalid(format!("video model '{other}'"))),
    }))
}

fn sound(def: &DomainDef, chipset: Chipset, spec: &mut LaunchSpec) -> Result<()> {
    let has_spice = has_spice(def);
    for audio in &def.devices.audios {
        let driver = match audio.kind.as_str() {
            "none" => "none",
            "spice" if has_spice => "spice",
            other => return Err(invalid(format!("audio type '{other}'"))),
        };
        spec.audiodevs.push(Audiodev {
            id: audio.id.unwrap_or(1),
            driver,
        });
    }
    if def.devices.sounds.is_empty() {
        return Ok(());
    }
    // Sound cards play into the first back-end; libvirt adds a silent one.
    let audio = match spec.audiodevs.first() {
        Some(a) => a.id,
        None => {
            spec.audiodevs.push(Audiodev {
                id: 1,
                driver: "none",
            });
            1
        }
    };
    let audiodev = format!("audio{audio}");
    for (i, sound) in def.devices.sounds.iter().enumerate() {
        let id = format!("sound{i}");
        let at = placement(&sound.info, chipset)?;
        let (driver, hda) = match sound.model.as_str() {
            "ich6" => ("intel-hda", true),
            "ich9" => ("ich9-intel-hda", true),
            "ac97" => ("AC97", false),
            "es1370" => ("ES1370", false),
            "sb16" => ("sb16", false),
            other => return Err(invalid(format!("sound model '{other}'"))),
        };
        if hda {
            // HDA controllers play through a codec, as libvirt's default duplex one.
            spec.sounds
                .push(Device::new(driver, id.clone()).placed(&at));
            spec.sounds.push(
                Device::new("hda-duplex", format!("{id}-codec0"))
                    .with("bus", format!("{id}.0"))
                    .with("cad", 0)
                    .with("audiodev", audiodev.clone()),
            );
        } else {
            spec.sounds.push(
                Device::new(driver, id)
                    .with("audiodev", audiodev.clone())
                    .placed(&at),
            );
        }
    }
    Ok(())
}

fn watchdog(def: &DomainDef, chipset: Chipset, spec: &mut LaunchSpec) -> Result<()> {
    let Some(w) = def.devices.watchdogs.first() else {
        return Ok(());
    };
    if def.devices.watchdogs.len() > 1 {
        return Err(invalid("more than one watchdog"));
    }
    let device = match (w.model.as_str(), chipset) {
        ("i6300esb", _) => {
            Some(Device::new("i6300esb", "watchdog0").placed(&placement(&w.info, chipset)?))
        }
        ("ib700", _) => Some(Device::new("ib700", "watchdog0")),
        // Part of q35's ICH9; the pin strap lets it reset the guest.
        ("itco", Chipset::Q35) => {
            spec.globals.push("ICH9-LPC.noreboot=off".into());
            None
        }
        (other, _) => return Err(invalid(format!("watchdog model '{other}'"))),
    };
    let action = match w.action.as_deref() {
        None => "reset",
        Some(a @ ("reset" | "shutdown" | "poweroff" | "pause" | "none" | "inject-nmi")) => a,
        // libvirt pauses and dumps the guest itself; this driver does not dump.
        Some(other) => return Err(invalid(format!("watchdog action '{other}'"))),
    };
    spec.watchdog = Some(Watchdog {
        device,
        action: action.into(),
    });
    Ok(())
}

fn rng(r: &migrated_core::xml::Rng, chipset: Chipset) -> Result<Rng> {
    if r.model != "virtio" {
        return Err(invalid(format!("rng model '{}'", r.model)));
    }
    let backend = match (r.backend_model.as_str(), r.backend.as_deref()) {
        ("random", None) => RngBackend::Random("/dev/urandom".into()),
        ("random", Some(path)) => RngBackend::Random(path.into()),
        ("builtin", _) => RngBackend::Builtin,
        (other, _) => return Err(invalid(format!("rng backend '{other}'"))),
    };
    let rate = if r.rate.is_empty() {
        None
    } else {
        let number = |name: &str| -> Result<Option<u64>> {
            r.rate
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| {
                    v.parse()
                        .map_err(|_| invalid(format!("rng rate {name} '{v}'")))
                })
                .transpose()
        };
        let bytes = number("bytes")?.ok_or_else(|| invalid("rng rate without bytes"))?;
        // libvirt's default period is one second.
        Some((bytes, number("period")?.unwrap_or(1000)))
    };
    Ok(Rng {
        backend,
        rate,
        pci: placement(&r.info, chipset)?,
    })
}

/// Writes into a started guest's live definition the QEMU id of each device
/// as its `<alias>` (what libvirt's live XML shows); aliases a user chose
/// (`ua-…`) are kept. Follows the ids [`realise`] and the command line give.
pub(super) fn set_aliases(def: &mut DomainDef) {
    fn set(info: &mut migrated_core::xml::DeviceInfo, id: String) {
        if !info.alias.as_deref().is_some_and(|a| a.starts_with("ua-")) {
            info.alias = Some(id);
        }
    }
    let chipset = Chipset::of(def.os.machine.as_deref().unwrap_or_default());
    let d = &mut def.devices;
    for disk in &mut d.disks {
        let id = disk.target.dev.clone();
        set(&mut disk.info, id);
    }
    for (i, nic) in d.interfaces.iter_mut().enumerate() {
        set(&mut nic.info, format!("nic{i}"));
    }
    for ctl in &mut d.controllers {
        let index = ctl.index.unwrap_or(0);
        let id = match (ctl.kind.as_str(), chipset) {
            ("usb", _) => "usb".to_owned(),
            ("virtio-serial", _) => format!("virtio-serial{index}"),
            ("pci", Chipset::I440fx) => format!("pci.{index}"),
            ("pci", Chipset::Q35) if index == 0 => "pcie.0".to_owned(),
            ("pci", Chipset::Q35) => format!("pci.{index}"),
            // The built-in IDE (pc) and AHCI (q35) controllers.
            ("ide" | "sata", _) => "ide".to_owned(),
            _ => continue,
        };
        set(&mut ctl.info, id);
    }
    // Serial port 0 and the console that mirrors it are one device.
    for port in d.serials.iter_mut().take(1).chain(d.consoles.iter_mut()) {
        set(&mut port.info, "serial0".into());
    }
    for (i, channel) in d.channels.iter_mut().enumerate() {
        set(&mut channel.info, format!("channel{i}"));
    }
    for (i, input) in d.inputs.iter_mut().enumerate() {
        set(&mut input.info, format!("input{i}"));
    }
    for (i, video) in d.videos.iter_mut().enumerate().take(1) {
        set(&mut video.info, format!("video{i}"));
    }
    for (i, sound) in d.sounds.iter_mut().enumerate() {
        set(&mut sound.info, format!("sound{i}"));
    }
    for watchdog in d.watchdogs.iter_mut().take(1) {
        set(&mut watchdog.info, "watchdog0".into());
    }
    if let Some(balloon) = d.memballoon.as_mut().filter(|b| b.model == "virtio") {
        set(&mut balloon.info, "balloon0".into());
    }
    for (i, rng) in d.rngs.iter_mut().enumerate() {
        set(&mut rng.info, format!("rng{i}"));
    }
}

/// Devices and settings this driver does not realise.
fn refuse_unrealised(def: &DomainDef) -> Result<()> {
    let d = &def.devices;
    if let Some(t) = d.tpms.first() {
        return Err(invalid(format!(
            "TPM device (model '{}')",
            t.model.as_deref().unwrap_or("default")
        )));
    }
    if let Some(r) = d.redirdevs.first() {
        return Err(invalid(format!(
            "USB redirection ({} on {})",
            r.kind, r.bus
        )));
    }
    if let Some(m) = d.memballoon.as_ref() {
        if m.model != "virtio" && m.model != "none" {
            return Err(invalid(format!("memballoon model '{}'", m.model)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
