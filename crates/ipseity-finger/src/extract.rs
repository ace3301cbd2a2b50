//! Minutiae extraction and impression quality for 500-ppi grayscale fingerprints.
//!
//! One straight line of stages, each a pure function in a submodule, all tuning constants in
//! [`ExtractConfig`]:
//!
//! 1. local normalisation (zero mean, unit variance over a 17-px window; ridges positive);
//! 2. fields on 8-px cells (`field`): gradient structure tensor of a lightly blurred copy
//!    (orientation and coherence, smoothed in the doubled-angle domain; the blur keeps the
//!    pores and breaks of dry ridges from scattering it), gray-level contrast, an oriented x-signature per
//!    cell giving the ridge period (from zero crossings) and the ridge clarity (share of the
//!    local variance that is constant along the ridges);
//! 3. segmentation: cells with contrast, coherence and clarity, then opening, closing, hole
//!    filling and the largest connected component; then the cells with contrast inside the
//!    orthogonal hull of that area join it, since dry, wet or faint patches of a finger lose
//!    clarity before they lose contrast, and a hole in the mask vetoes every minutia near it;
//! 4. the quality score (below) — [`quality`] stops here;
//! 5. contextual enhancement (`enhance`): per cell, the even Gabor kernel of the quantised
//!    orientation (16 steps) and period (1.5-px steps), thresholded at zero;
//! 6. thinning (`skeleton`): lookup-table Zhang–Suen plus removal of staircase corners;
//! 7. minutiae (`minutiae`): crossing number 1 (ending) or 3 (bifurcation); direction by
//!    tracing the skeleton 12 px (an ending towards its ridge, a fork between its two closest
//!    branches), averaged with the orientation field when they agree within 35°; removal of
//!    spurs, short fragments, bridges, opposed endings across a break, minutiae near the edge
//!    of the finger area or image, and clusters; quality per minutia from local coherence,
//!    clarity and distance to the edge of the finger area.
//!
//! # Quality score
//!
//! Over the foreground cells, with `ocl` the mean coherence, `clar` the mean clarity and
//! `valid` the share of cells whose period could be measured:
//!
//! ```text
//! A = min(1, foreground_px / reference_area)      (reference 60 000 px ≈ 12 x 12 mm)
//! O = clamp((ocl  - 0.25) / 0.50, 0, 1)            orientation certainty
//! C = clamp((clar - 0.20) / 0.50, 0, 1)            ridge clarity
//! score = round(100 * sqrt(A) * (0.35 O + 0.45 C + 0.20 valid))
//! ```
//!
//! Like NFIQ 2 it rewards a large, clear, regular ridge area; it is not NFIQ 2 and its
//! values are not interchangeable with NFIQ 2's.
//!
//! # Polarity
//!
//! The extractor assumes dark ridges on a light background. An inverted impression (light
//! ridges) is not detected or refused: it yields the dual template, in which every ridge
//! ending reads as a bifurcation and the reverse, at nearly the same place (within half a
//! ridge period) and with the same direction (see the conventions in [`crate::Minutia`]'s
//! module), so a matcher that ignores minutia kinds still matches it.

mod enhance;
mod field;
mod minutiae;
mod skeleton;

use crate::{FingerPosition, FingerTemplate};
use image::GrayImage;

/// Tuning constants of the extractor. [`Default`] is tuned for 500-ppi impressions.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtractConfig {
    /// Half side of the local normalisation window, pixels.
    pub normalise_radius: usize,
    /// Gaussian sigma, in 8-px cells, of the doubled-angle orientation smoothing.
    pub orientation_smoothing: f32,
    /// Gray-level standard deviation below which a cell is background.
    pub min_contrast: f32,
    /// Coherence below which a cell is not counted as ridge area during segmentation.
    pub min_coherence: f32,
    /// Clarity below which a cell is not counted as ridge area during segmentation.
    pub min_clarity: f32,
    /// Shortest plausible ridge period, pixels.
    pub min_period: f32,
    /// Longest plausible ridge period, pixels.
    pub max_period: f32,
    /// Period used where none can be measured, pixels.
    pub default_period: f32,
    /// Gabor kernel half side, pixels (the kernel is `2r+1` square).
    pub gabor_radius: usize,
    /// Number of quantised Gabor orientations over 180°.
    pub gabor_orientations: usize,
    /// Step between the Gabor bank's periods, pixels.
    pub gabor_period_step: f32,
    /// Gabor envelope sigma across the ridges, as a fraction of the period.
    pub gabor_sigma_across: f32,
    /// Gabor envelope sigma along the ridges, as a fraction of the period.
    pub gabor_sigma_along: f32,
    /// Length of the skeleton trace that gives a minutia's direction, pixels.
    pub trace_length: usize,
    /// Largest angle, radians, between trace and orientation field for the field to be used.
    pub refine_max_angle: f32,
    /// Ridge pieces shorter than this many periods ending at an ending or fork are spurs or
    /// fragments.
    pub spur_length: f32,
    /// Two forks joined by a ridge shorter than this many periods are a bridge.
    pub bridge_length: f32,
    /// Opposed endings closer than this many periods are a broken ridge.
    pub break_distance: f32,
    /// Largest deviation, radians, from exact opposition for a broken ridge.
    pub break_max_angle: f32,
    /// Minutiae closer than this many periods to another are dropped as a cluster.
    pub cluster_distance: f32,
    /// Minutiae closer than this to the edge of the finger area or image are dropped, px.
    pub border_margin: f32,
    /// Minutiae of lower quality (0..=100) are dropped.
    pub min_minutia_quality: u8,
    /// Fewer minutiae than this make the impression unusable for extraction.
    pub min_minutiae: usize,
    /// Scores below this make the impression unusable.
    pub min_score: u8,
    /// Foreground below this fraction of the image makes the impression unusable.
    pub min_foreground_fraction: f32,
    /// Foreground area at which the area factor of the score saturates, pixels.
    pub reference_area: f32,
}

impl Default for ExtractConfig {
    fn default() -> Self {
        Self {
            normalise_radius: 8,
            orientation_smoothing: 1.5,
            min_contrast: 6.0,
            min_coherence: 0.3,
            min_clarity: 0.3,
            min_period: 4.5,
            max_period: 16.0,
            default_period: 9.0,
            gabor_radius: 6,
            gabor_orientations: 16,
            gabor_period_step: 1.5,
            gabor_sigma_across: 0.45,
            gabor_sigma_along: 0.5,
            trace_length: 12,
            refine_max_angle: 35f32.to_radians(),
            spur_length: 1.0,
            bridge_length: 1.0,
            break_distance: 1.5,
            break_max_angle: 40f32.to_radians(),
            cluster_distance: 0.6,
            border_margin: 10.0,
            min_minutia_quality: 10,
            min_minutiae: 5,
            min_score: 20,
            min_foreground_fraction: 0.08,
            reference_area: 60_000.0,
        }
    }
}

impl ExtractConfig {
    fn validate(&self) -> Result<(), ExtractError> {
        let pos = |v: f32| v.is_finite() && v > 0.0;
        let checks: [(bool, &'static str); 12] = [
            (
                (1..=32).contains(&self.normalise_radius),
                "normalise_radius",
            ),
            (
                pos(self.orientation_smoothing) && self.orientation_smoothing <= 8.0,
                "orientation_smoothing",
            ),
            (
                self.min_contrast.is_finite() && self.min_contrast >= 0.0,
                "min_contrast",
            ),
            (
                self.min_coherence.is_finite() && self.min_clarity.is_finite(),
                "min_coherence/min_clarity",
            ),
            (
                pos(self.min_period)
                    && self.min_period >= 2.0
                    && self.max_period <= 40.0
                    && self.min_period < self.max_period,
                "min_period/max_period",
            ),
            (
                pos(self.default_period) && self.default_period <= 40.0,
                "default_period",
            ),
            ((2..=16).contains(&self.gabor_radius), "gabor_radius"),
            (
                (1..=64).contains(&self.gabor_orientations),
                "gabor_orientations",
            ),
            (pos(self.gabor_period_step), "gabor_period_step"),
            (
                pos(self.gabor_sigma_across) && pos(self.gabor_sigma_along),
                "gabor sigmas",
            ),
            (
                [
                    self.refine_max_angle,
                    self.spur_length,
                    self.bridge_length,
                    self.break_distance,
                    self.break_max_angle,
                    self.cluster_distance,
                    self.border_margin,
                    self.min_foreground_fraction,
                ]
                .iter()
                .all(|v| v.is_finite() && *v >= 0.0)
                    && (1..=64).contains(&self.trace_length),
                "minutia filter lengths",
            ),
            (pos(self.reference_area), "reference_area"),
        ];
        match checks.iter().find(|(ok, _)| !ok) {
            Some((_, name)) => Err(ExtractError::InvalidConfig(name)),
            None => Ok(()),
        }
    }
}

/// An impression's quality.
#[derive(Debug, Clone, PartialEq)]
pub struct QualityReport {
    /// 0 to 100, higher is better; see the module documentation for the formula.
    pub score: u8,
    /// Share of the image covered by the finger, 0 to 1.
    pub foreground_fraction: f32,
    /// Whether the impression is good enough to extract from.
    pub usable: bool,
    /// Why it is not usable, in words a user can act on.
    pub reason: Option<String>,
}

/// What [`extract`] returns.
#[derive(Debug, Clone, PartialEq)]
pub struct Extraction {
    /// The template; its `quality` is `quality.score`.
    pub template: FingerTemplate,
    /// The impression's quality.
    pub quality: QualityReport,
}

/// Why extraction or quality assessment failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ExtractError {
    /// Smaller than [`MIN_SIDE`] on a side.
    #[error("fingerprint image is {width}x{height}; each side must be at least {min} pixels")]
    TooSmall {
        /// Width, pixels.
        width: u32,
        /// Height, pixels.
        height: u32,
        /// The smallest side allowed.
        min: u32,
    },
    /// Larger than [`MAX_SIDE`] on a side.
    #[error("fingerprint image is {width}x{height}; each side must be at most {max} pixels (500 ppi expected)")]
    TooLarge {
        /// Width, pixels.
        width: u32,
        /// Height, pixels.
        height: u32,
        /// The largest side allowed.
        max: u32,
    },
    /// The impression is unusable.
    #[error("fingerprint impression unusable (quality {score}): {reason}")]
    LowQuality {
        /// The quality score.
        score: u8,
        /// Why, in words a user can act on.
        reason: String,
    },
    /// A configuration value is out of range.
    #[error("invalid extractor configuration: {0}")]
    InvalidConfig(&'static str),
}

/// Smallest image side accepted, pixels.
pub const MIN_SIDE: u32 = 64;
/// Largest image side accepted, pixels (4 inches at 500 ppi).
pub const MAX_SIDE: u32 = 2000;

struct Analysis {
    norm: field::Plane,
    fields: field::Fields,
    report: QualityReport,
}

fn check_size(img: &GrayImage) -> Result<&[u8], ExtractError> {
    let (width, height) = img.dimensions();
    if width < MIN_SIDE || height < MIN_SIDE {
        return Err(ExtractError::TooSmall {
            width,
            height,
            min: MIN_SIDE,
        });
    }
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(ExtractError::TooLarge {
            width,
            height,
            max: MAX_SIDE,
        });
    }
    let n = width as usize * height as usize;
    img.as_raw().get(..n).ok_or(ExtractError::InvalidConfig(
        "image buffer shorter than its size",
    ))
}

fn analyse(img: &GrayImage, cfg: &ExtractConfig) -> Result<Analysis, ExtractError> {
    cfg.validate()?;
    let px = check_size(img)?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    let norm = field::normalise(px, w, h, cfg.normalise_radius);
    let fields = field::estimate(px, &norm, cfg);
    let report = score(&fields, w, h, cfg);
    Ok(Analysis {
        norm,
        fields,
        report,
    })
}

fn score(f: &field::Fields, w: usize, h: usize, cfg: &ExtractConfig) -> QualityReport {
    let cell = field::CELL;
    let (mut area, mut cells) = (0usize, 0usize);
    let (mut ocl, mut clar, mut valid) = (0f32, 0f32, 0f32);
    let mut contrast_cells = 0usize;
    let max_contrast = f.contrast.iter().fold(0f32, |a, &b| a.max(b));
    let floor = cfg.min_contrast.max(0.15 * max_contrast);
    for cy in 0..f.ch {
        for cx in 0..f.cw {
            let i = cy * f.cw + cx;
            if f.contrast[i] >= floor {
                contrast_cells += 1;
            }
            if !f.mask[i] {
                continue;
            }
            cells += 1;
            area += (w - cx * cell).min(cell) * (h - cy * cell).min(cell);
            ocl += f.coherence[i];
            clar += f.clarity[i];
            valid += f32::from(u8::from(f.period_valid[i]));
        }
    }
    let fraction = area as f32 / (w * h) as f32;
    if cells == 0 {
        let reason = if max_contrast < cfg.min_contrast {
            "blank or uniform image: no contrast"
        } else {
            "no ridge pattern found"
        };
        return QualityReport {
            score: 0,
            foreground_fraction: 0.0,
            usable: false,
            reason: Some(reason.to_string()),
        };
    }
    let n = cells as f32;
    let (ocl, clar, valid) = (ocl / n, clar / n, valid / n);
    let a = (area as f32 / cfg.reference_area).min(1.0);
    let o = ((ocl - 0.25) / 0.5).clamp(0.0, 1.0);
    let c = ((clar - 0.2) / 0.5).clamp(0.0, 1.0);
    let s = (100.0 * a.sqrt() * (0.35 * o + 0.45 * c + 0.2 * valid)).round();
    let score = s.clamp(0.0, 100.0) as u8;
    let contrast_fraction = contrast_cells as f32 / (f.cw * f.ch) as f32;
    let reason = if fraction < cfg.min_foreground_fraction {
        if contrast_fraction > 2.0 * fraction + 0.2 {
            Some(format!(
                "no ridge pattern: the image has contrast but ridges cover only {:.0}% of it",
                100.0 * fraction
            ))
        } else {
            Some(format!(
                "too little finger area: {:.0}% of the image; place the finger flat in the \
                 middle of the sensor",
                100.0 * fraction
            ))
        }
    } else if score < cfg.min_score {
        let weakest = if c <= o && c <= valid {
            "ridges blurred or broken (finger too dry or too wet, or the sensor dirty)"
        } else if o <= valid {
            "ridge flow irregular (the finger moved, or the sensor is dirty)"
        } else {
            "ridge spacing unreadable (finger pressed too hard or too lightly)"
        };
        Some(format!(
            "{weakest} (quality {score}, at least {} needed)",
            cfg.min_score
        ))
    } else {
        None
    };
    QualityReport {
        score,
        foreground_fraction: fraction,
        usable: reason.is_none(),
        reason,
    }
}

/// The impression's quality alone: stops before enhancement, so it costs a fraction of
/// [`extract`]. An unusable impression is a report with `usable == false`, not an error.
pub fn quality(img: &GrayImage, cfg: &ExtractConfig) -> Result<QualityReport, ExtractError> {
    analyse(img, cfg).map(|a| a.report)
}

/// Extracts the minutiae template of one impression.
///
/// Fails with [`ExtractError::LowQuality`] when the impression is unusable or yields fewer
/// than [`ExtractConfig::min_minutiae`] reliable minutiae.
pub fn extract(
    img: &GrayImage,
    position: FingerPosition,
    cfg: &ExtractConfig,
) -> Result<Extraction, ExtractError> {
    let a = analyse(img, cfg)?;
    if !a.report.usable {
        return Err(ExtractError::LowQuality {
            score: a.report.score,
            reason: a.report.reason.clone().unwrap_or_default(),
        });
    }
    let bank = enhance::GaborBank::new(cfg);
    let mut ridges = enhance::enhance(&a.norm, &a.fields, &bank);
    skeleton::thin(&mut ridges);
    let minutiae = minutiae::find(&ridges, &a.fields, cfg);
    if minutiae.len() < cfg.min_minutiae {
        return Err(ExtractError::LowQuality {
            score: a.report.score,
            reason: format!(
                "too few reliable minutiae: {} (at least {} needed); press the finger flat \
                 over more of the sensor, or take another finger",
                minutiae.len(),
                cfg.min_minutiae
            ),
        });
    }
    let (w, h) = img.dimensions();
    Ok(Extraction {
        template: FingerTemplate {
            // check_size bounds both sides by MAX_SIDE.
            width: u16::try_from(w).unwrap_or(u16::MAX),
            height: u16::try_from(h).unwrap_or(u16::MAX),
            resolution_ppi: 500,
            position,
            quality: a.report.score,
            minutiae,
        },
        quality: a.report,
    })
}

#[cfg(test)]
mod tests;
