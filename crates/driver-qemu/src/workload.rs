//! The project's own workload guest: a tiny multiboot kernel that counts and
//! dirties memory, so tests can prove a guest kept running across a
//! migration and so migrations have pages to re-send.
//!
//! The kernel is assembled from `guest/boot.s` by `build.rs` into an ELF32
//! image that QEMU boots with `-kernel` ([`kernel`]). Its status block at
//! [`STATUS_ADDR`] (layout in `guest/boot.s`) is read through QMP with
//! [`read_status`]. It powers off on the ACPI power button (polled on the
//! `pc` and `q35` machines' PM1 block), so `shutdown` and `reboot` can be
//! tested with it; after a reset its counter keeps its last value until it
//! boots again.

use std::path::{Path, PathBuf};

use crate::command::Kernel;
use crate::error::{Error, Result};
use crate::qmp::commands::HumanMonitorCommand;
use crate::qmp::Qmp;

/// The image, built from `guest/` at compile time.
pub const IMAGE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/guest.elf"));

/// Guest-physical address of the status block.
pub const STATUS_ADDR: u64 = 0x20_0000;

/// Guest-physical address where the dirtied region starts.
pub const DIRTY_BASE: u64 = 0x40_0000;

/// The first 8 bytes of the status block once the guest runs ("MIGRGST1").
pub const MAGIC: u64 = u64::from_le_bytes(*b"MIGRGST1");

/// Region size the guest dirties when its command line names none.
pub const DEFAULT_DIRTY_MIB: u32 = 16;

/// Where `build.rs` left the image (valid on the machine that built this crate).
pub fn build_path() -> &'static Path {
    Path::new(concat!(env!("OUT_DIR"), "/guest.elf"))
}

/// Writes [`IMAGE`] to `dir/migrated-guest.elf` (unless an identical file is
/// there) and returns its path; for deployments where the build tree is gone.
///
/// # Errors
/// [`Error::File`] when the file cannot be written.
pub fn install(dir: &Path) -> Result<PathBuf> {
    let path = dir.join("migrated-guest.elf");
    if std::fs::read(&path).is_ok_and(|existing| existing == IMAGE) {
        return Ok(path);
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::file("create", dir, e))?;
    let tmp = dir.join(".migrated-guest.elf.tmp");
    std::fs::write(&tmp, IMAGE).map_err(|e| Error::file("write", &tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| Error::file("write", &path, e))?;
    Ok(path)
}

/// A `-kernel` boot of the image at `path` dirtying `dirty_mib` MiB per pass.
pub fn kernel(path: PathBuf, dirty_mib: u32) -> Kernel {
    Kernel {
        path,
        cmdline: Some(format!("dirty_mib={dirty_mib}")),
        initrd: None,
    }
}

/// What the guest reports in its status block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkloadStatus {
    /// Completed passes over the dirtied region; only ever grows.
    pub counter: u64,
    /// Size of the dirtied region in MiB, as the guest understood it.
    pub dirty_mib: u32,
}

/// Reads the status block through QMP (HMP `xp`, which reads guest-physical
/// memory without stopping the guest).
///
/// # Errors
/// QMP errors, and [`Error::Workload`] when the block does not hold the
/// magic yet (the guest has not booted, or is not the workload image).
pub async fn read_status(qmp: &Qmp) -> Result<WorkloadStatus> {
    let text = qmp
        .execute(&HumanMonitorCommand {
            command_line: format!("xp /3xg {STATUS_ADDR:#x}"),
        })
        .await?;
    parse_xp(&text)
}

fn parse_xp(text: &str) -> Result<WorkloadStatus> {
    // Lines look like "0000000000200000: 0x315453475247494d 0x0000000000000282".
    let words: Vec<u64> = text
        .lines()
        .filter_map(|line| line.split_once(':').map(|(_, rest)| rest))
        .flat_map(str::split_whitespace)
        .filter_map(|w| w.strip_prefix("0x"))
        .filter_map(|w| u64::from_str_radix(w, 16).ok())
        .collect();
    let [magic, counter, info, ..] = words[..] else {
        return Err(Error::Workload {
            reason: format!("unexpected xp output {text:?}"),
        });
    };
    if magic != MAGIC {
        return Err(Error::Workload {
            reason: format!("no workload magic at {STATUS_ADDR:#x} (found {magic:#x})"),
        });
    }
    Ok(WorkloadStatus {
        counter,
        dirty_mib: (info & 0xffff_ffff) as u32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_is_an_elf32_multiboot_kernel() {
        assert_eq!(&IMAGE[..4], b"\x7fELF");
        assert_eq!(IMAGE[4], 1, "ELFCLASS32");
        // The multiboot header (magic, flags, checksum) in the first 8 KiB.
        let found = IMAGE[..IMAGE.len().min(8192)]
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect::<Vec<_>>()
            .windows(3)
            .any(|w| w[0] == 0x1BAD_B002 && w[0].wrapping_add(w[1]).wrapping_add(w[2]) == 0);
        assert!(found, "multiboot header with a valid checksum");
    }

    #[test]
    fn parses_hmp_xp_output() {
        let text = "0000000000200000: 0x315453475247494d 0x0000000000000282\r\n\
                    0000000000200010: 0x0000000100000040\r\n";
        assert_eq!(
            parse_xp(text).expect("parses"),
            WorkloadStatus {
                counter: 0x282,
                dirty_mib: 64
            }
        );
    }

    #[test]
    fn missing_magic_or_garbage_is_an_error() {
        let zero = "0000000000200000: 0x0000000000000000 0x0000000000000000\r\n\
                    0000000000200010: 0x0000000000000000\r\n";
        assert!(matches!(parse_xp(zero), Err(Error::Workload { .. })));
        assert!(matches!(
            parse_xp("Cannot access memory"),
            Err(Error::Workload { .. })
        ));
    }

    #[test]
    fn install_writes_the_image_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = install(dir.path()).expect("install");
        assert_eq!(std::fs::read(&path).expect("read"), IMAGE);
        assert_eq!(install(dir.path()).expect("again"), path);
        assert!(build_path().is_file());
    }
}
