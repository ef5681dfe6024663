//! `<iotune>` of a disk: the block I/O throttling `virsh blkdeviotune`
//! reads and changes (libvirt's `virDomainDiskDefIotuneParse` /
//! `virDomainDiskDefFormatIotune`). A limit of 0 is "not set", as in libvirt.

use crate::xml::error::Result;
use crate::xml::read::{once, Node};
use crate::xml::write::Writer;

/// The numeric limits of `<iotune>` in libvirt's order; `group_name` comes
/// between [`IOTUNE_LIMITS`]`[..GROUP_AT]` and the `*_max_length` ones.
/// These are also the `VIR_DOMAIN_BLOCK_IOTUNE_*` typed-parameter names.
pub const IOTUNE_LIMITS: [&str; 19] = [
    "total_bytes_sec",
    "read_bytes_sec",
    "write_bytes_sec",
    "total_iops_sec",
    "read_iops_sec",
    "write_iops_sec",
    "total_bytes_sec_max",
    "read_bytes_sec_max",
    "write_bytes_sec_max",
    "total_iops_sec_max",
    "read_iops_sec_max",
    "write_iops_sec_max",
    "size_iops_sec",
    "total_bytes_sec_max_length",
    "read_bytes_sec_max_length",
    "write_bytes_sec_max_length",
    "total_iops_sec_max_length",
    "read_iops_sec_max_length",
    "write_iops_sec_max_length",
];

/// Where `group_name` sits among [`IOTUNE_LIMITS`].
pub const GROUP_AT: usize = 13;

/// `VIR_DOMAIN_BLOCK_IOTUNE_GROUP_NAME`.
pub const GROUP_NAME: &str = "group_name";

/// A disk's `<iotune>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockIoTune {
    /// Indexed like [`IOTUNE_LIMITS`]; 0 is not set.
    pub limits: [u64; IOTUNE_LIMITS.len()],
    /// `<group_name>`: disks sharing one throttle.
    pub group_name: Option<String>,
}

impl BlockIoTune {
    /// Whether nothing is set (the element is then not written).
    pub fn is_empty(&self) -> bool {
        self.limits.iter().all(|v| *v == 0) && self.group_name.is_none()
    }

    /// The limit named `name` (one of [`IOTUNE_LIMITS`]), 0 when not set.
    pub fn get(&self, name: &str) -> u64 {
        IOTUNE_LIMITS
            .iter()
            .position(|n| *n == name)
            .map_or(0, |i| self.limits[i])
    }

    /// Sets the limit named `name`; false for a name that is not a limit.
    pub fn set(&mut self, name: &str, value: u64) -> bool {
        match IOTUNE_LIMITS.iter().position(|n| *n == name) {
            Some(i) => {
                self.limits[i] = value;
                true
            }
            None => false,
        }
    }

    pub(crate) fn parse(node: Node<'_>) -> Result<Self> {
        let mut t = Self::default();
        let mut seen = [None::<()>; IOTUNE_LIMITS.len()];
        let mut group = None;
        for c in node.children() {
            if c.name() == GROUP_NAME {
                once(&mut group, c, Node::text)?;
                continue;
            }
            let Some(i) = IOTUNE_LIMITS.iter().position(|n| *n == c.name()) else {
                return Err(c.unsupported());
            };
            let mut value = None;
            once(&mut seen[i], c, |c| {
                value = Some(c.text_parse::<u64>()?);
                Ok(())
            })?;
            t.limits[i] = value.unwrap_or(0);
        }
        node.finish()?;
        t.group_name = group;
        Ok(t)
    }

    pub(crate) fn format(&self, w: &mut Writer) {
        if self.is_empty() {
            return;
        }
        w.elem("iotune", &[], |w| {
            for (i, (name, value)) in IOTUNE_LIMITS.iter().zip(self.limits).enumerate() {
                if i == GROUP_AT {
                    w.opt_text(GROUP_NAME, self.group_name.as_deref());
                }
                if value != 0 {
                    w.text(name, &[], &value.to_string());
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::xml::{DomainDef, FormatOptions};

    const XML: &str = "<domain type='test'><name>d</name><memory>1024</memory><devices>\
        <disk type='file' device='disk'><source file='/tmp/a.img'/><target dev='vda'/>\
        <readonly/><iotune><total_bytes_sec_max_length>3</total_bytes_sec_max_length>\
        <group_name>g1</group_name><total_bytes_sec>1000</total_bytes_sec></iotune>\
        </disk></devices></domain>";

    #[test]
    fn limits_round_trip_in_libvirts_order_after_the_target() {
        let def = DomainDef::parse(XML).expect("parse");
        let t = &def.devices.disks[0].iotune;
        assert_eq!(t.get("total_bytes_sec"), 1000);
        assert_eq!(t.get("total_bytes_sec_max_length"), 3);
        assert_eq!(t.group_name.as_deref(), Some("g1"));
        let xml = def.format(&FormatOptions::default());
        assert!(
            xml.contains(
                "<target dev='vda'/>\n      <iotune>\n        \
                 <total_bytes_sec>1000</total_bytes_sec>\n        \
                 <group_name>g1</group_name>\n        \
                 <total_bytes_sec_max_length>3</total_bytes_sec_max_length>\n      \
                 </iotune>\n      <readonly/>"
            ),
            "{xml}"
        );
        assert_eq!(DomainDef::parse(&xml).expect("reparse"), def);
    }

    #[test]
    fn unknown_repeated_or_bad_limits_are_refused() {
        assert!(DomainDef::parse(&XML.replace("total_bytes_sec>", "fast_bytes_sec>")).is_err());
        let twice = XML.replace("</iotune>", "<total_bytes_sec>1</total_bytes_sec></iotune>");
        assert!(DomainDef::parse(&twice).is_err());
        assert!(DomainDef::parse(&XML.replace(">1000<", ">-1<")).is_err());
    }
}
