//! The native fingerprint template, shared by every module of this crate.
//!
//! Conventions, used by the extractor, the generator, the matcher and the standard formats:
//!
//! - Coordinates are in pixels of the 500-ppi image, origin at the top-left corner, `x` to
//!   the right, `y` downwards. Sub-pixel positions are allowed.
//! - `angle` is in radians in `[0, 2π)`, measured counter-clockwise from the positive x axis
//!   as a person sees the image (so the unit direction in pixel coordinates is
//!   `(cos a, -sin a)`), as in ISO/IEC 19794-2.
//! - A ridge **ending** points from the ending into the ridge it terminates; a
//!   **bifurcation** points from the fork towards the two branches, along their bisector.
//!   These two are duals: a ridge ending is a valley bifurcation and keeps its direction when
//!   the image is inverted, which is why templates from different sensors still match.

use serde::{Deserialize, Serialize};
use std::f32::consts::TAU;

/// Kind of a minutia.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MinutiaKind {
    /// A ridge that stops.
    Ending,
    /// A ridge that splits in two.
    Bifurcation,
    /// Neither, or unknown (ISO type 0).
    Other,
}

impl MinutiaKind {
    /// Stable code used in the store vector (0 other, 1 ending, 2 bifurcation, as ISO).
    pub fn code(self) -> u8 {
        match self {
            MinutiaKind::Other => 0,
            MinutiaKind::Ending => 1,
            MinutiaKind::Bifurcation => 2,
        }
    }

    /// Inverse of [`MinutiaKind::code`].
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(MinutiaKind::Other),
            1 => Some(MinutiaKind::Ending),
            2 => Some(MinutiaKind::Bifurcation),
            _ => None,
        }
    }
}

/// One minutia.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Minutia {
    /// Column, pixels.
    pub x: f32,
    /// Row, pixels.
    pub y: f32,
    /// Direction, radians in `[0, 2π)`; see the module conventions.
    pub angle: f32,
    /// Ending, bifurcation or other.
    pub kind: MinutiaKind,
    /// Confidence, 0 to 100.
    pub quality: u8,
}

impl Minutia {
    /// Builds a minutia, wrapping the angle into `[0, 2π)` and clamping quality to 100.
    pub fn new(x: f32, y: f32, angle: f32, kind: MinutiaKind, quality: u8) -> Self {
        Self {
            x,
            y,
            angle: wrap_angle(angle),
            kind,
            quality: quality.min(100),
        }
    }
}

/// Wraps any finite angle into `[0, 2π)`.
pub(crate) fn wrap_angle(a: f32) -> f32 {
    let w = a.rem_euclid(TAU);
    // rem_euclid can return TAU itself for tiny negative inputs after rounding.
    if w >= TAU {
        0.0
    } else {
        w
    }
}

/// Finger position, with the codes of ISO/IEC 19794-2 and ANSI INCITS 378 (table "finger
/// position codes"): 0 unknown, 1 right thumb ... 5 right little, 6 left thumb ... 10 left
/// little.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FingerPosition {
    /// Not known.
    Unknown,
    /// Right thumb.
    RightThumb,
    /// Right index.
    RightIndex,
    /// Right middle.
    RightMiddle,
    /// Right ring.
    RightRing,
    /// Right little.
    RightLittle,
    /// Left thumb.
    LeftThumb,
    /// Left index.
    LeftIndex,
    /// Left middle.
    LeftMiddle,
    /// Left ring.
    LeftRing,
    /// Left little.
    LeftLittle,
}

impl FingerPosition {
    /// Every position, in code order.
    pub const ALL: [FingerPosition; 11] = [
        FingerPosition::Unknown,
        FingerPosition::RightThumb,
        FingerPosition::RightIndex,
        FingerPosition::RightMiddle,
        FingerPosition::RightRing,
        FingerPosition::RightLittle,
        FingerPosition::LeftThumb,
        FingerPosition::LeftIndex,
        FingerPosition::LeftMiddle,
        FingerPosition::LeftRing,
        FingerPosition::LeftLittle,
    ];

    /// The standard code, 0 to 10.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// Inverse of [`FingerPosition::code`].
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.get(usize::from(code)).copied()
    }

    /// Short name used on the command line, e.g. `right-index`.
    pub fn name(self) -> &'static str {
        match self {
            FingerPosition::Unknown => "unknown",
            FingerPosition::RightThumb => "right-thumb",
            FingerPosition::RightIndex => "right-index",
            FingerPosition::RightMiddle => "right-middle",
            FingerPosition::RightRing => "right-ring",
            FingerPosition::RightLittle => "right-little",
            FingerPosition::LeftThumb => "left-thumb",
            FingerPosition::LeftIndex => "left-index",
            FingerPosition::LeftMiddle => "left-middle",
            FingerPosition::LeftRing => "left-ring",
            FingerPosition::LeftLittle => "left-little",
        }
    }

    /// Parses a name from [`FingerPosition::name`] or a numeric code.
    pub fn parse(s: &str) -> Option<Self> {
        if let Ok(code) = s.parse::<u8>() {
            return Self::from_code(code);
        }
        Self::ALL.iter().copied().find(|p| p.name() == s)
    }
}

/// A finger's minutiae template, as extracted from one impression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FingerTemplate {
    /// Image width, pixels.
    pub width: u16,
    /// Image height, pixels.
    pub height: u16,
    /// Resolution, pixels per inch (500 for every image this crate extracts from).
    pub resolution_ppi: u16,
    /// Which finger.
    pub position: FingerPosition,
    /// Impression quality, 0 to 100.
    pub quality: u8,
    /// The minutiae.
    pub minutiae: Vec<Minutia>,
}

/// Why a store vector could not be read back as a [`FingerTemplate`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateVectorError {
    /// Shorter than the header, or not header plus whole minutiae.
    #[error("fingerprint template vector has length {0}, not 6 + 5n")]
    Length(usize),
    /// A field out of its range.
    #[error("fingerprint template field {0} out of range")]
    Field(&'static str),
    /// More minutiae than [`FingerTemplate::MAX_MINUTIAE`].
    #[error("fingerprint template has {0} minutiae, at most {max} allowed", max = FingerTemplate::MAX_MINUTIAE)]
    TooMany(usize),
}

const VECTOR_HEADER: usize = 6;
const VECTOR_PER_MINUTIA: usize = 5;

impl FingerTemplate {
    /// Most minutiae a template may hold (ISO records allow 255; more is noise).
    pub const MAX_MINUTIAE: usize = 255;

    /// Flattens the template into the `f32` vector the store seals:
    /// `[version, width, height, ppi, position, quality, (x, y, angle, kind, quality)*]`.
    /// Every value is a small integer or a pixel coordinate, exactly representable in `f32`.
    pub fn to_vector(&self) -> Vec<f32> {
        let mut v = Vec::with_capacity(VECTOR_HEADER + VECTOR_PER_MINUTIA * self.minutiae.len());
        v.extend_from_slice(&[
            1.0,
            f32::from(self.width),
            f32::from(self.height),
            f32::from(self.resolution_ppi),
            f32::from(self.position.code()),
            f32::from(self.quality),
        ]);
        for m in self.minutiae.iter().take(Self::MAX_MINUTIAE) {
            v.extend_from_slice(&[
                m.x,
                m.y,
                m.angle,
                f32::from(m.kind.code()),
                f32::from(m.quality),
            ]);
        }
        v
    }

    /// Inverse of [`FingerTemplate::to_vector`]; validates every field.
    pub fn from_vector(v: &[f32]) -> Result<Self, TemplateVectorError> {
        if v.len() < VECTOR_HEADER || !(v.len() - VECTOR_HEADER).is_multiple_of(VECTOR_PER_MINUTIA)
        {
            return Err(TemplateVectorError::Length(v.len()));
        }
        let n = (v.len() - VECTOR_HEADER) / VECTOR_PER_MINUTIA;
        if n > Self::MAX_MINUTIAE {
            return Err(TemplateVectorError::TooMany(n));
        }
        let int = |x: f32, max: f32, name: &'static str| -> Result<f32, TemplateVectorError> {
            if x.is_finite() && x >= 0.0 && x <= max && x.fract() == 0.0 {
                Ok(x)
            } else {
                Err(TemplateVectorError::Field(name))
            }
        };
        int(v[0], 1.0, "version").and_then(|x| {
            if x == 1.0 {
                Ok(x)
            } else {
                Err(TemplateVectorError::Field("version"))
            }
        })?;
        let width = int(v[1], 65535.0, "width")? as u16;
        let height = int(v[2], 65535.0, "height")? as u16;
        let resolution_ppi = int(v[3], 65535.0, "resolution")? as u16;
        let position = FingerPosition::from_code(int(v[4], 10.0, "position")? as u8)
            .ok_or(TemplateVectorError::Field("position"))?;
        let quality = int(v[5], 100.0, "quality")? as u8;
        let mut minutiae = Vec::with_capacity(n);
        for c in v[VECTOR_HEADER..].chunks_exact(VECTOR_PER_MINUTIA) {
            let (x, y, angle) = (c[0], c[1], c[2]);
            if !(x.is_finite() && y.is_finite() && x >= 0.0 && y >= 0.0) {
                return Err(TemplateVectorError::Field("minutia position"));
            }
            if !(angle.is_finite() && (0.0..TAU).contains(&angle)) {
                return Err(TemplateVectorError::Field("minutia angle"));
            }
            let kind = MinutiaKind::from_code(int(c[3], 2.0, "minutia kind")? as u8)
                .ok_or(TemplateVectorError::Field("minutia kind"))?;
            let q = int(c[4], 100.0, "minutia quality")? as u8;
            minutiae.push(Minutia {
                x,
                y,
                angle,
                kind,
                quality: q,
            });
        }
        Ok(Self {
            width,
            height,
            resolution_ppi,
            position,
            quality,
            minutiae,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_template() -> impl Strategy<Value = FingerTemplate> {
        let minutia =
            (0u16..800, 0u16..800, 0u16..360, 0u8..3, 0u8..=100).prop_map(|(x, y, a, k, q)| {
                Minutia::new(
                    f32::from(x),
                    f32::from(y),
                    f32::from(a).to_radians(),
                    MinutiaKind::from_code(k).unwrap(),
                    q,
                )
            });
        (
            1u16..2000,
            1u16..2000,
            0u8..=10,
            0u8..=100,
            proptest::collection::vec(minutia, 0..60),
        )
            .prop_map(|(w, h, p, q, m)| FingerTemplate {
                width: w,
                height: h,
                resolution_ppi: 500,
                position: FingerPosition::from_code(p).unwrap(),
                quality: q,
                minutiae: m,
            })
    }

    proptest! {
        #[test]
        fn vector_round_trip(t in arb_template()) {
            prop_assert_eq!(FingerTemplate::from_vector(&t.to_vector()).unwrap(), t);
        }

        #[test]
        fn arbitrary_vectors_never_panic(v in proptest::collection::vec(-10.0f32..1000.0, 0..80)) {
            let _ = FingerTemplate::from_vector(&v);
        }
    }

    #[test]
    fn refuses_bad_fields() {
        let mut v = FingerTemplate {
            width: 10,
            height: 10,
            resolution_ppi: 500,
            position: FingerPosition::LeftIndex,
            quality: 50,
            minutiae: vec![Minutia::new(1.0, 2.0, 0.5, MinutiaKind::Ending, 60)],
        }
        .to_vector();
        assert!(FingerTemplate::from_vector(&v).is_ok());
        v[4] = 11.0;
        assert_eq!(
            FingerTemplate::from_vector(&v),
            Err(TemplateVectorError::Field("position"))
        );
        v[4] = 7.0;
        v[8] = f32::NAN;
        assert!(FingerTemplate::from_vector(&v).is_err());
        assert_eq!(
            FingerTemplate::from_vector(&v[..7]),
            Err(TemplateVectorError::Length(7))
        );
    }

    #[test]
    fn positions_parse_by_name_and_code() {
        for p in FingerPosition::ALL {
            assert_eq!(FingerPosition::parse(p.name()), Some(p));
            assert_eq!(FingerPosition::parse(&p.code().to_string()), Some(p));
        }
        assert_eq!(FingerPosition::parse("right-toe"), None);
    }

    #[test]
    fn angles_wrap() {
        assert!((wrap_angle(-0.1) - (TAU - 0.1)).abs() < 1e-5);
        assert_eq!(wrap_angle(TAU), 0.0);
    }
}
