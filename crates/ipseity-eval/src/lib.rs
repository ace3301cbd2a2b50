//! Biometric accuracy evaluation: DET curves, equal error rate, FNMR at a fixed FMR and SVG plots.
//!
//! Scores are similarities: higher means more alike, and a comparison is accepted
//! when its score is at least the decision threshold. For a threshold `t`:
//!
//! - FMR (false match rate) is the share of impostor scores `>= t`;
//! - FNMR (false non-match rate) is the share of genuine scores `< t`.
//!
//! Entry points: [`det_curve`] for the full trade-off, [`summarize`] for the figures
//! a report quotes, [`threshold_for_fmr`] to calibrate a decision threshold,
//! [`pairs_from_labels`] to build comparison pairs from a labelled set, and
//! [`det_svg`] to draw curves.
//!
//! Architecture invariant: this crate does no I/O. It computes numbers and returns
//! strings; callers decide where they go.
#![deny(missing_docs)]
// No SIMD kernels live here, so nothing needs unsafe code (the tidy test holds every
// crate without them to this).
#![forbid(unsafe_code)]

mod det;
mod protocol;
mod svg;

pub use det::{
    det_curve, fvc_pairs, pairs_from_labels, summarize, threshold_for_fmr,
    threshold_for_fmr_sorted, DetPoint, Summary,
};
pub use protocol::{
    fnir_at_fpir, k_fold_accuracy, thin_curve, wilson_95, FoldAccuracy, FoldPair, IdentRate,
    MatedSearch,
};
pub use svg::det_svg;

/// Errors raised by the evaluation functions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    /// One of the score sets was empty, so its error rate is undefined.
    #[error("no {which} scores: both genuine and impostor scores are needed")]
    Empty {
        /// `"genuine"` or `"impostor"`.
        which: &'static str,
    },
    /// A score was NaN or infinite.
    #[error("{which} score at index {index} is not finite")]
    NonFinite {
        /// `"genuine"` or `"impostor"`.
        which: &'static str,
        /// Position of the offending score in its slice.
        index: usize,
    },
}

impl ipseity_core::Classified for EvalError {
    fn kind(&self) -> ipseity_core::ErrorKind {
        ipseity_core::ErrorKind::Input
    }

    fn code(&self) -> &'static str {
        "eval_error"
    }
}
