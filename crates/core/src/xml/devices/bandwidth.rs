//! `<bandwidth>` of an interface: the traffic shaping `virsh domiftune`
//! reads and changes (libvirt's `virNetDevBandwidthParse` /
//! `virNetDevBandwidthFormat`). Rates in KiB/s, bursts in KiB; 0 is "not set".

use crate::xml::error::Result;
use crate::xml::read::{once, Node};
use crate::xml::write::Writer;

/// One direction of `<bandwidth>`: `<inbound>` or `<outbound>`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BandwidthRate {
    /// `average`: the mean rate.
    pub average: u64,
    /// `peak`: the most the rate may reach.
    pub peak: u64,
    /// `floor`: a guaranteed rate (inbound only).
    pub floor: u64,
    /// `burst`: what may be sent at peak.
    pub burst: u64,
}

/// An interface's `<bandwidth>`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bandwidth {
    /// `<inbound>`: traffic to the guest.
    pub inbound: Option<BandwidthRate>,
    /// `<outbound>`: traffic from the guest.
    pub outbound: Option<BandwidthRate>,
}

impl Bandwidth {
    /// Whether neither direction is shaped (the element is then not written).
    pub fn is_empty(&self) -> bool {
        self.inbound.is_none() && self.outbound.is_none()
    }

    pub(crate) fn parse(node: Node<'_>) -> Result<Self> {
        let (mut inbound, mut outbound) = (None, None);
        for c in node.children() {
            match c.name() {
                "inbound" => once(&mut inbound, c, parse_rate)?,
                "outbound" => once(&mut outbound, c, parse_rate)?,
                _ => return Err(c.unsupported()),
            }
        }
        node.finish()?;
        Ok(Self { inbound, outbound })
    }

    pub(crate) fn format(&self, w: &mut Writer) {
        if self.is_empty() {
            return;
        }
        let nonzero = |v: u64| (v != 0).then_some(v);
        w.elem("bandwidth", &[], |w| {
            for (name, rate) in [("inbound", &self.inbound), ("outbound", &self.outbound)] {
                if let Some(r) = rate {
                    // libvirt's attribute order: floor before burst.
                    w.empty(
                        name,
                        &[
                            ("average", &nonzero(r.average)),
                            ("peak", &nonzero(r.peak)),
                            ("floor", &nonzero(r.floor)),
                            ("burst", &nonzero(r.burst)),
                        ],
                    );
                }
            }
        });
    }
}

fn parse_rate(node: Node<'_>) -> Result<BandwidthRate> {
    node.leaf(|c| {
        Ok(BandwidthRate {
            average: c.attr_parse("average")?.unwrap_or(0),
            peak: c.attr_parse("peak")?.unwrap_or(0),
            floor: c.attr_parse("floor")?.unwrap_or(0),
            burst: c.attr_parse("burst")?.unwrap_or(0),
        })
    })
}

#[cfg(test)]
mod tests {
    use crate::xml::{DomainDef, FormatOptions};

    const XML: &str = "<domain type='test'><name>i</name><memory>1024</memory><devices>\
        <interface type='network'><mac address='52:54:00:00:00:02'/>\
        <source network='default'/><model type='virtio'/><bandwidth>\
        <outbound burst='30' average='10' peak='20'/>\
        <inbound average='100' peak='200' burst='300' floor='50'/></bandwidth>\
        </interface></devices></domain>";

    #[test]
    fn rates_round_trip_after_the_source() {
        let def = DomainDef::parse(XML).expect("parse");
        let bw = def.devices.interfaces[0].bandwidth;
        let inbound = bw.inbound.expect("inbound");
        assert_eq!((inbound.average, inbound.floor), (100, 50));
        assert_eq!(bw.outbound.map(|o| o.burst), Some(30));
        let xml = def.format(&FormatOptions::default());
        assert!(
            xml.contains(
                "<source network='default'/>\n      <bandwidth>\n        \
                 <inbound average='100' peak='200' floor='50' burst='300'/>\n        \
                 <outbound average='10' peak='20' burst='30'/>\n      </bandwidth>\n      \
                 <model type='virtio'/>"
            ),
            "{xml}"
        );
        assert_eq!(DomainDef::parse(&xml).expect("reparse"), def);
    }

    #[test]
    fn bad_rates_are_refused() {
        assert!(DomainDef::parse(&XML.replace("'100'", "'fast'")).is_err());
        assert!(DomainDef::parse(&XML.replace("<outbound ", "<sideways ")).is_err());
    }
}
