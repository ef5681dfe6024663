//! `virsh domcapabilities` (CONNECT_GET_DOMAIN_CAPABILITIES): what a domain
//! of a given emulator, architecture, machine type and domain type may use
//! with this driver.
//!
//! The emulator's facts (machine types with their aliases and vCPU limits,
//! named CPU models and whether the accelerator can run them) come from
//! QEMU itself: `-machine none -qmp stdio` on one end of a socket pair, the
//! driver's [`Qmp`] client on the other asking `query-machines` and
//! `query-cpu-definitions`; about 40 ms, cached per emulator binary and
//! accelerator. The device and feature lists are what this driver's command
//! line builder (`spec`) accepts, not everything QEMU could do: a client
//! that builds a domain from this document gets one the driver will start.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use migrated_core::domain::DomainCapsQuery;
use migrated_core::{Error, Result};
use tokio::io::AsyncReadExt;

use super::host::xml_escape;
use crate::command::{find_emulator, Accel, DEFAULT_MACHINE};
use crate::qmp::commands::{
    CpuDefinition as CpuModel, MachineInfo as Machine, QueryCpuDefinitions, QueryMachines, Quit,
};
use crate::qmp::{Qmp, QmpConfig};

/// `VIR_CONNECT_GET_DOMAIN_CAPABILITIES_DISABLE_DEPRECATED_FEATURES`: this
/// document lists no deprecated CPU features, so it changes nothing.
const DISABLE_DEPRECATED_FEATURES: u32 = 1;

/// How long the probe QEMU may take before it is killed.
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// The most of the probe QEMU's stderr kept for an error message.
const PROBE_STDERR_MAX: u64 = 64 << 10;

/// What one emulator binary says about itself under one accelerator.
#[derive(Debug)]
struct Probe {
    machines: Vec<Machine>,
    cpu_models: Vec<CpuModel>,
}

impl Probe {
    /// The machine `name` names, directly or as an alias; the emulator's
    /// default for `None`.
    fn machine(&self, name: Option<&str>) -> Option<&Machine> {
        match name {
            Some(name) => self
                .machines
                .iter()
                .find(|m| m.name == name || m.alias.as_deref() == Some(name)),
            None => self.machines.iter().find(|m| m.is_default),
        }
    }
}

/// Probes are cached per (binary, its modification time, accelerator): a
/// package upgrade replaces the binary and so the entry.
type ProbeKey = (PathBuf, Option<SystemTime>, Accel);

fn probe_cache() -> &'static Mutex<HashMap<ProbeKey, Arc<Probe>>> {
    static CACHE: OnceLock<Mutex<HashMap<ProbeKey, Arc<Probe>>>> = OnceLock::new();
    CACHE.get_or_init(Mutex::default)
}

/// The `domainCapabilities` document for `query`.
///
/// # Errors
/// libvirt's for the same questions: a missing emulator binary
/// (`VIR_ERR_SYSTEM_ERROR`), an architecture it does not serve
/// (`VIR_ERR_CONFIG_UNSUPPORTED`), an unknown domain type or machine, or
/// `kvm` on a host without a usable `/dev/kvm` (`VIR_ERR_INVALID_ARG`);
/// a probe QEMU that fails (`VIR_ERR_INTERNAL_ERROR`).
pub(super) async fn domain_capabilities(query: &DomainCapsQuery, flags: u32) -> Result<String> {
    const OPERATION: &str = "virConnectGetDomainCapabilities";
    migrated_core::flags::check_flags(
        OPERATION,
        u64::from(flags),
        u64::from(DISABLE_DEPRECATED_FEATURES),
    )?;
    let emulator = match query.emulator.as_deref() {
        Some(path) => {
            let path = Path::new(path);
            std::fs::metadata(path).map_err(|source| {
                Error::system(format!("check of QEMU binary {}", path.display()), source)
            })?;
            find_emulator(Some(path)).map_err(Error::from)?
        }
        None => find_emulator(None).map_err(Error::from)?,
    };
    let arch = query.arch.as_deref().unwrap_or("x86_64");
    if arch != "x86_64" && arch != "i686" {
        return Err(Error::ConfigUnsupported {
            reason: format!("unable to find any emulator to serve '{arch}' architecture"),
        });
    }
    let kvm_usable = Accel::detect() == Accel::Kvm;
    let accel = match query.virttype.as_deref() {
        None if kvm_usable => Accel::Kvm,
        None | Some("qemu") => Accel::Tcg,
        Some("kvm") if kvm_usable => Accel::Kvm,
        Some("kvm") => {
            return Err(invalid(format!(
                "KVM is not supported by '{}' on this host",
                emulator.display()
            )))
        }
        Some(other) if KNOWN_VIRT_TYPES.contains(&other) => {
            return Err(invalid(format!(
                "Emulator '{}' does not support virt type '{other}'",
                emulator.display()
            )))
        }
        Some(other) => return Err(invalid(format!("unknown virttype: {other}"))),
    };
    let probe = cached_probe(&emulator, accel).await?;
    let wanted = query.machine.as_deref().or(Some(DEFAULT_MACHINE));
    let machine = probe.machine(wanted).ok_or_else(|| {
        invalid(format!(
            "the machine '{}' is not supported by emulator '{}'",
            wanted.unwrap_or_default(),
            emulator.display()
        ))
    })?;
    Ok(render(&emulator, accel, arch, machine, &probe.cpu_models))
}

/// The canonical name of machine type `machine` (`None`: the emulator's
/// default) as `emulator` lists it: an alias (`pc`, `q35`) becomes the
/// versioned type it stands for (`pc-i440fx-7.2`), which libvirt pins in
/// the definition so that the guest keeps its hardware across QEMU
/// upgrades and migrations. `Ok(None)` when the emulator cannot be asked
/// (not a QEMU that answers the probe): the name then stays as written,
/// for QEMU to judge at start.
///
/// # Errors
/// [`crate::error::Error::UnknownMachine`] when the emulator answers and
/// does not know the machine (libvirt's refusal at define).
pub(super) async fn canonical_machine(
    emulator: &Path,
    machine: Option<&str>,
) -> crate::error::Result<Option<String>> {
    let probe = match cached_probe(emulator, Accel::Tcg).await {
        Ok(probe) => probe,
        Err(e) => {
            tracing::warn!(emulator = %emulator.display(), error = %e, "cannot list the emulator's machine types");
            return Ok(None);
        }
    };
    let wanted = machine.or(Some(DEFAULT_MACHINE));
    match probe.machine(wanted) {
        Some(m) => Ok(Some(m.name.clone())),
        None => Err(crate::error::Error::UnknownMachine {
            emulator: emulator.to_owned(),
            machine: wanted.unwrap_or_default().to_owned(),
        }),
    }
}

/// libvirt's domain types (`virDomainVirtType`): a known one the QEMU
/// emulator cannot run gets a different error than a misspelt one.
const KNOWN_VIRT_TYPES: &[&str] = &[
    "none",
    "qemu",
    "kqemu",
    "kvm",
    "xen",
    "lxc",
    "uml",
    "openvz",
    "test",
    "vmware",
    "hyperv",
    "vbox",
    "phyp",
    "parallels",
    "bhyve",
    "vz",
    "hvf",
];

fn invalid(reason: String) -> Error {
    Error::InvalidArg {
        operation: "virConnectGetDomainCapabilities",
        reason,
    }
}

async fn cached_probe(emulator: &Path, accel: Accel) -> Result<Arc<Probe>> {
    let modified = std::fs::metadata(emulator).and_then(|m| m.modified()).ok();
    let key = (emulator.to_owned(), modified, accel);
    if let Some(probe) = lock(probe_cache()).get(&key) {
        return Ok(probe.clone());
    }
    // Two first queries may both probe; the second insert wins, harmlessly.
    let probe = Arc::new(run_probe(emulator, accel).await?);
    lock(probe_cache()).insert(key, probe.clone());
    Ok(probe)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs `EMULATOR -machine none -qmp stdio` with its standard input and
/// output on one end of a socket pair and asks it over the other with the
/// driver's [`Qmp`] client (greeting, negotiation, bounded lines and
/// timeouts as for any guest). QEMU stays this process's child and is
/// killed if it outlives [`PROBE_TIMEOUT`].
async fn run_probe(emulator: &Path, accel: Accel) -> Result<Probe> {
    let failed = |reason: String| Error::Internal {
        reason: format!("cannot probe {}: {reason}", emulator.display()),
    };
    let (ours, theirs) =
        std::os::unix::net::UnixStream::pair().map_err(|e| failed(e.to_string()))?;
    let theirs_out = theirs.try_clone().map_err(|e| failed(e.to_string()))?;
    ours.set_nonblocking(true)
        .map_err(|e| failed(e.to_string()))?;
    let ours = tokio::net::UnixStream::from_std(ours).map_err(|e| failed(e.to_string()))?;
    let mut child = tokio::process::Command::new(emulator)
        .args(["-machine", "none", "-accel", accel.as_str()])
        .args(["-nodefaults", "-no-user-config", "-display", "none"])
        .args(["-qmp", "stdio"])
        .stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
        .stdout(Stdio::from(std::os::fd::OwnedFd::from(theirs_out)))
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| failed(e.to_string()))?;
    let stderr = child.stderr.take();
    let config = QmpConfig {
        connect_timeout: PROBE_TIMEOUT,
        command_timeout: PROBE_TIMEOUT,
        ..QmpConfig::default()
    };
    let asked = async {
        let qmp = Qmp::handshake(ours, config).await?;
        let machines = qmp.execute(&QueryMachines).await?;
        let cpu_models = qmp.execute(&QueryCpuDefinitions).await?;
        // QEMU exits on quit; its reply may or may not come first.
        let _ = qmp.execute(&Quit).await;
        Ok::<_, crate::error::Error>(Probe {
            machines,
            cpu_models,
        })
    }
    .await;
    match asked {
        Ok(probe) if !probe.machines.is_empty() => {
            let _ = tokio::time::timeout(PROBE_TIMEOUT, child.wait()).await;
            Ok(probe)
        }
        Ok(_) => Err(failed("QEMU lists no machine types".into())),
        Err(e) => {
            // QEMU's own words, if it said any, explain more than the monitor's.
            let _ = child.start_kill();
            let mut text = Vec::new();
            if let Some(stderr) = stderr {
                let _ = tokio::time::timeout(
                    PROBE_TIMEOUT,
                    stderr.take(PROBE_STDERR_MAX).read_to_end(&mut text),
                )
                .await;
            }
            let text = String::from_utf8_lossy(&text);
            match text.trim() {
                "" => Err(failed(e.to_string())),
                said => Err(failed(format!("{e}: {said}"))),
            }
        }
    }
}

/// The document, in the order and shape of libvirt's
/// `virDomainCapsFormat`.
fn render(
    emulator: &Path,
    accel: Accel,
    arch: &str,
    machine: &Machine,
    cpu_models: &[CpuModel],
) -> String {
    let kvm = accel == Accel::Kvm;
    let mut x = String::with_capacity(4096);
    x.push_str("<domainCapabilities>\n");
    let _ = writeln!(
        x,
        "  <path>{}</path>",
        xml_escape(&emulator.to_string_lossy())
    );
    let _ = writeln!(x, "  <domain>{}</domain>", if kvm { "kvm" } else { "qemu" });
    let _ = writeln!(x, "  <machine>{}</machine>", xml_escape(&machine.name));
    let _ = writeln!(x, "  <arch>{}</arch>", xml_escape(arch));
    let _ = writeln!(x, "  <vcpu max='{}'/>", machine.cpu_max);
    x.push_str("  <iothreads supported='no'/>\n");
    // Direct kernel boot or the machine's own firmware; no <loader>/<nvram>.
    x.push_str("  <os supported='yes'>\n    <enum name='firmware'/>\n    <loader supported='no'/>\n  </os>\n");
    x.push_str("  <cpu>\n");
    // TCG has no host CPU: the driver runs host-passthrough as "max" there,
    // which is not a pass-through, so it is offered only with KVM.
    let _ = writeln!(
        x,
        "    <mode name='host-passthrough' supported='{}'/>",
        yes_no(kvm)
    );
    x.push_str("    <mode name='maximum' supported='no'/>\n");
    x.push_str("    <mode name='host-model' supported='yes'/>\n");
    x.push_str("    <mode name='custom' supported='yes'>\n");
    for model in cpu_models
        .iter()
        .filter(|m| !matches!(m.name.as_str(), "host" | "max" | "base"))
    {
        let usable = match &model.unavailable_features {
            Some(missing) => yes_no(missing.is_empty()),
            None => "unknown",
        };
        let deprecated = if model.deprecated {
            " deprecated='yes'"
        } else {
            ""
        };
        let _ = writeln!(
            x,
            "      <model usable='{usable}'{deprecated}>{}</model>",
            xml_escape(&model.name)
        );
    }
    x.push_str("    </mode>\n  </cpu>\n");
    x.push_str("  <memoryBacking supported='no'/>\n");
    x.push_str("  <devices>\n");
    device(
        &mut x,
        "disk",
        &[
            ("diskDevice", &["disk"]),
            ("bus", &["ide", "virtio", "sata"]),
            ("model", &[]),
        ],
    );
    device(&mut x, "graphics", &[("type", &["vnc", "spice"])]);
    device(
        &mut x,
        "video",
        &[(
            "modelType",
            &["vga", "cirrus", "vmvga", "qxl", "virtio", "none", "bochs"],
        )],
    );
    x.push_str("    <hostdev supported='no'/>\n");
    device(
        &mut x,
        "rng",
        &[
            ("model", &["virtio"]),
            ("backendModel", &["random", "builtin"]),
        ],
    );
    x.push_str("    <filesystem supported='no'/>\n");
    x.push_str("    <tpm supported='no'/>\n");
    x.push_str("    <redirdev supported='no'/>\n");
    device(&mut x, "channel", &[("type", &["unix", "spicevmc"])]);
    x.push_str("  </devices>\n");
    x.push_str("  <features>\n");
    for feature in [
        "gic",
        "vmcoreinfo",
        "genid",
        "backingStoreInput",
        "backup",
        "sev",
        "sgx",
    ] {
        let _ = writeln!(x, "    <{feature} supported='no'/>");
    }
    x.push_str("  </features>\n</domainCapabilities>\n");
    x
}

/// `<NAME supported='yes'>` with one `<enum>` per (name, values).
fn device(x: &mut String, name: &str, enums: &[(&str, &[&str])]) {
    let _ = writeln!(x, "    <{name} supported='yes'>");
    for (enum_name, values) in enums {
        if values.is_empty() {
            let _ = writeln!(x, "      <enum name='{enum_name}'/>");
            continue;
        }
        let _ = writeln!(x, "      <enum name='{enum_name}'>");
        for value in *values {
            let _ = writeln!(x, "        <value>{value}</value>");
        }
        x.push_str("      </enum>\n");
    }
    let _ = writeln!(x, "    </{name}>");
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// QEMU 7.2's answers to the probe's two queries, cut down.
    fn probe() -> Probe {
        let machines = r#"[{"name": "pc-q35-7.2", "cpu-max": 288, "alias": "q35", "deprecated": false},
            {"name": "pc-i440fx-7.2", "cpu-max": 255, "alias": "pc", "is-default": true},
            {"name": "isapc", "cpu-max": 1}]"#;
        let cpu_models = r#"[{"name": "max", "unavailable-features": [], "static": false},
            {"name": "EPYC", "unavailable-features": ["sha-ni"], "static": false},
            {"name": "qemu64", "unavailable-features": [], "static": false, "deprecated": false},
            {"name": "486", "static": false, "deprecated": true}]"#;
        Probe {
            machines: serde_json::from_str(machines).expect("query-machines reply"),
            cpu_models: serde_json::from_str(cpu_models).expect("query-cpu-definitions reply"),
        }
    }

    #[test]
    fn the_probe_gives_machines_by_name_alias_and_default() {
        let probe = probe();
        assert_eq!(
            probe.machine(Some("pc")).map(|m| m.name.as_str()),
            Some("pc-i440fx-7.2")
        );
        assert_eq!(
            probe.machine(Some("pc-q35-7.2")).map(|m| m.cpu_max),
            Some(288)
        );
        assert_eq!(
            probe.machine(None).map(|m| m.name.as_str()),
            Some("pc-i440fx-7.2")
        );
        assert!(probe.machine(Some("nosuch")).is_none());
        assert_eq!(probe.cpu_models.len(), 4);
    }

    #[test]
    fn the_document_lists_what_the_driver_runs() {
        let probe = probe();
        let machine = probe.machine(Some("q35")).expect("q35");
        let tcg = render(
            Path::new("/usr/bin/qemu-system-x86_64"),
            Accel::Tcg,
            "x86_64",
            machine,
            &probe.cpu_models,
        );
        assert!(tcg.starts_with("<domainCapabilities>\n  <path>/usr/bin/qemu-system-x86_64</path>\n  <domain>qemu</domain>\n  <machine>pc-q35-7.2</machine>\n  <arch>x86_64</arch>\n  <vcpu max='288'/>\n"), "{tcg}");
        assert!(
            tcg.contains("<mode name='host-passthrough' supported='no'/>"),
            "{tcg}"
        );
        assert!(tcg.contains("<model usable='no'>EPYC</model>"), "{tcg}");
        assert!(tcg.contains("<model usable='yes'>qemu64</model>"), "{tcg}");
        assert!(
            tcg.contains("<model usable='unknown' deprecated='yes'>486</model>"),
            "{tcg}"
        );
        assert!(!tcg.contains(">max<"), "{tcg}");
        assert!(
            tcg.contains("<enum name='diskDevice'>\n        <value>disk</value>\n      </enum>"),
            "{tcg}"
        );
        let kvm = render(Path::new("/q"), Accel::Kvm, "x86_64", machine, &[]);
        assert!(kvm.contains("<domain>kvm</domain>"), "{kvm}");
        assert!(
            kvm.contains("<mode name='host-passthrough' supported='yes'/>"),
            "{kvm}"
        );
    }
}
