//! The quality gate for minutiae that arrive as a record rather than from our extractor.
//!
//! An impression passes the extractor's checks (contrast, coherence, a minimum of reliable
//! minutiae). A record skips all of them, so without this gate a record of two minutiae,
//! of one minutia repeated 255 times, or of a 0x0 image would enrol and match nothing or
//! everything.

use std::collections::HashSet;

use crate::FingerTemplate;

/// Why a record's template is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordQualityError {
    /// The record declares an empty image.
    #[error("the record declares a {width}x{height} image")]
    EmptyImage {
        /// Declared width.
        width: u16,
        /// Declared height.
        height: u16,
    },
    /// Too few distinct minutiae to compare reliably.
    #[error("{distinct} distinct minutiae, at least {min} needed")]
    TooFewMinutiae {
        /// Minutiae at distinct positions.
        distinct: usize,
        /// The minimum (the extractor's own, `ExtractConfig::min_minutiae`).
        min: usize,
    },
    /// A minutia lies outside the declared image.
    #[error("a minutia lies outside the declared {width}x{height} image")]
    OutsideImage {
        /// Declared width.
        width: u16,
        /// Declared height.
        height: u16,
    },
}

/// Checks a template read from a record: a non-empty image, minutiae inside it, and at
/// least `min_minutiae` at distinct positions (whole pixels), the floor the extractor
/// applies to impressions.
pub fn check_record(t: &FingerTemplate, min_minutiae: usize) -> Result<(), RecordQualityError> {
    let (width, height) = (t.width, t.height);
    if width == 0 || height == 0 {
        return Err(RecordQualityError::EmptyImage { width, height });
    }
    let inside = |m: &crate::Minutia| {
        m.x >= 0.0 && m.y >= 0.0 && m.x < f32::from(width) && m.y < f32::from(height)
    };
    if !t.minutiae.iter().all(inside) {
        return Err(RecordQualityError::OutsideImage { width, height });
    }
    let distinct: HashSet<(i32, i32)> = t
        .minutiae
        .iter()
        .map(|m| (m.x.round() as i32, m.y.round() as i32))
        .collect();
    if distinct.len() < min_minutiae {
        return Err(RecordQualityError::TooFewMinutiae {
            distinct: distinct.len(),
            min: min_minutiae,
        });
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;
    use crate::{FingerPosition, Minutia, MinutiaKind};

    fn template(points: &[(f32, f32)], width: u16, height: u16) -> FingerTemplate {
        FingerTemplate {
            width,
            height,
            resolution_ppi: 500,
            position: FingerPosition::RightIndex,
            quality: 60,
            minutiae: points
                .iter()
                .map(|&(x, y)| Minutia::new(x, y, 1.0, MinutiaKind::Ending, 60))
                .collect(),
        }
    }

    #[test]
    fn records_the_extractor_would_refuse_are_refused() {
        let grid: Vec<(f32, f32)> = (0..12).map(|i| (20.0 + 15.0 * i as f32, 50.0)).collect();
        assert_eq!(check_record(&template(&grid, 300, 300), 8), Ok(()));
        assert!(matches!(
            check_record(&template(&grid[..2], 300, 300), 8),
            Err(RecordQualityError::TooFewMinutiae { distinct: 2, .. })
        ));
        let same = vec![(40.0, 40.0); 255];
        assert!(matches!(
            check_record(&template(&same, 300, 300), 8),
            Err(RecordQualityError::TooFewMinutiae { distinct: 1, .. })
        ));
        assert!(matches!(
            check_record(&template(&[], 0, 0), 8),
            Err(RecordQualityError::EmptyImage { .. })
        ));
        assert!(matches!(
            check_record(&template(&grid, 100, 100), 8),
            Err(RecordQualityError::OutsideImage { .. })
        ));
    }
}
