//! Guest ABI stability: may a guest defined by `src` continue running as `dst`?
//!
//! Migration with a caller-supplied destination XML (`xmlin`,
//! `VIR_MIGRATE_PARAM_DEST_XML`) and saving/restoring with a new definition
//! must not change anything the guest can see, or the migrated device state
//! would no longer match its devices. This mirrors libvirt's
//! `virDomainDefCheckABIStabilityFlags` (src/conf/domain_conf.c): every
//! guest-visible difference is reported — not only the first — each naming the
//! field and both values.
//!
//! Guest-visible: hypervisor type, UUID, memory (maximum, current, hotplug
//! ceiling), vCPUs, OS type/arch/machine, CPU model, hypervisor features,
//! power management, clock offset and timers, and per device class the count,
//! order, models and addresses (disks: device kind, target, bus, read-only,
//! shareable, serial; NICs: model and MAC; video: model, memory and heads;
//! controllers; serial ports, consoles and channels; inputs; TPM (model and
//! version); USB redirection; sound; watchdog; RNG;
//! memory balloon).
//!
//! Nothing here fills in defaults: a device address, MAC or machine type
//! present on one side and absent on the other is a difference, because the
//! destination would otherwise pick its own and the guest would see a change.
//!
//! Host-side and allowed to change: name (migration may rename), title,
//! description, metadata, emulator path, lifecycle actions, disk sources and
//! driver settings, NIC sources and host tap names, graphics (listen, ports,
//! passwords), serial/console host sources, security labels, resource
//! partition, device aliases and the runtime id.

use std::fmt;

use crate::xml::{
    Address, CharDevice, Clock, Controller, Cpu, Disk, DomainDef, Feature, Input, Interface,
    Memballoon, Redirdev, Rng, Sound, Tpm, Video, Watchdog,
};

/// One guest-visible difference between two definitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbiDifference {
    /// What differs, e.g. `guest memory` or `disk 1 target bus`.
    pub field: String,
    /// The source's value, rendered for people (`1048576 KiB`, `'virtio'`, `none`).
    pub source: String,
    /// The destination's value, rendered the same way.
    pub target: String,
    /// libvirt's own sentence for this difference, where clients know it
    /// ("Target domain machine type … does not match source …").
    pub libvirt: Option<String>,
}

impl fmt::Display for AbiDifference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.libvirt {
            Some(sentence) => f.write_str(sentence),
            None => write!(
                f,
                "target {} {} does not match source {}",
                self.field, self.target, self.source
            ),
        }
    }
}

/// The destination definition would change what the guest sees.
///
/// Maps to libvirt's `VIR_ERR_CONFIG_UNSUPPORTED`, as
/// `virDomainDefCheckABIStability` reports it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("guest ABI would change: {}", join(.differences))]
pub struct AbiMismatch {
    /// Every difference found, in document order; never empty.
    pub differences: Vec<AbiDifference>,
}

fn join(differences: &[AbiDifference]) -> String {
    differences
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Checks that `new`, a definition given to replace the one a save image
/// holds (`saved`), names the same domain (name and UUID) with the same
/// guest ABI, as libvirt's `qemuSaveImageUpdateDef`: the image's guest
/// state must fit it.
///
/// # Errors
/// [`crate::Error::InvalidArg`] for another domain,
/// [`crate::Error::ConfigUnsupported`] listing the ABI differences.
pub fn check_save_replacement(
    saved: &DomainDef,
    new: &DomainDef,
    operation: &'static str,
) -> crate::Result<()> {
    if new.uuid != saved.uuid || new.name != saved.name {
        return Err(crate::Error::InvalidArg {
            operation,
            reason: "the replacement xml names another domain".into(),
        });
    }
    check_abi_stability(saved, new).map_err(|m| crate::Error::ConfigUnsupported {
        reason: m.to_string(),
    })
}

/// Checks that `dst` describes the same virtual hardware as `src`.
///
/// # Errors
/// [`AbiMismatch`] listing every guest-visible difference.
pub fn check_abi_stability(src: &DomainDef, dst: &DomainDef) -> Result<(), AbiMismatch> {
    let mut c = Checker::default();
    c.domain(src, dst);
    if c.differences.is_empty() {
        Ok(())
    } else {
        Err(AbiMismatch {
            differences: c.differences,
        })
    }
}

/// Renders an optional value: `'x'` or `none`.
fn opt<T: fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "none".to_string(), |v| format!("'{v}'"))
}

fn quoted(v: impl fmt::Display) -> String {
    format!("'{v}'")
}

fn address(a: Option<&Address>) -> String {
    match a {
        None => "none".into(),
        Some(a) => {
            let mut s = format!("type='{}'", a.kind);
            for (k, v) in &a.fields {
                s.push_str(&format!(" {k}='{v}'"));
            }
            format!("<address {s}/>")
        }
    }
}

/// A PCI address as libvirt prints it in ABI messages: `0000:00:03.0`.
fn pci_text(a: &Address) -> String {
    let number = |name: &str| {
        a.field(name)
            .and_then(|v| {
                let v = v.trim();
                match v.strip_prefix("0x") {
                    Some(hex) => u64::from_str_radix(hex, 16).ok(),
                    None => v.parse().ok(),
                }
            })
            .unwrap_or(0)
    };
    format!(
        "{:04x}:{:02x}:{:02x}.{}",
        number("domain"),
        number("bus"),
        number("slot"),
        number("function")
    )
}

fn features(list: &[Feature]) -> String {
    // Order in <features> is not visible to the guest; presence and settings are.
    let mut items: Vec<String> = list
        .iter()
        .map(|f| {
            let attrs: Vec<String> = f.attrs.iter().map(|(k, v)| format!(" {k}='{v}'")).collect();
            format!("{}{}", f.name, attrs.concat())
        })
        .collect();
    items.sort();
    if items.is_empty() {
        "none".into()
    } else {
        format!("[{}]", items.join(", "))
    }
}

fn pairs(list: &[(String, String)]) -> String {
    if list.is_empty() {
        return "none".into();
    }
    list.iter()
        .map(|(k, v)| format!("{k}='{v}'"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[derive(Default)]
struct Checker {
    differences: Vec<AbiDifference>,
}

impl Checker {
    fn diff(&mut self, field: impl Into<String>, source: String, target: String) {
        if source != target {
            self.differences.push(AbiDifference {
                field: field.into(),
                source,
                target,
                libvirt: None,
            });
        }
    }

    /// Compares one device class: a count mismatch hides per-device detail,
    /// since pairing devices by position would then be meaningless.
    fn class<T>(
        &mut self,
        class: &str,
        src: &[T],
        dst: &[T],
        each: impl Fn(&mut Self, &str, &T, &T),
    ) {
        if src.len() != dst.len() {
            self.diff(
                format!("{class} count"),
                src.len().to_string(),
                dst.len().to_string(),
            );
            return;
        }
        for (i, (s, d)) in src.iter().zip(dst).enumerate() {
            each(self, &format!("{class} {i}"), s, d);
        }
    }

    fn domain(&mut self, s: &DomainDef, d: &DomainDef) {
        self.diff("domain type", quoted(s.domain_type), quoted(d.domain_type));
        self.diff("domain uuid", s.uuid.to_string(), d.uuid.to_string());
        let kib = |v: u64| format!("{v} KiB");
        self.diff("guest memory", kib(s.memory_kib), kib(d.memory_kib));
        self.diff(
            "current guest memory",
            kib(s.current_memory_kib),
            kib(d.current_memory_kib),
        );
        self.diff(
            "maximum hotplug memory",
            opt(s.max_memory.map(|m| kib(m.kib))),
            opt(d.max_memory.map(|m| kib(m.kib))),
        );
        self.diff(
            "memory hotplug slots",
            opt(s.max_memory.and_then(|m| m.slots)),
            opt(d.max_memory.and_then(|m| m.slots)),
        );
        self.diff("vCPU count", s.vcpus.to_string(), d.vcpus.to_string());
        self.diff(
            "current vCPU count",
            s.vcpu.current.unwrap_or(s.vcpus).to_string(),
            d.vcpu.current.unwrap_or(d.vcpus).to_string(),
        );
        self.diff("OS type", quoted(&s.os.os_type), quoted(&d.os.os_type));
        self.diff("OS arch", opt(s.os.arch.as_ref()), opt(d.os.arch.as_ref()));
        if s.os.machine != d.os.machine {
            let (sm, dm) = (opt(s.os.machine.as_ref()), opt(d.os.machine.as_ref()));
            let plain = |m: &Option<String>| m.clone().unwrap_or_else(|| "(null)".into());
            self.differences.push(AbiDifference {
                field: "machine type".into(),
                libvirt: Some(format!(
                    "Target domain machine type {} does not match source {}",
                    plain(&d.os.machine),
                    plain(&s.os.machine)
                )),
                source: sm,
                target: dm,
            });
        }
        self.diff(
            "firmware",
            opt(s.os.firmware.as_ref()),
            opt(d.os.firmware.as_ref()),
        );
        let fw = |def: &DomainDef| {
            let v: Vec<String> = def
                .os
                .firmware_features
                .iter()
                .map(|f| format!("{}={}", f.name, if f.enabled { "yes" } else { "no" }))
                .collect();
            format!("[{}]", v.join(", "))
        };
        self.diff("firmware features", fw(s), fw(d));
        self.diff("features", features(&s.features), features(&d.features));
        self.cpu(s, d);
        self.clock(s, d);
        let pm = |def: &DomainDef| {
            let p = def.pm.clone().unwrap_or_default();
            format!(
                "suspend-to-mem {} suspend-to-disk {}",
                opt(p.suspend_to_mem),
                opt(p.suspend_to_disk)
            )
        };
        self.diff("power management", pm(s), pm(d));
        self.devices(s, d);
    }

    fn cpu(&mut self, s: &DomainDef, d: &DomainDef) {
        let (sc, dc) = (
            s.cpu.clone().unwrap_or_default(),
            d.cpu.clone().unwrap_or_default(),
        );
        self.diff("CPU mode", opt(sc.mode.as_ref()), opt(dc.mode.as_ref()));
        self.diff(
            "CPU model",
            opt(sc.model.as_ref().map(|m| &m.name)),
            opt(dc.model.as_ref().map(|m| &m.name)),
        );
        self.diff(
            "CPU vendor",
            opt(sc.vendor.as_ref()),
            opt(dc.vendor.as_ref()),
        );
        self.diff("CPU topology", pairs(&sc.topology), pairs(&dc.topology));
        let feats = |c: &Cpu| {
            let mut v: Vec<String> = c
                .features
                .iter()
                .map(|f| format!("{}={}", f.name, f.policy.as_deref().unwrap_or("require")))
                .collect();
            v.sort();
            format!("[{}]", v.join(", "))
        };
        self.diff("CPU features", feats(&sc), feats(&dc));
    }

    fn clock(&mut self, s: &DomainDef, d: &DomainDef) {
        let (sc, dc) = (
            s.clock.clone().unwrap_or_default(),
            d.clock.clone().unwrap_or_default(),
        );
        self.diff(
            "clock offset",
            opt(sc.offset.as_ref()),
            opt(dc.offset.as_ref()),
        );
        self.diff("clock settings", pairs(&sc.attrs), pairs(&dc.attrs));
        let timers = |c: &Clock| {
            let v: Vec<String> = c
                .timers
                .iter()
                .map(|t| format!("{}({})", t.name, pairs(&t.attrs)))
                .collect();
            format!("[{}]", v.join(", "))
        };
        self.diff("clock timers", timers(&sc), timers(&dc));
    }

    fn devices(&mut self, s: &DomainDef, d: &DomainDef) {
        let (s, d) = (&s.devices, &d.devices);
        self.class("disk", &s.disks, &d.disks, Self::disk);
        self.class(
            "controller",
            &s.controllers,
            &d.controllers,
            Self::controller,
        );
        self.class("interface", &s.interfaces, &d.interfaces, Self::interface);
        self.class("serial", &s.serials, &d.serials, Self::chardev);
        self.class("console", &s.consoles, &d.consoles, Self::chardev);
        self.class("channel", &s.channels, &d.channels, Self::chardev);
        self.class("input", &s.inputs, &d.inputs, Self::input);
        self.class("tpm", &s.tpms, &d.tpms, Self::tpm);
        self.class("redirdev", &s.redirdevs, &d.redirdevs, Self::redirdev);
        self.class("sound", &s.sounds, &d.sounds, Self::sound);
        self.class("video", &s.videos, &d.videos, Self::video);
        self.class("watchdog", &s.watchdogs, &d.watchdogs, Self::watchdog);
        self.class("rng", &s.rngs, &d.rngs, Self::rng);
        let balloon = |m: Option<&Memballoon>| quoted(m.map_or("none", |m| m.model.as_str()));
        self.diff(
            "memballoon model",
            balloon(s.memballoon.as_ref()),
            balloon(d.memballoon.as_ref()),
        );
        self.diff(
            "memballoon address",
            address(s.memballoon.as_ref().and_then(|m| m.info.address.as_ref())),
            address(d.memballoon.as_ref().and_then(|m| m.info.address.as_ref())),
        );
    }

    fn addr(&mut self, label: &str, s: Option<&Address>, d: Option<&Address>) {
        if s == d {
            return;
        }
        fn kind(a: Option<&Address>) -> &str {
            a.map_or("none", |a| a.kind.as_str())
        }
        // libvirt's virDomainDeviceInfoCheckABIStability sentences.
        let libvirt = if kind(s) != kind(d) {
            format!(
                "Target device address type {} does not match source {}",
                kind(d),
                kind(s)
            )
        } else if let (Some(s), Some(d), true) = (
            s,
            d,
            kind(s) == "pci" && s.zip(d).is_some_and(|(s, d)| pci_text(s) != pci_text(d)),
        ) {
            // libvirt 9.0's words, without a space before "does".
            format!(
                "Target device PCI address {}does not match source {}",
                pci_text(d),
                pci_text(s)
            )
        } else {
            return self.diff(format!("{label} address"), address(s), address(d));
        };
        self.differences.push(AbiDifference {
            field: format!("{label} address"),
            source: address(s),
            target: address(d),
            libvirt: Some(libvirt),
        });
    }

    fn disk(&mut self, label: &str, s: &Disk, d: &Disk) {
        self.diff(
            format!("{label} device"),
            quoted(s.device),
            quoted(d.device),
        );
        self.diff(
            format!("{label} target dev"),
            quoted(&s.target.dev),
            quoted(&d.target.dev),
        );
        self.diff(
            format!("{label} target bus"),
            opt(s.target.bus.as_ref()),
            opt(d.target.bus.as_ref()),
        );
        self.diff(
            format!("{label} readonly"),
            s.readonly.to_string(),
            d.readonly.to_string(),
        );
        self.diff(
            format!("{label} shareable"),
            s.shareable.to_string(),
            d.shareable.to_string(),
        );
        self.diff(
            format!("{label} serial"),
            opt(s.serial.as_ref()),
            opt(d.serial.as_ref()),
        );
        self.addr(label, s.info.address.as_ref(), d.info.address.as_ref());
    }

    fn controller(&mut self, label: &str, s: &Controller, d: &Controller) {
        self.diff(format!("{label} type"), quoted(&s.kind), quoted(&d.kind));
        self.diff(format!("{label} index"), opt(s.index), opt(d.index));
        self.diff(
            format!("{label} model"),
            opt(s.model.as_ref()),
            opt(d.model.as_ref()),
        );
        self.diff(format!("{label} ports"), opt(s.ports), opt(d.ports));
        self.diff(format!("{label} vectors"), opt(s.vectors), opt(d.vectors));
        self.diff(
            format!("{label} target"),
            pairs(&s.target),
            pairs(&d.target),
        );
        self.addr(label, s.info.address.as_ref(), d.info.address.as_ref());
    }

    fn interface(&mut self, label: &str, s: &Interface, d: &Interface) {
        self.diff(
            format!("{label} model"),
            opt(s.model.as_ref()),
            opt(d.model.as_ref()),
        );
        self.diff(
            format!("{label} MAC"),
            opt(s.mac.as_ref()),
            opt(d.mac.as_ref()),
        );
        self.diff(format!("{label} MTU"), opt(s.mtu), opt(d.mtu));
        self.addr(label, s.info.address.as_ref(), d.info.address.as_ref());
    }

    fn chardev(&mut self, label: &str, s: &CharDevice, d: &CharDevice) {
        let target = |c: &CharDevice| {
            let t = c.target.clone().unwrap_or_default();
            format!(
                "type {} port {} name {} model {}",
                opt(t.kind),
                opt(t.port),
                opt(t.name),
                opt(t.model)
            )
        };
        self.diff(format!("{label} target"), target(s), target(d));
        self.addr(label, s.info.address.as_ref(), d.info.address.as_ref());
    }

    fn input(&mut self, label: &str, s: &Input, d: &Input) {
        self.diff(format!("{label} type"), quoted(&s.kind), quoted(&d.kind));
        self.diff(
            format!("{label} bus"),
            opt(s.bus.as_ref()),
            opt(d.bus.as_ref()),
        );
        self.addr(label, s.info.address.as_ref(), d.info.address.as_ref());
    }

    fn tpm(&mut self, label: &str, s: &Tpm, d: &Tpm) {
        self.diff(
            format!("{label} model"),
            opt(s.model.as_ref()),
            opt(d.model.as_ref()),
        );
        self.diff(
            format!("{label} version"),
            opt(s.version.as_ref()),
            opt(d.version.as_ref()),
        );
        self.addr(label, s.info.address.as_ref(), d.info.address.as_ref());
    }

    fn redirdev(&mut self, label: &str, s: &Redirdev, d: &Redirdev) {
        self.diff(format!("{label} bus"), quoted(&s.bus), quoted(&d.bus));
        self.addr(label, s.info.address.as_ref(), d.info.address.as_ref());
    }

    fn sound(&mut self, label: &str, s: &Sound, d: &Sound) {
        self.diff(format!("{label} model"), quoted(&s.model), quoted(&d.model));
        self.addr(label, s.info.address.as_ref(), d.info.address.as_ref());
    }

    fn video(&mut self, label: &str, s: &Video, d: &Video) {
        let (sm, dm) = (s.model.as_ref(), d.model.as_ref());
        self.diff(
            format!("{label} model"),
            opt(sm.map(|m| &m.kind)),
            opt(dm.map(|m| &m.kind)),
        );
        self.diff(
            format!("{label} vram"),
            opt(sm.and_then(|m| m.vram)),
            opt(dm.and_then(|m| m.vram)),
        );
        self.diff(
            format!("{label} ram"),
            opt(sm.and_then(|m| m.ram)),
            opt(dm.and_then(|m| m.ram)),
        );
        self.diff(
            format!("{label} vgamem"),
            opt(sm.and_then(|m| m.vgamem)),
            opt(dm.and_then(|m| m.vgamem)),
        );
        self.diff(
            format!("{label} heads"),
            opt(sm.and_then(|m| m.heads)),
            opt(dm.and_then(|m| m.heads)),
        );
        self.diff(
            format!("{label} primary"),
            opt(sm.and_then(|m| m.primary)),
            opt(dm.and_then(|m| m.primary)),
        );
        self.addr(label, s.info.address.as_ref(), d.info.address.as_ref());
    }

    fn watchdog(&mut self, label: &str, s: &Watchdog, d: &Watchdog) {
        self.diff(format!("{label} model"), quoted(&s.model), quoted(&d.model));
        self.addr(label, s.info.address.as_ref(), d.info.address.as_ref());
    }

    fn rng(&mut self, label: &str, s: &Rng, d: &Rng) {
        self.diff(format!("{label} model"), quoted(&s.model), quoted(&d.model));
        self.diff(format!("{label} rate"), pairs(&s.rate), pairs(&d.rate));
        self.addr(label, s.info.address.as_ref(), d.info.address.as_ref());
    }
}
