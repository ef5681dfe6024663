//! [`DomainDef`]: the root of the model, and the `<domain>` element itself.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::blkiotune::BlkioTune;
use super::devices::Devices;
use super::error::{Result, XmlError};
use super::kinds::DomainType;
use super::memtune::MemTune;
use super::numatune::NumaTune;
use super::perf::Perf;
use super::platform::{self, Clock, Cpu, Feature, Os, Pm, SecLabel};
use super::read::{once, Node};
use super::vcpus::{self, VcpuSlot};
use super::write::{AttrValue, Writer};
use super::{metadata, tree, units, FormatOptions};

/// The lifecycle actions libvirt accepts for `on_poweroff`/`on_reboot`/`on_crash`.
const LIFECYCLE_ACTIONS: &[&str] = &[
    "destroy",
    "restart",
    "preserve",
    "rename-restart",
    "coredump-destroy",
    "coredump-restart",
];

/// A guest definition: everything in one `<domain>` document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainDef {
    /// `<domain type=…>`.
    pub domain_type: DomainType,
    /// `<domain id=…>`: the runtime id of a running guest (live XML only).
    pub id: Option<i32>,
    /// `xmlns:prefix='uri'` declarations on `<domain>`, in document order.
    pub namespaces: Vec<(String, String)>,
    /// `<name>`: unique per host, non-empty, without '/'.
    pub name: String,
    /// `<uuid>`: generated (v4) when the document has none.
    pub uuid: Uuid,
    /// `<title>`: one line.
    pub title: Option<String>,
    /// `<description>`.
    pub description: Option<String>,
    /// Content of `<metadata>`, verbatim (trimmed), foreign namespaces included.
    ///
    /// Written back unchanged, so a caller that sets it must store well-formed
    /// XML content.
    pub metadata: Option<String>,
    /// `<maxMemory slots=…>`: the hotplug ceiling.
    pub max_memory: Option<MaxMemory>,
    /// `<memory>`: maximum guest memory at boot, in KiB.
    pub memory_kib: u64,
    /// `<currentMemory>`: the balloon target, in KiB (never above `memory_kib`).
    pub current_memory_kib: u64,
    /// `<blkiotune>`: block I/O weights and per-device limits.
    pub blkiotune: BlkioTune,
    /// `<memtune>`: memory limits.
    pub memtune: MemTune,
    /// `<vcpu>` count: the maximum number of vCPUs.
    pub vcpus: u32,
    /// `<vcpu>` attributes.
    pub vcpu: Vcpu,
    /// `<vcpus>`: each vCPU slot's state; empty when the document has none.
    pub vcpu_slots: Vec<VcpuSlot>,
    /// `<numatune>`: the host NUMA memory policy.
    pub numatune: NumaTune,
    /// `<resource><partition>`: the host cgroup partition.
    pub resource_partition: Option<String>,
    /// `<os>`.
    pub os: Os,
    /// `<features>` children in order.
    pub features: Vec<Feature>,
    /// `<cpu>`.
    pub cpu: Option<Cpu>,
    /// `<clock>`.
    pub clock: Option<Clock>,
    /// `<on_poweroff>`.
    pub on_poweroff: Option<String>,
    /// `<on_reboot>`.
    pub on_reboot: Option<String>,
    /// `<on_crash>`.
    pub on_crash: Option<String>,
    /// `<pm>`.
    pub pm: Option<Pm>,
    /// `<perf>`: perf events.
    pub perf: Perf,
    /// `<devices>`.
    pub devices: Devices,
    /// `<seclabel>`s.
    pub seclabels: Vec<SecLabel>,
    /// Foreign-namespace children of `<domain>` (`<qemu:commandline>`), each
    /// verbatim from its start tag to its end tag.
    pub extensions: Vec<String>,
}

/// `<maxMemory slots=… unit=…>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxMemory {
    /// Ceiling in KiB.
    pub kib: u64,
    /// Memory hotplug slots.
    pub slots: Option<u32>,
}

/// Attributes of `<vcpu>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Vcpu {
    /// `placement`: static or auto.
    pub placement: Option<String>,
    /// `current`: vCPUs online at boot (at most the count).
    pub current: Option<u32>,
    /// `cpuset`: host CPUs the vCPUs may run on.
    pub cpuset: Option<String>,
}

impl DomainDef {
    /// Parses a `<domain>` document.
    ///
    /// # Errors
    /// Any [`XmlError`]: malformed XML (with its position), a DTD or entity,
    /// an input over [`MAX_XML_BYTES`](super::MAX_XML_BYTES) or nested over
    /// [`MAX_XML_DEPTH`](super::MAX_XML_DEPTH), an unknown element or
    /// attribute, a repeated singleton, or an invalid value (empty name or one
    /// with '/', bad UUID, negative or overflowing memory…).
    pub fn parse(xml: &str) -> Result<Self> {
        let root = tree::parse(xml)?;
        if root.name != "domain" {
            return Err(XmlError::NotADomain {
                found: format!("<{}>", root.name),
            });
        }
        let mut node = Node::root(&root);
        let domain_type = node.req_attr_parse::<DomainType>("type")?;
        let id = node.attr_parse::<i32>("id")?;
        let namespaces: Vec<(String, String)> = root
            .attrs
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix("xmlns:")?.to_string(), v.clone())))
            .collect();
        for (prefix, _) in &namespaces {
            node.attr(&format!("xmlns:{prefix}"));
        }
        let mut s = Sections::default();
        for c in node.children() {
            s.read(c, xml, &namespaces)?;
        }
        node.finish()?;
        s.into_def(domain_type, id, namespaces)
    }

    /// The vCPUs online: `<vcpu current=…>`, else the count (libvirt's
    /// `virDomainDefGetVcpus`).
    pub fn current_vcpus(&self) -> u32 {
        self.vcpu.current.unwrap_or(self.vcpus)
    }

    /// Sets the vCPUs online, at most [`DomainDef::vcpus`] (the caller
    /// checks); `current` is written only when it differs from the
    /// maximum, as libvirt formats it.
    pub fn set_current_vcpus(&mut self, count: u32) {
        if self.vcpu_slots.is_empty() {
            self.vcpu.current = (count != self.vcpus).then_some(count);
        } else {
            self.record_vcpu_hotplug(count);
        }
    }

    /// The vCPUs online from boot: those `<vcpus>` does not mark
    /// hot-pluggable, else all online ones.
    pub fn boot_vcpus(&self) -> u32 {
        if self.vcpu_slots.is_empty() {
            return self.current_vcpus();
        }
        let boot = self
            .vcpu_slots
            .iter()
            .filter(|s| s.online_at_boot())
            .count();
        u32::try_from(boot).unwrap_or(u32::MAX)
    }

    /// Records a live change to `count` vCPUs online: `<vcpus>` then tells
    /// the vCPUs online from boot from the ones plugged since (a guest's
    /// next QEMU, of a migration or a restore, must plug those again).
    pub fn record_vcpu_hotplug(&mut self, count: u32) {
        let boot = self.boot_vcpus().min(count);
        self.vcpu_slots = vcpus::after_hotplug(self.vcpus, boot, count);
        self.vcpu.current = (count != self.vcpus).then_some(count);
    }

    /// Sets the maximum vCPU count, lowering the vCPUs online to it (libvirt's
    /// `virDomainDefSetVcpusMax`).
    pub fn set_max_vcpus(&mut self, count: u32) {
        let current = self.current_vcpus().min(count);
        self.vcpus = count;
        // The slots change with the count; the inactive definition keeps none.
        self.vcpu_slots.clear();
        self.set_current_vcpus(current);
    }

    /// Formats the definition in libvirt's layout.
    pub fn format(&self, opts: &FormatOptions) -> String {
        // A typical definition formats to 1-3 KiB: one allocation up front
        // instead of a series of doublings.
        let mut w = Writer::with_capacity(4096);
        let id = if opts.inactive || opts.migratable {
            None
        } else {
            self.id
        };
        let ns_attrs: Vec<(String, String)> = self
            .namespaces
            .iter()
            .map(|(p, u)| (format!("xmlns:{p}"), u.clone()))
            .collect();
        let mut attrs: Vec<(&str, &dyn AttrValue)> = vec![("type", &self.domain_type), ("id", &id)];
        attrs.extend(
            ns_attrs
                .iter()
                .map(|(k, v)| (k.as_str(), v as &dyn AttrValue)),
        );
        w.elem("domain", &attrs, |w| {
            w.text("name", &[], &self.name);
            w.text("uuid", &[], &self.uuid.hyphenated().to_string());
            w.opt_text("title", self.title.as_deref());
            w.opt_text("description", self.description.as_deref());
            if let Some(m) = &self.metadata {
                w.elem("metadata", &[], |w| w.raw(m));
            }
            if let Some(m) = &self.max_memory {
                w.text(
                    "maxMemory",
                    &[("slots", &m.slots), ("unit", &"KiB")],
                    &m.kib.to_string(),
                );
            }
            w.text("memory", &[("unit", &"KiB")], &self.memory_kib.to_string());
            w.text(
                "currentMemory",
                &[("unit", &"KiB")],
                &self.current_memory_kib.to_string(),
            );
            self.blkiotune.format(w);
            self.memtune.format(w);
            w.text(
                "vcpu",
                &[
                    ("placement", &self.vcpu.placement),
                    ("cpuset", &self.vcpu.cpuset),
                    ("current", &self.vcpu.current),
                ],
                &self.vcpus.to_string(),
            );
            vcpus::format(w, &self.vcpu_slots);
            self.numatune.format(w);
            if let Some(p) = &self.resource_partition {
                w.elem("resource", &[], |w| w.text("partition", &[], p));
            }
            self.os.format(w);
            platform::format_features(w, &self.features);
            if let Some(cpu) = &self.cpu {
                cpu.format(w);
            }
            if let Some(clock) = &self.clock {
                clock.format(w);
            }
            w.opt_text("on_poweroff", self.on_poweroff.as_deref());
            w.opt_text("on_reboot", self.on_reboot.as_deref());
            w.opt_text("on_crash", self.on_crash.as_deref());
            if let Some(pm) = &self.pm {
                pm.format(w);
            }
            self.perf.format(w);
            self.devices.format(w, opts);
            for s in &self.seclabels {
                s.format(w, opts);
            }
            for ext in &self.extensions {
                w.raw(ext);
            }
        });
        w.finish()
    }

    /// The attributes of the first `<metadata>` child named `local_name` in
    /// namespace `ns_uri` (namespace declarations excluded).
    ///
    /// The test driver reads its workload settings this way, from
    /// `<metadata><migrated:workload xmlns:migrated="https://migrated.dev/xmlns/test/1" …/></metadata>`.
    pub fn metadata_element(
        &self,
        ns_uri: &str,
        local_name: &str,
    ) -> Option<BTreeMap<String, String>> {
        metadata::find_element(
            self.metadata.as_deref()?,
            &self.namespaces,
            ns_uri,
            local_name,
        )
    }
}

/// The children of `<domain>` as they are read, before defaults and checks.
#[derive(Default)]
struct Sections {
    name: Option<String>,
    uuid: Option<Uuid>,
    title: Option<String>,
    description: Option<String>,
    metadata: Option<String>,
    max_memory: Option<MaxMemory>,
    memory: Option<u64>,
    current_memory: Option<u64>,
    blkiotune: Option<BlkioTune>,
    memtune: Option<MemTune>,
    numatune: Option<NumaTune>,
    perf: Option<Perf>,
    vcpu: Option<(u32, Vcpu)>,
    vcpu_slots: Option<Vec<VcpuSlot>>,
    resource: Option<String>,
    os: Option<Os>,
    features: Option<Vec<Feature>>,
    cpu: Option<Cpu>,
    clock: Option<Clock>,
    on_poweroff: Option<String>,
    on_reboot: Option<String>,
    on_crash: Option<String>,
    pm: Option<Pm>,
    devices: Option<Devices>,
    seclabels: Vec<SecLabel>,
    extensions: Vec<String>,
}

impl Sections {
    fn read(&mut self, c: Node<'_>, xml: &str, namespaces: &[(String, String)]) -> Result<()> {
        match c.name() {
            "name" => once(&mut self.name, c, parse_name),
            "uuid" => once(&mut self.uuid, c, |c| {
                let text = c.text()?;
                Uuid::parse_str(&text).map_err(|e| XmlError::InvalidValue {
                    what: "<uuid>".into(),
                    value: text,
                    reason: e.to_string(),
                })
            }),
            "title" => once(&mut self.title, c, |c| {
                let text = c.text()?;
                if text.contains('\n') {
                    return Err(XmlError::InvalidValue {
                        what: "<title>".into(),
                        value: text,
                        reason: "a title must be a single line".into(),
                    });
                }
                Ok(text)
            }),
            "description" => once(&mut self.description, c, Node::text),
            "metadata" => once(&mut self.metadata, c, |c| {
                c.finish_attrs()?;
                let inner = c.element().inner.clone();
                Ok(xml.get(inner).unwrap_or_default().trim().to_string())
            }),
            "maxMemory" => once(&mut self.max_memory, c, |mut c| {
                let slots = c.attr_parse("slots")?;
                Ok(MaxMemory {
                    kib: units::read_kib(c)?,
                    slots,
                })
            }),
            "memory" => once(&mut self.memory, c, units::read_kib),
            "currentMemory" => once(&mut self.current_memory, c, units::read_kib),
            "blkiotune" => once(&mut self.blkiotune, c, BlkioTune::parse),
            "memtune" => once(&mut self.memtune, c, MemTune::parse),
            "numatune" => once(&mut self.numatune, c, NumaTune::parse),
            "perf" => once(&mut self.perf, c, Perf::parse),
            "vcpu" => once(&mut self.vcpu, c, |mut c| {
                let attrs = Vcpu {
                    placement: c.attr("placement"),
                    current: c.attr_parse("current")?,
                    cpuset: c.attr("cpuset"),
                };
                let count: u32 = c.text_parse()?;
                Ok((count, attrs))
            }),
            "vcpus" => once(&mut self.vcpu_slots, c, vcpus::parse),
            "resource" => once(&mut self.resource, c, |c| {
                let mut partition = None;
                for p in c.children() {
                    match p.name() {
                        "partition" => once(&mut partition, p, Node::text)?,
                        _ => return Err(p.unsupported()),
                    }
                }
                let missing = XmlError::MissingElement {
                    path: "resource/partition".into(),
                };
                c.finish()?;
                partition.ok_or(missing)
            }),
            "os" => once(&mut self.os, c, Os::parse),
            "features" => once(&mut self.features, c, platform::parse_features),
            "cpu" => once(&mut self.cpu, c, Cpu::parse),
            "clock" => once(&mut self.clock, c, Clock::parse),
            "on_poweroff" => once(&mut self.on_poweroff, c, parse_action),
            "on_reboot" => once(&mut self.on_reboot, c, parse_action),
            "on_crash" => once(&mut self.on_crash, c, parse_action),
            "pm" => once(&mut self.pm, c, Pm::parse),
            "devices" => once(&mut self.devices, c, Devices::parse),
            "seclabel" => {
                self.seclabels.push(SecLabel::parse(c)?);
                Ok(())
            }
            name if is_extension(c.element(), name, namespaces) => {
                let span = c.element().span.clone();
                self.extensions
                    .push(xml.get(span).unwrap_or_default().to_string());
                Ok(())
            }
            _ => Err(c.unsupported()),
        }
    }

    fn into_def(
        self,
        domain_type: DomainType,
        id: Option<i32>,
        namespaces: Vec<(String, String)>,
    ) -> Result<DomainDef> {
        let name = self.name.ok_or_else(|| XmlError::MissingElement {
            path: "name".into(),
        })?;
        let memory_kib = self.memory.ok_or_else(|| XmlError::MissingElement {
            path: "memory".into(),
        })?;
        if memory_kib == 0 {
            return Err(XmlError::InvalidValue {
                what: "<memory>".into(),
                value: "0".into(),
                reason: "memory size must be greater than zero".into(),
            });
        }
        // libvirt (virDomainDefPostParseMemory) clamps a missing, zero or too
        // large balloon target to the maximum rather than refusing it.
        let current_memory_kib = match self.current_memory {
            Some(cur) if cur > 0 && cur <= memory_kib => cur,
            _ => memory_kib,
        };
        if let Some(max) = &self.max_memory {
            if max.kib < memory_kib {
                return Err(XmlError::InvalidValue {
                    what: "<maxMemory>".into(),
                    value: max.kib.to_string(),
                    reason: format!("smaller than <memory> {memory_kib} KiB"),
                });
            }
        }
        let (vcpus, vcpu) = self.vcpu.unwrap_or((1, Vcpu::default()));
        if vcpus == 0 {
            return Err(XmlError::InvalidValue {
                what: "<vcpu>".into(),
                value: "0".into(),
                reason: "a guest needs at least one vCPU".into(),
            });
        }
        if let Some(cur) = vcpu.current.filter(|c| *c == 0 || *c > vcpus) {
            return Err(XmlError::InvalidValue {
                what: "attribute 'current' on <vcpu>".into(),
                value: cur.to_string(),
                reason: format!("must be between 1 and the vCPU count {vcpus}"),
            });
        }
        let vcpu_slots = self.vcpu_slots.unwrap_or_default();
        vcpus::check(&vcpu_slots, vcpus, vcpu.current.unwrap_or(vcpus))?;
        Ok(DomainDef {
            domain_type,
            id,
            namespaces,
            name,
            uuid: self.uuid.unwrap_or_else(Uuid::new_v4),
            title: self.title,
            description: self.description,
            metadata: self.metadata,
            max_memory: self.max_memory,
            memory_kib,
            current_memory_kib,
            blkiotune: self.blkiotune.unwrap_or_default(),
            memtune: self.memtune.unwrap_or_default(),
            numatune: self.numatune.unwrap_or_default(),
            perf: self.perf.unwrap_or_default(),
            vcpus,
            vcpu,
            vcpu_slots,
            resource_partition: self.resource,
            os: self.os.unwrap_or_default(),
            features: self.features.unwrap_or_default(),
            cpu: self.cpu,
            clock: self.clock,
            on_poweroff: self.on_poweroff,
            on_reboot: self.on_reboot,
            on_crash: self.on_crash,
            pm: self.pm,
            devices: self.devices.unwrap_or_default(),
            seclabels: self.seclabels,
            extensions: self.extensions,
        })
    }
}

fn parse_name(c: Node<'_>) -> Result<String> {
    let name = c.text()?;
    check_name(&name)?;
    Ok(name)
}

/// Checks a domain name as `<name>` is checked: not empty, without '/'
/// (for a rename, which sets a name without parsing a document).
///
/// # Errors
/// [`XmlError::InvalidValue`] naming the rule.
pub fn check_name(name: &str) -> Result<()> {
    let err = |reason: &str| XmlError::InvalidValue {
        what: "<name>".into(),
        value: name.into(),
        reason: reason.into(),
    };
    if name.is_empty() {
        return Err(err("a domain name must not be empty"));
    }
    if name.contains('/') {
        return Err(err("a domain name must not contain '/'"));
    }
    Ok(())
}

fn parse_action(c: Node<'_>) -> Result<String> {
    let what = format!("<{}>", c.path());
    let text = c.text()?;
    if LIFECYCLE_ACTIONS.contains(&text.as_str()) {
        Ok(text)
    } else {
        Err(XmlError::InvalidValue {
            what,
            value: text,
            reason: format!("expected one of: {}", LIFECYCLE_ACTIONS.join(", ")),
        })
    }
}

/// A `prefix:name` element whose prefix is declared on `<domain>` or on itself.
fn is_extension(el: &tree::Element, name: &str, namespaces: &[(String, String)]) -> bool {
    let Some((prefix, _)) = name.split_once(':') else {
        return false;
    };
    let own = format!("xmlns:{prefix}");
    namespaces.iter().any(|(p, _)| p == prefix) || el.attrs.iter().any(|(k, _)| *k == own)
}
