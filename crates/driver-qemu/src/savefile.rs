//! The header of this driver's save images (`virsh save`): the shared
//! [`migrated_core::savefile`] layout with the QEMU driver's magic, followed
//! by QEMU's migration stream, raw or as one zstd stream.

use std::io::Read;
use std::path::Path;

pub use migrated_core::savefile::SaveHeader;
use migrated_core::Result;

/// First bytes of every QEMU save image.
pub const MAGIC: [u8; 8] = *b"MGRDQSV1";

/// A header of this driver's images.
pub fn header(xml: String, zstd: bool, running: bool) -> SaveHeader {
    SaveHeader {
        magic: MAGIC,
        xml,
        zstd,
        running,
    }
}

/// Reads and checks the header of one of this driver's images.
///
/// # Errors
/// As [`SaveHeader::read_from`].
pub fn read_header(
    input: &mut impl Read,
    path: &Path,
    operation: &'static str,
) -> Result<SaveHeader> {
    SaveHeader::read_from(input, MAGIC, path, operation)
}
