//! `<memtune>`: the memory limits `virsh memtune` reads and changes, in KiB
//! (libvirt's `virDomainMemtuneParseXML` / `virDomainMemtuneFormat`).

use super::error::Result;
use super::read::{once, Node};
use super::units;
use super::write::Writer;

/// The limits of `<memtune>`; an absent one is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemTune {
    /// `<hard_limit>`: the most memory the guest may use.
    pub hard_limit: Option<u64>,
    /// `<soft_limit>`: the memory the guest is pushed back to under contention.
    pub soft_limit: Option<u64>,
    /// `<min_guarantee>`: memory guaranteed to the guest.
    pub min_guarantee: Option<u64>,
    /// `<swap_hard_limit>`: the most memory plus swap the guest may use.
    pub swap_hard_limit: Option<u64>,
}

impl MemTune {
    /// Whether no limit is set (the element is then not written).
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    pub(super) fn parse(node: Node<'_>) -> Result<Self> {
        let mut t = Self::default();
        for c in node.children() {
            match c.name() {
                "hard_limit" => once(&mut t.hard_limit, c, units::read_kib)?,
                "soft_limit" => once(&mut t.soft_limit, c, units::read_kib)?,
                "min_guarantee" => once(&mut t.min_guarantee, c, units::read_kib)?,
                "swap_hard_limit" => once(&mut t.swap_hard_limit, c, units::read_kib)?,
                _ => return Err(c.unsupported()),
            }
        }
        node.finish()?;
        Ok(t)
    }

    pub(super) fn format(&self, w: &mut Writer) {
        if self.is_empty() {
            return;
        }
        // libvirt's order, which is not the order of the virsh options.
        w.elem("memtune", &[], |w| {
            for (name, value) in [
                ("hard_limit", self.hard_limit),
                ("soft_limit", self.soft_limit),
                ("min_guarantee", self.min_guarantee),
                ("swap_hard_limit", self.swap_hard_limit),
            ] {
                if let Some(kib) = value {
                    w.text(name, &[("unit", &"KiB")], &kib.to_string());
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::xml::{DomainDef, FormatOptions};

    const XML: &str = "<domain type='test'><name>m</name><memory unit='MiB'>512</memory>\
        <memtune><soft_limit unit='MiB'>128</soft_limit><hard_limit>262144</hard_limit>\
        </memtune></domain>";

    #[test]
    fn limits_round_trip_in_kib_in_libvirts_order() {
        let def = DomainDef::parse(XML).expect("parse");
        assert_eq!(def.memtune.hard_limit, Some(262_144));
        assert_eq!(def.memtune.soft_limit, Some(131_072));
        assert_eq!(def.memtune.swap_hard_limit, None);
        let xml = def.format(&FormatOptions::default());
        let hard = xml.find("<hard_limit unit='KiB'>262144</hard_limit>");
        let soft = xml.find("<soft_limit unit='KiB'>131072</soft_limit>");
        assert!(hard.is_some() && soft.is_some() && hard < soft, "{xml}");
        assert!(xml.find("<memtune>") < xml.find("<vcpu"), "{xml}");
        assert_eq!(DomainDef::parse(&xml).expect("reparse"), def);
    }

    #[test]
    fn no_limits_no_element_and_unknown_children_refused() {
        let plain = "<domain type='test'><name>m</name><memory>1024</memory></domain>";
        let def = DomainDef::parse(plain).expect("parse");
        assert!(def.memtune.is_empty());
        assert!(!def.format(&FormatOptions::default()).contains("memtune"));
        let bad = XML
            .replace("<hard_limit>", "<bogus_limit>")
            .replace("</hard_limit>", "</bogus_limit>");
        assert!(DomainDef::parse(&bad).is_err());
        let twice = XML.replace("</memtune>", "<hard_limit>1</hard_limit></memtune>");
        assert!(DomainDef::parse(&twice).is_err());
    }
}
