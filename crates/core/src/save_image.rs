//! `virsh save-image-dumpxml` / `save-image-define` on a driver's save
//! images ([`crate::savefile`] header, then the driver's guest state), one
//! implementation for every driver: a driver describes its images with an
//! [`ImageFormat`].

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::abi::check_save_replacement;
use crate::error::{Error, Result};
use crate::flags::{check_flags, save};
use crate::savefile::SaveHeader;
use crate::xml::{DomainDef, FormatOptions};

/// How a driver reads its save images.
#[derive(Debug, Clone, Copy)]
pub struct ImageFormat {
    /// The driver's magic ([`SaveHeader::magic`]).
    pub magic: [u8; 8],
    /// The driver's parse of a domain XML (its domain type checks).
    pub parse: fn(&str) -> Result<DomainDef>,
    /// The driver's error for an image that cannot be opened.
    pub open_failed: fn(&Path, std::io::Error) -> Error,
}

impl ImageFormat {
    /// Opens the image at `path`: the file positioned at the guest state,
    /// its header, and the definition to restore (the image's, or `dxml`
    /// when it describes the same guest, see [`ImageFormat::replacement`]).
    ///
    /// # Errors
    /// `open_failed`'s error; [`SaveHeader::read_from`]'s; the parse's.
    pub fn open(
        &self,
        path: &Path,
        dxml: Option<&str>,
        op: &'static str,
    ) -> Result<(File, SaveHeader, DomainDef)> {
        let mut file = File::open(path).map_err(|e| (self.open_failed)(path, e))?;
        let header = SaveHeader::read_from(&mut file, self.magic, path, op)?;
        let saved = (self.parse)(&header.xml)?;
        let def = match dxml {
            Some(xml) => self.replacement(&saved, xml, op)?,
            None => saved,
        };
        Ok((file, header, def))
    }

    /// The definition `xml` gives a guest saved as `saved`: the same domain
    /// (name and UUID) with the same guest ABI, as libvirt's
    /// `qemuSaveImageUpdateDef` (the image's guest state must fit it).
    ///
    /// # Errors
    /// The parse's; [`check_save_replacement`]'s.
    pub fn replacement(&self, saved: &DomainDef, xml: &str, op: &'static str) -> Result<DomainDef> {
        let def = (self.parse)(xml)?;
        check_save_replacement(saved, &def, op)?;
        Ok(def)
    }

    /// The stored XML of the image at `path`, as `virDomainSaveImageGetXMLDesc`
    /// formats it: secrets only with `VIR_DOMAIN_SAVE_IMAGE_XML_SECURE`.
    ///
    /// # Errors
    /// Unknown flags; as [`ImageFormat::open`].
    pub fn xml(&self, path: &Path, flags: u32, op: &'static str) -> Result<String> {
        check_flags(op, u64::from(flags), u64::from(save::IMAGE_XML_SECURE))?;
        let (_, _, def) = self.open(path, None, op)?;
        Ok(def.format(&FormatOptions {
            secure: flags & save::IMAGE_XML_SECURE != 0,
            inactive: false,
            migratable: true,
        }))
    }

    /// Rewrites the header of the image at `path`: the XML replaced by
    /// `dxml` (see [`ImageFormat::replacement`]) and/or the state to restore
    /// to changed by `VIR_DOMAIN_SAVE_RUNNING` / `PAUSED`. Nothing to change
    /// is a success that leaves the file alone, as libvirt's
    /// `qemuDomainSaveImageDefineXML`; a failure leaves it as it was.
    ///
    /// # Errors
    /// Unknown or exclusive flags; as [`ImageFormat::open`] and
    /// [`ImageFormat::replacement`]; [`Error::System`] when writing fails.
    pub fn define_xml(
        &self,
        path: &Path,
        dxml: Option<&str>,
        flags: u32,
        op: &'static str,
    ) -> Result<()> {
        check_flags(
            op,
            u64::from(flags),
            u64::from(save::RUNNING | save::PAUSED),
        )?;
        save::check_running_paused(op, flags)?;
        let (mut file, old, saved) = self.open(path, None, op)?;
        let running = save::restore_running(flags, old.running);
        let xml = match dxml {
            Some(xml) if xml != old.xml => {
                self.replacement(&saved, xml, op)?.format(&FormatOptions {
                    secure: true,
                    inactive: false,
                    migratable: true,
                })
            }
            _ => old.xml.clone(),
        };
        if xml == old.xml && running == old.running {
            return Ok(());
        }
        let new = SaveHeader {
            xml,
            running,
            ..old.clone()
        };
        if new.encoded_len() == old.encoded_len() {
            // Same layout: only the header's bytes change, in place.
            let mut out = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| (self.open_failed)(path, e))?;
            new.write_to(&mut out, path)?;
            return out.sync_all().map_err(|e| sys("sync", path, e));
        }
        // `file` is positioned at the start of the guest state.
        let tmp = temp_path(path);
        let written = (|| {
            let mut out = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(|e| sys("create", &tmp, e))?;
            new.write_to(&mut out, &tmp)?;
            std::io::copy(&mut file, &mut out).map_err(|e| sys("copy into", &tmp, e))?;
            out.sync_all().map_err(|e| sys("sync", &tmp, e))?;
            std::fs::rename(&tmp, path).map_err(|e| sys("replace", path, e))
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written?;
        // The rename is durable once the directory is.
        if let Some(dir) = path.parent() {
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

fn sys(action: &str, path: &Path, e: std::io::Error) -> Error {
    Error::system(format!("{action} {}", path.display()), e)
}

/// A sibling of `path` to build its replacement in (same file system, so
/// the rename is atomic).
fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".migrated-define-{}", std::process::id()));
    path.with_file_name(name)
}
