//! Round trips of the domain XML model over a hand-written rich guest and over
//! the XML real libvirt produced in the shared captures.

use std::path::{Path, PathBuf};

use migrated_core::xml::{DomainDef, DomainType, FormatOptions};

const WORKLOAD_NS: &str = "https://migrated.dev/xmlns/test/1";

fn data(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/xml")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn parse(xml: &str) -> DomainDef {
    DomainDef::parse(xml).unwrap_or_else(|e| panic!("parse failed: {e}\n{xml}"))
}

/// The options under which formatting loses nothing.
const LOSSLESS: FormatOptions = FormatOptions {
    secure: true,
    inactive: false,
    migratable: false,
};

/// Format is idempotent under `opts`, and parse ∘ format is the identity on
/// parsed definitions when nothing is left out.
fn assert_stable(def: &DomainDef, opts: &FormatOptions) {
    let once = def.format(opts);
    let reparsed = parse(&once);
    let twice = reparsed.format(opts);
    assert_eq!(once, twice, "format is not idempotent");
    if *opts == LOSSLESS {
        assert!(&reparsed == def, "parse(format(def)) != def\n{once}");
    }
}

#[test]
fn rich_guest_round_trips_with_every_option_set() {
    let def = parse(&data("rich-kvm.xml"));
    for secure in [false, true] {
        for inactive in [false, true] {
            for migratable in [false, true] {
                assert_stable(
                    &def,
                    &FormatOptions {
                        secure,
                        inactive,
                        migratable,
                    },
                );
            }
        }
    }
}

#[test]
fn desktop_guest_with_spice_efi_and_tpm_round_trips() {
    let def = parse(&data("spice-efi.xml"));
    assert_stable(&def, &LOSSLESS);
    assert_stable(&def, &FormatOptions::default());
    assert_eq!(def.os.firmware.as_deref(), Some("efi"));
    assert_eq!(def.os.firmware_features.len(), 2);
    let d = &def.devices;
    assert_eq!(d.channels.len(), 2);
    assert_eq!(d.tpms.len(), 1);
    assert_eq!(d.tpms[0].version.as_deref(), Some("2.0"));
    assert_eq!(d.redirdevs.len(), 2);
    assert_eq!(d.graphics[0].spice_options.len(), 1);
    let osinfo = def.metadata_element("http://libosinfo.org/xmlns/libvirt/domain/1.0", "libosinfo");
    assert!(osinfo.is_some(), "libosinfo metadata is found by namespace");
}

#[test]
fn rich_guest_fields_are_read() {
    let def = parse(&data("rich-kvm.xml"));
    assert_eq!(def.domain_type, DomainType::Kvm);
    assert_eq!(def.id, Some(7));
    assert_eq!(def.name, "rich-guest");
    assert_eq!(def.uuid.to_string(), "4dea22b3-1d52-d8f3-2516-782e98ab3fa0");
    assert_eq!(
        def.description.as_deref(),
        Some("Guest with <every> device class & more")
    );
    assert_eq!(def.memory_kib, 2 * 1024 * 1024);
    assert_eq!(def.current_memory_kib, 1536 * 1024);
    assert_eq!(
        def.max_memory.map(|m| (m.kib, m.slots)),
        Some((8 * 1024 * 1024, Some(16)))
    );
    assert_eq!(def.vcpus, 4);
    assert_eq!(def.vcpu.current, Some(2));
    assert_eq!(def.os.machine.as_deref(), Some("pc-q35-8.2"));
    assert_eq!(def.os.boot, vec!["hd".to_string(), "cdrom".to_string()]);
    let names: Vec<&str> = def.features.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["acpi", "apic", "pae", "vmport", "smm"]);
    let d = &def.devices;
    assert_eq!(d.disks.len(), 3);
    assert_eq!(
        d.disks[1].source.as_ref().map(|s| s.path.as_str()),
        Some("/dev/vg0/rich-data")
    );
    // PCI addresses are normalised whatever base they were written in.
    assert_eq!(
        d.disks[1]
            .info
            .address
            .as_ref()
            .and_then(|a| a.field("bus")),
        Some("0x05")
    );
    assert_eq!(d.controllers.len(), 5);
    assert_eq!(d.interfaces.len(), 3);
    assert_eq!(d.interfaces[0].mac.as_deref(), Some("52:54:00:6b:3c:58"));
    assert_eq!(d.serials.len(), 2);
    assert_eq!(d.consoles.len(), 1);
    assert_eq!(d.channels.len(), 1);
    let agent = d.channels[0]
        .target
        .as_ref()
        .and_then(|t| t.name.as_deref());
    assert_eq!(agent, Some("org.qemu.guest_agent.0"));
    assert_eq!(d.inputs.len(), 3);
    assert_eq!(d.graphics[0].passwd.as_deref(), Some("s3cr't"));
    assert_eq!(
        d.videos[0].model.as_ref().map(|m| m.kind.as_str()),
        Some("qxl")
    );
    assert_eq!(
        d.memballoon.as_ref().map(|m| m.model.as_str()),
        Some("virtio")
    );
    assert_eq!(d.rngs.len(), 1);
    assert_eq!(d.watchdogs.len(), 1);
    assert_eq!(def.extensions.len(), 1);
    assert!(def.extensions[0].starts_with("<qemu:commandline>"));
}

#[test]
fn metadata_is_kept_verbatim_and_workload_settings_are_readable() {
    let def = parse(&data("rich-kvm.xml"));
    let meta = def.metadata.as_deref().unwrap_or_default();
    assert!(meta.contains("<app:owner>ops</app:owner>"), "{meta}");
    let workload = def
        .metadata_element(WORKLOAD_NS, "workload")
        .expect("workload element");
    assert_eq!(
        workload.get("dirty_pages_per_sec").map(String::as_str),
        Some("2000")
    );
    assert_eq!(workload.get("page_size").map(String::as_str), Some("4096"));
    assert!(!workload.contains_key("xmlns:migrated"));
    assert_eq!(
        def.metadata_element("https://other.example/", "workload"),
        None
    );
    assert_eq!(def.metadata_element(WORKLOAD_NS, "other"), None);
}

#[test]
fn metadata_prefix_declared_on_domain_resolves() {
    let xml = format!(
        "<domain type='test' xmlns:m='{WORKLOAD_NS}'><name>t</name><memory>1024</memory>\
         <metadata><m:workload dirty_pages_per_sec='5'/></metadata></domain>"
    );
    let def = parse(&xml);
    let w = def
        .metadata_element(WORKLOAD_NS, "workload")
        .expect("resolved via <domain>");
    assert_eq!(w.get("dirty_pages_per_sec").map(String::as_str), Some("5"));
    assert_stable(&def, &LOSSLESS);
}

#[test]
fn empty_metadata_stays_empty() {
    let def = parse("<domain type='test'><name>t</name><memory>1024</memory><metadata/></domain>");
    assert_eq!(def.metadata.as_deref(), Some(""));
    let xml = def.format(&LOSSLESS);
    assert!(xml.contains("<metadata/>"), "{xml}");
    assert_stable(&def, &LOSSLESS);
}

#[test]
fn passwd_is_printed_only_with_the_secure_flag() {
    let def = parse(&data("rich-kvm.xml"));
    let plain = def.format(&FormatOptions::default());
    assert!(!plain.contains("passwd"), "{plain}");
    let secure = def.format(&FormatOptions {
        secure: true,
        ..FormatOptions::default()
    });
    assert!(secure.contains("passwd='s3cr&apos;t'"), "{secure}");
}

#[test]
fn inactive_format_drops_runtime_state_only() {
    let def = parse(&data("rich-kvm.xml"));
    let xml = def.format(&FormatOptions {
        inactive: true,
        ..FormatOptions::default()
    });
    assert!(!xml.contains(" id='7'"), "{xml}");
    assert!(!xml.contains("<alias"), "{xml}");
    assert!(!xml.contains("/dev/pts/4"), "{xml}");
    assert!(!xml.contains("portid"), "{xml}");
    assert!(!xml.contains("state='connected'"), "{xml}");
    assert!(!xml.contains("+107:+107"), "{xml}");
    assert!(xml.contains("/var/lib/libvirt/images/rich.qcow2"), "{xml}");
    let migratable = def.format(&FormatOptions {
        migratable: true,
        ..FormatOptions::default()
    });
    assert!(!migratable.contains(" id='7'"), "{migratable}");
    assert!(
        migratable.contains("<alias name='virtio-disk0'/>"),
        "{migratable}"
    );
}

#[test]
fn absent_uuid_is_generated_and_then_kept() {
    let def = parse("<domain type='test'><name>n</name><memory unit='MiB'>4</memory></domain>");
    assert_eq!(def.uuid.get_version_num(), 4);
    assert_eq!(def.current_memory_kib, 4096);
    assert_eq!(def.vcpus, 1);
    assert_stable(&def, &LOSSLESS);
}

/// The `<domain …>…</domain>` documents inside captured libvirt messages.
fn captured_domains() -> Option<Vec<(PathBuf, String)>> {
    let root = Path::new("/work/shared/captures");
    let mut found = Vec::new();
    for scenario in ["dominfo-dumpxml", "define-start-destroy-undefine"] {
        let dir = root.join(scenario);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            eprintln!("SKIPPED: capture directory {} is missing", dir.display());
            return None;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("bin") {
                continue;
            }
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            let Some(start) = find(&bytes, b"<domain") else {
                continue;
            };
            let Some(end) = find(&bytes[start..], b"</domain>") else {
                continue;
            };
            let xml = &bytes[start..start + end + "</domain>".len()];
            found.push((path, String::from_utf8_lossy(xml).into_owned()));
        }
    }
    Some(found)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn xml_produced_by_libvirt_round_trips() {
    let Some(docs) = captured_domains() else {
        return;
    };
    assert!(
        docs.len() >= 2,
        "expected domain XML in the captures, found {}",
        docs.len()
    );
    for (path, xml) in &docs {
        let def =
            DomainDef::parse(xml).unwrap_or_else(|e| panic!("{}: {e}\n{xml}", path.display()));
        assert_stable(&def, &LOSSLESS);
        assert_stable(
            &def,
            &FormatOptions {
                inactive: true,
                ..FormatOptions::default()
            },
        );
        // Every device libvirt listed is still there after a round trip.
        let again = parse(&def.format(&FormatOptions::default()));
        assert_eq!(again.devices, def.devices, "{}", path.display());
    }
}

#[test]
fn byte_order_mark_keeps_metadata_intact() {
    // The domain_xml fuzz target's first crash: with a leading BOM the
    // verbatim <metadata> content was cut three bytes early.
    let xml = format!(
        "\u{feff}<domain type='test'><name>busy</name><memory unit='MiB'>16</memory>\
         <metadata><migrated:workload xmlns:migrated='{WORKLOAD_NS}' working_set_mib='8'/></metadata>\
         </domain>"
    );
    let def = parse(&xml);
    assert_eq!(
        def.metadata.as_deref(),
        Some(
            format!("<migrated:workload xmlns:migrated='{WORKLOAD_NS}' working_set_mib='8'/>")
                .as_str()
        )
    );
    assert_stable(&def, &LOSSLESS);
}
