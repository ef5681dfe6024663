//! Every kind of bad domain XML is refused with an error that names the problem.

use migrated_core::xml::{DomainDef, XmlError, MAX_XML_BYTES, MAX_XML_DEPTH};

const MINIMAL_HEAD: &str = "<domain type='kvm'><name>g</name><memory unit='MiB'>64</memory>";

fn refuse(xml: &str) -> XmlError {
    match DomainDef::parse(xml) {
        Ok(def) => panic!("accepted bad XML as {def:?}\n{xml}"),
        Err(e) => e,
    }
}

fn refuse_with(xml: &str, needle: &str) -> XmlError {
    let err = refuse(xml);
    let msg = err.to_string();
    assert!(
        msg.contains(needle),
        "error {msg:?} does not mention {needle:?}"
    );
    err
}

fn with_devices(devices: &str) -> String {
    format!("{MINIMAL_HEAD}<devices>{devices}</devices></domain>")
}

#[test]
fn minimal_head_itself_is_accepted() {
    assert!(DomainDef::parse(&format!("{MINIMAL_HEAD}</domain>")).is_ok());
}

#[test]
fn malformed_xml_reports_its_position() {
    let err = refuse_with(
        "<domain type='kvm'>\n  <name>g</nam>\n</domain>",
        "malformed XML at line 2",
    );
    assert!(matches!(err, XmlError::Malformed { .. }));
    refuse_with("<domain type='kvm'><name>g</name>", "malformed XML");
    refuse_with("<domain type='kvm' <name/>", "malformed XML");
    refuse_with("", "expected a <domain> root element");
}

#[test]
fn unknown_elements_are_named_with_their_path() {
    refuse_with(
        &format!("{MINIMAL_HEAD}<bogus/></domain>"),
        "unsupported element <bogus>",
    );
    refuse_with(&with_devices("<foo/>"), "unsupported element <devices/foo>");
    refuse_with(
        &with_devices("<disk type='file'><target dev='vda'/><iotune><fast_bytes_sec>1</fast_bytes_sec></iotune></disk>"),
        "unsupported element <devices/disk/iotune/fast_bytes_sec>",
    );
    refuse_with(
        &format!(
            "{MINIMAL_HEAD}<features><hyperv><relaxed state='on'/></hyperv></features></domain>"
        ),
        "unsupported element <features/hyperv/relaxed>",
    );
}

#[test]
fn unknown_attributes_are_named_with_their_element() {
    refuse_with(
        &with_devices("<disk type='file' bar='1'><target dev='vda'/></disk>"),
        "unsupported attribute 'bar' on <devices/disk>",
    );
    refuse_with(
        "<domain type='kvm' colour='red'><name>g</name><memory>1</memory></domain>",
        "unsupported attribute 'colour' on <domain>",
    );
    // A block device's path is `dev`; `file` on it would be silently wrong.
    refuse_with(
        &with_devices("<disk type='block'><source file='/x'/><target dev='vda'/></disk>"),
        "unsupported attribute 'file' on <devices/disk/source>",
    );
}

#[test]
fn text_where_elements_belong_is_refused() {
    refuse_with(
        &with_devices("stray<memballoon model='none'/>"),
        "unexpected text in <devices>",
    );
}

#[test]
fn duplicate_singletons_are_refused() {
    refuse_with(
        "<domain type='kvm'><name>a</name><name>b</name><memory>1</memory></domain>",
        "duplicate element <name>",
    );
    refuse_with(
        &format!("{MINIMAL_HEAD}<memory>2</memory></domain>"),
        "duplicate element <memory>",
    );
    refuse_with(
        &with_devices("<memballoon model='none'/><memballoon model='virtio'/>"),
        "duplicate element <devices/memballoon>",
    );
    refuse_with(
        &with_devices("<disk><target dev='vda'/><target dev='vdb'/></disk>"),
        "duplicate element <devices/disk/target>",
    );
}

#[test]
fn negative_and_overflowing_memory_is_refused() {
    let negative = "<domain type='kvm'><name>g</name><memory>-1</memory></domain>";
    refuse_with(negative, "must not be negative");
    let overflow =
        "<domain type='kvm'><name>g</name><memory>18446744073709551616</memory></domain>";
    refuse_with(overflow, "too large");
    let scaled = "<domain type='kvm'><name>g</name><memory unit='EiB'>16</memory></domain>";
    refuse_with(scaled, "too large");
    let current = format!("{MINIMAL_HEAD}<currentMemory>-5</currentMemory></domain>");
    refuse_with(&current, "<currentMemory>");
    refuse_with(
        "<domain type='kvm'><name>g</name><memory unit='furlongs'>1</memory></domain>",
        "unknown memory unit",
    );
    refuse_with(
        "<domain type='kvm'><name>g</name><memory>0</memory></domain>",
        "greater than zero",
    );
}

#[test]
fn entity_expansion_attempts_are_refused() {
    let laughs = "<?xml version='1.0'?>\n<!DOCTYPE domain [\n<!ENTITY lol 'lol'>\n\
        <!ENTITY lol2 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>\n]>\n\
        <domain type='kvm'><name>&lol2;</name><memory>1</memory></domain>";
    let err = refuse_with(laughs, "DTD/entities are not allowed");
    assert!(matches!(err, XmlError::DtdNotAllowed { .. }));
    // Without a DTD an undeclared entity is refused the same way.
    refuse_with(
        "<domain type='kvm'><name>&xxe;</name><memory>1</memory></domain>",
        "DTD/entities are not allowed (entity &xxe;",
    );
    let external = "<!DOCTYPE domain SYSTEM 'file:///etc/passwd'><domain type='kvm'/>";
    refuse_with(external, "DTD/entities are not allowed");
}

#[test]
fn four_mib_of_nested_elements_is_refused() {
    let head = "<domain type='kvm'><name>g</name><memory>1</memory><devices>";
    let per_level = "<disk>".len() + "</disk>".len();
    let levels = (MAX_XML_BYTES - head.len() - "</devices></domain>".len()) / per_level;
    let xml = format!(
        "{head}{}{}</devices></domain>",
        "<disk>".repeat(levels),
        "</disk>".repeat(levels)
    );
    assert!(xml.len() <= MAX_XML_BYTES && xml.len() > MAX_XML_BYTES - per_level);
    let err = refuse_with(&xml, &format!("deeper than {MAX_XML_DEPTH} levels"));
    assert!(matches!(err, XmlError::TooDeep { .. }));
}

#[test]
fn input_over_the_size_bound_is_refused_before_parsing() {
    let padding = " ".repeat(MAX_XML_BYTES);
    let xml = format!("{MINIMAL_HEAD}{padding}</domain>");
    let err = refuse_with(&xml, "larger than the 4194304 byte limit");
    assert!(matches!(err, XmlError::TooLarge { .. }));
}

#[test]
fn names_must_be_non_empty_and_free_of_slashes() {
    refuse_with(
        "<domain type='kvm'><name></name><memory>1</memory></domain>",
        "must not be empty",
    );
    refuse_with(
        "<domain type='kvm'><name>a/b</name><memory>1</memory></domain>",
        "must not contain '/'",
    );
    refuse_with(
        "<domain type='kvm'><memory>1</memory></domain>",
        "missing element <name>",
    );
}

#[test]
fn bad_values_are_refused() {
    refuse_with(
        &format!("{MINIMAL_HEAD}<uuid>not-a-uuid</uuid></domain>"),
        "invalid value 'not-a-uuid' for <uuid>",
    );
    refuse_with(
        "<domain type='xen'><name>g</name><memory>1</memory></domain>",
        "'xen'",
    );
    refuse_with(
        "<domain><name>g</name><memory>1</memory></domain>",
        "missing attribute 'type' on <domain>",
    );
    refuse_with(
        &format!("{MINIMAL_HEAD}<vcpu>0</vcpu></domain>"),
        "at least one vCPU",
    );
    refuse_with(
        &format!("{MINIMAL_HEAD}<vcpu current='3'>2</vcpu></domain>"),
        "'current'",
    );
    refuse_with(
        &format!("{MINIMAL_HEAD}<on_crash>explode</on_crash></domain>"),
        "<on_crash>",
    );
    refuse_with(
        &with_devices("<interface type='user'><mac address='52:54:00'/></interface>"),
        "not a MAC address",
    );
    refuse_with(
        &with_devices("<video><address type='pci' slot='zz'/></video>"),
        "attribute 'slot' on <devices/video/address>",
    );
    refuse_with(
        &with_devices("<disk type='network'><target dev='vda'/></disk>"),
        "'network'",
    );
    refuse_with(
        &with_devices("<disk type='file'/>"),
        "missing element <devices/disk/target>",
    );
    refuse_with(
        "<network><name>n</name></network>",
        "expected a <domain> root element, found <network>",
    );
}

#[test]
fn unprefixed_or_undeclared_extensions_are_refused() {
    refuse_with(
        &format!("{MINIMAL_HEAD}<qemu:commandline/></domain>"),
        "unsupported element <qemu:commandline>",
    );
}

#[test]
fn four_mib_of_sibling_elements_is_parsed_in_linear_time() {
    // Distinct names defeat the duplicate check; a quadratic scan would hang here.
    let head = "<domain type='kvm'><name>g</name><memory>1</memory><features>";
    let tail = "</features></domain>";
    let mut xml = String::from(head);
    let mut i = 0u32;
    while xml.len() + tail.len() + 16 < MAX_XML_BYTES {
        xml.push_str(&format!("<f{i}/>"));
        i += 1;
    }
    xml.push_str(tail);
    let def = DomainDef::parse(&xml).expect("flat features are accepted");
    assert_eq!(def.features.len(), i as usize);
    // The same document with one repeated feature is refused as a duplicate.
    let dup = xml.replacen("<f1/>", "<f0/>", 1);
    refuse_with(&dup, "duplicate element <features/f0>");
}
