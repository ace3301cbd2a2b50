//! One fingerprint sample from untrusted bytes: an ISO/ANSI minutiae record, or an
//! impression (PNG, TIFF, BMP or WSQ) to extract. Every failure is a [`SampleError`] with
//! a kind and a stable code, so that each front end reports it the same way.
//!
//! # Resolution
//!
//! The extractor and matcher work at 500 ppi. An impression's resolution is read from its
//! header (PNG `pHYs`, TIFF `XResolution`/`YResolution` with `ResolutionUnit`, BMP pixels
//! per metre, WSQ's NISTCOM `PPI`), or given by the caller where the header is missing or
//! wrong; a header that says nothing means 500 ppi. Between [`MIN_PPI`] and [`MAX_PPI`] the
//! image is resampled to 500 ppi (within 1% it is taken as it is); outside that range, or
//! with different horizontal and vertical resolutions, it is refused as
//! `unsupported_resolution`, because ridges scaled that far are no longer what the extractor
//! was built for. A minutiae record's coordinates are scaled the same way.

use std::io;

use image::GrayImage;
use ipseity_core::{Classified, ErrorKind};

use crate::extract::{self, ExtractConfig, ExtractError, QualityReport};
use crate::gate::{self, RecordQualityError};
use crate::iso::{self, RecordError};
use crate::wsq::{self, WsqError};
use crate::{FingerPosition, FingerTemplate};

/// Largest image side accepted, at 500 ppi: 4 inches.
pub const MAX_SIDE: u32 = 2000;

/// The resolution the extractor and matcher work at, ppi.
pub const NATIVE_PPI: u16 = 500;
/// Lowest resolution accepted (and resampled to 500 ppi), ppi.
pub const MIN_PPI: u16 = 300;
/// Highest resolution accepted (and resampled to 500 ppi), ppi.
pub const MAX_PPI: u16 = 1000;

/// Most memory one decode may allocate.
const MAX_DECODE_ALLOC: u64 = 64 << 20;

/// A loaded sample: its template and, for an impression, the quality report.
#[derive(Debug, Clone)]
pub struct Sample {
    /// The template.
    pub template: FingerTemplate,
    /// Quality of an impression; `None` for a record.
    pub quality: Option<QualityReport>,
}

impl Sample {
    /// The quality score to store: the impression's, or the record's own.
    pub fn quality_score(&self) -> u8 {
        self.quality
            .as_ref()
            .map_or(self.template.quality, |q| q.score)
    }
}

/// Why a sample could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SampleError {
    /// The bytes are no image this modality takes, nor a minutiae record.
    #[error("not a PNG, TIFF, BMP or WSQ image, nor an ISO/ANSI record")]
    NotAnImage,
    /// Where only an impression will do: the bytes are no image this modality takes.
    #[error("not a PNG, TIFF, BMP or WSQ image")]
    NotAnImpression,
    /// Where only an impression will do: the bytes are a minutiae record.
    #[error(
        "an ISO/ANSI minutiae record, not an impression: extraction needs an image \
         (enrol, verify and identify take the record as it is)"
    )]
    RecordNotImpression,
    /// A format that is refused for fingerprints.
    #[error("{0} is not accepted for fingerprints; give a PNG, TIFF, BMP or WSQ impression")]
    Unsupported(&'static str),
    /// The image is damaged.
    #[error("{0}")]
    Corrupt(String),
    /// The WSQ image is damaged.
    #[error("WSQ: {0}")]
    Wsq(#[source] WsqError),
    /// The image declares more pixels than an impression can have.
    #[error("{width}x{height}; at most {MAX_SIDE} pixels a side at 500 ppi")]
    TooLarge {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
    },
    /// Scanned outside the resolutions accepted.
    #[error(
        "{0} ppi; fingerprints must be taken at {MIN_PPI} to {MAX_PPI} ppi (500 is native); \
         if the file's header is wrong, give the true resolution"
    )]
    Resolution(u16),
    /// Different horizontal and vertical resolutions.
    #[error("{x} ppi across but {y} ppi down; fingerprints need square pixels")]
    Anisotropic {
        /// Horizontal resolution, ppi.
        x: u16,
        /// Vertical resolution, ppi.
        y: u16,
    },
    /// The minutiae record is malformed.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// The record holds several fingers.
    #[error("the record holds {0} finger views; give one finger per file")]
    ManyViews(usize),
    /// The record names another finger than the one given.
    #[error("the record is for {record}, not {given}")]
    PositionMismatch {
        /// The record's finger.
        record: &'static str,
        /// The finger asked for.
        given: &'static str,
    },
    /// The record's minutiae are too few or implausible.
    #[error(transparent)]
    RecordQuality(#[from] RecordQualityError),
    /// Extraction from the impression failed or found it unusable.
    #[error(transparent)]
    Extract(#[from] ExtractError),
}

impl Classified for SampleError {
    fn kind(&self) -> ErrorKind {
        match self {
            SampleError::Extract(ExtractError::LowQuality { .. })
            | SampleError::RecordQuality(_) => ErrorKind::Input,
            SampleError::Extract(ExtractError::TooSmall { .. } | ExtractError::TooLarge { .. }) => {
                ErrorKind::Input
            }
            // Any other extraction failure is ours, not the caller's.
            SampleError::Extract(_) => ErrorKind::Internal,
            _ => ErrorKind::Input,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            SampleError::NotAnImage
            | SampleError::NotAnImpression
            | SampleError::RecordNotImpression => "not_an_image",
            SampleError::Unsupported(_) => "unsupported_image",
            SampleError::Corrupt(_) | SampleError::Wsq(_) => "corrupt_image",
            SampleError::TooLarge { .. } => "image_too_large",
            SampleError::Resolution(_) | SampleError::Anisotropic { .. } => {
                "unsupported_resolution"
            }
            SampleError::Record(_) | SampleError::ManyViews(_) => "bad_template",
            SampleError::PositionMismatch { .. } => "usage",
            SampleError::RecordQuality(_) => "low_quality",
            SampleError::Extract(e) => match e {
                ExtractError::TooSmall { .. } => "image_too_small",
                ExtractError::TooLarge { .. } => "image_too_large",
                ExtractError::LowQuality { .. } => "low_quality",
                _ => "extraction_failed",
            },
        }
    }
}

/// An impression decoded and brought to 500 ppi.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// The image at 500 ppi.
    pub image: GrayImage,
    /// The resolution it was taken at (the caller's, the header's, or 500 when neither
    /// says).
    pub source_ppi: u16,
    /// Whether it was resampled to 500 ppi.
    pub resampled: bool,
}

/// Decodes an impression to 8-bit grey at 500 ppi, refusing huge or corrupt images
/// before allocating. `ppi` overrides the header's resolution.
pub fn decode_impression_at(bytes: &[u8], ppi: Option<u16>) -> Result<Decoded, SampleError> {
    if wsq::is_wsq(bytes) {
        // The decoder's own bound (8192 a side) would let a few kilobytes of zero runs
        // describe a 600 MB image; nothing larger than the extractor can take is decoded.
        let side = max_source_side(ppi.unwrap_or(MAX_PPI));
        let limits = wsq::WsqLimits {
            max_side: side,
            max_pixels: u64::from(side) * u64::from(side),
        };
        let img = wsq::decode_with_limits(bytes, &limits).map_err(SampleError::Wsq)?;
        let source = checked_ppi(ppi.or(img.ppi), None)?;
        return to_native(img.image, source);
    }
    let reader = || {
        image::ImageReader::new(io::Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| SampleError::Corrupt(e.to_string()))
    };
    let format = reader()?.format();
    let declared = match format {
        Some(image::ImageFormat::Png) => png_ppi(bytes),
        Some(image::ImageFormat::Tiff) => tiff_ppi(bytes),
        Some(image::ImageFormat::Bmp) => bmp_ppi(bytes),
        // JPEG's lossy blocks blur and shift ridges, and neither the extractor nor
        // the built-in calibration was measured on them.
        Some(image::ImageFormat::Jpeg) => return Err(SampleError::Unsupported("JPEG")),
        _ if iso::detect(bytes).is_some() => return Err(SampleError::RecordNotImpression),
        _ => return Err(SampleError::NotAnImpression),
    };
    let source = match ppi {
        Some(p) => checked_ppi(Some(p), None)?,
        None => match declared {
            Some((x, y)) => checked_ppi(Some(x), Some(y))?,
            None => NATIVE_PPI,
        },
    };
    let (width, height) = reader()?
        .into_dimensions()
        .map_err(|e| SampleError::Corrupt(e.to_string()))?;
    let side = max_source_side(source);
    if width > side || height > side {
        return Err(SampleError::TooLarge { width, height });
    }
    let mut r = reader()?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(side);
    limits.max_image_height = Some(side);
    limits.max_alloc = Some(MAX_DECODE_ALLOC);
    r.limits(limits);
    let img = r
        .decode()
        .map_err(|e| SampleError::Corrupt(e.to_string()))?;
    to_native(img.into_luma8(), source)
}

/// Decodes an impression to 8-bit grey at 500 ppi, reading its resolution from its header.
pub fn decode_impression(bytes: &[u8]) -> Result<GrayImage, SampleError> {
    decode_impression_at(bytes, None).map(|d| d.image)
}

/// Largest side, in source pixels, of an image that is at most [`MAX_SIDE`] at 500 ppi.
fn max_source_side(ppi: u16) -> u32 {
    let ppi = u32::from(ppi.clamp(MIN_PPI, MAX_PPI));
    MAX_SIDE * ppi / u32::from(NATIVE_PPI)
}

/// A resolution a caller gives (`--ppi`), refused outside [`MIN_PPI`]..=[`MAX_PPI`] as a
/// file's would be: for commands that check it once before reading many files.
pub fn check_ppi(ppi: u16) -> Result<u16, SampleError> {
    checked_ppi(Some(ppi), None)
}

/// The resolution to use, refused outside [`MIN_PPI`]..=[`MAX_PPI`] or when `y` differs
/// from `x` by more than 1%.
fn checked_ppi(x: Option<u16>, y: Option<u16>) -> Result<u16, SampleError> {
    let Some(x) = x else {
        return Ok(NATIVE_PPI);
    };
    if let Some(y) = y {
        if u32::from(x.abs_diff(y)) * 100 > u32::from(x.max(y)) {
            return Err(SampleError::Anisotropic { x, y });
        }
    }
    if !(MIN_PPI..=MAX_PPI).contains(&x) {
        return Err(SampleError::Resolution(x));
    }
    Ok(x)
}

/// Whether `ppi` is far enough from 500 to resample: within 1% the ridge period moves less
/// than the extractor's own period quantisation.
fn needs_resampling(ppi: u16) -> bool {
    u32::from(ppi.abs_diff(NATIVE_PPI)) * 100 > u32::from(NATIVE_PPI)
}

fn to_native(image: GrayImage, source_ppi: u16) -> Result<Decoded, SampleError> {
    if !needs_resampling(source_ppi) {
        if image.width() > MAX_SIDE || image.height() > MAX_SIDE {
            return Err(SampleError::TooLarge {
                width: image.width(),
                height: image.height(),
            });
        }
        return Ok(Decoded {
            image,
            source_ppi,
            resampled: false,
        });
    }
    let scale = |v: u32| {
        let s = (u64::from(v) * u64::from(NATIVE_PPI) + u64::from(source_ppi) / 2)
            / u64::from(source_ppi);
        u32::try_from(s).unwrap_or(u32::MAX).max(1)
    };
    let (w, h) = (scale(image.width()), scale(image.height()));
    if w > MAX_SIDE || h > MAX_SIDE {
        return Err(SampleError::TooLarge {
            width: image.width(),
            height: image.height(),
        });
    }
    // A triangle filter widened by the ratio when shrinking: enough against aliasing of
    // ridges 8-12 px apart, and it adds no ringing that could read as a ridge.
    let image = image::imageops::resize(&image, w, h, image::imageops::FilterType::Triangle);
    Ok(Decoded {
        image,
        source_ppi,
        resampled: true,
    })
}

/// `(x, y)` resolution from a PNG's `pHYs` chunk, when it is in pixels per metre.
fn png_ppi(bytes: &[u8]) -> Option<(u16, u16)> {
    let reader = png::Decoder::new(io::Cursor::new(bytes)).read_info().ok()?;
    let dims = reader.info().pixel_dims?;
    if dims.unit != png::Unit::Meter {
        return None;
    }
    Some((per_metre_to_ppi(dims.xppu)?, per_metre_to_ppi(dims.yppu)?))
}

/// `(x, y)` resolution from a TIFF's first image (`ResolutionUnit` inch by default, or
/// centimetre; none means no resolution).
fn tiff_ppi(bytes: &[u8]) -> Option<(u16, u16)> {
    use tiff::decoder::ifd::Value;
    use tiff::tags::Tag;
    let mut dec = tiff::decoder::Decoder::new(io::Cursor::new(bytes)).ok()?;
    let unit = match dec.find_tag(Tag::ResolutionUnit).ok()? {
        None => 2,
        Some(v) => v.into_u16().ok()?,
    };
    let per_unit = |v: Option<Value>| -> Option<f64> {
        match v? {
            Value::Rational(n, d) if d != 0 => Some(f64::from(n) / f64::from(d)),
            Value::Short(n) => Some(f64::from(n)),
            Value::Unsigned(n) => Some(f64::from(n)),
            _ => None,
        }
    };
    let x = per_unit(dec.find_tag(Tag::XResolution).ok()?)?;
    let y = per_unit(dec.find_tag(Tag::YResolution).ok()?).unwrap_or(x);
    let to_ppi = |v: f64| -> Option<u16> {
        let ppi = match unit {
            2 => v,
            3 => v * 2.54,
            _ => return None,
        };
        (ppi.is_finite() && ppi >= 1.0 && ppi <= f64::from(u16::MAX)).then(|| ppi.round() as u16)
    };
    Some((to_ppi(x)?, to_ppi(y)?))
}

/// `(x, y)` resolution from a BMP's info header (pixels per metre; 0 means none).
fn bmp_ppi(bytes: &[u8]) -> Option<(u16, u16)> {
    let header_size = u32::from_le_bytes(bytes.get(14..18)?.try_into().ok()?);
    if header_size < 40 {
        return None;
    }
    let x = i32::from_le_bytes(bytes.get(38..42)?.try_into().ok()?);
    let y = i32::from_le_bytes(bytes.get(42..46)?.try_into().ok()?);
    let (x, y) = (u32::try_from(x).ok()?, u32::try_from(y).ok()?);
    if x == 0 && y == 0 {
        return None;
    }
    Some((per_metre_to_ppi(x)?, per_metre_to_ppi(y)?))
}

fn per_metre_to_ppi(v: u32) -> Option<u16> {
    let ppi = (f64::from(v) * 0.0254).round();
    (ppi >= 1.0 && ppi <= f64::from(u16::MAX)).then_some(ppi as u16)
}

/// Loads one finger from a file's bytes: an ISO/ANSI record (one view, checked by the
/// record quality gate) or an impression, extracted with `cfg`. `position` may be
/// [`FingerPosition::Unknown`]; a record for another finger is refused.
pub fn load(
    bytes: &[u8],
    position: FingerPosition,
    cfg: &ExtractConfig,
) -> Result<Sample, SampleError> {
    load_at(bytes, position, cfg, None)
}

/// [`load`] with the resolution given by the caller, overriding the file's (an impression's
/// header or a record's resolution field).
pub fn load_at(
    bytes: &[u8],
    position: FingerPosition,
    cfg: &ExtractConfig,
    ppi: Option<u16>,
) -> Result<Sample, SampleError> {
    if iso::detect(bytes).is_some() {
        let (_, views) = iso::read(bytes)?;
        let mut template = match <[FingerTemplate; 1]>::try_from(views) {
            Ok([t]) => t,
            Err(views) => return Err(SampleError::ManyViews(views.len())),
        };
        if position != FingerPosition::Unknown {
            if template.position != FingerPosition::Unknown && template.position != position {
                return Err(SampleError::PositionMismatch {
                    record: template.position.name(),
                    given: position.name(),
                });
            }
            template.position = position;
        }
        let source = checked_ppi(Some(ppi.unwrap_or(template.resolution_ppi)), None)?;
        if needs_resampling(source) {
            rescale_record(&mut template, source);
        }
        gate::check_record(&template, cfg.min_minutiae)?;
        return Ok(Sample {
            template,
            quality: None,
        });
    }
    let img = decode_impression_at(bytes, ppi)
        .map_err(|e| match e {
            // A record would have been taken above.
            SampleError::NotAnImpression => SampleError::NotAnImage,
            e => e,
        })?
        .image;
    let ex = extract::extract(&img, position, cfg)?;
    Ok(Sample {
        template: ex.template,
        quality: Some(ex.quality),
    })
}

/// Brings a record taken at `source_ppi` to 500 ppi: positions and image size scale,
/// directions do not.
fn rescale_record(t: &mut FingerTemplate, source_ppi: u16) {
    let k = f32::from(NATIVE_PPI) / f32::from(source_ppi);
    for m in &mut t.minutiae {
        m.x *= k;
        m.y *= k;
    }
    let side = |v: u16| (f32::from(v) * k).round().clamp(1.0, f32::from(u16::MAX)) as u16;
    t.width = side(t.width);
    t.height = side(t.height);
    t.resolution_ppi = NATIVE_PPI;
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;

    fn code(bytes: &[u8]) -> &'static str {
        load(bytes, FingerPosition::Unknown, &ExtractConfig::default())
            .unwrap_err()
            .code()
    }

    #[test]
    fn every_refusal_has_its_code() {
        assert_eq!(code(b"hello, not an image"), "not_an_image");
        let mut jpeg = Vec::new();
        image::GrayImage::from_pixel(8, 8, image::Luma([9]))
            .write_to(&mut io::Cursor::new(&mut jpeg), image::ImageFormat::Jpeg)
            .unwrap();
        assert_eq!(code(&jpeg), "unsupported_image");
        let mut png = Vec::new();
        image::GrayImage::from_pixel(64, 64, image::Luma([128]))
            .write_to(&mut io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        // A flat grey square has no ridges: an input problem, not ours.
        let c = code(&png);
        assert!(c == "low_quality" || c == "image_too_small", "{c}");
        assert_eq!(code(&png[..png.len() / 2]), "corrupt_image");
    }

    fn ridges(w: u32, h: u32) -> GrayImage {
        GrayImage::from_fn(w, h, |x, y| {
            let v = (std::f32::consts::TAU * (x as f32 + 0.4 * y as f32) / 9.0).cos();
            image::Luma([(128.0 + 90.0 * v) as u8])
        })
    }

    fn png_at(img: &GrayImage, dims: Option<png::PixelDimensions>) -> Vec<u8> {
        let mut out = Vec::new();
        let mut enc = png::Encoder::new(&mut out, img.width(), img.height());
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_pixel_dims(dims);
        let mut w = enc.write_header().unwrap();
        w.write_image_data(img.as_raw()).unwrap();
        w.finish().unwrap();
        out
    }

    fn per_metre(ppi: f64) -> u32 {
        (ppi / 0.0254).round() as u32
    }

    fn png_ppi_dims(x: f64, y: f64) -> Option<png::PixelDimensions> {
        Some(png::PixelDimensions {
            xppu: per_metre(x),
            yppu: per_metre(y),
            unit: png::Unit::Meter,
        })
    }

    fn err_code(r: Result<Decoded, SampleError>) -> &'static str {
        r.unwrap_err().code()
    }

    #[test]
    fn png_resolution_is_read_and_resampled_to_500_ppi() {
        let img = ridges(569, 400);
        let d = decode_impression_at(&png_at(&img, png_ppi_dims(569.0, 569.0)), None).unwrap();
        assert_eq!((d.source_ppi, d.resampled), (569, true));
        assert_eq!(d.image.dimensions(), (500, 351));
        // No pHYs, or an aspect ratio only: taken as 500 ppi, untouched.
        for dims in [
            None,
            Some(png::PixelDimensions {
                xppu: 1,
                yppu: 1,
                unit: png::Unit::Unspecified,
            }),
        ] {
            let d = decode_impression_at(&png_at(&img, dims), None).unwrap();
            assert_eq!((d.source_ppi, d.resampled), (500, false));
            assert_eq!(d.image.dimensions(), (569, 400));
        }
        // 1% from 500 is taken as 500.
        let d = decode_impression_at(&png_at(&img, png_ppi_dims(504.0, 504.0)), None).unwrap();
        assert_eq!((d.source_ppi, d.resampled), (504, false));
        // Upsampling from 300 ppi.
        let small = ridges(120, 90);
        let d = decode_impression_at(&png_at(&small, png_ppi_dims(300.0, 300.0)), None).unwrap();
        assert_eq!(d.image.dimensions(), (200, 150));
    }

    #[test]
    fn resolutions_outside_the_range_are_refused_unless_overridden() {
        let img = ridges(300, 300);
        let at72 = png_at(&img, png_ppi_dims(72.0, 72.0));
        assert_eq!(
            err_code(decode_impression_at(&at72, None)),
            "unsupported_resolution"
        );
        let at1200 = png_at(&img, png_ppi_dims(1200.0, 1200.0));
        assert_eq!(
            err_code(decode_impression_at(&at1200, None)),
            "unsupported_resolution"
        );
        let skew = png_at(&img, png_ppi_dims(500.0, 569.0));
        assert_eq!(
            err_code(decode_impression_at(&skew, None)),
            "unsupported_resolution"
        );
        // The caller knows better than a wrong header.
        let d = decode_impression_at(&at72, Some(500)).unwrap();
        assert_eq!((d.source_ppi, d.image.dimensions()), (500, (300, 300)));
        assert_eq!(
            err_code(decode_impression_at(&at72, Some(250))),
            "unsupported_resolution"
        );
        // The same refusal reaches `load`.
        let e = load(&at72, FingerPosition::Unknown, &ExtractConfig::default()).unwrap_err();
        assert_eq!(e.code(), "unsupported_resolution");
    }

    #[test]
    fn the_size_limit_is_in_inches_not_pixels() {
        // 2,400 px at 1000 ppi is 1,200 px at 500: accepted. At 500 ppi it is too large.
        let img = GrayImage::from_pixel(2400, 64, image::Luma([128]));
        let d = decode_impression_at(&png_at(&img, png_ppi_dims(1000.0, 1000.0)), None).unwrap();
        assert_eq!(d.image.dimensions(), (1200, 32));
        assert_eq!(
            err_code(decode_impression_at(&png_at(&img, None), None)),
            "image_too_large"
        );
    }

    #[test]
    fn tiff_resolution_in_inches_or_centimetres() {
        use tiff::encoder::{colortype, Rational, TiffEncoder};
        use tiff::tags::ResolutionUnit;
        let img = ridges(400, 300);
        let tiff_at = |unit: Option<ResolutionUnit>, value: Rational| {
            // Without `unit` the encoder's default unit ("none") stays.
            let mut out = io::Cursor::new(Vec::new());
            let mut enc = TiffEncoder::new(&mut out).unwrap();
            let mut im = enc
                .new_image::<colortype::Gray8>(img.width(), img.height())
                .unwrap();
            match unit {
                Some(u) => im.resolution(u, value),
                None => {
                    im.x_resolution(Rational {
                        n: value.n,
                        d: value.d,
                    });
                    im.y_resolution(value);
                }
            }
            im.write_data(img.as_raw()).unwrap();
            out.into_inner()
        };
        let d = decode_impression_at(
            &tiff_at(Some(ResolutionUnit::Inch), Rational { n: 1000, d: 1 }),
            None,
        )
        .unwrap();
        assert_eq!((d.source_ppi, d.image.dimensions()), (1000, (200, 150)));
        // 315 pixels per centimetre is 800 ppi.
        let d = decode_impression_at(
            &tiff_at(Some(ResolutionUnit::Centimeter), Rational { n: 315, d: 1 }),
            None,
        )
        .unwrap();
        assert_eq!((d.source_ppi, d.image.dimensions()), (800, (250, 188)));
        // Unit "none" (what many writers put by default) gives an aspect ratio only.
        let d = decode_impression_at(
            &tiff_at(Some(ResolutionUnit::None), Rational { n: 569, d: 1 }),
            None,
        )
        .unwrap();
        assert_eq!((d.source_ppi, d.resampled), (500, false));
        let e = decode_impression_at(
            &tiff_at(Some(ResolutionUnit::Inch), Rational { n: 96, d: 1 }),
            None,
        );
        assert_eq!(err_code(e), "unsupported_resolution");
    }

    #[test]
    fn bmp_resolution_in_pixels_per_metre() {
        let img = ridges(400, 300);
        let mut bmp = Vec::new();
        img.write_to(&mut io::Cursor::new(&mut bmp), image::ImageFormat::Bmp)
            .unwrap();
        let set = |bmp: &mut Vec<u8>, ppi: f64| {
            let v = per_metre(ppi).to_le_bytes();
            bmp[38..42].copy_from_slice(&v);
            bmp[42..46].copy_from_slice(&v);
        };
        set(&mut bmp, 0.0);
        let d = decode_impression_at(&bmp, None).unwrap();
        assert_eq!((d.source_ppi, d.resampled), (500, false));
        set(&mut bmp, 1000.0);
        let d = decode_impression_at(&bmp, None).unwrap();
        assert_eq!((d.source_ppi, d.image.dimensions()), (1000, (200, 150)));
        set(&mut bmp, 150.0);
        assert_eq!(
            err_code(decode_impression_at(&bmp, None)),
            "unsupported_resolution"
        );
    }

    #[test]
    fn records_are_brought_to_500_ppi() {
        use crate::{Minutia, MinutiaKind};
        let minutiae: Vec<Minutia> = (0..12)
            .map(|k| {
                let k = k as f32;
                Minutia::new(
                    100.0 + 40.0 * k,
                    80.0 + 30.0 * k,
                    0.5,
                    MinutiaKind::Ending,
                    60,
                )
            })
            .collect();
        let at = |ppi: u16| {
            let t = FingerTemplate {
                width: 800,
                height: 800,
                resolution_ppi: ppi,
                position: FingerPosition::RightIndex,
                quality: 60,
                minutiae: minutiae.clone(),
            };
            iso::write(&[t], iso::Format::Iso19794_2).unwrap()
        };
        let cfg = ExtractConfig::default();
        let s = load(&at(1000), FingerPosition::Unknown, &cfg).unwrap();
        assert_eq!(s.template.resolution_ppi, 500);
        assert_eq!((s.template.width, s.template.height), (400, 400));
        let m = &s.template.minutiae[3];
        assert!(
            (m.x - 110.0).abs() < 1.0 && (m.y - 85.0).abs() < 1.0,
            "{m:?}"
        );
        // A record at 500 ppi is left as it is; an override rescales it.
        let s = load(&at(500), FingerPosition::Unknown, &cfg).unwrap();
        assert!((s.template.minutiae[3].x - 220.0).abs() < 1.0);
        let s = load_at(&at(500), FingerPosition::Unknown, &cfg, Some(1000)).unwrap();
        assert!((s.template.minutiae[3].x - 110.0).abs() < 1.0);
        let e = load(&at(200), FingerPosition::Unknown, &cfg).unwrap_err();
        assert_eq!(e.code(), "unsupported_resolution");
        // Where only an impression will do, a record is named as one, and junk is not
        // said to be no record.
        let e = decode_impression_at(&at(500), None).unwrap_err();
        assert!(matches!(e, SampleError::RecordNotImpression), "{e}");
        assert_eq!(e.code(), "not_an_image");
        assert!(e.to_string().contains("not an impression"), "{e}");
        let e = decode_impression_at(b"hello, not an image", None).unwrap_err();
        assert_eq!(e.to_string(), "not a PNG, TIFF, BMP or WSQ image");
        // Where records are taken too, junk is neither.
        let e = load(b"hello, not an image", FingerPosition::Unknown, &cfg).unwrap_err();
        assert!(e.to_string().contains("nor an ISO/ANSI record"), "{e}");
    }
}
