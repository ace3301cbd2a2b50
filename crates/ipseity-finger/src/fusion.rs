//! From comparison scores to decisions at a stated false-match rate, for one finger or
//! several.
//!
//! A matcher score means nothing by itself; what an identity programme needs is the rate at
//! which two different fingers score that high. [`ScoreCalibration`] holds that mapping,
//! measured on impostor comparisons (FVC protocol). Several fingers are fused with Fisher's
//! method: each finger's estimated FMR is a p-value under the impostor hypothesis, and
//! `-2 Σ ln p` follows a χ² law with `2n` degrees of freedom when the fingers are
//! independent impostors. The fused value is again an FMR, so the same operating point
//! applies to one finger or ten, and a weak finger cannot veto strong ones the way a
//! minimum rule would.

use serde::{Deserialize, Serialize};

/// Identifies the fingerprint template format; templates from another model are never
/// compared.
pub const MODEL_ID: &str = "ipseity-finger-mcc-v1";

/// Identifies what the matcher's scores mean: a calibration measured on another matcher's
/// scores would state wrong rates. v2: the score weighs in the share of minutiae paired
/// after a global alignment (the templates themselves did not change, so [`MODEL_ID`] did
/// not).
pub const SCORE_ID: &str = "ipseity-finger-mcc-v2";

/// Version of the calibration format ([`ScoreCalibration`] as stored).
pub const CALIBRATION_VERSION: u32 = 1;

/// Why a calibration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CalibrationError {
    /// Fewer impostor scores than needed to say anything about 1e-3.
    #[error("need at least {min} impostor scores, got {got}")]
    TooFewScores {
        /// Scores given.
        got: usize,
        /// Scores needed.
        min: usize,
    },
    /// A NaN or infinite score.
    #[error("non-finite score")]
    NonFinite,
    /// A format version this build does not read.
    #[error("unsupported calibration version {0} (this build reads {CALIBRATION_VERSION})")]
    Version(u32),
    /// Measured on another template format or matcher: its scores mean something else.
    #[error("calibrated for matcher {0}, not {SCORE_ID}; calibrate again")]
    Model(String),
    /// The table is not a decreasing FMR over increasing scores.
    #[error("calibration table is not monotone")]
    NotMonotone,
}

/// The measured map from a single-finger comparison score to its false-match rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreCalibration {
    /// [`CALIBRATION_VERSION`] of the format.
    pub version: u32,
    /// The [`SCORE_ID`] whose scores were measured.
    pub model: String,
    /// Impostor comparisons the table was measured on.
    pub impostor_pairs: usize,
    /// `(score, fmr)`: the fraction of impostor scores at or above `score`. Scores increase
    /// and FMRs decrease along the table.
    pub table: Vec<(f32, f64)>,
    /// Exponential model of the impostor tail above the top [`TAIL_FRACTION`] of scores.
    pub tail: Tail,
    /// Where the scores came from, for people.
    pub source: String,
}

/// Fraction of the highest impostor scores the tail model is fitted to.
pub const TAIL_FRACTION: f64 = 0.01;

/// The impostor tail as peaks over a threshold: above `threshold`, the FMR of a score `s`
/// is `fmr_at_threshold * exp(-(s - threshold) / scale)`, the exponential (shape-zero
/// generalised Pareto) law whose maximum-likelihood scale is the mean excess. A few
/// thousand impostor pairs cannot measure an FMR of 1e-8, which a 1:N search of a large
/// gallery needs per comparison; the fitted tail extrapolates it, and is a model, not a
/// measurement: the evaluation reports how it compares with the measured points.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Tail {
    /// Score where the model takes over from the table.
    pub threshold: f32,
    /// Measured FMR at `threshold`.
    pub fmr_at_threshold: f64,
    /// Mean excess of the impostor scores above `threshold`.
    pub scale: f64,
}

/// Smallest FMR ever reported: far below any operating point, so decisions never hinge on
/// how far the extrapolation is trusted past it.
pub const MIN_FMR: f64 = 1e-15;

/// Smallest number of impostor scores [`ScoreCalibration::from_impostor_scores`] accepts.
pub const MIN_IMPOSTORS: usize = 1000;

impl ScoreCalibration {
    /// Builds the table from impostor scores: one point per distinct score in the upper tail
    /// and a thinned set below it, so the table stays small but exact where decisions are
    /// made (FMR below 1e-2).
    pub fn from_impostor_scores(
        scores: &[f32],
        source: impl Into<String>,
    ) -> Result<Self, CalibrationError> {
        if scores.len() < MIN_IMPOSTORS {
            return Err(CalibrationError::TooFewScores {
                got: scores.len(),
                min: MIN_IMPOSTORS,
            });
        }
        if scores.iter().any(|s| !s.is_finite()) {
            return Err(CalibrationError::NonFinite);
        }
        let mut sorted = scores.to_vec();
        sorted.sort_by(|a, b| b.total_cmp(a)); // descending
        let n = sorted.len() as f64;
        let k = ((n * TAIL_FRACTION) as usize).max(10).min(sorted.len() - 1);
        let threshold = sorted[k];
        let excess: f64 = sorted[..k]
            .iter()
            .map(|s| f64::from(*s - threshold))
            .sum::<f64>()
            / k as f64;
        let tail = Tail {
            threshold,
            fmr_at_threshold: k as f64 / n,
            // A degenerate tail (all equal) would claim infinite evidence; keep a scale.
            scale: excess.max(1e-6),
        };
        let mut table = Vec::new();
        let mut distinct = 0usize;
        let mut i = 0;
        while i < sorted.len() {
            let s = sorted[i];
            // All scores >= s: skip past ties.
            let mut j = i;
            while j < sorted.len() && sorted[j] >= s {
                j += 1;
            }
            let fmr = j as f64 / n;
            // Every distinct score where decisions are made, one in 16 above.
            let keep = fmr <= 1e-2 || distinct.is_multiple_of(16) || j == sorted.len();
            distinct += 1;
            if keep {
                table.push((s, fmr));
            }
            i = j;
        }
        table.reverse(); // ascending scores
        Ok(Self {
            version: CALIBRATION_VERSION,
            model: SCORE_ID.to_owned(),
            impostor_pairs: sorted.len(),
            table,
            tail,
            source: source.into(),
        })
    }

    /// Checks a table read from a file.
    pub fn validate(&self) -> Result<(), CalibrationError> {
        if self.version != CALIBRATION_VERSION {
            return Err(CalibrationError::Version(self.version));
        }
        if self.model != SCORE_ID {
            return Err(CalibrationError::Model(self.model.clone()));
        }
        if self.impostor_pairs < MIN_IMPOSTORS || self.table.is_empty() {
            return Err(CalibrationError::TooFewScores {
                got: self.impostor_pairs,
                min: MIN_IMPOSTORS,
            });
        }
        for w in self.table.windows(2) {
            if !(w[0].0 < w[1].0 && w[0].1 >= w[1].1) {
                return Err(CalibrationError::NotMonotone);
            }
        }
        if self
            .table
            .iter()
            .any(|(s, f)| !(s.is_finite() && *f > 0.0 && *f <= 1.0))
        {
            return Err(CalibrationError::NonFinite);
        }
        let t = self.tail;
        if !(t.threshold.is_finite()
            && t.fmr_at_threshold > 0.0
            && t.fmr_at_threshold <= 1.0
            && t.scale.is_finite()
            && t.scale > 0.0)
        {
            return Err(CalibrationError::NonFinite);
        }
        Ok(())
    }

    /// Estimated FMR of one comparison scoring `score`: the measured fraction of impostors at
    /// or above it (interpolated between table points) up to the tail threshold, the fitted
    /// [`Tail`] above it, never below [`MIN_FMR`].
    pub fn fmr_at(&self, score: f32) -> f64 {
        let t = &self.table;
        let Some(first) = t.first() else {
            return 1.0;
        };
        if !score.is_finite() || score <= first.0 {
            return first.1.min(1.0);
        }
        let tail = self.tail;
        if score > tail.threshold {
            let f = tail.fmr_at_threshold * (-f64::from(score - tail.threshold) / tail.scale).exp();
            return f.max(MIN_FMR);
        }
        // First point with a score above the probe's.
        let idx = t.partition_point(|(s, _)| *s <= score);
        let Some(&(s1, f1)) = t.get(idx) else {
            return t[t.len() - 1].1;
        };
        let (s0, f0) = t[idx - 1];
        // Between sparse points interpolate in log space so the estimate stays monotone.
        let w = f64::from((score - s0) / (s1 - s0).max(f32::MIN_POSITIVE));
        let lf = f0.ln() * (1.0 - w) + f1.ln() * w;
        lf.exp().max(f1)
    }
}

/// Fisher's combination of independent per-finger FMRs into one FMR: the probability that
/// independent impostor fingers give a product of FMRs this small or smaller.
pub fn fisher_combine(fmrs: &[f64]) -> f64 {
    if fmrs.is_empty() {
        return 1.0;
    }
    let x: f64 = fmrs
        .iter()
        .map(|p| -2.0 * p.clamp(f64::MIN_POSITIVE, 1.0).ln())
        .sum();
    // Survival of χ² with 2n degrees of freedom: e^{-x/2} Σ_{k<n} (x/2)^k / k!.
    let half = x / 2.0;
    let mut term = 1.0;
    let mut sum = 1.0;
    for k in 1..fmrs.len() {
        term *= half / k as f64;
        sum += term;
    }
    ((-half).exp() * sum).clamp(0.0, 1.0)
}

/// Operating point on fused FMRs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FmrPolicy {
    /// Accept when the fused FMR is at or below this.
    pub accept_fmr: f64,
    /// Reject when the fused FMR is above this; between the two a person reviews.
    pub review_fmr: f64,
}

impl Default for FmrPolicy {
    /// Accept at FMR 1e-4, the point border and national programmes quote for verification;
    /// a hundred times weaker evidence still goes to a person rather than being rejected.
    fn default() -> Self {
        Self {
            accept_fmr: 1e-4,
            review_fmr: 1e-2,
        }
    }
}

impl FmrPolicy {
    /// The decision for a fused FMR. In 1:N search over `n` references, the caller passes
    /// `fmr * n` (the expected false matches in the whole search) so the stated rate holds
    /// per search, not per comparison.
    pub fn decide(&self, fmr: f64) -> ipseity_core::Decision {
        use ipseity_core::Decision;
        if fmr <= self.accept_fmr {
            Decision::Accept
        } else if fmr <= self.review_fmr {
            Decision::NeedsReview
        } else {
            Decision::Reject
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ipseity_core::Decision;

    fn uniform_scores(n: usize) -> Vec<f32> {
        (0..n).map(|i| i as f32 / n as f32).collect()
    }

    #[test]
    fn fmr_is_the_impostor_tail() {
        let cal = ScoreCalibration::from_impostor_scores(&uniform_scores(10_000), "t").unwrap();
        cal.validate().unwrap();
        // Scores are i/10000: exactly 100 impostors at or above 0.99.
        let f = cal.fmr_at(0.99);
        assert!((f - 1e-2).abs() < 2e-4, "{f}");
        // Above the top 1% the exponential tail takes over: uniform scores have a mean
        // excess of about 0.005 over 0.99, so the model falls by e every 0.005.
        assert!((cal.tail.threshold - 0.99).abs() < 1e-3);
        assert!((cal.tail.scale - 0.005).abs() < 1e-3, "{:?}", cal.tail);
        let f = cal.fmr_at(0.995);
        assert!((f - 1e-2 * (-1.0f64).exp()).abs() < 1e-3, "{f}");
        assert!(cal.fmr_at(2.0) >= MIN_FMR && cal.fmr_at(2.0) < 1e-12);
        assert_eq!(cal.fmr_at(-1.0), 1.0);
        assert_eq!(cal.fmr_at(f32::NAN), 1.0);
        // Monotone.
        let mut last = 1.0;
        for i in 0..=1000 {
            let f = cal.fmr_at(i as f32 / 1000.0);
            assert!(f <= last + 1e-12);
            last = f;
        }
    }

    #[test]
    fn refuses_small_or_bad_sets() {
        assert!(matches!(
            ScoreCalibration::from_impostor_scores(&[0.1; 10], "t"),
            Err(CalibrationError::TooFewScores { .. })
        ));
        let mut s = uniform_scores(2000);
        s[3] = f32::NAN;
        assert_eq!(
            ScoreCalibration::from_impostor_scores(&s, "t"),
            Err(CalibrationError::NonFinite)
        );
        let mut cal = ScoreCalibration::from_impostor_scores(&uniform_scores(2000), "t").unwrap();
        // Thinned above FMR 1e-2, exact below: 20 points in the tail, ~1980/16 above.
        assert!(
            cal.table.len() > 20 + 100 && cal.table.len() < 20 + 140,
            "{}",
            cal.table.len()
        );
        cal.table.swap(0, 1);
        assert_eq!(cal.validate(), Err(CalibrationError::NotMonotone));
    }

    #[test]
    fn fisher_matches_closed_forms() {
        assert_eq!(fisher_combine(&[]), 1.0);
        // One finger: the p-value itself.
        assert!((fisher_combine(&[0.03]) - 0.03).abs() < 1e-12);
        // Two fingers: p1 p2 (1 - ln(p1 p2)).
        let (a, b) = (0.01f64, 0.2f64);
        let want = a * b * (1.0 - (a * b).ln());
        assert!((fisher_combine(&[a, b]) - want).abs() < 1e-12);
        // Independent uniform p-values: the combined value is uniform too.
        let mut below = 0;
        let mut state = 12345u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        let trials = 20_000;
        for _ in 0..trials {
            if fisher_combine(&[next(), next(), next()]) <= 0.1 {
                below += 1;
            }
        }
        let rate = below as f64 / trials as f64;
        assert!((rate - 0.1).abs() < 0.01, "{rate}");
    }

    #[test]
    fn policy_bands() {
        let p = FmrPolicy::default();
        assert_eq!(p.decide(1e-5), Decision::Accept);
        assert_eq!(p.decide(1e-3), Decision::NeedsReview);
        assert_eq!(p.decide(0.5), Decision::Reject);
    }
}
