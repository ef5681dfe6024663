//! `virsh save` / `virsh restore` of test guests, as libvirt's test driver
//! (`testDomainSaveFlags`, `testDomainRestoreFlags`), with the guest's real
//! state: the image is the shared save header
//! ([`migrated_core::savefile`], this driver's magic) followed by the pages
//! holding data, so a restore brings back the memory the guest had.
//!
//! ```text
//! page      u64 LE index, then PAGE_SIZE bytes     for each page holding data
//! end       u64 LE u64::MAX
//! ```
//!
//! The end mark tells a complete image from a truncated one. The image is
//! written and synced before the guest stops: a failed save leaves the guest
//! as it was (running again if it ran) and no partial file.

use std::fs::OpenOptions;
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

use migrated_core::abi::check_save_replacement;
use migrated_core::domain::{event_detail, shutoff_reason, DomainRef, DomainState};
use migrated_core::flags::{check_flags, save};
use migrated_core::save_image::ImageFormat;
use migrated_core::savefile::SaveHeader;
use migrated_core::xml::FormatOptions;
use migrated_core::{Error, Result};

use super::{parse_def, Registry};
use crate::guest::{Live, SavedState};
use crate::memory::{GuestMemory, PAGE_SIZE};

/// First bytes of every test driver save image.
pub const MAGIC: [u8; 8] = *b"MGRDTSV1";

/// This driver's save images, for [`ImageFormat`]'s readers
/// (`virsh save-image-dumpxml` / `save-image-define` as well as restore).
pub(crate) const IMAGE: ImageFormat = ImageFormat {
    magic: MAGIC,
    parse: parse_def,
    open_failed,
};

/// libvirt's test driver's error for an image it cannot open
/// (`testDomainSaveImageOpen`).
fn open_failed(path: &Path, e: std::io::Error) -> Error {
    Error::system_call(format!("cannot read domain image '{}'", path.display()), e)
}

/// Marks the end of the pages.
const END: u64 = u64::MAX;

const SAVE_OP: &str = "virDomainSaveFlags";
const RESTORE_OP: &str = "virDomainRestoreFlags";

fn system(what: String) -> impl FnOnce(std::io::Error) -> Error {
    move |e| Error::system(what, e)
}

/// Writes the header and `memory`'s pages to `out`.
fn write_image(
    out: &mut impl Write,
    header: &SaveHeader,
    memory: &GuestMemory,
    path: &Path,
) -> Result<()> {
    header.write_to(out, path)?;
    let failed = || format!("saving domain to '{}': write failed", path.display());
    let mut page = [0u8; PAGE_SIZE];
    for index in memory.allocated_page_indices() {
        memory.read_page(index, &mut page)?;
        out.write_all(&index.to_le_bytes())
            .and_then(|()| out.write_all(&page))
            .map_err(system(failed()))?;
    }
    out.write_all(&END.to_le_bytes()).map_err(system(failed()))
}

/// Reads the pages after the header into `memory`.
fn read_pages(input: &mut impl Read, memory: &GuestMemory, path: &Path) -> Result<()> {
    let damaged = |reason: &str| Error::OperationFailed {
        operation: RESTORE_OP,
        reason: format!("{} is not a usable save image: {reason}", path.display()),
    };
    let read = |input: &mut dyn Read, buf: &mut [u8]| {
        input.read_exact(buf).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => damaged("truncated guest memory"),
            _ => Error::system(format!("read {}", path.display()), e),
        })
    };
    let mut page = [0u8; PAGE_SIZE];
    // Bounded: every page at most once, then the end mark.
    for _ in 0..=memory.page_count() {
        let mut word = [0u8; 8];
        read(input, &mut word)?;
        let index = u64::from_le_bytes(word);
        if index == END {
            return Ok(());
        }
        if index >= memory.page_count() {
            return Err(damaged(&format!("page {index} beyond the guest's memory")));
        }
        read(input, &mut page)?;
        memory.write_page(index, &page)?;
    }
    Err(damaged("more pages than the guest's memory holds"))
}

impl Registry {
    /// `DOMAIN_SAVE(_FLAGS)`: writes a running or paused guest's definition
    /// (or `dxml`, same guest ABI) and memory to `to`, then stops it
    /// (stopped/saved); a transient guest disappears.
    pub fn save(
        &mut self,
        dom: &DomainRef,
        to: &Path,
        dxml: Option<&str>,
        flags: u32,
    ) -> Result<()> {
        check_flags(
            SAVE_OP,
            u64::from(flags),
            u64::from(save::BYPASS_CACHE | save::RUNNING | save::PAUSED),
        )?;
        save::check_running_paused(SAVE_OP, flags)?;
        let live = self.live_mut(&dom.uuid)?;
        let def = match dxml {
            Some(xml) => {
                let def = parse_def(xml)?;
                check_save_replacement(&live.def, &def, SAVE_OP)?;
                def
            }
            None => live.def.clone(),
        };
        let (state, reason) = (live.state, live.reason);
        let header = SaveHeader {
            magic: MAGIC,
            xml: def.format(&FormatOptions {
                secure: true,
                inactive: false,
                migratable: true,
            }),
            zstd: false,
            running: save::restore_running(flags, state == DomainState::Running),
        };
        // The pages are written from a guest that no longer changes them.
        live.pause(reason);
        let written = (|| {
            let file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(to)
                .map_err(system(format!("failed to create '{}'", to.display())))?;
            let mut out = BufWriter::new(file);
            write_image(&mut out, &header, &live.memory, to)?;
            let file = out
                .into_inner()
                .map_err(|e| Error::system(format!("write {}", to.display()), e.into_error()))?;
            file.sync_all()
                .map_err(system(format!("sync {}", to.display())))
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(to);
            if state == DomainState::Running {
                live.run(reason)?;
            }
            return Err(e);
        }
        self.stop(dom, shutoff_reason::SAVED, event_detail::STOPPED_SAVED)
    }

    /// `DOMAIN_RESTORE(_FLAGS)`: runs the guest saved in `from` (with
    /// `dxml` instead of the stored definition when it has the same guest
    /// ABI), running or paused as saved unless `flags` say otherwise. A
    /// defined shut-off guest of the same name and UUID comes back as that
    /// guest; an unknown one as a transient guest.
    pub fn restore(&mut self, from: &Path, dxml: Option<&str>, flags: u32) -> Result<DomainRef> {
        check_flags(
            RESTORE_OP,
            u64::from(flags),
            u64::from(save::BYPASS_CACHE | save::RUNNING | save::PAUSED),
        )?;
        save::check_running_paused(RESTORE_OP, flags)?;
        let (file, header, def) = IMAGE.open(from, dxml, RESTORE_OP)?;
        if header.zstd {
            return Err(Error::OperationFailed {
                operation: RESTORE_OP,
                reason: format!(
                    "{} is not a usable save image: compressed test images are not supported",
                    from.display()
                ),
            });
        }
        let mut input = BufReader::new(file);
        let exists = self.check_startable(&def)?;
        let memory = Arc::new(GuestMemory::new(def.memory_kib.saturating_mul(1024))?);
        read_pages(&mut input, &memory, from)?;
        let paused = flags & save::PAUSED != 0;
        let live = Live::restore(
            self.next_id,
            SavedState {
                def: def.clone(),
                memory,
                running: save::restore_running(flags, header.running),
            },
            paused,
        )?;
        let paused = live.state == DomainState::Paused;
        let dom = self.add_live(def, live, exists)?;
        self.emit_started(&dom, event_detail::STARTED_RESTORED, paused);
        Ok(dom)
    }
}
