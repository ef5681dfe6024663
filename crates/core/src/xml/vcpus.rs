//! `<vcpus>`: the state of each vCPU slot (libvirt's
//! `virDomainVcpuParse` / `virDomainCpuDefFormat` of `<vcpus>`):
//!
//! ```xml
//! <vcpu placement='static' current='2'>3</vcpu>
//! <vcpus>
//!   <vcpu id='0' enabled='yes' hotpluggable='no' order='1'/>
//!   <vcpu id='1' enabled='yes' hotpluggable='yes' order='2'/>
//!   <vcpu id='2' enabled='no' hotpluggable='yes'/>
//! </vcpus>
//! ```
//!
//! It tells a started guest's vCPUs online from boot (`hotpluggable='no'`)
//! from the ones plugged later, which the next QEMU of a migration, a
//! restore or a reattach must plug again rather than boot with: QEMU's
//! migration stream carries a plugged vCPU as a device of its own.

use super::error::{Result, XmlError};
use super::read::Node;
use super::write::Writer;

/// One `<vcpus><vcpu>` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VcpuSlot {
    /// `id`: the slot, 0 to the `<vcpu>` count - 1.
    pub id: u32,
    /// `enabled`: online.
    pub enabled: bool,
    /// `hotpluggable`: plugged (or pluggable) after boot; `None` when the
    /// document does not say.
    pub hotpluggable: Option<bool>,
    /// `order`: the order the vCPUs came online in.
    pub order: Option<u32>,
}

impl VcpuSlot {
    /// Whether the slot is online from the guest's boot on.
    pub fn online_at_boot(&self) -> bool {
        self.enabled && self.hotpluggable != Some(true)
    }
}

pub(super) fn parse(node: Node<'_>) -> Result<Vec<VcpuSlot>> {
    let mut slots = Vec::new();
    for c in node.children() {
        if c.name() != "vcpu" {
            return Err(c.unsupported());
        }
        slots.push(c.leaf(|c| {
            let id = c.req_attr_parse("id")?;
            let enabled = c
                .attr_yes_no("enabled")?
                .ok_or_else(|| XmlError::MissingAttribute {
                    attr: "enabled".into(),
                    path: c.path().into(),
                })?;
            Ok(VcpuSlot {
                id,
                enabled,
                hotpluggable: c.attr_yes_no("hotpluggable")?,
                order: c.attr_parse("order")?,
            })
        })?);
    }
    node.finish()?;
    Ok(slots)
}

/// libvirt's consistency rules: one entry per slot, the enabled ones as
/// many as the vCPUs online, and at least one of them online from boot.
pub(super) fn check(slots: &[VcpuSlot], vcpus: u32, current: u32) -> Result<()> {
    if slots.is_empty() {
        return Ok(());
    }
    let invalid = |reason: String| XmlError::InvalidValue {
        what: "<vcpus>".into(),
        value: format!("{} entries", slots.len()),
        reason,
    };
    if u32::try_from(slots.len()).ok() != Some(vcpus) {
        return Err(invalid(format!("the vCPU count is {vcpus}")));
    }
    // With as many entries as slots, an id in range is an index in range.
    let mut seen = vec![false; slots.len()];
    for s in slots {
        let Some(slot) = usize::try_from(s.id).ok().and_then(|i| seen.get_mut(i)) else {
            return Err(invalid(format!("vcpu id {} is not below {vcpus}", s.id)));
        };
        if std::mem::replace(slot, true) {
            return Err(invalid(format!("vcpu id {} appears twice", s.id)));
        }
    }
    let enabled = slots.iter().filter(|s| s.enabled).count();
    if u32::try_from(enabled).ok() != Some(current) {
        return Err(invalid(format!(
            "{enabled} enabled, but {current} vCPUs are online"
        )));
    }
    if !slots.iter().any(VcpuSlot::online_at_boot) {
        return Err(invalid("no vCPU is online from boot".into()));
    }
    Ok(())
}

pub(super) fn format(w: &mut Writer, slots: &[VcpuSlot]) {
    if slots.is_empty() {
        return;
    }
    w.elem("vcpus", &[], |w| {
        for s in slots {
            w.empty(
                "vcpu",
                &[
                    ("id", &s.id),
                    ("enabled", &yes_no(s.enabled)),
                    ("hotpluggable", &s.hotpluggable.map(yes_no)),
                    ("order", &s.order),
                ],
            );
        }
    });
}

fn yes_no(on: bool) -> &'static str {
    if on {
        "yes"
    } else {
        "no"
    }
}

/// The slots after a live change to `online` vCPUs of a guest that booted
/// with `boot`: vCPUs come and go at the top, as the QEMU driver plugs
/// the lowest empty slots and unplugs the highest plugged one.
pub(super) fn after_hotplug(vcpus: u32, boot: u32, online: u32) -> Vec<VcpuSlot> {
    (0..vcpus)
        .map(|id| VcpuSlot {
            id,
            enabled: id < online,
            hotpluggable: Some(id >= boot),
            order: (id < online).then_some(id + 1),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::xml::{DomainDef, FormatOptions};

    fn domain(vcpu: &str) -> String {
        format!(
            "<domain type='qemu'><name>v</name><memory>65536</memory>{vcpu}\
             <os><type>hvm</type></os></domain>"
        )
    }

    #[test]
    fn a_live_hotplug_is_recorded_and_survives_a_round_trip() {
        let mut def =
            DomainDef::parse(&domain("<vcpu current='1'>3</vcpu>")).expect("valid domain");
        assert_eq!(def.boot_vcpus(), 1);
        def.record_vcpu_hotplug(2);
        assert_eq!((def.boot_vcpus(), def.current_vcpus()), (1, 2));
        let xml = def.format(&FormatOptions::default());
        assert!(
            xml.contains(
                "<vcpus>\n    <vcpu id='0' enabled='yes' hotpluggable='no' order='1'/>\n    \
                 <vcpu id='1' enabled='yes' hotpluggable='yes' order='2'/>\n    \
                 <vcpu id='2' enabled='no' hotpluggable='yes'/>\n  </vcpus>"
            ),
            "{xml}"
        );
        let again = DomainDef::parse(&xml).expect("our own XML parses");
        assert_eq!(again, def);
        // Unplugging back to the boot count keeps the boot vCPUs as such.
        def.record_vcpu_hotplug(1);
        assert_eq!((def.boot_vcpus(), def.current_vcpus()), (1, 1));
    }

    #[test]
    fn without_vcpus_every_online_vcpu_is_a_boot_vcpu() {
        let def = DomainDef::parse(&domain("<vcpu current='2'>4</vcpu>")).expect("valid domain");
        assert!(def.vcpu_slots.is_empty());
        assert_eq!(def.boot_vcpus(), 2);
        assert!(!def.format(&FormatOptions::default()).contains("<vcpus>"));
    }

    #[test]
    fn a_new_maximum_drops_the_slots() {
        let mut def =
            DomainDef::parse(&domain("<vcpu current='1'>2</vcpu>")).expect("valid domain");
        def.record_vcpu_hotplug(2);
        def.set_max_vcpus(4);
        assert!(def.vcpu_slots.is_empty());
        assert_eq!(def.current_vcpus(), 2);
    }

    #[test]
    fn inconsistent_slots_are_refused() {
        let slot = |id: u32, enabled: &str, hp: &str| {
            format!("<vcpu id='{id}' enabled='{enabled}' hotpluggable='{hp}'/>")
        };
        for (vcpu, slots, why) in [
            (
                "<vcpu>2</vcpu>",
                slot(0, "yes", "no"),
                "the vCPU count is 2",
            ),
            (
                "<vcpu>2</vcpu>",
                slot(0, "yes", "no") + &slot(0, "yes", "yes"),
                "appears twice",
            ),
            (
                "<vcpu>2</vcpu>",
                slot(0, "yes", "no") + &slot(5, "yes", "yes"),
                "not below 2",
            ),
            (
                "<vcpu current='1'>2</vcpu>",
                slot(0, "yes", "no") + &slot(1, "yes", "yes"),
                "2 enabled, but 1",
            ),
            (
                "<vcpu>1</vcpu>",
                slot(0, "yes", "yes"),
                "no vCPU is online from boot",
            ),
        ] {
            let err = DomainDef::parse(&domain(&format!("{vcpu}<vcpus>{slots}</vcpus>")))
                .expect_err("inconsistent <vcpus>")
                .to_string();
            assert!(err.contains(why), "{why}: {err}");
        }
    }
}
