//! Untrusted image decoding: bytes in, an upright [`RgbImage`] out, with no panic and no unbounded allocation.
//!
//! This is the only door through which pixels from outside enter the face
//! pipeline, so it is deliberately suspicious:
//!
//! 1. **Size of the input** is checked first ([`DecodeLimits::max_bytes`]);
//!    [`load_image`] looks at the file's metadata before reading and reads at
//!    most one byte more than the limit. It opens only regular files: a FIFO
//!    would block the open (or the read) forever and a device such as
//!    `/dev/zero` never ends, so both are [`DecodeError::NotARegularFile`].
//! 2. **Format** comes from the magic bytes only (JPEG, JPEG 2000 as a JP2
//!    file or a bare codestream, PNG, BMP, TIFF); a file
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
//!    otherwise return a grey-filled partial image without complaint), and
//!    libjpeg's warnings that it made up pixels (a marker or the end of the
//!    data inside a scan, a bad Huffman code, a lost restart) are errors, so a
//!    cut JPEG with an end marker appended is refused too; other formats rely
//!    on their decoder's error. All give [`DecodeError::Corrupt`].
//! 5. **Colour**: every colour type becomes RGB8 through the `image` crate's
//!    conversions. Grey is replicated to three channels; alpha is *dropped*,
//!    not composited; 16-bit samples are scaled to 8 bits with rounding
//!    (`(v + 128) / 257`, not by taking the high byte); float TIFF samples are
//!    clamped to `[0, 1]` and scaled. CMYK / Adobe JPEGs are converted to RGB by
//!    the JPEG decoder itself (`zune-jpeg`, through `image` 0.25). JPEG 2000
//!    (the face images of travel documents' chips) is decoded by the pure-Rust
//!    `hayro-jpeg2000` in its strict mode, so that a truncated codestream is
//!    refused rather than decoded at a lower quality; grey and RGB are taken,
//!    alpha dropped, other colour spaces refused as unsupported.
//! 6. **Orientation**: for JPEG and TIFF the EXIF `Orientation` tag (1–8) is
//!    read with `kamadak-exif` and applied with [`apply_exif_orientation`], so
//!    the result is upright. A missing or unreadable EXIF block means
//!    orientation 1: bad metadata never fails a decode.
//!
//! Error messages name the problem and the numbers involved, never pixel data.

use std::fs::File;
use std::io::{Cursor, Read};
use std::os::raw::c_int;
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
    #[error("not an image: expected JPEG, JPEG 2000, PNG, BMP or TIFF")]
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
    /// The path names a directory, FIFO, socket or device rather than a file.
    #[error("{} is not a regular file (it is a {kind})", path.display())]
    NotARegularFile {
        /// The path.
        path: PathBuf,
        /// What it is instead: `directory`, `FIFO`, `socket`, `character device`, ...
        kind: &'static str,
    },
    /// The image file could not be read.
    // The OS error is the source, not part of this message: a report that
    // prints the chain of causes would otherwise say it twice.
    #[error("cannot read image file {}", path.display())]
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
    if is_jpeg2000(bytes) {
        return catch_unwind(AssertUnwindSafe(|| decode_jpeg2000(bytes, limits)))
            .unwrap_or_else(|_| Err(DecodeError::Corrupt("the JPEG 2000 decoder failed".into())));
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
/// Only a regular file (or a symbolic link to one) is read. The file's size is
/// checked from its metadata before reading, and at most `max_bytes + 1` bytes
/// are read, so a file that grows meanwhile cannot make the read unbounded.
pub fn load_image(path: &Path, limits: &DecodeLimits) -> Result<RgbImage, DecodeError> {
    let io_err = |source| DecodeError::Io {
        path: path.to_path_buf(),
        source,
    };
    let (file, declared) = open_regular(path)?;
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

/// `O_NONBLOCK`: opening a FIFO for reading then returns at once instead of
/// waiting for a writer, so the check on the opened file can refuse it. The
/// value differs between platforms (std does not name it); where it is not
/// known here it is 0 and only the check made before opening guards against a
/// FIFO.
#[cfg(unix)]
const O_NONBLOCK: i32 = if cfg!(all(
    target_os = "linux",
    not(any(
        target_arch = "mips",
        target_arch = "mips64",
        target_arch = "sparc",
        target_arch = "sparc64"
    ))
)) {
    0o4000
} else if cfg!(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd"
)) {
    0x4
} else {
    0
};

/// Opens `path` for reading if it is a regular file; returns it with its size.
///
/// The type is checked before opening (opening a device can have effects of
/// its own), the open does not wait on a FIFO, and the type is checked again
/// on the opened file, so a path swapped for a FIFO in between is refused too.
fn open_regular(path: &Path) -> Result<(File, u64), DecodeError> {
    let io_err = |source| DecodeError::Io {
        path: path.to_path_buf(),
        source,
    };
    let not_regular = |kind| DecodeError::NotARegularFile {
        path: path.to_path_buf(),
        kind,
    };
    let before = std::fs::metadata(path).map_err(io_err)?;
    if !before.is_file() {
        return Err(not_regular(file_kind(&before.file_type())));
    }
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.custom_flags(O_NONBLOCK);
    }
    let file = options.open(path).map_err(io_err)?;
    let opened = file.metadata().map_err(io_err)?;
    if !opened.is_file() {
        return Err(not_regular(file_kind(&opened.file_type())));
    }
    Ok((file, opened.len()))
}

/// A word for what a non-regular path is, for the error message.
fn file_kind(t: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        if t.is_fifo() {
            return "FIFO";
        }
        if t.is_socket() {
            return "socket";
        }
        if t.is_char_device() {
            return "character device";
        }
        if t.is_block_device() {
            return "block device";
        }
    }
    if t.is_dir() {
        "directory"
    } else if t.is_symlink() {
        "symbolic link"
    } else {
        "special file"
    }
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

/// A JP2 file's signature box, or a bare codestream's SOC and SIZ markers.
fn is_jpeg2000(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x00\x00\x00\x0C\x6A\x50\x20\x20") || bytes.starts_with(b"\xFF\x4F\xFF\x51")
}

/// JPEG 2000 to RGB8: the header's dimensions are checked against the limits
/// before any pixel is decoded.
fn decode_jpeg2000(bytes: &[u8], limits: &DecodeLimits) -> Result<RgbImage, DecodeError> {
    use hayro_jpeg2000::{ColorSpace, DecodeSettings, DecoderContext, Image};
    let corrupt = |e: &dyn std::fmt::Display| DecodeError::Corrupt(format!("JPEG 2000: {e}"));
    let settings = DecodeSettings {
        strict: true,
        ..DecodeSettings::default()
    };
    let image = Image::new(bytes, &settings).map_err(|e| corrupt(&e))?;
    let (width, height) = (image.width(), image.height());
    check_not_too_large(width, height, limits)?;
    check_not_too_small(width, height)?;
    let colours = match image.color_space() {
        ColorSpace::Gray => 1,
        ColorSpace::RGB => 3,
        ColorSpace::Icc {
            num_channels: n, ..
        }
        | ColorSpace::Unknown { num_channels: n }
            if *n == 1 || *n == 3 =>
        {
            usize::from(*n)
        }
        other => {
            return Err(DecodeError::Unsupported(format!(
                "JPEG 2000 in the {other:?} colour space"
            )))
        }
    };
    let channels = colours + usize::from(image.has_alpha());
    let mut ctx = DecoderContext::default();
    let decoded = image.decode(&mut ctx).map_err(|e| corrupt(&e))?;
    let data = decoded.data_u8();
    let (w, h) = (width as usize, height as usize);
    if data.len() != w * h * channels {
        return Err(DecodeError::Corrupt(
            "JPEG 2000: decoded components disagree with the header".into(),
        ));
    }
    let mut rgb = Vec::with_capacity(w * h * 3);
    for px in data.chunks_exact(channels) {
        if colours == 1 {
            rgb.extend_from_slice(&[px[0], px[0], px[0]]);
        } else {
            rgb.extend_from_slice(&px[..3]);
        }
    }
    RgbImage::from_raw(w, h, rgb)
        .ok_or_else(|| DecodeError::Corrupt("decoded buffer has the wrong length".into()))
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

    // The BMP decoder refuses a side over 65535 itself while reading the
    // header, with a format error; read the dimensions first so that such an
    // image is reported as too large, like any other.
    if format == ImageFormat::Bmp {
        if let Some((width, height)) = bmp_dimensions(bytes) {
            check_not_too_large(width, height, limits)?;
        }
    }

    // Stage 1: headers only. No side limit yet, so that an oversized image is
    // reported with its dimensions; the allocation budget already bounds what
    // header parsing may allocate.
    let mut header_limits = image::Limits::default();
    header_limits.max_alloc = Some(budget);
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(header_limits.clone());
    let mut decoder = reader.into_decoder().map_err(from_image_error)?;

    let (width, height) = decoder.dimensions();
    check_not_too_large(width, height, limits)?;
    check_not_too_small(width, height)?;
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
        if let Some(img) = decode_jpeg_libjpeg(bytes, width, height)? {
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
/// IDCT, fancy upsampling). `Ok(None)` for other colour spaces (CMYK, YCCK),
/// which the `image` crate converts instead. libjpeg's errors, and its
/// warnings that data was lost, unwind out of the C code and become
/// [`DecodeError::Corrupt`].
fn decode_jpeg_libjpeg(
    bytes: &[u8],
    width: u32,
    height: u32,
) -> Result<Option<RgbImage>, DecodeError> {
    use mozjpeg::ColorSpace;
    let decode = || {
        let d = mozjpeg::Decompress::builder()
            .with_err(strict_jpeg_errors())
            .from_mem(bytes)
            .ok()?;
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
    };
    catch_unwind(AssertUnwindSafe(decode)).map_err(|payload| {
        DecodeError::Corrupt(
            payload
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_else(|| "the JPEG decoder failed".into()),
        )
    })
}

/// libjpeg warnings after which the decoder carries on with made-up data
/// (zeroed coefficients, a grey remainder) rather than stopping. Other
/// warnings (bytes between markers, an unknown JFIF version, an Adobe
/// transform code) leave the pixels intact and are ignored.
const JPEG_DATA_LOSS: [(c_int, &str); 5] = [
    (
        mozjpeg_sys::JWRN_HIT_MARKER,
        "premature end of data segment",
    ),
    (mozjpeg_sys::JWRN_JPEG_EOF, "premature end of file"),
    (mozjpeg_sys::JWRN_HUFF_BAD_CODE, "bad Huffman code"),
    (mozjpeg_sys::JWRN_MUST_RESYNC, "lost restart marker"),
    (
        mozjpeg_sys::JWRN_BOGUS_PROGRESSION,
        "inconsistent progression sequence",
    ),
];

/// libjpeg's standard error manager with its two exits replaced: a fatal
/// error unwinds (the default would end the process), and so does a warning
/// from [`JPEG_DATA_LOSS`] (the default would only count it).
fn strict_jpeg_errors() -> mozjpeg_sys::jpeg_error_mgr {
    // SAFETY: every field of `jpeg_error_mgr` is an integer, a raw pointer or
    // an `Option` of a function pointer, for all of which zero is a valid
    // value (0, null, `None`); `jpeg_std_error` only writes the struct it is
    // given and keeps no pointer to it, so moving it afterwards is fine.
    let mut err: mozjpeg_sys::jpeg_error_mgr = unsafe { std::mem::zeroed() };
    // SAFETY: as above; `err` is a valid, exclusively borrowed struct.
    unsafe { mozjpeg_sys::jpeg_std_error(&mut err) };
    err.error_exit = Some(jpeg_error_exit);
    err.emit_message = Some(jpeg_emit_message);
    err
}

/// The message code libjpeg has just set.
fn jpeg_msg_code(cinfo: &mozjpeg_sys::jpeg_common_struct) -> c_int {
    // SAFETY: libjpeg calls the error manager's functions only with `err`
    // pointing at the manager it was created with, which the `Decompress`
    // owns and keeps alive for as long as `cinfo` exists.
    unsafe { cinfo.err.as_ref() }.map_or(0, |e| e.msg_code)
}

extern "C-unwind" fn jpeg_error_exit(cinfo: &mut mozjpeg_sys::jpeg_common_struct) {
    let code = jpeg_msg_code(cinfo);
    std::panic::resume_unwind(Box::new(format!(
        "the JPEG decoder stopped (libjpeg message {code})"
    )));
}

extern "C-unwind" fn jpeg_emit_message(cinfo: &mut mozjpeg_sys::jpeg_common_struct, level: c_int) {
    // Levels 0 and above are trace messages; -1 is a warning.
    if level >= 0 {
        return;
    }
    let code = jpeg_msg_code(cinfo);
    if let Some((_, what)) = JPEG_DATA_LOSS.iter().find(|(c, _)| *c == code) {
        std::panic::resume_unwind(Box::new(format!("JPEG data damaged: {what}")));
    }
}

/// [`DecodeError::TooLarge`] when the dimensions are over the limits.
fn check_not_too_small(width: u32, height: u32) -> Result<(), DecodeError> {
    if width < MIN_SIDE || height < MIN_SIDE {
        return Err(DecodeError::TooSmall {
            width,
            height,
            min: MIN_SIDE,
        });
    }
    Ok(())
}

fn check_not_too_large(width: u32, height: u32, limits: &DecodeLimits) -> Result<(), DecodeError> {
    if u64::from(width) * u64::from(height) > limits.max_pixels
        || width > limits.max_side
        || height > limits.max_side
    {
        return Err(too_large_again(width, height, limits));
    }
    Ok(())
}

/// Width and height from a BMP's info header: 16-bit fields in the old
/// 12-byte core header, signed 32-bit ones (a negative height means rows
/// stored top-down) in every later one. `None` when the header is cut short.
fn bmp_dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    let u16_at = |i: usize| Some(u16::from_le_bytes(bytes.get(i..i + 2)?.try_into().ok()?));
    let i32_at = |i: usize| Some(i32::from_le_bytes(bytes.get(i..i + 4)?.try_into().ok()?));
    let header_size = u32::from_le_bytes(bytes.get(14..18)?.try_into().ok()?);
    if header_size == 12 {
        Some((u32::from(u16_at(18)?), u32::from(u16_at(20)?)))
    } else {
        Some((i32_at(18)?.unsigned_abs(), i32_at(22)?.unsigned_abs()))
    }
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
            "not an image: expected JPEG, JPEG 2000, PNG, BMP or TIFF"
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
