//! `<numatune>`: the host NUMA memory policy `virsh numatune` reads and
//! changes (libvirt's `virDomainNumatuneParseXML` / `virDomainNumatuneFormatXML`),
//! the `<memory>` child only.

use super::error::{Result, XmlError};
use super::read::{once, Node};
use super::write::Writer;

/// `VIR_DOMAIN_NUMATUNE_MEM_*`, in libvirt's order (the typed parameter
/// `numa_mode` is the index).
pub const NUMA_MODES: [&str; 4] = ["strict", "preferred", "interleave", "restrictive"];

/// `<numatune>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NumaTune {
    /// `<memory>`, if given.
    pub memory: Option<NumaMemory>,
}

/// `<memory mode=… nodeset=… placement=…/>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NumaMemory {
    /// `mode`: an index into [`NUMA_MODES`] (libvirt's default is strict).
    pub mode: Option<usize>,
    /// `nodeset`: host NUMA nodes, as written (`0-1`).
    pub nodeset: Option<String>,
    /// `placement`: static or auto.
    pub placement: Option<String>,
}

impl NumaTune {
    /// Whether nothing is set (the element is then not written).
    pub fn is_empty(&self) -> bool {
        self.memory.is_none()
    }

    pub(super) fn parse(node: Node<'_>) -> Result<Self> {
        let mut memory = None;
        for c in node.children() {
            match c.name() {
                "memory" => once(&mut memory, c, |c| {
                    c.leaf(|c| {
                        let mode = match c.attr("mode") {
                            None => None,
                            Some(m) => {
                                Some(NUMA_MODES.iter().position(|k| *k == m).ok_or_else(|| {
                                    c.invalid_attr("mode", &m, "unsupported numatune mode")
                                })?)
                            }
                        };
                        Ok(NumaMemory {
                            mode,
                            nodeset: c.attr("nodeset"),
                            placement: c.attr("placement"),
                        })
                    })
                })?,
                _ => return Err(c.unsupported()),
            }
        }
        node.finish()?;
        if let Some(m) = &memory {
            if m.nodeset.is_none() && m.placement.as_deref() != Some("auto") && m.mode.is_none() {
                return Err(XmlError::MissingAttribute {
                    attr: "nodeset".into(),
                    path: "numatune/memory".into(),
                });
            }
        }
        Ok(Self { memory })
    }

    pub(super) fn format(&self, w: &mut Writer) {
        let Some(m) = &self.memory else { return };
        let mode = NUMA_MODES[m.mode.unwrap_or(0).min(NUMA_MODES.len() - 1)];
        w.elem("numatune", &[], |w| {
            w.empty(
                "memory",
                &[
                    ("mode", &mode),
                    ("nodeset", &m.nodeset),
                    ("placement", &m.placement),
                ],
            );
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::xml::{DomainDef, FormatOptions};

    const XML: &str = "<domain type='test'><name>n</name><memory>1024</memory><vcpu>1</vcpu>\
        <numatune><memory mode='interleave' nodeset='0-1'/></numatune></domain>";

    #[test]
    fn memory_policy_round_trips_after_vcpu() {
        let def = DomainDef::parse(XML).expect("parse");
        let m = def.numatune.memory.as_ref().expect("memory");
        assert_eq!((m.mode, m.nodeset.as_deref()), (Some(2), Some("0-1")));
        let xml = def.format(&FormatOptions::default());
        assert!(
            xml.contains(
                "<numatune>\n    <memory mode='interleave' nodeset='0-1'/>\n  </numatune>"
            ),
            "{xml}"
        );
        assert!(xml.find("<vcpu") < xml.find("<numatune>"), "{xml}");
        assert_eq!(DomainDef::parse(&xml).expect("reparse"), def);
    }

    #[test]
    fn unknown_modes_and_children_are_refused() {
        assert!(DomainDef::parse(&XML.replace("interleave", "sometimes")).is_err());
        let memnode = XML.replace("</numatune>", "<memnode cellid='0'/></numatune>");
        assert!(DomainDef::parse(&memnode).is_err());
    }
}
