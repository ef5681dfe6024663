//! Device addresses (`<address type='pci' …/>`) and aliases (`<alias name=…/>`).

use crate::xml::error::Result;
use crate::xml::read::{once, Node};
use crate::xml::write::Writer;
use crate::xml::FormatOptions;

/// The attributes each address type accepts, in output order.
const ADDRESS_FIELDS: &[(&str, &[&str])] = &[
    (
        "pci",
        &["domain", "bus", "slot", "function", "multifunction"],
    ),
    ("drive", &["controller", "bus", "target", "unit"]),
    ("usb", &["bus", "port"]),
    ("virtio-serial", &["controller", "bus", "port"]),
    ("ccid", &["controller", "slot"]),
    ("isa", &["iobase", "irq"]),
    ("ccw", &["cssid", "ssid", "devno"]),
    ("spapr-vio", &["reg"]),
    ("virtio-mmio", &[]),
];

/// Where a device sits on its bus; guest-visible.
///
/// Numeric PCI fields are normalised on parse (`bus='1'` and `bus='0x01'` are
/// the same address), the others are kept as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// `type`: pci, drive, usb, virtio-serial, ccid, isa, ccw, spapr-vio, virtio-mmio.
    pub kind: String,
    /// The type's attributes, in canonical order.
    pub fields: Vec<(String, String)>,
}

impl Address {
    pub(crate) fn parse(node: Node<'_>) -> Result<Self> {
        node.leaf(|n| {
            let kind = n.req_attr("type")?;
            let Some((_, allowed)) = ADDRESS_FIELDS.iter().find(|(k, _)| *k == kind) else {
                return Err(n.invalid_attr("type", &kind, "unknown address type"));
            };
            let mut fields = n.attrs_in(allowed);
            if kind == "pci" {
                for (key, value) in &mut fields {
                    let width = match key.as_str() {
                        "domain" => 4,
                        "bus" | "slot" => 2,
                        "function" => 1,
                        _ => continue,
                    };
                    let v = parse_int(value)
                        .ok_or_else(|| n.invalid_attr(key, value, "not an integer"))?;
                    *value = format!("0x{v:0width$x}");
                }
            }
            Ok(Address { kind, fields })
        })
    }

    fn format(&self, w: &mut Writer) {
        let mut attrs = vec![("type".to_string(), self.kind.clone())];
        attrs.extend(self.fields.iter().cloned());
        w.empty_list("address", &attrs);
    }

    /// The value of one field (`slot`), if present.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses `0x1f` or `31`.
fn parse_int(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Children every device may have: `<alias>` and `<address>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeviceInfo {
    /// `<alias name=…/>`: QEMU's device id.
    pub alias: Option<String>,
    /// `<address …/>`.
    pub address: Option<Address>,
}

impl DeviceInfo {
    /// Consumes `node` if it is an alias or address; returns it otherwise.
    pub(crate) fn take<'a>(&mut self, node: Node<'a>) -> Result<Option<Node<'a>>> {
        match node.name() {
            "alias" => once(&mut self.alias, node, |n| n.leaf(|n| n.req_attr("name")))?,
            "address" => once(&mut self.address, node, Address::parse)?,
            _ => return Ok(Some(node)),
        }
        Ok(None)
    }

    /// Like [`take`](Self::take), but anything else is an unsupported element.
    pub(crate) fn take_or_refuse(&mut self, node: Node<'_>) -> Result<()> {
        match self.take(node)? {
            None => Ok(()),
            Some(other) => Err(other.unsupported()),
        }
    }

    pub(crate) fn format(&self, w: &mut Writer, opts: &FormatOptions) {
        if let Some(alias) = &self.alias {
            // Aliases are assigned at start unless the user chose one ("ua-").
            if !opts.inactive || alias.starts_with("ua-") {
                w.empty("alias", &[("name", alias)]);
            }
        }
        if let Some(a) = &self.address {
            a.format(w);
        }
    }
}

/// Reads children of a device that has nothing but alias and address.
pub(crate) fn info_only(node: &Node<'_>) -> Result<DeviceInfo> {
    let mut info = DeviceInfo::default();
    for c in node.children() {
        info.take_or_refuse(c)?;
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_parse_in_hex_and_decimal() {
        assert_eq!(parse_int("0x1f"), Some(31));
        assert_eq!(parse_int("31"), Some(31));
        assert_eq!(parse_int("zz"), None);
    }
}
