//! `<disk>`.

use super::address::DeviceInfo;
use super::iotune::BlockIoTune;
use crate::xml::error::{Result, XmlError};
use crate::xml::kinds::{DiskDevice, DiskType};
use crate::xml::read::{once, Node};
use crate::xml::write::Writer;
use crate::xml::FormatOptions;

/// A disk, CD-ROM or floppy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    /// `type`: file or block (host-side storage kind).
    pub kind: DiskType,
    /// `device`: how the guest sees it.
    pub device: DiskDevice,
    /// `<driver>`: QEMU block driver settings.
    pub driver: Option<DiskDriver>,
    /// `<source>`: absent for an empty CD-ROM.
    pub source: Option<DiskSource>,
    /// An empty `<backingStore/>` (libvirt writes it for a disk without a backing chain).
    pub backing_store: bool,
    /// `<target dev=… bus=…/>`.
    pub target: DiskTarget,
    /// `<iotune>`: I/O throttling.
    pub iotune: BlockIoTune,
    /// `<readonly/>`.
    pub readonly: bool,
    /// `<shareable/>`.
    pub shareable: bool,
    /// `<serial>`: guest-visible serial number.
    pub serial: Option<String>,
    /// `<boot order=…/>`.
    pub boot_order: Option<u32>,
    /// Alias and address.
    pub info: DeviceInfo,
}

/// `<driver name=… type=… cache=… io=…/>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DiskDriver {
    /// `name`: qemu.
    pub name: Option<String>,
    /// `type`: image format (raw, qcow2).
    pub format: Option<String>,
    /// `cache`: none, writeback, writethrough, directsync, unsafe.
    pub cache: Option<String>,
    /// `io`: native, threads, io_uring.
    pub io: Option<String>,
    /// `discard`: unmap or ignore.
    pub discard: Option<String>,
    /// `detect_zeroes`: off, on, unmap.
    pub detect_zeroes: Option<String>,
}

/// `<source file=…/>` or `<source dev=…/>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskSource {
    /// The file (type file) or device node (type block).
    pub path: String,
    /// `index`: libvirt's backing-chain index, live XML only.
    pub index: Option<u32>,
    /// `startupPolicy`: mandatory, requisite, optional.
    pub startup_policy: Option<String>,
}

/// `<target dev=… bus=…/>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskTarget {
    /// Device name hint (`vda`, `sda`, `hdc`).
    pub dev: String,
    /// virtio, sata, scsi, ide, usb, fdc.
    pub bus: Option<String>,
    /// `tray`: open or closed (removable media).
    pub tray: Option<String>,
    /// `removable`: on or off (USB disks).
    pub removable: Option<String>,
}

impl Disk {
    pub(crate) fn parse(mut node: Node<'_>) -> Result<Self> {
        let kind = node
            .attr_parse::<DiskType>("type")?
            .unwrap_or(DiskType::File);
        let device = node
            .attr_parse::<DiskDevice>("device")?
            .unwrap_or(DiskDevice::Disk);
        let source_attr = match kind {
            DiskType::File => "file",
            DiskType::Block => "dev",
        };
        let mut info = DeviceInfo::default();
        let (mut driver, mut source, mut backing, mut target) = (None, None, None, None);
        let (mut readonly, mut shareable, mut serial, mut boot) = (None, None, None, None);
        let mut iotune = None;
        for c in node.children() {
            let Some(c) = info.take(c)? else { continue };
            match c.name() {
                "driver" => once(&mut driver, c, |c| {
                    c.leaf(|c| {
                        Ok(DiskDriver {
                            name: c.attr("name"),
                            format: c.attr("type"),
                            cache: c.attr("cache"),
                            io: c.attr("io"),
                            discard: c.attr("discard"),
                            detect_zeroes: c.attr("detect_zeroes"),
                        })
                    })
                })?,
                "source" => once(&mut source, c, |c| {
                    c.leaf(|c| {
                        let path = c.attr(source_attr);
                        let index = c.attr_parse("index")?;
                        let startup_policy = c.attr("startupPolicy");
                        // A `file` on a block disk is reported as such, not as a missing `dev`.
                        c.finish_attrs()?;
                        Ok(DiskSource {
                            path: path.ok_or_else(|| XmlError::MissingAttribute {
                                attr: source_attr.into(),
                                path: c.path().to_string(),
                            })?,
                            index,
                            startup_policy,
                        })
                    })
                })?,
                "backingStore" => once(&mut backing, c, |c| c.leaf(|_| Ok(())))?,
                "target" => once(&mut target, c, |c| {
                    c.leaf(|c| {
                        Ok(DiskTarget {
                            dev: c.req_attr("dev")?,
                            bus: c.attr("bus"),
                            tray: c.attr("tray"),
                            removable: c.attr("removable"),
                        })
                    })
                })?,
                "iotune" => once(&mut iotune, c, BlockIoTune::parse)?,
                "readonly" => once(&mut readonly, c, |c| c.leaf(|_| Ok(())))?,
                "shareable" => once(&mut shareable, c, |c| c.leaf(|_| Ok(())))?,
                "serial" => once(&mut serial, c, Node::text)?,
                "boot" => once(&mut boot, c, |c| c.leaf(|c| c.attr_parse::<u32>("order")))?,
                _ => return Err(c.unsupported()),
            }
        }
        let target = target.ok_or_else(|| XmlError::MissingElement {
            path: format!("{}/target", node.path()),
        })?;
        node.finish()?;
        Ok(Disk {
            kind,
            device,
            driver,
            source,
            backing_store: backing.is_some(),
            target,
            iotune: iotune.unwrap_or_default(),
            readonly: readonly.is_some(),
            shareable: shareable.is_some(),
            serial,
            boot_order: boot.flatten(),
            info,
        })
    }

    pub(crate) fn format(&self, w: &mut Writer, opts: &FormatOptions) {
        w.elem(
            "disk",
            &[("type", &self.kind), ("device", &self.device)],
            |w| {
                if let Some(d) = &self.driver {
                    w.empty(
                        "driver",
                        &[
                            ("name", &d.name),
                            ("type", &d.format),
                            ("cache", &d.cache),
                            ("io", &d.io),
                            ("discard", &d.discard),
                            ("detect_zeroes", &d.detect_zeroes),
                        ],
                    );
                }
                if let Some(s) = &self.source {
                    let path_attr = match self.kind {
                        DiskType::File => "file",
                        DiskType::Block => "dev",
                    };
                    // The chain index is assigned when the guest starts.
                    let index = if opts.inactive { None } else { s.index };
                    w.empty(
                        "source",
                        &[
                            (path_attr, &s.path),
                            ("index", &index),
                            ("startupPolicy", &s.startup_policy),
                        ],
                    );
                }
                if self.backing_store && !opts.inactive {
                    w.empty("backingStore", &[]);
                }
                let t = &self.target;
                w.empty(
                    "target",
                    &[
                        ("dev", &t.dev),
                        ("bus", &t.bus),
                        ("tray", &t.tray),
                        ("removable", &t.removable),
                    ],
                );
                self.iotune.format(w);
                if self.readonly {
                    w.empty("readonly", &[]);
                }
                if self.shareable {
                    w.empty("shareable", &[]);
                }
                w.opt_text("serial", self.serial.as_deref());
                if let Some(order) = self.boot_order {
                    w.empty("boot", &[("order", &order)]);
                }
                self.info.format(w, opts);
            },
        );
    }
}
