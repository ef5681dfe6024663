//! The guest platform: `<os>`, `<features>`, `<cpu>`, `<clock>`, `<pm>` and
//! `<seclabel>`.

use std::collections::HashSet;

use super::error::{Result, XmlError};
use super::read::{once, Node};
use super::write::{AttrValue, Writer};
use super::FormatOptions;

/// `<os>`: firmware, boot order and direct kernel boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Os {
    /// `<os firmware=…>`: automatic firmware selection (bios, efi).
    pub firmware: Option<String>,
    /// `<firmware><feature enabled=… name=…/></firmware>`: constraints on that selection.
    pub firmware_features: Vec<FirmwareFeature>,
    /// `<type>` text: `hvm` for full virtualisation.
    pub os_type: String,
    /// `<type arch=…>`.
    pub arch: Option<String>,
    /// `<type machine=…>`: the QEMU machine type, guest-visible.
    pub machine: Option<String>,
    /// `<loader>`: firmware image.
    pub loader: Option<Loader>,
    /// `<nvram>`: per-guest firmware variables.
    pub nvram: Option<Nvram>,
    /// `<boot dev=…>` in order.
    pub boot: Vec<String>,
    /// `<bootmenu enable=… timeout=…>`.
    pub bootmenu: Option<BootMenu>,
    /// `<kernel>` path for direct boot.
    pub kernel: Option<String>,
    /// `<initrd>` path for direct boot.
    pub initrd: Option<String>,
    /// `<cmdline>` for direct boot.
    pub cmdline: Option<String>,
    /// `<smbios mode=…>`.
    pub smbios_mode: Option<String>,
}

impl Default for Os {
    fn default() -> Self {
        Self {
            firmware: None,
            firmware_features: Vec::new(),
            os_type: "hvm".into(),
            arch: None,
            machine: None,
            loader: None,
            nvram: None,
            boot: Vec::new(),
            bootmenu: None,
            kernel: None,
            initrd: None,
            cmdline: None,
            smbios_mode: None,
        }
    }
}

/// `<feature enabled=… name=…/>` inside `<os><firmware>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirmwareFeature {
    /// secure-boot, enrolled-keys.
    pub name: String,
    /// Whether the firmware must (or must not) have it.
    pub enabled: bool,
}

/// `<loader readonly=… type=… secure=…>path</loader>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loader {
    /// Firmware path (may be empty when firmware auto-selection is used).
    pub path: String,
    /// `readonly` yes/no.
    pub readonly: Option<bool>,
    /// `type`: `rom` or `pflash`.
    pub kind: Option<String>,
    /// `secure` yes/no.
    pub secure: Option<bool>,
}

/// `<nvram template=…>path</nvram>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nvram {
    /// Variables file of this guest.
    pub path: String,
    /// Template it is created from.
    pub template: Option<String>,
}

/// `<bootmenu enable=… timeout=…/>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootMenu {
    /// Whether the menu is shown.
    pub enable: bool,
    /// Milliseconds the menu waits.
    pub timeout: Option<u32>,
}

impl Os {
    pub(crate) fn parse(mut node: Node<'_>) -> Result<Self> {
        let mut os = Self {
            firmware: node.attr("firmware"),
            ..Self::default()
        };
        let mut os_type = None;
        let mut firmware = None;
        let mut kernel = None;
        let mut initrd = None;
        let mut cmdline = None;
        for c in node.children() {
            match c.name() {
                "type" => once(&mut os_type, c, |mut c| {
                    let arch = c.attr("arch");
                    let machine = c.attr("machine");
                    Ok((c.text()?, arch, machine))
                })?,
                "loader" => once(&mut os.loader, c, |mut c| {
                    Ok(Loader {
                        readonly: c.attr_yes_no("readonly")?,
                        kind: c.attr("type"),
                        secure: c.attr_yes_no("secure")?,
                        path: c.text()?,
                    })
                })?,
                "nvram" => once(&mut os.nvram, c, |mut c| {
                    let template = c.attr("template");
                    Ok(Nvram {
                        path: c.text()?,
                        template,
                    })
                })?,
                "boot" => os.boot.push(c.leaf(|c| c.req_attr("dev"))?),
                "firmware" => once(&mut firmware, c, parse_firmware)?,
                "bootmenu" => once(&mut os.bootmenu, c, |c| {
                    c.leaf(|c| {
                        Ok(BootMenu {
                            enable: c.attr_yes_no("enable")?.unwrap_or(false),
                            timeout: c.attr_parse("timeout")?,
                        })
                    })
                })?,
                "kernel" => once(&mut kernel, c, Node::text)?,
                "initrd" => once(&mut initrd, c, Node::text)?,
                "cmdline" => once(&mut cmdline, c, Node::text)?,
                "smbios" => once(&mut os.smbios_mode, c, |c| c.leaf(|c| c.req_attr("mode")))?,
                _ => return Err(c.unsupported()),
            }
        }
        node.finish()?;
        if let Some((t, arch, machine)) = os_type {
            os.os_type = t;
            os.arch = arch;
            os.machine = machine;
        }
        os.firmware_features = firmware.unwrap_or_default();
        os.kernel = kernel;
        os.initrd = initrd;
        os.cmdline = cmdline;
        Ok(os)
    }

    pub(crate) fn format(&self, w: &mut Writer) {
        w.elem("os", &[("firmware", &self.firmware)], |w| {
            w.text(
                "type",
                &[("arch", &self.arch), ("machine", &self.machine)],
                &self.os_type,
            );
            if !self.firmware_features.is_empty() {
                w.elem("firmware", &[], |w| {
                    for f in &self.firmware_features {
                        w.empty("feature", &[("enabled", &f.enabled), ("name", &f.name)]);
                    }
                });
            }
            if let Some(l) = &self.loader {
                w.text(
                    "loader",
                    &[
                        ("readonly", &l.readonly),
                        ("secure", &l.secure),
                        ("type", &l.kind),
                    ],
                    &l.path,
                );
            }
            if let Some(n) = &self.nvram {
                w.text("nvram", &[("template", &n.template)], &n.path);
            }
            w.opt_text("kernel", self.kernel.as_deref());
            w.opt_text("initrd", self.initrd.as_deref());
            w.opt_text("cmdline", self.cmdline.as_deref());
            for dev in &self.boot {
                w.empty("boot", &[("dev", dev)]);
            }
            if let Some(m) = &self.bootmenu {
                w.empty(
                    "bootmenu",
                    &[("enable", &m.enable), ("timeout", &m.timeout)],
                );
            }
            if let Some(mode) = &self.smbios_mode {
                w.empty("smbios", &[("mode", mode)]);
            }
        });
    }
}

fn parse_firmware(node: Node<'_>) -> Result<Vec<FirmwareFeature>> {
    let mut features = Vec::new();
    for c in node.children() {
        match c.name() {
            "feature" => features.push(c.leaf(|c| {
                let name = c.req_attr("name")?;
                let enabled =
                    c.attr_yes_no("enabled")?
                        .ok_or_else(|| XmlError::MissingAttribute {
                            attr: "enabled".into(),
                            path: c.path().to_string(),
                        })?;
                Ok(FirmwareFeature { name, enabled })
            })?),
            _ => return Err(c.unsupported()),
        }
    }
    node.finish()?;
    Ok(features)
}

/// One hypervisor feature under `<features>` (`<acpi/>`, `<vmport state='off'/>`).
///
/// Features are kept by name with their attributes, in document order, so
/// features this model has no special knowledge of survive a round trip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feature {
    /// Element name.
    pub name: String,
    /// Attributes in document order.
    pub attrs: Vec<(String, String)>,
}

pub(crate) fn parse_features(node: Node<'_>) -> Result<Vec<Feature>> {
    let mut features: Vec<Feature> = Vec::new();
    let mut seen = HashSet::new();
    for c in node.children() {
        if !seen.insert(c.name()) {
            return Err(c.duplicate());
        }
        let name = c.name().to_string();
        // Nested feature groups (<hyperv>, <kvm>) are not modelled: refusing
        // them keeps their settings from being dropped.
        let attrs = c.leaf(|c| Ok(c.all_attrs()))?;
        features.push(Feature { name, attrs });
    }
    node.finish()?;
    Ok(features)
}

pub(crate) fn format_features(w: &mut Writer, features: &[Feature]) {
    if features.is_empty() {
        return;
    }
    w.elem("features", &[], |w| {
        for f in features {
            w.empty_list(&f.name, &f.attrs);
        }
    });
}

/// `<cpu>`: the CPU model the guest sees.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cpu {
    /// `mode`: custom, host-model, host-passthrough, maximum.
    pub mode: Option<String>,
    /// `match`: minimum, exact, strict.
    pub match_mode: Option<String>,
    /// `check`: none, partial, full.
    pub check: Option<String>,
    /// `migratable` on/off (host-passthrough).
    pub migratable: Option<String>,
    /// `<model>`.
    pub model: Option<CpuModel>,
    /// `<vendor>`.
    pub vendor: Option<String>,
    /// `<topology>` attributes (sockets, dies, clusters, cores, threads).
    pub topology: Vec<(String, String)>,
    /// `<feature policy=… name=…/>` in order.
    pub features: Vec<CpuFeature>,
}

/// `<model fallback=… vendor_id=…>name</model>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuModel {
    /// Model name (`qemu64`, `Skylake-Client`).
    pub name: String,
    /// `fallback`: allow or forbid.
    pub fallback: Option<String>,
    /// `vendor_id` override.
    pub vendor_id: Option<String>,
}

/// `<feature policy=… name=…/>` inside `<cpu>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuFeature {
    /// force, require, optional, disable, forbid.
    pub policy: Option<String>,
    /// CPUID feature name.
    pub name: String,
}

impl Cpu {
    pub(crate) fn parse(mut node: Node<'_>) -> Result<Self> {
        let mut cpu = Cpu {
            mode: node.attr("mode"),
            match_mode: node.attr("match"),
            check: node.attr("check"),
            migratable: node.attr("migratable"),
            ..Cpu::default()
        };
        let mut topology = None;
        for c in node.children() {
            match c.name() {
                "model" => once(&mut cpu.model, c, |mut c| {
                    let fallback = c.attr("fallback");
                    let vendor_id = c.attr("vendor_id");
                    Ok(CpuModel {
                        name: c.text()?,
                        fallback,
                        vendor_id,
                    })
                })?,
                "vendor" => once(&mut cpu.vendor, c, Node::text)?,
                "topology" => once(&mut topology, c, |c| {
                    c.leaf(|c| Ok(c.attrs_in(&["sockets", "dies", "clusters", "cores", "threads"])))
                })?,
                "feature" => cpu.features.push(c.leaf(|c| {
                    Ok(CpuFeature {
                        policy: c.attr("policy"),
                        name: c.req_attr("name")?,
                    })
                })?),
                _ => return Err(c.unsupported()),
            }
        }
        node.finish()?;
        cpu.topology = topology.unwrap_or_default();
        Ok(cpu)
    }

    pub(crate) fn format(&self, w: &mut Writer) {
        let attrs: [(&str, &dyn AttrValue); 4] = [
            ("mode", &self.mode),
            ("match", &self.match_mode),
            ("check", &self.check),
            ("migratable", &self.migratable),
        ];
        w.elem("cpu", &attrs, |w| {
            if let Some(m) = &self.model {
                w.text(
                    "model",
                    &[("fallback", &m.fallback), ("vendor_id", &m.vendor_id)],
                    &m.name,
                );
            }
            w.opt_text("vendor", self.vendor.as_deref());
            if !self.topology.is_empty() {
                w.empty_list("topology", &self.topology);
            }
            for f in &self.features {
                w.empty("feature", &[("policy", &f.policy), ("name", &f.name)]);
            }
        });
    }
}

/// `<clock offset=…>` with its timers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Clock {
    /// utc, localtime, timezone, variable.
    pub offset: Option<String>,
    /// Other clock attributes (timezone, adjustment, basis), canonical order.
    pub attrs: Vec<(String, String)>,
    /// `<timer …/>` in order.
    pub timers: Vec<Timer>,
}

/// `<timer name=… present=… tickpolicy=…/>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timer {
    /// rtc, pit, hpet, kvmclock, hypervclock, tsc.
    pub name: String,
    /// Attributes other than `name` (present, tickpolicy, track, frequency, mode).
    pub attrs: Vec<(String, String)>,
}

impl Clock {
    pub(crate) fn parse(mut node: Node<'_>) -> Result<Self> {
        let mut clock = Clock {
            offset: node.attr("offset"),
            attrs: node.attrs_in(&["timezone", "adjustment", "basis"]),
            timers: Vec::new(),
        };
        for c in node.children() {
            match c.name() {
                "timer" => clock.timers.push(c.leaf(|c| {
                    Ok(Timer {
                        name: c.req_attr("name")?,
                        attrs: c.attrs_in(&["present", "tickpolicy", "track", "frequency", "mode"]),
                    })
                })?),
                _ => return Err(c.unsupported()),
            }
        }
        node.finish()?;
        Ok(clock)
    }

    pub(crate) fn format(&self, w: &mut Writer) {
        let mut attrs: Vec<(&str, &dyn AttrValue)> = vec![("offset", &self.offset)];
        attrs.extend(
            self.attrs
                .iter()
                .map(|(k, v)| (k.as_str(), v as &dyn AttrValue)),
        );
        w.elem("clock", &attrs, |w| {
            for t in &self.timers {
                let mut attrs: Vec<(String, String)> = vec![("name".into(), t.name.clone())];
                attrs.extend(t.attrs.iter().cloned());
                w.empty_list("timer", &attrs);
            }
        });
    }
}

/// `<pm>`: guest power management.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pm {
    /// `<suspend-to-mem enabled=…/>`.
    pub suspend_to_mem: Option<bool>,
    /// `<suspend-to-disk enabled=…/>`.
    pub suspend_to_disk: Option<bool>,
}

impl Pm {
    pub(crate) fn parse(node: Node<'_>) -> Result<Self> {
        let mut mem = None;
        let mut disk = None;
        for c in node.children() {
            match c.name() {
                "suspend-to-mem" => once(&mut mem, c, |c| c.leaf(|c| c.attr_yes_no("enabled")))?,
                "suspend-to-disk" => once(&mut disk, c, |c| c.leaf(|c| c.attr_yes_no("enabled")))?,
                _ => return Err(c.unsupported()),
            }
        }
        node.finish()?;
        Ok(Pm {
            suspend_to_mem: mem.flatten(),
            suspend_to_disk: disk.flatten(),
        })
    }

    pub(crate) fn format(&self, w: &mut Writer) {
        w.elem("pm", &[], |w| {
            if let Some(v) = self.suspend_to_mem {
                w.empty("suspend-to-mem", &[("enabled", &v)]);
            }
            if let Some(v) = self.suspend_to_disk {
                w.empty("suspend-to-disk", &[("enabled", &v)]);
            }
        });
    }
}

/// `<seclabel>`: the security driver label (host-side).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SecLabel {
    /// dynamic, static, none.
    pub kind: Option<String>,
    /// dac, selinux, apparmor.
    pub model: Option<String>,
    /// `relabel` yes/no.
    pub relabel: Option<bool>,
    /// `<label>`.
    pub label: Option<String>,
    /// `<imagelabel>`.
    pub imagelabel: Option<String>,
    /// `<baselabel>`.
    pub baselabel: Option<String>,
}

impl SecLabel {
    pub(crate) fn parse(mut node: Node<'_>) -> Result<Self> {
        let mut s = SecLabel {
            kind: node.attr("type"),
            model: node.attr("model"),
            relabel: node.attr_yes_no("relabel")?,
            ..SecLabel::default()
        };
        for c in node.children() {
            match c.name() {
                "label" => once(&mut s.label, c, Node::text)?,
                "imagelabel" => once(&mut s.imagelabel, c, Node::text)?,
                "baselabel" => once(&mut s.baselabel, c, Node::text)?,
                _ => return Err(c.unsupported()),
            }
        }
        node.finish()?;
        Ok(s)
    }

    pub(crate) fn format(&self, w: &mut Writer, opts: &FormatOptions) {
        // A dynamic label is generated at start; an inactive definition has none.
        let runtime = opts.inactive && self.kind.as_deref() == Some("dynamic");
        w.elem(
            "seclabel",
            &[
                ("type", &self.kind),
                ("model", &self.model),
                ("relabel", &self.relabel),
            ],
            |w| {
                if !runtime {
                    w.opt_text("label", self.label.as_deref());
                    w.opt_text("imagelabel", self.imagelabel.as_deref());
                }
                w.opt_text("baselabel", self.baselabel.as_deref());
            },
        );
    }
}
