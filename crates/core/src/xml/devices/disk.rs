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
    /// An empty `<backingStore/>` ending the chain (libvirt writes it
    /// below the last image it knows of).
    pub backing_store: bool,
    /// The images below `source`, top first (`<backingStore>` nested in
    /// `<backingStore>`): what an external snapshot leaves underneath.
    pub backing: Vec<BackingStore>,
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

/// One image of a disk's backing chain:
/// `<backingStore type='file' index='1'><format type='qcow2'/><source file='…'/>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackingStore {
    /// `type`: file or block.
    pub kind: DiskType,
    /// `<format type=…>`: the image's format.
    pub format: Option<String>,
    /// `<source file=…>` (or `dev=…`).
    pub path: String,
    /// `index`: libvirt's chain index, live XML only.
    pub index: Option<u32>,
}

/// The attribute of `<source>` naming the image of a `kind` disk.
fn path_attr(kind: DiskType) -> &'static str {
    match kind {
        DiskType::File => "file",
        DiskType::Block => "dev",
    }
}

/// Reads a `<backingStore>` element: an empty one ends the chain (`Ok(false)`
/// with nothing pushed), a full one pushes its image and its own backing
/// onto `chain`. Returns whether the chain ends in an empty element.
fn parse_backing(mut node: Node<'_>, chain: &mut Vec<BackingStore>) -> Result<bool> {
    let kind = node.attr_parse::<DiskType>("type")?;
    let index = node.attr_parse::<u32>("index")?;
    let Some(kind) = kind else {
        // `<backingStore/>`: the end of the chain.
        node.leaf(|_| Ok(()))?;
        return Ok(true);
    };
    let (mut format, mut source, mut below) = (None, None, None);
    for c in node.children() {
        match c.name() {
            "format" => once(&mut format, c, |c| c.leaf(|c| c.req_attr("type")))?,
            "source" => once(&mut source, c, |c| {
                c.leaf(|c| {
                    let attr = path_attr(kind);
                    c.req_attr(attr)
                })
            })?,
            "backingStore" => once(&mut below, c, |c| {
                let mut rest = Vec::new();
                let ends = parse_backing(c, &mut rest)?;
                Ok((rest, ends))
            })?,
            _ => return Err(c.unsupported()),
        }
    }
    let path = source.ok_or_else(|| XmlError::MissingElement {
        path: format!("{}/source", node.path()),
    })?;
    node.finish()?;
    chain.push(BackingStore {
        kind,
        format,
        path,
        index,
    });
    let (rest, ends) = below.unwrap_or_default();
    chain.extend(rest);
    Ok(ends)
}

/// Writes `chain` as nested `<backingStore>` elements, the innermost one
/// holding an empty `<backingStore/>` when `ends`.
fn format_backing(w: &mut Writer, chain: &[BackingStore], ends: bool, opts: &FormatOptions) {
    let Some((first, rest)) = chain.split_first() else {
        if ends && !opts.inactive {
            w.empty("backingStore", &[]);
        }
        return;
    };
    let index = if opts.inactive { None } else { first.index };
    w.elem(
        "backingStore",
        &[("type", &first.kind), ("index", &index)],
        |w| {
            w.empty("format", &[("type", &first.format)]);
            w.empty("source", &[(path_attr(first.kind), &first.path)]);
            format_backing(w, rest, ends, opts);
        },
    );
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
        let source_attr = path_attr(kind);
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
                "backingStore" => once(&mut backing, c, |c| {
                    let mut chain = Vec::new();
                    let ends = parse_backing(c, &mut chain)?;
                    Ok((chain, ends))
                })?,
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
            backing_store: backing.as_ref().is_some_and(|(_, ends)| *ends),
            backing: backing.map(|(chain, _)| chain).unwrap_or_default(),
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
                    // The chain index is assigned when the guest starts.
                    let index = if opts.inactive { None } else { s.index };
                    w.empty(
                        "source",
                        &[
                            (path_attr(self.kind), &s.path),
                            ("index", &index),
                            ("startupPolicy", &s.startup_policy),
                        ],
                    );
                }
                format_backing(w, &self.backing, self.backing_store, opts);
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

#[cfg(test)]
mod tests {
    use crate::xml::{DomainDef, FormatOptions};

    const CHAIN: &str = "<domain type='qemu'><name>vm</name><memory unit='MiB'>4</memory>\
         <os><type>hvm</type></os><devices>\
         <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>\
         <source file='/img/a.snap2' index='3'/>\
         <backingStore type='file' index='2'><format type='qcow2'/><source file='/img/a.snap1'/>\
         <backingStore type='file' index='1'><format type='raw'/><source file='/img/a.img'/>\
         <backingStore/></backingStore></backingStore>\
         <target dev='vda' bus='virtio'/></disk></devices></domain>";

    #[test]
    fn backing_chains_round_trip() {
        let def = DomainDef::parse(CHAIN).expect("chain");
        let disk = &def.devices.disks[0];
        let paths: Vec<_> = disk.backing.iter().map(|b| b.path.as_str()).collect();
        assert_eq!(paths, ["/img/a.snap1", "/img/a.img"]);
        assert_eq!(disk.backing[1].format.as_deref(), Some("raw"));
        assert_eq!(disk.backing[0].index, Some(2));
        assert!(disk.backing_store, "the chain ends in <backingStore/>");
        let live = def.format(&FormatOptions::default());
        assert_eq!(DomainDef::parse(&live).expect("again"), def);
        assert!(
            live.contains("<backingStore type='file' index='2'>"),
            "{live}"
        );
        let inactive = def.format(&FormatOptions {
            inactive: true,
            ..FormatOptions::default()
        });
        assert!(!inactive.contains("index="), "{inactive}");
        assert!(
            inactive.contains("<source file='/img/a.img'/>"),
            "{inactive}"
        );
    }

    #[test]
    fn a_backing_store_without_source_is_refused() {
        let bad = CHAIN.replace("<source file='/img/a.snap1'/>", "");
        assert!(DomainDef::parse(&bad).is_err());
    }
}
