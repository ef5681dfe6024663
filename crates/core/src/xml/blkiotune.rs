//! `<blkiotune>`: the block I/O weights and per-device limits `virsh
//! blkiotune` reads and changes (libvirt's `virDomainBlkioDeviceParseXML` /
//! `virDomainDefBlkioFormat`). A value of 0 is "not set", as in libvirt.

use super::error::Result;
use super::read::{once, Node};
use super::write::Writer;

/// `<blkiotune>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlkioTune {
    /// `<weight>`: the domain's proportional I/O weight (0: not set).
    pub weight: u32,
    /// `<device>`s, in the order they were given.
    pub devices: Vec<BlkioDevice>,
}

/// One `<device>` of `<blkiotune>`: a host block device and its settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlkioDevice {
    /// `<path>`: the host device node.
    pub path: String,
    /// `<weight>` (0: not set).
    pub weight: u32,
    /// `<read_iops_sec>` (0: not set).
    pub read_iops: u64,
    /// `<write_iops_sec>` (0: not set).
    pub write_iops: u64,
    /// `<read_bytes_sec>` (0: not set).
    pub read_bytes: u64,
    /// `<write_bytes_sec>` (0: not set).
    pub write_bytes: u64,
}

impl BlkioDevice {
    /// Whether no setting is left (libvirt then drops the device).
    pub fn is_empty(&self) -> bool {
        self.weight == 0
            && self.read_iops == 0
            && self.write_iops == 0
            && self.read_bytes == 0
            && self.write_bytes == 0
    }
}

impl BlkioTune {
    /// Whether nothing is set (the element is then not written).
    pub fn is_empty(&self) -> bool {
        self.weight == 0 && self.devices.is_empty()
    }

    pub(super) fn parse(node: Node<'_>) -> Result<Self> {
        let mut t = Self::default();
        let mut weight = None;
        for c in node.children() {
            match c.name() {
                "weight" => once(&mut weight, c, Node::text_parse)?,
                "device" => t.devices.push(parse_device(c)?),
                _ => return Err(c.unsupported()),
            }
        }
        node.finish()?;
        t.weight = weight.unwrap_or(0);
        Ok(t)
    }

    pub(super) fn format(&self, w: &mut Writer) {
        if self.is_empty() {
            return;
        }
        w.elem("blkiotune", &[], |w| {
            if self.weight != 0 {
                w.text("weight", &[], &self.weight.to_string());
            }
            for d in &self.devices {
                w.elem("device", &[], |w| {
                    w.text("path", &[], &d.path);
                    if d.weight != 0 {
                        w.text("weight", &[], &d.weight.to_string());
                    }
                    for (name, value) in [
                        ("read_iops_sec", d.read_iops),
                        ("write_iops_sec", d.write_iops),
                        ("read_bytes_sec", d.read_bytes),
                        ("write_bytes_sec", d.write_bytes),
                    ] {
                        if value != 0 {
                            w.text(name, &[], &value.to_string());
                        }
                    }
                });
            }
        });
    }
}

fn parse_device(node: Node<'_>) -> Result<BlkioDevice> {
    let (mut path, mut weight) = (None, None);
    let (mut riops, mut wiops, mut rbps, mut wbps) = (None, None, None, None);
    for c in node.children() {
        match c.name() {
            "path" => once(&mut path, c, Node::text)?,
            "weight" => once(&mut weight, c, Node::text_parse)?,
            "read_iops_sec" => once(&mut riops, c, Node::text_parse)?,
            "write_iops_sec" => once(&mut wiops, c, Node::text_parse)?,
            "read_bytes_sec" => once(&mut rbps, c, Node::text_parse)?,
            "write_bytes_sec" => once(&mut wbps, c, Node::text_parse)?,
            _ => return Err(c.unsupported()),
        }
    }
    let path = path.ok_or_else(|| super::XmlError::MissingElement {
        path: format!("{}/path", node.path()),
    })?;
    node.finish()?;
    Ok(BlkioDevice {
        path,
        weight: weight.unwrap_or(0),
        read_iops: riops.unwrap_or(0),
        write_iops: wiops.unwrap_or(0),
        read_bytes: rbps.unwrap_or(0),
        write_bytes: wbps.unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use crate::xml::{DomainDef, FormatOptions};

    const XML: &str = "<domain type='test'><name>b</name><memory>1024</memory>\
        <blkiotune><weight>500</weight><device><path>/dev/sda</path><weight>300</weight>\
        <read_bytes_sec>1000</read_bytes_sec></device><device><path>/dev/sdb</path>\
        <write_iops_sec>7</write_iops_sec></device></blkiotune></domain>";

    #[test]
    fn weights_and_devices_round_trip_before_vcpu() {
        let def = DomainDef::parse(XML).expect("parse");
        assert_eq!(def.blkiotune.weight, 500);
        assert_eq!(def.blkiotune.devices.len(), 2);
        assert_eq!(def.blkiotune.devices[0].read_bytes, 1000);
        assert_eq!(def.blkiotune.devices[1].write_iops, 7);
        let xml = def.format(&FormatOptions::default());
        assert!(
            xml.contains(
                "<device>\n      <path>/dev/sda</path>\n      <weight>300</weight>\n      \
                 <read_bytes_sec>1000</read_bytes_sec>\n    </device>"
            ),
            "{xml}"
        );
        assert!(xml.find("<blkiotune>") < xml.find("<vcpu"), "{xml}");
        assert!(
            xml.find("<currentMemory") < xml.find("<blkiotune>"),
            "{xml}"
        );
        assert_eq!(DomainDef::parse(&xml).expect("reparse"), def);
    }

    #[test]
    fn a_device_needs_a_path_and_numbers() {
        let no_path = XML.replace("<path>/dev/sdb</path>", "");
        assert!(DomainDef::parse(&no_path).is_err());
        let bad = XML.replace(">7<", ">seven<");
        assert!(DomainDef::parse(&bad).is_err());
    }
}
