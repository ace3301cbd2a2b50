//! Integration tests for untrusted image decoding: every kind of bad input gets its typed error, and nothing panics.
//!
//! Most fixtures are encoded at test time with the `image` crate's encoders;
//! the CMYK JPEG (which `image` cannot write) lives in `tests/data/decode/`,
//! and the fuzz seed corpus in `fuzz/corpus/decode_image/` is replayed here.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Once;

use image::{ImageBuffer, ImageFormat, Luma, LumaA, Rgb, Rgba};
use ipseity_face::decode::{decode_image, load_image, DecodeError, DecodeLimits, MIN_SIDE};
use ipseity_face::geom::RgbImage;
use proptest::prelude::*;

/// Records the largest single allocation the process makes, so the bomb test
/// can show that no pixel buffer was ever requested.
struct LargestAlloc;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: defers every call to the system allocator unchanged; only records sizes.
unsafe impl GlobalAlloc for LargestAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: LargestAlloc = LargestAlloc;

fn limits() -> DecodeLimits {
    DecodeLimits::default()
}

fn encode<P, C>(img: &ImageBuffer<P, C>, format: ImageFormat) -> Vec<u8>
where
    P: image::Pixel + image::PixelWithColorType,
    [P::Subpixel]: image::EncodableLayout,
    C: std::ops::Deref<Target = [P::Subpixel]>,
{
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).expect("encode fixture");
    out.into_inner()
}

/// A deterministic, poorly compressible RGB pattern.
fn noise(width: u32, height: u32) -> ImageBuffer<Rgb<u8>, Vec<u8>> {
    let mut state = 0x1234_5678_u32;
    ImageBuffer::from_fn(width, height, |_, _| {
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        };
        Rgb([next(), next(), next()])
    })
}

fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc = crc32fast::Hasher::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(&crc.finalize().to_be_bytes());
    out
}

/// A well-formed PNG whose header claims `width` x `height` 8-bit RGB pixels,
/// with a token IDAT: the decoder has every reason to believe it.
fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // depth 8, RGB, deflate, filter 0, no interlace
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(png_chunk(b"IHDR", &ihdr));
    // An empty zlib stream (stored, final, zero length).
    png.extend(png_chunk(
        b"IDAT",
        &[0x78, 0x01, 0x01, 0x00, 0x00, 0xFF, 0xFF],
    ));
    png.extend(png_chunk(b"IEND", &[]));
    png
}

/// `jpeg` with an APP1 EXIF segment holding only `Orientation = orientation`
/// inserted right after SOI.
fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut tiff = Vec::new();
    tiff.extend_from_slice(b"MM\0\x2A\0\0\0\x08"); // big-endian, IFD0 at offset 8
    tiff.extend_from_slice(&1u16.to_be_bytes()); // one entry
    tiff.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
    tiff.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_be_bytes()); // count
    tiff.extend_from_slice(&orientation.to_be_bytes());
    tiff.extend_from_slice(&[0, 0]); // value padding
    tiff.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
    let mut payload = b"Exif\0\0".to_vec();
    payload.extend(tiff);

    let mut out = jpeg[..2].to_vec(); // SOI
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
    out.extend(payload);
    out.extend_from_slice(&jpeg[2..]);
    out
}

fn close(a: [u8; 3], b: [u8; 3], tolerance: u8) -> bool {
    a.iter().zip(b).all(|(&x, y)| x.abs_diff(y) <= tolerance)
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

// ---------------------------------------------------------------- not an image

#[test]
fn empty_input_is_not_an_image() {
    assert!(matches!(
        decode_image(b"", &limits()),
        Err(DecodeError::NotAnImage)
    ));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("empty.jpg");
    std::fs::write(&path, b"").expect("write");
    assert!(matches!(
        load_image(&path, &limits()),
        Err(DecodeError::NotAnImage)
    ));
}

#[test]
fn text_file_is_not_an_image() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notes.png");
    std::fs::write(&path, "name,score\nalice,0.93\n").expect("write");
    let err = load_image(&path, &limits()).expect_err("text is no image");
    assert!(matches!(err, DecodeError::NotAnImage));
    assert_eq!(
        err.to_string(),
        "not an image: expected JPEG, JPEG 2000, PNG, BMP or TIFF"
    );
}

#[test]
fn unsupported_formats_are_not_images() {
    for bytes in [
        &b"GIF89a\x10\0\x10\0"[..],
        b"RIFF\0\0\0\0WEBPVP8 ",
        b"P6 16 16 255\n",
    ] {
        assert!(matches!(
            decode_image(bytes, &limits()),
            Err(DecodeError::NotAnImage)
        ));
    }
}

#[test]
fn missing_file_is_an_io_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("absent.jpg");
    let err = load_image(&path, &limits()).expect_err("no file");
    assert!(matches!(err, DecodeError::Io { .. }));
    assert!(err.to_string().contains("absent.jpg"));
}

#[test]
fn io_error_names_its_cause_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = load_image(&dir.path().join("absent.jpg"), &limits()).expect_err("no file");
    // The OS error is the source; a report printing the chain says it once.
    let mut chain = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        chain.push_str(&format!(": {s}"));
        source = s.source();
    }
    assert_eq!(chain.matches("(os error 2)").count(), 1, "{chain}");
}

/// Runs `f` on a thread and fails the test if it has not returned within
/// 20 s (the thread is left behind: a blocked open cannot be cancelled).
fn within_20s<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(std::time::Duration::from_secs(20))
        .expect("blocked for 20 s")
}

#[cfg(unix)]
#[test]
fn fifos_devices_and_directories_are_not_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("face.jpg");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let paths = [
        (fifo, "FIFO"),
        (PathBuf::from("/dev/zero"), "character device"),
        (dir.path().to_path_buf(), "directory"),
    ];
    for (path, want) in paths {
        let p = path.clone();
        let err = within_20s(move || load_image(&p, &limits())).expect_err("refused");
        match &err {
            DecodeError::NotARegularFile { path: named, kind } => {
                assert_eq!(named, &path);
                assert_eq!(*kind, want);
            }
            other => panic!("{}: {other}", path.display()),
        }
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }
}

#[cfg(unix)]
#[test]
fn a_symlink_to_a_regular_file_is_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let real = dir.path().join("real.png");
    std::fs::write(&real, encode(&noise(32, 32), ImageFormat::Png)).expect("write");
    let link = dir.path().join("link.png");
    std::os::unix::fs::symlink(&real, &link).expect("symlink");
    assert!(load_image(&link, &limits()).is_ok());
}

#[test]
fn file_over_max_bytes_is_refused_before_reading() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("big.png");
    std::fs::write(&path, encode(&noise(32, 32), ImageFormat::Png)).expect("write");
    let small = DecodeLimits {
        max_bytes: 100,
        ..limits()
    };
    assert!(matches!(
        load_image(&path, &small),
        Err(DecodeError::FileTooLarge { limit: 100, .. })
    ));
}

// ---------------------------------------------------------------- truncation

#[test]
fn truncated_jpeg_is_corrupt() {
    let jpeg = encode(&noise(64, 64), ImageFormat::Jpeg);
    assert!(decode_image(&jpeg, &limits()).is_ok());
    for cut in [jpeg.len() / 2, jpeg.len() - 2, jpeg.len() - 1] {
        let err = decode_image(&jpeg[..cut], &limits()).expect_err("truncated");
        assert!(
            matches!(err, DecodeError::Corrupt(_)),
            "cut at {cut}: {err}"
        );
    }
    // Trailing bytes after EOI are tolerated.
    let mut padded = jpeg.clone();
    padded.extend_from_slice(&[0; 64]);
    assert!(decode_image(&padded, &limits()).is_ok());
}

/// A JPEG cut at half its length with an end-of-image marker appended: the
/// marker walk is satisfied, so only libjpeg's own warning that the scan
/// ended early can tell; it must be an error, not a grey lower half.
fn cut_at_half_with_eoi(jpeg: &[u8]) -> Vec<u8> {
    let mut cut = jpeg[..jpeg.len() / 2].to_vec();
    cut.extend_from_slice(&[0xFF, 0xD9]);
    cut
}

#[test]
fn baseline_jpeg_cut_with_an_end_marker_is_corrupt() {
    let jpeg = encode(&noise(128, 128), ImageFormat::Jpeg);
    assert!(decode_image(&jpeg, &limits()).is_ok());
    let err = decode_image(&cut_at_half_with_eoi(&jpeg), &limits()).expect_err("cut");
    assert!(matches!(err, DecodeError::Corrupt(_)), "{err}");
}

#[test]
fn progressive_jpeg_cut_with_an_end_marker_is_corrupt() {
    let img = noise(128, 128);
    let mut c = mozjpeg::Compress::new(mozjpeg::ColorSpace::JCS_RGB);
    c.set_size(128, 128);
    c.set_progressive_mode();
    c.set_quality(90.0);
    let mut started = c.start_compress(Vec::new()).expect("start");
    started.write_scanlines(img.as_raw()).expect("write");
    let jpeg = started.finish().expect("finish");
    // SOF2 marks a progressive frame.
    assert!(jpeg.windows(2).any(|w| w == [0xFF, 0xC2]));
    assert!(decode_image(&jpeg, &limits()).is_ok());
    let err = decode_image(&cut_at_half_with_eoi(&jpeg), &limits()).expect_err("cut");
    assert!(matches!(err, DecodeError::Corrupt(_)), "{err}");
}

#[test]
fn jpeg_truncated_in_its_header_is_corrupt() {
    let jpeg = encode(&noise(64, 64), ImageFormat::Jpeg);
    let err = decode_image(&jpeg[..40], &limits()).expect_err("truncated");
    assert!(matches!(err, DecodeError::Corrupt(_)), "{err}");
}

#[test]
fn truncated_png_is_corrupt() {
    let png = encode(&noise(64, 64), ImageFormat::Png);
    assert!(decode_image(&png, &limits()).is_ok());
    for cut in [png.len() / 2, 40] {
        let err = decode_image(&png[..cut], &limits()).expect_err("truncated");
        assert!(
            matches!(err, DecodeError::Corrupt(_)),
            "cut at {cut}: {err}"
        );
    }
}

// ---------------------------------------------------------------- size limits

#[test]
fn decompression_bomb_is_refused_from_its_header() {
    let bomb = png_claiming(100_000, 100_000);
    assert!(bomb.len() < 100);
    let err = decode_image(&bomb, &limits()).expect_err("bomb");
    assert!(
        matches!(
            err,
            DecodeError::TooLarge {
                width: 100_000,
                height: 100_000,
                limit: 40_000_000
            }
        ),
        "{err}"
    );
    // 30 GB of pixels were claimed; nothing near even 256 MiB was ever asked
    // for (no test in this binary allocates that much).
    assert!(LARGEST.load(Ordering::Relaxed) < 256 << 20);
}

/// A BMP file and info header (BITMAPINFOHEADER, 24 bits, uncompressed)
/// claiming `width` x `height` pixels, with no pixel data.
fn bmp_claiming(width: i32, height: i32) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(b"BM");
    out.extend_from_slice(&54u32.to_le_bytes()); // file size
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&54u32.to_le_bytes()); // pixel data offset
    out.extend_from_slice(&40u32.to_le_bytes()); // info header size
    out.extend_from_slice(&width.to_le_bytes());
    out.extend_from_slice(&height.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // planes
    out.extend_from_slice(&24u16.to_le_bytes()); // bits per pixel
    out.extend_from_slice(&[0; 24]); // compression, sizes, resolution, palette
    out
}

/// A little-endian TIFF whose only IFD claims `width` x `height` 8-bit grey
/// pixels in one strip that is not there.
fn tiff_claiming(width: u32, height: u32) -> Vec<u8> {
    let entries: [(u16, u16, u32); 8] = [
        (256, 4, width),  // ImageWidth, LONG
        (257, 4, height), // ImageLength, LONG
        (258, 3, 8),      // BitsPerSample
        (259, 3, 1),      // Compression: none
        (262, 3, 1),      // Photometric: black is zero
        (273, 4, 8),      // StripOffsets
        (278, 4, height), // RowsPerStrip
        (279, 4, width),  // StripByteCounts
    ];
    let mut out = b"II*\0".to_vec();
    out.extend_from_slice(&8u32.to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    for (tag, kind, value) in entries {
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        if kind == 3 {
            out.extend_from_slice(&(value as u16).to_le_bytes());
            out.extend_from_slice(&[0; 2]);
        } else {
            out.extend_from_slice(&value.to_le_bytes());
        }
    }
    out.extend_from_slice(&0u32.to_le_bytes()); // no next IFD
    out
}

#[test]
fn huge_declared_dimensions_are_too_large_in_every_format() {
    let cases = [
        ("bmp", bmp_claiming(100_000, 100_000)),
        ("top-down bmp", bmp_claiming(100_000, -100_000)),
        ("png", png_claiming(100_000, 100_000)),
        ("tiff", tiff_claiming(100_000, 100_000)),
    ];
    for (name, bytes) in cases {
        let err = decode_image(&bytes, &limits()).expect_err(name);
        assert!(
            matches!(
                err,
                DecodeError::TooLarge {
                    width: 100_000,
                    height: 100_000,
                    ..
                }
            ),
            "{name}: {err}"
        );
    }
    assert!(LARGEST.load(Ordering::Relaxed) < 256 << 20);
}

#[test]
fn a_side_over_max_side_is_too_large_even_with_few_pixels() {
    let thin = png_claiming(20_000, 16);
    assert!(matches!(
        decode_image(&thin, &limits()),
        Err(DecodeError::TooLarge {
            width: 20_000,
            height: 16,
            ..
        })
    ));
}

#[test]
fn pixel_limit_applies_to_real_images() {
    let png = encode(&noise(64, 64), ImageFormat::Png);
    let tight = DecodeLimits {
        max_pixels: 64 * 64 - 1,
        ..limits()
    };
    assert!(matches!(
        decode_image(&png, &tight),
        Err(DecodeError::TooLarge {
            width: 64,
            height: 64,
            ..
        })
    ));
    let exact = DecodeLimits {
        max_pixels: 64 * 64,
        max_side: 64,
        ..limits()
    };
    assert!(decode_image(&png, &exact).is_ok());
}

#[test]
fn tiny_images_are_too_small() {
    for (w, h) in [(8, 8), (16, 15), (15, 16), (1, 1000)] {
        let png = encode(&noise(w, h), ImageFormat::Png);
        let err = decode_image(&png, &limits()).expect_err("tiny");
        assert!(
            matches!(err, DecodeError::TooSmall { width, height, min } if (width, height, min) == (w, h, MIN_SIDE)),
            "{w}x{h}: {err}"
        );
    }
    assert!(decode_image(&encode(&noise(16, 16), ImageFormat::Png), &limits()).is_ok());
}

// ---------------------------------------------------------------- colour types

#[test]
fn grayscale_png_becomes_grey_rgb() {
    let l8: ImageBuffer<Luma<u8>, _> = ImageBuffer::from_fn(16, 16, |x, _| Luma([x as u8 * 10]));
    let img = decode_image(&encode(&l8, ImageFormat::Png), &limits()).expect("L8");
    assert_eq!((img.width, img.height), (16, 16));
    assert_eq!(img.get(5, 3), [50, 50, 50]);

    let la8: ImageBuffer<LumaA<u8>, _> = ImageBuffer::from_pixel(16, 16, LumaA([77, 0]));
    let img = decode_image(&encode(&la8, ImageFormat::Png), &limits()).expect("LA8");
    assert_eq!(img.get(0, 0), [77, 77, 77]);

    let l16: ImageBuffer<Luma<u16>, _> = ImageBuffer::from_pixel(16, 16, Luma([0xFFFF]));
    let img = decode_image(&encode(&l16, ImageFormat::Png), &limits()).expect("L16");
    assert_eq!(img.get(15, 15), [255, 255, 255]);
}

#[test]
fn rgba_png_drops_alpha() {
    let rgba: ImageBuffer<Rgba<u8>, _> = ImageBuffer::from_fn(16, 16, |x, _| {
        if x < 8 {
            Rgba([10, 20, 30, 0]) // fully transparent: colour kept, not blended
        } else {
            Rgba([200, 100, 50, 255])
        }
    });
    let img = decode_image(&encode(&rgba, ImageFormat::Png), &limits()).expect("RGBA");
    assert_eq!(img.data.len(), 16 * 16 * 3);
    assert_eq!(img.get(0, 0), [10, 20, 30]);
    assert_eq!(img.get(15, 0), [200, 100, 50]);
}

#[test]
fn sixteen_bit_png_is_scaled_with_rounding() {
    // 0x12FF / 257 = 18.9..., rounds to 19 (0x13), where the high byte would give 0x12.
    let rgb16: ImageBuffer<Rgb<u16>, _> =
        ImageBuffer::from_pixel(16, 16, Rgb([0x12FF, 0xFFFF, 0x0000]));
    let img = decode_image(&encode(&rgb16, ImageFormat::Png), &limits()).expect("RGB16");
    assert_eq!(img.get(3, 3), [0x13, 0xFF, 0x00]);
}

#[test]
fn cmyk_jpeg_is_converted_to_rgb() {
    // Left half pure cyan ink, right half no ink; see tests/data/decode/README.md.
    let bytes = include_bytes!("data/decode/cmyk_16x16.jpg");
    let img = decode_image(bytes, &limits()).expect("CMYK JPEG");
    assert_eq!((img.width, img.height), (16, 16));
    assert!(
        close(img.get(2, 8), [0, 255, 255], 8),
        "{:?}",
        img.get(2, 8)
    );
    assert!(
        close(img.get(13, 8), [255, 255, 255], 8),
        "{:?}",
        img.get(13, 8)
    );
}

#[test]
fn bmp_decodes() {
    let src = noise(16, 17);
    let img = decode_image(&encode(&src, ImageFormat::Bmp), &limits()).expect("BMP");
    assert_eq!((img.width, img.height), (16, 17));
    assert_eq!(img.data, src.into_raw());
}

#[test]
fn tiff_decodes() {
    let src = noise(20, 16);
    let img = decode_image(&encode(&src, ImageFormat::Tiff), &limits()).expect("TIFF");
    assert_eq!((img.width, img.height), (20, 16));
    assert_eq!(img.data, src.into_raw());
}

// ---------------------------------------------------------------- orientation

/// 32 wide, 16 tall, black with a red 8x8 block in the top-left corner.
fn red_corner_jpeg() -> Vec<u8> {
    let src: ImageBuffer<Rgb<u8>, _> = ImageBuffer::from_fn(32, 16, |x, y| {
        if x < 8 && y < 8 {
            Rgb([255, 0, 0])
        } else {
            Rgb([0, 0, 0])
        }
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 100)
        .encode_image(&src)
        .expect("encode");
    out
}

fn is_red(img: &RgbImage, x: usize, y: usize) -> bool {
    let [r, g, b] = img.get(x, y);
    r > 200 && g < 60 && b < 60
}

#[test]
fn exif_orientation_6_rotates_clockwise() {
    let plain = decode_image(&red_corner_jpeg(), &limits()).expect("plain");
    assert_eq!((plain.width, plain.height), (32, 16));
    assert!(is_red(&plain, 3, 3));

    let rotated = decode_image(&with_exif_orientation(&red_corner_jpeg(), 6), &limits())
        .expect("orientation 6");
    assert_eq!((rotated.width, rotated.height), (16, 32));
    // Rotating 90° clockwise carries the top-left corner to the top-right.
    assert!(is_red(&rotated, 12, 3));
    assert!(!is_red(&rotated, 3, 3));
    assert!(!is_red(&rotated, 3, 28));
}

#[test]
fn exif_orientation_8_and_3() {
    let ccw = decode_image(&with_exif_orientation(&red_corner_jpeg(), 8), &limits())
        .expect("orientation 8");
    assert_eq!((ccw.width, ccw.height), (16, 32));
    assert!(is_red(&ccw, 3, 28)); // top-left goes to bottom-left

    let half = decode_image(&with_exif_orientation(&red_corner_jpeg(), 3), &limits())
        .expect("orientation 3");
    assert_eq!((half.width, half.height), (32, 16));
    assert!(is_red(&half, 28, 12)); // top-left goes to bottom-right
}

#[test]
fn bad_exif_is_ignored() {
    for orientation in [0, 9, 0xFFFF] {
        let img = decode_image(
            &with_exif_orientation(&red_corner_jpeg(), orientation),
            &limits(),
        )
        .expect("decodes");
        assert_eq!((img.width, img.height), (32, 16));
    }
    // An APP1 that says "Exif" and then holds garbage.
    let jpeg = red_corner_jpeg();
    let mut broken = jpeg[..2].to_vec();
    broken.extend_from_slice(&[0xFF, 0xE1, 0, 12]);
    broken.extend_from_slice(b"Exif\0\0MMxx");
    broken.extend_from_slice(&jpeg[2..]);
    let img = decode_image(&broken, &limits()).expect("decodes");
    assert_eq!((img.width, img.height), (32, 16));
}

// ---------------------------------------------------------------- never panics

/// Seed corpus of the `decode_image` fuzz target: valid seeds decode, and
/// every file (including crashers added later) must return without panicking.
#[test]
fn fuzz_corpus_replays_without_panic() {
    let dir = repo_root().join("fuzz/corpus/decode_image");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz corpus") {
        let path = entry.expect("entry").path();
        if !path.is_file() {
            continue;
        }
        let bytes = std::fs::read(&path).expect("read");
        let result = decode_image(&bytes, &limits());
        if path.to_string_lossy().contains("gradient_16x16") {
            let img = result.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!((img.width, img.height), (16, 16));
        }
        seen += 1;
    }
    assert!(seen >= 3, "expected the seed images in {}", dir.display());
}

static DECODER_PANICKED: AtomicBool = AtomicBool::new(false);

/// `decode_image` turns a decoder panic into an error, which would hide it
/// from these tests; this hook notices panics on the property tests' threads.
fn watch_for_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current()
                .name()
                .is_some_and(|n| n.contains("never_panics"))
            {
                DECODER_PANICKED.store(true, Ordering::SeqCst);
            }
            previous(info);
        }));
    });
}

fn small_limits() -> DecodeLimits {
    DecodeLimits {
        max_pixels: 256 * 256,
        max_bytes: 1 << 20,
        max_side: 1024,
    }
}

fn seeds() -> Vec<Vec<u8>> {
    vec![
        encode(&noise(24, 16), ImageFormat::Png),
        encode(&noise(24, 16), ImageFormat::Jpeg),
        with_exif_orientation(&encode(&noise(16, 16), ImageFormat::Jpeg), 6),
        encode(&noise(16, 16), ImageFormat::Bmp),
        encode(&noise(16, 16), ImageFormat::Tiff),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panics(
        prefix in prop_oneof![
            Just(Vec::new()),
            Just(vec![0xFF, 0xD8, 0xFF]),
            Just(b"\x89PNG\r\n\x1a\n".to_vec()),
            Just(b"BM".to_vec()),
            Just(b"II*\0".to_vec()),
            Just(b"MM\0*".to_vec()),
        ],
        body in proptest::collection::vec(any::<u8>(), 0..2048),
    ) {
        watch_for_panics();
        let mut bytes = prefix;
        bytes.extend(body);
        let _ = decode_image(&bytes, &small_limits());
        prop_assert!(!DECODER_PANICKED.load(Ordering::SeqCst));
    }

    #[test]
    fn mutated_images_never_panics(
        which in 0usize..5,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        watch_for_panics();
        let mut bytes = seeds().swap_remove(which);
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len()));
        }
        let _ = decode_image(&bytes, &small_limits());
        prop_assert!(!DECODER_PANICKED.load(Ordering::SeqCst));
    }
}

/// A JPEG 2000 face from a travel document sample (`../shared/icao`), or
/// `None` with a message where that folder is absent.
fn icao_jp2() -> Option<Vec<u8>> {
    let file = std::env::var_os("IPSEITY_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
        .join("icao/files/document/test_data/ICAO_39794_5_AP_DG2_Face.jpg");
    match std::fs::read(&file) {
        Ok(b) => Some(b),
        Err(_) => {
            assert!(
                std::env::var_os("IPSEITY_REQUIRE_SHARED").is_none(),
                "IPSEITY_REQUIRE_SHARED is set but {} is missing",
                file.display()
            );
            eprintln!("skipped: no ICAO sample at {}", file.display());
            None
        }
    }
}

#[test]
fn jpeg2000_decodes_and_its_header_is_held_to_the_limits() {
    let Some(jp2) = icao_jp2() else { return };
    let img = decode_image(&jp2, &DecodeLimits::default()).expect("JP2 decodes");
    assert_eq!((img.width, img.height), (413, 531));
    // Not a flat image: the face has contrast.
    let (lo, hi) = img
        .data
        .iter()
        .fold((255u8, 0u8), |(l, h), &v| (l.min(v), h.max(v)));
    assert!(hi - lo > 100, "{lo}..{hi}");
    // The same bytes under tight limits: refused from the header.
    let tight = DecodeLimits {
        max_pixels: 1000,
        ..DecodeLimits::default()
    };
    assert!(matches!(
        decode_image(&jp2, &tight),
        Err(DecodeError::TooLarge {
            width: 413,
            height: 531,
            ..
        })
    ));
    // Cut short, or with its codestream scrambled: an error, not a panic.
    for cut in [12, 100, jp2.len() / 2] {
        assert!(
            decode_image(&jp2[..cut], &DecodeLimits::default()).is_err(),
            "cut at {cut}"
        );
    }
    let mut scrambled = jp2.clone();
    for b in scrambled.iter_mut().skip(200).step_by(7) {
        *b ^= 0x5A;
    }
    let _ = decode_image(&scrambled, &DecodeLimits::default());
}
