//! One fingerprint sample from untrusted bytes: an ISO/ANSI minutiae record, or a 500-ppi
//! impression (PNG, TIFF, BMP or WSQ) to extract. Every failure is a [`SampleError`] with
//! a kind and a stable code, so that each front end reports it the same way.

use std::io;

use image::GrayImage;
use ipseity_core::{Classified, ErrorKind};

use crate::extract::{self, ExtractConfig, ExtractError, QualityReport};
use crate::gate::{self, RecordQualityError};
use crate::iso::{self, RecordError};
use crate::wsq::{self, WsqError};
use crate::{FingerPosition, FingerTemplate};

/// Largest image side accepted before decoding: 4 inches at 500 ppi.
pub const MAX_SIDE: u32 = 2000;

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
    /// Not scanned at 500 ppi.
    #[error("{0} ppi; fingerprints must be scanned at 500 ppi")]
    Resolution(u16),
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
            SampleError::NotAnImage => "not_an_image",
            SampleError::Unsupported(_) => "unsupported_image",
            SampleError::Corrupt(_) | SampleError::Wsq(_) => "corrupt_image",
            SampleError::TooLarge { .. } => "image_too_large",
            SampleError::Resolution(_) => "unsupported_resolution",
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

/// Decodes an impression to 8-bit grey, refusing huge or corrupt images before allocating.
pub fn decode_impression(bytes: &[u8]) -> Result<GrayImage, SampleError> {
    if wsq::is_wsq(bytes) {
        // The decoder's own bound (8192 a side) would let a few kilobytes of zero runs
        // describe a 600 MB image; nothing larger than the extractor takes is decoded.
        let limits = wsq::WsqLimits {
            max_side: MAX_SIDE,
            max_pixels: u64::from(MAX_SIDE) * u64::from(MAX_SIDE),
        };
        let img = wsq::decode_with_limits(bytes, &limits).map_err(SampleError::Wsq)?;
        if let Some(ppi) = img.ppi {
            if !(450..=550).contains(&ppi) {
                return Err(SampleError::Resolution(ppi));
            }
        }
        return Ok(img.image);
    }
    let reader = || {
        image::ImageReader::new(io::Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| SampleError::Corrupt(e.to_string()))
    };
    match reader()?.format() {
        Some(image::ImageFormat::Png | image::ImageFormat::Tiff | image::ImageFormat::Bmp) => {}
        // JPEG's lossy blocks blur and shift ridges, and neither the extractor nor
        // the built-in calibration was measured on them.
        Some(image::ImageFormat::Jpeg) => return Err(SampleError::Unsupported("JPEG")),
        _ => return Err(SampleError::NotAnImage),
    }
    let (width, height) = reader()?
        .into_dimensions()
        .map_err(|e| SampleError::Corrupt(e.to_string()))?;
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(SampleError::TooLarge { width, height });
    }
    let mut r = reader()?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_ALLOC);
    r.limits(limits);
    let img = r
        .decode()
        .map_err(|e| SampleError::Corrupt(e.to_string()))?;
    Ok(img.into_luma8())
}

/// Loads one finger from a file's bytes: an ISO/ANSI record (one view, checked by the
/// record quality gate) or an impression, extracted with `cfg`. `position` may be
/// [`FingerPosition::Unknown`]; a record for another finger is refused.
pub fn load(
    bytes: &[u8],
    position: FingerPosition,
    cfg: &ExtractConfig,
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
        gate::check_record(&template, cfg.min_minutiae)?;
        return Ok(Sample {
            template,
            quality: None,
        });
    }
    let img = decode_impression(bytes)?;
    let ex = extract::extract(&img, position, cfg)?;
    Ok(Sample {
        template: ex.template,
        quality: Some(ex.quality),
    })
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
}
