//! The checks and defaults every driver applies to a snapshot request
//! before it touches a disk: flag rules of the create / revert / undefine
//! calls, the snapshot state of a domain state, and the alignment of a
//! request's `<disks>` with the domain's (libvirt's
//! `virDomainSnapshotAlignDisks`).

use std::time::{SystemTime, UNIX_EPOCH};

use crate::domain::DomainState;
use crate::error::{Error, Result};
use crate::flags::check_flags;
use crate::flags::snapshot::{create, revert};
use crate::flags::undefine;
use crate::xml::{DiskDevice, DomainDef, SnapshotDisk, SnapshotLocation, SnapshotState};

/// The snapshot state of a domain in `state`.
pub fn state_of(state: DomainState) -> SnapshotState {
    match state {
        DomainState::Running => SnapshotState::Running,
        DomainState::Blocked => SnapshotState::Blocked,
        DomainState::Paused => SnapshotState::Paused,
        DomainState::Shutdown => SnapshotState::Shutdown,
        DomainState::Shutoff => SnapshotState::Shutoff,
        DomainState::Crashed => SnapshotState::Crashed,
        DomainState::PmSuspended => SnapshotState::PmSuspended,
        DomainState::NoState => SnapshotState::NoState,
    }
}

/// Seconds since the epoch: a new snapshot's creation time (and default name).
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// `virDomainSnapshotCreateXML`'s flags: only `allowed` ones, and
/// `CURRENT` only with `REDEFINE` (libvirt's public API check).
///
/// # Errors
/// Unknown flags; `VIR_ERR_INVALID_ARG` with libvirt's message.
pub fn check_create_flags(flags: u32, allowed: u32) -> Result<()> {
    check_flags(
        "virDomainSnapshotCreateXML",
        u64::from(flags),
        u64::from(allowed),
    )?;
    if flags & create::CURRENT != 0 && flags & create::REDEFINE == 0 {
        return Err(Error::InvalidArg {
            operation: "virDomainSnapshotCreateXML",
            reason: "Flag 'VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE' is required by flag \
                     'VIR_DOMAIN_SNAPSHOT_CREATE_CURRENT'"
                .into(),
        });
    }
    Ok(())
}

/// `virDomainRevertToSnapshot`'s flags: only `allowed` ones, `RUNNING` and
/// `PAUSED` not together.
///
/// # Errors
/// Unknown flags; `VIR_ERR_INVALID_ARG` with libvirt's message.
pub fn check_revert_flags(flags: u32, allowed: u32) -> Result<()> {
    check_flags(
        "virDomainRevertToSnapshot",
        u64::from(flags),
        u64::from(allowed),
    )?;
    if flags & revert::RUNNING != 0 && flags & revert::PAUSED != 0 {
        return Err(Error::InvalidArg {
            operation: "virDomainRevertToSnapshot",
            reason: "Flags 'VIR_DOMAIN_SNAPSHOT_REVERT_RUNNING' and \
                     'VIR_DOMAIN_SNAPSHOT_REVERT_PAUSED' are mutually exclusive"
                .into(),
        });
    }
    Ok(())
}

/// libvirt's refusal to revert a transient domain to a shut-off snapshot
/// without being asked to run it (it would vanish).
///
/// # Errors
/// `VIR_ERR_OPERATION_INVALID` with libvirt's message.
pub fn check_transient_revert(persistent: bool, snap: SnapshotState, flags: u32) -> Result<()> {
    if !persistent && !snap.is_active() && flags & (revert::RUNNING | revert::PAUSED) == 0 {
        return Err(Error::invalid(
            "transient domain needs to request run or pause to revert to inactive snapshot",
        ));
    }
    Ok(())
}

/// `virDomainUndefineFlags` on a domain with `count` snapshots: a shut-off
/// one goes only with `SNAPSHOTS_METADATA` (a running one stays, transient,
/// with its snapshots).
///
/// # Errors
/// `VIR_ERR_OPERATION_INVALID` with libvirt's message.
pub fn check_undefine(active: bool, count: usize, flags: u32) -> Result<()> {
    if !active && count > 0 && flags & undefine::SNAPSHOTS_METADATA == 0 {
        return Err(Error::invalid(format!(
            "cannot delete inactive domain with {count} snapshots"
        )));
    }
    Ok(())
}

/// Completes the `<disks>` of a new snapshot from the domain's disks
/// (libvirt's `virDomainSnapshotAlignDisks`): each disk the request names
/// keeps its choice, the others get `default` — or `no` when they cannot
/// be snapshotted (read-only, empty, not a disk). The result has one entry
/// per domain disk, in the domain's order, named by target.
///
/// # Errors
/// `VIR_ERR_CONFIG_UNSUPPORTED` for a disk the domain lacks or one named twice.
pub fn align_disks(
    requested: &[SnapshotDisk],
    dom: &DomainDef,
    default: SnapshotLocation,
) -> Result<Vec<SnapshotDisk>> {
    let disks = &dom.devices.disks;
    let named = |d: &SnapshotDisk, i: usize| {
        let disk = &disks[i];
        disk.target.dev == d.name || disk.source.as_ref().is_some_and(|s| s.path == d.name)
    };
    for (n, req) in requested.iter().enumerate() {
        if !(0..disks.len()).any(|i| named(req, i)) {
            return Err(Error::ConfigUnsupported {
                reason: format!("no disk named '{}'", req.name),
            });
        }
        if requested[..n]
            .iter()
            .any(|other| (0..disks.len()).any(|i| named(other, i) && named(req, i)))
        {
            return Err(Error::ConfigUnsupported {
                reason: format!("disk '{}' specified twice", req.name),
            });
        }
    }
    Ok(disks
        .iter()
        .enumerate()
        .map(|(i, disk)| {
            let chosen = requested.iter().find(|d| named(d, i));
            let fallback =
                if disk.readonly || disk.source.is_none() || disk.device != DiskDevice::Disk {
                    SnapshotLocation::No
                } else {
                    default
                };
            let mut out = chosen.cloned().unwrap_or_default();
            out.name.clone_from(&disk.target.dev);
            out.snapshot = Some(out.snapshot.unwrap_or(fallback));
            out
        })
        .collect())
}

/// The overlay file libvirt names for an external snapshot `snap` of the
/// image `source`: its extension replaced by (or, without one, the path
/// followed by) `.snap`.
pub fn external_name(source: &str, snap: &str) -> String {
    let stem = match source.rfind('.') {
        Some(dot) if !source[dot..].contains('/') => &source[..dot],
        _ => source,
    };
    format!("{stem}.{snap}")
}

/// Fills in the file of each external disk of snapshot `snap` that names
/// none, as libvirt's `virDomainSnapshotDefAssignExternalNames`; `disks`
/// is aligned with the disks of `dom` ([`align_disks`]).
///
/// # Errors
/// `VIR_ERR_CONFIG_UNSUPPORTED` for a disk without a source or with a
/// block device source, and when two disks would share one file.
pub fn assign_external_names(
    disks: &mut [SnapshotDisk],
    dom: &DomainDef,
    snap: &str,
) -> Result<()> {
    for (disk, domdisk) in disks.iter_mut().zip(&dom.devices.disks) {
        if disk.snapshot != Some(SnapshotLocation::External) || disk.source_file.is_some() {
            continue;
        }
        let Some(source) = domdisk.source.as_ref().filter(|s| !s.path.is_empty()) else {
            return Err(Error::ConfigUnsupported {
                reason: format!(
                    "cannot generate external snapshot name for disk '{}' without source",
                    disk.name
                ),
            });
        };
        if domdisk.kind != crate::xml::DiskType::File {
            return Err(Error::ConfigUnsupported {
                reason: format!(
                    "source for disk '{}' is not a regular file; refusing to generate \
                     external snapshot name",
                    disk.name
                ),
            });
        }
        disk.source_file = Some(external_name(&source.path, snap));
    }
    for (i, disk) in disks.iter().enumerate() {
        let Some(file) = &disk.source_file else {
            continue;
        };
        if let Some(other) = disks[..i]
            .iter()
            .find(|o| o.source_file.as_ref() == Some(file))
        {
            return Err(Error::ConfigUnsupported {
                reason: format!(
                    "cannot generate external snapshot name for disk '{}': collision with \
                     disk '{}'",
                    disk.name, other.name
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dom(disks: &str) -> DomainDef {
        DomainDef::parse(&format!(
            "<domain type='test'><name>vm</name><memory unit='MiB'>4</memory>\
             <os><type>hvm</type></os><devices>{disks}</devices></domain>"
        ))
        .expect("valid xml")
    }

    #[test]
    fn disks_align_with_the_domain() {
        let d = dom(
            "<disk type='file' device='disk'><source file='/a.img'/><target dev='vda'/></disk>\
             <disk type='file' device='cdrom'><source file='/b.iso'/><target dev='hdc'/><readonly/></disk>",
        );
        let out = align_disks(&[], &d, SnapshotLocation::Internal).expect("aligns");
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].snapshot, Some(SnapshotLocation::Internal));
        assert_eq!(out[1].snapshot, Some(SnapshotLocation::No));
        let by_path = [SnapshotDisk {
            name: "/a.img".into(),
            snapshot: Some(SnapshotLocation::No),
            ..SnapshotDisk::default()
        }];
        let out = align_disks(&by_path, &d, SnapshotLocation::Internal).expect("aligns");
        assert_eq!(out[0].name, "vda");
        assert_eq!(out[0].snapshot, Some(SnapshotLocation::No));
        let unknown = [SnapshotDisk {
            name: "vdz".into(),
            ..SnapshotDisk::default()
        }];
        assert!(align_disks(&unknown, &d, SnapshotLocation::Internal).is_err());
        let twice = [
            SnapshotDisk {
                name: "vda".into(),
                ..SnapshotDisk::default()
            },
            SnapshotDisk {
                name: "/a.img".into(),
                ..SnapshotDisk::default()
            },
        ];
        assert!(align_disks(&twice, &d, SnapshotLocation::Internal).is_err());
    }

    #[test]
    fn flag_rules_as_libvirt() {
        use crate::error::ErrorCode;
        let all = u32::MAX >> 1;
        let e = check_create_flags(create::CURRENT, all).expect_err("needs redefine");
        assert_eq!(e.code(), ErrorCode::InvalidArg);
        check_create_flags(create::CURRENT | create::REDEFINE, all).expect("fine");
        assert!(check_create_flags(create::LIVE, create::HALT).is_err());
        let e = check_revert_flags(revert::RUNNING | revert::PAUSED, all).expect_err("both");
        assert_eq!(e.code(), ErrorCode::InvalidArg);
        assert!(check_transient_revert(false, SnapshotState::Shutoff, 0).is_err());
        check_transient_revert(false, SnapshotState::Shutoff, revert::RUNNING).expect("runs");
        check_transient_revert(true, SnapshotState::Shutoff, 0).expect("persistent");
        assert!(check_undefine(false, 2, 0).is_err());
        check_undefine(false, 2, undefine::SNAPSHOTS_METADATA).expect("asked");
        check_undefine(true, 2, 0).expect("running keeps them");
    }

    #[test]
    fn external_names_as_libvirt() {
        assert_eq!(external_name("/img/a.qcow2", "s1"), "/img/a.s1");
        assert_eq!(external_name("/img/a", "s1"), "/img/a.s1");
        assert_eq!(external_name("/img.d/a", "s1"), "/img.d/a.s1");
        let d = dom(
            "<disk type='file' device='disk'><source file='/x/a.qcow2'/><target dev='vda'/></disk>\
             <disk type='file' device='disk'><source file='/x/a.raw'/><target dev='vdb'/></disk>",
        );
        let mut disks = align_disks(&[], &d, SnapshotLocation::External).expect("aligned");
        let e = assign_external_names(&mut disks, &d, "s").expect_err("collision");
        assert!(
            e.to_string()
                .contains("disk 'vdb': collision with disk 'vda'"),
            "{e}"
        );
        disks[1].source_file = Some("/y/b.s".into());
        disks[0].source_file = None;
        assign_external_names(&mut disks, &d, "s").expect("named");
        assert_eq!(disks[0].source_file.as_deref(), Some("/x/a.s"));
        assert_eq!(disks[1].source_file.as_deref(), Some("/y/b.s"));
    }
}
