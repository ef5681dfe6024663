//! `<perf>`: the perf events `virsh perf` enables and disables (libvirt's
//! `virDomainPerfDefParseXML` / `virDomainPerfDefFormat`).

use super::error::Result;
use super::read::Node;
use super::write::Writer;

/// `VIR_PERF_EVENT_*` names in libvirt's order: how `<perf>` and
/// `virDomainGetPerfEvents` list them.
pub const PERF_EVENTS: [&str; 22] = [
    "cmt",
    "mbmt",
    "mbml",
    "cpu_cycles",
    "instructions",
    "cache_references",
    "cache_misses",
    "branch_instructions",
    "branch_misses",
    "bus_cycles",
    "stalled_cycles_frontend",
    "stalled_cycles_backend",
    "ref_cpu_cycles",
    "cpu_clock",
    "task_clock",
    "page_faults",
    "context_switches",
    "cpu_migrations",
    "page_faults_min",
    "page_faults_maj",
    "alignment_faults",
    "emulation_faults",
];

/// `<perf>`: each event's state, `None` where the definition says nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Perf {
    /// Indexed like [`PERF_EVENTS`].
    pub events: [Option<bool>; PERF_EVENTS.len()],
}

impl Perf {
    /// Whether no event is mentioned (the element is then not written).
    pub fn is_empty(&self) -> bool {
        self.events.iter().all(Option::is_none)
    }

    /// Whether event `index` of [`PERF_EVENTS`] is enabled.
    pub fn enabled(&self, index: usize) -> bool {
        self.events.get(index).copied().flatten().unwrap_or(false)
    }

    pub(super) fn parse(node: Node<'_>) -> Result<Self> {
        let mut perf = Self::default();
        for c in node.children() {
            if c.name() != "event" {
                return Err(c.unsupported());
            }
            let c2 = c;
            c2.leaf(|c| {
                let name = c.req_attr("name")?;
                let index = PERF_EVENTS
                    .iter()
                    .position(|e| *e == name)
                    .ok_or_else(|| c.invalid_attr("name", &name, "unknown perf event"))?;
                let enabled =
                    c.attr_yes_no("enabled")?
                        .ok_or_else(|| super::XmlError::MissingAttribute {
                            attr: "enabled".into(),
                            path: c.path().to_string(),
                        })?;
                if perf.events[index].is_some() {
                    return Err(c.duplicate());
                }
                perf.events[index] = Some(enabled);
                Ok(())
            })?;
        }
        node.finish()?;
        Ok(perf)
    }

    pub(super) fn format(&self, w: &mut Writer) {
        if self.is_empty() {
            return;
        }
        w.elem("perf", &[], |w| {
            for (name, state) in PERF_EVENTS.iter().zip(self.events) {
                if let Some(on) = state {
                    let enabled = if on { "yes" } else { "no" };
                    w.empty("event", &[("name", name), ("enabled", &enabled)]);
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::xml::{DomainDef, FormatOptions};

    const XML: &str = "<domain type='test'><name>p</name><memory>1024</memory>\
        <on_crash>destroy</on_crash><perf><event name='mbmt' enabled='no'/>\
        <event name='cmt' enabled='yes'/></perf><devices/></domain>";

    #[test]
    fn events_round_trip_in_libvirts_order_before_devices() {
        let def = DomainDef::parse(XML).expect("parse");
        assert!(def.perf.enabled(0) && !def.perf.enabled(1));
        assert_eq!(def.perf.events[1], Some(false));
        let xml = def.format(&FormatOptions::default());
        assert!(
            xml.contains(
                "<perf>\n    <event name='cmt' enabled='yes'/>\n    \
                 <event name='mbmt' enabled='no'/>\n  </perf>"
            ),
            "{xml}"
        );
        assert!(xml.find("<on_crash>") < xml.find("<perf>"), "{xml}");
        assert!(xml.find("<perf>") < xml.find("<devices"), "{xml}");
        assert_eq!(DomainDef::parse(&xml).expect("reparse"), def);
    }

    #[test]
    fn unknown_or_repeated_events_are_refused() {
        assert!(DomainDef::parse(&XML.replace("mbmt", "bogus")).is_err());
        assert!(DomainDef::parse(&XML.replace("mbmt", "cmt")).is_err());
        assert!(DomainDef::parse(&XML.replace("enabled='no'", "")).is_err());
    }
}
