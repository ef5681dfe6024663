//! The header of a save image (`virsh save`), shared by the drivers.
//!
//! ```text
//! magic     8 bytes  the driver's (QEMU "MGRDQSV1", test "MGRDTSV1")
//! version   u32 LE   1
//! flags     u32 LE   bit 0: the stream is zstd-compressed; bit 1: the guest was running
//! xml_len   u32 LE   at most MAX_XML_BYTES
//! xml       xml_len bytes of UTF-8: the domain XML (secure, live)
//! stream    the driver's guest state (QEMU's migration stream, the test
//!           driver's pages), to the end of the file
//! ```
//!
//! The header is read with exact-size reads straight from the file, so the
//! file offset afterwards is the start of the stream and a driver can hand
//! the descriptor on as it is.

use std::io::{Read, Write};
use std::path::Path;

use crate::error::{Error, Result};
use crate::xml::MAX_XML_BYTES;

/// Header layout version.
pub const VERSION: u32 = 1;

/// Bytes before the XML: magic, version, flags, XML length.
const FIXED_LEN: usize = 20;

const FLAG_ZSTD: u32 = 1 << 0;
const FLAG_RUNNING: u32 = 1 << 1;

/// What precedes the guest state in a save image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaveHeader {
    /// The driver's magic: an image of another driver is refused.
    pub magic: [u8; 8],
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
    /// [`Error::System`] on a write error, [`Error::ConfigUnsupported`] for
    /// an XML over the bound.
    pub fn write_to(&self, out: &mut impl Write, path: &Path) -> Result<()> {
        let len = u32::try_from(self.xml.len())
            .ok()
            .filter(|&l| l as usize <= MAX_XML_BYTES)
            .ok_or_else(|| Error::ConfigUnsupported {
                reason: format!("domain xml larger than {MAX_XML_BYTES} bytes"),
            })?;
        let flags =
            if self.zstd { FLAG_ZSTD } else { 0 } | if self.running { FLAG_RUNNING } else { 0 };
        let mut buf = Vec::with_capacity(self.encoded_len());
        buf.extend_from_slice(&self.magic);
        buf.extend_from_slice(&VERSION.to_le_bytes());
        buf.extend_from_slice(&flags.to_le_bytes());
        buf.extend_from_slice(&len.to_le_bytes());
        buf.extend_from_slice(self.xml.as_bytes());
        out.write_all(&buf)
            .map_err(|e| Error::system(format!("write {}", path.display()), e))
    }

    /// Reads and checks a header with `magic`; `operation` names the call in
    /// errors.
    ///
    /// # Errors
    /// [`Error::OperationFailed`] when the file is not a save image of this
    /// driver or is damaged, [`Error::System`] on a read error.
    pub fn read_from(
        input: &mut impl Read,
        magic: [u8; 8],
        path: &Path,
        operation: &'static str,
    ) -> Result<Self> {
        let bad = |reason: &str| Error::OperationFailed {
            operation,
            reason: format!("{} is not a usable save image: {reason}", path.display()),
        };
        let io = |e: std::io::Error, truncated: &str| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => bad(truncated),
            _ => Error::system(format!("read {}", path.display()), e),
        };
        let mut fixed = [0u8; FIXED_LEN];
        input
            .read_exact(&mut fixed)
            .map_err(|e| io(e, "failed to read the header"))?;
        if fixed[..8] != magic {
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
        input
            .read_exact(&mut xml)
            .map_err(|e| io(e, "truncated domain xml"))?;
        let xml = String::from_utf8(xml).map_err(|_| bad("domain xml is not utf-8"))?;
        Ok(Self {
            magic,
            xml,
            zstd: flags & FLAG_ZSTD != 0,
            running: flags & FLAG_RUNNING != 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    const MAGIC: [u8; 8] = *b"MGRDXSV1";

    #[test]
    fn round_trips_and_leaves_the_reader_at_the_stream() {
        let h = SaveHeader {
            magic: MAGIC,
            xml: "<domain type='qemu'/>".into(),
            zstd: true,
            running: false,
        };
        let mut buf = Vec::new();
        h.write_to(&mut buf, Path::new("x")).expect("write");
        buf.extend_from_slice(b"STREAM");
        let mut r = &buf[..];
        assert_eq!(
            SaveHeader::read_from(&mut r, MAGIC, Path::new("x"), "op").expect("read"),
            h
        );
        assert_eq!(r, b"STREAM");
    }

    #[test]
    fn refuses_foreign_or_damaged_files() {
        let p = Path::new("x");
        let mut good = Vec::new();
        SaveHeader {
            magic: MAGIC,
            xml: "<domain/>".into(),
            zstd: false,
            running: true,
        }
        .write_to(&mut good, p)
        .expect("write");
        let other_driver = {
            let mut v = good.clone();
            v[..8].copy_from_slice(b"MGRDQSV1");
            v
        };
        let cases: Vec<Vec<u8>> = vec![
            b"LibvirtQemudSave".to_vec(),
            other_driver,
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
            let err = SaveHeader::read_from(&mut &case[..], MAGIC, p, "op").expect_err("refused");
            assert_eq!(err.code(), ErrorCode::OperationFailed, "{err:?}");
            assert!(err.to_string().contains("not a usable save image"), "{err}");
        }
    }
}
