//! PCI addresses as libvirt 9.0 assigns them for QEMU
//! (`src/qemu/qemu_domain_address.c`, `src/conf/domain_addr.c`).
//!
//! Every PCI device of a definition gets its `<address type='pci'/>` when
//! the domain is defined (or a transient one created), so that the command
//! line places each device explicitly (`bus=…,addr=0xS.0xF`) and a
//! migration destination, a restore or the next boot builds the same
//! virtual hardware whatever the `-device` order.
//!
//! The layout is libvirt's: addresses the XML gives are kept (and checked:
//! range, double use); then the chipset's fixed places — on i440fx the
//! PIIX3 in slot 1 (ISA bridge 1.0, IDE 1.1, USB 1.2, PM 1.3) and the
//! primary video in slot 2; on q35 the ICH9 in slot 0x1f (LPC, SATA 1f.2,
//! SMBus), the primary video in slot 1 and ICH9 audio in 0x1b — and then
//! the first free slot for each remaining device in libvirt's order (PCI
//! controllers, NICs, sound, other controllers, virtio disks, balloon,
//! RNGs, watchdog, video, virtio inputs). On q35 a PCI Express device gets
//! slot 0 of a `pcie-root-port`, one added (as libvirt does) when none is
//! free; the ports fill the functions of a pcie.0 slot (2.0 multifunction,
//! 2.1, …), each with `chassis` = its index and `port` = slot·8+function.

use migrated_core::xml::{Address, Controller, DeviceInfo, DomainDef, Input, Video, VideoModel};

use crate::error::{Error, Result};

/// The chipset a machine type emulates (which built-in devices it has).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chipset {
    /// `pc-i440fx-*` (`pc`): PCI root bus `pci.0`.
    I440fx,
    /// `pc-q35-*` (`q35`): PCI Express root bus `pcie.0`.
    Q35,
}

impl Chipset {
    /// The chipset of machine type `machine`.
    pub(crate) fn of(machine: &str) -> Self {
        if machine == "q35" || machine.starts_with("pc-q35") {
            Self::Q35
        } else {
            Self::I440fx
        }
    }

    /// The QEMU id of PCI bus `index`: the root bus or a controller's.
    pub(crate) fn bus_name(self, index: u32) -> String {
        match (self, index) {
            (Self::I440fx, 0) => "pci.0".into(),
            (Self::Q35, 0) => "pcie.0".into(),
            (_, n) => format!("pci.{n}"),
        }
    }
}

/// A PCI address (`domain:bus:slot.function`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct PciAddress {
    /// PCI domain (only 0 exists).
    pub domain: u32,
    /// Bus: the index of the PCI controller it hangs on.
    pub bus: u32,
    /// Slot on the bus.
    pub slot: u32,
    /// Function in the slot.
    pub function: u32,
    /// `multifunction='on'` (function 0 of a slot with more functions).
    pub multifunction: bool,
}

impl PciAddress {
    fn at(bus: u32, slot: u32, function: u32) -> Self {
        Self {
            bus,
            slot,
            function,
            ..Self::default()
        }
    }

    /// The PCI address of `info`, `None` without one (or with another type).
    ///
    /// # Errors
    /// [`Error::PciAddress`] for a field that is not a number.
    pub(crate) fn of(info: &DeviceInfo) -> Result<Option<Self>> {
        let Some(address) = info.address.as_ref().filter(|a| a.kind == "pci") else {
            return Ok(None);
        };
        let number = |name: &str| -> Result<u32> {
            let Some(v) = address.field(name) else {
                return Ok(0);
            };
            let parsed = match v.strip_prefix("0x") {
                Some(hex) => u32::from_str_radix(hex, 16),
                None => v.parse(),
            };
            parsed.map_err(|_| Error::PciAddress {
                reason: format!("Cannot parse <address> '{name}' attribute"),
            })
        };
        Ok(Some(Self {
            domain: number("domain")?,
            bus: number("bus")?,
            slot: number("slot")?,
            function: number("function")?,
            multifunction: address.field("multifunction") == Some("on"),
        }))
    }

    /// The `<address type='pci' …/>` of this address.
    pub(crate) fn to_xml(self) -> Address {
        let mut fields = vec![
            ("domain".into(), format!("0x{:04x}", self.domain)),
            ("bus".into(), format!("0x{:02x}", self.bus)),
            ("slot".into(), format!("0x{:02x}", self.slot)),
            ("function".into(), format!("0x{:x}", self.function)),
        ];
        if self.multifunction {
            fields.push(("multifunction".into(), "on".into()));
        }
        Address {
            kind: "pci".into(),
            fields,
        }
    }

    /// The `-device` properties that place a device here on `chipset`:
    /// `bus`, `addr` (`0x3`, or `0x1.0x2` off function 0) and
    /// `multifunction`, as libvirt's command line has them.
    pub(crate) fn props(self, chipset: Chipset) -> Vec<(&'static str, serde_json::Value)> {
        let addr = if self.function == 0 {
            format!("{:#x}", self.slot)
        } else {
            format!("{:#x}.{:#x}", self.slot, self.function)
        };
        let mut props = vec![
            ("bus", chipset.bus_name(self.bus).into()),
            ("addr", addr.into()),
        ];
        if self.multifunction {
            props.push(("multifunction", true.into()));
        }
        props
    }
}

impl std::fmt::Display for PciAddress {
    /// libvirt's `virPCIDeviceAddressAsString`: `0000:00:05.0`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{}",
            self.domain, self.bus, self.slot, self.function
        )
    }
}

/// The `-device` placement of a device with `info` on `chipset`: its
/// address's properties, none without a PCI address.
///
/// # Errors
/// As [`PciAddress::of`].
pub(crate) fn placement(
    info: &DeviceInfo,
    chipset: Chipset,
) -> Result<Vec<(&'static str, serde_json::Value)>> {
    Ok(PciAddress::of(info)?
        .map(|a| a.props(chipset))
        .unwrap_or_default())
}

/// What a bus is: which slots it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BusKind {
    /// `pci-root` / `pcie-root`: slots 1 to 31.
    Root,
    /// `pcie-root-port`: slot 0 only.
    RootPort,
}

#[derive(Debug, Clone)]
struct Bus {
    kind: BusKind,
    /// Per slot, a bit per function in use.
    functions: [u8; 32],
    /// Per slot, whether it aggregates root ports (their functions).
    ports: [bool; 32],
}

impl Bus {
    fn new(kind: BusKind) -> Self {
        Self {
            kind,
            functions: [0; 32],
            ports: [false; 32],
        }
    }

    fn slots(&self) -> std::ops::RangeInclusive<u32> {
        match self.kind {
            BusKind::Root => 1..=31,
            BusKind::RootPort => 0..=0,
        }
    }
}

/// How a device wants to be plugged, for the q35 layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plug {
    /// A PCI Express endpoint: behind a `pcie-root-port` on q35.
    Express,
    /// A conventional PCI device: a root bus slot.
    Conventional,
    /// A `pcie-root-port`: a function of a shared pcie.0 slot.
    RootPort,
}

/// The PCI address space of one guest: which functions are taken.
#[derive(Debug, Clone)]
pub(crate) struct AddressSet {
    chipset: Chipset,
    buses: Vec<Bus>,
}

impl AddressSet {
    /// The buses of `def` (the root bus and its `pcie-root-port`s), nothing
    /// reserved yet.
    fn new(def: &DomainDef, chipset: Chipset) -> Self {
        let mut buses = vec![Bus::new(BusKind::Root)];
        for ctl in def.devices.controllers.iter().filter(|c| c.kind == "pci") {
            let index = ctl.index.unwrap_or(0) as usize;
            if index == 0 || index > 255 {
                continue;
            }
            if buses.len() <= index {
                buses.resize(index + 1, Bus::new(BusKind::RootPort));
            }
            buses[index] = Bus::new(BusKind::RootPort);
        }
        Self { chipset, buses }
    }

    /// Checks `addr` as libvirt's `virDomainPCIAddressValidate` (range,
    /// existing bus), then takes its function.
    ///
    /// # Errors
    /// libvirt's words (`VIR_ERR_XML_ERROR`): an invalid address, or
    /// "Attempted double use of PCI Address …".
    fn reserve(&mut self, addr: PciAddress, plug: Plug) -> Result<()> {
        let error = |reason: String| Err(Error::PciAddress { reason });
        if addr.domain != 0 {
            return error(format!(
                "Invalid PCI address {addr}. Only PCI domain 0 is available"
            ));
        }
        let Some(bus) = self.buses.get_mut(addr.bus as usize) else {
            return error(format!(
                "Invalid PCI address {addr}. Only PCI buses up to {} are available",
                self.buses.len() - 1
            ));
        };
        let slots = bus.slots();
        if addr.slot < *slots.start() {
            return error(format!(
                "Invalid PCI address {addr}. slot must be >= {}",
                slots.start()
            ));
        }
        if addr.slot > *slots.end() {
            return error(format!(
                "Invalid PCI address {addr}. slot must be <= {}",
                slots.end()
            ));
        }
        if addr.function > 7 {
            return error(format!("Invalid PCI address {addr}. function must be <= 7"));
        }
        let slot = addr.slot as usize;
        if bus.functions[slot] & (1 << addr.function) != 0 {
            return error(format!("Attempted double use of PCI Address {addr}"));
        }
        if bus.functions[slot] == 0 && plug == Plug::RootPort {
            bus.ports[slot] = true;
        }
        bus.functions[slot] |= 1 << addr.function;
        Ok(())
    }

    /// The first free place for a device plugged as `plug`; `None` when
    /// the guest has none.
    fn next_free(&self, plug: Plug) -> Option<PciAddress> {
        let wants_port = self.chipset == Chipset::Q35 && plug == Plug::Express;
        if plug == Plug::RootPort {
            // A function left in a slot of root ports, else a new slot.
            let root = &self.buses[0];
            let shared = root.slots().find_map(|slot| {
                let used = root.functions[slot as usize];
                (root.ports[slot as usize] && used != 0xff)
                    .then(|| PciAddress::at(0, slot, used.trailing_ones()))
            });
            if shared.is_some() {
                return shared;
            }
        }
        self.buses
            .iter()
            .enumerate()
            .filter(|(_, bus)| (bus.kind == BusKind::RootPort) == wants_port)
            .find_map(|(index, bus)| {
                bus.slots()
                    .find(|&slot| bus.functions[slot as usize] == 0)
                    .map(|slot| PciAddress::at(index as u32, slot, 0))
            })
    }

    /// Takes `addr` if it is free and valid, or the first free place.
    fn reserve_next(&mut self, plug: Plug) -> Result<PciAddress> {
        let addr = self.next_free(plug).ok_or_else(|| Error::PciAddress {
            reason: "No more available PCI slots".into(),
        })?;
        self.reserve(addr, plug)?;
        Ok(addr)
    }

    /// Whether any function of `slot` on the root bus is taken.
    fn root_slot_used(&self, slot: u32) -> bool {
        self.buses[0].functions[slot as usize] != 0
    }
}

/// A PCI device of a definition, in the order libvirt assigns addresses.
struct Wanted<'a> {
    info: &'a mut DeviceInfo,
    plug: Plug,
}

/// libvirt's fixed places on the chipset, or `None` for the first free one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fixed {
    /// Exactly here; another address is refused with this message.
    Required(PciAddress, &'static str),
    /// Here when free (the primary video, ICH9 audio).
    Preferred(PciAddress),
}

/// The guest's PCI devices, in libvirt's order, with the chipset places
/// some of them have (`qemuDomainAssignDevicePCISlots` and the chipset
/// validation before it).
fn pci_devices(def: &mut DomainDef, chipset: Chipset) -> Vec<(Wanted<'_>, Option<Fixed>)> {
    let express = |e: bool| if e { Plug::Express } else { Plug::Conventional };
    let d = &mut def.devices;
    let mut out = Vec::new();
    let (pci_ctls, other_ctls): (Vec<_>, Vec<_>) =
        d.controllers.iter_mut().partition(|c| c.kind == "pci");
    for ctl in pci_ctls {
        if ctl.index.unwrap_or(0) == 0 {
            continue;
        }
        out.push(want(&mut ctl.info, Plug::RootPort, None));
    }
    for nic in &mut d.interfaces {
        let model = nic.model.as_deref().unwrap_or("virtio");
        let plug = express(matches!(model, "virtio" | "virtio-net-pci" | "e1000e"));
        out.push(want(&mut nic.info, plug, None));
    }
    let mut ich9_audio_placed = false;
    for sound in &mut d.sounds {
        if matches!(sound.model.as_str(), "sb16" | "pcspk" | "usb") {
            continue;
        }
        let fixed =
            (chipset == Chipset::Q35 && sound.model == "ich9" && !ich9_audio_placed).then(|| {
                ich9_audio_placed = true;
                Fixed::Preferred(PciAddress::at(0, 0x1b, 0))
            });
        out.push(want(&mut sound.info, Plug::Conventional, fixed));
    }
    for ctl in other_ctls {
        let index = ctl.index.unwrap_or(0);
        let model = ctl.model.as_deref();
        let (plug, fixed) = match (ctl.kind.as_str(), chipset) {
            ("usb", _) if model == Some("none") => continue,
            ("ide", Chipset::I440fx) if index == 0 => (
                Plug::Conventional,
                Some(Fixed::Required(
                    PciAddress::at(0, 1, 1),
                    "Primary IDE controller must have PCI address 0:0:1.1",
                )),
            ),
            ("sata", Chipset::Q35) if index == 0 => (
                Plug::Conventional,
                Some(Fixed::Required(
                    PciAddress::at(0, 0x1f, 2),
                    "Primary SATA controller must have PCI address 0:0:1f.2",
                )),
            ),
            ("usb", Chipset::I440fx)
                if index == 0 && matches!(model, None | Some("piix3-uhci")) =>
            {
                (
                    Plug::Conventional,
                    Some(Fixed::Required(
                        PciAddress::at(0, 1, 2),
                        "PIIX3 USB controller at index 0 must have PCI address 0:0:1.2",
                    )),
                )
            }
            ("usb", _) => (
                express(matches!(model, Some("qemu-xhci" | "nec-xhci")) || model.is_none()),
                None,
            ),
            ("virtio-serial" | "scsi", _) => (Plug::Express, None),
            _ => continue,
        };
        out.push(want(&mut ctl.info, plug, fixed));
    }
    for disk in &mut d.disks {
        let virtio = match disk.target.bus.as_deref() {
            Some(bus) => bus == "virtio",
            None => disk.target.dev.starts_with("vd"),
        };
        if virtio {
            out.push(want(&mut disk.info, Plug::Express, None));
        }
    }
    if let Some(balloon) = d.memballoon.as_mut().filter(|b| b.model == "virtio") {
        out.push(want(&mut balloon.info, Plug::Express, None));
    }
    for rng in &mut d.rngs {
        out.push(want(&mut rng.info, Plug::Express, None));
    }
    for watchdog in d.watchdogs.iter_mut().filter(|w| w.model == "i6300esb") {
        out.push(want(&mut watchdog.info, Plug::Conventional, None));
    }
    for (i, video) in d.videos.iter_mut().enumerate() {
        let kind = video.model.as_ref().map_or("vga", |m| m.kind.as_str());
        if matches!(kind, "none" | "ramfb") {
            continue;
        }
        let fixed = (i == 0).then(|| {
            Fixed::Preferred(match chipset {
                Chipset::I440fx => PciAddress::at(0, 2, 0),
                Chipset::Q35 => PciAddress::at(0, 1, 0),
            })
        });
        out.push(want(&mut video.info, express(kind == "virtio"), fixed));
    }
    for input in d.inputs.iter_mut().filter(|i| is_virtio_input(i)) {
        out.push(want(&mut input.info, Plug::Express, None));
    }
    out
}

/// One entry of [`pci_devices`].
fn want(info: &mut DeviceInfo, plug: Plug, fixed: Option<Fixed>) -> (Wanted<'_>, Option<Fixed>) {
    (Wanted { info, plug }, fixed)
}

fn is_virtio_input(input: &Input) -> bool {
    input.bus.as_deref() == Some("virtio")
}

/// Gives every PCI device of `def` without an address its libvirt place,
/// after checking the addresses it has; on q35, adds the `pcie-root-port`s
/// the PCI Express devices need.
///
/// # Errors
/// [`Error::PciAddress`] with libvirt's message for an invalid, misplaced
/// or doubly used address, or when slots run out; `def` is then unchanged.
pub(crate) fn assign(def: &mut DomainDef) -> Result<()> {
    let chipset = Chipset::of(def.os.machine.as_deref().unwrap_or_default());
    let mut work = def.clone();
    add_root(&mut work, chipset);
    // As libvirt's dry run: each PCIe device that finds no free root port
    // gets a new one, then the real pass places everything.
    loop {
        let mut attempt = work.clone();
        match assign_pass(&mut attempt, chipset)? {
            None => {
                set_multifunction(&mut attempt);
                *def = attempt;
                return Ok(());
            }
            Some(()) => add_root_port(&mut work)?,
        }
    }
}

/// Places the device `info` of a running guest `def` for a hot-plug: the
/// address its XML asks for (checked against the guest's), or the first
/// free slot (on q35 a free root port: none is added to a running guest).
///
/// # Errors
/// As [`assign`].
pub(crate) fn assign_hotplug(def: &DomainDef, info: &mut DeviceInfo, express: bool) -> Result<()> {
    let chipset = Chipset::of(def.os.machine.as_deref().unwrap_or_default());
    let mut taken = def.clone();
    let mut set = AddressSet::new(&taken, chipset);
    reserve_chipset(&mut set, chipset)?;
    for (dev, _) in pci_devices(&mut taken, chipset) {
        if let Some(addr) = PciAddress::of(dev.info)? {
            // Present addresses of a running guest are QEMU's own: taken.
            let _ = set.reserve(addr, dev.plug);
        }
    }
    let plug = if express {
        Plug::Express
    } else {
        Plug::Conventional
    };
    let addr = match PciAddress::of(info)? {
        Some(addr) => {
            set.reserve(addr, plug)?;
            addr
        }
        None => set.reserve_next(plug)?,
    };
    info.address = Some(addr.to_xml());
    Ok(())
}

/// The functions the chipset itself occupies (not in the XML).
fn reserve_chipset(set: &mut AddressSet, chipset: Chipset) -> Result<()> {
    let (slot, functions): (u32, &[u32]) = match chipset {
        // PIIX3 ISA bridge and power management.
        Chipset::I440fx => (1, &[0, 3]),
        // ICH9 LPC and SMBus.
        Chipset::Q35 => (0x1f, &[0, 3]),
    };
    for &function in functions {
        set.reserve(PciAddress::at(0, slot, function), Plug::Conventional)?;
    }
    Ok(())
}

/// One assignment pass; `Some(())` when a PCIe device found no root port
/// (the caller adds one and starts over).
fn assign_pass(def: &mut DomainDef, chipset: Chipset) -> Result<Option<()>> {
    let mut set = AddressSet::new(def, chipset);
    let mut devices = pci_devices(def, chipset);
    // Addresses the XML gives first (qemuDomainCollectPCIAddress).
    for (dev, fixed) in &devices {
        let Some(addr) = PciAddress::of(dev.info)? else {
            continue;
        };
        if let Some(Fixed::Required(place, message)) = fixed {
            if addr != *place {
                return Err(Error::PciAddressInternal {
                    reason: (*message).into(),
                });
            }
        }
        set.reserve(addr, dev.plug)?;
    }
    reserve_chipset(&mut set, chipset)?;
    // The chipset's places, then everything else in order.
    for (dev, fixed) in &mut devices {
        if dev.info.address.is_some() {
            continue;
        }
        let addr = match fixed {
            Some(Fixed::Required(place, _)) => {
                set.reserve(*place, dev.plug)?;
                *place
            }
            Some(Fixed::Preferred(place)) if !set.root_slot_used(place.slot) => {
                set.reserve(*place, dev.plug)?;
                *place
            }
            _ => continue,
        };
        dev.info.address = Some(addr.to_xml());
    }
    for (dev, _) in &mut devices {
        if dev.info.address.is_some() {
            continue;
        }
        let addr = match set.next_free(dev.plug) {
            Some(addr) => addr,
            None if chipset == Chipset::Q35 && dev.plug == Plug::Express => return Ok(Some(())),
            None => {
                return Err(Error::PciAddress {
                    reason: "No more available PCI slots".into(),
                })
            }
        };
        set.reserve(addr, dev.plug)?;
        dev.info.address = Some(addr.to_xml());
    }
    Ok(None)
}

/// Adds the root bus controller libvirt always lists (`pci-root` on
/// i440fx, `pcie-root` on q35) when the XML has none.
fn add_root(def: &mut DomainDef, chipset: Chipset) {
    let controllers = &mut def.devices.controllers;
    if controllers
        .iter()
        .any(|c| c.kind == "pci" && c.index.unwrap_or(0) == 0)
    {
        return;
    }
    let model = match chipset {
        Chipset::I440fx => "pci-root",
        Chipset::Q35 => "pcie-root",
    };
    controllers.insert(0, controller("pci", 0, Some(model)));
}

/// A controller with only its type, index and model.
pub(crate) fn controller(kind: &str, index: u32, model: Option<&str>) -> Controller {
    Controller {
        kind: kind.into(),
        index: Some(index),
        model: model.map(str::to_owned),
        ports: None,
        vectors: None,
        model_name: None,
        target: Vec::new(),
        driver: Vec::new(),
        master_startport: None,
        info: DeviceInfo::default(),
    }
}

/// Adds a `pcie-root-port` with the next free index (libvirt's
/// auto-added port); its address comes with the next pass.
fn add_root_port(def: &mut DomainDef) -> Result<()> {
    let controllers = &mut def.devices.controllers;
    let index = (1..=255)
        .find(|i| {
            !controllers
                .iter()
                .any(|c| c.kind == "pci" && c.index == Some(*i))
        })
        .ok_or_else(|| Error::PciAddress {
            reason: "No more available PCI slots".into(),
        })?;
    let mut port = controller("pci", index, Some("pcie-root-port"));
    port.model_name = Some("pcie-root-port".into());
    // Inserted after the other PCI controllers, as libvirt lists them.
    let at = controllers
        .iter()
        .rposition(|c| c.kind == "pci")
        .map_or(0, |i| i + 1);
    controllers.insert(at, port);
    Ok(())
}

/// libvirt's `virDomainPCIAddressSetAllMulti`: function 0 of a slot whose
/// other functions are in use is `multifunction='on'`; root ports get the
/// `chassis`/`port` their place gives them when the XML names none.
fn set_multifunction(def: &mut DomainDef) {
    let chipset = Chipset::of(def.os.machine.as_deref().unwrap_or_default());
    let mut used: Vec<(u32, u32, u32)> = Vec::new();
    for (dev, _) in pci_devices(def, chipset) {
        if let Ok(Some(a)) = PciAddress::of(dev.info) {
            used.push((a.bus, a.slot, a.function));
        }
    }
    for (dev, _) in pci_devices(def, chipset) {
        let Ok(Some(mut a)) = PciAddress::of(dev.info) else {
            continue;
        };
        let shared = used
            .iter()
            .any(|&(bus, slot, function)| bus == a.bus && slot == a.slot && function != 0);
        if a.function == 0 && shared && !a.multifunction {
            a.multifunction = true;
            dev.info.address = Some(a.to_xml());
        }
    }
    for ctl in &mut def.devices.controllers {
        if ctl.model.as_deref() != Some("pcie-root-port") {
            continue;
        }
        let Ok(Some(a)) = PciAddress::of(&ctl.info) else {
            continue;
        };
        let index = ctl.index.unwrap_or(0);
        if !ctl.target.iter().any(|(k, _)| k == "chassis") {
            ctl.target.push(("chassis".into(), index.to_string()));
        }
        if !ctl.target.iter().any(|(k, _)| k == "port") {
            ctl.target
                .push(("port".into(), format!("{:#x}", a.slot * 8 + a.function)));
        }
    }
}

/// Adds to `def` the devices libvirt makes explicit for what it already
/// has: the default video adapter of a display, the USB controller of a
/// USB input, the virtio-serial controller of a virtio channel (the
/// command line creates each of them anyway; listed, they get addresses).
pub(crate) fn add_implicit_devices(def: &mut DomainDef) {
    let chipset = Chipset::of(def.os.machine.as_deref().unwrap_or_default());
    let d = &mut def.devices;
    if d.videos.is_empty() && !d.graphics.is_empty() {
        d.videos.push(Video {
            model: Some(VideoModel {
                kind: "vga".into(),
                ram: None,
                vram: Some(16384),
                vram64: None,
                vgamem: None,
                heads: Some(1),
                primary: Some(true),
            }),
            info: DeviceInfo::default(),
        });
    }
    let usb_input = d.inputs.iter().any(|i| match i.bus.as_deref() {
        Some(bus) => bus == "usb",
        None => i.kind == "tablet",
    });
    if usb_input && !d.controllers.iter().any(|c| c.kind == "usb") {
        let model = match chipset {
            Chipset::I440fx => "piix3-uhci",
            Chipset::Q35 => "qemu-xhci",
        };
        d.controllers.push(controller("usb", 0, Some(model)));
    }
    let virtio_channel = d.channels.iter().any(|c| {
        c.target
            .as_ref()
            .is_some_and(|t| t.kind.as_deref() == Some("virtio"))
    });
    if virtio_channel && !d.controllers.iter().any(|c| c.kind == "virtio-serial") {
        d.controllers.push(controller("virtio-serial", 0, None));
    }
}

#[cfg(test)]
mod tests;
