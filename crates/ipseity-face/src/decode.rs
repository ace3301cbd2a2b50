//! Untrusted image decoding: bytes in, an upright [`RgbImage`] out, with no panic and no unbounded allocation.
//!
//! This is the only door through which pixels from outside enter the face
//! pipeline, so it is deliberately suspicious:
//!
//! 1. **Size of the input** is checked first ([`DecodeLimits::max_bytes`]);
//!    [`load_image`] looks at the file's metadata before reading and reads at
//!    most one byte more than the limit.
//! 2. **Format** comes from the magic bytes only (JPEG, PNG, BMP, TIFF); a file
//!    name or extension is never trusted. Anything else is
//!    [`DecodeError::NotAnImage`].
//! 3. **Header dimensions** are read before any pixel buffer exists; an image
//!    whose header claims more than [`DecodeLimits::max_pixels`] pixels or a
//!    side longer than [`DecodeLimits::max_side`] is refused with
//!    [`DecodeError::TooLarge`]. This is the decompression-bomb guard: a
//!    100 000 × 100 000 PNG of a few dozen bytes costs nothing. As a second
//!    guard the `image` crate's own [`image::Limits`] (side limits and an
//!    allocation budget) are set on the decoder.
//! 4. **Truncation**: a JPEG must reach its EOI marker (the decoder would
//!    otherwise return a grey-filled partial image without complaint); other
//!    formats rely on their decoder's error. Both give [`DecodeError::Corrupt`].
//! 5. **Colour**: every colour type becomes RGB8 through the `image` crate's
//!    conversions. Grey is replicated to three channels; alpha is *dropped*,
//!    not composited; 16-bit samples are scaled to 8 bits with rounding
//!    (`(v + 128) / 257`, not by taking the high byte); float TIFF samples are
//!    clamped to `[0, 1]` and scaled. CMYK / Adobe JPEGs are converted to RGB by
//!    the JPEG decoder itself (`zune-jpeg`, through `image` 0.25).
//! 6. **Orientation**: for JPEG and TIFF the EXIF `Orientation` tag (1–8) is
//!    read with `kamadak-exif` and applied with [`apply_exif_orientation`], so
//!    the result is upright. A missing or unreadable EXIF block means
//!    orientation 1: bad metadata never fails a decode.
//!
//! Error messages name the problem and the numbers involved, never pixel data.

use std::fs::File;
use std::io::{Cursor, Read};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader};

use crate::geom::RgbImage;

/// The smallest width and height accepted: nothing smaller can hold a face
/// the detector could find.
pub const MIN_SIDE: u32 = 16;

/// Bytes per pixel of the widest layout the enabled decoders can produce
/// (RGBA, 32-bit float samples, from TIFF); used to size the allocation budget.
const WIDEST_PIXEL_BYTES: u64 = 16;

/// Allowance on top of the pixel buffer for decoder internals (row buffers,
/// strips, Huffman tables).
const DECODER_SLACK_BYTES: u64 = 16 << 20;

/// Bounds on what [`decode_image`] and [`load_image`] accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Most pixels (`width * height`) an image may have; default 40 megapixels.
    pub max_pixels: u64,
    /// Most bytes an encoded image (or image file) may have; default 64 MiB.
    pub max_bytes: u64,
    /// Longest side in pixels; default 16384.
    pub max_side: u32,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_pixels: 40_000_000,
            max_bytes: 64 << 20,
            max_side: 16_384,
        }
    }
}

/// Why an image could not be decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The bytes do not start with the signature of a supported format
    /// (this includes an empty input).
    #[error("not an image: expected JPEG, PNG, BMP or TIFF")]
    NotAnImage,
    /// The encoded input is larger than [`DecodeLimits::max_bytes`].
    #[error("image file too large: {size} bytes, the limit is {limit} bytes")]
    FileTooLarge {
        /// Size of the input in bytes (for a file, as far as it was read).
        size: u64,
        /// The configured [`DecodeLimits::max_bytes`].
        limit: u64,
    },
    /// The header claims more pixels than [`DecodeLimits::max_pixels`] or a
    /// side longer than [`DecodeLimits::max_side`], or decoding it would
    /// exceed the allocation budget derived from them.
    #[error(
        "image too large: {width}x{height} is over the decode limits \
         (at most {limit} pixels, and no side longer than the side limit)"
    )]
    TooLarge {
        /// Width claimed by the header.
        width: u32,
        /// Height claimed by the header.
        height: u32,
        /// The configured [`DecodeLimits::max_pixels`].
        limit: u64,
    },
    /// The image is narrower or shorter than [`MIN_SIDE`].
    #[error("image too small: {width}x{height}, need at least {min}x{min} pixels")]
    TooSmall {
        /// Width of the image.
        width: u32,
        /// Height of the image.
        height: u32,
        /// [`MIN_SIDE`].
        min: u32,
    },
    /// A supported container using a feature the decoder does not implement
    /// (an exotic TIFF compression, a 12-bit JPEG, ...).
    #[error("unsupported image: {0}")]
    Unsupported(String),
    /// Truncated or malformed data.
    #[error("corrupt or truncated image: {0}")]
    Corrupt(String),
    /// The image file could not be read.
    #[error("cannot read image file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// Decodes an encoded image held in memory into an upright RGB8 image.
///
/// See the [module documentation](self) for the checks, in the order made.
pub fn decode_image(bytes: &[u8], limits: &DecodeLimits) -> Result<RgbImage, DecodeError> {
    let size = bytes.len() as u64;
    if size > limits.max_bytes {
        return Err(DecodeError::FileTooLarge {
            size,
            limit: limits.max_bytes,
        });
    }
    let format = sniff_format(bytes).ok_or(DecodeError::NotAnImage)?;

    // The decoders are third-party code fed hostile bytes; a panic in one of
    // them becomes an error here rather than taking the process down. (Under
    // `cargo fuzz` a panic still aborts, so fuzzing still finds it.)
    let decoded = catch_unwind(AssertUnwindSafe(|| decode_pixels(bytes, format, limits)))
        .unwrap_or_else(|_| Err(DecodeError::Corrupt("the image decoder failed".into())))?;

    let orientation = match format {
        ImageFormat::Jpeg | ImageFormat::Tiff => exif_orientation(bytes),
        _ => 1,
    };
    Ok(apply_exif_orientation(decoded, orientation))
}

/// Reads and decodes an image file, as [`decode_image`].
///
/// The file's size is checked from its metadata before reading, and at most
/// `max_bytes + 1` bytes are read, so a file that grows meanwhile (or a
/// device that lies about its size) cannot make the read unbounded.
pub fn load_image(path: &Path, limits: &DecodeLimits) -> Result<RgbImage, DecodeError> {
    let io_err = |source| DecodeError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io_err)?;
    let declared = file.metadata().map_err(io_err)?.len();
    if declared > limits.max_bytes {
        return Err(DecodeError::FileTooLarge {
            size: declared,
            limit: limits.max_bytes,
        });
    }
    let cap = declared.min(limits.max_bytes).saturating_add(1);
    let mut bytes = Vec::with_capacity(usize::try_from(cap).unwrap_or(0));
    file.take(limits.max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io_err)?;
    decode_image(&bytes, limits)
}

/// Turns `image` upright according to an EXIF `Orientation` value.
///
/// The value says how the stored pixels must be transformed for display:
/// 1 as stored, 2 mirrored left-right, 3 rotated 180°, 4 mirrored top-bottom,
/// 5 transposed (mirrored about the main diagonal), 6 rotated 90° clockwise,
/// 7 transversed (mirrored about the anti-diagonal), 8 rotated 90°
/// counter-clockwise. Values 5–8 swap width and height. Any other value is
/// treated as 1 and returns `image` unchanged.
pub fn apply_exif_orientation(image: RgbImage, orientation: u32) -> RgbImage {
    if !(2..=8).contains(&orientation) {
        return image;
    }
    let (w, h) = (image.width, image.height);
    let swap = orientation >= 5;
    let (ow, oh) = if swap { (h, w) } else { (w, h) };
    let mut out = RgbImage::new(ow, oh);
    for y in 0..oh {
        for x in 0..ow {
            // The source pixel that lands at output (x, y).
            let (sx, sy) = match orientation {
                2 => (w - 1 - x, y),
                3 => (w - 1 - x, h - 1 - y),
                4 => (x, h - 1 - y),
                5 => (y, x),
                6 => (y, h - 1 - x),
                7 => (w - 1 - y, h - 1 - x),
                _ => (w - 1 - y, x), // 8
            };
            out.put(x, y, image.get(sx, sy));
        }
    }
    out
}

/// The format named by the first bytes, if it is one we decode.
fn sniff_format(bytes: &[u8]) -> Option<ImageFormat> {
    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n";
    let tiff = [
        b"II*\0".as_slice(),
        b"MM\0*".as_slice(),
        b"II+\0".as_slice(), // BigTIFF
        b"MM\0+".as_slice(),
    ];
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(ImageFormat::Jpeg)
    } else if bytes.starts_with(PNG) {
        Some(ImageFormat::Png)
    } else if bytes.starts_with(b"BM") {
        Some(ImageFormat::Bmp)
    } else if tiff.iter().any(|magic| bytes.starts_with(magic)) {
        Some(ImageFormat::Tiff)
    } else {
        None
    }
}

/// Header check, then the pixels, as RGB8, still in stored orientation.
fn decode_pixels(
    bytes: &[u8],
    format: ImageFormat,
    limits: &DecodeLimits,
) -> Result<RgbImage, DecodeError> {
    let budget = limits
        .max_pixels
        .saturating_mul(WIDEST_PIXEL_BYTES)
        .saturating_add(DECODER_SLACK_BYTES);

    // Stage 1: headers only. No side limit yet, so that an oversized image is
    // reported with its dimensions; the allocation budget already bounds what
    // header parsing may allocate.
    let mut header_limits = image::Limits::default();
    header_limits.max_alloc = Some(budget);
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(header_limits.clone());
    let mut decoder = reader.into_decoder().map_err(from_image_error)?;

    let (width, height) = decoder.dimensions();
    let too_large = DecodeError::TooLarge {
        width,
        height,
        limit: limits.max_pixels,
    };
    if u64::from(width) * u64::from(height) > limits.max_pixels
        || width > limits.max_side
        || height > limits.max_side
    {
        return Err(too_large);
    }
    if width < MIN_SIDE || height < MIN_SIDE {
        return Err(DecodeError::TooSmall {
            width,
            height,
            min: MIN_SIDE,
        });
    }
    if format == ImageFormat::Jpeg && !jpeg_reaches_eoi(bytes) {
        return Err(DecodeError::Corrupt(
            "JPEG data ends before its end-of-image marker".into(),
        ));
    }

    // JPEG goes through libjpeg-turbo's decoder (vendored, built from C source by
    // the mozjpeg crate): the reference implementation decodes with it, and the
    // pure-Rust decoders differ from it by a few levels on ~0.5% of samples,
    // which moves embeddings by up to 0.03 (measured on biden.jpg).
    if format == ImageFormat::Jpeg {
        if let Some(img) = decode_jpeg_libjpeg(bytes, width, height) {
            return Ok(img);
        }
    }

    // Stage 2: the second guard, the decoder's own limits, then the pixels.
    let mut full_limits = header_limits;
    full_limits.max_image_width = Some(limits.max_side);
    full_limits.max_image_height = Some(limits.max_side);
    full_limits
        .reserve(decoder.total_bytes())
        .map_err(|_| too_large_again(width, height, limits))?;
    decoder.set_limits(full_limits).map_err(|e| match e {
        ImageError::Limits(_) => too_large_again(width, height, limits),
        e => from_image_error(e),
    })?;
    let dynamic = DynamicImage::from_decoder(decoder).map_err(|e| match e {
        ImageError::Limits(_) => too_large_again(width, height, limits),
        e => from_image_error(e),
    })?;

    let rgb = dynamic.into_rgb8();
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    RgbImage::from_raw(w, h, rgb.into_raw())
        .ok_or_else(|| DecodeError::Corrupt("decoded buffer has the wrong length".into()))
}

/// Decodes a YCbCr, RGB or grayscale JPEG exactly as libjpeg-turbo does (islow
/// IDCT, fancy upsampling). `None` for other colour spaces (CMYK, YCCK), which
/// the `image` crate converts instead. libjpeg errors unwind as panics, which
/// `decode_image` catches.
fn decode_jpeg_libjpeg(bytes: &[u8], width: u32, height: u32) -> Option<RgbImage> {
    use mozjpeg::ColorSpace;
    let d = mozjpeg::Decompress::new_mem(bytes).ok()?;
    if !matches!(
        d.color_space(),
        ColorSpace::JCS_YCbCr | ColorSpace::JCS_GRAYSCALE | ColorSpace::JCS_RGB
    ) || (d.width(), d.height()) != (width as usize, height as usize)
    {
        return None;
    }
    let mut started = d.rgb().ok()?;
    let flat: Vec<u8> = started.read_scanlines::<u8>().ok()?;
    started.finish().ok()?;
    RgbImage::from_raw(width as usize, height as usize, flat)
}

fn too_large_again(width: u32, height: u32, limits: &DecodeLimits) -> DecodeError {
    DecodeError::TooLarge {
        width,
        height,
        limit: limits.max_pixels,
    }
}

/// Maps the `image` crate's error onto ours; the texts describe the fault,
/// never the pixel data.
fn from_image_error(e: ImageError) -> DecodeError {
    match e {
        ImageError::Unsupported(u) => DecodeError::Unsupported(u.to_string()),
        ImageError::Limits(l) => DecodeError::Corrupt(format!("decoder limit reached: {l}")),
        ImageError::IoError(io) => DecodeError::Corrupt(format!("unexpected end of data ({io})")),
        e => DecodeError::Corrupt(e.to_string()),
    }
}

/// Whether a JPEG stream reaches its EOI (`FF D9`) marker.
///
/// Walks the marker segments, skipping each by its length (so an EXIF
/// thumbnail's own EOI inside APP1 does not count), and through entropy-coded
/// data, where `FF 00` is a stuffed byte and `FF D0`–`FF D7` are restart
/// markers. Anything after EOI is allowed.
fn jpeg_reaches_eoi(bytes: &[u8]) -> bool {
    let mut i = 2; // past SOI
    while i + 1 < bytes.len() {
        if bytes[i] != 0xFF {
            i += 1;
            continue;
        }
        match bytes[i + 1] {
            0xD9 => return true,
            // Fill byte: the marker starts at the next FF.
            0xFF => i += 1,
            // Stuffed zero, TEM, restart markers, a stray SOI: no length.
            0x00 | 0x01 | 0xD0..=0xD8 => i += 2,
            _ => {
                let Some(len) = bytes.get(i + 2..i + 4) else {
                    return false;
                };
                let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
                if len < 2 {
                    return false;
                }
                i += 2 + len;
            }
        }
    }
    false
}

/// The EXIF orientation of a JPEG or TIFF, 1 when absent or unreadable.
fn exif_orientation(bytes: &[u8]) -> u32 {
    let read = || {
        let exif = exif::Reader::new()
            .read_from_container(&mut Cursor::new(bytes))
            .ok()?;
        exif.get_field(exif::Tag::Orientation, exif::In::PRIMARY)?
            .value
            .get_uint(0)
    };
    match catch_unwind(read) {
        Ok(Some(o)) if (1..=8).contains(&o) => o,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2 wide, 3 tall; each pixel holds its own (x, y) so moves are visible.
    fn two_by_three() -> RgbImage {
        let mut img = RgbImage::new(2, 3);
        for y in 0..3 {
            for x in 0..2 {
                img.put(x, y, [x as u8, y as u8, 7]);
            }
        }
        img
    }

    /// The source coordinates of each output pixel, row by row.
    fn layout(img: &RgbImage) -> Vec<Vec<(u8, u8)>> {
        (0..img.height)
            .map(|y| {
                (0..img.width)
                    .map(|x| {
                        let p = img.get(x, y);
                        (p[0], p[1])
                    })
                    .collect()
            })
            .collect()
    }

    // The source image, as (x, y) of each pixel:
    //   (0,0) (1,0)
    //   (0,1) (1,1)
    //   (0,2) (1,2)

    #[test]
    fn orientation_1_and_unknown_values_are_identity() {
        for o in [0, 1, 9, 65535] {
            assert_eq!(apply_exif_orientation(two_by_three(), o), two_by_three());
        }
    }

    #[test]
    fn orientation_2_mirrors_left_right() {
        let out = apply_exif_orientation(two_by_three(), 2);
        assert_eq!((out.width, out.height), (2, 3));
        assert_eq!(
            layout(&out),
            vec![
                vec![(1, 0), (0, 0)],
                vec![(1, 1), (0, 1)],
                vec![(1, 2), (0, 2)]
            ]
        );
    }

    #[test]
    fn orientation_3_rotates_180() {
        let out = apply_exif_orientation(two_by_three(), 3);
        assert_eq!((out.width, out.height), (2, 3));
        assert_eq!(
            layout(&out),
            vec![
                vec![(1, 2), (0, 2)],
                vec![(1, 1), (0, 1)],
                vec![(1, 0), (0, 0)]
            ]
        );
    }

    #[test]
    fn orientation_4_mirrors_top_bottom() {
        let out = apply_exif_orientation(two_by_three(), 4);
        assert_eq!((out.width, out.height), (2, 3));
        assert_eq!(
            layout(&out),
            vec![
                vec![(0, 2), (1, 2)],
                vec![(0, 1), (1, 1)],
                vec![(0, 0), (1, 0)]
            ]
        );
    }

    #[test]
    fn orientation_5_transposes() {
        let out = apply_exif_orientation(two_by_three(), 5);
        assert_eq!((out.width, out.height), (3, 2));
        assert_eq!(
            layout(&out),
            vec![vec![(0, 0), (0, 1), (0, 2)], vec![(1, 0), (1, 1), (1, 2)]]
        );
    }

    #[test]
    fn orientation_6_rotates_90_clockwise() {
        let out = apply_exif_orientation(two_by_three(), 6);
        assert_eq!((out.width, out.height), (3, 2));
        // The left column, read bottom to top, becomes the top row.
        assert_eq!(
            layout(&out),
            vec![vec![(0, 2), (0, 1), (0, 0)], vec![(1, 2), (1, 1), (1, 0)]]
        );
    }

    #[test]
    fn orientation_7_transverses() {
        let out = apply_exif_orientation(two_by_three(), 7);
        assert_eq!((out.width, out.height), (3, 2));
        assert_eq!(
            layout(&out),
            vec![vec![(1, 2), (1, 1), (1, 0)], vec![(0, 2), (0, 1), (0, 0)]]
        );
    }

    #[test]
    fn orientation_8_rotates_90_counter_clockwise() {
        let out = apply_exif_orientation(two_by_three(), 8);
        assert_eq!((out.width, out.height), (3, 2));
        // The right column, read top to bottom, becomes the top row.
        assert_eq!(
            layout(&out),
            vec![vec![(1, 0), (1, 1), (1, 2)], vec![(0, 0), (0, 1), (0, 2)]]
        );
    }

    #[test]
    fn each_orientation_is_undone_by_its_inverse() {
        // 6 and 8 are each other's inverse; every other transform is an involution.
        for (o, inverse) in [(2, 2), (3, 3), (4, 4), (5, 5), (6, 8), (7, 7), (8, 6)] {
            let there = apply_exif_orientation(two_by_three(), o);
            assert_eq!(
                apply_exif_orientation(there, inverse),
                two_by_three(),
                "{o}"
            );
        }
    }

    #[test]
    fn sniffs_only_supported_magic() {
        assert_eq!(sniff_format(b"\xFF\xD8\xFF\xE0"), Some(ImageFormat::Jpeg));
        assert_eq!(sniff_format(b"\x89PNG\r\n\x1a\nxx"), Some(ImageFormat::Png));
        assert_eq!(sniff_format(b"BM...."), Some(ImageFormat::Bmp));
        assert_eq!(sniff_format(b"II*\0...."), Some(ImageFormat::Tiff));
        assert_eq!(sniff_format(b"MM\0*...."), Some(ImageFormat::Tiff));
        assert_eq!(sniff_format(b""), None);
        assert_eq!(sniff_format(b"GIF89a"), None);
        assert_eq!(sniff_format(b"\x89PNG"), None);
        assert_eq!(sniff_format(b"RIFF....WEBP"), None);
    }

    #[test]
    fn eoi_walk() {
        // SOI, APP1 of length 6 whose payload holds a fake EOI, no real EOI.
        let thumb_only = [0xFF, 0xD8, 0xFF, 0xE1, 0, 6, 0xFF, 0xD9, 0, 0];
        assert!(!jpeg_reaches_eoi(&thumb_only));
        // SOS of length 2, entropy data with a stuffed FF and a restart, EOI, trailing zeros.
        let complete = [
            0xFF, 0xD8, 0xFF, 0xDA, 0, 2, 0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56, 0xFF, 0xFF,
            0xD9, 0, 0, 0,
        ];
        assert!(jpeg_reaches_eoi(&complete));
        assert!(!jpeg_reaches_eoi(&complete[..14]));
        // A segment length running past the end, or below 2.
        assert!(!jpeg_reaches_eoi(&[0xFF, 0xD8, 0xFF, 0xE0, 0xFF, 0xFF]));
        assert!(!jpeg_reaches_eoi(&[
            0xFF, 0xD8, 0xFF, 0xE0, 0, 1, 0xFF, 0xD9
        ]));
        assert!(!jpeg_reaches_eoi(&[0xFF, 0xD8, 0xFF]));
    }

    #[test]
    fn oversized_input_is_refused_before_sniffing() {
        let limits = DecodeLimits {
            max_bytes: 4,
            ..DecodeLimits::default()
        };
        assert!(matches!(
            decode_image(b"hello", &limits),
            Err(DecodeError::FileTooLarge { size: 5, limit: 4 })
        ));
    }

    #[test]
    fn messages_are_operator_readable() {
        assert_eq!(
            DecodeError::NotAnImage.to_string(),
            "not an image: expected JPEG, PNG, BMP or TIFF"
        );
        let e = DecodeError::TooSmall {
            width: 4,
            height: 5,
            min: MIN_SIDE,
        };
        assert_eq!(
            e.to_string(),
            "image too small: 4x5, need at least 16x16 pixels"
        );
    }
}
