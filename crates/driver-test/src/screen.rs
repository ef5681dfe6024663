//! The test driver's screen: a fixed grayscale PNG, drawn and encoded here
//! (libvirt's test driver streams a PNG it ships; this one needs no file).
//!
//! The encoder is the smallest valid PNG writer: one IHDR, one IDAT whose
//! zlib stream uses stored (uncompressed) deflate blocks, one IEND, each
//! chunk with its CRC-32.

/// Width of the screen, pixels.
pub const WIDTH: u32 = 320;
/// Height of the screen, pixels.
pub const HEIGHT: u32 = 200;

/// The PNG file signature.
const SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];
/// Largest payload of one stored deflate block.
const STORED_MAX: usize = 65_535;

/// The screen as a PNG file: a gray background with a lighter band, so a
/// viewer shows something.
pub fn image() -> Vec<u8> {
    let mut raw = Vec::with_capacity(((WIDTH + 1) * HEIGHT) as usize);
    for y in 0..HEIGHT {
        raw.push(0); // filter: none
        let shade = if (HEIGHT / 3..2 * HEIGHT / 3).contains(&y) {
            0xc0
        } else {
            0x40
        };
        raw.extend(std::iter::repeat(shade).take(WIDTH as usize));
    }
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&WIDTH.to_be_bytes());
    ihdr.extend_from_slice(&HEIGHT.to_be_bytes());
    // 8-bit grayscale, deflate, adaptive filtering, no interlace.
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
    let mut png = SIGNATURE.to_vec();
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(&mut png, b"IDAT", &zlib_stored(&raw));
    chunk(&mut png, b"IEND", &[]);
    png
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    let len = u32::try_from(data.len()).expect("chunk sizes here are small");
    out.extend_from_slice(&len.to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// A zlib stream of `data` in stored deflate blocks.
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    // CMF: deflate, 32K window; FLG: no dictionary, check bits so the
    // 16-bit header is a multiple of 31.
    let mut out = vec![0x78, 0x01];
    let mut blocks = data.chunks(STORED_MAX).peekable();
    if blocks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(block) = blocks.next() {
        out.push(u8::from(blocks.peek().is_none()));
        let len = u16::try_from(block.len()).expect("blocks are at most 65535 bytes");
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    out.extend_from_slice(&adler32(data).to_be_bytes());
    out
}

fn adler32(data: &[u8]) -> u32 {
    const MOD: u32 = 65_521;
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in data {
        a = (a + u32::from(byte)) % MOD;
        b = (b + a) % MOD;
    }
    (b << 16) | a
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_match_their_reference_values() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(adler32(b"Wikipedia"), 0x11e6_0398);
    }

    #[test]
    fn image_is_a_png_whose_chunks_check_out() {
        let png = image();
        assert_eq!(png[..8], SIGNATURE);
        let mut at = 8;
        let mut kinds = Vec::new();
        let mut idat_len = 0;
        while at < png.len() {
            let len = u32::from_be_bytes(png[at..at + 4].try_into().expect("4")) as usize;
            let body = &png[at + 4..at + 8 + len];
            let crc = u32::from_be_bytes(png[at + 8 + len..at + 12 + len].try_into().expect("4"));
            assert_eq!(crc32(body), crc);
            kinds.push(String::from_utf8_lossy(&body[..4]).into_owned());
            if &body[..4] == b"IDAT" {
                idat_len = len;
            }
            at += 12 + len;
        }
        assert_eq!(kinds, ["IHDR", "IDAT", "IEND"]);
        // Header, the rows with their filter bytes, 5 bytes per block, adler.
        let raw = ((WIDTH + 1) * HEIGHT) as usize;
        assert_eq!(idat_len, 2 + raw + 5 * raw.div_ceil(STORED_MAX) + 4);
        assert_eq!(png[16..24], [0, 0, 1, 64, 0, 0, 0, 200]);
    }
}
