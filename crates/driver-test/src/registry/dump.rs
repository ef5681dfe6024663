//! `virsh dump` and `virsh screenshot` of test guests, as libvirt's test
//! driver (`testDomainCoreDumpWithFormat`, `testDomainScreenshot`).
//!
//! libvirt's test driver has no memory to dump: it writes its save magic
//! (`TEST_SAVE_MAGIC`, "TestGuestMagic" and its NUL) into the file, refuses
//! formats other than raw after writing it, and with `VIR_DUMP_CRASH`
//! stops the guest (shut off, reason crashed). Its screenshot is a fixed
//! PNG (libvirt ships one; this driver draws its own, [`crate::screen`])
//! whatever the screen number and whether or not the guest runs.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use migrated_core::domain::{event_detail, shutoff_reason, DomainRef, Screenshot};
use migrated_core::flags::{check_flags, dump};
use migrated_core::{Error, Result};

use super::Registry;

/// What libvirt's test driver writes as a core dump.
pub const DUMP_MAGIC: &[u8; 15] = b"TestGuestMagic\0";

const DUMP_OP: &str = "virDomainCoreDumpWithFormat";

impl Registry {
    /// `DOMAIN_CORE_DUMP(_WITH_FORMAT)` of a running or paused guest.
    pub fn core_dump(
        &mut self,
        dom: &DomainRef,
        to: &Path,
        format: dump::Format,
        flags: u32,
    ) -> Result<()> {
        check_flags(DUMP_OP, u64::from(flags), u64::from(dump::CRASH))?;
        let name = self.get(dom)?.config.name.clone();
        self.live_mut(&dom.uuid)?;
        let failed = |what: String| {
            let name = name.clone();
            move |e: std::io::Error| Error::system(format!("domain '{name}' coredump: {what}"), e)
        };
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(to)
            .map_err(failed(format!("open {}", to.display())))?;
        file.write_all(DUMP_MAGIC)
            .and_then(|()| file.sync_all())
            .map_err(failed(format!("write header to {}", to.display())))?;
        // As libvirt: the file is written before the format is refused.
        if format != dump::Format::Raw {
            return Err(Error::OperationUnsupported {
                reason: "kdump-compressed format is not supported here".into(),
            });
        }
        if flags & dump::CRASH != 0 {
            self.stop(dom, shutoff_reason::CRASHED, event_detail::STOPPED_CRASHED)?;
        }
        Ok(())
    }

    /// `DOMAIN_SCREENSHOT`: the fixed image, for any screen of a known
    /// guest.
    pub fn screenshot(&self, dom: &DomainRef, screen: u32, flags: u32) -> Result<Screenshot> {
        check_flags("virDomainScreenshot", u64::from(flags), 0)?;
        let _ = screen;
        self.get(dom)?;
        Ok(Screenshot {
            mime: "image/png".into(),
            data: crate::screen::image()?,
        })
    }
}
