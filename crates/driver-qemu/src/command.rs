//! The QEMU command line for one guest.
//!
//! [`LaunchSpec`] is the QEMU-facing view of a domain: everything the argv
//! needs and nothing else, so the command line can be built and unit tested
//! without a domain XML parser or a QEMU binary. [`LaunchSpec::argv`] turns
//! it into arguments; options whose values come from the user are either
//! JSON (`-blockdev`, `-device`) or have their commas doubled, so a path or
//! a name cannot inject options.
//!
//! Shape follows what libvirt 9.0 generates for QEMU 7.2 (see
//! `../shared/bench/libvirt-baseline.md`): `-nodefaults -no-user-config`,
//! `-S` (the driver sends `cont` once QMP is up), the monitor on a socket
//! that the daemon creates and hands over as an inherited descriptor.

use std::ffi::OsString;
use std::os::fd::RawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::json;
use uuid::Uuid;

use crate::error::{Error, Result};

/// The binary searched for on `PATH` when the domain names none.
pub const DEFAULT_EMULATOR: &str = "qemu-system-x86_64";

/// Machine type used when the domain names none.
pub const DEFAULT_MACHINE: &str = "pc";

/// How guest code runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Accel {
    /// Hardware virtualization through `/dev/kvm`.
    Kvm,
    /// QEMU's binary translator: slower, works everywhere.
    Tcg,
}

impl Accel {
    /// KVM when `/dev/kvm` opens read-write, TCG otherwise.
    pub fn detect() -> Self {
        Self::detect_at(Path::new("/dev/kvm"))
    }

    fn detect_at(dev: &Path) -> Self {
        match std::fs::OpenOptions::new().read(true).write(true).open(dev) {
            Ok(_) => Self::Kvm,
            Err(_) => Self::Tcg,
        }
    }

    /// The value of `-accel`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kvm => "kvm",
            Self::Tcg => "tcg",
        }
    }
}

/// Finds the emulator: the domain's `<emulator>` when given (it must be an
/// executable file), else [`DEFAULT_EMULATOR`] on `PATH`.
///
/// # Errors
/// [`Error::EmulatorNotExecutable`] for a bad explicit path,
/// [`Error::EmulatorNotFound`] when the search finds nothing.
pub fn find_emulator(explicit: Option<&Path>) -> Result<PathBuf> {
    match explicit {
        Some(path) if is_executable(path) => Ok(path.to_owned()),
        Some(path) => Err(Error::EmulatorNotExecutable {
            path: path.to_owned(),
        }),
        None => search_path(DEFAULT_EMULATOR, std::env::var_os("PATH")),
    }
}

fn search_path(name: &str, path: Option<OsString>) -> Result<PathBuf> {
    path.iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| Error::EmulatorNotFound { name: name.into() })
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The `-blockdev` node name of the disk with target `target` (`vda`):
/// how `query-block` and `query-blockstats` name it.
pub(crate) fn disk_node(target: &str) -> String {
    format!("drive-{target}")
}

/// Where a device sits on the guest's PCI buses: its `-device` properties
/// `bus`, `addr` and `multifunction` (empty: QEMU's next free slot).
pub type Placement = Vec<(&'static str, serde_json::Value)>;

/// Adds the properties of `placement` to the `-device` JSON `device`.
pub(crate) fn place(device: &mut serde_json::Value, placement: &Placement) {
    for (key, value) in placement {
        device[*key] = value.clone();
    }
}

/// A disk attached with `-blockdev` + `-device`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    /// Image file or block device.
    pub source: PathBuf,
    /// Image format: `raw` or `qcow2`.
    pub format: String,
    /// Guest device name (`vda`, `sda`); also the device id.
    pub target: String,
    /// Bus: `virtio`, `sata` or `ide`.
    pub bus: String,
    /// Attach read-only.
    pub readonly: bool,
    /// Its PCI place (`<address type='pci'/>`; virtio disks).
    pub pci: Placement,
}

impl Disk {
    /// The `-blockdev` / `blockdev-add` JSON of its node.
    pub fn blockdev(&self) -> serde_json::Value {
        json!({
            "node-name": disk_node(&self.target),
            "driver": self.format,
            "read-only": self.readonly,
            "file": {
                "driver": "file",
                "filename": self.source.to_string_lossy(),
                "read-only": self.readonly,
            },
        })
    }

    /// The `-device` / `device_add` JSON of the guest device; `boot_index`
    /// for IDE/SATA disks.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a bus other than virtio, ide, sata.
    pub fn device(&self, boot_index: usize) -> Result<serde_json::Value> {
        let node = disk_node(&self.target);
        let mut device = match self.bus.as_str() {
            "virtio" => json!({"driver": "virtio-blk-pci", "drive": node, "id": self.target}),
            "ide" | "sata" => {
                json!({"driver": "ide-hd", "drive": node, "id": self.target, "bootindex": boot_index})
            }
            other => return Err(invalid(format!("disk bus {other} is not supported"))),
        };
        place(&mut device, &self.pci);
        Ok(device)
    }
}

/// Where a NIC's traffic goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NicBackend {
    /// QEMU's user-mode network stack (no privileges, NAT only).
    User,
    /// A tap device added to a host bridge by `qemu-bridge-helper`.
    Bridge {
        /// The host bridge, e.g. `br0`.
        bridge: String,
    },
}

/// A network interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nic {
    /// Backend.
    pub backend: NicBackend,
    /// Guest MAC address (`52:54:00:..`).
    pub mac: Option<String>,
    /// Device model, e.g. `virtio-net-pci` or `e1000`.
    pub model: String,
    /// Its PCI place (`<address type='pci'/>`).
    pub pci: Placement,
}

impl Nic {
    /// The `netdev_add` JSON of its back-end, with id `id`.
    pub fn netdev(&self, id: &str) -> serde_json::Value {
        match &self.backend {
            NicBackend::User => json!({"type": "user", "id": id}),
            NicBackend::Bridge { bridge } => json!({"type": "bridge", "id": id, "br": bridge}),
        }
    }

    /// The `-device` / `device_add` JSON of the guest device `id` on the
    /// back-end `netdev`.
    pub fn device(&self, id: &str, netdev: &str) -> serde_json::Value {
        let mut device = json!({"driver": self.model, "netdev": netdev, "id": id});
        if let Some(mac) = &self.mac {
            device["mac"] = json!(mac);
        }
        place(&mut device, &self.pci);
        device
    }
}

/// A remote display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Graphics {
    /// VNC on `listen`; `port` none = first free display from 5900.
    Vnc {
        /// Listen address (an IP literal).
        listen: String,
        /// TCP port (≥ 5900) or automatic.
        port: Option<u16>,
    },
    /// SPICE on `listen:port`.
    Spice {
        /// Listen address (an IP literal).
        listen: String,
        /// TCP port.
        port: u16,
    },
}

/// The guest's first serial port.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Serial {
    /// No serial port.
    #[default]
    None,
    /// Output appended to a file.
    File(PathBuf),
    /// A host pty (its path is reported by `query-chardev`).
    Pty,
}

/// Options appended to `-machine` (`<features>` and `<clock>` settings
/// that QEMU takes as machine properties); `None` keeps QEMU's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MachineOptions {
    /// `hpet=` (`<timer name='hpet' present=…/>`).
    pub hpet: Option<bool>,
    /// `vmport=` (`<vmport state=…/>`).
    pub vmport: Option<bool>,
    /// `smm=` (`<smm state=…/>`).
    pub smm: Option<bool>,
}

/// Where the guest's RTC starts (`<clock offset=…>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtcBase {
    /// `base=utc`.
    Utc,
    /// `base=localtime`.
    Localtime,
}

/// The `-rtc` option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rtc {
    /// Start time.
    pub base: RtcBase,
    /// `clock=` (`host`, `vm`, `rt`) from the rtc timer's `track`.
    pub clock: Option<&'static str>,
    /// `driftfix=slew` (rtc `tickpolicy='catchup'`).
    pub driftfix_slew: bool,
}

/// A device on QEMU's command line with an id the domain's aliases follow
/// (`usb`, `input0`, `virtio-serial0`, `channel0`, `video0`, `sound0`,
/// `watchdog0`, `rng0`): its `-device` properties, JSON so that no value
/// can inject an option.
#[derive(Debug, Clone, PartialEq)]
pub struct Device(pub serde_json::Value);

impl Device {
    /// A device of QEMU type `driver` with id `id` and no other property.
    pub fn new(driver: &str, id: impl Into<String>) -> Self {
        Self(json!({"driver": driver, "id": id.into()}))
    }

    /// Adds property `key`.
    #[must_use]
    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.0[key] = value.into();
        self
    }

    /// The device id.
    pub fn id(&self) -> Option<&str> {
        self.0["id"].as_str()
    }

    /// Adds the properties of `placement` (its PCI place).
    #[must_use]
    pub fn placed(mut self, placement: &Placement) -> Self {
        place(&mut self.0, placement);
        self
    }

    /// Whether it is a PCI bus other devices plug into (a root port) with
    /// its own address: it comes before them on the command line. One
    /// without (a definition from before addresses) keeps its old place
    /// among the controllers, and so the slot QEMU gave it then.
    fn is_pci_bus(&self) -> bool {
        self.0["driver"] == "pcie-root-port" && self.0.get("addr").is_some()
    }
}

impl Eq for Device {}

/// The host side of a virtio-serial port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelSource {
    /// A UNIX socket QEMU listens on; `None` until the driver places it in
    /// the guest's channel directory ([`LaunchSpec::place_channels`]).
    Unix(Option<PathBuf>),
    /// The SPICE agent channel (`spicevmc`).
    SpiceVmc,
}

/// A `<channel>` with a virtio target: a chardev and a `virtserialport`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    /// Host side.
    pub source: ChannelSource,
    /// The port's name in the guest (`org.qemu.guest_agent.0`).
    pub name: String,
    /// Position in the domain's channel list: the id is `channel{index}`.
    pub index: usize,
    /// The virtio-serial bus (`virtio-serial0.0`).
    pub bus: String,
    /// Port number on that bus (`nr`).
    pub port: u32,
}

/// An RNG backend object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RngBackend {
    /// `rng-random` reading a host file (`/dev/urandom`).
    Random(PathBuf),
    /// `rng-builtin`: QEMU's own generator.
    Builtin,
}

/// A virtio RNG: `-object rng-…,id=objrng{index}` and `virtio-rng-pci`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rng {
    /// Backend.
    pub backend: RngBackend,
    /// `<rate bytes=… period=…/>`: at most `bytes` per `period` ms.
    pub rate: Option<(u64, u64)>,
    /// Its PCI place.
    pub pci: Placement,
}

/// A `-audiodev` back-end (`<audio>`, or the implicit one sound cards use).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audiodev {
    /// Id number: the back-end is `audio{id}`.
    pub id: u32,
    /// QEMU's driver: `none` or `spice`.
    pub driver: &'static str,
}

/// A watchdog's action (`-watchdog-action`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watchdog {
    /// The device (`i6300esb`, `ib700`); `None` for q35's built-in iTCO.
    pub device: Option<Device>,
    /// reset, shutdown, poweroff, pause, none, inject-nmi.
    pub action: String,
}

/// A kernel booted directly (`-kernel`), e.g. the project's workload image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kernel {
    /// The image (QEMU's multiboot loader takes an ELF32 multiboot image).
    pub path: PathBuf,
    /// Its command line (`-append`).
    pub cmdline: Option<String>,
    /// An initial ramdisk (`-initrd`).
    pub initrd: Option<PathBuf>,
}

/// How QEMU reaches the QMP monitor socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Monitor {
    /// A listening socket the daemon created and QEMU inherits as this fd:
    /// it exists before QEMU runs, so connecting never races QEMU's start.
    Fd(RawFd),
    /// QEMU creates and listens on this path itself.
    Path(PathBuf),
}

/// Everything needed to build a QEMU command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchSpec {
    /// The emulator binary (from [`find_emulator`]).
    pub emulator: PathBuf,
    /// Guest name.
    pub name: String,
    /// Guest UUID.
    pub uuid: Uuid,
    /// Machine type, e.g. `pc`, `q35`, `pc-i440fx-7.2`.
    pub machine: String,
    /// Accelerator.
    pub accel: Accel,
    /// CPU model; `None` lets QEMU choose (qemu64 on x86).
    pub cpu: Option<String>,
    /// Memory in MiB.
    pub memory_mib: u64,
    /// vCPUs online at start.
    pub vcpus: u32,
    /// vCPU slots (`maxcpus`): more than `vcpus` leaves room to hot-plug;
    /// fewer counts as `vcpus`.
    pub max_vcpus: u32,
    /// Disks, in order.
    pub disks: Vec<Disk>,
    /// NICs, in order.
    pub nics: Vec<Nic>,
    /// `-machine` properties beyond the type.
    pub machine_options: MachineOptions,
    /// `-rtc`; `None` keeps QEMU's default (UTC, no drift fix).
    pub rtc: Option<Rtc>,
    /// `-global` settings (`kvm-pit.lost_tick_policy=delay`).
    pub globals: Vec<String>,
    /// Remote displays.
    pub graphics: Vec<Graphics>,
    /// The video adapter (`VGA`, `virtio-vga`…), if any.
    pub video: Option<Device>,
    /// First serial port.
    pub serial: Serial,
    /// Controllers (USB, virtio-serial, PCIe root ports), in order.
    pub controllers: Vec<Device>,
    /// Input devices that are not built into the machine (USB, virtio).
    pub inputs: Vec<Device>,
    /// virtio-serial ports.
    pub channels: Vec<Channel>,
    /// Audio back-ends.
    pub audiodevs: Vec<Audiodev>,
    /// Sound cards and their codecs, in order.
    pub sounds: Vec<Device>,
    /// The watchdog.
    pub watchdog: Option<Watchdog>,
    /// A virtio memory balloon (makes `query-balloon` work).
    pub balloon: bool,
    /// The balloon's PCI place.
    pub balloon_pci: Placement,
    /// virtio RNGs.
    pub rngs: Vec<Rng>,
    /// The `vmcoreinfo` device (`<vmcoreinfo state='on'/>`).
    pub vmcoreinfo: bool,
    /// Direct kernel boot.
    pub kernel: Option<Kernel>,
    /// The QMP monitor.
    pub monitor: Monitor,
    /// QEMU writes its pid here.
    pub pidfile: Option<PathBuf>,
    /// Start with `-incoming defer` (migration or restore destination).
    pub incoming: bool,
}

impl LaunchSpec {
    /// A spec with defaults for everything but identity, emulator and monitor.
    pub fn new(emulator: PathBuf, name: impl Into<String>, uuid: Uuid, monitor: Monitor) -> Self {
        Self {
            emulator,
            name: name.into(),
            uuid,
            machine: DEFAULT_MACHINE.into(),
            accel: Accel::Tcg,
            cpu: None,
            memory_mib: 128,
            vcpus: 1,
            max_vcpus: 1,
            disks: Vec::new(),
            nics: Vec::new(),
            machine_options: MachineOptions::default(),
            rtc: None,
            globals: Vec::new(),
            graphics: Vec::new(),
            video: None,
            serial: Serial::None,
            controllers: Vec::new(),
            inputs: Vec::new(),
            channels: Vec::new(),
            audiodevs: Vec::new(),
            sounds: Vec::new(),
            watchdog: None,
            balloon: false,
            balloon_pci: Vec::new(),
            rngs: Vec::new(),
            vmcoreinfo: false,
            kernel: None,
            monitor,
            pidfile: None,
            incoming: false,
        }
    }

    /// `-smp`: the vCPUs online, and with room to hot-plug the slots
    /// (`maxcpus`), one socket each as libvirt lays them out.
    fn smp_arg(&self) -> String {
        let max = self.max_vcpus.max(self.vcpus);
        if max > self.vcpus {
            format!(
                "{},maxcpus={max},sockets={max},cores=1,threads=1",
                self.vcpus
            )
        } else {
            format!("{},sockets={},cores=1,threads=1", self.vcpus, self.vcpus)
        }
    }

    /// The arguments after the program name.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when a value cannot be expressed (zero
    /// memory or vCPUs, an unknown disk bus or format, a duplicate target,
    /// a UNIX channel that [`LaunchSpec::place_channels`] did not place).
    pub fn argv(&self) -> Result<Vec<OsString>> {
        if self.memory_mib == 0 || self.vcpus == 0 {
            return Err(invalid("memory and vcpu count must be positive"));
        }
        let mut a = Args::default();
        a.push2(
            "-name",
            format!("guest={},debug-threads=on", escape(&self.name)),
        );
        a.push2("-uuid", self.uuid.to_string());
        a.push("-no-user-config");
        a.push("-nodefaults");
        a.push2("-machine", self.machine_arg());
        a.push2("-accel", self.accel.as_str());
        if let Some(cpu) = &self.cpu {
            a.push2("-cpu", escape(cpu));
        }
        a.push2("-m", format!("size={}M", self.memory_mib));
        a.push2("-smp", self.smp_arg());
        if let Some(rtc) = &self.rtc {
            a.push2("-rtc", rtc.arg());
        }
        for global in &self.globals {
            a.push2("-global", global.as_str());
        }
        match &self.monitor {
            Monitor::Fd(fd) => a.push2(
                "-chardev",
                format!("socket,id=charmonitor,fd={fd},server=on,wait=off"),
            ),
            Monitor::Path(path) => a.push2(
                "-chardev",
                format!(
                    "socket,id=charmonitor,path={},server=on,wait=off",
                    escape(&path.to_string_lossy())
                ),
            ),
        }
        a.push2("-mon", "chardev=charmonitor,id=monitor,mode=control");
        if let Some(pidfile) = &self.pidfile {
            a.push2("-pidfile", pidfile.as_os_str());
        }
        a.push2("-display", "none");
        // PCI buses first: the devices behind them name them.
        for device in self.controllers.iter().filter(|d| d.is_pci_bus()) {
            a.push2("-device", device.0.to_string());
        }
        self.disk_args(&mut a)?;
        self.nic_args(&mut a);
        self.graphics_args(&mut a);
        match &self.serial {
            Serial::None => {}
            Serial::File(path) => {
                a.push2(
                    "-chardev",
                    format!(
                        "file,id=charserial0,path={},append=on",
                        escape(&path.to_string_lossy())
                    ),
                );
                a.push2("-device", "isa-serial,chardev=charserial0,id=serial0");
            }
            Serial::Pty => {
                a.push2("-chardev", "pty,id=charserial0");
                a.push2("-device", "isa-serial,chardev=charserial0,id=serial0");
            }
        }
        self.device_args(&mut a)?;
        if let Some(kernel) = &self.kernel {
            a.push2("-kernel", kernel.path.as_os_str());
            if let Some(initrd) = &kernel.initrd {
                a.push2("-initrd", initrd.as_os_str());
            }
            if let Some(cmdline) = &kernel.cmdline {
                a.push2("-append", cmdline.as_str());
            }
        }
        if self.balloon {
            let mut device = json!({"driver": "virtio-balloon-pci", "id": "balloon0"});
            place(&mut device, &self.balloon_pci);
            a.push2("-device", device.to_string());
        }
        for (i, rng) in self.rngs.iter().enumerate() {
            let object = format!("objrng{i}");
            let mut props = match &rng.backend {
                RngBackend::Random(path) => json!({
                    "qom-type": "rng-random", "id": object, "filename": path.to_string_lossy(),
                }),
                RngBackend::Builtin => json!({"qom-type": "rng-builtin", "id": object}),
            };
            a.push2("-object", props.to_string());
            props = json!({"driver": "virtio-rng-pci", "rng": object, "id": format!("rng{i}")});
            if let Some((bytes, period)) = rng.rate {
                props["max-bytes"] = json!(bytes);
                props["period"] = json!(period);
            }
            place(&mut props, &rng.pci);
            a.push2("-device", props.to_string());
        }
        if self.vmcoreinfo {
            a.push2("-device", r#"{"driver":"vmcoreinfo"}"#);
        }
        if self.incoming {
            a.push2("-incoming", "defer");
        }
        a.push("-S");
        Ok(a.0)
    }

    fn machine_arg(&self) -> String {
        let mut arg = escape(&self.machine);
        let o = &self.machine_options;
        for (key, value) in [("hpet", o.hpet), ("vmport", o.vmport), ("smm", o.smm)] {
            if let Some(on) = value {
                arg.push_str(&format!(",{key}={}", on_off(on)));
            }
        }
        arg
    }

    /// Controllers, inputs, channels, sound and the watchdog, in libvirt's order.
    fn device_args(&self, a: &mut Args) -> Result<()> {
        let controllers = self.controllers.iter().filter(|d| !d.is_pci_bus());
        for device in controllers.chain(&self.inputs) {
            a.push2("-device", device.0.to_string());
        }
        for channel in &self.channels {
            let chardev = format!("charchannel{}", channel.index);
            match &channel.source {
                ChannelSource::Unix(Some(path)) => a.push2(
                    "-chardev",
                    format!(
                        "socket,id={chardev},path={},server=on,wait=off",
                        escape(&path.to_string_lossy())
                    ),
                ),
                ChannelSource::Unix(None) => {
                    return Err(invalid(format!(
                        "channel {} has no socket path",
                        channel.name
                    )))
                }
                ChannelSource::SpiceVmc => {
                    a.push2("-chardev", format!("spicevmc,id={chardev},name=vdagent"))
                }
            }
            let port = json!({
                "driver": "virtserialport",
                "bus": channel.bus,
                "nr": channel.port,
                "chardev": chardev,
                "id": format!("channel{}", channel.index),
                "name": channel.name,
            });
            a.push2("-device", port.to_string());
        }
        for audio in &self.audiodevs {
            let props = json!({"id": format!("audio{}", audio.id), "driver": audio.driver});
            a.push2("-audiodev", props.to_string());
        }
        for device in &self.sounds {
            a.push2("-device", device.0.to_string());
        }
        if let Some(watchdog) = &self.watchdog {
            if let Some(device) = &watchdog.device {
                a.push2("-device", device.0.to_string());
            }
            a.push2("-watchdog-action", watchdog.action.as_str());
        }
        Ok(())
    }

    /// Gives every UNIX channel without a path a socket in `dir`, named
    /// after the channel (libvirt's per-domain channel directory); returns
    /// the paths given, by channel index.
    pub fn place_channels(&mut self, dir: &Path) -> Vec<(usize, PathBuf)> {
        let mut placed = Vec::new();
        for channel in &mut self.channels {
            if let ChannelSource::Unix(path @ None) = &mut channel.source {
                let file = dir.join(&channel.name);
                placed.push((channel.index, file.clone()));
                *path = Some(file);
            }
        }
        placed
    }

    fn disk_args(&self, a: &mut Args) -> Result<()> {
        let mut seen = std::collections::HashSet::new();
        for (i, disk) in self.disks.iter().enumerate() {
            if !matches!(disk.format.as_str(), "raw" | "qcow2") {
                return Err(invalid(format!(
                    "disk format {} is not raw or qcow2",
                    disk.format
                )));
            }
            if disk.target.is_empty() || !seen.insert(disk.target.as_str()) {
                return Err(invalid(format!(
                    "disk target {:?} is empty or repeated",
                    disk.target
                )));
            }
            let blockdev = disk.blockdev();
            let device = disk.device(i + 1)?;
            a.push2("-blockdev", blockdev.to_string());
            a.push2("-device", device.to_string());
        }
        Ok(())
    }

    fn nic_args(&self, a: &mut Args) {
        for (i, nic) in self.nics.iter().enumerate() {
            let id = format!("net{i}");
            match &nic.backend {
                NicBackend::User => a.push2("-netdev", format!("user,id={id}")),
                NicBackend::Bridge { bridge } => {
                    a.push2("-netdev", format!("bridge,id={id},br={}", escape(bridge)))
                }
            }
            let device = nic.device(&format!("nic{i}"), &id);
            a.push2("-device", device.to_string());
        }
    }

    fn graphics_args(&self, a: &mut Args) {
        // Where the VGA card for a display always was: PCI slots are
        // assigned in -device order, so it keeps the slot older guests had.
        if let Some(video) = &self.video {
            a.push2("-device", video.0.to_string());
        }
        for g in &self.graphics {
            match g {
                Graphics::Vnc { listen, port } => {
                    let display = match port {
                        Some(port) => format!("{}", port.saturating_sub(5900)),
                        // QEMU takes the first free display in 0..=99.
                        None => "0,to=99".into(),
                    };
                    a.push2("-vnc", format!("{}:{display}", vnc_host(listen)));
                }
                Graphics::Spice { listen, port } => a.push2(
                    "-spice",
                    format!("port={port},addr={},disable-ticketing=on", escape(listen)),
                ),
            }
        }
    }
}

impl Rtc {
    fn arg(&self) -> String {
        let mut arg = match self.base {
            RtcBase::Utc => "base=utc".to_owned(),
            RtcBase::Localtime => "base=localtime".to_owned(),
        };
        if let Some(clock) = self.clock {
            arg.push_str(&format!(",clock={clock}"));
        }
        if self.driftfix_slew {
            arg.push_str(",driftfix=slew");
        }
        arg
    }
}

fn on_off(on: bool) -> &'static str {
    if on {
        "on"
    } else {
        "off"
    }
}

fn vnc_host(listen: &str) -> String {
    // VNC's syntax needs brackets around an IPv6 literal.
    if listen.contains(':') && !listen.starts_with('[') {
        format!("[{listen}]")
    } else {
        escape(listen)
    }
}

/// Doubles commas: QEMU's option parser reads `,,` as a literal comma.
pub fn escape(value: &str) -> String {
    value.replace(',', ",,")
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::InvalidConfig {
        reason: reason.into(),
    }
}

#[derive(Default)]
struct Args(Vec<OsString>);

impl Args {
    fn push(&mut self, arg: impl Into<OsString>) {
        self.0.push(arg.into());
    }

    fn push2(&mut self, flag: &str, value: impl Into<OsString>) {
        self.0.push(flag.into());
        self.0.push(value.into());
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn spec() -> LaunchSpec {
        LaunchSpec::new(
            PathBuf::from("/usr/bin/qemu-system-x86_64"),
            "web1",
            Uuid::parse_str("c7a5fdbd-cdaf-9455-926a-d65c16db1809").expect("uuid"),
            Monitor::Fd(7),
        )
    }

    /// The arguments of `spec`, as strings.
    pub(crate) fn argv(spec: &LaunchSpec) -> Vec<String> {
        spec.argv()
            .expect("argv")
            .into_iter()
            .map(|a| a.into_string().expect("utf-8"))
            .collect()
    }

    /// The value following `flag`, for each occurrence.
    pub(crate) fn values<'a>(args: &'a [String], flag: &str) -> Vec<&'a str> {
        args.windows(2)
            .filter(|w| w[0] == flag)
            .map(|w| w[1].as_str())
            .collect()
    }

    #[test]
    fn minimal_guest_has_the_fixed_skeleton() {
        let mut s = spec();
        s.memory_mib = 256;
        s.vcpus = 2;
        s.accel = Accel::Kvm;
        s.pidfile = Some(PathBuf::from("/run/migrated/qemu/web1.pid"));
        let a = argv(&s);
        assert_eq!(values(&a, "-name"), ["guest=web1,debug-threads=on"]);
        assert_eq!(
            values(&a, "-uuid"),
            ["c7a5fdbd-cdaf-9455-926a-d65c16db1809"]
        );
        assert_eq!(values(&a, "-machine"), ["pc"]);
        assert_eq!(values(&a, "-accel"), ["kvm"]);
        assert_eq!(values(&a, "-m"), ["size=256M"]);
        assert_eq!(values(&a, "-smp"), ["2,sockets=2,cores=1,threads=1"]);
        s.max_vcpus = 4;
        let a = argv(&s);
        assert_eq!(
            values(&a, "-smp"),
            ["2,maxcpus=4,sockets=4,cores=1,threads=1"]
        );
        assert_eq!(
            values(&a, "-chardev"),
            ["socket,id=charmonitor,fd=7,server=on,wait=off"]
        );
        assert_eq!(
            values(&a, "-mon"),
            ["chardev=charmonitor,id=monitor,mode=control"]
        );
        assert_eq!(values(&a, "-pidfile"), ["/run/migrated/qemu/web1.pid"]);
        assert!(a.contains(&"-nodefaults".to_owned()));
        assert!(a.contains(&"-no-user-config".to_owned()));
        assert_eq!(a.last().map(String::as_str), Some("-S"));
        assert!(!a.contains(&"-incoming".to_owned()));
        assert!(!a.contains(&"-cpu".to_owned()));
    }

    #[test]
    fn incoming_guest_waits_for_migrate_incoming() {
        let mut s = spec();
        s.incoming = true;
        assert_eq!(values(&argv(&s), "-incoming"), ["defer"]);
    }

    #[test]
    fn commas_in_user_values_are_doubled() {
        let mut s = spec();
        s.name = "a,b".into();
        s.monitor = Monitor::Path(PathBuf::from("/run/x,y/mon.sock"));
        s.serial = Serial::File(PathBuf::from("/var/log/a,b.log"));
        let a = argv(&s);
        assert_eq!(values(&a, "-name"), ["guest=a,,b,debug-threads=on"]);
        assert_eq!(
            values(&a, "-chardev"),
            [
                "socket,id=charmonitor,path=/run/x,,y/mon.sock,server=on,wait=off",
                "file,id=charserial0,path=/var/log/a,,b.log,append=on"
            ]
        );
    }

    #[test]
    fn disks_become_json_blockdev_and_device() {
        let mut s = spec();
        s.disks.push(Disk {
            source: PathBuf::from("/img/a,\"b\".qcow2"),
            format: "qcow2".into(),
            target: "vda".into(),
            bus: "virtio".into(),
            readonly: false,
            pci: Vec::new(),
        });
        let a = argv(&s);
        let blockdev: serde_json::Value =
            serde_json::from_str(values(&a, "-blockdev")[0]).expect("json blockdev");
        assert_eq!(blockdev["node-name"], "drive-vda");
        assert_eq!(blockdev["driver"], "qcow2");
        assert_eq!(blockdev["file"]["filename"], "/img/a,\"b\".qcow2");
        let device: serde_json::Value =
            serde_json::from_str(values(&a, "-device")[0]).expect("json device");
        assert_eq!(device["driver"], "virtio-blk-pci");
        assert_eq!(device["drive"], "drive-vda");
        assert!(device.get("addr").is_none());
    }

    #[test]
    fn bad_disks_are_refused() {
        let disk = Disk {
            source: PathBuf::from("/img/a"),
            format: "vmdk".into(),
            target: "vda".into(),
            bus: "virtio".into(),
            readonly: false,
            pci: Vec::new(),
        };
        let mut s = spec();
        s.disks.push(disk.clone());
        assert!(matches!(s.argv(), Err(Error::InvalidConfig { .. })));
        let mut s = spec();
        let raw = Disk {
            format: "raw".into(),
            ..disk
        };
        s.disks.extend([raw.clone(), raw]);
        assert!(matches!(s.argv(), Err(Error::InvalidConfig { .. })));
    }

    #[test]
    fn nics_graphics_serial_kernel() {
        let mut s = spec();
        s.nics.push(Nic {
            backend: NicBackend::User,
            mac: Some("52:54:00:12:34:56".into()),
            model: "virtio-net-pci".into(),
            pci: vec![("bus", "pci.0".into()), ("addr", "0x9".into())],
        });
        s.nics.push(Nic {
            backend: NicBackend::Bridge {
                bridge: "br0".into(),
            },
            mac: None,
            model: "e1000".into(),
            pci: Vec::new(),
        });
        s.graphics.push(Graphics::Vnc {
            listen: "127.0.0.1".into(),
            port: None,
        });
        s.graphics.push(Graphics::Spice {
            listen: "127.0.0.1".into(),
            port: 5930,
        });
        s.serial = Serial::Pty;
        s.kernel = Some(Kernel {
            path: PathBuf::from("/k/guest.elf"),
            cmdline: Some("dirty_mib=64".into()),
            initrd: Some(PathBuf::from("/k/initrd")),
        });
        s.balloon = true;
        s.video = Some(Device::new("VGA", "video0"));
        let a = argv(&s);
        assert_eq!(
            values(&a, "-netdev"),
            ["user,id=net0", "bridge,id=net1,br=br0"]
        );
        let devices = values(&a, "-device");
        let nic0: serde_json::Value = serde_json::from_str(devices[0]).expect("json");
        assert_eq!(nic0["mac"], "52:54:00:12:34:56");
        assert_eq!(nic0["netdev"], "net0");
        assert_eq!(nic0["addr"], "0x9");
        assert_eq!(nic0["bus"], "pci.0");
        assert!(devices.iter().any(|d| d.contains("\"VGA\"")));
        assert_eq!(values(&a, "-vnc"), ["127.0.0.1:0,to=99"]);
        assert_eq!(
            values(&a, "-spice"),
            ["port=5930,addr=127.0.0.1,disable-ticketing=on"]
        );
        assert!(values(&a, "-chardev").contains(&"pty,id=charserial0"));
        assert_eq!(values(&a, "-kernel"), ["/k/guest.elf"]);
        assert_eq!(values(&a, "-append"), ["dirty_mib=64"]);
        assert_eq!(values(&a, "-initrd"), ["/k/initrd"]);
        assert!(devices.iter().any(|d| d.contains("virtio-balloon-pci")));
    }

    #[test]
    fn platform_options_and_extra_devices() {
        let mut s = spec();
        s.machine = "pc-q35-7.2".into();
        s.machine_options = MachineOptions {
            hpet: Some(false),
            vmport: Some(false),
            smm: Some(true),
        };
        s.rtc = Some(Rtc {
            base: RtcBase::Utc,
            clock: Some("vm"),
            driftfix_slew: true,
        });
        s.globals.push("kvm-pit.lost_tick_policy=delay".into());
        s.controllers
            .push(Device::new("virtio-serial-pci", "virtio-serial0"));
        s.inputs.push(
            Device::new("usb-tablet", "input0")
                .with("bus", "usb.0")
                .with("port", "1"),
        );
        s.channels.push(Channel {
            source: ChannelSource::Unix(None),
            name: "org.qemu.guest_agent.0".into(),
            index: 0,
            bus: "virtio-serial0.0".into(),
            port: 1,
        });
        s.audiodevs.push(Audiodev {
            id: 1,
            driver: "none",
        });
        s.sounds
            .push(Device::new("AC97", "sound0").with("audiodev", "audio1"));
        s.watchdog = Some(Watchdog {
            device: Some(Device::new("ib700", "watchdog0")),
            action: "pause".into(),
        });
        s.rngs.push(Rng {
            backend: RngBackend::Random(PathBuf::from("/dev/urandom")),
            rate: None,
            pci: Vec::new(),
        });
        s.vmcoreinfo = true;
        // A channel without a socket cannot be started.
        assert!(matches!(s.argv(), Err(Error::InvalidConfig { .. })));
        let placed = s.place_channels(Path::new("/run/g"));
        assert_eq!(
            placed,
            [(0, PathBuf::from("/run/g/org.qemu.guest_agent.0"))]
        );
        let a = argv(&s);
        assert_eq!(
            values(&a, "-machine"),
            ["pc-q35-7.2,hpet=off,vmport=off,smm=on"]
        );
        assert_eq!(values(&a, "-rtc"), ["base=utc,clock=vm,driftfix=slew"]);
        assert_eq!(values(&a, "-global"), ["kvm-pit.lost_tick_policy=delay"]);
        assert_eq!(
            values(&a, "-chardev")[1],
            "socket,id=charchannel0,path=/run/g/org.qemu.guest_agent.0,server=on,wait=off"
        );
        assert_eq!(
            values(&a, "-audiodev"),
            [r#"{"driver":"none","id":"audio1"}"#]
        );
        assert_eq!(values(&a, "-watchdog-action"), ["pause"]);
        assert_eq!(
            values(&a, "-object"),
            [r#"{"filename":"/dev/urandom","id":"objrng0","qom-type":"rng-random"}"#]
        );
        let devices: Vec<serde_json::Value> = values(&a, "-device")
            .into_iter()
            .map(|d| serde_json::from_str(d).expect("json device"))
            .collect();
        let ids: Vec<&str> = devices.iter().filter_map(|d| d["id"].as_str()).collect();
        // libvirt's order: controllers, inputs, channels, sound, watchdog, rng.
        assert_eq!(
            ids,
            [
                "virtio-serial0",
                "input0",
                "channel0",
                "sound0",
                "watchdog0",
                "rng0"
            ]
        );
        assert_eq!(devices[2]["name"], "org.qemu.guest_agent.0");
        assert_eq!(devices[2]["nr"], 1);
        assert_eq!(devices[5]["rng"], "objrng0");
        assert_eq!(
            devices.last().map(|d| &d["driver"]),
            Some(&json!("vmcoreinfo"))
        );
    }

    #[test]
    fn the_video_adapter_takes_the_old_vga_place() {
        let mut s = spec();
        s.disks.push(Disk {
            source: PathBuf::from("/img/a"),
            format: "raw".into(),
            target: "vda".into(),
            bus: "virtio".into(),
            readonly: false,
            pci: Vec::new(),
        });
        s.video = Some(Device::new("virtio-vga", "video0").with("max_outputs", 1));
        s.controllers
            .push(Device::new("virtio-serial-pci", "virtio-serial0"));
        let a = argv(&s);
        let devices = values(&a, "-device");
        // After the disks and NICs, before every device older guests lacked.
        assert!(devices[1].contains("virtio-vga"), "{devices:?}");
        assert!(devices[2].contains("virtio-serial-pci"), "{devices:?}");
        // No display is needed for an adapter.
        assert!(values(&a, "-vnc").is_empty());
    }

    #[test]
    fn vnc_fixed_port_is_a_display_number() {
        let mut s = spec();
        s.graphics.push(Graphics::Vnc {
            listen: "::1".into(),
            port: Some(5903),
        });
        assert_eq!(values(&argv(&s), "-vnc"), ["[::1]:3"]);
    }

    #[test]
    fn zero_memory_is_refused() {
        let mut s = spec();
        s.memory_mib = 0;
        assert!(matches!(s.argv(), Err(Error::InvalidConfig { .. })));
    }

    #[test]
    fn emulator_lookup() {
        let dir = tempfile::tempdir().expect("tempdir");
        let exe = dir.path().join(DEFAULT_EMULATOR);
        std::fs::write(&exe, "#!/bin/sh\n").expect("write");
        let not_exe = dir.path().join("plain");
        std::fs::write(&not_exe, "").expect("write");
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).expect("chmod");

        assert_eq!(find_emulator(Some(&exe)).expect("explicit"), exe);
        assert!(matches!(
            find_emulator(Some(&not_exe)),
            Err(Error::EmulatorNotExecutable { .. })
        ));
        assert!(matches!(
            find_emulator(Some(&dir.path().join("missing"))),
            Err(Error::EmulatorNotExecutable { .. })
        ));
        let found = search_path(DEFAULT_EMULATOR, Some(dir.path().as_os_str().to_owned()))
            .expect("found on PATH");
        assert_eq!(found, exe);
        let empty = tempfile::tempdir().expect("tempdir");
        assert!(matches!(
            search_path(DEFAULT_EMULATOR, Some(empty.path().as_os_str().to_owned())),
            Err(Error::EmulatorNotFound { .. })
        ));
        assert!(matches!(
            search_path(DEFAULT_EMULATOR, None),
            Err(Error::EmulatorNotFound { .. })
        ));
    }

    #[test]
    fn accel_falls_back_to_tcg_without_a_kvm_device() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(Accel::detect_at(&dir.path().join("kvm")), Accel::Tcg);
    }
}
