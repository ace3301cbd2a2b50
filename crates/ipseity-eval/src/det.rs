//! Error-rate computations: DET curve, EER, FNMR at fixed FMR and threshold calibration.

use crate::EvalError;
use serde::Serialize;

/// One operating point of a DET curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DetPoint {
    /// Decision threshold: a comparison is accepted when its score is `>= threshold`.
    pub threshold: f32,
    /// False match rate: share of impostor scores `>= threshold`.
    pub fmr: f64,
    /// False non-match rate: share of genuine scores `< threshold`.
    pub fnmr: f64,
}

/// The figures an accuracy report quotes for one system on one data set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Number of genuine (same subject) scores.
    pub genuine: usize,
    /// Number of impostor (different subject) scores.
    pub impostor: usize,
    /// Equal error rate, interpolated where FMR and FNMR cross (see [`summarize`]).
    pub eer: f64,
    /// Lowest DET threshold at which FMR <= FNMR, the threshold nearest the EER.
    pub eer_threshold: f32,
    /// FNMR at FMR = 1e-2, or `None` when there are fewer than 100 impostor scores.
    pub fnmr_at_fmr_1e2: Option<f64>,
    /// FNMR at FMR = 1e-3, or `None` when there are fewer than 1,000 impostor scores.
    pub fnmr_at_fmr_1e3: Option<f64>,
    /// FNMR at FMR = 1e-4, or `None` when there are fewer than 10,000 impostor scores.
    pub fnmr_at_fmr_1e4: Option<f64>,
    /// Threshold giving FMR <= 1e-2 (see [`threshold_for_fmr`]), `None` as above.
    pub threshold_at_fmr_1e2: Option<f32>,
    /// Threshold giving FMR <= 1e-3 (see [`threshold_for_fmr`]), `None` as above.
    pub threshold_at_fmr_1e3: Option<f32>,
    /// Threshold giving FMR <= 1e-4 (see [`threshold_for_fmr`]), `None` as above.
    pub threshold_at_fmr_1e4: Option<f32>,
}

/// Checks a score set and returns a sorted (ascending) copy.
fn sorted_scores(scores: &[f32], which: &'static str) -> Result<Vec<f32>, EvalError> {
    if scores.is_empty() {
        return Err(EvalError::Empty { which });
    }
    if let Some(index) = scores.iter().position(|s| !s.is_finite()) {
        return Err(EvalError::NonFinite { which, index });
    }
    let mut sorted = scores.to_vec();
    sorted.sort_unstable_by(f32::total_cmp);
    Ok(sorted)
}

/// The smallest `f32` strictly greater than `x` (`x` finite); `+inf` above `f32::MAX`.
fn next_up(x: f32) -> f32 {
    if x == 0.0 {
        return f32::from_bits(1);
    }
    let bits = x.to_bits();
    if x > 0.0 {
        f32::from_bits(bits + 1)
    } else {
        f32::from_bits(bits - 1)
    }
}

/// Computes the DET curve of a system from its genuine and impostor scores.
///
/// There is one point per distinct score, in ascending threshold order, plus a
/// final point just above the highest score where FMR is 0 and FNMR is 1. The
/// first point always has FMR 1 and FNMR 0. Along the curve FMR never increases
/// and FNMR never decreases.
///
/// Runs in O((g + i) log(g + i)) time: both sets are sorted once and merged.
///
/// # Errors
///
/// [`EvalError::Empty`] if either set is empty, [`EvalError::NonFinite`] if any
/// score is NaN or infinite.
pub fn det_curve(genuine: &[f32], impostor: &[f32]) -> Result<Vec<DetPoint>, EvalError> {
    let g = sorted_scores(genuine, "genuine")?;
    let im = sorted_scores(impostor, "impostor")?;
    let (ng, ni) = (g.len() as f64, im.len() as f64);
    let mut points = Vec::with_capacity(g.len() + im.len() + 1);
    // gi / ii: number of genuine / impostor scores strictly below the current threshold.
    let (mut gi, mut ii) = (0usize, 0usize);
    loop {
        let t = match (g.get(gi), im.get(ii)) {
            (Some(&a), Some(&b)) => a.min(b),
            (Some(&a), None) => a,
            (None, Some(&b)) => b,
            (None, None) => break,
        };
        points.push(DetPoint {
            threshold: t,
            fmr: (im.len() - ii) as f64 / ni,
            fnmr: gi as f64 / ng,
        });
        while g.get(gi).is_some_and(|&s| s <= t) {
            gi += 1;
        }
        while im.get(ii).is_some_and(|&s| s <= t) {
            ii += 1;
        }
    }
    let top = g[g.len() - 1].max(im[im.len() - 1]);
    points.push(DetPoint {
        threshold: next_up(top),
        fmr: 0.0,
        fnmr: 1.0,
    });
    Ok(points)
}

/// Whether `n` impostor scores can resolve a false match rate of `fmr`,
/// that is whether `n >= 1 / fmr` (with a little slack for rounding).
fn resolvable(n: usize, fmr: f64) -> bool {
    fmr.is_finite() && fmr > 0.0 && (n as f64) * fmr >= 1.0 - 1e-9
}

/// Threshold calibrated on impostor scores so that the false match rate is at most `fmr`.
///
/// Returns the smallest `f32` threshold `t` for which the share of impostor
/// scores `>= t` is at most `fmr`; when `fmr >= 1` that is the lowest impostor
/// score. The smallest such threshold gives the lowest FNMR among thresholds
/// that meet the target.
///
/// Returns `None` when the impostor set is empty or holds a non-finite score,
/// when `fmr` is NaN or not positive, or when there are too few impostor scores
/// to resolve `fmr` (fewer than `1 / fmr`): with 500 impostor scores an
/// FMR of 1e-3 cannot be told apart from 0, and quoting a threshold for it would
/// claim a precision the data do not have.
pub fn threshold_for_fmr(impostor: &[f32], fmr: f64) -> Option<f32> {
    let sorted = sorted_scores(impostor, "impostor").ok()?;
    threshold_in_sorted(&sorted, fmr)
}

/// [`threshold_for_fmr`] on finite impostor scores already sorted ascending,
/// without the copy and sort (for tens of millions of scores asked at several
/// rates). Unsorted input gives a wrong threshold, never a panic.
pub fn threshold_for_fmr_sorted(sorted: &[f32], fmr: f64) -> Option<f32> {
    debug_assert!(sorted.windows(2).all(|w| w[0] <= w[1]));
    threshold_in_sorted(sorted, fmr)
}

fn threshold_in_sorted(sorted: &[f32], fmr: f64) -> Option<f32> {
    let n = sorted.len();
    if !resolvable(n, fmr) {
        return None;
    }
    // At most `k` impostor scores may be accepted.
    let k = ((n as f64) * fmr + 1e-9).floor();
    if k >= n as f64 {
        return Some(sorted[0]);
    }
    // Accepting only scores above the (k+1)-th highest keeps at most k.
    let k = k as usize;
    Some(next_up(sorted[n - 1 - k]))
}

/// Share of (sorted ascending) genuine scores strictly below `t`.
fn fnmr_at(sorted_genuine: &[f32], t: f32) -> f64 {
    sorted_genuine.partition_point(|&s| s < t) as f64 / sorted_genuine.len() as f64
}

/// Computes the headline accuracy figures.
///
/// - **EER**: walking the DET curve by ascending threshold, the first point `b`
///   where FNMR >= FMR and the point `a` before it bracket the crossing; the EER
///   is where the straight segment from `a` to `b` in (FMR, FNMR) space meets
///   the diagonal (the rate a randomised mix of the two thresholds achieves).
///   `eer_threshold` is the threshold of `b`.
/// - **FNMR at FMR x**: FNMR at the smallest threshold whose FMR <= x, the
///   threshold [`threshold_for_fmr`] returns. It is `None` when fewer than `1/x`
///   impostor scores are available, because such a set cannot resolve an FMR of
///   `x`; an honest report then shows no figure rather than an optimistic one.
///
/// # Errors
///
/// As [`det_curve`].
pub fn summarize(genuine: &[f32], impostor: &[f32]) -> Result<Summary, EvalError> {
    let points = det_curve(genuine, impostor)?;
    let g = sorted_scores(genuine, "genuine")?;
    let im = sorted_scores(impostor, "impostor")?;

    // The first point has FNMR - FMR = -1 and the last +1, so a crossing exists.
    let b = points
        .iter()
        .position(|p| p.fnmr >= p.fmr)
        .unwrap_or(points.len() - 1);
    let eer = if b == 0 {
        points[0].fmr
    } else {
        let (pa, pb) = (points[b - 1], points[b]);
        let da = pa.fnmr - pa.fmr;
        let db = pb.fnmr - pb.fmr;
        let s = if db - da > 0.0 { -da / (db - da) } else { 1.0 };
        pa.fmr + s * (pb.fmr - pa.fmr)
    };

    let t2 = threshold_in_sorted(&im, 1e-2);
    let t3 = threshold_in_sorted(&im, 1e-3);
    let t4 = threshold_in_sorted(&im, 1e-4);
    Ok(Summary {
        genuine: g.len(),
        impostor: im.len(),
        eer,
        eer_threshold: points[b].threshold,
        fnmr_at_fmr_1e2: t2.map(|t| fnmr_at(&g, t)),
        fnmr_at_fmr_1e3: t3.map(|t| fnmr_at(&g, t)),
        fnmr_at_fmr_1e4: t4.map(|t| fnmr_at(&g, t)),
        threshold_at_fmr_1e2: t2,
        threshold_at_fmr_1e3: t3,
        threshold_at_fmr_1e4: t4,
    })
}

/// Sample index pairs `(i, j)` with `i < j`.
pub type IndexPairs = Vec<(usize, usize)>;

/// All genuine and impostor comparison pairs `(i, j)`, `i < j`, of a labelled set.
///
/// `labels[i]` is the subject of sample `i`. Returns `(genuine, impostor)`:
/// pairs with equal labels and pairs with different labels, each in
/// lexicographic order. The output has `n (n - 1) / 2` pairs in all.
pub fn pairs_from_labels(labels: &[usize]) -> (IndexPairs, IndexPairs) {
    let mut genuine = Vec::new();
    let mut impostor = Vec::new();
    for (i, &a) in labels.iter().enumerate() {
        for (j, &b) in labels.iter().enumerate().skip(i + 1) {
            if a == b {
                genuine.push((i, j));
            } else {
                impostor.push((i, j));
            }
        }
    }
    (genuine, impostor)
}

/// The FVC protocol's comparison pairs of a set of impressions: every pair of impressions
/// of the same finger is genuine, and only the first impressions of different fingers are
/// compared as impostors (so each finger pair is counted once, not once per impression).
///
/// `fingers[i]` is the finger of sample `i`. Fingers are taken in ascending order, the
/// impressions of each in sample order; pairs are `(i, j)` in that order.
pub fn fvc_pairs<L: Ord + Copy>(fingers: &[L]) -> (IndexPairs, IndexPairs) {
    let mut by_finger: std::collections::BTreeMap<L, Vec<usize>> = Default::default();
    for (i, &f) in fingers.iter().enumerate() {
        by_finger.entry(f).or_default().push(i);
    }
    let mut genuine = Vec::new();
    let mut firsts = Vec::new();
    for idx in by_finger.values() {
        for (a, &i) in idx.iter().enumerate() {
            genuine.extend(idx[a + 1..].iter().map(|&j| (i, j)));
        }
        firsts.extend(idx.first());
    }
    let mut impostor = Vec::new();
    for (a, &i) in firsts.iter().enumerate() {
        impostor.extend(firsts[a + 1..].iter().map(|&j| (i, j)));
    }
    (genuine, impostor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fvc_pairs_follow_the_protocol() {
        // Fingers 7 and 3, interleaved: sorted by finger, impressions in sample order.
        let (g, i) = fvc_pairs(&[7u32, 3, 7, 3, 7]);
        assert_eq!(g, vec![(1, 3), (0, 2), (0, 4), (2, 4)]);
        assert_eq!(i, vec![(1, 0)]);
        let (g, i) = fvc_pairs::<u32>(&[]);
        assert!(g.is_empty() && i.is_empty());
        // 10 fingers x 8 impressions: 10 * 28 genuine, 45 impostor.
        let labels: Vec<u32> = (0..80).map(|k| k / 8).collect();
        let (g, i) = fvc_pairs(&labels);
        assert_eq!((g.len(), i.len()), (280, 45));
    }

    #[test]
    fn perfectly_separated_scores_have_zero_eer() {
        let s = summarize(&[0.8, 0.9, 0.95], &[0.1, 0.2, 0.3, 0.4]).expect("valid");
        assert_eq!(s.eer, 0.0);
        assert_eq!(s.eer_threshold, 0.8);
        assert_eq!((s.genuine, s.impostor), (3, 4));
    }

    #[test]
    fn identical_distributions_have_eer_one_half() {
        let scores: Vec<f32> = (0..1000).map(|i| i as f32 / 1000.0).collect();
        let s = summarize(&scores, &scores).expect("valid");
        assert!((s.eer - 0.5).abs() < 1e-3, "eer {}", s.eer);
    }

    #[test]
    fn hand_computed_example() {
        // genuine 0.4 0.6 0.8 0.9 ; impostor 0.1 0.3 0.5 0.7
        let g = [0.9, 0.4, 0.8, 0.6];
        let i = [0.5, 0.1, 0.7, 0.3];
        let c = det_curve(&g, &i).expect("valid");
        let got: Vec<(f32, f64, f64)> = c.iter().map(|p| (p.threshold, p.fmr, p.fnmr)).collect();
        let want = [
            (0.1, 1.0, 0.0),
            (0.3, 0.75, 0.0),
            (0.4, 0.5, 0.0),
            (0.5, 0.5, 0.25),
            (0.6, 0.25, 0.25),
            (0.7, 0.25, 0.5),
            (0.8, 0.0, 0.5),
            (0.9, 0.0, 0.75),
        ];
        assert_eq!(&got[..8], &want[..]);
        assert_eq!(got[8].1, 0.0);
        assert_eq!(got[8].2, 1.0);
        assert!(got[8].0 > 0.9);
        // First point with FNMR >= FMR is t = 0.6 where both are 0.25.
        let s = summarize(&g, &i).expect("valid");
        assert_eq!(s.eer, 0.25);
        assert_eq!(s.eer_threshold, 0.6);
        assert_eq!(s.fnmr_at_fmr_1e3, None);
        assert_eq!(s.threshold_at_fmr_1e4, None);
    }

    #[test]
    fn eer_interpolates_between_points() {
        // A tie at 0.5 makes FMR and FNMR move together: t=0.1 (1, 0); t=0.5
        // (0.5, 0); t=0.9 (0, 0.5). The segment (0.5, 0) -> (0, 0.5) meets the
        // diagonal at 0.25.
        let s = summarize(&[0.5, 0.9], &[0.1, 0.5]).expect("valid");
        assert!((s.eer - 0.25).abs() < 1e-12, "eer {}", s.eer);
        assert_eq!(s.eer_threshold, 0.9);
        // A vertical step: t=0.4 (0.5, 0) -> t=0.5 (0.5, 1) crosses at 0.5.
        let s = summarize(&[0.4], &[0.2, 0.5]).expect("valid");
        assert!((s.eer - 0.5).abs() < 1e-12, "eer {}", s.eer);
    }

    #[test]
    fn fnmr_at_fmr_needs_enough_impostors() {
        let impostor: Vec<f32> = (0..1000).map(|i| i as f32 / 1000.0).collect();
        let genuine: Vec<f32> = (0..100).map(|i| 0.9 + i as f32 / 1000.0).collect();
        let s = summarize(&genuine, &impostor).expect("valid");
        // One impostor may be accepted: the top one (0.999) alone.
        let t = s.threshold_at_fmr_1e3.expect("1000 impostors resolve 1e-3");
        assert!(t > 0.998 && t <= 0.999, "threshold {t}");
        // Genuine scores below 0.999: 0.900 ..= 0.998, i.e. 99 of 100.
        assert_eq!(s.fnmr_at_fmr_1e3, Some(0.99));
        assert_eq!(s.fnmr_at_fmr_1e4, None);
        assert_eq!(s.threshold_at_fmr_1e4, None);
        assert_eq!(threshold_for_fmr(&impostor[..999], 1e-3), None);
    }

    #[test]
    fn threshold_for_fmr_edges() {
        assert_eq!(threshold_for_fmr(&[], 0.1), None);
        assert_eq!(threshold_for_fmr(&[0.5, f32::NAN], 0.5), None);
        assert_eq!(threshold_for_fmr(&[0.5], 0.0), None);
        assert_eq!(threshold_for_fmr(&[0.5], f64::NAN), None);
        assert_eq!(threshold_for_fmr(&[0.2, 0.5], 1.0), Some(0.2));
        let t = threshold_for_fmr(&[0.2, 0.5], 0.5).expect("resolvable");
        assert!(t > 0.2 && t <= 0.5);
        let t = threshold_for_fmr(&[0.5, 0.5], 0.5).expect("resolvable");
        assert!(t > 0.5, "ties must all be rejected");
        assert_eq!(threshold_for_fmr(&[f32::MAX], 1.0), Some(f32::MAX));
        assert_eq!(
            threshold_for_fmr(&[-0.0, 0.0], 0.5),
            Some(f32::from_bits(1))
        );
        assert_eq!(threshold_for_fmr(&[-1.0, 0.0], 0.5), Some(-0.999_999_94));
    }

    #[test]
    fn errors() {
        assert_eq!(
            det_curve(&[], &[0.1]),
            Err(EvalError::Empty { which: "genuine" })
        );
        assert_eq!(
            det_curve(&[0.1], &[]),
            Err(EvalError::Empty { which: "impostor" })
        );
        assert_eq!(
            summarize(&[0.1, f32::INFINITY], &[0.1]),
            Err(EvalError::NonFinite {
                which: "genuine",
                index: 1
            })
        );
        assert_eq!(
            det_curve(&[0.1], &[f32::NAN]),
            Err(EvalError::NonFinite {
                which: "impostor",
                index: 0
            })
        );
    }

    #[test]
    fn pairs() {
        let (g, i) = pairs_from_labels(&[0, 1, 0, 1]);
        assert_eq!(g, vec![(0, 2), (1, 3)]);
        assert_eq!(i, vec![(0, 1), (0, 3), (1, 2), (2, 3)]);
        let (g, i) = pairs_from_labels(&[7]);
        assert!(g.is_empty() && i.is_empty());
    }

    proptest! {
        #[test]
        fn det_is_monotone(
            g in prop::collection::vec(-10.0f32..10.0, 1..60),
            i in prop::collection::vec(-10.0f32..10.0, 1..60),
        ) {
            let c = det_curve(&g, &i).expect("finite, non-empty");
            prop_assert_eq!(c[0].fmr, 1.0);
            prop_assert_eq!(c[0].fnmr, 0.0);
            for w in c.windows(2) {
                prop_assert!(w[0].threshold < w[1].threshold);
                prop_assert!(w[1].fmr <= w[0].fmr);
                prop_assert!(w[1].fnmr >= w[0].fnmr);
            }
            let last = c[c.len() - 1];
            prop_assert_eq!((last.fmr, last.fnmr), (0.0, 1.0));
            let s = summarize(&g, &i).expect("valid");
            prop_assert!((0.0..=1.0).contains(&s.eer));
        }

        #[test]
        fn threshold_meets_target(
            i in prop::collection::vec(-10.0f32..10.0, 1..200),
            fmr in 0.001f64..1.0,
        ) {
            if let Some(t) = threshold_for_fmr(&i, fmr) {
                let accepted = i.iter().filter(|&&s| s >= t).count();
                prop_assert!(accepted as f64 <= fmr * i.len() as f64 + 1e-9);
                // Any lower threshold (the largest score below t) would exceed it,
                // unless t is already the lowest score.
                if let Some(&below) = i.iter().filter(|&&s| s < t).max_by(|a, b| a.total_cmp(b)) {
                    let more = i.iter().filter(|&&s| s >= below).count();
                    prop_assert!(more as f64 > fmr * i.len() as f64 - 1e-9);
                }
            } else {
                prop_assert!((i.len() as f64) * fmr < 1.0);
            }
        }
    }
}
