//! Property: for any definition the model can hold, parsing the formatted XML
//! gives the same definition back, and formatting is idempotent.

use migrated_core::xml::{
    Address, Bandwidth, BandwidthRate, BlockIoTune, DeviceInfo, Disk, DiskDevice, DiskSource,
    DiskTarget, DiskType, DomainDef, DomainType, Feature, FormatOptions, Graphics, GraphicsType,
    Interface, InterfaceSource, InterfaceType, Memballoon,
};
use proptest::prelude::*;

const LOSSLESS: FormatOptions = FormatOptions {
    secure: true,
    inactive: false,
    migratable: false,
};

/// Text as the parser hands it back: trimmed, non-empty, one line, with the
/// characters that need escaping well represented.
fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9<>&'\"/ ._-]{1,24}".prop_filter_map("blank", |s| {
        let t = s.trim().to_string();
        (!t.is_empty()).then_some(t)
    })
}

fn word() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_-]{0,11}"
}

fn pci_address() -> impl Strategy<Value = Address> {
    (0u32..4, 0u32..256, 0u32..32, 0u32..8).prop_map(|(domain, bus, slot, function)| Address {
        kind: "pci".into(),
        fields: vec![
            ("domain".into(), format!("0x{domain:04x}")),
            ("bus".into(), format!("0x{bus:02x}")),
            ("slot".into(), format!("0x{slot:02x}")),
            ("function".into(), format!("0x{function:x}")),
        ],
    })
}

fn info() -> impl Strategy<Value = DeviceInfo> {
    (
        proptest::option::of(word()),
        proptest::option::of(pci_address()),
    )
        .prop_map(|(alias, address)| DeviceInfo { alias, address })
}

fn disk() -> impl Strategy<Value = Disk> {
    (
        prop_oneof![Just(DiskType::File), Just(DiskType::Block)],
        prop_oneof![
            Just(DiskDevice::Disk),
            Just(DiskDevice::Cdrom),
            Just(DiskDevice::Floppy)
        ],
        proptest::option::of(text()),
        "[vsh]d[a-z]",
        proptest::option::of(prop_oneof![Just("virtio"), Just("sata"), Just("scsi")]),
        any::<(bool, bool)>(),
        proptest::option::of(text()),
        proptest::option::of(1u32..10),
        info(),
        proptest::option::of((1u64..1_000_000, proptest::option::of(word()))),
    )
        .prop_map(
            |(kind, device, path, dev, bus, (readonly, shareable), serial, boot, info, io)| Disk {
                kind,
                device,
                driver: None,
                source: path.map(|path| DiskSource {
                    path,
                    index: None,
                    startup_policy: None,
                }),
                backing_store: false,
                backing: Vec::new(),
                target: DiskTarget {
                    dev,
                    bus: bus.map(str::to_string),
                    tray: None,
                    removable: None,
                },
                iotune: io.map_or_else(BlockIoTune::default, |(bytes, group)| {
                    let mut t = BlockIoTune::default();
                    t.set("total_bytes_sec", bytes);
                    t.group_name = group;
                    t
                }),
                readonly,
                shareable,
                serial,
                boot_order: boot,
                info,
            },
        )
}

fn interface() -> impl Strategy<Value = Interface> {
    (
        prop_oneof![
            Just(InterfaceType::User),
            Just(InterfaceType::Network),
            Just(InterfaceType::Bridge)
        ],
        proptest::option::of(any::<[u8; 3]>()),
        proptest::option::of(word()),
        proptest::option::of(prop_oneof![Just("virtio"), Just("e1000"), Just("rtl8139")]),
        info(),
        proptest::option::of((1u64..100_000, 0u64..100_000)),
    )
        .prop_map(|(kind, mac, source, model, info, shaping)| Interface {
            kind,
            mac: mac.map(|m| format!("52:54:00:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2])),
            source: source.map(|name| match kind {
                InterfaceType::Bridge => InterfaceSource {
                    bridge: Some(name),
                    ..InterfaceSource::default()
                },
                _ => InterfaceSource {
                    network: Some(name),
                    ..InterfaceSource::default()
                },
            }),
            bandwidth: Bandwidth {
                inbound: shaping.map(|(average, peak)| BandwidthRate {
                    average,
                    peak,
                    ..BandwidthRate::default()
                }),
                outbound: None,
            },
            target_dev: None,
            model: model.map(str::to_string),
            driver: Vec::new(),
            link_state: None,
            mtu: None,
            boot_order: None,
            info,
        })
}

fn graphics() -> impl Strategy<Value = Graphics> {
    (
        prop_oneof![Just(GraphicsType::Vnc), Just(GraphicsType::Spice)],
        proptest::option::of(-1i32..65536),
        proptest::option::of(any::<bool>()),
        proptest::option::of(text()),
    )
        .prop_map(|(kind, port, autoport, passwd)| Graphics {
            kind,
            port,
            tls_port: None,
            autoport,
            websocket: None,
            listen: Some("127.0.0.1".into()),
            passwd,
            passwd_valid_to: None,
            keymap: None,
            share_policy: None,
            listens: Vec::new(),
            spice_options: Vec::new(),
        })
}

prop_compose! {
    fn domain()(
        domain_type in prop_oneof![Just(DomainType::Kvm), Just(DomainType::Qemu), Just(DomainType::Test)],
        name in "[a-zA-Z0-9][a-zA-Z0-9 ._&<>-]{0,30}",
        uuid in any::<u128>(),
        title in proptest::option::of(text()),
        description in proptest::option::of(text()),
        memory_kib in 1u64..(1 << 40),
        current_fraction in 1u64..=100,
        vcpus in 1u32..=256,
        machine in proptest::option::of(word()),
        boot in proptest::collection::vec(prop_oneof![Just("hd"), Just("cdrom"), Just("network")], 0..3),
        features in proptest::sample::subsequence(vec!["acpi", "apic", "pae", "hap", "vmport"], 0..5),
        on_crash in proptest::option::of(prop_oneof![Just("destroy"), Just("restart"), Just("preserve")]),
        disks in proptest::collection::vec(disk(), 0..4),
        interfaces in proptest::collection::vec(interface(), 0..3),
        graphics in proptest::collection::vec(graphics(), 0..2),
        balloon in proptest::option::of(prop_oneof![Just("virtio"), Just("none")]),
    ) -> DomainDef {
        let mut def = DomainDef::parse("<domain type='kvm'><name>seed</name><memory>1</memory></domain>")
            .expect("seed definition parses");
        def.domain_type = domain_type;
        def.name = name.trim().to_string();
        def.uuid = uuid::Uuid::from_u128(uuid);
        def.title = title;
        def.description = description;
        def.memory_kib = memory_kib;
        def.current_memory_kib = (memory_kib * current_fraction / 100).max(1);
        def.vcpus = vcpus;
        def.os.machine = machine;
        def.os.boot = boot.into_iter().map(str::to_string).collect();
        def.features = features
            .into_iter()
            .map(|name| Feature { name: name.to_string(), attrs: Vec::new() })
            .collect();
        def.on_crash = on_crash.map(str::to_string);
        def.devices.disks = disks;
        def.devices.interfaces = interfaces;
        def.devices.graphics = graphics;
        def.devices.memballoon = balloon.map(|model| Memballoon {
            model: model.to_string(),
            autodeflate: None,
            free_page_reporting: None,
            stats_period: None,
            info: DeviceInfo::default(),
        });
        def
    }
}

proptest! {
    #[test]
    fn formatted_definitions_parse_back_unchanged(def in domain()) {
        let xml = def.format(&LOSSLESS);
        let back = DomainDef::parse(&xml);
        prop_assert!(back.is_ok(), "{:?}\n{}", back.err(), xml);
        let back = back.expect("checked above");
        prop_assert_eq!(&back, &def, "{}", xml);
        prop_assert_eq!(back.format(&LOSSLESS), xml);
    }

    #[test]
    fn passwords_never_leak_without_the_secure_flag(def in domain()) {
        let xml = def.format(&FormatOptions::default());
        prop_assert!(!xml.contains("passwd="), "{}", xml);
    }
}

const RICH: &str = include_str!("data/xml/rich-kvm.xml");

/// Cuts `cut` bytes at `at` (clamped to char boundaries) and inserts `insert`.
fn mutate(base: &str, at: usize, cut: usize, insert: &str) -> String {
    let mut start = at.min(base.len());
    while !base.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = (start + cut).min(base.len());
    while !base.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{insert}{}", &base[..start], &base[end..])
}

proptest! {
    /// Whatever a user sends, parsing answers with a value or an error, never a
    /// panic; and anything accepted is formatted stably.
    #[test]
    fn mutated_xml_never_panics_and_what_parses_round_trips(
        at in 0usize..RICH.len(),
        cut in 0usize..24,
        insert in "[<>/&;'\"a-z0-9 =!?:#x\\[\\]-]{0,10}",
    ) {
        let xml = mutate(RICH, at, cut, &insert);
        if let Ok(def) = DomainDef::parse(&xml) {
            let out = def.format(&LOSSLESS);
            let back = DomainDef::parse(&out);
            prop_assert!(back.is_ok(), "{:?}\n{}", back.err(), out);
            prop_assert_eq!(back.expect("checked above"), def, "{}", out);
        }
    }

    #[test]
    fn arbitrary_text_never_panics(input in "\\PC{0,200}") {
        let _ = DomainDef::parse(&input);
    }
}
