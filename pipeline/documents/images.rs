//! The integrator's logo and footer banner: checked when `render` loads
//! them (format and pixel size, formats.md: jpg/png, 95×95 px and 760×95 px
//! at 300 dpi), then inlined in each page as a `data:` URI, so the printed
//! page needs no file and no network.
//!
//! Only the headers are read (PNG's IHDR, JPEG's start-of-frame): no image
//! is decoded or re-encoded, the PDF carries the integrator's own bytes.
//! `density` reads the resolution the file declares (PNG's pHYs, JPEG's
//! JFIF header) for `check`; the page places an image by its size in mm,
//! so a wrong density does not change the printed invoice.

use std::path::Path;

use base64::Engine;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("cannot read the {role} {path}: {source}")]
    Read {
        role: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the {role} {path} is not a PNG or JPEG image")]
    Format { role: &'static str, path: String },
    #[error("the {role} {path} is {width}×{height} px; it must be {want_width}×{want_height} px ({want_mm} at 300 dpi)")]
    Size {
        role: &'static str,
        path: String,
        width: u32,
        height: u32,
        want_width: u32,
        want_height: u32,
        want_mm: &'static str,
    },
}

/// What the invoice needs of an image: the bytes as a `data:` URI.
#[derive(Debug, Clone)]
pub struct Image {
    pub mime: &'static str,
    pub width: u32,
    pub height: u32,
    pub data_uri: String,
}

/// Which image, with the size formats.md requires.
#[derive(Debug, Clone, Copy)]
pub struct Slot {
    pub role: &'static str,
    pub width: u32,
    pub height: u32,
    /// The printed size, for the error message.
    pub mm: &'static str,
}

pub const LOGO: Slot = Slot {
    role: "logo",
    width: 95,
    height: 95,
    mm: "8.0 × 8.0 mm",
};

pub const BANNER: Slot = Slot {
    role: "footer banner",
    width: 760,
    height: 95,
    mm: "64.3 × 8.0 mm",
};

/// Reads and checks an image file for a slot.
pub fn load(path: &Path, slot: Slot) -> Result<Image, ImageError> {
    let bytes = std::fs::read(path).map_err(|source| ImageError::Read {
        role: slot.role,
        path: path.display().to_string(),
        source,
    })?;
    check(&bytes, &path.display().to_string(), slot)
}

/// Checks image bytes for a slot (`name` only for messages).
pub fn check(bytes: &[u8], name: &str, slot: Slot) -> Result<Image, ImageError> {
    let (mime, width, height) = dimensions(bytes).ok_or_else(|| ImageError::Format {
        role: slot.role,
        path: name.to_string(),
    })?;
    if (width, height) != (slot.width, slot.height) {
        return Err(ImageError::Size {
            role: slot.role,
            path: name.to_string(),
            width,
            height,
            want_width: slot.width,
            want_height: slot.height,
            want_mm: slot.mm,
        });
    }
    let data_uri = format!(
        "data:{mime};base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    );
    Ok(Image {
        mime,
        width,
        height,
        data_uri,
    })
}

/// The MIME type and pixel size of a PNG or JPEG, from its header.
pub fn dimensions(bytes: &[u8]) -> Option<(&'static str, u32, u32)> {
    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n";
    if bytes.starts_with(PNG) {
        // The first chunk is IHDR: length, "IHDR", width, height (big endian).
        if bytes.len() < 24 || &bytes[12..16] != b"IHDR" {
            return None;
        }
        let width = u32::from_be_bytes(bytes[16..20].try_into().ok()?);
        let height = u32::from_be_bytes(bytes[20..24].try_into().ok()?);
        return Some(("image/png", width, height));
    }
    if bytes.starts_with(&[0xFF, 0xD8]) {
        return jpeg_dimensions(bytes).map(|(w, h)| ("image/jpeg", w, h));
    }
    None
}

/// The resolution a PNG or JPEG declares, in dots per inch (horizontal,
/// vertical): PNG's pHYs chunk in pixels per metre, JPEG's JFIF header in
/// dots per inch or per cm. None when the file declares none (no pHYs, no
/// JFIF, or an aspect ratio without unit).
pub fn density(bytes: &[u8]) -> Option<(u32, u32)> {
    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n";
    // Per metre (PNG) or per cm (JFIF) to per inch, rounded: 11811 px/m
    // and 118 dots/cm are both 300 dpi.
    let from_metre = |value: u32| ((value as u64 * 254 + 5_000) / 10_000) as u32;
    let from_cm = |value: u32| ((value as u64 * 254 + 50) / 100) as u32;
    if bytes.starts_with(PNG) {
        let mut at = 8;
        while at + 8 <= bytes.len() {
            let length = u32::from_be_bytes(bytes[at..at + 4].try_into().ok()?) as usize;
            let kind = &bytes[at + 4..at + 8];
            if kind == b"IDAT" || kind == b"IEND" {
                return None;
            }
            if kind == b"pHYs" {
                let data = bytes.get(at + 8..at + 17)?;
                let x = u32::from_be_bytes(data[0..4].try_into().ok()?);
                let y = u32::from_be_bytes(data[4..8].try_into().ok()?);
                // Unit 1: the metre; 0: an aspect ratio only.
                return (data[8] == 1).then(|| (from_metre(x), from_metre(y)));
            }
            at += 12 + length;
        }
        return None;
    }
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF, 0xE0]) {
        // APP0: length, "JFIF\0", version (2), units, x density, y density.
        let app0 = bytes.get(6..18)?;
        if &app0[..5] != b"JFIF\0" {
            return None;
        }
        let x = u16::from_be_bytes([app0[8], app0[9]]) as u32;
        let y = u16::from_be_bytes([app0[10], app0[11]]) as u32;
        return match app0[7] {
            1 => Some((x, y)),
            2 => Some((from_cm(x), from_cm(y))),
            _ => None,
        };
    }
    None
}

/// Walks a JPEG's markers to its start-of-frame.
fn jpeg_dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    let mut at = 2;
    while at + 4 <= bytes.len() {
        if bytes[at] != 0xFF {
            return None;
        }
        let marker = bytes[at + 1];
        if marker == 0xFF {
            at += 1;
            continue;
        }
        // Markers without a length: TEM and the restart markers.
        if marker == 0x01 || (0xD0..=0xD7).contains(&marker) {
            at += 2;
            continue;
        }
        let length = u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]) as usize;
        // SOF0..SOF15 but DHT (C4), JPG (C8) and DAC (CC).
        let is_frame = (0xC0..=0xCF).contains(&marker) && ![0xC4, 0xC8, 0xCC].contains(&marker);
        if is_frame {
            let frame = bytes.get(at + 4..at + 9)?;
            let height = u16::from_be_bytes([frame[1], frame[2]]) as u32;
            let width = u16::from_be_bytes([frame[3], frame[4]]) as u32;
            return Some((width, height));
        }
        at += 2 + length;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real PNG (grey), declaring `per_metre` pixels per metre (pHYs)
    /// when given.
    fn png(width: u32, height: u32, per_metre: Option<u32>) -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut encoder = ::png::Encoder::new(&mut bytes, width, height);
        encoder.set_color(::png::ColorType::Grayscale);
        encoder.set_depth(::png::BitDepth::Eight);
        encoder.set_pixel_dims(per_metre.map(|ppm| ::png::PixelDimensions {
            xppu: ppm,
            yppu: ppm,
            unit: ::png::Unit::Meter,
        }));
        let mut writer = encoder.write_header().expect("the PNG header");
        writer
            .write_image_data(&vec![0x80; (width * height) as usize])
            .expect("the PNG's pixels");
        writer.finish().expect("the PNG's end");
        bytes
    }

    fn jpeg_header(width: u16, height: u16) -> Vec<u8> {
        let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10];
        bytes.extend(b"JFIF\0\x01\x01\x01\x01\x2c\x01\x2c\0\0");
        bytes.extend([0xFF, 0xC0, 0x00, 0x11, 0x08]);
        bytes.extend(height.to_be_bytes());
        bytes.extend(width.to_be_bytes());
        bytes.extend([3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
        bytes
    }

    #[test]
    fn reads_png_and_jpeg_sizes() {
        assert_eq!(dimensions(&png(95, 95, None)), Some(("image/png", 95, 95)));
        assert_eq!(
            dimensions(&jpeg_header(760, 95)),
            Some(("image/jpeg", 760, 95))
        );
        assert_eq!(dimensions(b"GIF89a...."), None);
    }

    #[test]
    fn refuses_a_wrong_size_in_one_line() {
        let err = check(&png(100, 95, None), "logo.png", LOGO).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the logo logo.png is 100×95 px; it must be 95×95 px (8.0 × 8.0 mm at 300 dpi)"
        );
        let err = check(b"not an image", "banner.bmp", BANNER).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the footer banner banner.bmp is not a PNG or JPEG image"
        );
    }

    #[test]
    fn reads_the_declared_density() {
        let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/samples");
        let logo = std::fs::read(samples.join("logo.png")).unwrap();
        assert_eq!(density(&logo), Some((300, 300)));
        // pHYs 3780 px/m = 96 dpi, 11811 px/m = 300 dpi; none at all.
        assert_eq!(density(&png(95, 95, Some(3780))), Some((96, 96)));
        assert_eq!(density(&png(95, 95, Some(11811))), Some((300, 300)));
        assert_eq!(density(&png(95, 95, None)), None);
        // JFIF 300 × 300 dots per inch (jpeg_header), and 118 dots per cm.
        assert_eq!(density(&jpeg_header(95, 95)), Some((300, 300)));
        let mut jpeg = jpeg_header(95, 95);
        jpeg[13] = 2;
        jpeg[14..18].copy_from_slice(&[0, 118, 0, 118]);
        assert_eq!(density(&jpeg), Some((300, 300)));
    }

    #[test]
    fn inlines_a_checked_image() {
        let image = check(&jpeg_header(95, 95), "logo.jpg", LOGO).unwrap();
        assert!(image.data_uri.starts_with("data:image/jpeg;base64,/9j/"));
    }
}
