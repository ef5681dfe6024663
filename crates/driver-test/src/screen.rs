//! The test driver's screen: a fixed grayscale image, drawn here and encoded
//! as PNG by the `png` crate (libvirt's test driver streams a PNG it ships;
//! this one needs no file).

use migrated_core::{Error, Result};

/// Width of the screen, pixels.
pub const WIDTH: u32 = 320;
/// Height of the screen, pixels.
pub const HEIGHT: u32 = 200;

/// The screen's pixels, one 8-bit gray value each, row by row: a dark
/// background with a lighter band, so a viewer shows something.
fn pixels() -> Vec<u8> {
    (0..HEIGHT)
        .flat_map(|y| {
            let shade = if (HEIGHT / 3..2 * HEIGHT / 3).contains(&y) {
                0xc0
            } else {
                0x40
            };
            std::iter::repeat(shade).take(WIDTH as usize)
        })
        .collect()
}

/// The screen as a PNG file.
///
/// # Errors
/// [`Error::Internal`] if the encoder fails (it has no reason to: the image
/// is built in memory with the size the header gives).
pub fn image() -> Result<Vec<u8>> {
    let encode = || -> std::result::Result<Vec<u8>, png::EncodingError> {
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, WIDTH, HEIGHT);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&pixels())?;
        writer.finish()?;
        Ok(out)
    };
    encode().map_err(|e| Error::internal(format!("cannot encode the screenshot: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_decodes_to_the_drawn_screen() {
        let png = image().expect("encode");
        let mut reader = png::Decoder::new(std::io::Cursor::new(png))
            .read_info()
            .expect("a PNG header");
        let mut decoded = vec![0; reader.output_buffer_size()];
        let frame = reader.next_frame(&mut decoded).expect("one frame");
        assert_eq!((frame.width, frame.height), (WIDTH, HEIGHT));
        assert_eq!(frame.color_type, png::ColorType::Grayscale);
        assert_eq!(frame.bit_depth, png::BitDepth::Eight);
        assert_eq!(&decoded[..frame.buffer_size()], pixels().as_slice());
        // The band is lighter than the background.
        let row = |y: u32| decoded[(y * WIDTH) as usize];
        assert_eq!(
            (row(0), row(HEIGHT / 2), row(HEIGHT - 1)),
            (0x40, 0xc0, 0x40)
        );
    }
}
