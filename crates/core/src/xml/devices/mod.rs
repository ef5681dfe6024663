//! `<devices>`: one vector per device class, each kept in document order.
//!
//! Classes are formatted in libvirt's order (`virDomainDefFormatInternal` in
//! src/conf/domain_conf.c), so a definition that lists devices in another
//! order comes back grouped, and formatting is idempotent.

mod address;
mod bandwidth;
mod chardev;
mod controller;
mod disk;
mod display;
mod iotune;
mod misc;
mod net;

pub use address::{Address, DeviceInfo};
pub use bandwidth::{Bandwidth, BandwidthRate};
pub use chardev::{CharDevice, CharSource, CharTarget};
pub use controller::Controller;
pub use disk::{BackingStore, Disk, DiskDriver, DiskSource, DiskTarget};
pub use display::{Graphics, GraphicsListen, Input, Video, VideoModel};
pub use iotune::{BlockIoTune, GROUP_AT, GROUP_NAME, IOTUNE_LIMITS};
pub use misc::{Audio, Memballoon, Redirdev, Rng, Sound, Tpm, Watchdog};
pub use net::{Interface, InterfaceSource};

use super::error::Result;
use super::read::{once, Node};
use super::write::Writer;
use super::{tree, FormatOptions};

/// One device element on its own, as `virsh attach-device` sends it
/// (libvirt's `virDomainDeviceDef`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceDef {
    /// `<disk>`.
    Disk(Disk),
    /// `<interface>`.
    Interface(Interface),
    /// Any other element, by name (`video`, `hostdev`): hot-plug refuses it.
    Other(String),
}

impl DeviceDef {
    /// Parses a device document: a `<disk>` or an `<interface>` strictly,
    /// as inside `<devices>`; any other root element only by its name.
    ///
    /// # Errors
    /// Any [`XmlError`](super::XmlError) of the document or of the device.
    pub fn parse(xml: &str) -> Result<Self> {
        let root = tree::parse(xml)?;
        let node = Node::root(&root);
        Ok(match root.name.as_str() {
            "disk" => DeviceDef::Disk(Disk::parse(node)?),
            "interface" => DeviceDef::Interface(Interface::parse(node)?),
            other => DeviceDef::Other(other.to_owned()),
        })
    }

    /// The element name (`disk`, `interface`, ...), as libvirt's messages
    /// name a device type.
    pub fn type_name(&self) -> &str {
        match self {
            DeviceDef::Disk(_) => "disk",
            DeviceDef::Interface(_) => "interface",
            DeviceDef::Other(name) => name,
        }
    }

    /// The alias (QEMU id) the device carries, if any.
    pub fn alias(&self) -> Option<&str> {
        match self {
            DeviceDef::Disk(d) => d.info.alias.as_deref(),
            DeviceDef::Interface(i) => i.info.alias.as_deref(),
            DeviceDef::Other(_) => None,
        }
    }
}

/// Everything under `<devices>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Devices {
    /// `<emulator>`: path of the device model binary (host-side).
    pub emulator: Option<String>,
    /// `<disk>`s.
    pub disks: Vec<Disk>,
    /// `<controller>`s.
    pub controllers: Vec<Controller>,
    /// `<interface>`s.
    pub interfaces: Vec<Interface>,
    /// `<serial>` ports.
    pub serials: Vec<CharDevice>,
    /// `<console>`s.
    pub consoles: Vec<CharDevice>,
    /// `<channel>`s (guest agent, SPICE agent).
    pub channels: Vec<CharDevice>,
    /// `<input>` devices.
    pub inputs: Vec<Input>,
    /// `<tpm>`s.
    pub tpms: Vec<Tpm>,
    /// `<graphics>` frame buffers.
    pub graphics: Vec<Graphics>,
    /// `<sound>` cards.
    pub sounds: Vec<Sound>,
    /// `<audio>` back-ends.
    pub audios: Vec<Audio>,
    /// `<video>` adapters.
    pub videos: Vec<Video>,
    /// `<redirdev>`s: USB redirection channels.
    pub redirdevs: Vec<Redirdev>,
    /// `<watchdog>`s.
    pub watchdogs: Vec<Watchdog>,
    /// `<memballoon>`.
    pub memballoon: Option<Memballoon>,
    /// `<rng>`s.
    pub rngs: Vec<Rng>,
}

impl Devices {
    /// The memory balloon, if the guest has one (`model='none'` is none, as
    /// libvirt's `virDomainDefHasMemballoon`).
    pub fn balloon_mut(&mut self) -> Option<&mut Memballoon> {
        self.memballoon.as_mut().filter(|b| b.model != "none")
    }

    /// The disk whose target (`vda`) or source path is `name`, as libvirt's
    /// `virDomainDiskByName` finds it.
    pub fn disk(&self, name: &str) -> Option<&Disk> {
        self.disk_index(name).map(|i| &self.disks[i])
    }

    /// Where [`Devices::disk`] finds `name` among the disks.
    pub fn disk_index(&self, name: &str) -> Option<usize> {
        self.disks
            .iter()
            .position(|d| d.target.dev == name)
            .or_else(|| {
                self.disks
                    .iter()
                    .position(|d| d.source.as_ref().is_some_and(|s| s.path == name))
            })
    }

    /// The interface whose MAC address (any case) or host device name
    /// (`<target dev>`) is `device`, as libvirt's `virDomainNetFind`.
    pub fn interface(&self, device: &str) -> Option<&Interface> {
        self.interface_index(device).map(|i| &self.interfaces[i])
    }

    /// Where [`Devices::interface`] finds `device` among the interfaces.
    pub fn interface_index(&self, device: &str) -> Option<usize> {
        self.interfaces.iter().position(|i| {
            i.mac
                .as_deref()
                .is_some_and(|m| m.eq_ignore_ascii_case(device))
                || i.target_dev.as_deref() == Some(device)
        })
    }

    /// [`Devices::disk`], or libvirt's error for a disk the domain lacks
    /// (`VIR_ERR_INVALID_ARG` "invalid path: …", as its statistics calls).
    ///
    /// # Errors
    /// That one.
    pub fn disk_for(&self, name: &str) -> crate::Result<&Disk> {
        self.disk(name).ok_or_else(|| crate::Error::InvalidValue {
            reason: format!("invalid path: {name}"),
        })
    }

    /// [`Devices::disk`], or libvirt's error for a disk the domain lacks as
    /// `virDomainGetBlockInfo` words it (`VIR_ERR_INVALID_ARG` "invalid path
    /// … not assigned to domain").
    ///
    /// # Errors
    /// That one.
    pub fn assigned_disk(&self, name: &str) -> crate::Result<&Disk> {
        self.disk(name).ok_or_else(|| crate::Error::InvalidValue {
            reason: format!("invalid path {name} not assigned to domain"),
        })
    }

    /// [`Devices::interface`], or libvirt's error for an interface the
    /// domain lacks (`VIR_ERR_INVALID_ARG` "'…' is not a known interface").
    ///
    /// # Errors
    /// That one.
    pub fn interface_for(&self, device: &str) -> crate::Result<&Interface> {
        self.interface(device)
            .ok_or_else(|| crate::Error::InvalidValue {
                reason: format!("'{device}' is not a known interface"),
            })
    }

    pub(crate) fn parse(node: Node<'_>) -> Result<Self> {
        let mut d = Devices::default();
        for c in node.children() {
            match c.name() {
                "emulator" => once(&mut d.emulator, c, Node::text)?,
                "disk" => d.disks.push(Disk::parse(c)?),
                "controller" => d.controllers.push(Controller::parse(c)?),
                "interface" => d.interfaces.push(Interface::parse(c)?),
                "serial" => d.serials.push(CharDevice::parse(c)?),
                "console" => d.consoles.push(CharDevice::parse(c)?),
                "channel" => d.channels.push(CharDevice::parse(c)?),
                "input" => d.inputs.push(Input::parse(c)?),
                "tpm" => d.tpms.push(Tpm::parse(c)?),
                "redirdev" => d.redirdevs.push(Redirdev::parse(c)?),
                "graphics" => d.graphics.push(Graphics::parse(c)?),
                "sound" => d.sounds.push(Sound::parse(c)?),
                "audio" => d.audios.push(Audio::parse(c)?),
                "video" => d.videos.push(Video::parse(c)?),
                "watchdog" => d.watchdogs.push(Watchdog::parse(c)?),
                "memballoon" => once(&mut d.memballoon, c, Memballoon::parse)?,
                "rng" => d.rngs.push(Rng::parse(c)?),
                _ => return Err(c.unsupported()),
            }
        }
        node.finish()?;
        Ok(d)
    }

    pub(crate) fn format(&self, w: &mut Writer, opts: &FormatOptions) {
        w.elem("devices", &[], |w| {
            w.opt_text("emulator", self.emulator.as_deref());
            self.disks.iter().for_each(|x| x.format(w, opts));
            self.controllers.iter().for_each(|x| x.format(w, opts));
            self.interfaces.iter().for_each(|x| x.format(w, opts));
            for (element, list) in [
                ("serial", &self.serials),
                ("console", &self.consoles),
                ("channel", &self.channels),
            ] {
                list.iter().for_each(|x| x.format(w, element, opts));
            }
            self.inputs.iter().for_each(|x| x.format(w, opts));
            self.tpms.iter().for_each(|x| x.format(w, opts));
            self.graphics.iter().for_each(|x| x.format(w, opts));
            self.sounds.iter().for_each(|x| x.format(w, opts));
            self.audios.iter().for_each(|x| x.format(w));
            self.videos.iter().for_each(|x| x.format(w, opts));
            self.redirdevs.iter().for_each(|x| x.format(w, opts));
            self.watchdogs.iter().for_each(|x| x.format(w, opts));
            if let Some(m) = &self.memballoon {
                m.format(w, opts);
            }
            self.rngs.iter().for_each(|x| x.format(w, opts));
        });
    }
}
