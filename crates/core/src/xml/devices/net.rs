//! `<interface>`.

use super::address::DeviceInfo;
use super::bandwidth::Bandwidth;
use crate::xml::error::Result;
use crate::xml::kinds::InterfaceType;
use crate::xml::read::{once, Node};
use crate::xml::write::Writer;
use crate::xml::FormatOptions;

/// A network interface card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// `type`: user, network, bridge, ethernet.
    pub kind: InterfaceType,
    /// `<mac address=…/>`, normalised to lower case.
    pub mac: Option<String>,
    /// `<source …/>`: the host network it plugs into.
    pub source: Option<InterfaceSource>,
    /// `<bandwidth>`: traffic shaping.
    pub bandwidth: Bandwidth,
    /// `<target dev=…/>`: the host tap device.
    pub target_dev: Option<String>,
    /// `<model type=…/>`: virtio, e1000, rtl8139 (guest-visible).
    pub model: Option<String>,
    /// `<driver …/>` attributes (name, queues, txmode, rx_queue_size, tx_queue_size).
    pub driver: Vec<(String, String)>,
    /// `<link state=…/>`: up or down.
    pub link_state: Option<String>,
    /// `<mtu size=…/>`.
    pub mtu: Option<u32>,
    /// `<boot order=…/>`.
    pub boot_order: Option<u32>,
    /// Alias and address.
    pub info: DeviceInfo,
}

/// `<source network=… bridge=… …/>`; which attributes apply depends on the type.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InterfaceSource {
    /// `network`: libvirt network name.
    pub network: Option<String>,
    /// `portgroup` of the network.
    pub portgroup: Option<String>,
    /// `portid`: the network port, live XML only.
    pub portid: Option<String>,
    /// `bridge`: host bridge name.
    pub bridge: Option<String>,
    /// `dev`: host device.
    pub dev: Option<String>,
}

/// Checks and normalises `aa:bb:cc:dd:ee:ff`.
fn normalise_mac(mac: &str) -> Option<String> {
    let parts: Vec<&str> = mac.split(':').collect();
    let valid = parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()));
    valid.then(|| mac.to_ascii_lowercase())
}

impl Interface {
    pub(crate) fn parse(mut node: Node<'_>) -> Result<Self> {
        let kind: InterfaceType = node.req_attr_parse("type")?;
        let mut info = DeviceInfo::default();
        let (mut mac, mut source, mut target, mut model) = (None, None, None, None);
        let (mut driver, mut link, mut mtu, mut boot) = (None, None, None, None);
        let mut bandwidth = None;
        for c in node.children() {
            let Some(c) = info.take(c)? else { continue };
            match c.name() {
                "mac" => once(&mut mac, c, |c| {
                    c.leaf(|c| {
                        let raw = c.req_attr("address")?;
                        normalise_mac(&raw)
                            .ok_or_else(|| c.invalid_attr("address", &raw, "not a MAC address"))
                    })
                })?,
                "source" => once(&mut source, c, |c| {
                    c.leaf(|c| {
                        Ok(InterfaceSource {
                            network: c.attr("network"),
                            portgroup: c.attr("portgroup"),
                            portid: c.attr("portid"),
                            bridge: c.attr("bridge"),
                            dev: c.attr("dev"),
                        })
                    })
                })?,
                "bandwidth" => once(&mut bandwidth, c, Bandwidth::parse)?,
                "target" => once(&mut target, c, |c| c.leaf(|c| c.req_attr("dev")))?,
                "model" => once(&mut model, c, |c| c.leaf(|c| c.req_attr("type")))?,
                "driver" => once(&mut driver, c, |c| {
                    c.leaf(|c| {
                        Ok(c.attrs_in(&[
                            "name",
                            "queues",
                            "txmode",
                            "rx_queue_size",
                            "tx_queue_size",
                        ]))
                    })
                })?,
                "link" => once(&mut link, c, |c| c.leaf(|c| c.req_attr("state")))?,
                "mtu" => once(&mut mtu, c, |c| c.leaf(|c| c.attr_parse::<u32>("size")))?,
                "boot" => once(&mut boot, c, |c| c.leaf(|c| c.attr_parse::<u32>("order")))?,
                _ => return Err(c.unsupported()),
            }
        }
        node.finish()?;
        Ok(Interface {
            kind,
            mac,
            source,
            bandwidth: bandwidth.unwrap_or_default(),
            target_dev: target,
            model,
            driver: driver.unwrap_or_default(),
            link_state: link,
            mtu: mtu.flatten(),
            boot_order: boot.flatten(),
            info,
        })
    }

    pub(crate) fn format(&self, w: &mut Writer, opts: &FormatOptions) {
        w.elem("interface", &[("type", &self.kind)], |w| {
            if let Some(mac) = &self.mac {
                w.empty("mac", &[("address", mac)]);
            }
            if let Some(s) = &self.source {
                let portid = if opts.inactive {
                    None
                } else {
                    s.portid.as_ref()
                };
                w.empty(
                    "source",
                    &[
                        ("network", &s.network),
                        ("portgroup", &s.portgroup),
                        ("portid", &portid),
                        ("bridge", &s.bridge),
                        ("dev", &s.dev),
                    ],
                );
            }
            self.bandwidth.format(w);
            if let Some(dev) = &self.target_dev {
                w.empty("target", &[("dev", dev)]);
            }
            if let Some(m) = &self.model {
                w.empty("model", &[("type", m)]);
            }
            if !self.driver.is_empty() {
                w.empty_list("driver", &self.driver);
            }
            if let Some(state) = &self.link_state {
                w.empty("link", &[("state", state)]);
            }
            if let Some(size) = self.mtu {
                w.empty("mtu", &[("size", &size)]);
            }
            if let Some(order) = self.boot_order {
                w.empty("boot", &[("order", &order)]);
            }
            self.info.format(w, opts);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::normalise_mac;

    #[test]
    fn mac_addresses_are_checked_and_lowercased() {
        assert_eq!(
            normalise_mac("52:54:00:AB:cd:01").as_deref(),
            Some("52:54:00:ab:cd:01")
        );
        assert_eq!(normalise_mac("52:54:00:ab:cd"), None);
        assert_eq!(normalise_mac("52:54:00:ab:cd:zz"), None);
    }
}
