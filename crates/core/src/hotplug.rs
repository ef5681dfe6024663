//! Device hot-plug on domain definitions: what `virsh attach-device`,
//! `detach-device` and `update-device` do to a persistent config (and what
//! a driver without a hypervisor does to its live definition), with the
//! rules and words of libvirt's `qemuDomainAttachDeviceConfig`,
//! `qemuDomainDetachDeviceConfig` and `qemuDomainUpdateDeviceConfig`
//! (src/qemu/qemu_driver.c) and `virDomainNetFindIdx` (src/conf).
//!
//! Drivers that change a running hypervisor use the lookups here
//! ([`disk_index`], [`interface_index`]) so both definitions match a
//! device the same way.

use crate::error::{Error, Result};
use crate::xml::{DeviceDef, DeviceInfo, Disk, DomainDef, Interface};

/// What a hot-plug call does with its device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Add it (`virDomainAttachDeviceFlags`).
    Attach,
    /// Remove the device it names (`virDomainDetachDeviceFlags`).
    Detach,
    /// Replace the device it names with it (`virDomainUpdateDeviceFlags`).
    Update,
}

impl Change {
    /// The libvirt API (for flag errors).
    pub fn api(self) -> &'static str {
        match self {
            Change::Attach => "virDomainAttachDeviceFlags",
            Change::Detach => "virDomainDetachDeviceFlags",
            Change::Update => "virDomainUpdateDeviceFlags",
        }
    }

    /// libvirt's dispatcher of the call (named in job-lock errors).
    pub fn dispatcher(self) -> &'static str {
        match self {
            Change::Attach => "remoteDispatchDomainAttachDeviceFlags",
            Change::Detach => "remoteDispatchDomainDetachDeviceFlags",
            Change::Update => "remoteDispatchDomainUpdateDeviceFlags",
        }
    }

    /// The verb libvirt's messages use.
    fn verb(self) -> &'static str {
        match self {
            Change::Attach => "attach",
            Change::Detach => "detach",
            Change::Update => "update",
        }
    }

    /// The flags the API accepts: `VIR_DOMAIN_AFFECT_*`, and for an update
    /// `VIR_DOMAIN_DEVICE_MODIFY_FORCE`.
    pub fn allowed_flags(self) -> u32 {
        let affect = crate::flags::affect::LIVE | crate::flags::affect::CONFIG;
        match self {
            Change::Attach | Change::Detach => affect,
            Change::Update => affect | MODIFY_FORCE,
        }
    }

    /// The device XML as the change reads it: an attached interface
    /// without a MAC gets one ([`parse_for_attach`]).
    ///
    /// # Errors
    /// [`Error::Xml`].
    pub fn parse(self, xml: &str) -> Result<DeviceDef> {
        match self {
            Change::Attach => parse_for_attach(xml),
            Change::Detach | Change::Update => Ok(DeviceDef::parse(xml)?),
        }
    }

    /// Applies the change to the definition `def` (the running guest's or
    /// the config, as `target` says) with the config rules ([`attach`],
    /// [`detach`], [`update`]); returns the removed device of a detach.
    ///
    /// # Errors
    /// Theirs; [`unsupported`] (naming `target`) for a device kind other
    /// than disk and interface.
    pub fn apply(
        self,
        target: Target,
        def: &mut DomainDef,
        dev: &DeviceDef,
    ) -> Result<Option<DeviceDef>> {
        if let DeviceDef::Other(_) = dev {
            return Err(unsupported(target, self.verb(), dev));
        }
        match self {
            Change::Attach => attach(def, dev).map(|()| None),
            Change::Detach => detach(def, dev).map(Some),
            Change::Update => update(def, dev).map(|()| None),
        }
    }
}

/// `VIR_DOMAIN_DEVICE_MODIFY_FORCE`: force a CD-ROM eject.
pub const MODIFY_FORCE: u32 = 1 << 2;

/// The alias a hot-plugged device gets when its XML names none: a disk its
/// target (`vdb`, the QEMU driver's device id), an interface the first
/// `nicN` no interface of `def` has.
pub fn assign_alias(def: &DomainDef, dev: &mut DeviceDef) {
    match dev {
        DeviceDef::Disk(disk) => {
            if disk.info.alias.is_none() {
                disk.info.alias = Some(disk.target.dev.clone());
            }
        }
        DeviceDef::Interface(iface) => {
            if iface.info.alias.is_none() {
                let taken = |name: &str| {
                    def.devices
                        .interfaces
                        .iter()
                        .any(|i| i.info.alias.as_deref() == Some(name))
                };
                let free = (def.devices.interfaces.len()..)
                    .map(|n| format!("nic{n}"))
                    .find(|name| !taken(name));
                iface.info.alias = free;
            }
        }
        DeviceDef::Other(_) => {}
    }
}

/// Which definition a change applies to, for libvirt's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The running guest ("live attach of device …").
    Live,
    /// The persistent config ("persistent attach of device …").
    Config,
}

impl Target {
    fn word(self) -> &'static str {
        match self {
            Target::Live => "live",
            Target::Config => "persistent",
        }
    }
}

/// libvirt's refusal of a device kind the driver cannot `verb` (attach,
/// detach, update) in `target` (`VIR_ERR_OPERATION_UNSUPPORTED`).
pub fn unsupported(target: Target, verb: &str, dev: &DeviceDef) -> Error {
    Error::OperationUnsupported {
        reason: format!(
            "{} {verb} of device '{}' is not supported",
            target.word(),
            dev.type_name()
        ),
    }
}

/// Parses a device document and gives an `<interface>` without a MAC one
/// in QEMU's `52:54:00` range, as libvirt's parser does.
///
/// # Errors
/// [`Error::Xml`] for a document that does not parse.
pub fn parse_for_attach(xml: &str) -> Result<DeviceDef> {
    let mut dev = DeviceDef::parse(xml)?;
    if let DeviceDef::Interface(iface) = &mut dev {
        if iface.mac.is_none() {
            iface.mac = Some(generate_mac());
        }
    }
    Ok(dev)
}

/// A random MAC address in QEMU's `52:54:00` prefix.
pub fn generate_mac() -> String {
    let bytes = uuid::Uuid::new_v4();
    let b = bytes.as_bytes();
    format!("52:54:00:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2])
}

/// The index of the disk whose target (or source path) is `name`.
pub fn disk_index(def: &DomainDef, name: &str) -> Option<usize> {
    let disks = &def.devices.disks;
    disks.iter().position(|d| d.target.dev == name).or_else(|| {
        disks
            .iter()
            .position(|d| d.source.as_ref().is_some_and(|s| s.path == name))
    })
}

/// The index of the interface `wanted` names, as `virDomainNetFindIdx`: by
/// MAC when it has one, by alias when it has one, else the only interface.
///
/// # Errors
/// [`Error::DeviceMissing`] when none matches, [`Error::DeviceFailed`]
/// when several do.
pub fn interface_index(def: &DomainDef, wanted: &Interface) -> Result<usize> {
    let mac = wanted.mac.as_deref();
    let alias = wanted.info.alias.as_deref();
    let mut found = None;
    for (i, iface) in def.devices.interfaces.iter().enumerate() {
        if mac.is_some_and(|m| iface.mac.as_deref() != Some(m))
            || alias.is_some_and(|a| iface.info.alias.as_deref() != Some(a))
        {
            continue;
        }
        if found.is_some() {
            return Err(Error::DeviceFailed {
                reason: match mac {
                    Some(m) => format!("multiple devices matching MAC address {m} found"),
                    None => "multiple matching devices found".into(),
                },
            });
        }
        found = Some(i);
    }
    found.ok_or_else(|| Error::DeviceMissing {
        reason: match mac {
            Some(m) => format!("no device matching MAC address {m} found"),
            None => "no matching device found".into(),
        },
    })
}

/// libvirt's refusal of a disk whose target a disk of `def` has already
/// (`virDomainDefCheckDuplicateDiskInfo`), for a live attach.
///
/// # Errors
/// [`Error::DuplicateDiskTarget`] naming both disks' sources.
pub fn check_new_disk_target(def: &DomainDef, disk: &Disk) -> Result<()> {
    let source = |d: &Disk| {
        d.source
            .as_ref()
            .map_or_else(|| "(null)".to_owned(), |s| s.path.clone())
    };
    match def
        .devices
        .disks
        .iter()
        .find(|d| d.target.dev == disk.target.dev)
    {
        Some(existing) => Err(Error::DuplicateDiskTarget {
            target: disk.target.dev.clone(),
            existing: source(existing),
            added: source(disk),
        }),
        None => Ok(()),
    }
}

/// Adds `dev` to the persistent config `def`.
///
/// # Errors
/// [`Error::OperationInvalid`] "target … already exists" for a disk whose
/// target `def` has; [`unsupported`] for other device kinds.
pub fn attach(def: &mut DomainDef, dev: &DeviceDef) -> Result<()> {
    match dev {
        DeviceDef::Disk(disk) => {
            if def
                .devices
                .disks
                .iter()
                .any(|d| d.target.dev == disk.target.dev)
            {
                return Err(Error::invalid(format!(
                    "target {} already exists",
                    disk.target.dev
                )));
            }
            def.devices.disks.push(disk.clone());
        }
        DeviceDef::Interface(iface) => def.devices.interfaces.push(iface.clone()),
        DeviceDef::Other(_) => return Err(unsupported(Target::Config, "attach", dev)),
    }
    Ok(())
}

/// Removes the device `dev` names from the persistent config `def`;
/// returns what was removed.
///
/// # Errors
/// [`Error::DeviceMissing`] "no target device …" for a disk `def` lacks;
/// those of [`interface_index`]; [`unsupported`] for other device kinds.
pub fn detach(def: &mut DomainDef, dev: &DeviceDef) -> Result<DeviceDef> {
    match dev {
        DeviceDef::Disk(disk) => {
            let i = disk_index(def, &disk.target.dev).ok_or_else(|| Error::DeviceMissing {
                reason: format!("no target device {}", disk.target.dev),
            })?;
            Ok(DeviceDef::Disk(def.devices.disks.remove(i)))
        }
        DeviceDef::Interface(iface) => {
            let i = interface_index(def, iface)?;
            Ok(DeviceDef::Interface(def.devices.interfaces.remove(i)))
        }
        DeviceDef::Other(_) => Err(unsupported(Target::Config, "detach", dev)),
    }
}

/// Replaces, in the persistent config `def`, the device `dev` names with
/// `dev`; the guest-visible address and the alias stay when `dev` gives none.
///
/// # Errors
/// [`Error::InvalidArg`] "target … doesn't exist." for a disk `def` lacks;
/// those of [`interface_index`]; [`unsupported`] for other device kinds.
pub fn update(def: &mut DomainDef, dev: &DeviceDef) -> Result<()> {
    match dev {
        DeviceDef::Disk(disk) => {
            let i = disk_index(def, &disk.target.dev).ok_or_else(|| Error::InvalidArg {
                operation: "virDomainUpdateDeviceFlags",
                reason: format!("target {} doesn't exist.", disk.target.dev),
            })?;
            let old = &mut def.devices.disks[i];
            let mut new = disk.clone();
            keep_info(&mut new.info, &mut old.info);
            *old = new;
        }
        DeviceDef::Interface(iface) => {
            let i = interface_index(def, iface)?;
            let old = &mut def.devices.interfaces[i];
            let mut new = iface.clone();
            keep_info(&mut new.info, &mut old.info);
            *old = new;
        }
        DeviceDef::Other(_) => return Err(unsupported(Target::Config, "update", dev)),
    }
    Ok(())
}

/// What an updated device keeps of the one it replaces.
fn keep_info(new: &mut DeviceInfo, old: &mut DeviceInfo) {
    if new.address.is_none() {
        new.address = old.address.take();
    }
    if new.alias.is_none() {
        new.alias = old.alias.take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    fn def() -> DomainDef {
        DomainDef::parse(
            "<domain type='qemu'><name>g</name><memory>65536</memory><os><type>hvm</type></os>\
             <devices><disk type='file' device='disk'><source file='/a.img'/>\
             <target dev='vda' bus='virtio'/></disk>\
             <interface type='user'><mac address='52:54:00:00:00:01'/></interface>\
             </devices></domain>",
        )
        .expect("domain")
    }

    fn dev(xml: &str) -> DeviceDef {
        parse_for_attach(xml).expect("device")
    }

    #[test]
    fn a_disk_attaches_once_per_target_and_detaches_by_target_or_path() {
        let mut d = def();
        let vdb = dev("<disk type='file'><source file='/b.img'/><target dev='vdb'/></disk>");
        attach(&mut d, &vdb).expect("attach");
        let again = attach(&mut d, &vdb).expect_err("duplicate target");
        assert_eq!(again.code(), ErrorCode::OperationInvalid);
        assert!(again.to_string().ends_with("target vdb already exists"));
        let by_path = dev("<disk type='file'><source file='/b.img'/><target dev='/b.img'/></disk>");
        assert!(matches!(detach(&mut d, &by_path), Ok(DeviceDef::Disk(_))));
        let missing = detach(&mut d, &vdb).expect_err("gone");
        assert_eq!(missing.code(), ErrorCode::DeviceMissing);
        assert_eq!(
            missing.to_string(),
            "device not found: no target device vdb"
        );
    }

    #[test]
    fn interfaces_get_a_mac_and_are_found_by_it() {
        let mut d = def();
        let nic = dev("<interface type='user'><model type='virtio'/></interface>");
        let DeviceDef::Interface(i) = &nic else {
            panic!("not an interface")
        };
        assert!(i.mac.as_deref().is_some_and(|m| m.starts_with("52:54:00:")));
        attach(&mut d, &nic).expect("attach");
        assert_eq!(d.devices.interfaces.len(), 2);
        let any = DeviceDef::parse("<interface type='user'/>").expect("parse");
        let several = detach(&mut d, &any).expect_err("two match");
        assert_eq!(several.code(), ErrorCode::OperationFailed);
        let other = dev("<interface type='user'><mac address='52:54:00:00:00:09'/></interface>");
        let missing = detach(&mut d, &other).expect_err("no such mac");
        assert_eq!(missing.code(), ErrorCode::DeviceMissing);
        assert!(matches!(detach(&mut d, &nic), Ok(DeviceDef::Interface(_))));
    }

    #[test]
    fn update_keeps_the_address_and_other_kinds_are_refused() {
        let mut d = def();
        d.devices.disks[0].info.address = DomainDef::parse(
            "<domain type='qemu'><name>h</name><memory>1</memory><os><type>hvm</type></os>\
             <devices><disk type='file'><source file='/x'/><target dev='vda'/>\
             <address type='pci' domain='0' bus='0' slot='7' function='0'/></disk></devices></domain>",
        )
        .expect("domain")
        .devices
        .disks[0]
            .info
            .address
            .clone();
        let new = dev("<disk type='file'><source file='/c.img'/><target dev='vda'/></disk>");
        update(&mut d, &new).expect("update");
        assert!(d.devices.disks[0].info.address.is_some());
        let none = dev("<disk type='file'><source file='/c.img'/><target dev='vdz'/></disk>");
        assert_eq!(
            update(&mut d, &none).expect_err("missing").code(),
            ErrorCode::InvalidArg
        );
        let video = dev("<video><model type='vga'/></video>");
        let refused = attach(&mut d, &video).expect_err("video");
        assert_eq!(refused.code(), ErrorCode::OperationUnsupported);
        assert_eq!(
            refused.to_string(),
            "Operation not supported: persistent attach of device 'video' is not supported"
        );
    }
}
