//! The capabilities XML of CONNECT_GET_CAPABILITIES (`virsh capabilities`,
//! `migratectl capabilities`), assembled in one place.
//!
//! The `<host>` element is the daemon's: its UUID is the configured host
//! UUID (the one migration cookies carry), and `<migration_features>` is
//! derived from the opened driver's [`SupportTable`], so it can never claim
//! a flag the driver's migration checks would refuse. The `<guest>` elements
//! are the driver's, copied from its own capabilities document, because only
//! the driver knows its domain types and emulator.
//!
//! libvirt's `<migration_features>` (`virCapabilitiesFormatHostXML`) holds
//! only `<live/>` and `<uri_transports>`; its schema has no element for
//! offline, peer-to-peer or tunnelled migration. Those go into an element of
//! our own namespace ([`EXTRAS_NAMESPACE`]) at the end of
//! `<migration_features>`: virsh prints the document verbatim and
//! namespace-aware parsers (python's `xml.etree`, libxml2) see a foreign
//! element they can skip.
//!
//! `<topology>` describes the host's NUMA cells as the driver's node info
//! and memory give them (`virsh freecell --all` reads the cell ids here).

use std::fmt::Write as _;

use migrated_core::driver::{NodeInfo, NodeMemory};
use migrated_core::flags::MigrateFlags;
use migrated_core::support::SupportTable;
use migrated_core::{Error, Result};
use quick_xml::events::Event;
use quick_xml::Reader;
use uuid::Uuid;

/// Namespace of the migration extras the libvirt schema has no element for.
pub const EXTRAS_NAMESPACE: &str = "urn:migrated:capabilities:1";

/// Data-plane URI schemes a migration URI may use. It mirrors
/// `migrated_core::migration::uri::DataUri`, which accepts `tcp` only.
pub const URI_TRANSPORTS: &[&str] = &["tcp"];

/// The host's NUMA cells for `<topology>`: each cell's memory and CPU ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// Per cell: memory in KiB and the host CPUs in it.
    pub cells: Vec<(u64, Vec<u32>)>,
}

impl Topology {
    /// The cells `node` declares, the CPUs dealt out evenly in order, with
    /// each cell's memory from `memory` (or an even share of the total).
    pub fn from_host(node: &NodeInfo, memory: Option<&NodeMemory>) -> Self {
        let count = u32::try_from(node.nodes).unwrap_or(1).max(1);
        let cpus = u32::try_from(node.cpus).unwrap_or(1).max(1);
        let per_cell = cpus.div_ceil(count);
        let cells = (0..count)
            .map(|cell| {
                let memory_kib = memory
                    .and_then(|m| m.cells.get(cell as usize))
                    .map_or(node.memory_kib / u64::from(count), |c| c.total_kib);
                let first = cell * per_cell;
                (memory_kib, (first..(first + per_cell).min(cpus)).collect())
            })
            .collect();
        Self { cells }
    }

    fn render(&self, out: &mut String) {
        out.push_str("    <topology>\n");
        let _ = writeln!(out, "      <cells num='{}'>", self.cells.len());
        for (id, (memory_kib, cpus)) in self.cells.iter().enumerate() {
            let _ = writeln!(out, "        <cell id='{id}'>");
            let _ = writeln!(out, "          <memory unit='KiB'>{memory_kib}</memory>");
            let _ = writeln!(out, "          <cpus num='{}'>", cpus.len());
            for (core, cpu) in cpus.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "            <cpu id='{cpu}' socket_id='{id}' die_id='0' core_id='{core}' siblings='{cpu}'/>"
                );
            }
            out.push_str("          </cpus>\n        </cell>\n");
        }
        out.push_str("      </cells>\n    </topology>\n");
    }
}

/// The capabilities XML for a connection to a driver with `support`,
/// whose own capabilities document is `driver_xml`, on a host of
/// `topology`.
///
/// # Errors
/// [`Error::Internal`] when the driver's document is not well-formed XML.
pub fn render(
    host_uuid: Uuid,
    support: &SupportTable,
    driver_xml: &str,
    topology: Option<&Topology>,
) -> Result<String> {
    let guests = guest_elements(driver_xml)?;
    let mut out = String::with_capacity(1024 + driver_xml.len());
    out.push_str("<capabilities>\n\n  <host>\n");
    // Infallible: writing to a String cannot fail.
    let _ = writeln!(out, "    <uuid>{host_uuid}</uuid>");
    out.push_str("    <cpu>\n");
    let _ = writeln!(out, "      <arch>{}</arch>", host_arch());
    out.push_str("    </cpu>\n");
    out.push_str(&migration_features(support));
    if let Some(topology) = topology {
        topology.render(&mut out);
    }
    out.push_str("  </host>\n\n");
    for guest in guests {
        out.push_str("  ");
        out.push_str(&guest);
        out.push_str("\n\n");
    }
    out.push_str("</capabilities>\n");
    Ok(out)
}

/// libvirt's architecture name for the machine the daemon runs on.
fn host_arch() -> &'static str {
    // Rust's names equal libvirt's for the architectures that matter here
    // (x86_64, aarch64, s390x, riscv64); ppc64le is spelled differently.
    match std::env::consts::ARCH {
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64" => "ppc64",
        other => other,
    }
}

/// `<migration_features>`, or nothing when the driver cannot migrate at all
/// (libvirt leaves the element out in that case too).
fn migration_features(support: &SupportTable) -> String {
    let flags = support.migration_flags();
    if flags.bits() == 0 {
        return String::new();
    }
    let mut out = String::from("    <migration_features>\n");
    if flags.contains(MigrateFlags::LIVE) {
        out.push_str("      <live/>\n");
    }
    out.push_str("      <uri_transports>\n");
    for transport in URI_TRANSPORTS {
        let _ = writeln!(out, "        <uri_transport>{transport}</uri_transport>");
    }
    out.push_str("      </uri_transports>\n");
    let _ = writeln!(
        out,
        "      <migrated:extras xmlns:migrated='{EXTRAS_NAMESPACE}'>"
    );
    for name in flags.names() {
        let _ = writeln!(out, "        <migrated:{}/>", name.to_ascii_lowercase());
    }
    if !support.migration_params.is_empty() {
        out.push_str("        <migrated:params>\n");
        for param in support.migration_params {
            let _ = writeln!(
                out,
                "          <migrated:param name='{}'/>",
                escape_attr(param)
            );
        }
        out.push_str("        </migrated:params>\n");
    }
    out.push_str("      </migrated:extras>\n");
    out.push_str("    </migration_features>\n");
    out
}

fn escape_attr(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('\'', "&apos;")
        .replace('"', "&quot;")
}

/// The top-level `<guest>` elements of a capabilities document, verbatim.
fn guest_elements(driver_xml: &str) -> Result<Vec<String>> {
    let bad = |what: String| Error::internal(format!("driver capabilities XML: {what}"));
    let mut reader = Reader::from_str(driver_xml);
    let mut depth = 0usize;
    let mut guests = Vec::new();
    loop {
        let before = reader.buffer_position();
        match reader.read_event().map_err(|e| bad(e.to_string()))? {
            Event::Start(start) if depth == 1 && start.name().as_ref() == b"guest" => {
                reader
                    .read_to_end(start.name())
                    .map_err(|e| bad(e.to_string()))?;
                let end = reader.buffer_position();
                let slice = usize::try_from(before)
                    .ok()
                    .zip(usize::try_from(end).ok())
                    .and_then(|(b, e)| driver_xml.get(b..e))
                    .ok_or_else(|| bad("guest element out of range".into()))?;
                guests.push(slice.trim().to_owned());
            }
            Event::Start(_) => depth += 1,
            Event::End(_) => depth = depth.saturating_sub(1),
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(guests)
}

#[cfg(test)]
mod tests {
    use migrated_core::support::MigrationDefaults;

    use super::*;

    const DRIVER_XML: &str = "<capabilities>\n  <host>\n    <uuid>00000000-0000-0000-0000-000000000000</uuid>\n  </host>\n  \
        <guest>\n    <os_type>hvm</os_type>\n    <arch name='x86_64'>\n      <wordsize>64</wordsize>\n      \
        <domain type='test'/>\n    </arch>\n  </guest>\n</capabilities>\n";

    fn table(flags: MigrateFlags) -> SupportTable {
        SupportTable {
            driver: "Fake",
            error_domain: migrated_core::error::ErrorDomain::Domain,
            procedures: &[],
            migration_flags: flags.bits(),
            migration_params: &["migrate_uri"],
            defaults: MigrationDefaults { flags: 0 },
            qemu_procedures: &[],
            device_stats: false,
        }
    }

    #[test]
    fn host_uuid_is_the_daemons_and_guests_are_the_drivers() {
        let uuid = Uuid::from_u128(0x2f0d_5a1e_6c1b_4a8e_9d1f_0b1c_2d3e_4f50);
        let xml = render(uuid, &table(MigrateFlags::LIVE), DRIVER_XML, None).expect("render");
        assert!(xml.contains(&format!("<uuid>{uuid}</uuid>")));
        assert!(!xml.contains("00000000-0000-0000-0000-000000000000"));
        assert_eq!(xml.matches("<guest>").count(), 1);
        assert!(xml.contains("<domain type='test'/>"));
    }

    #[test]
    fn migration_features_follow_the_support_table() {
        let flags = MigrateFlags::LIVE
            .union(MigrateFlags::PEER2PEER)
            .union(MigrateFlags::TUNNELLED)
            .union(MigrateFlags::OFFLINE);
        let xml = render(Uuid::nil(), &table(flags), DRIVER_XML, None).expect("render");
        assert!(xml.contains("<live/>"));
        assert!(xml.contains("<uri_transport>tcp</uri_transport>"));
        for extra in ["peer2peer", "tunnelled", "offline"] {
            assert!(xml.contains(&format!("<migrated:{extra}/>")), "{extra}");
        }
        assert!(xml.contains("<migrated:param name='migrate_uri'/>"));

        let offline_only =
            render(Uuid::nil(), &table(MigrateFlags::OFFLINE), DRIVER_XML, None).expect("render");
        assert!(!offline_only.contains("<live/>"));
        assert!(!offline_only.contains("tunnelled"));

        let none =
            render(Uuid::nil(), &table(MigrateFlags::empty()), DRIVER_XML, None).expect("render");
        assert!(!none.contains("migration_features"));
    }

    #[test]
    fn topology_deals_the_cpus_to_the_cells_with_their_memory() {
        let node = NodeInfo {
            model: "x86_64".into(),
            memory_kib: 4096,
            cpus: 3,
            mhz: 1,
            nodes: 2,
            sockets: 1,
            cores: 3,
            threads: 1,
        };
        let topology = Topology::from_host(&node, None);
        assert_eq!(topology.cells, vec![(2048, vec![0, 1]), (2048, vec![2])]);
        let xml = render(
            Uuid::nil(),
            &table(MigrateFlags::LIVE),
            DRIVER_XML,
            Some(&topology),
        )
        .expect("render");
        assert!(xml.contains("<cells num='2'>"), "{xml}");
        assert!(xml.contains("<cell id='1'>"), "{xml}");
        assert!(
            xml.contains("<cpu id='2' socket_id='1' die_id='0' core_id='0' siblings='2'/>"),
            "{xml}"
        );
        assert!(xml.find("</migration_features>") < xml.find("<topology>"));
    }

    #[test]
    fn several_guests_are_kept_in_order_and_nested_tags_ignored() {
        let driver = "<capabilities><guest><os_type>hvm</os_type><arch name='i686'/></guest>\
                      <guest><os_type>hvm</os_type><arch name='x86_64'><guest/></arch></guest></capabilities>";
        let xml = render(Uuid::nil(), &table(MigrateFlags::LIVE), driver, None).expect("render");
        let first = xml.find("i686").expect("first guest");
        let second = xml.find("'x86_64'").expect("second guest");
        assert!(first < second);
        assert_eq!(xml.matches("<os_type>").count(), 2);
    }

    #[test]
    fn malformed_driver_xml_is_an_internal_error() {
        let err = render(
            Uuid::nil(),
            &table(MigrateFlags::LIVE),
            "<capabilities><guest>",
            None,
        )
        .expect_err("unclosed guest");
        assert_eq!(err.code(), migrated_core::error::ErrorCode::InternalError);
    }
}
