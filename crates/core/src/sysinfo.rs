//! The host's SMBIOS description as `virConnectGetSysinfo` answers it
//! (`virsh sysinfo`): libvirt's `<sysinfo type='smbios'>` layout, read from
//! what an unprivileged daemon can see without `dmidecode`, the kernel's DMI
//! attributes (`/sys/class/dmi/id`) and `/proc/cpuinfo`.
//!
//! Entries the host does not expose (root-only files such as
//! `product_serial`, the memory devices, which only the raw DMI table
//! holds) are left out, as libvirt leaves out what dmidecode does not print;
//! a section with no entry is left out whole.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::xml::escape;

/// Where the kernel publishes the DMI attributes.
pub const DMI_DIR: &str = "/sys/class/dmi/id";
/// The kernel's description of the host CPUs.
pub const CPUINFO: &str = "/proc/cpuinfo";

/// One `<bios>`, `<system>`, `<processor>`… element: its name and its
/// `(entry name, value)` pairs in libvirt's order.
type Section = (&'static str, Vec<(&'static str, String)>);

/// The DMI sections and, for each libvirt entry, the `/sys/class/dmi/id`
/// attribute holding it (libvirt's order of both).
const DMI_SECTIONS: &[(&str, &[(&str, &str)])] = &[
    (
        "bios",
        &[
            ("vendor", "bios_vendor"),
            ("version", "bios_version"),
            ("date", "bios_date"),
            ("release", "bios_release"),
        ],
    ),
    (
        "system",
        &[
            ("manufacturer", "sys_vendor"),
            ("product", "product_name"),
            ("version", "product_version"),
            ("serial", "product_serial"),
            ("uuid", "product_uuid"),
            ("sku", "product_sku"),
            ("family", "product_family"),
        ],
    ),
    (
        "baseBoard",
        &[
            ("manufacturer", "board_vendor"),
            ("product", "board_name"),
            ("version", "board_version"),
            ("serial", "board_serial"),
            ("asset", "board_asset_tag"),
        ],
    ),
    (
        "chassis",
        &[
            ("manufacturer", "chassis_vendor"),
            ("version", "chassis_version"),
            ("serial", "chassis_serial"),
            ("asset", "chassis_asset_tag"),
        ],
    ),
];

/// The host's `<sysinfo>` XML, or `None` when neither source describes
/// anything (no DMI, no readable CPU description).
pub fn read_host() -> Option<String> {
    read(Path::new(DMI_DIR), Path::new(CPUINFO))
}

/// As [`read_host`], from a DMI attribute directory and a cpuinfo file.
pub fn read(dmi_dir: &Path, cpuinfo: &Path) -> Option<String> {
    let mut sections: Vec<Section> = DMI_SECTIONS
        .iter()
        .map(|(name, entries)| {
            let entries = entries
                .iter()
                .filter_map(|(entry, file)| Some((*entry, dmi_value(&dmi_dir.join(file))?)))
                .collect();
            (*name, entries)
        })
        .collect();
    if let Ok(text) = std::fs::read_to_string(cpuinfo) {
        sections.extend(processors(&text).into_iter().map(|p| ("processor", p)));
    }
    sections.retain(|(_, entries)| !entries.is_empty());
    (!sections.is_empty()).then(|| format(&sections))
}

/// A DMI attribute's value: unreadable (root-only), empty and placeholder
/// values count as absent, as dmidecode prints none for them.
fn dmi_value(path: &Path) -> Option<String> {
    let value = std::fs::read_to_string(path).ok()?;
    let value = value.trim();
    let placeholder = ["", "Not Specified", "Not Present", "To Be Filled By O.E.M."];
    (!placeholder.contains(&value)).then(|| value.to_owned())
}

/// One `<processor>` per CPU package of `/proc/cpuinfo`: the vendor, the
/// model name and dmidecode's signature line (x86 family, model, stepping).
fn processors(cpuinfo: &str) -> Vec<Vec<(&'static str, String)>> {
    let mut packages: BTreeMap<String, Vec<(&'static str, String)>> = BTreeMap::new();
    // Blocks are separated by blank lines, one per logical CPU.
    for block in cpuinfo.split("\n\n") {
        let fields: BTreeMap<&str, &str> = block
            .lines()
            .filter_map(|line| line.split_once(':'))
            .map(|(k, v)| (k.trim(), v.trim()))
            .collect();
        let package = fields.get("physical id").copied().unwrap_or("0");
        if packages.contains_key(package) {
            continue;
        }
        let mut entries = Vec::new();
        if let Some(vendor) = fields.get("vendor_id") {
            entries.push(("manufacturer", (*vendor).to_owned()));
        }
        if let (Some(family), Some(model), Some(stepping)) = (
            fields.get("cpu family"),
            fields.get("model"),
            fields.get("stepping"),
        ) {
            entries.push((
                "signature",
                format!("Type 0, Family {family}, Model {model}, Stepping {stepping}"),
            ));
        }
        if let Some(name) = fields.get("model name") {
            entries.push(("version", (*name).to_owned()));
        }
        if !entries.is_empty() {
            packages.insert(package.to_owned(), entries);
        }
    }
    packages.into_values().collect()
}

/// libvirt's layout: two-space indents, one `<entry>` a line.
fn format(sections: &[Section]) -> String {
    let mut out = String::from("<sysinfo type='smbios'>\n");
    for (name, entries) in sections {
        let _ = writeln!(out, "  <{name}>");
        for (entry, value) in entries {
            let _ = writeln!(out, "    <entry name='{entry}'>{}</entry>", escape(value));
        }
        let _ = writeln!(out, "  </{name}>");
    }
    out.push_str("</sysinfo>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CPUINFO_TWO_PACKAGES: &str = "processor\t: 0\nvendor_id\t: GenuineIntel\n\
        cpu family\t: 6\nmodel\t\t: 85\nmodel name\t: Intel(R) Xeon(R) <Gold>\n\
        stepping\t: 7\nphysical id\t: 0\n\n\
        processor\t: 1\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 85\n\
        model name\t: Intel(R) Xeon(R) <Gold>\nstepping\t: 7\nphysical id\t: 0\n\n\
        processor\t: 2\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 85\n\
        model name\t: Intel(R) Xeon(R) <Gold>\nstepping\t: 7\nphysical id\t: 1\n";

    #[test]
    fn dmi_attributes_and_cpu_packages_in_libvirts_layout() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dmi = dir.path().join("dmi");
        std::fs::create_dir(&dmi).expect("dmi dir");
        for (file, value) in [
            ("bios_vendor", "LENOVO\n"),
            ("bios_version", "G4ETA1WW (2.61 )\n"),
            ("bios_date", "05/07/2014\n"),
            ("sys_vendor", "LENOVO\n"),
            ("product_name", "20AN009HUS\n"),
            ("product_version", "Not Specified\n"),
            ("board_vendor", "A & B\n"),
            ("chassis_vendor", "\n"),
        ] {
            std::fs::write(dmi.join(file), value).expect("write");
        }
        let cpuinfo = dir.path().join("cpuinfo");
        std::fs::write(&cpuinfo, CPUINFO_TWO_PACKAGES).expect("write");
        let xml = read(&dmi, &cpuinfo).expect("sysinfo");
        let processor = "  <processor>\n\
             \x20   <entry name='manufacturer'>GenuineIntel</entry>\n\
             \x20   <entry name='signature'>Type 0, Family 6, Model 85, Stepping 7</entry>\n\
             \x20   <entry name='version'>Intel(R) Xeon(R) &lt;Gold&gt;</entry>\n\
             \x20 </processor>\n";
        let expected = format!(
            "<sysinfo type='smbios'>\n\
             \x20 <bios>\n\
             \x20   <entry name='vendor'>LENOVO</entry>\n\
             \x20   <entry name='version'>G4ETA1WW (2.61 )</entry>\n\
             \x20   <entry name='date'>05/07/2014</entry>\n\
             \x20 </bios>\n\
             \x20 <system>\n\
             \x20   <entry name='manufacturer'>LENOVO</entry>\n\
             \x20   <entry name='product'>20AN009HUS</entry>\n\
             \x20 </system>\n\
             \x20 <baseBoard>\n\
             \x20   <entry name='manufacturer'>A &amp; B</entry>\n\
             \x20 </baseBoard>\n\
             {processor}{processor}</sysinfo>\n"
        );
        assert_eq!(xml, expected);
    }

    #[test]
    fn nothing_readable_is_no_sysinfo() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(
            read(&dir.path().join("absent"), &dir.path().join("absent")),
            None
        );
    }
}
