//! Flag words of the domain and migration APIs, with libvirt's bit values.
//!
//! Migration flags are a newtype ([`MigrateFlags`]) because they travel between
//! hosts, appear in error messages and are checked against driver support tables;
//! the per-call flags of the lifecycle APIs are plain `u32` constants grouped in
//! modules, checked with [`check_flags`].

use std::fmt;

use crate::error::{Error, Result};

/// Refuses `flags` bits outside `allowed` with libvirt's wording
/// ("unsupported flags (0x…) in function …").
///
/// # Errors
/// [`Error::UnknownFlags`] (`VIR_ERR_INVALID_ARG`) naming the unknown bits.
pub fn check_flags(operation: &'static str, flags: u64, allowed: u64) -> Result<()> {
    let unknown = flags & !allowed;
    if unknown == 0 {
        Ok(())
    } else {
        Err(Error::UnknownFlags { operation, unknown })
    }
}

/// `virMigrateFlags` (libvirt-wire.md §7.1): `u32` in the *Params calls, `u64` in the old ones.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct MigrateFlags(pub u64);

impl MigrateFlags {
    /// Keep the guest running during the transfer.
    pub const LIVE: Self = Self(1 << 0);
    /// The source daemon drives the destination itself.
    pub const PEER2PEER: Self = Self(1 << 1);
    /// Guest data travels inside the daemon-to-daemon RPC connection (needs PEER2PEER).
    pub const TUNNELLED: Self = Self(1 << 2);
    /// Define the domain on the destination.
    pub const PERSIST_DEST: Self = Self(1 << 3);
    /// Undefine the domain on the source after success.
    pub const UNDEFINE_SOURCE: Self = Self(1 << 4);
    /// Leave the guest paused on the destination.
    pub const PAUSED: Self = Self(1 << 5);
    /// Copy full disk contents.
    pub const NON_SHARED_DISK: Self = Self(1 << 6);
    /// Copy only the top disk image layer.
    pub const NON_SHARED_INC: Self = Self(1 << 7);
    /// Forbid config changes for the whole v3 sequence.
    pub const CHANGE_PROTECTION: Self = Self(1 << 8);
    /// Proceed even if the migration is considered unsafe.
    pub const UNSAFE: Self = Self(1 << 9);
    /// Migrate only the persistent configuration.
    pub const OFFLINE: Self = Self(1 << 10);
    /// Compress migration data.
    pub const COMPRESSED: Self = Self(1 << 11);
    /// Abort on soft errors during migration.
    pub const ABORT_ON_ERROR: Self = Self(1 << 12);
    /// Throttle the guest so that migration converges.
    pub const AUTO_CONVERGE: Self = Self(1 << 13);
    /// Pin all guest memory for RDMA.
    pub const RDMA_PIN_ALL: Self = Self(1 << 14);
    /// Allow switching to post-copy.
    pub const POSTCOPY: Self = Self(1 << 15);
    /// Hypervisor-native TLS for the data connection.
    pub const TLS: Self = Self(1 << 16);
    /// Several parallel data connections.
    pub const PARALLEL: Self = Self(1 << 17);
    /// Synchronous writes for storage copy.
    pub const NON_SHARED_SYNCHRONOUS_WRITES: Self = Self(1 << 18);
    /// Resume a failed post-copy migration.
    pub const POSTCOPY_RESUME: Self = Self(1 << 19);
    /// Zero-copy sends.
    pub const ZEROCOPY: Self = Self(1 << 20);

    /// Every flag libvirt 9.0 defines, with its name for messages and docs.
    pub const NAMED: &'static [(Self, &'static str)] = &[
        (Self::LIVE, "LIVE"),
        (Self::PEER2PEER, "PEER2PEER"),
        (Self::TUNNELLED, "TUNNELLED"),
        (Self::PERSIST_DEST, "PERSIST_DEST"),
        (Self::UNDEFINE_SOURCE, "UNDEFINE_SOURCE"),
        (Self::PAUSED, "PAUSED"),
        (Self::NON_SHARED_DISK, "NON_SHARED_DISK"),
        (Self::NON_SHARED_INC, "NON_SHARED_INC"),
        (Self::CHANGE_PROTECTION, "CHANGE_PROTECTION"),
        (Self::UNSAFE, "UNSAFE"),
        (Self::OFFLINE, "OFFLINE"),
        (Self::COMPRESSED, "COMPRESSED"),
        (Self::ABORT_ON_ERROR, "ABORT_ON_ERROR"),
        (Self::AUTO_CONVERGE, "AUTO_CONVERGE"),
        (Self::RDMA_PIN_ALL, "RDMA_PIN_ALL"),
        (Self::POSTCOPY, "POSTCOPY"),
        (Self::TLS, "TLS"),
        (Self::PARALLEL, "PARALLEL"),
        (
            Self::NON_SHARED_SYNCHRONOUS_WRITES,
            "NON_SHARED_SYNCHRONOUS_WRITES",
        ),
        (Self::POSTCOPY_RESUME, "POSTCOPY_RESUME"),
        (Self::ZEROCOPY, "ZEROCOPY"),
    ];

    /// Union of every known flag.
    pub const KNOWN: Self = Self((1 << 21) - 1);

    /// No flag set.
    pub const fn empty() -> Self {
        Self(0)
    }

    /// The raw bits.
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// Whether every bit of `other` is set in `self`.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether any bit of `other` is set in `self`.
    pub const fn intersects(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }

    /// `self` with the bits of `other` added.
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// `self` without the bits of `other`.
    pub const fn difference(self, other: Self) -> Self {
        Self(self.0 & !other.0)
    }

    /// Bits no libvirt 9.0 flag uses (refused with `VIR_ERR_INVALID_ARG`).
    pub const fn unknown_bits(self) -> u64 {
        self.0 & !Self::KNOWN.0
    }

    /// Names of the known flags set, in bit order.
    pub fn names(self) -> Vec<&'static str> {
        Self::NAMED
            .iter()
            .filter(|(flag, _)| self.contains(*flag))
            .map(|(_, name)| *name)
            .collect()
    }

    /// Refuses bits no flag uses.
    ///
    /// # Errors
    /// [`Error::UnknownFlags`] (`VIR_ERR_INVALID_ARG`) naming `operation` and the bits.
    pub fn check_known(self, operation: &'static str) -> Result<()> {
        check_flags(operation, self.0, Self::KNOWN.0)
    }
}

impl std::ops::BitOr for MigrateFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        self.union(rhs)
    }
}

impl std::ops::BitOrAssign for MigrateFlags {
    fn bitor_assign(&mut self, rhs: Self) {
        self.0 |= rhs.0;
    }
}

impl fmt::Debug for MigrateFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MigrateFlags({self})")
    }
}

/// `LIVE|PEER2PEER`, `0` for none, unknown bits appended in hex.
impl fmt::Display for MigrateFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = self.names();
        let unknown = self.unknown_bits();
        if names.is_empty() && unknown == 0 {
            return f.write_str("0");
        }
        f.write_str(&names.join("|"))?;
        if unknown != 0 {
            if !names.is_empty() {
                f.write_str("|")?;
            }
            write!(f, "0x{unknown:x}")?;
        }
        Ok(())
    }
}

/// `virConnectListAllDomainsFlags` filters (`CONNECT_LIST_ALL_DOMAINS`).
pub mod list {
    /// Running or paused.
    pub const ACTIVE: u32 = 1 << 0;
    /// Shut off.
    pub const INACTIVE: u32 = 1 << 1;
    /// Has a persistent config.
    pub const PERSISTENT: u32 = 1 << 2;
    /// No persistent config.
    pub const TRANSIENT: u32 = 1 << 3;
    /// State running.
    pub const RUNNING: u32 = 1 << 4;
    /// State paused.
    pub const PAUSED: u32 = 1 << 5;
    /// State shut off.
    pub const SHUTOFF: u32 = 1 << 6;
    /// Any other state.
    pub const OTHER: u32 = 1 << 7;
    /// Has a managed save image.
    pub const MANAGEDSAVE: u32 = 1 << 8;
    /// Has no managed save image.
    pub const NO_MANAGEDSAVE: u32 = 1 << 9;
    /// Autostart enabled.
    pub const AUTOSTART: u32 = 1 << 10;
    /// Autostart disabled.
    pub const NO_AUTOSTART: u32 = 1 << 11;
    /// Has snapshots.
    pub const HAS_SNAPSHOT: u32 = 1 << 12;
    /// Has no snapshots.
    pub const NO_SNAPSHOT: u32 = 1 << 13;
    /// Has checkpoints.
    pub const HAS_CHECKPOINT: u32 = 1 << 14;
    /// Has no checkpoints.
    pub const NO_CHECKPOINT: u32 = 1 << 15;
    /// Every filter bit libvirt 9.0 defines.
    pub const ALL: u32 = (1 << 16) - 1;
}

/// `virDomainXMLFlags` (`DOMAIN_GET_XML_DESC`).
pub mod xml {
    /// Include security-sensitive data (graphics passwords).
    pub const SECURE: u32 = 1 << 0;
    /// The persistent config rather than the live one.
    pub const INACTIVE: u32 = 1 << 1;
    /// Update guest CPU from the host.
    pub const UPDATE_CPU: u32 = 1 << 2;
    /// Only what is needed for migration.
    pub const MIGRATABLE: u32 = 1 << 3;
}

/// The `virDomainSnapshot*` flag sets.
pub mod snapshot {
    /// `virDomainSnapshotCreateFlags`.
    pub mod create {
        /// Restore metadata of an existing snapshot.
        pub const REDEFINE: u32 = 1 << 0;
        /// With `REDEFINE`: make it the current snapshot.
        pub const CURRENT: u32 = 1 << 1;
        /// Take the snapshot but keep no metadata.
        pub const NO_METADATA: u32 = 1 << 2;
        /// Stop the domain after the snapshot.
        pub const HALT: u32 = 1 << 3;
        /// Disk state only (external).
        pub const DISK_ONLY: u32 = 1 << 4;
        /// Reuse existing external files.
        pub const REUSE_EXT: u32 = 1 << 5;
        /// Quiesce guest file systems through the agent.
        pub const QUIESCE: u32 = 1 << 6;
        /// All disks or none.
        pub const ATOMIC: u32 = 1 << 7;
        /// Keep the guest running while the memory is saved.
        pub const LIVE: u32 = 1 << 8;
        /// Validate the XML against the schema.
        pub const VALIDATE: u32 = 1 << 9;
    }

    /// `virDomainSnapshotListFlags` (and the same bits for children).
    pub mod list {
        /// Domain lists: only snapshots without a parent.
        pub const ROOTS: u32 = 1 << 0;
        /// Children lists: all descendants, not just children.
        pub const DESCENDANTS: u32 = 1 << 0;
        /// Only snapshots with metadata.
        pub const METADATA: u32 = 1 << 1;
        /// Only snapshots without children.
        pub const LEAVES: u32 = 1 << 2;
        /// Only snapshots with children.
        pub const NO_LEAVES: u32 = 1 << 3;
        /// Only snapshots without metadata.
        pub const NO_METADATA: u32 = 1 << 4;
        /// Only snapshots of a shut-off domain.
        pub const INACTIVE: u32 = 1 << 5;
        /// Only snapshots of a running or paused domain.
        pub const ACTIVE: u32 = 1 << 6;
        /// Only disk-only snapshots.
        pub const DISK_ONLY: u32 = 1 << 7;
        /// Only internal snapshots.
        pub const INTERNAL: u32 = 1 << 8;
        /// Only external snapshots.
        pub const EXTERNAL: u32 = 1 << 9;
        /// Parents before their children.
        pub const TOPOLOGICAL: u32 = 1 << 10;
        /// Every filter bit (`VIR_DOMAIN_SNAPSHOT_FILTERS_ALL`).
        pub const FILTERS_ALL: u32 = METADATA
            | NO_METADATA
            | LEAVES
            | NO_LEAVES
            | INACTIVE
            | ACTIVE
            | DISK_ONLY
            | INTERNAL
            | EXTERNAL;
    }

    /// `virDomainSnapshotRevertFlags`.
    pub mod revert {
        /// Run after the revert.
        pub const RUNNING: u32 = 1 << 0;
        /// Pause after the revert.
        pub const PAUSED: u32 = 1 << 1;
        /// Allow risky reverts.
        pub const FORCE: u32 = 1 << 2;
        /// Re-initialise NVRAM from its template.
        pub const RESET_NVRAM: u32 = 1 << 3;
    }

    /// `virDomainSnapshotDeleteFlags`.
    pub mod delete {
        /// Also delete the descendants.
        pub const CHILDREN: u32 = 1 << 0;
        /// Delete only the metadata.
        pub const METADATA_ONLY: u32 = 1 << 1;
        /// Delete only the descendants.
        pub const CHILDREN_ONLY: u32 = 1 << 2;
    }

    /// `virDomainSnapshotXMLFlags`.
    pub mod xml {
        /// Include secrets.
        pub const SECURE: u32 = 1 << 0;
    }
}

/// `virDomainSaveRestoreFlags` (`DOMAIN_SAVE_FLAGS`, `DOMAIN_RESTORE_FLAGS`,
/// `DOMAIN_SAVE_IMAGE_DEFINE_XML`, `DOMAIN_MANAGED_SAVE*`) and
/// `virDomainSaveImageXMLFlags` (`DOMAIN_SAVE_IMAGE_GET_XML_DESC`).
pub mod save {
    /// A caching hint for the image's I/O.
    pub const BYPASS_CACHE: u32 = 1 << 0;
    /// Restore running, whatever the image says.
    pub const RUNNING: u32 = 1 << 1;
    /// Restore paused, whatever the image says.
    pub const PAUSED: u32 = 1 << 2;
    /// Re-initialise the firmware variables on restore.
    pub const RESET_NVRAM: u32 = 1 << 3;
    /// Include security-sensitive data in a save image's XML
    /// (`VIR_DOMAIN_SAVE_IMAGE_XML_SECURE`, = [`super::xml::SECURE`]).
    pub const IMAGE_XML_SECURE: u32 = 1 << 0;

    /// `VIR_EXCLUSIVE_FLAGS(VIR_DOMAIN_SAVE_RUNNING, VIR_DOMAIN_SAVE_PAUSED)`.
    ///
    /// # Errors
    /// [`crate::Error::InvalidArg`] when both are set.
    pub fn check_running_paused(operation: &'static str, flags: u32) -> crate::Result<()> {
        if flags & RUNNING != 0 && flags & PAUSED != 0 {
            return Err(crate::Error::InvalidArg {
                operation,
                reason: "VIR_DOMAIN_SAVE_RUNNING and VIR_DOMAIN_SAVE_PAUSED are mutually \
                         exclusive"
                    .into(),
            });
        }
        Ok(())
    }

    /// Whether a restore with `flags` leaves the guest running, when it was
    /// saved running (`saved_running`) or paused.
    pub fn restore_running(flags: u32, saved_running: bool) -> bool {
        match flags {
            f if f & RUNNING != 0 => true,
            f if f & PAUSED != 0 => false,
            _ => saved_running,
        }
    }
}

/// `virDomainCoreDumpFlags` and `virDomainCoreDumpFormat`
/// (`DOMAIN_CORE_DUMP`, `DOMAIN_CORE_DUMP_WITH_FORMAT`).
pub mod dump {
    /// Stop the guest (shut off, reason crashed) after the dump.
    pub const CRASH: u32 = 1 << 0;
    /// Leave the guest running while it is dumped.
    pub const LIVE: u32 = 1 << 1;
    /// A caching hint for the file's I/O.
    pub const BYPASS_CACHE: u32 = 1 << 2;
    /// Reset the guest after the dump.
    pub const RESET: u32 = 1 << 3;
    /// Dump the guest's memory only (an ELF or kdump core), not the
    /// migration stream.
    pub const MEMORY_ONLY: u32 = 1 << 4;

    /// The flags' names, for libvirt's exclusive-flags message.
    const NAMES: [(u32, &str); 3] = [
        (CRASH, "VIR_DUMP_CRASH"),
        (LIVE, "VIR_DUMP_LIVE"),
        (RESET, "VIR_DUMP_RESET"),
    ];

    /// The pairs libvirt's `virDomainCoreDump(WithFormat)` refuses before
    /// any driver sees them: crash with live, crash with reset, live with
    /// reset.
    ///
    /// # Errors
    /// [`crate::Error::InvalidArg`] "Flags 'A' and 'B' are mutually
    /// exclusive" for the first such pair.
    pub fn check_exclusive(operation: &'static str, flags: u32) -> crate::Result<()> {
        for (i, (a, a_name)) in NAMES.iter().enumerate() {
            for (b, b_name) in &NAMES[i + 1..] {
                if flags & a != 0 && flags & b != 0 {
                    return Err(crate::Error::InvalidArg {
                        operation,
                        reason: format!("Flags '{a_name}' and '{b_name}' are mutually exclusive"),
                    });
                }
            }
        }
        Ok(())
    }

    /// `virDomainCoreDumpFormat`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Format {
        /// ELF (`VIR_DOMAIN_CORE_DUMP_FORMAT_RAW`).
        Raw,
        /// kdump-compressed with zlib.
        KdumpZlib,
        /// kdump-compressed with lzo.
        KdumpLzo,
        /// kdump-compressed with snappy.
        KdumpSnappy,
        /// Windows crash dump.
        WinDmp,
    }

    impl Format {
        /// The format numbered `n` on the wire.
        ///
        /// # Errors
        /// [`crate::Error::InvalidArg`] "dumpformat 'N' is not supported",
        /// as libvirt's public API.
        pub fn from_wire(operation: &'static str, n: u32) -> crate::Result<Self> {
            Ok(match n {
                0 => Format::Raw,
                1 => Format::KdumpZlib,
                2 => Format::KdumpLzo,
                3 => Format::KdumpSnappy,
                4 => Format::WinDmp,
                _ => {
                    return Err(crate::Error::InvalidArg {
                        operation,
                        reason: format!("dumpformat '{n}' is not supported"),
                    })
                }
            })
        }

        /// QEMU's name of the format (`DumpGuestMemoryFormat`), as libvirt's
        /// `qemuDumpFormat` table.
        pub fn qemu_name(self) -> &'static str {
            match self {
                Format::Raw => "elf",
                Format::KdumpZlib => "kdump-zlib",
                Format::KdumpLzo => "kdump-lzo",
                Format::KdumpSnappy => "kdump-snappy",
                Format::WinDmp => "win-dmp",
            }
        }
    }
}

/// `virDomainDefineFlags` (`DOMAIN_DEFINE_XML_FLAGS`).
pub mod define {
    /// Validate the XML against the schema.
    pub const VALIDATE: u32 = 1 << 0;
}

/// `virDomainUndefineFlagsValues` (`DOMAIN_UNDEFINE_FLAGS`).
pub mod undefine {
    /// Also remove a managed save image.
    pub const MANAGED_SAVE: u32 = 1 << 0;
    /// Also remove snapshot metadata.
    pub const SNAPSHOTS_METADATA: u32 = 1 << 1;
    /// Also remove NVRAM.
    pub const NVRAM: u32 = 1 << 2;
    /// Keep NVRAM.
    pub const KEEP_NVRAM: u32 = 1 << 3;
    /// Also remove checkpoint metadata.
    pub const CHECKPOINTS_METADATA: u32 = 1 << 4;
    /// Also remove TPM state.
    pub const TPM: u32 = 1 << 5;
    /// Keep TPM state.
    pub const KEEP_TPM: u32 = 1 << 6;
}

/// `virDomainCreateFlags` (`DOMAIN_CREATE_WITH_FLAGS`, `DOMAIN_CREATE_XML`).
pub mod create {
    /// Start with vCPUs paused.
    pub const START_PAUSED: u32 = 1 << 0;
    /// Destroy the domain when the connection closes.
    pub const START_AUTODESTROY: u32 = 1 << 1;
    /// Bypass the host page cache when restoring.
    pub const START_BYPASS_CACHE: u32 = 1 << 2;
    /// Boot, discarding a managed save image.
    pub const START_FORCE_BOOT: u32 = 1 << 3;
    /// Validate the XML against the schema.
    pub const START_VALIDATE: u32 = 1 << 4;
    /// Reset NVRAM.
    pub const START_RESET_NVRAM: u32 = 1 << 5;
}

/// `virDomainModificationImpact`: which definition a change applies to.
pub mod affect {
    use crate::error::{Error, Result};

    /// The running guest (`VIR_DOMAIN_AFFECT_LIVE`).
    pub const LIVE: u32 = 1 << 0;
    /// The persistent config (`VIR_DOMAIN_AFFECT_CONFIG`).
    pub const CONFIG: u32 = 1 << 1;

    /// The definitions a change with `flags` applies to, `(live, config)`,
    /// as libvirt's `virDomainObjGetDefs`: neither bit means the live one
    /// of a running guest, else the config.
    ///
    /// # Errors
    /// [`Error::OperationInvalid`] for LIVE on a guest that is not running
    /// and CONFIG on a transient one, with libvirt's words.
    pub fn resolve(flags: u32, active: bool, persistent: bool) -> Result<(bool, bool)> {
        let (mut live, mut config) = (flags & LIVE != 0, flags & CONFIG != 0);
        if !live && !config {
            (live, config) = (active, !active);
        }
        if live && !active {
            return Err(Error::invalid("domain is not running"));
        }
        if config && !persistent {
            return Err(Error::invalid(
                "transient domains do not have any persistent config",
            ));
        }
        Ok((live, config))
    }

    /// As [`resolve`] for a change that applies to one definition only
    /// (libvirt's `virDomainObjGetOneDef`); `true` for the live one.
    ///
    /// # Errors
    /// [`Error::InvalidArg`] when both bits are set; as [`resolve`].
    pub fn resolve_one(
        operation: &'static str,
        flags: u32,
        active: bool,
        persistent: bool,
    ) -> Result<bool> {
        check_exclusive(operation, flags)?;
        Ok(resolve(flags, active, persistent)?.0)
    }

    /// Refuses LIVE and CONFIG together, as libvirt's public API does for
    /// the calls that read or change one definition.
    ///
    /// # Errors
    /// [`Error::InvalidArg`] when both bits are set.
    pub fn check_exclusive(operation: &'static str, flags: u32) -> Result<()> {
        if flags & LIVE != 0 && flags & CONFIG != 0 {
            return Err(Error::InvalidArg {
                operation,
                reason: "Flags 'VIR_DOMAIN_AFFECT_LIVE' and 'VIR_DOMAIN_AFFECT_CONFIG' are \
                         mutually exclusive"
                    .into(),
            });
        }
        Ok(())
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::error::ErrorCode;

        #[test]
        fn current_follows_the_state_and_impossible_targets_are_refused() {
            assert_eq!(resolve(0, true, true).expect("running"), (true, false));
            assert_eq!(resolve(0, false, true).expect("shut off"), (false, true));
            assert_eq!(
                resolve(LIVE | CONFIG, true, true).expect("both"),
                (true, true)
            );
            let e = resolve(LIVE, false, true).expect_err("not running");
            assert_eq!(e.code(), ErrorCode::OperationInvalid);
            let e = resolve(CONFIG, true, false).expect_err("transient");
            assert!(e.to_string().contains("transient domains"), "{e}");
            let e = resolve_one("op", LIVE | CONFIG, true, true).expect_err("both");
            assert_eq!(e.code(), ErrorCode::InvalidArg);
            assert!(resolve_one("op", 0, true, true).expect("live"));
        }
    }
}

/// `virDomainMemoryModFlags` (`DOMAIN_SET_MEMORY_FLAGS`), besides [`affect`].
pub mod memory {
    /// Change the maximum rather than the current size.
    pub const MAXIMUM: u32 = 1 << 2;
}

/// `virDomainVcpuFlags` (`DOMAIN_SET_VCPUS_FLAGS`, `DOMAIN_GET_VCPUS_FLAGS`),
/// besides [`affect`].
pub mod vcpu {
    /// The maximum rather than the vCPUs online.
    pub const MAXIMUM: u32 = 1 << 2;
    /// The vCPUs the guest agent reports online.
    pub const GUEST: u32 = 1 << 3;
    /// Plug vCPUs so that they can be unplugged later.
    pub const HOTPLUGGABLE: u32 = 1 << 4;
}

/// `virDomainDestroyFlagsValues` (`DOMAIN_DESTROY_FLAGS`).
pub mod destroy {
    /// Only SIGTERM, no SIGKILL.
    pub const GRACEFUL: u32 = 1 << 0;
    /// Remove the domain's logs.
    pub const REMOVE_LOGS: u32 = 1 << 1;
}

/// `virDomainShutdownFlagValues` (`DOMAIN_SHUTDOWN_FLAGS`).
pub mod shutdown {
    /// ACPI power button.
    pub const ACPI_POWER_BTN: u32 = 1 << 0;
    /// Guest agent.
    pub const GUEST_AGENT: u32 = 1 << 1;
    /// initctl.
    pub const INITCTL: u32 = 1 << 2;
    /// A signal to the hypervisor process.
    pub const SIGNAL: u32 = 1 << 3;
    /// Paravirt guest control.
    pub const PARAVIRT: u32 = 1 << 4;
}

/// `virDomainRebootFlagValues`: the same bits as [`shutdown`]'s.
pub mod reboot {
    /// The hypervisor's choice.
    pub const DEFAULT: u32 = 0;
    pub use super::shutdown::{ACPI_POWER_BTN, GUEST_AGENT, INITCTL, PARAVIRT, SIGNAL};
}

/// `virConnectFlags` (`CONNECT_OPEN`).
pub mod connect {
    /// Read-only connection.
    pub const RO: u32 = 1 << 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dump_flag_pairs_libvirt_refuses_and_formats_it_knows() {
        use dump::*;
        assert!(check_exclusive("op", LIVE | BYPASS_CACHE | MEMORY_ONLY).is_ok());
        for (flags, text) in [
            (CRASH | LIVE, "Flags 'VIR_DUMP_CRASH' and 'VIR_DUMP_LIVE'"),
            (CRASH | RESET, "Flags 'VIR_DUMP_CRASH' and 'VIR_DUMP_RESET'"),
            (LIVE | RESET, "Flags 'VIR_DUMP_LIVE' and 'VIR_DUMP_RESET'"),
        ] {
            let err = check_exclusive("op", flags).expect_err("exclusive");
            assert_eq!(err.code(), crate::error::ErrorCode::InvalidArg);
            assert!(err.to_string().contains(text), "{err}");
        }
        assert_eq!(Format::from_wire("op", 0).expect("raw").qemu_name(), "elf");
        assert_eq!(
            Format::from_wire("op", 1).expect("zlib").qemu_name(),
            "kdump-zlib"
        );
        assert_eq!(
            Format::from_wire("op", 4).expect("win").qemu_name(),
            "win-dmp"
        );
        let err = Format::from_wire("op", 5).expect_err("unknown");
        assert!(err.to_string().contains("dumpformat '5' is not supported"));
    }

    #[test]
    fn named_flags_cover_exactly_the_known_bits() {
        let union = MigrateFlags::NAMED
            .iter()
            .fold(MigrateFlags::empty(), |acc, (flag, _)| acc | *flag);
        assert_eq!(union, MigrateFlags::KNOWN);
        for (flag, _) in MigrateFlags::NAMED {
            assert_eq!(flag.bits().count_ones(), 1, "{flag:?} is one bit");
        }
    }

    #[test]
    fn libvirt_bit_values_are_pinned() {
        assert_eq!(MigrateFlags::LIVE.bits(), 1);
        assert_eq!(MigrateFlags::TUNNELLED.bits(), 4);
        assert_eq!(MigrateFlags::CHANGE_PROTECTION.bits(), 256);
        assert_eq!(MigrateFlags::OFFLINE.bits(), 1024);
        assert_eq!(MigrateFlags::AUTO_CONVERGE.bits(), 8192);
        assert_eq!(MigrateFlags::ZEROCOPY.bits(), 1_048_576);
    }

    #[test]
    fn names_and_display_list_set_flags_and_unknown_bits() {
        let flags = MigrateFlags::LIVE | MigrateFlags::PEER2PEER | MigrateFlags(1 << 40);
        assert_eq!(flags.names(), vec!["LIVE", "PEER2PEER"]);
        assert_eq!(flags.to_string(), "LIVE|PEER2PEER|0x10000000000");
        assert_eq!(MigrateFlags::empty().to_string(), "0");
    }

    #[test]
    fn unknown_bits_are_refused_with_invalid_arg() {
        let err = MigrateFlags(1 << 21 | 1)
            .check_known("virDomainMigrateBegin3Params")
            .expect_err("bit 21 is unknown");
        assert_eq!(err.code(), crate::error::ErrorCode::InvalidArg);
        assert!(err.to_string().contains("0x200000"), "{err}");
        MigrateFlags::KNOWN
            .check_known("virDomainMigrateBegin3Params")
            .expect("all known bits pass");
    }

    #[test]
    fn check_flags_accepts_subsets_only() {
        check_flags("virDomainDestroyFlags", 3, 3).expect("subset");
        let err = check_flags("virDomainDestroyFlags", 4, 3).expect_err("bit 2 is not allowed");
        assert!(matches!(err, Error::UnknownFlags { unknown: 4, .. }));
    }
}
