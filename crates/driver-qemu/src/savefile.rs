//! The header of a save image (`virsh save`).
//!
//! ```text
//! magic     8 bytes  "MGRDQSV1"
//! version   u32 LE   1
//! flags     u32 LE   bit 0: the stream is zstd-compressed; bit 1: the guest was running
//! xml_len   u32 LE   at most MAX_XML_BYTES
//! xml       xml_len bytes of UTF-8: the domain XML (secure, live)
//! stream    QEMU's migration stream, raw or as one zstd stream, to the end of the file
//! ```
//!
//! The header is read with exact-size reads straight from the file, so the
//! file offset afterwards is the start of the stream and QEMU can be handed
//! the descriptor as it is.

use std::io::{Read, Write};
use std::path::Path;

use migrated_core::xml::MAX_XML_BYTES;

use crate::error::{Error, Result};

/// First bytes of every save image.
pub const MAGIC: [u8; 8] = *b"MGRDQSV1";

/// Header layout version.
pub const VERSION: u32 = 1;

/// Bytes before the XML: magic, version, flags, XML length.
const FIXED_LEN: usize = 20;

const FLAG_ZSTD: u32 = 1 << 0;
const FLAG_RUNNING: u32 = 1 << 1;

/// What precedes the migration stream in a save image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaveHeader {
    /// The domain XML to restore with.
    pub xml: String,
    /// Whether the stream is zstd-compressed.
    pub zstd: bool,
    /// Whether the guest was running when saved (restored running by default).
    pub running: bool,
}

impl SaveHeader {
    /// The header's size in the file: where the stream starts.
    pub fn encoded_len(&self) -> usize {
        FIXED_LEN + self.xml.len()
    }

    /// Writes the header.
    ///
    /// # Errors
    /// [`Error::File`] on a write error, [`Error::InvalidConfig`] for an XML over the bound.
    pub fn write_to(&self, out: &mut impl Write, path: &Path) -> Result<()> {
        let len = u32::try_from(self.xml.len())
            .ok()
            .filter(|&l| l as usize <= MAX_XML_BYTES)
            .ok_or_else(|| Error::InvalidConfig {
                reason: format!("domain xml larger than {MAX_XML_BYTES} bytes"),
            })?;
        let flags =
            if self.zstd { FLAG_ZSTD } else { 0 } | if self.running { FLAG_RUNNING } else { 0 };
        let mut buf = Vec::with_capacity(self.encoded_len());
        buf.extend_from_slice(&MAGIC);
        buf.extend_from_slice(&VERSION.to_le_bytes());
        buf.extend_from_slice(&flags.to_le_bytes());
        buf.extend_from_slice(&len.to_le_bytes());
        buf.extend_from_slice(self.xml.as_bytes());
        out.write_all(&buf)
            .map_err(|e| Error::file("write", path, e))
    }

    /// Reads and checks a header.
    ///
    /// # Errors
    /// [`Error::SaveImage`] when the file is not a save image of ours or is
    /// damaged, [`Error::File`] on a read error.
    pub fn read_from(input: &mut impl Read, path: &Path) -> Result<Self> {
        let bad = |reason: &str| Error::SaveImage {
            path: path.to_owned(),
            reason: reason.into(),
        };
        let mut fixed = [0u8; FIXED_LEN];
        input.read_exact(&mut fixed).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => bad("failed to read qemu header"),
            _ => Error::file("read", path, e),
        })?;
        if fixed[..8] != MAGIC {
            return Err(bad("image magic is incorrect"));
        }
        let word = |at: usize| {
            u32::from_le_bytes([fixed[at], fixed[at + 1], fixed[at + 2], fixed[at + 3]])
        };
        if word(8) != VERSION {
            return Err(bad(&format!("unsupported save image version {}", word(8))));
        }
        let flags = word(12);
        if flags & !(FLAG_ZSTD | FLAG_RUNNING) != 0 {
            return Err(bad(&format!("unknown header flags 0x{flags:x}")));
        }
        let len = word(16) as usize;
        if len > MAX_XML_BYTES {
            return Err(bad("domain xml length over the bound"));
        }
        let mut xml = vec![0u8; len];
        input.read_exact(&mut xml).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => bad("truncated domain xml"),
            _ => Error::file("read", path, e),
        })?;
        let xml = String::from_utf8(xml).map_err(|_| bad("domain xml is not utf-8"))?;
        Ok(Self {
            xml,
            zstd: flags & FLAG_ZSTD != 0,
            running: flags & FLAG_RUNNING != 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_leaves_the_reader_at_the_stream() {
        let h = SaveHeader {
            xml: "<domain type='qemu'/>".into(),
            zstd: true,
            running: false,
        };
        let mut buf = Vec::new();
        h.write_to(&mut buf, Path::new("x")).expect("write");
        buf.extend_from_slice(b"STREAM");
        let mut r = &buf[..];
        assert_eq!(
            SaveHeader::read_from(&mut r, Path::new("x")).expect("read"),
            h
        );
        assert_eq!(r, b"STREAM");
    }

    #[test]
    fn refuses_foreign_or_damaged_files() {
        let p = Path::new("x");
        let mut good = Vec::new();
        SaveHeader {
            xml: "<domain/>".into(),
            zstd: false,
            running: true,
        }
        .write_to(&mut good, p)
        .expect("write");
        let cases: Vec<Vec<u8>> = vec![
            b"LibvirtQemudSave".to_vec(),
            good[..10].to_vec(),
            good[..good.len() - 1].to_vec(),
            {
                let mut v = good.clone();
                v[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
                v
            },
            {
                let mut v = good.clone();
                v[12] = 0x80;
                v
            },
        ];
        for case in cases {
            let err = SaveHeader::read_from(&mut &case[..], p).expect_err("refused");
            assert!(matches!(err, Error::SaveImage { .. }), "{err:?}");
        }
    }
}
